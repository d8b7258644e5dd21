"""Telegram Desktop and DiscordChatExporter exports imported end to end through the HTTP API,
the real broker and MongoDB: each bare and zipped, the ids live sync and the API import
give the same messages, the report, re-imports, a cancelled Telegram import resumed from
its checkpoint, and what is refused before any job."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.importer.sources import exports
from shared.domain.message_map import inbound_message_id
from shared.providers.exports import ExportLimits
from tests.chat_exports import discord_file_name, discord_message, generate_telegram
from tests.importer.conftest import Imports
from tests.importer.test_api import start
from tests.importer.test_jobs import all_arrived, cancel_heard, expected_ids, held_sources
from tests.providers import telegram_exports as tg
from tests.providers.test_discord_export import channel, dce_file, user, zipped
from tests.support import admin_headers
from tests.sync.conftest import (
    DISCORD_BOT_ID,
    DISCORD_GUILD,
    TELEGRAM_BOT_ID,
    TELEGRAM_TOKEN,
    in_channel,
)

AT = int(datetime(2024, 3, 1, 9, 0, tzinfo=UTC).timestamp())
ADA_SENDER = ("Ada Lovelace", "user4001")
GRACE_SENDER = ("Grace Hopper", "user4002")
ADA = {"id": 4001, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"}


async def upload(imports: Imports, path: Path, source: str, **fields: Any) -> dict[str, Any]:
    answer = await send(imports, path, source, **fields)
    assert answer.status_code == 202, answer.text
    job: dict[str, Any] = answer.json()
    return job


async def send(imports: Imports, path: Path, source: str | None, **fields: Any) -> Any:
    data = {"workspace_id": imports.world.chat.workspace_id}
    if source is not None:
        data["source"] = source
    for name, value in fields.items():
        data[name] = value if isinstance(value, str) else orjson.dumps(value).decode()
    with path.open("rb") as file:
        return await imports.api.post(
            "/api/imports",
            data=data,
            files={"file": (path.name, file, "application/octet-stream")},
            headers=admin_headers(),
        )


async def completed(imports: Imports, job: dict[str, Any]) -> dict[str, Any]:
    done = await imports.until(job["id"], "completed", "failed", timeout=120)
    assert done["status"] == "completed", done
    return done


def telegram_supergroup(export_id: int, name: str = "Team chat") -> dict[str, Any]:
    """A supergroup's export with what an import must handle: a service message first,
    plain, formatted and replying messages, a photo, a sticker, reactions, an edit, a pin
    (service), and a record that is not a message object."""
    messages: list[Any] = [
        tg.service(1, "create_group", at=AT, actor=ADA_SENDER, title=name, members=[]),
        tg.message(2, "hello everyone", at=AT + 60, sender=ADA_SENDER),
        tg.message(
            3,
            [
                "see ",
                {"type": "bold", "text": "this"},
                " cc ",
                {"type": "mention", "text": "@grace"},
            ],
            at=AT + 120,
            sender=GRACE_SENDER,
            reactions=[{"type": "emoji", "count": 3, "emoji": "👍"}],
        ),
        tg.message(
            4, "a reply", at=AT + 180, sender=GRACE_SENDER, reply_to_message_id=2, edited=AT + 240
        ),
        "not a message",
        tg.message(
            5,
            "the photo",
            at=AT + 240,
            sender=ADA_SENDER,
            photo="(File not included. Change data exporting settings to download.)",
            width=1280,
            height=720,
        ),
        tg.message(
            6,
            "",
            at=AT + 300,
            sender=ADA_SENDER,
            file="stickers/sticker.webp",
            media_type="sticker",
            sticker_emoji="👍",
            mime_type="image/webp",
        ),
        tg.service(7, "pin_message", at=AT + 360, actor=ADA_SENDER, message_id=2),
    ]
    return tg.chat(name, "public_supergroup", export_id, messages)


def bare(path: Path, chat: dict[str, Any]) -> Path:
    """One chat's `result.json` (Export chat history)."""
    path.write_bytes(tg.chat_export(chat))
    return path


async def test_a_telegram_export_is_imported_bare_then_zipped_with_the_same_ids(
    imports: Imports, tmp_path: Path
) -> None:
    world = imports.world
    export_id = 1_700_000_101
    chat_id = f"-100{export_id}"  # the supergroup as the Bot API (and live sync) names it
    channel = world.new_id("ch_")
    chat = telegram_supergroup(export_id)
    job = await upload(
        imports,
        bare(tmp_path / "result.json", chat),
        "telegram_export",
        channel_map={chat_id: channel},
    )
    assert job["provider"] == "telegram" and job["upload"]["source"] == "telegram_export"
    # The workspace's only Telegram integration: its bot is the account, as live sync has it.
    assert job["integration_id"] == world.telegram_integration
    assert job["upload"]["account"] == str(TELEGRAM_BOT_ID)
    done = await completed(imports, job)

    got = {e["id"]: e for e in await imports.inbox.of_channel(channel, 5)}
    await imports.inbox.settle(0.5)
    got = {e["id"]: e for e in imports.inbox.envelopes if e["channel_id"] == channel}

    def envelope_id(message_id: int) -> str:
        return inbound_message_id("telegram", str(TELEGRAM_BOT_ID), chat_id, str(message_id))

    assert set(got) == {envelope_id(n) for n in (2, 3, 4, 5, 6)}
    first = got[envelope_id(2)]
    assert first["text"] == "hello everyone" and first["imported"] is True
    assert first["author"]["name"] == "Ada Lovelace"
    assert first["source"]["external_channel_id"] == chat_id
    assert first["occurred_at"].startswith("2024-03-01T09:01:00")
    assert "this" in got[envelope_id(3)]["text"] and "@grace" in got[envelope_id(3)]["text"]
    assert got[envelope_id(4)]["thread_id"] == envelope_id(2)
    report = done["report"]
    assert sum(n for k, n in report["by_subtype"].items() if k.startswith("skipped:")) == 2
    assert report["reactions"] == 3
    assert report["quarantined_total"] == 1
    (bad,) = report["quarantined"]
    assert bad["position"] == 4 and bad["external_channel_id"] == chat_id
    assert done["progress"]["messages_imported"] == 5

    # The same chat in the whole account's export, zipped as the export folder, mapped by
    # its name this time: the same envelope ids, none new.
    other = tg.chat("Elsewhere", "private_supergroup", 1_700_000_102, [tg.message(1, "no")])
    account = tg.zip_export(
        tmp_path / "export.zip", tg.account_export([chat, other]), root="DataExport_2024-06-30/"
    )
    again = await completed(
        imports,
        await upload(imports, account, "telegram_export", channel_map={"Team chat": channel}),
    )
    assert [s["name"] for s in again["report"]["skipped_channels"]] == ["Elsewhere"]
    twice = await imports.inbox.of_channel(channel, 10)
    assert {e["id"] for e in twice} == set(got)


async def test_a_telegram_message_synced_live_and_imported_from_an_export_is_one_envelope(
    imports: Imports, tmp_path: Path
) -> None:
    """The same supergroup message, through the bot's webhook and live sync, then from the
    chat's export (mapped by the integration's mapping): one envelope id, `-100` and all."""
    world = imports.world
    chat_id, channel = await world.telegram_pair("supergroup")
    assert str(chat_id).startswith("-100")
    status = await world.telegram.user_sends(chat_id, ADA, "said live", token=TELEGRAM_TOKEN)
    assert status == 200
    [live] = await world.chat.received(in_channel(channel))
    message_id = int(live["source"]["external_message_id"])
    await world.telegram.user_sends(
        chat_id, ADA, "a live reply", reply_to=message_id, token=TELEGRAM_TOKEN
    )
    [live_reply] = await world.chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)

    export_id = int(str(chat_id).removeprefix("-100"))
    said = tg.message(message_id, "said live", at=AT, sender=ADA_SENDER)
    reply = tg.message(
        message_id + 1, "a live reply", at=AT, sender=ADA_SENDER, reply_to_message_id=message_id
    )
    chat = tg.chat(f"chat {chat_id}", "public_supergroup", export_id, [said, reply])
    path = bare(tmp_path / "result.json", chat)
    await completed(imports, await upload(imports, path, "telegram_export"))
    imported = await imports.inbox.of_channel(channel, 2)
    assert {e["id"] for e in imported} == {live["id"], live_reply["id"]}
    by_id = {e["id"]: e for e in imported}
    assert by_id[live_reply["id"]]["thread_id"] == live["id"]


GUILD = {"id": DISCORD_GUILD, "name": "sync tests", "iconUrl": None}


def _discord_export_of(imports: Imports, channel_id: str) -> tuple[str, bytes]:
    """DiscordChatExporter's export of a channel of the Discord fake: its file name and
    its content."""
    messages = []
    for stored in imports.world.discord.messages(channel_id):
        author = stored["author"]
        reference = stored.get("message_reference")
        messages.append(
            discord_message(
                stored["id"],
                datetime.fromisoformat(stored["timestamp"]),
                stored["content"],
                user(author["id"], author["username"], author.get("global_name"), avatar=None),
                "Reply" if reference else "Default",
                reply_to=(reference["message_id"], channel_id, DISCORD_GUILD)
                if reference
                else None,
            )
        )
    chan = channel(channel_id, f"sync-{channel_id[-6:]}")
    return discord_file_name(GUILD, chan), dce_file(messages, chan, GUILD)


async def test_a_discord_export_and_an_api_import_of_a_channel_are_one_set_of_messages(
    imports: Imports, tmp_path: Path
) -> None:
    world = imports.world
    discord = world.discord
    discord.add_user("1300000000000000035", "linus", global_name="Linus")
    external, other = world.discord_channel(), world.discord_channel()
    channel = world.new_id("ch_")
    root = discord.post_silently(external, "1300000000000000035", "first <@1300000000000000035>")
    for n in range(5):
        discord.post_silently(external, "1300000000000000035", f"m{n}")
    reply = discord.post_silently(external, "1300000000000000035", "a reply", reply_to=root["id"])
    # Threads are flat: a reply to the reply is in the thread of the chain's first message.
    discord.post_silently(external, "1300000000000000035", "a reply's reply", reply_to=reply["id"])
    # Nothing to bridge (an embed alone, here not even that): skipped, and the report says why.
    discord.post_silently(external, "1300000000000000035", "")
    discord.post_silently(other, "1300000000000000035", "in the other channel")
    job = await start(
        imports, world.discord_integration, channel_ids=[external], channel_map={external: channel}
    )
    done = await imports.until(job["id"], "completed", "failed")
    assert done["status"] == "completed"
    assert done["report"]["by_subtype"]["skipped:empty"] == 1
    from_api = await imports.inbox.of_channel(channel, 8)
    api_ids = {e["id"] for e in from_api}
    assert len(api_ids) == 8
    root_id = inbound_message_id("discord", DISCORD_BOT_ID, external, root["id"])
    assert {e["text"]: e.get("thread_id") for e in from_api if "reply" in e["text"]} == {
        "a reply": root_id,
        "a reply's reply": root_id,
    }

    name, exported = _discord_export_of(imports, external)
    (tmp_path / name).write_bytes(exported)
    job = await upload(imports, tmp_path / name, "discord_export", channel_map={external: channel})
    # The server's only Discord integration (a bot token's: its account is the bot user, as
    # the API import's and the Gateway's).
    assert job["integration_id"] == world.discord_integration
    assert job["upload"]["account"] == DISCORD_BOT_ID
    assert job["upload"]["guild_id"] == DISCORD_GUILD
    await completed(imports, job)
    both = await imports.inbox.of_channel(channel, 16)
    assert {e["id"] for e in both} == api_ids
    for text in ("a reply", "a reply's reply"):
        assert {e["thread_id"] for e in both if e["text"] == text} == {root_id}

    # Several channels zipped (`exportguild`), mapped by name: the same ids again.
    second_name, second = _discord_export_of(imports, other)
    # With a JSON file of another kind beside them: left out whole, and the report says so.
    guild = zipped(
        tmp_path / "guild.zip", {name: exported, second_name: second, "notes.json": b'{"a": 1}'}
    )
    other_channel = world.new_id("ch_")
    channel_map = {f"sync-{external[-6:]}": channel, f"#sync-{other[-6:]}": other_channel}
    done = await completed(
        imports, await upload(imports, guild, "discord_export", channel_map=channel_map)
    )
    assert done["progress"]["channels_total"] == 2
    assert done["report"]["skipped_files_total"] == 1
    [left_out] = done["report"]["skipped_files"]
    assert left_out["file"] == "notes.json" and "not" in left_out["reason"]
    assert {e["id"] for e in await imports.inbox.of_channel(channel, 24)} == api_ids
    [elsewhere] = await imports.inbox.of_channel(other_channel, 1)
    assert elsewhere["text"] == "in the other channel"


async def test_a_telegram_dry_run_reports_and_publishes_nothing(
    imports: Imports, tmp_path: Path
) -> None:
    channel = imports.world.new_id("ch_")
    path = bare(tmp_path / "result.json", telegram_supergroup(1_700_000_103))
    job = await upload(
        imports, path, "telegram_export", channel_map={"-1001700000103": channel}, dry_run="true"
    )
    done = await completed(imports, job)
    assert done["dry_run"] is True and done["progress"]["messages_imported"] == 5
    assert done["report"]["quarantined_total"] == 1 and done["report"]["reactions"] == 3
    await imports.inbox.settle(1.0)
    assert not [e for e in imports.inbox.envelopes if e["channel_id"] == channel]


async def test_a_cancelled_telegram_import_resumes_from_its_checkpoint(
    imports: Imports, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "export.zip"
    generated = generate_telegram(path, 3_000, 4)
    prefix = imports.world.new_id("ch_") + "_"
    channel_map = {chat: f"{prefix}{n}" for n, chat in enumerate(generated.conversations)}
    export = exports()["telegram_export"].open(path, ExportLimits())
    try:
        ids = expected_ids(export, str(TELEGRAM_BOT_ID))
    finally:
        export.close()
    assert len(ids) == generated.importable
    released = asyncio.Event()
    held = held_sources(imports, monkeypatch, 1_000, released)
    job = await upload(imports, path, "telegram_export", channel_map=channel_map)
    deadline = time.monotonic() + 60
    while not held or (await imports.job(job["id"]))["progress"]["messages_imported"] == 0:
        assert time.monotonic() < deadline, "the job did not start"
        await asyncio.sleep(0.1)
    await asyncio.wait_for(held[0].reached.wait(), 60)
    cancelled = await cancel_heard(imports, job["id"])
    assert 0 < cancelled["progress"]["percent"] < 100
    released.set()
    resumed = await imports.api.post(f"/api/imports/{job['id']}/resume", headers=admin_headers())
    assert resumed.status_code == 202, resumed.text
    await completed(imports, job)
    published = await all_arrived(imports, set(channel_map.values()), ids)
    # From the checkpoint: at most the unacknowledged batch in flight is published twice.
    assert len(published) - len(ids) <= 2 * 200


async def test_what_is_refused_before_any_job(imports: Imports, tmp_path: Path) -> None:
    world = imports.world
    before = await imports.count()
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not an export")
    other_json = tmp_path / "other.json"
    other_json.write_text('{"hello": "world"}')
    chat = telegram_supergroup(1_700_000_104)
    tricky = zipped(tmp_path / "tricky.zip", {"../../result.json": tg.chat_export(chat)})
    slack_ok = bare(tmp_path / "r.json", chat)
    cases: list[tuple[Path, str | None, dict[str, Any], int, str]] = [
        (notes, "telegram_export", {}, 400, "not_an_export_file"),
        (notes, "discord_export", {}, 400, "not_an_export_file"),
        (other_json, "telegram_export", {}, 422, "not_a_telegram_export"),
        (other_json, "discord_export", {}, 422, "not_a_discord_export"),
        (tricky, "telegram_export", {}, 422, "unsafe_member_name"),
        (tricky, "discord_export", {}, 422, "unsafe_member_name"),
        (slack_ok, "whatsapp_export", {}, 422, "invalid_source"),
        (slack_ok, None, {}, 400, "not_a_zip"),  # no source: a Slack export, which is a ZIP
        (
            slack_ok,
            "telegram_export",
            {"integration_id": world.discord_integration},
            422,
            "integration_mismatch",
        ),
    ]
    for path, source, fields, status, code in cases:
        answer = await send(imports, path, source, **fields)
        assert answer.status_code == status, (path.name, source, answer.text)
        assert answer.json()["error"]["code"] == code, answer.text
        if code == "invalid_source":
            message = answer.json()["error"]["message"]
            assert all(name in message for name in exports())
    assert await imports.count() == before


async def test_which_telegram_bot_an_export_is_imported_for(
    imports: Imports, tmp_path: Path
) -> None:
    """Without a bot in the workspace the ids use the account `export`; with two, the one
    named, or the one that maps the chat, else the import is refused naming them."""
    world = imports.world
    workspace = world.new_id("ws_bots_").lower()
    path = bare(tmp_path / "result.json", telegram_supergroup(1_700_000_105))
    alone = await upload(imports, path, "telegram_export", workspace_id=workspace)
    assert alone["integration_id"] is None and alone["upload"]["account"] == "export"

    bots = []
    for n in (1, 2):
        token = f"70000001{n}{n}:AAE-two-bots-{n}-{workspace}"
        world.telegram.add_bot(token, 700000010 + n, f"bot_{n}")
        answer = await world.oauth.client.post(
            "/api/integrations",
            json={"provider": "telegram", "workspace_id": workspace,
                  "settings": {"bot_token": token}},
            headers=admin_headers(),
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        bots.append(answer.json()["id"])
    answer = await send(imports, path, "telegram_export", workspace_id=workspace)
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "integration_required"
    assert all(bot in answer.json()["error"]["message"] for bot in bots)
    named = await upload(
        imports, path, "telegram_export", workspace_id=workspace, integration_id=bots[1]
    )
    assert named["integration_id"] == bots[1] and named["upload"]["account"] == "700000012"
    world.telegram.add_chat(-1001700000105, "supergroup", "Team chat")
    await world.map(bots[0], -1001700000105, world.new_id("ch_"))
    mapped = await upload(imports, path, "telegram_export", workspace_id=workspace)
    assert mapped["integration_id"] == bots[0]
