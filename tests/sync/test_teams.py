"""Microsoft Teams both ways through the real services: the stand-in POSTs signed
activities to the gateway (KeyedWebhooks: the Bot Framework's keys fetched before
verification), sync reads them off `hookhub.provider.events` and hands the chat the
messages, edits and deletions; the chat's messages reach the channel through the Connector
with the bot's token (client credentials from the integration's own settings)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.sandbox.teams import new_key
from tests.support import admin_headers
from tests.sync.conftest import World, in_channel, until
from tests.sync.teams_world import Teams, connect


@pytest.fixture(scope="module")
async def teams(world: World) -> AsyncIterator[Teams]:
    async with contextlib.AsyncExitStack() as stack:
        yield await connect(world, stack)


async def test_channel_messages_replies_edits_and_deletes_reach_the_chat(
    world: World, teams: Teams
) -> None:
    fake, bot, chat = teams.fake, teams.bot, world.chat
    external, channel = await teams.pair(world)

    # Teams writes a person's `<` as a character reference, markup as tags.
    root, status = await fake.user_sends(bot, external, "ada", "hello &lt;<b>there</b>&gt;")
    assert status == 200
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "hello <there>"
    assert received["author"]["name"] == "Ada Lovelace"

    _, status = await fake.user_sends(bot, external, "grace", "a reply", root=root["id"])
    assert status == 200
    [reply] = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    assert reply["thread_id"] == received["id"] and reply["text"] == "a reply"

    await fake.user_edits(bot, external, root["id"], "hello again")
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["message_id"] == received["id"] and edited["text"] == "hello again"

    await fake.user_deletes(bot, external, root["id"])
    [deleted] = await chat.received(in_channel(channel, "message.deleted"))
    assert deleted["message_id"] == received["id"]


async def test_chat_messages_reach_the_channel_with_a_thread_edits_and_deletes(
    world: World, teams: Teams
) -> None:
    fake, chat = teams.fake, world.chat
    external, channel = await teams.pair(world)
    asked = [r["client_id"] for r in fake.token_requests].count(teams.bot.app_id)

    await chat.publish(
        "message.created",
        {"message_id": "t1", "channel_id": channel, "text": "deploy <at>all</at> done"},
        actor={"id": "u_ada", "name": "Ada Lovelace"},
    )
    [root] = await until(lambda: teams.stored(external), what="the post")
    assert root["from"]["id"] == f"28:{teams.bot.app_id}"
    assert "<at>" not in root["text"] and "all" in root["text"]

    await chat.publish(
        "message.created",
        {"message_id": "t2", "channel_id": channel, "text": "in thread", "thread_id": "t1"},
    )
    [reply] = await until(
        lambda: [m for m in teams.stored(external) if m.get("replyToId")], what="the reply"
    )
    assert reply["replyToId"] == root["id"]

    await chat.publish(
        "message.updated", {"message_id": "t1", "channel_id": channel, "text": "edited"}
    )
    await until(lambda: "edited" in root["text"], what="the edit")
    await chat.publish("message.deleted", {"message_id": "t1", "channel_id": channel})
    await until(lambda: fake.message(external, root["id"]) is None, what="the delete")
    # At most one token request by sync for the bot, however many calls (oauth's check at
    # create had one of its own).
    assert [r["client_id"] for r in fake.token_requests].count(teams.bot.app_id) <= asked + 1


async def test_forged_or_stale_tokens_are_refused_and_nothing_is_published(
    world: World, teams: Teams
) -> None:
    fake, bot, chat = teams.fake, teams.bot, world.chat
    external, channel = await teams.pair(world)
    forged = {
        "another key": fake.token_for(bot.app_id, key=new_key()),
        "another audience": fake.token_for("00000000-0000-4000-8000-000000000000"),
        "another issuer": fake.token_for(bot.app_id, iss="https://sts.example.com"),
        "expired": fake.token_for(bot.app_id, now=time.time() - 7200),
        "another serviceUrl": fake.token_for(
            bot.app_id, service_url="https://smba.example.com/teams/"
        ),
    }
    ids: list[str] = []
    for n, (why, token) in enumerate(forged.items()):
        message_id = f"forged{n}{time.time_ns()}"
        ids.append(message_id)
        activity = fake.activity(bot, "message", external, "alan", message_id, text=why)
        status = await fake.deliver(bot, activity, token=token)
        assert status == 401, (why, status)

    _, status = await fake.user_sends(bot, external, "ada", "genuine")
    assert status == 200
    [genuine] = await chat.received(in_channel(channel))
    assert genuine["text"] == "genuine"
    published = await teams.events.settled()
    assert not [v for v in published if any(i in json.dumps(v) for i in ids)]


async def test_the_bots_own_message_coming_back_is_not_sent_to_the_chat(
    world: World, teams: Teams
) -> None:
    """An activity from the bot itself (`28:<app id>`), even one naming a message sync has
    not recorded yet (arriving before the send answered), is not bridged."""
    fake, bot, chat = teams.fake, teams.bot, world.chat
    external, channel = await teams.pair(world)
    await chat.publish("message.created", {"message_id": "e1", "channel_id": channel, "text": "x"})
    [post] = await until(lambda: teams.stored(external), what="the post")

    for message_id in (post["id"], f"unrecorded{time.time_ns()}"):
        echo = fake.activity(bot, "message", external, "ada", message_id, text="mine")
        echo["from"] = {"id": f"28:{bot.app_id}", "name": bot.name}
        assert await fake.deliver(bot, echo) == 200
        assert await teams.events.wait_for(_naming(message_id))
    await fake.user_sends(bot, external, "ada", "after")
    received = await chat.received(in_channel(channel))
    assert [r["text"] for r in received] == ["after"]


def _naming(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda value: text in json.dumps(value)


async def test_a_rate_limited_channel_holds_no_other(world: World, teams: Teams) -> None:
    fake, chat = teams.fake, world.chat
    slow, slow_channel = await teams.pair(world)
    fast, fast_channel = await teams.pair(world)
    fake.throttle(retry_after=2)

    await chat.publish(
        "message.created", {"message_id": "s1", "channel_id": slow_channel, "text": "slow"}
    )
    await until(lambda: fake._throttle[-1][0] == 0, what="the 429")
    await chat.publish(
        "message.created", {"message_id": "f1", "channel_id": fast_channel, "text": "fast"}
    )
    await until(lambda: teams.stored(fast), what="the other channel's post")
    assert not teams.stored(slow), "the limited channel's post went first"
    await until(lambda: teams.stored(slow), what="the limited channel's post, once allowed")


async def test_credentials_microsoft_refuses_are_a_422_at_create(
    world: World, teams: Teams
) -> None:
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "teams",
            "workspace_id": world.chat.workspace_id,
            "settings": {"app_id": teams.bot.app_id, "app_password": "not-the-password"},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    assert "invalid_client" in answer.text
