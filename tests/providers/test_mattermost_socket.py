"""Mattermost's WebSocket against the stand-in: the authentication challenge, events with
their `seq`, inbound creates, replies, edits and deletes as message changes, our own posts
recognised, a wrong token refused, and a dropped socket losing nothing (what happened while
it was down is read by the catch-up from the time of the last event seen).

The socket is driven as sync's Gateways drives it, through `MattermostGateway`. Nothing
waits on time: the test opens each new connection itself, so what is posted "while it was
down" is posted before it can reconnect, by construction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from services.sandbox.mattermost import ADA, CHANNEL, GRACE, FakeMattermost
from shared.kernel.http.tls import tls
from shared.providers.chat import Author, MessageChange, OutboundPost, RateLimited
from shared.providers.mattermost.api import MattermostApi, websocket_url
from shared.providers.mattermost.gateway import (
    MattermostConnection,
    MattermostGateway,
    event_key,
)
from shared.providers.mattermost.messages import MattermostChat, credential
from shared.providers.mattermost.socket import (
    SocketConnection,
    SocketLost,
    SocketState,
)
from shared.providers.sockets import GatewayFatal, GatewayLost, Observer, SessionState
from tests.support import serve, until

ADA_ID, GRACE_ID, CHANNEL_ID = ADA[0], GRACE[0], CHANNEL[0]


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


class Bridge:
    """What sync's Gateways does with one integration's socket (services/sync/gateway.py),
    played by the test: a connection through `MattermostGateway`, every dispatch's changes
    in the order they came, and a new connection only when the test asks for one (so what
    is posted "while it was down" is posted before it can reconnect, by construction)."""

    def __init__(self, fake: FakeMattermost, chat: MattermostChat, token: str) -> None:
        self.chat = chat
        self.credential = credential(fake.base_url, token)
        self.gateway = MattermostGateway(chat)
        self.events: list[tuple[str, int]] = []
        self.changes: list[MessageChange] = []
        self.ready: list[bool] = []  # resumed (caught up from `seq`) or a new session
        self.state = SessionState()
        self.connection: MattermostConnection | None = None
        self.keys: set[tuple[str, str, str]] = set()
        self.again: list[tuple[str, str, str]] = []  # handed on a second time

    def dispatch(self, event: str, data: dict[str, Any], seq: int) -> None:
        # The same change again is the same envelope (sync: the map, the chat drop it).
        key = (event, *event_key(event, data))
        if key in self.keys:
            self.again.append(key)
            return
        self.keys.add(key)
        self.events.append((event, seq))
        self.changes.extend(self.chat.changes(event, data))

    async def run(self) -> BaseException:
        """One connection, until it ends: how it ended."""
        url = await self.gateway.url(self.credential)
        self.connection = self.gateway.connect(
            self.credential, self.state, self.dispatch, Observer(ready=self.ready.append)
        )
        try:
            await self.connection.run(url)
        except BaseException as exc:  # the connection never returns normally
            return exc
        raise AssertionError("a connection ended without saying why")

    def seen(self) -> list[tuple[str, str, str]]:
        return [(c.kind, c.external_message_id, c.text) for c in self.changes]


@pytest.fixture
async def bridge(fake: FakeMattermost, chat: MattermostChat) -> AsyncIterator[Bridge]:
    running = Bridge(fake, chat, fake.bot_token)
    task = asyncio.create_task(running.run())
    await until(lambda: running.ready == [False], what="the first connection")
    yield running
    if running.connection is not None:
        await running.connection.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_the_challenge_is_answered_then_events_count_seq_from_zero(
    fake: FakeMattermost,
) -> None:
    async with connect(websocket_url(fake.base_url)) as ws:
        challenge = {"seq": 1, "action": "authentication_challenge", "data": {}}
        challenge["data"] = {"token": fake.bot_token}
        await ws.send(json.dumps(challenge))
        assert json.loads(await ws.recv()) == {"status": "OK", "seq_reply": 1}
        hello = json.loads(await ws.recv())
        assert (hello["event"], hello["seq"]) == ("hello", 0)
        made = await fake.user_posts(ADA_ID, CHANNEL_ID, "hi")
        posted = json.loads(await ws.recv())
        assert (posted["event"], posted["seq"]) == ("posted", 1)
        assert posted["broadcast"]["channel_id"] == CHANNEL_ID
        assert isinstance(posted["data"]["post"], str)  # the post as a JSON string
        assert json.loads(posted["data"]["post"])["id"] == made["id"]


async def test_inbound_create_reply_edit_and_delete(fake: FakeMattermost, bridge: Bridge) -> None:
    root = await fake.user_posts(ADA_ID, CHANNEL_ID, "hello @grace")
    reply = await fake.user_posts(GRACE_ID, CHANNEL_ID, "hi back", root_id=root["id"])
    await fake.user_edits(root["id"], "hello @grace, edited")
    await fake.user_deletes(reply["id"])
    await until(lambda: len(bridge.changes) == 4, what="four changes")
    assert bridge.seen() == [
        ("created", root["id"], "hello @grace"),
        ("created", reply["id"], "hi back"),
        ("edited", root["id"], "hello @grace, edited"),
        ("deleted", reply["id"], ""),
    ]
    created, replied = bridge.changes[0], bridge.changes[1]
    assert created.external_thread_id is None and created.sender.user_id == ADA_ID
    assert replied.external_thread_id == root["id"] and replied.subtype == "reply"
    assert all(c.ignored is None for c in bridge.changes)
    # Each dispatch's `seq` is the server time of its change: what the lease keeps.
    assert [e for e, _ in bridge.events] == ["posted", "posted", "post_edited", "post_deleted"]
    assert bridge.state.seq == fake.post(reply["id"])["delete_at"]  # type: ignore[index]


async def test_mentions_are_made_readable_and_not_live(
    fake: FakeMattermost, bridge: Bridge, chat: MattermostChat
) -> None:
    await chat.user(bridge.credential, GRACE_ID)  # sync looks authors up: Grace is met
    await fake.user_posts(ADA_ID, CHANNEL_ID, "@grace and @channel, mail a@b.c, `@here`")
    await until(lambda: bridge.changes, what="the post")

    async def nobody(user_id: str) -> Author | None:
        return None

    shown = await chat.render(bridge.changes[0].text, nobody)
    assert shown == "@\u200bGrace Hopper and @\u200bchannel, mail a@b.c, `@here`"


async def test_own_posts_are_not_echoed(
    fake: FakeMattermost, bridge: Bridge, chat: MattermostChat
) -> None:
    me = await chat.identity(bridge.credential)
    ours = OutboundPost(text="from the chat", author=Author(name="Ada"), tag="msg_1")
    posted = await chat.post(bridge.credential, CHANNEL_ID, ours)
    await chat.edit(bridge.credential, CHANNEL_ID, posted.external_message_id, ours)
    theirs = await fake.user_posts(GRACE_ID, CHANNEL_ID, "a person")
    await until(lambda: len(bridge.changes) == 3, what="three changes")
    echo, edit_echo, person = bridge.changes
    assert echo.external_message_id == posted.external_message_id
    assert echo.ignored == "hookhub's own post" and chat.is_own(echo, me)
    assert edit_echo.kind == "edited" and chat.is_own(edit_echo, me) and edit_echo.ignored
    assert person.external_message_id == theirs["id"]
    assert person.ignored is None and not chat.is_own(person, me)


async def test_a_dropped_socket_loses_nothing(fake: FakeMattermost, bridge: Bridge) -> None:
    first = await fake.user_posts(ADA_ID, CHANNEL_ID, "before the drop")
    older = await fake.user_posts(GRACE_ID, CHANNEL_ID, "to be edited while down")
    await until(lambda: len(bridge.changes) == 2, what="the posts before the drop")
    last_seen = bridge.state.seq
    assert last_seen == older["create_at"]
    assert bridge.state.resumable  # the point a successor catches up from

    await fake.drop()
    await until(lambda: fake.connections == 0, what="the drop")
    # Down, and held so (the test opens the next connection).
    during = await fake.user_posts(ADA_ID, CHANNEL_ID, "while down")
    reply = await fake.user_posts(GRACE_ID, CHANNEL_ID, "a reply while down", root_id=first["id"])
    await fake.user_edits(older["id"], "edited while down")
    await fake.user_deletes(first["id"])  # its reply goes with it, as the server does
    again = asyncio.create_task(bridge.run())
    await until(lambda: bridge.ready == [False, True], what="the catch-up")
    assert bridge.seen()[2:] == [
        ("created", during["id"], "while down"),
        ("edited", older["id"], "edited while down"),
        ("deleted", first["id"], ""),
        ("deleted", reply["id"], ""),
    ]
    # Live again; nothing the catch-up brought comes twice.
    after = await fake.user_posts(ADA_ID, CHANNEL_ID, "after")
    await until(lambda: bridge.changes[-1].external_message_id == after["id"], what="after")
    assert len(bridge.changes) == 7
    # Only the last change before the drop came again (read from a millisecond before it).
    assert bridge.again == [("posted", older["id"], "")]
    assert bridge.connection is not None
    await bridge.connection.close()
    assert isinstance(await again, GatewayLost)


async def test_a_rate_limited_catch_up_is_tried_again_from_the_same_point(
    fake: FakeMattermost, bridge: Bridge
) -> None:
    await fake.user_posts(ADA_ID, CHANNEL_ID, "seen")
    await until(lambda: bridge.changes, what="the first post")
    last_seen = bridge.state.seq
    await fake.drop()
    await until(lambda: fake.connections == 0, what="the drop")
    missed = await fake.user_posts(GRACE_ID, CHANNEL_ID, "missed")
    fake.rate_limit_next(retry_after=30)  # the catch-up's first read
    ended = await bridge.run()
    # Up to sync's Gateways: it waits the 429's time out, then connects again.
    assert isinstance(ended, RateLimited) and ended.retry_after == 30
    assert [c.text for c in bridge.changes] == ["seen"]
    assert bridge.state.seq == last_seen
    again = asyncio.create_task(bridge.run())
    await until(lambda: len(bridge.changes) == 2, what="the second catch-up")
    assert bridge.seen()[-1] == ("created", missed["id"], "missed")
    assert bridge.connection is not None
    await bridge.connection.close()
    await again


async def test_a_wrong_token_is_refused_on_the_socket(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    connection = SocketConnection("x" * 26, SocketState(), lambda e, d, s: None)
    with pytest.raises(SocketLost) as lost:
        await connection.run(websocket_url(fake.base_url))
    assert lost.value.reason.startswith("closed_before_authenticated")
    assert fake.authenticated_total == 0
    # The gateway's connection asks the REST API, which refuses the token: fatal (the
    # integration in error, no reconnect loop).
    wrong = Bridge(fake, chat, "x" * 26)
    ended = await asyncio.wait_for(wrong.run(), 10)
    assert isinstance(ended, GatewayFatal) and ended.code == 401
    assert wrong.ready == [] and fake.connections_total == 2


async def test_a_skipped_seq_ends_the_connection_for_a_catch_up(fake: FakeMattermost) -> None:
    got: list[int] = []
    connection = SocketConnection(fake.bot_token, SocketState(), lambda e, d, s: got.append(s))
    running = asyncio.create_task(connection.run(websocket_url(fake.base_url)))
    await until(lambda: got == [0], what="hello")
    fake.skip_seq()
    await fake.user_posts(ADA_ID, CHANNEL_ID, "after a lost event")
    with pytest.raises(SocketLost) as lost:
        await asyncio.wait_for(running, 10)
    assert lost.value.reason == "seq_gap: expected 1, got 2"
