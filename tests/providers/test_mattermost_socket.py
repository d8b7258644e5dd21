"""Mattermost's WebSocket against the stand-in: the authentication challenge, events with
their `seq`, inbound creates, replies, edits and deletes as message changes, our own posts
recognised, a wrong token refused, and a dropped socket losing nothing (what happened while
it was down is read by the catch-up from the time of the last event seen).

Nothing waits on time: the listener's pause before reconnecting is a gate the test opens,
so what is posted "while it was down" is posted before it can reconnect, by construction."""

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
from shared.providers.chat import Author, MessageChange, OutboundPost
from shared.providers.mattermost.api import MattermostApi, websocket_url
from shared.providers.mattermost.messages import MattermostChat, credential
from shared.providers.mattermost.socket import (
    Listener,
    SocketConnection,
    SocketFatal,
    SocketLost,
    SocketState,
)
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
    """What sync would do with one integration's socket: every event's changes, and the
    catch-up's, in the order they came."""

    def __init__(self, fake: FakeMattermost, chat: MattermostChat, token: str) -> None:
        self.chat = chat
        self.credential = credential(fake.base_url, token)
        self.events: list[tuple[str, int]] = []
        self.changes: list[MessageChange] = []
        self.caught_up: list[int | None] = []
        self.gate = asyncio.Event()  # the pause before a reconnect ends when it is set
        self.pauses: list[float] = []
        self.state = SocketState()
        self.listener = Listener(
            websocket_url(fake.base_url),
            token,
            self.state,
            self.on_event,
            self.catch_up,
            verify=lambda: chat.identity(self.credential),
            sleep=self.pause,
        )

    def on_event(self, event: str, data: dict[str, Any], seq: int) -> None:
        self.events.append((event, seq))
        self.changes.extend(self.chat.changes(event, data))

    async def catch_up(self, since_ms: int | None) -> None:
        self.caught_up.append(since_ms)
        if since_ms is None:
            return  # the first connection: nothing before it is ours to read
        caught = await self.chat.changes_since(self.credential, CHANNEL_ID, since_ms)
        self.changes.extend(caught.changes)
        if caught.newest_ms is not None:
            self.state.since_ms = max(self.state.since_ms or 0, caught.newest_ms)

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await self.gate.wait()
        self.gate.clear()

    def seen(self) -> list[tuple[str, str, str]]:
        return [(c.kind, c.external_message_id, c.text) for c in self.changes]


@pytest.fixture
async def bridge(fake: FakeMattermost, chat: MattermostChat) -> AsyncIterator[Bridge]:
    running = Bridge(fake, chat, fake.bot_token)
    task = asyncio.create_task(running.listener.run())
    await until(lambda: running.events[:1] == [("hello", 0)], what="the hello event")
    yield running
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
    assert [seq for _, seq in bridge.events] == [0, 1, 2, 3, 4]
    assert bridge.state.since_ms == fake.post(reply["id"])["delete_at"]  # type: ignore[index]


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
    last_seen = bridge.state.since_ms
    assert last_seen == older["create_at"]

    await fake.drop()
    await until(lambda: bridge.listener.lost, what="the drop noticed")
    assert fake.connections == 0
    # Down, and held so (the pause before reconnecting waits for the gate).
    during = await fake.user_posts(ADA_ID, CHANNEL_ID, "while down")
    reply = await fake.user_posts(GRACE_ID, CHANNEL_ID, "a reply while down", root_id=first["id"])
    await fake.user_edits(older["id"], "edited while down")
    await fake.user_deletes(first["id"])  # its reply goes with it, as the server does
    bridge.gate.set()
    await until(lambda: len(bridge.caught_up) == 2, what="the catch-up")
    assert bridge.caught_up == [None, last_seen]
    assert bridge.seen()[2:] == [
        ("created", during["id"], "while down"),
        ("edited", older["id"], "edited while down"),
        ("deleted", first["id"], ""),
        ("deleted", reply["id"], ""),
    ]
    # The new connection goes on from there: seq from 0 again.
    after = await fake.user_posts(ADA_ID, CHANNEL_ID, "after")
    await until(lambda: bridge.changes[-1].external_message_id == after["id"], what="after")
    assert bridge.events[-2:] == [("hello", 0), ("posted", 1)]
    assert bridge.listener.connections == 2


async def test_a_rate_limited_catch_up_is_tried_again_from_the_same_point(
    fake: FakeMattermost, bridge: Bridge
) -> None:
    await fake.user_posts(ADA_ID, CHANNEL_ID, "seen")
    await until(lambda: bridge.changes, what="the first post")
    last_seen = bridge.state.since_ms
    await fake.drop()
    await until(lambda: bridge.pauses, what="the drop noticed")
    missed = await fake.user_posts(GRACE_ID, CHANNEL_ID, "missed")
    fake.rate_limit_next(retry_after=30)  # the catch-up's read
    bridge.gate.set()
    await until(lambda: len(bridge.pauses) == 2, what="the failed catch-up")
    assert bridge.listener.lost[-1] == "catch_up_failed: MattermostRateLimited"
    assert bridge.pauses[-1] >= 30  # the 429's wait is kept
    assert [c.text for c in bridge.changes] == ["seen"]
    bridge.gate.set()
    await until(lambda: len(bridge.changes) == 2, what="the second catch-up")
    assert bridge.caught_up == [None, last_seen, last_seen]
    assert bridge.seen()[-1] == ("created", missed["id"], "missed")


async def test_a_wrong_token_is_refused_on_the_socket(
    fake: FakeMattermost, chat: MattermostChat
) -> None:
    connection = SocketConnection("x" * 26, SocketState(), lambda e, d, s: None)
    with pytest.raises(SocketLost) as lost:
        await connection.run(websocket_url(fake.base_url))
    assert lost.value.reason.startswith("closed_before_authenticated")
    assert fake.authenticated_total == 0
    # The listener asks the REST API, which says the token is refused: no reconnect loop.
    wrong = Bridge(fake, chat, "x" * 26)
    with pytest.raises(SocketFatal):
        await asyncio.wait_for(wrong.listener.run(), 10)
    assert wrong.listener.connections == 0 and fake.connections_total == 2


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
