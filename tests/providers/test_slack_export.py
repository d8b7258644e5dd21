"""The Slack export ZIP reader (shared/providers/slack/export.py) on exports made with
tests/slack_export.py: what is refused at open, how each kind of record reads, what is
quarantined, resuming from a checkpoint, and memory on a generated export."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shared.domain.message_map import inbound_message_id
from shared.kernel.zipdir import ZipDirectory
from shared.providers.chat import Attachment, Author
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.slack.export import ExportLimits, ExportRefused, SlackExport
from tests.memory import Watch
from tests.slack_export import TEAM_ID, ExportBuilder, message, slack_file, zip64_directory

DAY1, DAY2, DAY3 = "2024-03-01", "2024-03-02", "2024-03-03"
# Slack ts of moments on those days (UTC).
T1, T2, T3 = "1709280000", "1709366400", "1709452800"


def ts(day: str, n: int) -> str:
    return f"{day}.{n:06d}"


def read(export: SlackExport, conversation: Conversation, **kwargs: Any) -> list[HistoryRecord]:
    return list(export.records(conversation, **kwargs))


def by_name(export: SlackExport, name: str) -> Conversation:
    return next(c for c in export.conversations if c.name == name)


@pytest.fixture
def builder() -> ExportBuilder:
    found = ExportBuilder()
    found.add_user("U0000000001", "alice", real_name="Alice Liddell", display_name="alice")
    found.add_user("U0000000002", "bob", real_name="Bob Marley")
    return found


# -- refused at open -----------------------------------------------------------------------------


def refused(path: Path, limits: ExportLimits | None = None) -> ExportRefused:
    with pytest.raises(ExportRefused) as caught:
        SlackExport.open(path, limits)
    return caught.value


@pytest.mark.parametrize("content", [b"", b"channels.json", b"PK\x03\x04 not really a zip"])
def test_a_file_that_is_not_a_zip_is_refused_with_400(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "export.zip"
    path.write_bytes(content)
    error = refused(path)
    assert (error.code, error.status) == ("not_a_zip", 400)


def test_a_zip_without_channels_json_is_refused(tmp_path: Path, builder: ExportBuilder) -> None:
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "hi"))
    builder.omit("channels.json")
    error = refused(builder.write(tmp_path / "export.zip"))
    assert (error.code, error.status) == ("no_channels_json", 422)
    assert "channels.json" in error.message


@pytest.mark.parametrize(
    ("member", "content"),
    [
        ("channels.json", b'{"id": "C1"}'),
        ("channels.json", b'[{"id": "C1", "name": "general"}, "general"]'),
        ("channels.json", b'[{"name": "general"}]'),
        ("channels.json", b"[{"),
        ("channels.json", b"[" * 100_000 + b"]" * 100_000),
        ("users.json", b'{"members": []}'),
        ("groups.json", b"\xff\xfe not json"),
    ],
)
def test_an_index_file_that_is_not_an_array_of_objects_is_refused(
    tmp_path: Path, member: str, content: bytes
) -> None:
    out = ExportBuilder()
    out.omit(member)
    out.raw(member, content)
    error = refused(out.write(tmp_path / "export.zip"))
    assert error.code == "malformed_index"
    assert member in error.message


@pytest.mark.parametrize(
    "member",
    [
        "/etc/passwd",
        "../outside.json",
        "general/../../outside.json",
        "general/..",
        "general\\2024-03-01.json",
        "..\\..\\windows\\system.ini",
        "C:/Windows/evil.json",
        "c:evil.json",
        "general/2024-03-01.json\x00.txt",
        "gene\nral/2024-03-01.json",
        "a" * 2000,
        "general/" + "é" * 200 + ".json",
    ],
)
def test_member_names_with_path_tricks_are_refused_naming_the_member(
    tmp_path: Path, builder: ExportBuilder, member: str
) -> None:
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "hi"))
    builder.raw(member, b"[]")
    error = refused(builder.write(tmp_path / "export.zip"))
    assert (error.code, error.status) == ("unsafe_member_name", 422)
    assert repr(member)[1:20] in error.message


def test_a_member_written_twice_is_refused(tmp_path: Path, builder: ExportBuilder) -> None:
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "hi"))
    builder.raw(f"general/{DAY1}.json", b"[]")
    error = refused(builder.write(tmp_path / "export.zip"))
    assert error.code == "unsafe_member_name"
    assert "twice" in error.message


def twenty_days(builder: ExportBuilder, path: Path) -> Path:
    """An export of 22 members: 20 day files, channels.json, users.json."""
    general = builder.add_channel("general")
    for day in range(1, 21):
        builder.add_message(general, f"2024-03-{day:02d}", message(ts(T1, day), "hi"))
    return builder.write(path)


def test_too_many_members_are_refused_before_the_directory_is_read(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    path = twenty_days(builder, tmp_path / "export.zip")
    error = refused(path, ExportLimits(max_members=20))
    assert error.code == "too_many_members"
    assert "22 members" in error.message  # 20 day files, channels.json, users.json
    with SlackExport.open(path, ExportLimits(max_members=22)) as export:
        assert len(export.day_files(by_name(export, "general"))) == 20


def test_an_export_over_the_size_limit_is_refused(tmp_path: Path, builder: ExportBuilder) -> None:
    general = builder.add_channel("general")
    for n in range(50):
        builder.add_message(general, DAY1, message(ts(T1, n), "hello " * 20))
    path = builder.write(tmp_path / "export.zip")
    size = sum(info.file_size for info in zipfile.ZipFile(path).infolist())
    error = refused(path, ExportLimits(max_uncompressed_bytes=size - 1))
    assert error.code == "export_too_large"
    SlackExport.open(path, ExportLimits(max_uncompressed_bytes=size)).close()


def test_a_zip_bomb_member_is_refused_with_the_default_limits(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "hi"))
    builder.bomb(f"general/{DAY2}.json", 8 * 2**20)  # 8 MiB of zeros: about 1000:1
    error = refused(builder.write(tmp_path / "export.zip"))
    assert error.code == "zip_bomb"
    assert f"general/{DAY2}.json" in error.message


def test_a_well_compressed_small_member_is_not_a_bomb(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    """Under the ratio floor (1 MiB) any ratio is fine: small JSON compresses well too."""
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "hi"))
    builder.bomb("general/notes.bin", 2**20 - 1)
    with SlackExport.open(builder.write(tmp_path / "export.zip")) as export:
        assert len(read(export, by_name(export, "general"))) == 1


# -- the index -----------------------------------------------------------------------------------


def test_conversations_from_all_index_files_with_their_folders(tmp_path: Path) -> None:
    out = ExportBuilder()
    general = out.add_channel("general", channel_id="C01", members=["U1", "U2"])
    secret = out.add_channel("secret", kind="group", channel_id="G01")
    dm = out.add_channel(None, kind="dm", channel_id="D01", members=["U1", "U2"])
    mpim = out.add_channel("mpdm-a--b--c-1", kind="mpim", channel_id="G02")
    by_id = out.add_channel("renamed", channel_id="C02")  # a tool that names folders by id
    out.add_channel("empty", channel_id="C03")  # listed, no folder
    for n, (channel, folder) in enumerate(
        [(general, None), (secret, None), (dm, None), (mpim, None), (by_id, "C02")]
    ):
        out.add_message(folder or channel, DAY1, message(ts(T1, n), f"in {channel['id']}"))
    out.raw("general/notes.txt", b"not a day file")
    out.raw("general/2024-3-1.json", b"not a day file either")
    out.raw(f"general/attachments/{DAY1}.json", b"nor this")
    out.raw("integration_logs.json", b'{"logs": []}')
    with SlackExport.open(out.write(tmp_path / "export.zip")) as export:
        kinds = {c.id: (c.name, c.kind) for c in export.conversations}
        assert kinds == {
            "C01": ("general", "channel"),
            "C02": ("renamed", "channel"),
            "C03": ("empty", "channel"),
            "G01": ("secret", "group"),
            "D01": ("D01", "dm"),
            "G02": ("mpdm-a--b--c-1", "mpim"),
        }
        assert by_name(export, "general").members == ("U1", "U2")
        texts = {
            c.id: [r.change.text for r in read(export, c) if r.change] for c in export.conversations
        }
        assert texts == {
            "C01": ["in C01"],
            "G01": ["in G01"],
            "D01": ["in D01"],
            "G02": ["in G02"],
            "C02": ["in C02"],
            "C03": [],
        }
        assert export.day_files(by_name(export, "general")) == [f"general/{DAY1}.json"]
        assert export.size(by_name(export, "empty")) == 0


def test_users_and_the_team(tmp_path: Path) -> None:
    out = ExportBuilder(team_id="T0ACME")
    out.add_user("U1", "alice", real_name="Alice Liddell", display_name="Al")
    out.add_user("U2", "bob", real_name="Bob Marley", image_72="https://img.example/bob.png")
    out.add_user("U3", "carol", real_name="", display_name="", profile={})
    with SlackExport.open(out.write(tmp_path / "export.zip")) as export:
        assert export.team_id == "T0ACME"
        assert export.users() == {
            "U1": Author("Al", "https://avatars.example/U1_72.png", "U1"),
            "U2": Author("Bob Marley", "https://img.example/bob.png", "U2"),
            "U3": Author("carol", None, "U3"),
        }


def test_grid_org_users_json(tmp_path: Path) -> None:
    """Enterprise Grid exports list people in org_users.json, not users.json."""
    out = ExportBuilder(team_id="T0GRID")
    out.add_user("W1", "alice", grid=True, enterprise_user={"enterprise_id": "E1", "teams": []})
    out.add_user("W2", "bob", grid=True)
    out.omit("users.json")
    general = out.add_channel("general")
    out.add_message(general, DAY1, message(ts(T1, 1), "hi", "W1", team="T0GRID"))
    path = out.write(tmp_path / "export.zip")
    assert "users.json" not in zipfile.ZipFile(path).namelist()
    with SlackExport.open(path) as export:
        assert set(export.users()) == {"W1", "W2"}
        assert export.users()["W1"].name == "Alice"
        assert export.team_id == "T0GRID"


def test_the_team_from_messages_when_no_user_names_it(tmp_path: Path) -> None:
    out = ExportBuilder()
    general = out.add_channel("general")
    out.add_message(general, DAY1, message(ts(T1, 1), "hi", team="T0FROMMSG"))
    with SlackExport.open(out.write(tmp_path / "export.zip")) as export:
        assert export.team_id == "T0FROMMSG"


def test_an_export_zipped_again_inside_a_folder(tmp_path: Path, builder: ExportBuilder) -> None:
    builder.root = "Acme Slack export Mar 1 2024 - Mar 3 2024/"
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "hi"))
    with SlackExport.open(builder.write(tmp_path / "export.zip")) as export:
        assert [r.change.text for r in read(export, by_name(export, "general")) if r.change] == [
            "hi"
        ]


@pytest.mark.parametrize("name", ["général", "日本語", "café-crème"])
def test_member_names_without_the_utf8_flag_are_decoded_as_utf8(tmp_path: Path, name: str) -> None:
    """Slack writes UTF-8 names without the ZIP's UTF-8 flag; zipfile reads them as cp437."""
    out = ExportBuilder(utf8_flag=False)
    channel = out.add_channel(name)
    out.add_message(channel, DAY1, message(ts(T1, 1), f"bonjour {name}"))
    path = out.write(tmp_path / "export.zip")
    mangled = f"{name}/{DAY1}.json".encode().decode("cp437")
    assert mangled in zipfile.ZipFile(path).namelist()  # what a naive reader would see
    with SlackExport.open(path) as export:
        conversation = by_name(export, name)
        assert export.day_files(conversation) == [f"{name}/{DAY1}.json"]
        records = read(export, conversation)
        assert [r.change.text for r in records if r.change] == [f"bonjour {name}"]
        assert records[0].checkpoint == {"file": f"{name}/{DAY1}.json", "index": 0}


# -- records -------------------------------------------------------------------------------------


def test_threads_whose_replies_sit_in_later_and_earlier_day_files(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    general = builder.add_channel("general", channel_id="C0GENERAL")
    root = ts(T1, 100)
    builder.add_message(
        general, DAY1, message(root, "root", reply_count=2, replies=[], thread_ts=root)
    )
    builder.add_message(general, DAY2, message(ts(T2, 1), "later", thread_ts=root))
    builder.add_message(general, DAY3, message(ts(T3, 1), "much later", thread_ts=root))
    # A reply written in the day file before its root's (the root's day is later).
    late_root = ts(T3, 50)
    builder.add_message(general, DAY2, message(ts(T3, 51), "early", thread_ts=late_root))
    builder.add_message(general, DAY3, message(late_root, "late root", thread_ts=late_root))
    with SlackExport.open(builder.write(tmp_path / "export.zip")) as export:
        changes = {
            r.change.text: r.change for r in read(export, by_name(export, "general")) if r.change
        }
    assert changes["root"].external_thread_id is None
    assert changes["late root"].external_thread_id is None
    assert changes["later"].external_thread_id == root
    assert changes["much later"].external_thread_id == root
    assert changes["early"].external_thread_id == late_root
    # A reply's thread envelope id is its root's envelope id: no lookup needed.
    thread = changes["early"].external_thread_id
    assert thread is not None
    assert inbound_message_id("slack", TEAM_ID, "C0GENERAL", thread) == inbound_message_id(
        "slack", TEAM_ID, "C0GENERAL", changes["late root"].external_message_id
    )


def test_each_kind_of_message_by_the_import_policy(tmp_path: Path, builder: ExportBuilder) -> None:
    general = builder.add_channel("general")
    root = ts(T1, 1)
    records = [
        message(root, "root", thread_ts=root, reply_count=1),
        message(
            ts(T1, 2),
            "also in the channel",
            subtype="thread_broadcast",
            thread_ts=root,
            root={"ts": root, "text": "root"},
        ),
        message(
            ts(T1, 3),
            "build 42 passed",
            None,
            subtype="bot_message",
            bot_id="B0CI",
            username="CI",
            icons={"image_48": "https://ci.example/48.png"},
        ),
        message(ts(T1, 4), "waves", subtype="me_message"),
        message(
            ts(T1, 5),
            "the report",
            subtype="file_share",
            files=[slack_file("F1", "report.pdf", "application/pdf")],
        ),
        message(ts(T1, 6), "", subtype="file_share", file=slack_file("F2", "old.png"), upload=True),
        message(ts(T1, 7), "fixed typo", edited={"user": "U0000000001", "ts": ts(T1, 99)}),
        message(ts(T1, 8), "This message was deleted.", "USLACKBOT", subtype="tombstone"),
        message(ts(T1, 9), "<@U0000000002> has joined the channel", subtype="channel_join"),
        message(ts(T1, 10), "set the topic", subtype="channel_topic"),
        message(
            ts(T1, 11),
            "popular",
            reactions=[
                {"name": "tada", "users": ["U1", "U2", "U3"], "count": 3},
                {"name": "eyes", "users": ["U1"]},
            ],
        ),
    ]
    for record in records:
        builder.add_message(general, DAY1, record)
    with SlackExport.open(builder.write(tmp_path / "export.zip")) as export:
        found = read(export, by_name(export, "general"))
    assert all(r.quarantined is None for r in found)
    changes = [r.change for r in found if r.change]
    assert [(c.subtype, c.ignored) for c in changes] == [
        (None, None),
        ("thread_broadcast", None),
        ("bot_message", None),
        ("me_message", None),
        ("file_share", None),
        ("file_share", None),
        (None, None),
        ("tombstone", "tombstone"),
        ("channel_join", "channel_join"),
        ("channel_topic", "channel_topic"),
        (None, None),
    ]
    assert all(c.kind == "created" and c.external_channel_id == "C0000000001" for c in changes)
    broadcast, bot, _, files, legacy, edited = changes[1:7]
    assert broadcast.external_thread_id == root
    assert bot.author == Author("CI", "https://ci.example/48.png", "B0CI")
    assert bot.sender.is_bot
    assert files.attachments == (
        Attachment(
            "https://example.slack.com/files/U0000000001/F1/report.pdf",
            "report.pdf",
            "application/pdf",
        ),
    )
    assert [a.name for a in legacy.attachments] == ["old.png"]
    assert edited.text == "fixed typo"
    assert changes[0].occurred_at.timestamp() == float(root)
    assert [r.reactions for r in found] == [0] * 10 + [4]


def test_malformed_records_are_quarantined_and_their_neighbours_read(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    general = builder.add_channel("general")
    for record in [
        message(ts(T1, 1), "first"),
        "a string",
        {"type": "message", "text": "no ts"},
        {"type": "message", "text": "a number ts", "ts": 1709280000.5},
        {"type": "message", "text": "a bad ts", "ts": "yesterday"},
        [1, 2],
        None,
        message(ts(T1, 2), "last"),
    ]:
        builder.add_message(general, DAY1, record)
    with SlackExport.open(builder.write(tmp_path / "export.zip")) as export:
        found = read(export, by_name(export, "general"))
    member = f"general/{DAY1}.json"
    assert [r.change.text for r in found if r.change] == ["first", "last"]
    quarantined = [r.quarantined for r in found if r.quarantined]
    assert [(q.file, q.position) for q in quarantined] == [(member, n) for n in range(1, 7)]
    assert "not a JSON object but a string" in quarantined[0].reason
    assert "no valid ts" in quarantined[1].reason
    assert [r.checkpoint for r in found] == [{"file": member, "index": n} for n in range(8)]
    assert [r.page_start for r in found] == [True] + [False] * 7


def test_day_files_that_cannot_be_read_are_quarantined_whole(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    general = builder.add_channel("general")
    builder.add_message(general, "2024-03-01", message(ts(T1, 1), "day 1"))
    builder.raw("general/2024-03-02.json", b'{"not": "an array"}')
    builder.raw("general/2024-03-03.json", b'[{"ts": "1.0", "text": "cut')
    builder.raw("general/2024-03-04.json", b"\xff\xfe[]")
    builder.raw("general/2024-03-05.json", json.dumps([{"text": "big"}] * 500).encode())
    builder.add_message(general, "2024-03-06", message(ts(T3, 1), "day 6"))
    with SlackExport.open(
        builder.write(tmp_path / "export.zip"), ExportLimits(max_day_file_bytes=4000)
    ) as export:
        found = read(export, by_name(export, "general"))
    assert [r.change.text for r in found if r.change] == ["day 1", "day 6"]
    quarantined = [r.quarantined for r in found if r.quarantined]
    assert [(q.file, q.position) for q in quarantined] == [
        (f"general/2024-03-0{day}.json", None) for day in (2, 3, 4, 5)
    ]
    assert "not a JSON array but an object" in quarantined[0].reason
    assert "not JSON" in quarantined[1].reason
    assert "over the limit of 4000" in quarantined[3].reason
    assert found[1].checkpoint == {"file": "general/2024-03-02.json", "index": None}
    assert all(r.page_start for r in found)  # six day files, one record each


def test_a_day_file_with_a_bad_crc_is_quarantined_not_a_crash(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    builder.compression = zipfile.ZIP_STORED
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "corrupted text here"))
    builder.add_message(general, DAY2, message(ts(T2, 1), "fine"))
    path = builder.write(tmp_path / "export.zip")
    data = path.read_bytes()
    assert data.count(b"corrupted text here") == 2  # the text and its rich_text block
    path.write_bytes(data.replace(b"corrupted text here", b"CORRUPTED text here"))
    with SlackExport.open(path) as export:
        found = read(export, by_name(export, "general"))
    assert found[0].quarantined is not None
    assert found[0].quarantined.position is None
    assert "CRC" in found[0].quarantined.reason
    assert [r.change.text for r in found if r.change] == ["fine"]


def quarantined_day(builder: ExportBuilder, path: Path, **written: Any) -> str:
    """Why a day file written `**written` (ExportBuilder.raw's options) is quarantined; the
    day file after it is read."""
    general = builder.add_channel("general")
    builder.raw(f"general/{DAY1}.json", b"[]", **written)
    builder.add_message(general, DAY2, message(ts(T2, 1), "fine"))
    with SlackExport.open(builder.write(path)) as export:
        found = read(export, by_name(export, "general"))
    assert found[0].quarantined is not None
    assert [r.change.text for r in found if r.change] == ["fine"]
    return found[0].quarantined.reason


def test_an_encrypted_day_file_is_quarantined(tmp_path: Path, builder: ExportBuilder) -> None:
    assert "encrypted" in quarantined_day(builder, tmp_path / "export.zip", encrypted=True)


def test_resume_after_any_checkpoint_yields_exactly_the_rest(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    general = builder.add_channel("general")
    for n in range(3):
        builder.add_message(general, DAY1, message(ts(T1, n), f"1.{n}"))
    builder.add_message(general, DAY1, "bad")
    builder.raw(f"general/{DAY2}.json", b"{}")
    for n in range(2):
        builder.add_message(general, DAY3, message(ts(T3, n), f"3.{n}"))
    with SlackExport.open(builder.write(tmp_path / "export.zip")) as export:
        conversation = by_name(export, "general")
        everything = read(export, conversation)
        assert len(everything) == 7
        for n, record in enumerate(everything):
            # The checkpoint as the importer stores it: through JSON and MongoDB.
            stored = json.loads(json.dumps(record.checkpoint))
            rest = read(export, conversation, after=stored)
            # The same records; the first one read after resuming starts its (re-read) file.
            assert [replace(r, page_start=False) for r in rest] == [
                replace(r, page_start=False) for r in everything[n + 1 :]
            ]
            assert not rest or rest[0].page_start
        assert read(export, conversation, after=None) == everything
        with pytest.raises(ValueError, match="not a day file of"):
            read(export, conversation, after={"file": f"random/{DAY1}.json", "index": 0})
        with pytest.raises(ValueError, match="not a checkpoint"):
            read(export, conversation, after={"page": 3})


def test_done_grows_to_one_by_bytes_read(tmp_path: Path, builder: ExportBuilder) -> None:
    general = builder.add_channel("general")
    for n in range(4):
        builder.add_message(general, DAY1, message(ts(T1, n), "x"))
    builder.add_message(general, DAY2, message(ts(T2, 1), "y" * 2000))
    path = builder.write(tmp_path / "export.zip")
    sizes = [
        info.file_size
        for info in zipfile.ZipFile(path).infolist()
        if info.filename.startswith("general/")
    ]
    with SlackExport.open(path) as export:
        conversation = by_name(export, "general")
        done = [r.done for r in read(export, conversation)]
        assert export.size(conversation) == sum(sizes)
    assert done == sorted(done)
    assert done[-1] == 1.0
    assert done[3] == pytest.approx(sizes[0] / sum(sizes))


# -- the ZIP's directory -------------------------------------------------------------------------


def everything(path: Path) -> list[tuple[str, list[str], list[HistoryRecord]]]:
    with SlackExport.open(path) as export:
        return [(c.id, export.day_files(c), read(export, c)) for c in export.conversations]


def three_channels(builder: ExportBuilder) -> ExportBuilder:
    for name in ("general", "général", "random"):
        channel = builder.add_channel(name)
        for n, day in enumerate((DAY1, DAY2, DAY3)):
            builder.add_message(channel, day, message(ts(T1, n), f"{name} {day}"))
    return builder


def patch_entry(path: Path, name: bytes, offset: int, value: bytes) -> None:
    """Overwrite bytes of a member's central directory entry (46 bytes, then its name):
    flags at 8, CRC-32 at 16, compressed size at 20, size at 24."""
    data = bytearray(path.read_bytes())
    at = data.index(name, zipfile.ZipFile(path).start_dir) - 46
    assert data[at : at + 4] == b"PK\x01\x02"
    data[at + offset : at + offset + len(value)] = value
    path.write_bytes(bytes(data))


def test_a_zip64_export_reads_as_the_same_export(tmp_path: Path, builder: ExportBuilder) -> None:
    """Sizes and offsets in ZIP64 extra fields (in every local header: force_zip64; in the
    central directory, with a ZIP64 end record: zip64_directory), as a writer of an export
    over 4 GiB writes them."""
    plain = three_channels(builder).write(tmp_path / "plain.zip")
    big = zip64_directory(builder.write(tmp_path / "zip64.zip"))
    assert b"PK\x06\x06" in big.read_bytes() and b"PK\x06\x06" not in plain.read_bytes()
    assert zipfile.ZipFile(big).namelist() == zipfile.ZipFile(plain).namelist()
    found = everything(big)
    assert found == everything(plain)
    assert [len(records) for _, _, records in found] == [3, 3, 3]
    error = refused(big, ExportLimits(max_members=10))
    assert error.code == "too_many_members"
    assert "11 members" in error.message  # from the ZIP64 end record


def test_members_with_data_descriptors_read_as_the_same_export(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    """Written as to a pipe: each member's CRC and sizes after its data, zeros before it."""
    plain = three_channels(builder).write(tmp_path / "plain.zip")
    builder.stream = True
    streamed = builder.write(tmp_path / "streamed.zip")
    assert all(info.flag_bits & 0x08 for info in zipfile.ZipFile(streamed).infolist())
    assert everything(streamed) == everything(plain)


def test_member_names_flagged_utf8_and_cp437_names(tmp_path: Path, builder: ExportBuilder) -> None:
    general = builder.add_channel("général")  # zipfile flags a non-ASCII name UTF-8
    builder.add_message(general, DAY1, message(ts(T1, 1), "flagged"))
    cafe = builder.add_channel("café")
    builder.raw(f"café/{DAY1}.json", json.dumps([message(ts(T1, 2), "dos")]).encode(), cp437=True)
    path = builder.write(tmp_path / "export.zip")
    infos = zipfile.ZipFile(path).infolist()
    assert [info.flag_bits & 0x800 for info in infos[-2:]] == [0x800, 0]
    assert f"café/{DAY1}.json".encode("cp437") in path.read_bytes()  # b"caf\x82", not UTF-8
    with SlackExport.open(path) as export:
        assert export.day_files(by_name(export, "général")) == [f"général/{DAY1}.json"]
        records = read(export, by_name(export, "café"))
        assert [r.change.text for r in records if r.change] == ["dos"]
        assert records[0].checkpoint["file"] == f"café/{DAY1}.json"
    assert cafe["name"] == "café"

    patch_entry(path, "café".encode("cp437"), 8, (0x800).to_bytes(2, "little"))
    error = refused(path)
    assert (error.code, error.status) == ("unsafe_member_name", 422)
    assert "flagged UTF-8" in error.message


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (16, b"\x00\x00\x00\x00", "CRC"),  # the CRC-32
        (24, b"\x10\x00\x00\x00", "larger than the archive's directory says"),  # the size
        (20, b"\x08\x00\x00\x00", "cut short"),  # the compressed size
    ],
)
def test_a_deflated_day_file_whose_directory_entry_lies_is_quarantined(
    tmp_path: Path, builder: ExportBuilder, field: int, value: bytes, reason: str
) -> None:
    general = builder.add_channel("general")
    builder.add_message(general, DAY1, message(ts(T1, 1), "lied about " * 20))
    builder.add_message(general, DAY2, message(ts(T2, 1), "fine"))
    path = builder.write(tmp_path / "export.zip")
    patch_entry(path, f"general/{DAY1}.json".encode(), field, value)
    with SlackExport.open(path) as export:
        found = read(export, by_name(export, "general"))
    assert found[0].quarantined is not None
    assert reason in found[0].quarantined.reason
    assert [r.change.text for r in found if r.change] == ["fine"]


def test_a_compression_method_other_than_stored_and_deflated_is_quarantined(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    reason = quarantined_day(builder, tmp_path / "export.zip", compression=zipfile.ZIP_BZIP2)
    assert "compression method (12) is not supported" in reason

    out = ExportBuilder()
    out.omit("users.json")
    out.raw("users.json", b"[]", compression=zipfile.ZIP_LZMA)
    error = refused(out.write(tmp_path / "lzma.zip"))
    assert error.code == "malformed_index"
    assert "compression method (14)" in error.message


def _cut_directory(data: bytes, start: int, end: int) -> bytes:
    return data[: start + 30] + data[end:]  # the first entry cut short, the end record kept


def _bad_signature(data: bytes, start: int, end: int) -> bytes:
    return data[:start] + b"PK\x09\x09" + data[start + 4 :]


def _size_over_the_file(data: bytes, start: int, end: int) -> bytes:
    return data[: end + 12] + (2**31).to_bytes(4, "little") + data[end + 16 :]


def _size_short_of_the_entries(data: bytes, start: int, end: int) -> bytes:
    size = end - start - 10  # the last entry cut short; the offset moved to match
    return (
        data[: end + 12]
        + size.to_bytes(4, "little")
        + (start + 10).to_bytes(4, "little")
        + data[end + 20 :]
    )


@pytest.mark.parametrize(
    "corrupt", [_cut_directory, _bad_signature, _size_over_the_file, _size_short_of_the_entries]
)
def test_a_cut_or_corrupt_central_directory_is_refused_with_400(
    tmp_path: Path, builder: ExportBuilder, corrupt: Any
) -> None:
    path = three_channels(builder).write(tmp_path / "export.zip")
    data = path.read_bytes()
    start, end = zipfile.ZipFile(path).start_dir, data.rindex(b"PK\x05\x06")
    path.write_bytes(corrupt(data, start, end))
    error = refused(path)
    assert (error.code, error.status) == ("not_a_zip", 400)
    assert "central directory" in error.message


def test_an_archive_comment_holding_the_end_signature_and_data_before_the_archive(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    """A comment that holds the end record's signature (zipfile reads such an archive as
    corrupt) and a self-extractor's stub before the archive (offsets then start later)."""
    path = three_channels(builder).write(tmp_path / "export.zip")
    expected = everything(path)
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = b"exported PK\x05\x06 by hand"
    assert everything(path) == expected
    path.write_bytes(b"#!/bin/sh\nexit 0\n" * 50 + path.read_bytes())
    assert everything(path) == expected


def test_a_directory_holding_more_members_than_its_end_record_says_is_limited(
    tmp_path: Path, builder: ExportBuilder
) -> None:
    path = twenty_days(builder, tmp_path / "export.zip")
    data = path.read_bytes()
    end = data.rindex(b"PK\x05\x06")
    path.write_bytes(data[: end + 8] + b"\x02\x00\x02\x00" + data[end + 12 :])  # 2, not 22
    error = refused(path, ExportLimits(max_members=20))
    assert error.code == "too_many_members"
    assert "more than 20 members" in error.message
    with SlackExport.open(path, ExportLimits(max_members=22)) as export:
        assert len(export.day_files(by_name(export, "general"))) == 20


def test_the_directory_keeps_tens_of_bytes_a_member(tmp_path: Path) -> None:
    """What the open export keeps per ZIP member, besides its name: offsets, sizes, CRC,
    method and flags in arrays, and its slots in the name table (zipfile's ZipInfo: about
    0.75 KB)."""
    path = tmp_path / "many.zip"
    names = [
        f"channel-{n % 200:03d}/2024-{n // 200 // 28 + 1:02d}-{n // 200 % 28 + 1:02d}.json"
        for n in range(20_000)
    ]
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"[]")
    assert len(set(names)) == 20_000
    name_bytes = sum(len(name.encode()) for name in names)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        directory = ZipDirectory(path)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    try:
        assert len(directory) == len(names)
        assert directory.find(names[-1]) == len(names) - 1
        assert directory.read(len(names) - 1) == b"[]"
    finally:
        directory.close()
    per_member = (kept - name_bytes) / len(names)
    assert per_member < 64, f"{per_member:.0f} bytes a member besides its name"


# -- a large export ------------------------------------------------------------------------------

GENERATE = """
import json, resource, sys
from pathlib import Path
from tests.slack_export import generate
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stats = generate(Path(sys.argv[1]), 40_000, 200)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grown_kib": after - before, **vars(stats)}))
"""


def test_a_generated_export_of_40000_messages_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """The generator streams (its peak resident memory grows by far less than the 30 MB it
    writes), and reading it whole, day file by day file, stays under 50 MB of Python
    allocations over the opening and the first 1,000 messages and leaves no more allocated
    than before over the 39,000 after them (tests/memory.py); every record comes back,
    threads whole, and nothing is quarantined. 100,000 and a million are `make bench
    --only import`'s."""
    path = tmp_path / "big.zip"
    done = subprocess.run(
        [sys.executable, "-c", GENERATE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    stats = json.loads(done.stdout)
    assert stats["messages"] == 40_000
    assert stats["bytes_uncompressed"] > 24 * 2**20
    assert stats["grown_kib"] < 16 * 1024, stats
    assert stats["replies_in_later_files"] > 0
    assert stats["replies_in_earlier_files"] > 0

    counts: Counter[str] = Counter()
    threads = found_reactions = 0
    with Watch(traced=1_000) as watch, SlackExport.open(path) as export:
        assert len(export.conversations) == 200
        assert export.team_id == TEAM_ID
        assert "général" in {c.name for c in export.conversations}
        for conversation in export.conversations:
            roots: set[str] = set()
            replies: set[str] = set()
            for record in watch.each(export.records(conversation)):
                assert record.change is not None, record.quarantined
                change = record.change
                counts[change.subtype or "plain"] += 1
                found_reactions += record.reactions
                if change.external_thread_id is None:
                    roots.add(change.external_message_id)
                else:
                    replies.add(change.external_thread_id)
            # Every reply's root is in the conversation, whichever day file holds it.
            assert replies <= roots
            threads += len(replies)
    assert watch.peak < 50 * 2**20, f"peak {watch.peak / 2**20:.1f} MiB"
    # A conversation's roots and replies (the loop's own sets, 500 messages at most) aside.
    assert watch.grown < 3_000, f"{watch.grown} blocks more after {watch.untraced} messages"
    assert watch.untraced == 39_000
    assert sum(counts.values()) == 40_000
    assert dict(counts) == stats["by_subtype"]
    assert found_reactions == stats["reactions"]
    assert threads == stats["threads"]
