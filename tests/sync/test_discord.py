"""Discord both ways through the real services: chat → Discord through the channel's webhook
(the bot for replies), Discord → chat over the Gateway WebSocket, resumed after a drop,
caught up from history after a session that could not be resumed, and a fatal close (4014)
surfacing on the integration without a reconnect loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client.parser import text_string_to_metric_families

from services.sandbox.discord import (
    CREATE_MESSAGE,
    EXECUTE_WEBHOOK,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeDiscord,
)
from shared.kernel.produce import PartitionProducer
from tests.support import admin_headers
from tests.sync.conftest import DISCORD_BOT_ID, World, connect, in_channel, until

ADA = "1300000000000000001"


def _content(discord: FakeDiscord, channel_id: str, message_id: str) -> str | None:
    message = discord.message(channel_id, message_id)
    return None if message is None else str(message["content"])


def _ada(discord: FakeDiscord) -> None:
    if ADA not in discord.users:
        discord.add_user(ADA, "ada", global_name="Ada Lovelace", avatar="a1b2c3")


async def _metric(world: World, name: str, **labels: str) -> float:
    """A sample of the sync service's /metrics (0 when absent)."""
    text = (await world.sync.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    return 0.0


async def _above(world: World, name: str, before: float, **labels: str) -> bool:
    return await _metric(world, name, **labels) > before


async def _connected(world: World) -> None:
    """The Gateway session is ready (a dispatch sent now reaches sync)."""
    await until(lambda: world.discord.identifies + world.discord.resumes > 0, what="a session")
    await until(lambda: world.discord.connections == 1, what="the Gateway connection")


async def test_chat_messages_reach_discord_with_edits_deletes_and_replies(world: World) -> None:
    discord, chat = world.discord, world.chat
    external, channel = await world.discord_pair()
    await _connected(world)

    await chat.publish(
        "message.created",
        {"message_id": "d1", "channel_id": channel, "text": "hello @everyone"},
        actor={"id": "u_ada", "name": "Ada Lovelace", "avatar_url": "https://a.example/ada.png"},
    )
    [first] = await until(lambda: discord.messages(external), what="the webhook post")
    [hook] = discord.channel_webhooks(external)
    assert first["webhook_id"] == hook.id and hook.application_id is not None
    assert first["author"]["username"] == "Ada Lovelace"
    assert first["content"].startswith("hello")
    [execute] = discord.sent(EXECUTE_WEBHOOK)
    assert execute.query.get("wait") == "true"
    assert execute.json["allowed_mentions"] == {"parse": []}
    assert execute.json["avatar_url"] == "https://a.example/ada.png"

    # A reply goes through the bot (webhooks cannot reply), pointing at the root.
    await chat.publish(
        "message.created",
        {"message_id": "d2", "channel_id": channel, "text": "a reply", "thread_id": "d1"},
        actor={"id": "u_bob", "name": "Bob"},
    )
    await until(lambda: len(discord.messages(external)) == 2, what="the reply")
    reply = discord.messages(external)[1]
    assert reply["message_reference"]["message_id"] == first["id"]
    assert "Bob" in reply["content"] and "a reply" in reply["content"]
    assert len(discord.sent(CREATE_MESSAGE)) == 1

    await chat.publish(
        "message.updated", {"message_id": "d1", "channel_id": channel, "text": "edited"}
    )
    await until(lambda: _content(discord, external, first["id"]) == "edited", what="the edit")
    await chat.publish(
        "message.updated", {"message_id": "d2", "channel_id": channel, "text": "reply edited"}
    )
    await until(
        lambda: "reply edited" in (_content(discord, external, reply["id"]) or ""),
        what="the reply's edit (by the bot)",
    )
    await chat.publish("message.deleted", {"message_id": "d1", "channel_id": channel})
    await until(lambda: discord.message(external, first["id"]) is None, what="the delete")
    # Our own posts came back over the Gateway before this one, and were not echoed.
    _ada(discord)
    await discord.user_sends(external, ADA, "a person")
    await chat.received(in_channel(channel))
    mine = [v for v in chat.inbound.values() if v["channel_id"] == channel]
    assert [v["text"] for v in mine] == ["a person"]


async def test_discord_messages_reach_the_chat_with_replies_edits_and_deletes(
    world: World,
) -> None:
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)

    sent = await discord.user_sends(external, ADA, f"hi <@{ADA}> see <#{external}>")
    [received] = await chat.received(in_channel(channel))
    assert received["author"]["name"] == "Ada Lovelace"
    assert received["author"]["avatar_url"].startswith("https://cdn.discordapp.com/avatars/")
    assert received["text"] == f"hi @Ada Lovelace see #{discord.channels[external].name}"
    assert received["source"]["external_message_id"] == sent["id"]

    answer = await discord.user_sends(external, ADA, "replying", reply_to=sent["id"])
    [reply] = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    assert reply["thread_id"] == received["id"]
    assert reply["source"]["external_message_id"] == answer["id"]

    await discord.user_edits(external, sent["id"], "hi again")
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["message_id"] == received["id"] and edited["text"] == "hi again"

    await discord.user_deletes(external, answer["id"])
    [deleted] = await chat.received(in_channel(channel, "message.deleted"))
    assert deleted["message_id"] == reply["id"]

    third = await discord.user_sends(external, ADA, "third")
    fourth = await discord.user_sends(external, ADA, "fourth")
    await chat.received(in_channel(channel), count=4)
    await discord.user_bulk_deletes(external, [third["id"], fourth["id"]])
    gone = await chat.received(in_channel(channel, "message.deleted"), count=3)
    assert {g["source"]["external_message_id"] for g in gone} >= {third["id"], fourth["id"]}


# A sticker item (docs: resources/sticker, "Sticker Item Object": `id`, `name`,
# `format_type`) of the documentation's "Example Sticker" (Wave, LOTTIE = 3).
WAVE = {"id": "749054660769218631", "name": "Wave", "format_type": 3}


async def test_a_sticker_alone_reaches_the_chat_named_and_linked(world: World) -> None:
    """A MESSAGE_CREATE whose only content is a sticker (`sticker_items`) is a message: the
    sticker named in the text as the export reader names it, and linked to its file on the
    CDN (a Lottie sticker's is `.json`, docs: reference, "Image Formatting")."""
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)

    sent = await discord.user_sends(external, ADA, "", stickers=[WAVE])
    [received] = await chat.received(in_channel(channel))
    assert received["source"]["external_message_id"] == sent["id"]
    assert received["text"] == "[sticker: Wave]"
    [attachment] = received["attachments"]
    assert attachment["url"] == "https://cdn.discordapp.com/stickers/749054660769218631.json"
    assert attachment["name"] == "Wave.json"


async def test_a_reply_to_a_reply_is_in_the_thread_of_the_chains_first_message(
    world: World,
) -> None:
    """Threads are flat (SPEC §8): a Discord reply to a reply comes to the chat in the
    thread of the chain's first message, and the chat's answer in that thread (or naming
    the reply as its thread) goes out as a reply to that first message."""
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)

    first = await discord.user_sends(external, ADA, "is the deploy done?")
    [received] = await chat.received(in_channel(channel))
    reply = await discord.user_sends(external, ADA, "which one?", reply_to=first["id"])
    answer = await discord.user_sends(external, ADA, "the API", reply_to=reply["id"])
    got = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v, count=2)
    by_source = {v["source"]["external_message_id"]: v for v in got}
    assert by_source[reply["id"]]["thread_id"] == received["id"]
    assert by_source[answer["id"]]["thread_id"] == received["id"]  # not the reply's id

    def bot_replies() -> list[dict[str, Any]]:
        return [m for m in discord.messages(external) if m["author"]["id"] == DISCORD_BOT_ID]

    for n, thread in enumerate((received["id"], by_source[answer["id"]]["id"]), start=1):
        await chat.publish(
            "message.created",
            {"message_id": f"dflat{n}", "channel_id": channel, "text": "ok", "thread_id": thread},
        )

        def answered(count: int = n) -> bool:
            return len(bot_replies()) == count

        await until(answered, what=f"the chat's answer {n}")
        assert bot_replies()[-1]["message_reference"]["message_id"] == first["id"]


async def test_a_dropped_connection_is_resumed_with_nothing_lost_or_doubled(
    world: World,
) -> None:
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)
    resumes = discord.resumes

    await discord.user_sends(external, ADA, "before the drop")
    await chat.received(in_channel(channel))
    await discord.drop()
    # Sent while nobody is connected: the session keeps them for the Resume.
    await discord.user_sends(external, ADA, "during the drop 1")
    await discord.user_sends(external, ADA, "during the drop 2")
    await until(lambda: discord.resumes > resumes, what="a Resume")
    await discord.user_sends(external, ADA, "after the resume")
    got = await chat.received(in_channel(channel), count=4)
    texts = [v["text"] for v in got]
    assert texts == [
        "before the drop",
        "during the drop 1",
        "during the drop 2",
        "after the resume",
    ]
    assert len({v["id"] for v in got}) == 4


async def test_op_7_and_a_missed_heartbeat_ack_are_resumed(world: World) -> None:
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)
    resumes, identifies = discord.resumes, discord.identifies

    await discord.request_reconnect()  # op 7: reconnect and resume at once
    await until(lambda: discord.resumes == resumes + 1, what="the Resume after op 7")
    await discord.user_sends(external, ADA, "after op 7")
    await chat.received(lambda v: in_channel(channel)(v) and v["text"] == "after op 7")

    await discord.stop_acks()  # a zombied connection: beats go unanswered
    try:
        await until(lambda: discord.resumes == resumes + 2, what="the Resume after no ACK")
    finally:
        await discord.resume_acks()
    await discord.user_sends(external, ADA, "after the zombie")
    await chat.received(lambda v: in_channel(channel)(v) and v["text"] == "after the zombie")
    assert discord.identifies == identifies  # resumed both times, never a new session
    assert all(path.startswith("/resume-gateway") for path in discord.paths[-2:])


async def test_an_invalid_session_is_followed_by_catch_up_from_history(world: World) -> None:
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)
    await discord.user_sends(external, ADA, "seen live")
    await chat.received(in_channel(channel))
    identifies = discord.identifies
    recovered = await _metric(
        world, "hookhub_sync_catch_up_messages_total", provider="discord", outcome="recovered"
    )
    invalid = await _metric(
        world, "hookhub_sync_discord_gateway_reconnects_total", reason="invalid_session"
    )

    # Written while the session was lost for good: no dispatch will ever carry these.
    await discord.invalidate_sessions(resumable=False)
    missed = [discord.post_silently(external, ADA, f"missed {i}") for i in range(3)]
    await until(lambda: discord.identifies > identifies, timeout=30, what="a new session")
    got = await chat.received(in_channel(channel), count=4, timeout=30)
    assert [v["text"] for v in got] == ["seen live", "missed 0", "missed 1", "missed 2"]
    assert [v["source"]["external_message_id"] for v in got[1:]] == [m["id"] for m in missed]
    # The operator sees why and what came back (counted once the catch-up's pass has ended,
    # which may be just after its last message reached the chat service).
    caught_up = "hookhub_sync_catch_up_messages_total"
    await until(
        lambda: _above(world, caught_up, recovered, provider="discord", outcome="recovered"),
        what="the catch-up counted",
    )
    assert await _metric(world, caught_up, provider="discord", outcome="recovered") == recovered + 3
    assert (
        await _metric(
            world, "hookhub_sync_discord_gateway_reconnects_total", reason="invalid_session"
        )
        == invalid + 1
    )
    assert await _metric(world, "hookhub_sync_discord_gateway_events_total", type="READY") >= 2
    # Beats come every second after the first (at a random point of the first second).
    beats = "hookhub_sync_discord_gateway_heartbeat_seconds_count"
    await until(lambda: _above(world, beats, 0), what="a heartbeat's latency observed")


async def test_a_message_both_caught_up_and_dispatched_comes_in_once(world: World) -> None:
    """A message written as a new session starts is in the history the catch-up reads and
    may also be dispatched on the session: whichever comes first brings it, the other not."""
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)
    identifies = discord.identifies
    await discord.invalidate_sessions(resumable=False)
    late = discord.post_silently(external, ADA, "in the history, dispatched late")
    await until(lambda: discord.identifies > identifies, timeout=30, what="a new session")
    [caught] = await chat.received(in_channel(channel), timeout=30)  # by the catch-up
    assert caught["text"] == late["content"]
    # Its dispatch, as the Gateway may still deliver it on the new session.
    await discord.dispatch_message("MESSAGE_CREATE", late)
    await discord.user_sends(external, ADA, "after")
    got = await chat.received(in_channel(channel), count=2, timeout=30)
    assert [v["text"] for v in got] == [late["content"], "after"]
    await asyncio.sleep(0.5)
    await chat.inbound.poll()
    mine = [v["text"] for v in chat.inbound.values() if v["channel_id"] == channel]
    assert mine == [late["content"], "after"]


async def test_a_catch_up_refused_by_kafka_is_tried_again_and_loses_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka does not acknowledge the catch-up's envelopes once: the catch-up is tried
    again from the same point and brings every missed message. (A copy is in the map only
    once its envelope is published, so the retry does not take them for brought in.)"""
    discord, chat = world.discord, world.chat
    _ada(discord)
    external, channel = await world.discord_pair()
    await _connected(world)
    failures = await _metric(world, "hookhub_sync_catch_up_failures_total", provider="discord")
    send_many = PartitionProducer.send_many
    refused: list[int] = []

    async def refuse_once(self: PartitionProducer, topic: str, records: Any, **kw: Any) -> None:
        if not refused and any(b"missed while away" in value for _, value, _ in records):
            refused.append(len(records))
            raise KafkaTimeoutError("not acknowledged within 5 s")  # as the producer says it
        await send_many(self, topic, records, **kw)

    monkeypatch.setattr(PartitionProducer, "send_many", refuse_once)
    identifies = discord.identifies
    await discord.invalidate_sessions(resumable=False)
    missed = [discord.post_silently(external, ADA, f"missed while away {i}") for i in range(2)]
    await until(lambda: discord.identifies > identifies, timeout=30, what="a new session")
    got = await chat.received(in_channel(channel), count=2, timeout=30)
    assert refused == [2]
    assert [v["text"] for v in got] == [m["content"] for m in missed]
    assert (
        await _metric(world, "hookhub_sync_catch_up_failures_total", provider="discord")
        == failures + 1
    )


async def test_a_channel_the_bot_cannot_use_is_refused_with_what_to_grant(world: World) -> None:
    no_webhooks = world.discord_channel(VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY)
    answer = await world.sync.post(
        f"/api/integrations/{world.discord_integration}/mappings",
        json={"external_channel_id": no_webhooks, "channel_id": world.new_id("ch_")},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "channel_not_usable"
    assert "Manage Webhooks" in answer.json()["error"]["message"]
    unknown = await world.sync.post(
        f"/api/integrations/{world.discord_integration}/mappings",
        json={"external_channel_id": "1299999999999999999", "channel_id": world.new_id("ch_")},
        headers=admin_headers(),
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["code"] == "channel_not_usable"


async def test_a_rate_limited_channel_waits_without_delaying_another(world: World) -> None:
    """Discord's bucket for one channel's webhook allows one post in 3 s: that channel's
    posts wait their turn, in order; the other channel's go at once."""
    discord, chat = world.discord, world.chat
    slow, slow_channel = await world.discord_pair()
    fast, fast_channel = await world.discord_pair()
    for channel in (slow_channel, fast_channel):
        await chat.publish(
            "message.created", {"message_id": f"{channel}-0", "channel_id": channel, "text": "0"}
        )
    await until(lambda: discord.messages(slow) and discord.messages(fast), what="first posts")
    [hook] = discord.channel_webhooks(slow)
    discord.set_rate_limit(EXECUTE_WEBHOOK, 1, 3.0, major=hook.id)
    for n in range(1, 4):
        for channel in (slow_channel, fast_channel):
            await chat.publish(
                "message.created",
                {"message_id": f"{channel}-{n}", "channel_id": channel, "text": str(n)},
            )
    await until(lambda: len(discord.messages(fast)) == 4, what="the other channel's posts")
    assert len(discord.messages(slow)) < 4
    await until(lambda: len(discord.messages(slow)) == 4, timeout=30, what="the waiting posts")
    assert [m["content"] for m in discord.messages(slow)] == ["0", "1", "2", "3"]


async def test_no_identify_while_the_session_start_limit_is_spent(world: World) -> None:
    """GET /gateway/bot says no sessions are left (`remaining` 0 until `reset_after`): sync
    waits instead of identifying (Discord would answer each try with an invalid session)."""
    discord = world.discord
    token = "MTIwMDAwMDAwMDAwMDAwMDg5.Glimit.session-start-limit-spent-0000000"
    discord.add_bot(token, "1200000000000000089", "limited", "1200000000000000088")
    spent, discord.session_start_remaining = discord.session_start_remaining, 0
    try:
        integration_id = await connect(world, "discord", bot_token=token)
        calls = discord.gateway_bot_calls
        await world.map(integration_id, world.discord_channel(), world.new_id("ch_"))
        await until(lambda: discord.gateway_bot_calls > calls, what="GET /gateway/bot")
        await asyncio.sleep(1.5)  # sync polls every 0.2 s: an Identify would show by now
        assert discord.refused_identifies(token) == 0
        assert not [s for s in discord.sessions() if s.bot.token == token]
    finally:
        discord.session_start_remaining = spent


async def test_disallowed_intents_put_the_integration_in_error_once(world: World) -> None:
    """A bot without the Message Content intent enabled: 4014, the integration in `error`
    with what to enable, and no reconnect loop."""
    discord = world.discord
    token = "MTIwMDAwMDAwMDAwMDAwMDk5.Gintnt.no-message-content-intent-0000000"
    discord.add_bot(
        token,
        "1200000000000000099",
        "nointent",
        "1200000000000000098",
        message_content_intent=False,
    )
    integration_id = await connect(world, "discord", bot_token=token)
    await world.map(integration_id, world.discord_channel(), world.new_id("ch_"))

    async def in_error() -> Any:
        got = await world.oauth.client.get(
            f"/api/integrations/{integration_id}", headers=admin_headers()
        )
        body = got.json()
        return body if body.get("status") == "error" else None

    body = await until(in_error, what="the integration in error")
    assert "Message Content" in body["last_error"]
    # Nothing more is tried (sync polls every 0.2 s: a reconnect loop would show at once).
    tried = discord.connections_total
    await asyncio.sleep(2)
    assert discord.connections_total == tried
