"""Telegram both ways through the real services, and a Slack message bridged to Telegram
through the chat channel without going back to Slack (even when the chat's answer comes
back before the inbound copy is written)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shared.domain.message_map import Copy, MessageMap, inbound_message_id
from tests.sync.conftest import TELEGRAM_TOKEN, World, in_channel, until

ADA = {"id": 4001, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"}


async def test_chat_messages_reach_telegram_with_edits_deletes_and_replies(world: World) -> None:
    telegram, chat = world.telegram, world.chat
    chat_id, channel = await world.telegram_pair()

    await chat.publish(
        "message.created",
        {"message_id": "t1", "channel_id": channel, "text": "x < y & <b>not bold</b>"},
        actor={"id": "u_ada", "name": "Ada <3"},
    )

    def sent_to(method: str) -> list[dict[str, Any]]:
        return [p for p in telegram.sent(method) if int(p["chat_id"]) == chat_id]

    [first] = await until(lambda: sent_to("sendMessage"), what="sendMessage")
    assert first["parse_mode"] == "HTML"
    assert first["text"] == "<b>Ada &lt;3</b>\nx &lt; y &amp; &lt;b&gt;not bold&lt;/b&gt;"
    stored = telegram.chats[chat_id].messages
    root_id = max(stored)

    await chat.publish(
        "message.created",
        {"message_id": "t2", "channel_id": channel, "text": "reply", "thread_id": "t1"},
    )
    await until(lambda: len(sent_to("sendMessage")) == 2, what="the reply")
    assert sent_to("sendMessage")[1]["reply_parameters"]["message_id"] == root_id

    await chat.publish(
        "message.updated", {"message_id": "t1", "channel_id": channel, "text": "edited"}
    )
    await until(lambda: "edited" in stored[root_id]["text"], what="the edit")
    await chat.publish("message.deleted", {"message_id": "t1", "channel_id": channel})
    await until(lambda: root_id not in stored, what="the delete")


async def test_telegram_messages_reach_the_chat_with_replies_and_edits(world: World) -> None:
    telegram, chat = world.telegram, world.chat
    chat_id, channel = await world.telegram_pair()

    status = await telegram.user_sends(chat_id, ADA, "hello <there>", token=TELEGRAM_TOKEN)
    assert status == 200
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "hello <there>"
    assert received["author"] == {"name": "Ada Lovelace", "external_id": "4001"}
    root_id = int(received["source"]["external_message_id"])

    # A right-to-left override in a name and a text from outside is not passed on; the
    # text's tab and line break are.
    mallory = {"id": 4002, "first_name": "\u202eMallory", "last_name": "\u2066X\u2069"}
    said = "replying\tto\n\u202eyou\u202c"
    await telegram.user_sends(chat_id, mallory, said, reply_to=root_id, token=TELEGRAM_TOKEN)
    [reply] = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    assert reply["thread_id"] == received["id"]
    assert reply["author"]["name"] == "Mallory X" and reply["text"] == "replying\tto\nyou"

    await telegram.user_edits(chat_id, root_id, "hello again", token=TELEGRAM_TOKEN)
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["message_id"] == received["id"] and edited["text"] == "hello again"


async def test_a_slack_message_is_bridged_to_telegram_and_never_back_to_slack(
    world: World,
) -> None:
    slack, telegram, chat = world.slack, world.telegram, world.chat
    slack.add_user("U0ADA", "Ada Lovelace", display_name="ada")
    external, chat_id = world.slack_channel(), world.telegram_chat()
    channel = world.new_id("ch_")
    await world.map(world.slack_integration, external, channel)
    await world.map(world.telegram_integration, chat_id, channel)

    ts = await slack.post_as_user(external, "U0ADA", "from slack")
    [received] = await chat.received(in_channel(channel))
    # The chat stores it and publishes it as its own message, naming where it came from.
    await chat.publish(
        "message.created",
        {
            "message_id": "b1",
            "channel_id": channel,
            "text": "from slack",
            "inbound_id": received["id"],
        },
        actor={"id": "slack:U0ADA", "name": "ada"},
    )
    [sent] = await until(
        lambda: [p for p in telegram.sent() if int(p["chat_id"]) == chat_id], what="sendMessage"
    )
    assert sent["text"] == "<b>ada</b>\nfrom slack"
    # A chat reply in the thread reaches Slack in the Slack thread, and Telegram as a reply.
    await chat.publish(
        "message.created",
        {"message_id": "b2", "channel_id": channel, "text": "answer", "thread_id": "b1"},
    )
    [reply] = await until(lambda: slack.posts(external), what="the reply in Slack")
    assert reply["thread_ts"] == ts
    await until(
        lambda: len([p for p in telegram.sent() if int(p["chat_id"]) == chat_id]) == 2,
        what="the reply in Telegram",
    )
    # Nothing of b1 went back to Slack: its only post there is the reply.
    assert [p["text"] for p in slack.posts(external)] == ["answer"]

    async def copies() -> Any:
        answer = await world.sync.get(
            "/api/messages/lookup",
            params={
                "provider": "slack",
                "external_channel_id": external,
                "external_message_id": ts,
            },
            headers={"Authorization": "Bearer " + world.sync_settings.admin_token},
        )
        assert answer.status_code == 200, answer.text
        return answer.json() if len(answer.json()["copies"]) == 2 else None

    # The copies sync posted are recorded batched, a moment after the post.
    body = await until(copies, what="both copies in the map")
    assert body["message_id"] == "b1" and body["inbound_id"] == received["id"]
    assert sorted((c["provider"], c["origin"]) for c in body["copies"]) == [
        ("slack", "inbound"),
        ("telegram", "outbound"),
    ]


async def test_a_chat_message_waits_for_the_inbound_copy_it_names(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbound side publishes while it writes the copy, so the chat's answer may come
    first: sync waits for the copy instead of posting the message back where it came from."""
    slack, telegram, chat = world.slack, world.telegram, world.chat
    external, chat_id = world.slack_channel(), world.telegram_chat()
    channel = world.new_id("ch_")
    slack_mapping = await world.map(world.slack_integration, external, channel)
    await world.map(world.telegram_integration, chat_id, channel)
    ts = "1700000000.000100"
    inbound_id = inbound_message_id("slack", "T0HOOKHUB", external, ts)
    # What sync (in this process) looks up in the map.
    asked: list[set[str]] = []
    looked_up = MessageMap.of_messages

    async def of_messages(self: MessageMap, chat_ids: Iterable[str]) -> list[Copy]:
        wanted = set(chat_ids)
        asked.append(wanted)
        return await looked_up(self, wanted)

    monkeypatch.setattr(MessageMap, "of_messages", of_messages)

    await chat.publish(
        "message.created",
        {"message_id": "late1", "channel_id": channel, "text": "late", "inbound_id": inbound_id},
    )
    # The copy lands after the chat's answer was read and the copy looked for, not found.
    await until(lambda: any(inbound_id in keys for keys in asked), what="the copy looked for")
    settings = world.sync_settings
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    try:
        copy = Copy.new(
            workspace_id=chat.workspace_id,
            channel_id=channel,
            provider="slack",
            integration_id=world.slack_integration,
            mapping_id=slack_mapping["id"],
            external_channel_id=external,
            external_message_id=ts,
            origin="inbound",
            inbound_id=inbound_id,
        )
        await MessageMap(client[settings.mongo_db]).insert([copy])
        [sent] = await until(
            lambda: [p for p in telegram.sent() if int(p["chat_id"]) == chat_id], what="the post"
        )
        assert sent["text"].endswith("\nlate")
        linked = await until(
            lambda: client[settings.mongo_db]["message_map"].find_one(
                {"_id": copy.id, "chat_message_id": "late1"}
            ),
            what="the chat's id on the copy",
        )
        assert linked["inbound_id"] == inbound_id
    finally:
        await client.close()
    # Had the message been planned for Slack, it would be posted there before a later one.
    await chat.publish(
        "message.created", {"message_id": "later1", "channel_id": channel, "text": "later"}
    )
    await until(lambda: slack.posts(external), what="the later message on Slack")
    assert [p["text"] for p in slack.posts(external)] == ["later"]


async def test_a_reply_to_a_reply_is_in_the_thread_of_the_chains_first_message(
    world: World,
) -> None:
    """Threads are flat (SPEC §8): in Telegram Bob answers Ada's reply, not her first
    message; the chat gets it in the thread of that first message, and the chat's answer
    in that thread (or naming the reply as its thread) replies to the first message."""
    telegram, chat = world.telegram, world.chat
    chat_id, channel = await world.telegram_pair()
    bob = {"id": 4002, "first_name": "Bob", "username": "bob"}

    await telegram.user_sends(chat_id, ADA, "is the deploy done?", token=TELEGRAM_TOKEN)
    [first] = await chat.received(in_channel(channel))
    first_id = int(first["source"]["external_message_id"])
    await telegram.user_sends(chat_id, bob, "which one?", reply_to=first_id, token=TELEGRAM_TOKEN)
    [reply] = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    reply_id = int(reply["source"]["external_message_id"])
    await telegram.user_sends(chat_id, ADA, "the API", reply_to=reply_id, token=TELEGRAM_TOKEN)
    [answer] = await chat.received(lambda v: in_channel(channel)(v) and v["text"] == "the API")
    assert reply["thread_id"] == first["id"]
    assert answer["thread_id"] == first["id"]  # not the reply it answered

    def replies() -> list[dict[str, Any]]:
        return [p for p in telegram.sent() if int(p["chat_id"]) == chat_id]

    # The chat answers in the thread it shows, then names the reply to a reply as thread.
    for n, thread in enumerate((answer["thread_id"], answer["id"]), start=1):
        await chat.publish(
            "message.created",
            {"message_id": f"flat{n}", "channel_id": channel, "text": "ok", "thread_id": thread},
        )

        def answered(count: int = n) -> bool:
            return len(replies()) == count

        await until(answered, what=f"the chat's answer {n}")
        assert replies()[-1]["reply_parameters"]["message_id"] == first_id
