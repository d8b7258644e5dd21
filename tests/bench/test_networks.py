"""Each network's benchmark stand-in (bench/networks.py) answers what hookhub's own provider
asks of it the way the provider reads it, counts a post once, and takes the baseline's
hand-built request as a post too: a stand-in that drifted from either would fail the
benchmark's first message, or measure a loop that posts nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import httpx
import orjson
import pytest

from bench.networks import NETWORKS, StandIn, chat_channel
from bench.sink import Connection
from bench.sync_baseline import external_id
from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.embedded import free_port
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
from shared.kernel.settings import Settings
from shared.providers.catalog import CATALOG, split_settings
from shared.providers.chat import Author, OutboundPost


@pytest.fixture(params=sorted(NETWORKS))
async def standin(request: pytest.FixtureRequest) -> AsyncIterator[tuple[StandIn, str]]:
    state = StandIn(NETWORKS[request.param])
    state.counter.reset(expect=2, open_after=1)
    port = free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(state.counter, state.respond), "127.0.0.1", port
    )
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def no_app(name: str) -> Mapping[str, str]:
    return {}


async def test_the_standin_answers_the_provider_and_the_baseline_and_counts_their_posts(
    standin: tuple[StandIn, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = standin
    network = state.network
    for name, value in network.env(url).items():
        monkeypatch.setenv(name, value)
    hidden, shown = split_settings(network.name, network.settings(url))
    integration = IntegrationSnapshot(
        id="int_bench",
        workspace_id="ws_bench",
        provider=network.name,
        enabled=True,
        is_default=False,
        status="connected",
        account_id=None,
        rate_limit_per_second=None,
        secrets=hidden,
        config=shown,
    )
    declared = CATALOG[network.name].network
    assert declared is not None
    async with httpx.AsyncClient() as client:
        chat = declared.chat(Settings(), client, no_app)
        token = declared.credential(integration) or network.token
        me = await chat.identity(token)
        assert me.user_id or me.bot_id or me.app_id
        found = await chat.channel(token, network.channel(3))
        assert found.id
        author = Author(name="Ada", avatar_url=None)
        posted = await chat.post(
            token,
            network.channel(3),
            OutboundPost(text="bench_seq=0 sent_at=1.0 hi", author=author),
        )
        assert posted.external_message_id

        event = ChatEvent(
            id="evt_bench_1",
            type="message.created",
            workspace_id="ws_bench",
            occurred_at=utcnow(),
            actor={"id": "u1", "name": "Ada"},
            data={
                "message_id": "msg_1",
                "channel_id": chat_channel(network.name, 3),
                "text": "bench_seq=1 sent_at=1.0 hi",
            },
        )
        outbound = network.outbound(url, network.token)
        document = orjson.loads(event.to_kafka())
        answer = await client.request(
            outbound.method,
            outbound.url(document),
            content=outbound.body(document),
            headers=outbound.headers,
        )
        assert answer.status_code < 300
        assert outbound.posted(answer.json())
        # The floor (bench.sync_baseline --mongo) keeps the message's id in its map.
        assert external_id(answer.json()) not in {"", "None", posted.external_message_id}
    assert state.counter.seen == {0, 1}
    assert state.counter.duplicates == 0
