"""Mattermost's `Network`: the credential it builds from an integration's settings, an
import through the API (channel posts oldest first, resumed from a checkpoint), and the
channels the socket's catch-up reads, against the stand-in on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from services.sandbox.mattermost import ADA, BOT, CHANNEL, GRACE, FakeMattermost, new_id
from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.egress import EgressPolicy
from shared.kernel.http.tls import tls
from shared.providers.chat import PermanentError
from shared.providers.history import Conversation
from shared.providers.mattermost.api import MattermostApi
from shared.providers.mattermost.gateway import MattermostGateway
from shared.providers.mattermost.messages import (
    MattermostChat,
    credential,
    integration_of,
    split_credential,
)
from shared.providers.mattermost.network import NETWORK, MattermostApiSource
from shared.providers.networks import ApiImport
from tests.support import serve


@pytest.fixture
async def fake() -> AsyncIterator[FakeMattermost]:
    server = FakeMattermost()
    async with serve(server.app(), probe="/healthz") as running:
        server.base_url = running.base_url
        yield server


@pytest.fixture
async def chat() -> AsyncIterator[MattermostChat]:
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
        yield MattermostChat(MattermostApi(client))


def _integration(config: dict[str, str], secrets: dict[str, str]) -> IntegrationSnapshot:
    return IntegrationSnapshot(
        id="int_mm",
        workspace_id="ws",
        provider="mattermost",
        enabled=True,
        is_default=False,
        status="connected",
        account_id=BOT[0],
        rate_limit_per_second=None,
        secrets=secrets,
        config=config,
    )


def test_the_credential_is_the_server_the_token_and_the_integration() -> None:
    integration = _integration({"server_url": "https://chat.example.com/"}, {"bot_token": "t"})
    made = NETWORK.credential(integration)
    assert made == "https://chat.example.com t int_mm"
    assert (split_credential(made), integration_of(made)) == (
        ("https://chat.example.com", "t"),
        "int_mm",
    )
    assert NETWORK.credential(_integration({}, {"bot_token": "t"})) is None


async def test_an_import_reads_the_channel_oldest_first_from_its_checkpoint(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    posts = [await fake.user_posts(ADA[0], CHANNEL[0], f"m{n}") for n in range(5)]
    await fake.user_deletes(posts[1]["id"])
    job = ApiImport(_integration({}, {}), {"channel_ids": [CHANNEL[0]]}, oldest=None, latest=None)
    source = MattermostApiSource(connections=None, chat=chat, job=job)  # type: ignore[arg-type]
    token = credential(fake.base_url, fake.bot_token)
    conversation = Conversation(id=CHANNEL[0], name="town-square")
    records = [r async for r in source.read(token, conversation, None)]
    assert [r.change.text for r in records if r.change] == ["m0", "m2", "m3", "m4"]
    assert records[-1].done == 1.0
    resumed = [r async for r in source.read(token, conversation, records[1].checkpoint)]
    assert [r.change.text for r in resumed if r.change] == ["m3", "m4"]
    latest = datetime.fromtimestamp(posts[2]["create_at"] / 1000, UTC)
    upto = MattermostApiSource(
        connections=None,  # type: ignore[arg-type]
        chat=chat,
        job=ApiImport(job.integration, job.params, oldest=None, latest=latest),
    )
    assert [r.change.text async for r in upto.read(token, conversation, None) if r.change] == [
        "m0",
        "m2",
    ]


async def test_the_catch_up_reads_the_channels_the_bot_is_in(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    other = fake.add_channel(new_id(), "other", "Other", members=[ADA[0], GRACE[0]])
    mine = fake.add_channel(new_id(), "mine", "Mine", members=[BOT[0]])
    found = await chat.api.my_channel_ids(fake.base_url, fake.bot_token)
    assert set(found) == {CHANNEL[0], mine.id} and other.id not in found


async def test_a_server_the_egress_rules_refuse_is_never_called(fake: FakeMattermost) -> None:
    """An integration names its own server: one on a private address (the cloud's metadata
    service, the cluster's) is refused before any request, the socket's URL too; the
    allow-list (loopback here, as in dev) lets the stand-in through."""
    async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
        strict = MattermostChat(MattermostApi(client, EgressPolicy()))
        for server in ("http://169.254.169.254", "http://10.0.0.7:8065", fake.base_url):
            token = credential(server, "t" * 26)
            with pytest.raises(PermanentError) as refused:
                await strict.identity(token)
            assert refused.value.error == "egress_refused" and refused.value.scope == "integration"
            with pytest.raises(PermanentError):
                await MattermostGateway(strict).url(token)
        assert fake.requests == []

        allowed = MattermostChat(MattermostApi(client, EgressPolicy.from_setting("127.0.0.0/8")))
        me = await allowed.identity(credential(fake.base_url, fake.bot_token))
        assert me.user_id == BOT[0]
