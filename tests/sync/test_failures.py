"""What goes wrong: channels the bot cannot use, permanent refusals surfacing on the
mapping, edits of messages the map does not know, 429 storms that hold one channel only,
and the mappings API refusing what it cannot honour."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.support import admin_headers
from tests.sync.conftest import TELEGRAM_TOKEN, World, until


async def _create(world: World, integration_id: str, **body: Any) -> Any:
    return await world.sync.post(
        f"/api/integrations/{integration_id}/mappings", json=body, headers=admin_headers()
    )


async def test_a_mapping_is_refused_for_a_channel_the_bot_cannot_use(world: World) -> None:
    missing = await _create(
        world, world.slack_integration, external_channel_id="CNOPE", channel_id="ch_x"
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "channel_not_usable"
    assert "channel_not_found" in missing.json()["error"]["message"]

    outside = world.slack_channel(member=False)
    not_member = await _create(
        world, world.slack_integration, external_channel_id=outside, channel_id="ch_x"
    )
    assert not_member.status_code == 422 and "not_in_channel" in not_member.text

    no_chat = await _create(
        world, world.telegram_integration, external_channel_id="-100404", channel_id="ch_x"
    )
    assert no_chat.status_code == 422 and "chat_not_found" in no_chat.text

    unknown = await _create(world, "int_nope", external_channel_id="C1", channel_id="ch_x")
    assert unknown.status_code == 404

    bad = await _create(world, world.slack_integration, external_channel_id="", channel_id="x")
    assert bad.status_code == 422

    external = world.slack_channel()
    first = await _create(
        world, world.slack_integration, external_channel_id=external, channel_id="ch_a"
    )
    assert first.status_code == 201
    again = await _create(
        world, world.slack_integration, external_channel_id=external, channel_id="ch_b"
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "mapping_exists"


async def test_mappings_are_listed_patched_and_deleted(world: World) -> None:
    external, channel = world.slack_channel(), world.new_id("ch_")
    created = await world.map(world.slack_integration, external, channel, direction="inbound")
    assert (
        created["direction"] == "inbound" and created["external_channel_name"] == external.lower()
    )
    assert created["status"] == "ok" and created["error_count"] == 0
    base = f"/api/integrations/{world.slack_integration}/mappings"

    # Inbound only: a chat message is not posted to Slack (once it reached the channel's
    # other mapping, the mapping was asked).
    other = world.slack_channel()
    await world.map(world.slack_integration, other, channel)
    await world.chat.publish(
        "message.created", {"message_id": "i1", "channel_id": channel, "text": "no"}
    )
    await until(lambda: world.slack.posts(other), what="the post to the other mapping")
    patched = await world.sync.patch(
        f"{base}/{created['id']}", json={"direction": "both"}, headers=admin_headers()
    )
    assert patched.status_code == 200 and patched.json()["direction"] == "both"
    assert (
        await world.sync.patch(
            f"{base}/{created['id']}", json={"enabled": None}, headers=admin_headers()
        )
    ).status_code == 422
    await world.chat.publish(
        "message.created", {"message_id": "i2", "channel_id": channel, "text": "yes"}
    )
    await until(lambda: world.slack.posts(external), what="the post once both ways")
    assert [p["text"] for p in world.slack.posts(external)] == ["yes"]

    page = await world.sync.get(base, params={"limit": 1}, headers=admin_headers())
    assert page.status_code == 200 and len(page.json()["data"]) == 1
    assert page.json()["next_cursor"]

    deleted = await world.sync.delete(f"{base}/{created['id']}", headers=admin_headers())
    assert deleted.status_code == 204
    gone = await world.sync.get(f"{base}/{created['id']}", headers=admin_headers())
    assert gone.status_code == 404
    unauthenticated = await world.sync.get(base)
    assert unauthenticated.status_code == 401


async def test_a_permanent_refusal_is_recorded_on_the_mapping_and_not_retried(
    world: World,
) -> None:
    slack, telegram = world.slack, world.telegram
    external, chat_id = world.slack_channel(), world.telegram_chat()
    channel = world.new_id("ch_")
    slack_mapping = await world.map(world.slack_integration, external, channel)
    telegram_mapping = await world.map(world.telegram_integration, chat_id, channel)

    slack.channels[external].member = False  # the bot was removed from the channel
    telegram.kick(chat_id)
    await world.chat.publish(
        "message.created", {"message_id": "p1", "channel_id": channel, "text": "hello"}
    )

    async def errored(integration_id: str, mapping_id: str) -> Any:
        mapping = await world.mapping(integration_id, mapping_id)
        return mapping if mapping["status"] == "error" else None

    on_slack = await until(lambda: errored(world.slack_integration, slack_mapping["id"]))
    assert on_slack["last_error"]["code"] == "not_in_channel" and on_slack["error_count"] == 1
    on_telegram = await until(lambda: errored(world.telegram_integration, telegram_mapping["id"]))
    assert on_telegram["last_error"]["code"] == "bot_kicked"

    # The integration records it too (after the mapping: the two are written one after the
    # other), and stays connected: its other channels still work.
    async def recorded() -> Any:
        path = f"/api/integrations/{world.slack_integration}"
        found = (await world.oauth.client.get(path, headers=admin_headers())).json()
        return found if found.get("last_error") else None

    integration = await until(recorded, what="the integration's last_error")
    assert integration["status"] == "connected" and "not_in_channel" in integration["last_error"]

    def tries() -> int:
        calls = slack.calls_of("chat.postMessage")
        return len([c for c in calls if c.args["channel"] == external])

    assert tries() == 1

    # Back in the channel: the next message goes, and the mapping is healthy again.
    slack.channels[external].member = True
    await world.chat.publish(
        "message.created", {"message_id": "p2", "channel_id": channel, "text": "again"}
    )
    await until(lambda: slack.posts(external), what="the post after the fix")
    # The first was not tried again: in the channel's lane a retry comes before the next.
    assert tries() == 2 and [p["text"] for p in slack.posts(external)] == ["again"]

    async def healthy() -> Any:
        mapping = await world.mapping(world.slack_integration, slack_mapping["id"])
        return mapping["status"] == "ok" and mapping["last_synced_at"]

    await until(healthy, what="the mapping healthy again")


async def test_edits_and_deletes_of_unknown_messages_are_skipped_never_posted(
    world: World,
) -> None:
    slack = world.slack
    external, channel = await world.slack_pair()
    before = await _metric(world, "hookhub_sync_unknown_messages_total")

    await world.chat.publish(
        "message.updated", {"message_id": "never-sent", "channel_id": channel, "text": "x"}
    )
    await world.chat.publish("message.deleted", {"message_id": "never-sent", "channel_id": channel})
    # Inbound: an edit in Slack of a message from before the mapping.
    slack.channels[external].messages["1600000000.000100"] = {
        "type": "message",
        "user": "U0ADA",
        "text": "old",
        "ts": "1600000000.000100",
    }
    await slack.edit_as_user(external, "1600000000.000100", "old, edited")

    await until(
        lambda: _metric_at_least(world, "hookhub_sync_unknown_messages_total", before + 3),
        what="three unknown messages counted",
    )
    assert slack.posts(external) == []
    assert not [
        c
        for c in slack.calls
        if c.method in ("chat.update", "chat.delete") and c.args.get("channel") == external
    ]
    await world.chat.inbound.poll()
    assert not [v for v in world.chat.inbound.values() if v["channel_id"] == channel]


async def test_a_429_storm_holds_its_channel_only_and_order_is_kept(world: World) -> None:
    slack = world.slack
    stormy, calm = world.slack_channel(), world.slack_channel()
    ch_stormy, ch_calm = world.new_id("ch_"), world.new_id("ch_")
    await world.map(world.slack_integration, stormy, ch_stormy)
    await world.map(world.slack_integration, calm, ch_calm)
    slack.rate_limit("chat.postMessage", channel=stormy, retry_after=1, times=3)

    started = time.monotonic()
    for n in range(5):
        await world.chat.publish(
            "message.created", {"message_id": f"s{n}", "channel_id": ch_stormy, "text": f"s{n}"}
        )
        await world.chat.publish(
            "message.created", {"message_id": f"c{n}", "channel_id": ch_calm, "text": f"c{n}"}
        )
    await until(lambda: len(slack.posts(calm)) == 5, what="the calm channel's posts")
    calm_took = time.monotonic() - started
    # The stormy channel's messages wait, and the queue metrics say so.
    depth = await _metric(world, 'hookhub_sync_queue_depth{provider="slack"}')
    oldest = await _metric(world, 'hookhub_sync_oldest_waiting_seconds{provider="slack"}')
    assert depth >= 1 and oldest > 0
    await until(lambda: len(slack.posts(stormy)) == 5, timeout=30, what="the stormy posts")
    stormy_took = time.monotonic() - started
    assert calm_took < 2.5 < stormy_took  # three 1 s waits in the stormy channel only
    assert [p["text"] for p in slack.posts(stormy)] == [f"s{n}" for n in range(5)]
    assert [p["text"] for p in slack.posts(calm)] == [f"c{n}" for n in range(5)]
    assert await _metric(world, "hookhub_sync_provider_rate_limited_total") >= 3


async def test_telegram_429_parameters_retry_after_is_honoured(world: World) -> None:
    telegram = world.telegram
    chat_id, channel = await world.telegram_pair()
    telegram.rate_limit("sendMessage", chat_id=chat_id, retry_after=1, times=1)
    started = time.monotonic()
    await world.chat.publish(
        "message.created", {"message_id": "r1", "channel_id": channel, "text": "later"}
    )
    await until(lambda: telegram.chats[chat_id].messages, what="the message after the 429")
    assert time.monotonic() - started >= 1.0
    tries = [p for p in telegram.sent() if int(p["chat_id"]) == chat_id]
    assert len(tries) == 2  # the refused one and the one that went


async def _metric(world: World, name: str) -> float:
    """The sum of a metric's samples; `name` may carry its labels (`name{a="b"}`)."""
    text = (await world.sync.get("/metrics")).text
    starts = (name + " ",) if "{" in name else (name + "{", name + " ")
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(starts)
    )


async def _metric_at_least(world: World, name: str, value: float) -> bool:
    return await _metric(world, name) >= value


async def test_a_refusal_of_the_whole_account_puts_the_integration_in_error(world: World) -> None:
    slack = world.slack
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "slack",
            "workspace_id": world.chat.workspace_id,
            "settings": {"bot_token": slack.add_bot_token(), "signing_secret": "s"},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    integration_id = answer.json()["id"]
    external, channel = world.slack_channel(), world.new_id("ch_")
    mapping = await world.map(integration_id, external, channel)
    slack.fail("chat.postMessage", "account_inactive", channel=external)
    await world.chat.publish(
        "message.created", {"message_id": "x1", "channel_id": channel, "text": "hello"}
    )

    async def in_error() -> Any:
        found = (
            await world.oauth.client.get(
                f"/api/integrations/{integration_id}", headers=admin_headers()
            )
        ).json()
        return found if found["status"] == "error" else None

    integration = await until(in_error, what="the integration in error")
    assert "account_inactive" in integration["last_error"]
    assert (await world.mapping(integration_id, mapping["id"]))["status"] == "error"


async def test_two_creates_racing_for_one_channel_make_one_mapping(world: World) -> None:
    external = world.slack_channel()
    answers = await asyncio.gather(
        *(
            _create(world, world.slack_integration, external_channel_id=external, channel_id=c)
            for c in ("ch_race_a", "ch_race_b", "ch_race_c")
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409]
    # Deleted, the channel may be mapped again.
    [created] = [a.json() for a in answers if a.status_code == 201]
    base = f"/api/integrations/{world.slack_integration}/mappings"
    assert (
        await world.sync.delete(f"{base}/{created['id']}", headers=admin_headers())
    ).status_code == 204
    again = await _create(
        world, world.slack_integration, external_channel_id=external, channel_id="ch_race_d"
    )
    assert again.status_code == 201, again.text


async def test_a_telegram_chat_mapped_by_its_username_is_stored_by_its_id(world: World) -> None:
    chat_id = world.telegram_chat("channel")
    world.telegram.chats[chat_id].username = f"news{abs(chat_id)}"
    channel = world.new_id("ch_")
    mapping = await world.map(world.telegram_integration, f"@news{abs(chat_id)}", channel)
    assert mapping["external_channel_id"] == str(chat_id)
    await world.telegram.channel_posts(chat_id, "by the id", token=TELEGRAM_TOKEN)
    [received] = await world.chat.received(lambda v: v["channel_id"] == channel)
    assert received["text"] == "by the id"
