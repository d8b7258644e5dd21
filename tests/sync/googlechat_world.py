"""Google Chat in the sync tests' world: its stand-in on loopback (started by
`build_world`, tests/sync/conftest.py, so the services' settings point at it), and per
module an integration of it, made through oauth's API with the stand-in's service account
key, whose webhook URL the stand-in's Chat app POSTs its events to."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from services.sandbox.googlechat import CHAT_ISSUER, FakeGoogleChat
from shared.kernel.envelopes import Topic
from tests.support import KafkaTap, admin_headers, serve

# The Cloud project number the app's Authentication Audience names (the integration's
# `audience` setting).
PROJECT = "1234567890"
# The stand-ins the worlds started, by the API base the services were given.
STAND_INS: dict[str, FakeGoogleChat] = {}
_spaces = itertools.count(1)


@contextlib.asynccontextmanager
async def stand_in() -> AsyncIterator[FakeGoogleChat]:
    fake = FakeGoogleChat(audience=PROJECT)
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        STAND_INS[fake.base_url] = fake
        try:
            yield fake
        finally:
            STAND_INS.pop(fake.base_url, None)


def settings(fake: FakeGoogleChat) -> dict[str, str]:
    """The services' settings naming the stand-in for Google."""
    return {
        "googlechat_api_base": fake.base_url,
        "googlechat_token_url": fake.base_url + "/token",
        "googlechat_oauth2_certs_url": fake.base_url + "/oauth2/v1/certs",
        "googlechat_chat_certs_url": (
            fake.base_url + "/service_accounts/v1/metadata/x509/" + CHAT_ISSUER
        ),
    }


@dataclass
class GoogleChat:
    """The stand-in, hookhub's integration of it, and a tap on the provider events topic
    (what the gateway published)."""

    fake: FakeGoogleChat
    integration: str
    webhook_url: str
    events: KafkaTap
    spaces: list[str] = field(default_factory=list)

    def space(self) -> str:
        name = f"spaces/AAAAsync{next(_spaces):04d}"
        self.fake.add_space(name, name.rpartition("/")[2])
        self.spaces.append(name)
        return name

    async def pair(self, world: Any) -> tuple[str, str]:
        """A new space mapped to a new chat channel: (space, chat channel)."""
        space, channel = self.space(), world.new_id("ch_")
        await world.map(self.integration, space, channel)
        return space, channel

    def stored(self, space: str) -> list[dict[str, Any]]:
        """The space's messages, oldest first."""
        messages = self.fake.spaces[space].messages.values()
        return sorted(messages, key=lambda m: m["createTime"])


async def connect(
    world: Any, stack: contextlib.AsyncExitStack, key_id: str | None = None, **extra: str
) -> GoogleChat:
    """A googlechat integration of the world's workspace (its key file naming `key_id`);
    the stand-in's app endpoint is its webhook URL."""
    fake = STAND_INS[world.sync_settings.googlechat_api_base]
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "googlechat",
            "workspace_id": world.chat.workspace_id,
            "settings": {"service_account_json": fake.service_account_json(key_id), **extra},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    fake.endpoint_url = body["webhook_url"]
    events = await stack.enter_async_context(
        KafkaTap.of(world.sync_settings, Topic.PROVIDER_EVENTS)
    )
    return GoogleChat(fake, body["id"], body["webhook_url"], events)
