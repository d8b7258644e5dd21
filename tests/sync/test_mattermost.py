"""Mattermost both ways through the real services (the sync `World`: gateway, oauth, sync on
the session's broker and database), with the Mattermost stand-in (REST v4 and WebSocket)
on loopback as the integration's own server: chat → Mattermost as the bot with the author
shown (`override_username`), threads by `root_id`; Mattermost → chat over the bot's
WebSocket, held by sync's Gateways, caught up with `posts?since=` after a drop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.sandbox.mattermost import ADA, BOT, GRACE, FakeMattermost, new_id
from tests.support import admin_headers
from tests.sync.conftest import World, connect, in_channel, until
from tests.sync.mattermost_world import Mattermost, served


@pytest.fixture(scope="module")
async def mattermost(world: World) -> AsyncIterator[Mattermost]:
    async with served(world) as served_one:
        yield served_one


def _posts(fake: FakeMattermost, channel_id: str) -> list[dict[str, Any]]:
    return fake.live_posts(channel_id)


async def _integration(world: World, integration_id: str) -> dict[str, Any]:
    got = await world.oauth.client.get(
        f"/api/integrations/{integration_id}", headers=admin_headers()
    )
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


async def test_the_integration_is_the_bot_its_settings_name(
    world: World, mattermost: Mattermost
) -> None:
    body = await _integration(world, mattermost.integration_id)
    assert body["account"]["id"] == BOT[0]
    # A token the server does not know: refused at create, nothing made.
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "mattermost",
            "workspace_id": world.chat.workspace_id,
            "settings": {"server_url": mattermost.fake.base_url, "bot_token": "a" * 26},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text


async def test_mattermost_posts_reach_the_chat_with_replies_edits_and_deletes(
    world: World, mattermost: Mattermost
) -> None:
    fake, chat = mattermost.fake, world.chat
    external, channel = await mattermost.pair(world)
    await mattermost.connected()

    sent = await fake.user_posts(ADA[0], external, "hello from mattermost")
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "hello from mattermost"
    assert received["source"]["external_message_id"] == sent["id"]

    answer = await fake.user_posts(GRACE[0], external, "a reply", root_id=sent["id"])
    [reply] = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    assert reply["thread_id"] == received["id"]
    assert reply["source"]["external_message_id"] == answer["id"]

    await fake.user_edits(sent["id"], "hello, edited")
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["message_id"] == received["id"] and edited["text"] == "hello, edited"

    await fake.user_deletes(answer["id"])
    [deleted] = await chat.received(in_channel(channel, "message.deleted"))
    assert deleted["message_id"] == reply["id"]


async def test_chat_messages_reach_mattermost_and_never_come_back(
    world: World, mattermost: Mattermost
) -> None:
    """Each of our posts comes back over the socket (`posted`, then `post_edited`) before
    the REST call that made it has answered (the stand-in broadcasts first, as the server
    does): none of them is brought to the chat."""
    fake, chat = mattermost.fake, world.chat
    external, channel = await mattermost.pair(world)
    await mattermost.connected()

    await chat.publish(
        "message.created",
        {"message_id": "m1", "channel_id": channel, "text": "hi @channel"},
        actor={"id": "u_ada", "name": "Ada Lovelace", "avatar_url": "https://a.example/ada.png"},
    )
    [first] = await until(lambda: _posts(fake, external), what="the post")
    assert first["user_id"] == BOT[0]
    assert first["props"]["override_username"] == "Ada Lovelace"
    assert first["props"]["override_icon_url"] == "https://a.example/ada.png"
    assert "@channel" not in first["message"]  # defused

    await chat.publish(
        "message.created",
        {"message_id": "m2", "channel_id": channel, "text": "a reply", "thread_id": "m1"},
        actor={"id": "u_bob", "name": "Bob"},
    )
    await until(lambda: len(_posts(fake, external)) == 2, what="the reply")
    reply = _posts(fake, external)[1]
    assert reply["root_id"] == first["id"]
    assert reply["props"]["override_username"] == "Bob"

    await chat.publish(
        "message.updated", {"message_id": "m1", "channel_id": channel, "text": "edited"}
    )
    await until(lambda: (fake.post(first["id"]) or {}).get("message") == "edited", what="the edit")
    assert fake.post(first["id"])["props"]["override_username"] == "Ada Lovelace"  # type: ignore[index]
    await chat.publish("message.deleted", {"message_id": "m2", "channel_id": channel})
    await until(lambda: (fake.post(reply["id"]) or {}).get("delete_at"), what="the delete")

    # Our own posts, edit and delete came back over the socket before this one: not echoed.
    await fake.user_posts(ADA[0], external, "a person")
    await chat.received(in_channel(channel))
    mine = [v for v in chat.inbound.values() if v["channel_id"] == channel]
    assert [(v["type"], v.get("text")) for v in mine] == [("message.received", "a person")]


async def test_a_rate_limited_channel_waits_without_delaying_another(
    world: World, mattermost: Mattermost
) -> None:
    fake, chat = mattermost.fake, world.chat
    slow, slow_channel = await mattermost.pair(world)
    fast, fast_channel = await mattermost.pair(world)
    fake.rate_limit_posts_in(slow, times=1, retry_after=2)
    for channel in (slow_channel, fast_channel):
        await chat.publish(
            "message.created", {"message_id": f"{channel}-0", "channel_id": channel, "text": "0"}
        )
    await until(lambda: _posts(fake, fast), what="the other channel's post")
    assert _posts(fake, slow) == []  # still waiting out its 429
    await until(lambda: _posts(fake, slow), timeout=15, what="the waiting post")
    assert [p["message"] for p in _posts(fake, slow)] == ["0"]


async def test_a_dropped_socket_catches_up_with_nothing_lost_or_doubled(
    world: World, mattermost: Mattermost
) -> None:
    fake, chat = mattermost.fake, world.chat
    external, channel = await mattermost.pair(world)
    await mattermost.connected()
    before = await fake.user_posts(ADA[0], external, "before the drop")
    doomed = await fake.user_posts(ADA[0], external, "deleted while away")
    first, second = await chat.received(in_channel(channel), count=2)
    listed = sum(1 for _, path in fake.requests if path.endswith("/users/me/teams"))

    await fake.drop()
    # All of this happens with no socket open: only the catch-up can bring it.
    missed = await fake.user_posts(GRACE[0], external, "while away")
    await fake.user_edits(before["id"], "before the drop, edited while away")
    await fake.user_deletes(doomed["id"])
    fleeting = await fake.user_posts(ADA[0], external, "posted and deleted while away")
    await fake.user_deletes(fleeting["id"])
    assert fake.connections == 0

    await chat.received(in_channel(channel), count=3)
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["message_id"] == first["id"]
    [deleted] = await chat.received(in_channel(channel, "message.deleted"))
    assert deleted["message_id"] == second["id"]
    assert sum(1 for _, path in fake.requests if path.endswith("/users/me/teams")) > listed

    # Live again, and each change came once (a post made and deleted while away: never).
    after = await fake.user_posts(ADA[0], external, "after")
    await chat.received(in_channel(channel), count=4)
    mine = [v for v in chat.inbound.values() if v["channel_id"] == channel]
    created = [v["source"]["external_message_id"] for v in mine if v["type"] == "message.received"]
    assert created == [before["id"], doomed["id"], missed["id"], after["id"]]
    assert [v["type"] for v in mine].count("message.edited") == 1
    assert [v["type"] for v in mine].count("message.deleted") == 1


async def test_a_token_the_socket_refuses_puts_the_integration_in_error(
    world: World, mattermost: Mattermost
) -> None:
    """The token revoked after the integration was made: the server drops the socket at
    its challenge, `GET /users/me` says 401, the integration is in `error` and no
    reconnect loop follows; nothing of the channel is published."""
    fake = mattermost.fake
    bot = fake.add_user(new_id(), "otherbot", is_bot=True)
    token = fake.token_for(bot.id)
    integration_id = await connect(world, "mattermost", server_url=fake.base_url, bot_token=token)
    external, channel = mattermost.channel(bot.id, ADA[0]), world.new_id("ch_")
    await world.map(integration_id, external, channel)
    await until(
        lambda: any(s.user_id == bot.id and not s.closed for s in fake._sockets),
        what="the other bot's socket",
    )
    # The history catch-up of its first connection has read the channel (else it could be
    # the one to meet the revoked token first: the same error, by another way).
    await until(
        lambda: ("GET", f"/api/v4/channels/{external}/posts") in fake.requests,
        what="the first connection's catch-up",
    )
    del fake.tokens[token]
    await fake.drop(bot.id)
    await fake.user_posts(ADA[0], external, "not for anyone")

    async def in_error() -> Any:
        body = await _integration(world, integration_id)
        return body if body.get("status") == "error" else None

    body = await until(in_error, what="the integration in error")
    assert body["last_error"].startswith("mattermost_gateway_401"), body["last_error"]
    assert "bot token" in body["last_error"]
    tried = fake.connections_total
    await asyncio.sleep(1.0)  # sync polls every 0.2 s: a reconnect loop would show by now
    assert fake.connections_total == tried
    assert not [v for v in world.chat.inbound.values() if v["channel_id"] == channel]


def test_event_keys_are_the_same_live_and_caught_up() -> None:
    from shared.providers.mattermost.gateway import event_key

    post = {"id": "p1", "edit_at": 5, "update_at": 5, "delete_at": 0}
    assert event_key("post_edited", {"post": json.dumps(post)}) == event_key(
        "post_edited", {"post": post}
    )
    assert event_key("posted", {"post": post}) != event_key("post_edited", {"post": post})
    gone = {"id": "p1", "delete_at": 9}
    assert event_key("post_deleted", {"post": gone}) == event_key(
        "post_deleted", {"post": json.dumps({"id": "p1"})}
    )


async def test_a_skipped_socket_seq_is_read_from_the_channel(
    world: World, mattermost: Mattermost
) -> None:
    """An event lost on the way (the socket's `seq` jumps): the connection is given up and
    the next one's catch-up reads the post the lost event was about, once."""
    fake, chat = mattermost.fake, world.chat
    external, channel = await mattermost.pair(world)
    await mattermost.connected()
    await fake.user_posts(ADA[0], external, "first")
    await chat.received(in_channel(channel))
    connections = fake.connections_total
    fake.skip_seq()
    after_gap = await fake.user_posts(GRACE[0], external, "after the gap")
    got = await chat.received(in_channel(channel), count=2)
    assert got[1]["source"]["external_message_id"] == after_gap["id"]
    assert fake.connections_total > connections  # it came by the catch-up of a new socket
    await fake.user_posts(ADA[0], external, "live again")
    await chat.received(in_channel(channel), count=3)
    mine = [v for v in chat.inbound.values() if v["channel_id"] == channel]
    assert [v["text"] for v in mine] == ["first", "after the gap", "live again"]
