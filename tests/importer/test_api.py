"""API imports: Slack (conversations.history + .replies, users.list) and Discord
(GET /channels/{id}/messages, guild channels) through the fakes, and what is refused."""

from __future__ import annotations

from typing import Any

from services.sandbox.discord import GET_CHANNEL_MESSAGES
from services.sandbox.slack import TEAM_ID, history_message
from shared.domain.message_map import inbound_message_id
from tests.importer.conftest import Imports
from tests.support import admin_headers
from tests.sync.conftest import DISCORD_BOT_ID, DISCORD_GUILD
from tests.sync.test_discord import WAVE


async def start(imports: Imports, integration_id: str, **body: Any) -> dict[str, Any]:
    answer = await imports.api.post(
        f"/api/integrations/{integration_id}/import", json=body, headers=admin_headers()
    )
    assert answer.status_code == 202, answer.text
    job: dict[str, Any] = answer.json()
    return job


async def test_a_slack_channel_is_imported_through_the_api_with_its_threads(
    imports: Imports,
) -> None:
    world = imports.world
    world.slack.add_user("U0IMPA", "ada", display_name="Ada")
    external = world.slack_channel()
    channel = world.new_id("ch_")
    base = 1709251200
    messages = []
    for n in range(40):
        ts = f"{base + n * 60}.000100"
        messages.append(history_message(ts, "U0IMPA", f"message {n}"))
    root = messages[10]["ts"]
    replies = [
        history_message(f"{base + 10 * 60 + k}.000200", "U0IMPA", f"reply {k}", thread_ts=root)
        for k in range(1, 6)
    ]
    world.slack.add_history(external, messages + replies)
    # Only March 1 and 2 (2024): the messages are all on March 1 UTC.
    job = await start(
        imports,
        world.slack_integration,
        channel_ids=[external],
        channel_map={external: channel},
        start_date="2024-03-01",
        end_date="2024-03-02",
    )
    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    got = {e["id"]: e for e in await imports.inbox.of_channel(channel, 45)}
    assert len(got) == 45
    root_id = inbound_message_id("slack", TEAM_ID, external, root)
    for reply in replies:
        envelope = got[inbound_message_id("slack", TEAM_ID, external, reply["ts"])]
        assert envelope["thread_id"] == root_id and envelope["imported"] is True
    assert got[root_id]["author"]["name"] == "Ada"
    assert done["progress"]["messages_imported"] == 45
    assert done["report"]["channels"][0]["name"] == external.lower()
    # The expected duration: Slack's Tier 3 (the default), 80 % of 50 requests a minute.
    pace = done["report"]["pace"]
    assert pace["tier"] == "tier3" and pace["seconds_per_request"] == 1.5
    assert pace["seconds_per_10000_messages"] == 75  # 50 pages of 200


async def test_a_discord_guild_is_imported_oldest_first_with_replies(imports: Imports) -> None:
    world = imports.world
    discord = world.discord
    discord.add_user("1300000000000000001", "grace", global_name="Grace")
    external, unmapped = world.discord_channel(), world.discord_channel()
    channel = world.new_id("ch_")
    first = discord.post_silently(external, "1300000000000000001", "first")
    posted = [first] + [
        discord.post_silently(external, "1300000000000000001", f"m{n}") for n in range(150)
    ]
    reply = discord.post_silently(external, "1300000000000000001", "a reply", reply_to=first["id"])
    # A message that is only a sticker (the documentation's "Example Sticker" as a sticker
    # item, docs: resources/sticker) is a message too, named and linked.
    sticker = discord.post_silently(external, "1300000000000000001", "", stickers=[WAVE])
    # Two 429s on the history route, and a bucket of 1 page a second: waited out, no page lost.
    discord.rate_limit_next(2, route=GET_CHANNEL_MESSAGES, retry_after=0.3)
    discord.set_rate_limit(GET_CHANNEL_MESSAGES, 1, 1.0, major=external)
    job = await start(
        imports,
        world.discord_integration,
        guild_ids=[DISCORD_GUILD],
        channel_map={external: channel},
    )
    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed", done
    got = await imports.inbox.of_channel(channel, len(posted) + 2)
    ids = [e["source"]["external_message_id"] for e in got]
    # Oldest first, across pages.
    assert ids == [m["id"] for m in posted] + [reply["id"], sticker["id"]]
    account = DISCORD_BOT_ID  # the account of a bot-token integration: the bot user
    by_id = {e["source"]["external_message_id"]: e for e in got}
    assert by_id[reply["id"]]["thread_id"] == inbound_message_id(
        "discord", account, external, first["id"]
    )
    assert by_id[first["id"]]["author"]["name"] == "Grace"
    assert by_id[sticker["id"]]["text"] == "[sticker: Wave]"
    assert [(a["url"], a["name"]) for a in by_id[sticker["id"]]["attachments"]] == [
        ("https://cdn.discordapp.com/stickers/749054660769218631.json", "Wave.json")
    ]
    # The guild's other channels have no map entry and no mapping: skipped and reported.
    assert unmapped in [c["external_channel_id"] for c in done["report"]["skipped_channels"]]
    metrics = (await imports.api.get("/metrics")).text
    assert _metric(metrics, 'hookhub_import_provider_rate_limited_total{provider="discord"}') >= 2
    assert _metric(metrics, 'hookhub_import_pages_total{provider="discord",source="api"}') >= 2
    assert 'hookhub_import_jobs{status="running"}' in metrics
    imported = 'hookhub_import_messages_total{outcome="imported",provider="discord"}'
    assert _metric(metrics, imported) >= len(posted) + 2


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{sample} not in the metrics")


async def test_what_an_api_import_refuses(imports: Imports) -> None:
    world = imports.world
    cases = [
        (world.telegram_integration, {"channel_ids": ["1"]}, 422, "no_history"),
        (world.slack_integration, {}, 422, "invalid_request"),
        (world.slack_integration, {"channel_ids": ["C1"], "guild_ids": ["1"]}, 422, None),
        (
            world.slack_integration,
            {"channel_ids": ["C1"], "start_date": "2024-03-02", "end_date": "2024-03-01"},
            422,
            None,
        ),
        (world.slack_integration, {"channel_ids": ["C1"], "nonsense": 1}, 422, None),
        ("int_missing", {"channel_ids": ["C1"]}, 404, None),
    ]
    for integration_id, body, status, code in cases:
        answer = await imports.api.post(
            f"/api/integrations/{integration_id}/import", json=body, headers=admin_headers()
        )
        assert answer.status_code == status, (body, answer.text)
        if code:
            assert answer.json()["error"]["code"] == code
