"""Exports other people made with Telegram Desktop and DiscordChatExporter (real_exports/,
where each comes from: real_exports/README.md), read and imported as the files stand: a
chat mapped by the id the file writes, a reply written as `Default`, a message exported
twice, stickers, service records counted by type, a report that adds up, and the reasons a
user reads. Where no published export shows a case (a chain of replies whose first message
comes later, a sticker alone, a text beside empty `text_entities`), the export is made with
the shapes the real ones have (tests/providers' generators)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shared.domain.message_map import inbound_message_id
from shared.kernel.zipdir import ZipDirectory
from shared.providers.chat import Attachment, MessageChange
from shared.providers.discord.export import DiscordExport
from shared.providers.exports import ExportRefused, Outline, json_problem
from shared.providers.history import HistoryRecord
from shared.providers.telegram.export import TelegramExport
from tests.importer.conftest import Imports
from tests.importer.test_chat_exports import completed, upload
from tests.providers import telegram_exports as tg
from tests.providers.test_discord_export import (
    channel,
    dce_file,
    dce_message,
    sid,
    zipped,
)

REAL = Path(__file__).parent / "real_exports"
TG_DM = REAL / "telegram" / "DM_2A_7M.json"
TG_ACCOUNT = REAL / "telegram" / "MultiChat_2C_6M.json"
DCE_GROUP = REAL / "discord" / "GC_3A_5M.json"
DCE_SERVER = REAL / "discord" / "SV_5A_5M.json"


def telegram_records(path: Path) -> dict[str, list[HistoryRecord]]:
    with TelegramExport.open(path) as export:
        return {c.id: list(export.records(c)) for c in export.conversations}


def discord_records(path: Path) -> list[HistoryRecord]:
    with DiscordExport.open(path) as export:
        (conversation,) = export.conversations
        return list(export.records(conversation))


def changes(records: list[HistoryRecord]) -> list[MessageChange]:
    return [r.change for r in records if r.change is not None]


def copy(tmp_path: Path, real: Path, cut: bytes) -> Path:
    """The real file cut short just before `cut` (as a failed download leaves one)."""
    data = real.read_bytes()
    path = tmp_path / real.name
    path.write_bytes(data[: data.index(cut)])
    return path


# -- reading the real files ----------------------------------------------------------------------


def test_a_telegram_chat_is_known_by_the_id_its_file_writes_as_well() -> None:
    """A basic group's `"id": 700000002` is `-700000002` to the Bot API; the file's own id
    is kept beside it for `channel_map`. A person's id is the same in both."""
    with TelegramExport.open(TG_ACCOUNT) as export:
        found = {c.name: (c.id, c.aliases) for c in export.conversations}
    assert found == {"Chat One": ("700000001", ()), "Chat Two": ("-700000002", ("700000002",))}


def test_dce_replies_written_as_default_with_a_reference_are_threaded() -> None:
    """GC_3A_5M's last message is `Default` with a `reference` to an earlier message of
    the same channel: a reply, as DiscordChatExporter versions before `Reply` wrote one."""
    by_id = {c.external_message_id: c for c in changes(discord_records(DCE_GROUP))}
    reply = by_id["530805779645595660"]
    assert reply.ignored is None and reply.text == "woah nice :custom_emoji:"
    assert reply.external_thread_id == "1064990824305274930"
    assert by_id["1064990824305274930"].external_thread_id is None
    assert Counter(c.subtype for c in by_id.values() if c.ignored) == Counter(
        {"channel_name_change": 1, "channel_icon_change": 1}
    )


def test_a_default_message_referencing_another_channel_or_forwarding_is_no_reply(
    tmp_path: Path,
) -> None:
    """A crosspost's reference names the source channel, a forward's has type `Forward`:
    neither is a reply."""
    crosspost = dce_message(2, "news", reference=sid(1), reference_channel="1100000000000000099")
    forward = dce_message(3, "", reference=sid(1))
    forward["reference"]["type"] = "Forward"
    forward["content"] = "forwarded"
    path = tmp_path / "general.json"
    path.write_bytes(dce_file([dce_message(1, "one"), crosspost, forward]))
    assert [c.external_thread_id for c in changes(discord_records(path))] == [None, None, None]


def test_a_message_exported_twice_is_one_message_and_stickers_are_named_and_linked() -> None:
    """SV_5A_5M writes 459136077417021488 twice (an edited message): the last copy is the
    message, the first skipped as a duplicate. Its sticker is named and linked."""
    records = discord_records(DCE_SERVER)
    found = changes(records)
    assert [c.external_message_id for c in found if not c.ignored] == [
        "459136077417021488",
        "447793085255123004",
        "447793085255123005",
        "447793085255123006",
    ]
    (first,) = [c for c in found if c.ignored]
    assert first.external_message_id == "459136077417021488" and first.subtype == "duplicate"
    assert found.index(first) == 0  # the earlier copy is the one left out
    sticker = next(c for c in found if c.external_message_id == "447793085255123005")
    assert sticker.text == "[sticker: Laugh]\nThis message has attachments and stickers."
    assert sticker.attachments == (
        Attachment(
            url="https://cdn.discordapp.com/attachments/123/123/unknown.png", name="unknown.png"
        ),
        Attachment(url="https://discord.com/stickers/809207919115239525.png", name="Laugh.png"),
    )


RAW = ("b'", 'b"', "^", "right here", "\n")


def changed(tmp_path: Path, real: Path, old: bytes, new: bytes) -> Path:
    """The real file with one change, at the first place `old` is (as a bad copy or an
    editor leaves one)."""
    data = real.read_bytes()
    assert old in data
    path = tmp_path / real.name
    path.write_bytes(data.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("cut", "the file is cut short (it ends before its JSON does)"),
        ("syntax", "invalid char in json text"),
        ("utf8", "invalid bytes in UTF8 string"),
    ],
)
def test_a_damaged_real_file_is_quarantined_in_the_users_words(
    tmp_path: Path, damage: str, said: str
) -> None:
    """Each real file damaged at its fourth message is read up to there, and the rest is
    quarantined saying what is wrong in words: no bytes repr, no caret diagram."""
    if damage == "cut":
        telegram_path = copy(tmp_path, TG_DM, b'"id": 3662')
        discord_path = copy(tmp_path, DCE_GROUP, b'"id": "1064991070322180096"')
    elif damage == "syntax":
        telegram_path = changed(tmp_path, TG_DM, b'"text": "world?"', b'"text": world?')
        discord_path = changed(tmp_path, DCE_GROUP, b'"content": "hey', b'"content": hey')
    else:
        telegram_path = changed(tmp_path, TG_DM, b'"text": "world?"', b'"text": "w\xff?"')
        discord_path = changed(tmp_path, DCE_GROUP, b'"content": "hey', b'"content": "h\xff')
    telegram = telegram_records(telegram_path)["700000000"]
    discord = discord_records(discord_path)
    for records in (telegram, discord):
        assert len(changes(records)) == 3
        last = records[-1].quarantined
        assert last is not None, records[-1]
        assert said in last.reason, last.reason
        for raw in RAW:
            assert raw not in last.reason, last.reason


def test_a_real_dce_file_broken_before_its_messages_is_refused_in_the_users_words(
    tmp_path: Path,
) -> None:
    path = changed(tmp_path, DCE_GROUP, b'"name": "a group chat"', b'"name": a group chat')
    with pytest.raises(ExportRefused) as caught:
        DiscordExport.open(path)
    reason = caught.value.message
    assert reason.startswith("the file is not a DiscordChatExporter JSON export: it is not valid")
    assert "invalid char in json text" in reason
    for raw in RAW:
        assert raw not in reason, reason


# -- made in the real files' shapes --------------------------------------------------------------


def test_telegram_text_beside_empty_text_entities_is_imported(tmp_path: Path) -> None:
    """Some exports write a message's `text` (a string, or a list of parts) with
    `text_entities: []`: the text is the message."""
    messages = [
        {**tg.message(1, "plain words", entities=False), "text_entities": []},
        {**tg.message(2, ["see ", {"type": "bold", "text": "this"}], entities=False)},
        {**tg.message(3, "", entities=False), "text_entities": []},
    ]
    messages[1]["text_entities"] = []
    path = tmp_path / "result.json"
    path.write_bytes(tg.chat_export(tg.chat("Team", "private_supergroup", 1_700_000_001, messages)))
    (records,) = telegram_records(path).values()
    found = changes(records)
    assert [(c.text, c.ignored) for c in found[:2]] == [
        ("plain words", None),
        ("see **this**", None),
    ]
    # What is left skipped says so, under a name of its own.
    assert found[2].subtype == "empty" and found[2].ignored


def test_a_telegram_sticker_alone_is_a_message_named_and_linked(tmp_path: Path) -> None:
    """A sticker with its file in the export (linked), with tdesktop's note that it was
    not exported, and with no `file` written at all: each a message naming the sticker."""
    messages = [
        tg.message(1, media_type="sticker", file="stickers/sticker.webp", sticker_emoji="🔥"),
        tg.message(
            2,
            media_type="sticker",
            file="(File not included. Change data exporting settings to download.)",
            sticker_emoji="👍",
        ),
        tg.message(3, media_type="sticker", sticker_emoji="😴"),
    ]
    path = tmp_path / "result.json"
    path.write_bytes(tg.chat_export(tg.chat("Team", "private_supergroup", 1_700_000_001, messages)))
    (records,) = telegram_records(path).values()
    found = changes(records)
    assert [(c.text, c.subtype, c.ignored) for c in found] == [
        ("\\[sticker: 🔥\\]", "sticker", None),  # as live sync writes it: literal
        ("\\[sticker: 👍\\]", "sticker", None),
        ("\\[sticker: 😴\\]", "sticker", None),
    ]
    assert [a.url for a in found[0].attachments] == ["stickers/sticker.webp"]
    assert found[1].attachments == found[2].attachments == ()


def test_a_discord_sticker_alone_downloaded_with_the_export_links_to_discord(
    tmp_path: Path,
) -> None:
    """With `--media`, DCE writes the sticker's `sourceUrl` as the downloaded file's path:
    the link is then the sticker's address on Discord's CDN, by its id and format."""
    stickers = [
        {
            "id": "904215665597120572",
            "name": "rock",
            "format": "Lottie",
            "sourceUrl": "f_Files/x.json",
        }
    ]
    path = tmp_path / "general.json"
    path.write_bytes(dce_file([dce_message(1, "", stickers=stickers)]))
    (change,) = changes(discord_records(path))
    assert (change.text, change.ignored) == ("[sticker: rock]", None)
    assert change.attachments == (
        Attachment(
            url="https://cdn.discordapp.com/stickers/904215665597120572.json", name="rock.json"
        ),
    )


def test_telegram_threads_are_flat_whatever_comes_first(tmp_path: Path) -> None:
    """A reply to a reply is in the thread of the chain's first message, found through
    replies written before or after it; a reply to a message the chat does not hold is in
    that message's thread."""
    messages = [
        tg.message(10, "a reply to a reply, before both", reply_to_message_id=12),
        tg.message(11, "the first message"),
        tg.message(12, "a reply to the first", reply_to_message_id=11),
        tg.message(13, "a reply to the reply", reply_to_message_id=12),
        tg.message(14, "a reply to a message not exported", reply_to_message_id=3),
        tg.message(15, "a reply to that", reply_to_message_id=14),
    ]
    path = tmp_path / "result.json"
    path.write_bytes(tg.chat_export(tg.chat("Team", "private_supergroup", 1_700_000_001, messages)))
    (records,) = telegram_records(path).values()
    threads = {c.external_message_id: c.external_thread_id for c in changes(records)}
    assert threads == {"10": "11", "11": None, "12": "11", "13": "11", "14": "3", "15": "3"}


def test_discord_threads_are_flat_across_the_files_of_a_partitioned_export(
    tmp_path: Path,
) -> None:
    """A channel exported in two partitions: replies in the first file whose chain starts
    in the second, and the other way round, all in the thread of the chain's first
    message."""
    first = [
        dce_message(1, "root"),
        dce_message(2, "reply to root", kind="Reply", reference=sid(1)),
        dce_message(3, "reply to a later reply", kind="Reply", reference=sid(5)),
    ]
    second = [
        dce_message(4, "reply to the reply", kind="Reply", reference=sid(2)),
        dce_message(5, "written as Default", reference=sid(4)),
    ]
    path = zipped(
        tmp_path / "guild.zip",
        {
            "general [1].json": dce_file(first, channel()),
            "general [1] [part 2].json": dce_file(second, channel()),
        },
    )
    records = discord_records(path)
    threads = {c.external_message_id: c.external_thread_id for c in changes(records)}
    assert threads == {sid(1): None, sid(2): sid(1), sid(3): sid(1), sid(4): sid(1), sid(5): sid(1)}


def test_the_outline_keeps_its_bound() -> None:
    """Past its bound the first pass keeps nothing more: later replies are threaded under
    their chain as far as it is known, and every copy of a later message is kept."""
    outline = Outline(limit=3)
    for message_id, parent in ((1, None), (2, 1), (3, 2), (4, 3), (1, None)):
        outline.add(message_id, parent)
    outline.seal()
    assert outline.full
    assert (outline.root(3), outline.root(4), outline.root(2)) == (1, 4, 1)
    assert outline.kept(1, 0) and outline.kept(1, 4)


# -- imported through the stack --------------------------------------------------------------------


def report_adds_up(done: dict[str, Any], records: int, published: int) -> None:
    """`imported` is what was published; every record is imported, skipped (counted by its
    type) or quarantined."""
    progress, report = done["progress"], done["report"]
    skipped = {k: n for k, n in report["by_subtype"].items() if k.startswith("skipped:")}
    imported = {k: n for k, n in report["by_subtype"].items() if not k.startswith("skipped:")}
    assert progress["messages_imported"] == sum(imported.values()) == published
    assert progress["messages_skipped"] == sum(skipped.values())
    total = progress["messages_imported"] + progress["messages_skipped"]
    assert total + progress["messages_quarantined"] == records


async def test_a_real_telegram_account_export_mapped_by_the_files_ids(
    imports: Imports,
) -> None:
    """MultiChat_2C_6M as it stands: the basic group mapped by `700000002` as the file
    writes it (the Bot API's `-700000002` is its id), the person's chat by its name; the
    report says which key matched each, counts the call under `skipped:phone_call`, and
    adds up."""
    world = imports.world
    one, two = world.new_id("ch_"), world.new_id("ch_")
    job = await upload(
        imports, TG_ACCOUNT, "telegram_export", channel_map={"700000002": two, "Chat One": one}
    )
    done = await completed(imports, job)
    report = done["report"]
    assert report["skipped_channels"] == []
    matched = {
        row["external_channel_id"]: (row["channel_id"], row["matched"])
        for row in report["channels"]
    }
    assert matched == {
        "700000001": (one, "channel_map:Chat One"),
        "-700000002": (two, "channel_map:700000002"),
    }
    assert report["by_subtype"]["skipped:phone_call"] == 1
    got = await imports.inbox.of_channel(one, 2) + await imports.inbox.of_channel(two, 3)
    await imports.inbox.settle(0.5)
    published = [e for e in imports.inbox.envelopes if e["channel_id"] in (one, two)]
    assert len(published) == len(got) == 5
    account = job["upload"]["account"]
    assert {e["id"] for e in published if e["channel_id"] == two} == {
        inbound_message_id("telegram", account, "-700000002", n) for n in ("2001", "2002", "2004")
    }
    report_adds_up(done, records=6, published=len(published))


async def test_a_real_discord_export_with_a_message_twice_publishes_it_once(
    imports: Imports,
) -> None:
    """SV_5A_5M as it stands: five records, one message written twice. Four envelopes, the
    report's `imported` four, the earlier copy counted as `skipped:duplicate`."""
    world = imports.world
    target = world.new_id("ch_")
    job = await upload(
        imports, DCE_SERVER, "discord_export", channel_map={"general-chiptune": target}
    )
    done = await completed(imports, job)
    got = await imports.inbox.of_channel(target, 4)
    await imports.inbox.settle(0.5)
    published = [e for e in imports.inbox.envelopes if e["channel_id"] == target]
    assert len(published) == len(got) == 4
    assert len({e["id"] for e in published}) == 4
    assert done["report"]["by_subtype"]["skipped:duplicate"] == 1
    assert done["report"]["channels"][0]["matched"] == "channel_map:general-chiptune"
    assert any("[sticker: Laugh]" in e["text"] for e in published)
    report_adds_up(done, records=5, published=len(published))


def test_the_real_files_are_the_ones_the_readme_names() -> None:
    """Every file here is listed in the README, with where it comes from."""
    readme = (REAL / "README.md").read_text()
    for path in REAL.rglob("*.json"):
        assert str(path.relative_to(REAL)) in readme, path
        json.loads(path.read_bytes())


async def test_a_reply_before_its_chain_reaches_the_chat_in_its_first_messages_thread(
    imports: Imports, tmp_path: Path
) -> None:
    """Through the stack: a reply to a reply written before both (its parent and the
    chain's first message come later in the file) has the first message's envelope id as
    its `thread_id`, as the reply to it does."""
    world = imports.world
    target = world.new_id("ch_")
    messages = [
        tg.message(10, "a reply to a reply, before both", reply_to_message_id=12),
        tg.message(11, "the first message"),
        tg.message(12, "a reply to the first", reply_to_message_id=11),
    ]
    path = tmp_path / "result.json"
    path.write_bytes(tg.chat_export(tg.chat("Team", "private_supergroup", 1_700_000_201, messages)))
    job = await upload(imports, path, "telegram_export", channel_map={"-1001700000201": target})
    await completed(imports, job)
    got = {e["text"]: e for e in await imports.inbox.of_channel(target, 3)}
    first = got["the first message"]
    assert "thread_id" not in first
    assert got["a reply to a reply, before both"]["thread_id"] == first["id"]
    assert got["a reply to the first"]["thread_id"] == first["id"]


def test_the_outline_finds_copies_among_the_messages_out_of_order() -> None:
    """A second copy comes with an id not larger than those before it; a message merely out
    of order (6 after 7) is no copy."""
    outline = Outline()
    for message_id in (5, 7, 6, 9, 7, 10, None):
        outline.add(message_id)
    outline.seal()
    assert not outline.kept(7, 1) and outline.kept(7, 4)
    assert all(outline.kept(m, at) for m, at in ((5, 0), (6, 2), (9, 3), (10, 5)))


def test_a_zipped_account_export_is_inflated_once_per_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each chat of a zipped account export is read twice (its first pass, then its
    messages), each pass going on from chat to chat on its own stream: reading every chat
    inflates `result.json` twice, not once per chat."""
    chats = [
        tg.chat(
            f"Team {n}",
            "private_supergroup",
            1_700_000_300 + n,
            [
                tg.message(
                    100 * n + 1, "a reply before its parent", reply_to_message_id=100 * n + 3
                ),
                tg.message(100 * n + 2, "the first message"),
                tg.message(100 * n + 3, "a reply", reply_to_message_id=100 * n + 2),
            ],
        )
        for n in range(1, 4)
    ]
    path = tg.zip_export(tmp_path / "export.zip", tg.account_export(chats))
    inflations = []
    real_pieces = ZipDirectory.pieces

    def pieces(self: ZipDirectory, member: int) -> Any:
        inflations.append(member)
        return real_pieces(self, member)

    with TelegramExport.open(path) as export:
        monkeypatch.setattr(ZipDirectory, "pieces", pieces)
        threads = [
            [c.external_thread_id for c in changes(list(export.records(conversation)))]
            for conversation in export.conversations
        ]
    assert threads == [[str(100 * n + 2), None, str(100 * n + 2)] for n in range(1, 4)]
    assert len(inflations) == 2


def test_a_parsers_error_is_said_in_words_whatever_form_it_comes_in() -> None:
    """yajl's message comes as text, as bytes, or as the repr of bytes (ijson's backends
    differ): each is its first line, without the diagram."""
    diagram = "parse error: premature EOF\n                 \n   (right here) ------^\n"
    for error in (
        ValueError(diagram),
        ValueError(diagram.encode()),
        ValueError(repr(diagram.encode())),
    ):
        assert json_problem(error, 4096) == (
            "not valid JSON before byte 4096: the file is cut short (it ends before its JSON does)"
        )
    bad = b'{"a": "\xff"}'
    try:
        bad.decode()
    except UnicodeDecodeError as error:
        assert (
            json_problem(error) == "not valid JSON: a byte that is not UTF-8 (invalid start byte)"
        )
