"""The Telegram Desktop export reader (shared/providers/telegram/export.py) on exports written
as tdesktop writes them (tests/providers/telegram_exports: the layout and where each fact
comes from): what is refused at open, the chats and their Bot API ids, how each kind of
message reads, what is quarantined, a document that breaks midway, resuming from a
checkpoint, and memory on a generated export."""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.providers import exports
from shared.providers.chat import Attachment, Author, MessageChange, SenderMarks
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.telegram.export import (
    ExportLimits,
    ExportRefused,
    TelegramExport,
    bot_api_chat_id,
    render_text,
)
from tests.memory import Watch
from tests.providers.telegram_exports import (
    BASE_TIME,
    Raw,
    account_export,
    chat,
    chat_export,
    generate,
    message,
    service,
    zip_export,
)

SUPERGROUP = 1234567890  # the export's id; the Bot API's is -1001234567890


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def read(export: TelegramExport, conversation: Conversation, **kwargs: Any) -> list[HistoryRecord]:
    return list(export.records(conversation, **kwargs))


def changes(records: list[HistoryRecord]) -> list[MessageChange]:
    return [r.change for r in records if r.change is not None]


def one_chat(tmp_path: Path, messages: list[Any], **kwargs: Any) -> list[HistoryRecord]:
    """The records of a one-chat export (a private supergroup) of `messages`."""
    data = chat_export(chat("Team", "private_supergroup", SUPERGROUP, messages))
    with TelegramExport.open(write(tmp_path / "result.json", data), **kwargs) as export:
        (conversation,) = export.conversations
        return read(export, conversation)


def the_change(tmp_path: Path, one: dict[str, Any]) -> MessageChange:
    (record,) = one_chat(tmp_path, [one])
    assert record.change is not None, record.quarantined
    return record.change


def refused(path: Path, limits: ExportLimits | None = None) -> ExportRefused:
    with pytest.raises(ExportRefused) as caught:
        TelegramExport.open(path, limits)
    return caught.value


# -- refused at open -----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"result.json", b"<html>export</html>", b"\x00\x01"])
def test_a_file_that_is_neither_json_nor_a_zip_is_refused_with_400(
    tmp_path: Path, content: bytes
) -> None:
    error = refused(write(tmp_path / "upload", content))
    assert (error.code, error.status) == ("not_an_export_file", 400)


@pytest.mark.parametrize(
    "content",
    [
        b'{"foo": 1}',
        b"[1, 2, 3]",
        b'[{"id": 1, "messages": []}]',
        b'{"name": "x", "type": "personal_chat", "id": 5}',
        b'{"messages": {"id": 1}}',
        b'{"chats": [{"id": 1, "messages": []}]}',
        # A DiscordChatExporter file: messages, but under a guild and a channel.
        b'{"guild": {"id": "1"}, "channel": {"id": "2", "name": "general"}, "messageCount": 0}',
    ],
)
def test_json_that_is_not_a_telegram_export_is_refused_with_422(
    tmp_path: Path, content: bytes
) -> None:
    error = refused(write(tmp_path / "result.json", content))
    assert (error.code, error.status) == ("not_a_telegram_export", 422)
    assert "not a Telegram Desktop export" in error.message
    assert "chats.list" in error.message


def test_an_account_export_without_chats_is_refused_saying_so(tmp_path: Path) -> None:
    error = refused(write(tmp_path / "result.json", account_export([])))
    assert error.code == "not_a_telegram_export"
    assert "without chats" in error.message


@pytest.mark.parametrize(
    "content", [b'{"name": "Team", "type": ', b'{"name": "Team", "type" "x"}', b"{" * 5]
)
def test_a_document_that_breaks_before_its_first_chat_is_refused(
    tmp_path: Path, content: bytes
) -> None:
    error = refused(write(tmp_path / "result.json", content))
    assert error.code == "not_a_telegram_export"
    assert "cannot be read" in error.message


def test_a_bare_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "result.json", chat_export(chat("T", "personal_chat", 5, [])))
    error = refused(path, ExportLimits(max_uncompressed_bytes=path.stat().st_size - 1))
    assert error.code == "export_too_large"
    TelegramExport.open(path, ExportLimits(max_uncompressed_bytes=path.stat().st_size)).close()


def small_zip(tmp_path: Path, **kwargs: Any) -> Path:
    data = chat_export(chat("Team", "private_supergroup", SUPERGROUP, [message(1, "hi")]))
    return zip_export(tmp_path / "export.zip", data, **kwargs)


@pytest.mark.parametrize(
    "member",
    [
        "/etc/passwd",
        "../outside.json",
        "ChatExport/../../outside.json",
        "ChatExport\\photos\\a.jpg",
        "C:/Windows/evil.json",
        "ChatExport/photos/a.jpg\x00.txt",
        "a" * 2000,
    ],
)
def test_member_names_with_path_tricks_are_refused_before_anything_is_read(
    tmp_path: Path, member: str
) -> None:
    written = member.replace("\x00", "#")  # zipfile cuts a name at a NUL: patched after
    path = small_zip(tmp_path, extra={written: b"x"})
    if written != member:
        data = path.read_bytes()
        assert data.count(written.encode()) == 2  # the local header and the directory
        path.write_bytes(data.replace(written.encode(), member.encode()))
    error = refused(path)
    assert (error.code, error.status) == ("unsafe_member_name", 422)
    assert repr(member)[1:20] in error.message


def test_a_member_written_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("result.json", chat_export(chat("T", "personal_chat", 5, [])))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("result.json", b"{}")
    error = refused(path)
    assert error.code == "unsafe_member_name"
    assert "twice" in error.message


def test_a_zip_bomb_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    error = refused(small_zip(tmp_path, files={"files/filler.bin": b"\0" * 8 * 2**20}))
    assert error.code == "zip_bomb"
    assert "files/filler.bin" in error.message
    # result.json itself as the bomb: a document of 8 MiB of spaces compresses 1000:1.
    bomb = chat_export(chat("Team", "private_supergroup", 1, [])) + b" " * 8 * 2**20
    error = refused(zip_export(tmp_path / "bomb.zip", bomb))
    assert error.code == "zip_bomb"
    assert "result.json" in error.message


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    files = {f"photos/photo_{n}.jpg": b"jpeg" for n in range(30)}
    error = refused(small_zip(tmp_path, files=files), ExportLimits(max_members=20))
    assert error.code == "too_many_members"


@pytest.mark.parametrize(
    "names",
    [
        ["photos/photo_1.jpg", "messages.html"],  # an HTML export, or no export at all
        ["ChatExport/deeper/result.json"],  # two folders down
        ["A/result.json", "B/result.json"],  # two exports
    ],
)
def test_a_zip_without_one_result_json_at_its_top_or_in_a_top_folder_is_refused(
    tmp_path: Path, names: list[str]
) -> None:
    path = tmp_path / "export.zip"
    data = chat_export(chat("T", "personal_chat", 5, []))
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, data)
    error = refused(path)
    assert (error.code, error.status) == ("not_a_telegram_export", 422)
    assert "result.json" in error.message


# -- the chats -----------------------------------------------------------------------------------


def test_bot_api_ids_of_the_exports_bare_ids() -> None:
    """core.telegram.org/api/bots/ids: users as they are, basic groups negated, supergroups
    and channels -(1000000000000 + id); tdesktop writes the bare id (PeerToBareId)."""
    assert bot_api_chat_id(SUPERGROUP, "private_supergroup") == "-1001234567890"
    assert bot_api_chat_id(SUPERGROUP, "public_channel") == "-1001234567890"
    assert bot_api_chat_id(42, "public_supergroup") == "-1000000000042"
    assert bot_api_chat_id(987654, "private_group") == "-987654"
    assert bot_api_chat_id(5_000_000_001, "personal_chat") == "5000000001"
    assert bot_api_chat_id(-1001234567890, "private_channel") == "-1001234567890"
    assert bot_api_chat_id(5, "a_type_from_the_future") is None


def every_kind_of_chat() -> tuple[list[Any], list[Any]]:
    chats = [
        chat(None, "saved_messages", 1001, [message(1, "note to self")]),
        chat("Bob Marley", "personal_chat", 1002, [message(2, "hi Bob")]),
        chat(
            "Helper",
            "bot_chat",
            777,
            [message(3, "/start"), message(4, "hi", sender=("Helper", "user777"))],
        ),
        chat("Family", "private_group", 555, [message(5, "dinner?")]),
        chat("Team", "private_supergroup", SUPERGROUP, [message(6, "standup")]),
        chat("Python", "public_supergroup", 1111111111, [message(7, "import this")]),
        chat(
            "News",
            "public_channel",
            2222222222,
            [message(8, "issue 1", sender=("News", "channel2222222222"))],
        ),
        chat("Diary", "private_channel", 3333333333, []),
        chat(
            None,
            "personal_chat",
            1003,
            [message(9, "from a deleted account", sender=(None, "user1003"))],
        ),
    ]
    left = [
        chat("Old team", "private_supergroup", 4444444444, [message(10, "bye")]),
        chat("Old news", "public_channel", 5555555555, [message(11, "last issue")]),
    ]
    return chats, left


def test_an_account_export_lists_every_chat_with_its_bot_api_id(tmp_path: Path) -> None:
    chats, left = every_kind_of_chat()
    path = write(tmp_path / "result.json", account_export(chats, left))
    with TelegramExport.open(path) as export:
        found = [(c.id, c.name, c.kind) for c in export.conversations]
        assert found == [
            ("1001", "Saved Messages", "dm"),
            ("1002", "Bob Marley", "dm"),
            ("777", "Helper", "dm"),
            ("-555", "Family", "group"),
            ("-1001234567890", "Team", "group"),
            ("-1001111111111", "Python", "group"),
            ("-1002222222222", "News", "channel"),
            ("-1003333333333", "Diary", "channel"),
            ("1003", "1003", "dm"),  # a deleted account: no name
            ("-1004444444444", "Old team", "group"),
            ("-1005555555555", "Old news", "channel"),
        ]
        assert export.telegram_type(export.conversations[2]) == "bot_chat"
        assert (export.provider, export.account, export.users(), export.broken) == (
            "telegram",
            None,
            {},
            None,
        )
        texts = {c.id: [ch.text for ch in changes(read(export, c))] for c in export.conversations}
        assert all(
            ch.external_channel_id == c.id
            for c in export.conversations
            for ch in changes(read(export, c))
        )
        sizes = [export.size(c) for c in export.conversations]
    assert texts["1001"] == ["note to self"]
    assert texts["777"] == ["/start", "hi"]
    assert texts["-1004444444444"] == ["bye"]
    assert texts["-1005555555555"] == ["last issue"]
    assert texts["-1003333333333"] == []
    assert all(size > 50 for size in sizes)
    assert sum(sizes) < path.stat().st_size


def test_the_chats_a_job_asks_for_by_bot_api_id_export_id_or_name(tmp_path: Path) -> None:
    chats, left = every_kind_of_chat()
    path = write(tmp_path / "result.json", account_export(chats, left))
    wanted = ["-1001234567890", "555", "Old news", "nothing like it"]
    with TelegramExport.open(path, chats=wanted) as export:
        assert [c.name for c in export.conversations] == ["Family", "Team", "Old news"]


def test_a_one_chat_export_is_one_conversation(tmp_path: Path) -> None:
    for telegram_type, expected in [
        ("private_supergroup", "-1001234567890"),
        ("private_group", "-1234567890"),
        ("personal_chat", "1234567890"),
    ]:
        data = chat_export(chat("Team", telegram_type, SUPERGROUP, [message(1, "hi")]))
        with TelegramExport.open(write(tmp_path / "result.json", data)) as export:
            (conversation,) = export.conversations
            assert (conversation.id, conversation.name) == (expected, "Team")
            (record,) = read(export, conversation)
            assert record.change is not None
            assert record.change.external_channel_id == expected
            assert export.size(conversation) == len(data)


def test_a_chat_without_an_id_or_of_an_unknown_type_keeps_what_it_has(tmp_path: Path) -> None:
    """No id: a position-based id (mapped by name by the job); an unknown type: the export's
    own id (no Bot API id can be derived from it)."""
    nameless = {"name": "Mystery", "type": "private_group", "messages": [message(1, "a")]}
    future = chat("Future", "private_forum_of_tomorrow", 99, [message(2, "b")])
    path = write(tmp_path / "result.json", account_export([nameless, future]))
    with TelegramExport.open(path) as export:
        assert [(c.id, c.name) for c in export.conversations] == [
            ("chats.list[0]", "Mystery"),
            ("99", "Future"),
        ]
        assert [len(read(export, c)) for c in export.conversations] == [1, 1]


def test_a_zip_with_the_export_folder_and_its_media(tmp_path: Path) -> None:
    chats, left = every_kind_of_chat()
    files = {
        "photos/photo_1@01-05-2024_10-00-00.jpg": b"jpeg",
        "voice_messages/audio_1@01-05-2024_10-00-00.ogg": b"ogg",
        "stickers/sticker.webp": b"webp",
    }
    for root in ["DataExport_2024-05-01/", ""]:
        path = zip_export(
            tmp_path / "export.zip",
            account_export(chats, left),
            root=root,
            files=files,
            extra={"__MACOSX/DataExport_2024-05-01/._result.json": b"resource fork"},
        )
        with TelegramExport.open(path) as export:
            assert len(export.conversations) == 11
            # Read out of order: a chat before the one read last needs a new stream.
            order = [*export.conversations[5:], *export.conversations[:5]]
            texts = {c.id: [ch.text for ch in changes(read(export, c))] for c in order}
            assert texts["-1005555555555"] == ["last issue"]
            assert texts["1001"] == ["note to self"]
            assert texts["-555"] == ["dinner?"]
            quarantined = [r for c in order for r in read(export, c) if r.quarantined]
            assert quarantined == []
            assert read(export, export.conversations[0])[0].quarantined is None


def test_a_one_chat_export_zipped_in_its_folder(tmp_path: Path) -> None:
    messages = [
        message(1, "look", photo="photos/photo_1@01-05-2024_10-00-00.jpg", width=1, height=1)
    ]
    data = chat_export(chat("Team", "private_supergroup", SUPERGROUP, messages))
    path = zip_export(
        tmp_path / "export.zip",
        data,
        root="ChatExport_2024-05-01/",
        files={"photos/photo_1@01-05-2024_10-00-00.jpg": b"jpeg"},
    )
    with TelegramExport.open(path) as export:
        (conversation,) = export.conversations
        (record,) = read(export, conversation)
    assert record.change is not None
    assert record.change.text == "\\[photo\\]\nlook"
    assert record.change.attachments == (
        Attachment(
            "photos/photo_1@01-05-2024_10-00-00.jpg",
            "photo_1@01-05-2024_10-00-00.jpg",
            "image/jpeg",
        ),
    )
    assert record.checkpoint == {"chat": "-1001234567890", "index": 0}


def test_a_utf8_bom_before_the_document(tmp_path: Path) -> None:
    data = chat_export(chat("Team", "private_supergroup", SUPERGROUP, [message(1, "hi")]))
    path = write(tmp_path / "result.json", b"\xef\xbb\xbf" + data)
    with TelegramExport.open(path) as export:
        assert [ch.text for ch in changes(read(export, export.conversations[0]))] == ["hi"]


# -- messages ------------------------------------------------------------------------------------

EVERY_ENTITY = [
    {"type": "plain", "text": "Plain *stars* and _under_ "},
    {"type": "bold", "text": "bold"},
    {"type": "plain", "text": " "},
    {"type": "italic", "text": "italic "},
    {"type": "underline", "text": "under"},
    {"type": "plain", "text": " "},
    {"type": "strikethrough", "text": "struck"},
    {"type": "plain", "text": " "},
    {"type": "spoiler", "text": "the butler"},
    {"type": "plain", "text": " "},
    {"type": "code", "text": "x = `y`"},
    {"type": "plain", "text": " "},
    {"type": "link", "text": "https://example.com/a_b"},
    {"type": "plain", "text": " "},
    {"type": "link", "text": "example.com"},
    {"type": "plain", "text": " "},
    {"type": "text_link", "text": "the docs", "href": "https://docs.example/p?q=1"},
    {"type": "plain", "text": " "},
    {"type": "text_link", "text": "profile", "href": "tg://user?id=1002"},
    {"type": "plain", "text": " "},
    {"type": "mention", "text": "@some_user"},
    {"type": "plain", "text": " "},
    {"type": "mention_name", "text": "Bob", "user_id": 1002},
    {"type": "plain", "text": " "},
    {"type": "hashtag", "text": "#release"},
    {"type": "plain", "text": " "},
    {"type": "cashtag", "text": "$USD"},
    {"type": "plain", "text": " "},
    {"type": "bot_command", "text": "/start@my_bot"},
    {"type": "plain", "text": " "},
    {"type": "email", "text": "a_b@example.com"},
    {"type": "plain", "text": " "},
    {"type": "phone", "text": "+1 555 0100"},
    {"type": "plain", "text": " "},
    {"type": "bank_card", "text": "4242 4242 4242 4242"},
    {"type": "plain", "text": " "},
    {"type": "custom_emoji", "text": "🙂", "document_id": "5368324170671202286"},
    {"type": "pre", "text": "print('```')\nx = 1", "language": "python"},
    {"type": "blockquote", "text": "quoted\n- not a list", "collapsed": False},
    {"type": "plain", "text": "# not a heading\n> nor a quote\n1. nor a list"},
]

RENDERED = (
    "Plain \\*stars\\* and \\_under\\_ **bold** *italic* under ~~struck~~ the butler "
    "`` x = `y` `` <https://example.com/a_b> example.com [the docs](<https://docs.example/p?q=1>) "
    "profile @some\\_user Bob #release $USD /start@my\\_bot a\\_b@example.com +1 555 0100 "
    "4242 4242 4242 4242 🙂\n"
    "````python\nprint('```')\nx = 1\n````\n"
    "> quoted\n> \\- not a list\n\n"
    "\\# not a heading\n\\> nor a quote\n1\\. nor a list"
)


def test_every_entity_type_is_rendered_as_commonmark(tmp_path: Path) -> None:
    """Entity types and their extra fields: tdesktop's SerializeText (`href` of text_link,
    `language` of pre, `user_id` of mention_name, `document_id` of custom_emoji, `collapsed`
    of blockquote)."""
    change = the_change(tmp_path, message(1, EVERY_ENTITY))
    assert change.text == RENDERED


def test_text_entities_are_preferred_and_text_alone_is_read_in_older_exports(
    tmp_path: Path,
) -> None:
    """Exports before `text_entities` have `text` only: a string for one plain part, else an
    array of strings and entities."""
    mixed = ["see ", {"type": "bold", "text": "this"}, " *now*"]
    assert render_text(None, mixed) == "see **this** \\*now\\*"
    assert render_text(None, "just *text*") == "just \\*text\\*"
    assert render_text([{"type": "plain", "text": "from entities"}], "from text") == "from entities"
    older = message(1, mixed, entities=False)
    assert "text_entities" not in older
    assert the_change(tmp_path, older).text == "see **this** \\*now\\*"


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([{"type": "bold", "text": " spaced "}], "**spaced**"),
        (["a", {"type": "bold", "text": "two\n\nparas"}], "a**two**\n\n**paras**"),
        ([{"type": "code", "text": "``"}], "``` `` ```"),
        ([{"type": "code", "text": "multi\nline"}], "`multi line`"),
        (["before", {"type": "pre", "text": "x", "language": "a b`c"}], "before\n```\nx\n```"),
        ([{"type": "link", "text": "javascript:alert(1)"}], "javascript:alert(1)"),
        ([{"type": "text_link", "text": "[x]", "href": "javascript:alert(1)"}], "\\[x\\]"),
        (["    indented code?"], "indented code?"),
        (["line\n+ plus\n## two"], "line\n\\+ plus\n#\\# two"),
        (["<b>html</b> &amp; | ~"], "\\<b>html\\</b> \\&amp; \\| \\~"),
        ([{"type": "italic", "text": ""}, None, 5, {"type": "bold"}, "ok"], "ok"),
    ],
)
def test_markup_edge_cases(parts: list[Any], expected: str) -> None:
    assert render_text(parts) == expected


def test_replies_thread_under_the_replied_message_wherever_it_is(tmp_path: Path) -> None:
    """`reply_to_message_id`, with `reply_to_peer_id` when the replied message is in another
    chat (tdesktop's pushReplyToMsgId); live sync threads by `reply_to_message`, which is
    always in the same chat."""
    day = 86400
    messages = [
        message(10, "root", at=BASE_TIME),
        message(11, "next day", at=BASE_TIME + day, reply_to_message_id=10),
        message(12, "a week on", at=BASE_TIME + 7 * day, reply_to_message_id=10),
        # A reply to a message later in the file (an import into a supergroup keeps the
        # original numbering; tdesktop writes a chat in the order it fetched it).
        message(13, "before its root", at=BASE_TIME + 8 * day, reply_to_message_id=99),
        message(99, "late root", at=BASE_TIME + 9 * day),
        message(14, "elsewhere", reply_to_message_id=5, reply_to_peer_id="channel777"),
        message(
            15, "here, said so", reply_to_message_id=10, reply_to_peer_id=f"channel{SUPERGROUP}"
        ),
    ]
    threads = {c.text: c.external_thread_id for c in changes(one_chat(tmp_path, messages))}
    assert threads == {
        "root": None,
        "next day": "10",
        "a week on": "10",
        "before its root": "99",
        "late root": None,
        "elsewhere": None,
        "here, said so": "10",
    }


def test_a_supergroups_migrated_history_keeps_its_shifted_ids(tmp_path: Path) -> None:
    """tdesktop exports a supergroup with the basic group it was migrated from first, those
    messages' ids and same-chat reply ids shifted by -1,000,000,000
    (export_data_types.cpp, AdjustMigrateMessageIds)."""
    shift = -1_000_000_000
    messages = [
        message(5 + shift, "in the old group", at=BASE_TIME),
        message(6 + shift, "reply in the old group", at=BASE_TIME, reply_to_message_id=5 + shift),
        service(7 + shift, "migrate_to_supergroup", at=BASE_TIME),
        service(1, "migrate_from_group", title="Team"),
        message(2, "in the supergroup"),
    ]
    found = changes(one_chat(tmp_path, messages))
    assert [(c.external_message_id, c.external_thread_id) for c in found] == [
        ("-999999995", None),
        ("-999999994", "-999999995"),
        ("-999999993", None),
        ("1", None),
        ("2", None),
    ]
    assert {c.external_channel_id for c in found} == {"-1001234567890"}


def test_an_edited_message_is_its_latest_text_at_its_first_date(tmp_path: Path) -> None:
    change = the_change(tmp_path, message(1, "fixed typo", at=BASE_TIME, edited=BASE_TIME + 600))
    assert change.kind == "created"
    assert change.text == "fixed typo"
    assert change.occurred_at == datetime.fromtimestamp(BASE_TIME, UTC)


def test_dates_from_date_unixtime_else_date_read_as_utc(tmp_path: Path) -> None:
    """`date_unixtime` (newer exports) wins over `date`, which is the exporting
    computer's local time without an offset (QDateTime::toString(Qt::ISODate))."""
    both = message(1, "both", at=BASE_TIME)
    both["date"] = "1999-01-01T00:00:00"  # a local time far from UTC: not used
    older = message(2, "older export", at=BASE_TIME, unixtime=False)
    numeric = message(3, "a number", at=BASE_TIME)
    numeric["date_unixtime"] = BASE_TIME
    dates = [c.occurred_at for c in changes(one_chat(tmp_path, [both, older, numeric]))]
    assert dates == [datetime.fromtimestamp(BASE_TIME, UTC)] * 3


def test_senders_as_live_sync_names_them(tmp_path: Path) -> None:
    """`from`/`from_id` (user<id>, channel<id>, chat<id>) and a post's `author` signature;
    live sync's _author and _sender: a user by id, a chat posting as itself by its Bot API
    id with the signature first, no user id for it."""
    messages = [
        message(1, "user", sender=("Alice Liddell", "user1001")),
        message(2, "post", sender=("News", "channel2222222222"), author="Ada"),
        message(3, "anonymous admin", sender=("Team", f"channel{SUPERGROUP}")),
        message(4, "deleted account", sender=(None, "user1003")),
        message(5, "basic group as sender", sender=("Family", "chat555")),
        message(6, "no sender at all", sender=None),
    ]
    found = changes(one_chat(tmp_path, messages))
    assert [(c.author, c.sender) for c in found] == [
        (Author("Alice Liddell", None, "1001"), SenderMarks(user_id="1001")),
        (Author("Ada (News)", None, "-1002222222222"), SenderMarks()),
        (Author("Team", None, "-1001234567890"), SenderMarks()),
        (Author("1003", None, "1003"), SenderMarks(user_id="1003")),
        (Author("Family", None, "-555"), SenderMarks()),
        (None, SenderMarks()),
    ]


def test_the_bot_of_a_bot_chat_is_a_bot(tmp_path: Path) -> None:
    data = chat_export(
        chat(
            "Helper",
            "bot_chat",
            777,
            [message(1, "/start"), message(2, "hello", sender=("Helper", "user777"))],
        )
    )
    with TelegramExport.open(write(tmp_path / "result.json", data)) as export:
        found = changes(read(export, export.conversations[0]))
    assert [c.sender.is_bot for c in found] == [False, True]


NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"


def test_media_of_each_kind_are_labelled_and_attached(tmp_path: Path) -> None:
    """Media fields: tdesktop's SerializeMessage (`photo`, `file`, `file_name`, `media_type`,
    `mime_type`, `sticker_emoji`, `performer`/`title`, `contact_information`,
    `contact_vcard`, `location_information`, `place_name`/`address`, `poll`, `game_title`,
    `invoice_information`, and the "(File not included...)" note); labels as live sync's
    _media_label writes them, named by the Bot API's field."""
    photo = "photos/photo_1@01-05-2024_10-00-00.jpg"
    messages = [
        message(1, "holiday", photo=photo, width=1280, height=720),
        message(2, "", photo=NOT_INCLUDED, width=1280, height=720),
        message(
            3,
            "",
            file="video_files/clip.mp4",
            file_name="clip.mp4",
            media_type="video_file",
            mime_type="video/mp4",
        ),
        message(
            4,
            "",
            file="voice_messages/audio_4@01-05-2024_10-00-00.ogg",
            media_type="voice_message",
            mime_type="audio/ogg",
        ),
        message(
            5,
            "",
            file="files/song.mp3",
            file_name="song.mp3",
            media_type="audio_file",
            performer="Band",
            title="Song",
            mime_type="audio/mpeg",
        ),
        message(
            6, "", file="video_files/cat.gif.mp4", media_type="animation", mime_type="video/mp4"
        ),
        message(7, "", file="stickers/sticker.webp", media_type="sticker", sticker_emoji="👍"),
        message(
            8,
            "",
            file="round_video_messages/file_8.mp4",
            media_type="video_message",
            mime_type="video/mp4",
        ),
        message(
            9,
            "the report",
            file="files/q1_report.pdf",
            file_name="q1_report.pdf",
            mime_type="application/pdf",
        ),
        message(
            10, "", file=NOT_INCLUDED, file_name="big.iso", mime_type="application/x-iso9660-image"
        ),
        message(
            11,
            "",
            contact_information={
                "first_name": "Bob",
                "last_name": "Marley",
                "phone_number": "+1 555 0100",
            },
            contact_vcard="files/contact.vcf",
        ),
        message(12, "", location_information={"latitude": 51.5, "longitude": -0.12}),
        message(
            13,
            "",
            place_name="Café_Central",
            address="Herrengasse 14",
            location_information={"latitude": 48.2, "longitude": 16.4},
        ),
        message(
            14, "", poll={"question": "Lunch?", "closed": False, "total_voters": 2, "answers": []}
        ),
        message(15, "", game_title="Lumberjack", game_description="chop"),
        message(
            16,
            "",
            invoice_information={
                "title": "Pro plan",
                "description": "",
                "amount": 500,
                "currency": "EUR",
            },
        ),
    ]
    found = changes(one_chat(tmp_path, messages))
    assert [(c.text, c.subtype) for c in found] == [
        ("\\[photo\\]\nholiday", "photo"),
        ("\\[photo\\]", "photo"),
        ("\\[video\\]", "video"),
        ("\\[voice\\]", "voice"),
        ("\\[audio: Band - Song\\]", "audio"),
        ("\\[animation\\]", "animation"),
        ("\\[sticker: 👍\\]", "sticker"),
        ("\\[video note\\]", "video_note"),
        ("\\[document: q1\\_report.pdf\\]\nthe report", "document"),
        ("\\[document: big.iso\\]", "document"),
        ("\\[contact: Bob Marley\\]", "contact"),
        ("\\[location\\]", "location"),
        ("\\[venue: Café\\_Central\\]", "venue"),
        ("\\[poll: Lunch?\\]", "poll"),
        ("\\[game: Lumberjack\\]", "game"),
        ("\\[invoice: Pro plan\\]", "invoice"),
    ]
    attachments = [c.attachments for c in found]
    assert attachments[0] == (Attachment(photo, "photo_1@01-05-2024_10-00-00.jpg", "image/jpeg"),)
    assert attachments[1] == ()  # not exported: named in the text, nothing to link
    assert attachments[2] == (Attachment("video_files/clip.mp4", "clip.mp4", "video/mp4"),)
    assert attachments[3] == (
        Attachment(
            "voice_messages/audio_4@01-05-2024_10-00-00.ogg",
            "audio_4@01-05-2024_10-00-00.ogg",
            "audio/ogg",
        ),
    )
    assert attachments[6] == (Attachment("stickers/sticker.webp", "sticker.webp", None),)
    assert attachments[8] == (
        Attachment("files/q1_report.pdf", "q1_report.pdf", "application/pdf"),
    )
    assert attachments[9] == ()
    assert attachments[10] == (Attachment("files/contact.vcf", "contact.vcf", "text/vcard"),)
    assert all(c.ignored is None for c in found)


def test_service_messages_are_skipped_and_counted_by_action(tmp_path: Path) -> None:
    """`type: service` with `action` (tdesktop's SerializeMessage actions); a custom action
    has only `information_text`."""
    messages = [
        service(1, "create_group", title="Team", members=["Bob Marley"]),
        service(2, "invite_members", members=["Carol"]),
        service(3, "join_group_by_link", inviter="Alice Liddell"),
        service(4, "remove_members", members=["Carol"]),
        message(5, "a real message"),
        service(6, "pin_message", message_id=5),
        service(7, "phone_call", duration_seconds=60, discard_reason="hangup"),
        service(8, "group_call", duration=120),
        service(9, "edit_group_title", title="Team 2"),
        service(10, "edit_group_photo", photo="photos/photo_10.jpg"),
        service(11, "migrate_to_supergroup"),
        service(12, "migrate_from_group", title="Team"),
        service(13, "invite_members", members=["Dan"]),
        service(14, None, information_text="Something happened"),
    ]
    found = changes(one_chat(tmp_path, messages))
    counts = Counter(c.subtype for c in found if c.ignored)
    assert counts == {
        "create_group": 1,
        "invite_members": 2,
        "join_group_by_link": 1,
        "remove_members": 1,
        "pin_message": 1,
        "phone_call": 1,
        "group_call": 1,
        "edit_group_title": 1,
        "edit_group_photo": 1,
        "migrate_to_supergroup": 1,
        "migrate_from_group": 1,
        "service": 1,
    }
    pin = found[5]
    assert (pin.ignored, pin.subtype) == ("Telegram service message (pin_message)", "pin_message")
    assert pin.author == Author("Alice Liddell", None, "1001")
    assert pin.attachments == ()
    assert [c.text for c in found if not c.ignored] == ["a real message"]


def test_reactions_are_summed(tmp_path: Path) -> None:
    """`reactions: [{type, count, emoji | document_id, recent}]` (newer exports; tdesktop's SerializeMessage)."""
    reactions = [
        {
            "type": "emoji",
            "count": 3,
            "emoji": "👍",
            "recent": [{"from": "Bob", "from_id": "user1002", "date": "2024-05-01T10:00:00"}],
        },
        {"type": "custom_emoji", "count": 2, "document_id": "5368324170671202286"},
        {"type": "paid", "count": "many"},
    ]
    records = one_chat(tmp_path, [message(1, "popular", reactions=reactions), message(2, "not")])
    assert [r.reactions for r in records] == [5, 0]


def test_a_message_with_nothing_to_show_is_ignored_as_live_sync_does(tmp_path: Path) -> None:
    change = the_change(tmp_path, message(1, "", paid_stars_amount=10))
    assert change.ignored == "the message carries nothing that can be bridged"


# -- quarantine ----------------------------------------------------------------------------------


def test_malformed_messages_are_quarantined_with_their_position(tmp_path: Path) -> None:
    no_date = message(5, "no date")
    del no_date["date"], no_date["date_unixtime"]
    bad_date = message(6, "bad date")
    bad_date.update(date="yesterday", date_unixtime="soon")
    messages = [
        message(1, "first"),
        Raw('"a string"'),
        Raw("[1, 2]"),
        {"type": "message", "text": "no id", "date_unixtime": "1714557600"},
        {"id": "4", "type": "message", "text": "a string id", "date_unixtime": "1714557600"},
        no_date,
        bad_date,
        {"id": 7, "type": "unsupported"},
        Raw("null"),
        message(9, "last"),
    ]
    records = one_chat(tmp_path, messages)
    assert [c.text for c in changes(records)] == ["first", "last"]
    quarantined = [r.quarantined for r in records if r.quarantined]
    assert [(q.file, q.position) for q in quarantined] == [("result.json", n) for n in range(1, 9)]
    reasons = [q.reason for q in quarantined]
    assert "not a JSON object but a string" in reasons[0]
    assert "not a JSON object but an array" in reasons[1]
    assert "no integer id" in reasons[2] and "no integer id" in reasons[3]
    assert "no usable date" in reasons[4] and "no usable date" in reasons[5]
    assert "unsupported" in reasons[6]
    assert [r.checkpoint for r in records] == [
        {"chat": "-1001234567890", "index": n} for n in range(10)
    ]


def test_quarantine_in_an_account_export_names_the_chat(tmp_path: Path) -> None:
    chats = [
        chat("A", "personal_chat", 1002, [message(1, "a")]),
        chat("B", "private_group", 555, [message(1, "b"), Raw("42")]),
    ]
    path = zip_export(tmp_path / "export.zip", account_export(chats), root="DataExport/")
    with TelegramExport.open(path) as export:
        records = read(export, export.conversations[1])
    assert records[1].quarantined is not None
    assert records[1].quarantined.file == "DataExport/result.json: chats.list[1].messages"
    assert records[1].quarantined.position == 1


def test_a_syntax_error_midway_quarantines_the_rest_and_stops_the_listing(tmp_path: Path) -> None:
    """Chats before the break are whole; the broken chat is read up to it and what is left of
    it quarantined as one record saying so; chats after it cannot be found (the document
    cannot be read past the break) and the reason says that too."""
    chats = [
        chat("Whole", "personal_chat", 1002, [message(1, "w1"), message(2, "w2")]),
        chat(
            "Broken",
            "private_supergroup",
            SUPERGROUP,
            [
                message(1, "b1"),
                message(2, "b2"),
                Raw('{"id": 3, "type": "message" "text": "x"}'),
                message(4, "b4"),
            ],
        ),
        chat("After", "private_group", 555, [message(1, "never")]),
    ]
    path = write(tmp_path / "result.json", account_export(chats))
    with TelegramExport.open(path) as export:
        assert [c.name for c in export.conversations] == ["Whole", "Broken"]
        assert export.broken is not None and "syntax error" in export.broken
        whole, broken = (read(export, c) for c in export.conversations)
    assert [c.text for c in changes(whole)] == ["w1", "w2"]
    assert [c.text for c in changes(broken)] == ["b1", "b2"]
    last = broken[-1]
    assert last.quarantined is not None
    assert (last.quarantined.file, last.quarantined.position) == (
        "result.json: chats.list[1].messages",
        2,
    )
    assert "syntax error" in last.quarantined.reason
    assert "any chat after it" in last.quarantined.reason
    assert last.checkpoint == {"chat": "-1001234567890", "index": 2, "rest": True}
    assert last.done == 1.0


def test_a_document_that_breaks_after_its_last_chat(tmp_path: Path) -> None:
    """Every chat is read whole; the last one ends with a record saying the export could not
    be read past it (a chat after it, if there was one, is not listed)."""
    chats = [
        chat("A", "personal_chat", 1002, [message(1, "a1")]),
        chat("B", "private_group", 555, [message(1, "b1"), message(2, "b2")]),
    ]
    data = account_export(chats)
    assert data.endswith(b"\n}")
    path = write(tmp_path / "result.json", data[:-2] + b',\n "other_data": [1 2]\n}')
    with TelegramExport.open(path) as export:
        assert export.broken is not None
        first, last = (read(export, c) for c in export.conversations)
    assert [c.text for c in changes(first)] == ["a1"]
    assert all(r.quarantined is None for r in first)
    assert [c.text for c in changes(last)] == ["b1", "b2"]
    note = last[-1].quarantined
    assert note is not None
    assert note.position == 2
    assert note.reason.startswith("the export cannot be read past this chat: a syntax error")
    assert note.reason.endswith("any chat after it in the document could not be read either")


def test_a_cut_file_is_read_up_to_the_cut(tmp_path: Path) -> None:
    data = chat_export(
        chat("Team", "private_supergroup", SUPERGROUP, [message(n, f"m{n}") for n in range(1, 6)])
    )
    path = write(tmp_path / "result.json", data[: data.index(b'"m4"')])
    with TelegramExport.open(path) as export:
        assert export.broken is not None and "cut short" in export.broken
        records = read(export, export.conversations[0])
    assert [c.text for c in changes(records)] == ["m1", "m2", "m3"]
    assert records[-1].quarantined is not None
    assert records[-1].quarantined.position == 3


def test_nesting_too_deep_is_a_break_not_a_crash(tmp_path: Path) -> None:
    """ijson builds a prefix string per level: 200,000 brackets would take gigabytes. The
    open pass counts depth itself and no record is parsed past the break."""
    deep = "[" * 200_000 + "]" * 200_000
    messages = [message(1, "before"), Raw(f'{{"id": 2, "type": "message", "text": {deep}}}')]
    records = one_chat(tmp_path, messages)
    assert [c.text for c in changes(records)] == ["before"]
    assert records[-1].quarantined is not None
    assert "deeper than 64 levels" in records[-1].quarantined.reason


def test_a_value_that_runs_on_is_a_break(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "MAX_VALUE_BYTES", 100_000)
    messages = [message(1, "before"), message(2, "x" * 300_000), message(3, "after")]
    records = one_chat(tmp_path, messages)
    assert [c.text for c in changes(records)] == ["before"]
    assert records[-1].quarantined is not None
    assert "runs on for more than 100000 bytes" in records[-1].quarantined.reason


def test_a_member_whose_crc_fails_is_read_and_the_report_says_so(tmp_path: Path) -> None:
    """A stored member whose bytes no longer match its CRC-32: the mismatch is known only
    after its last byte; what was read is imported and a last quarantined record says the
    export may be corrupt."""
    texts = [f"text {n}" for n in range(1, 200)]
    data = chat_export(
        chat(
            "Team",
            "private_supergroup",
            SUPERGROUP,
            [message(n, texts[n - 1]) for n in range(1, 200)],
        )
    )
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("result.json", data)
    raw = path.read_bytes()
    assert raw.count(b'"text 150"') == 2  # `text` and its `text_entities`
    path.write_bytes(raw.replace(b'"text 150"', b'"TEXT 150"'))
    with TelegramExport.open(path) as export:
        assert export.broken is not None and "CRC" in export.broken
        records = read(export, export.conversations[0])
    assert [c.text for c in changes(records)] == [*texts[:149], "TEXT 150", *texts[150:]]
    last = records[-1].quarantined
    assert last is not None
    assert (last.position, records[-1].checkpoint["rest"]) == (199, True)
    assert "cannot be read past this point" in last.reason and "CRC" in last.reason


def test_a_deflated_member_corrupt_midway_is_read_up_to_the_corruption(tmp_path: Path) -> None:
    """Zeros in the middle of the deflate stream: the megabytes inflated before them are
    read, what is left of the chat is quarantined."""
    data = chat_export(
        chat(
            "Team",
            "private_supergroup",
            SUPERGROUP,
            [message(n, f"message {n} {n * 7919 % 10007}") for n in range(1, 12_000)],
        )
    )
    assert len(data) > 3 * 2**20  # inflated a megabyte at a time: the first ones are sound
    path = zip_export(tmp_path / "export.zip", data, root="")
    info = zipfile.ZipFile(path).getinfo("result.json")
    raw = bytearray(path.read_bytes())
    middle = info.header_offset + 30 + len("result.json") + info.compress_size * 3 // 4
    raw[middle : middle + 64] = bytes(64)  # zeros in the middle of the deflate stream
    path.write_bytes(bytes(raw))
    with TelegramExport.open(path) as export:
        assert export.broken is not None
        records = read(export, export.conversations[0])
    assert 2000 < len(changes(records)) < 11_999
    assert records[-1].quarantined is not None
    assert records[-1].checkpoint["rest"] is True


# -- checkpoints ---------------------------------------------------------------------------------


def test_resume_after_any_checkpoint_yields_exactly_the_rest(tmp_path: Path) -> None:
    chats = [
        chat("A", "personal_chat", 1002, [message(1, "a1"), Raw('"bad"'), message(3, "a3")]),
        chat(
            "B",
            "private_supergroup",
            SUPERGROUP,
            [message(1, "b1"), service(2, "pin_message"), message(3, "b3"), Raw("{oops")],
        ),
    ]
    path = zip_export(tmp_path / "export.zip", account_export(chats))
    with TelegramExport.open(path) as export:
        for conversation in export.conversations:
            everything = read(export, conversation)
            assert len(everything) in (3, 4)
            for n, record in enumerate(everything):
                stored = json.loads(json.dumps(record.checkpoint))  # through MongoDB
                rest = read(export, conversation, after=stored)
                unpaged = [replace(r, page_start=False) for r in rest]
                assert unpaged == [replace(r, page_start=False) for r in everything[n + 1 :]]
                assert not rest or rest[0].page_start
        a, b = export.conversations
        with pytest.raises(ValueError, match="not a checkpoint"):
            read(export, a, after={"chat": b.id, "index": 0})
        with pytest.raises(ValueError, match="not a checkpoint"):
            read(export, a, after={"file": "general/2024-03-01.json", "index": 0})
        with pytest.raises(ValueError, match="not a chat of this export"):
            read(export, Conversation("-1", "elsewhere"))


def test_done_grows_to_one_and_pages_start_every_thousand(tmp_path: Path) -> None:
    messages = [message(n, f"message {n} " + "x" * 200) for n in range(1, 2501)]
    records = one_chat(tmp_path, messages)
    done = [r.done for r in records]
    assert done == sorted(done)
    assert done[0] < 0.5 < done[-1] == 1.0
    assert [n for n, r in enumerate(records) if r.page_start] == [0, 1000, 2000]


# -- a large export ------------------------------------------------------------------------------


def test_a_generated_export_of_20000_messages_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """An account export in 20 chats of 20,000 messages (7 MiB), opened and read whole,
    twice. Traced: the Python allocations' peak over the opening and the first 1,000
    messages stays a small fraction of the file (the reader holds a chunk of the file and
    the messages parsed from it, whatever the count; ~0.5 MiB measured). Untraced: the
    19,999 messages after the first leave no more allocated than before, and every message
    comes back. tests/memory.py says why a long read is not traced; 100,000 and a million
    are `make bench --only import`'s."""
    path = tmp_path / "result.json"
    stats = generate(path, 20_000, 20)
    size = path.stat().st_size
    with Watch(traced=1_000) as watch, TelegramExport.open(path) as export:
        read = sum(1 for c in export.conversations for _ in watch.each(export.records(c)))
    assert read == 20_000 and size > 6 * 2**20
    peak = watch.peak
    assert peak < size / 5, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"

    counts: Counter[str] = Counter()
    reactions = replies = 0
    with Watch(traced=0) as watch, TelegramExport.open(path) as export:
        assert [c.id for c in export.conversations] == [
            str(-(10**12 + chat_id)) for chat_id, _ in stats.chats
        ]
        for conversation in export.conversations:
            for record in watch.each(export.records(conversation)):
                assert record.change is not None, record.quarantined
                change = record.change
                counts[
                    f"skipped:{change.subtype}" if change.ignored else change.subtype or "message"
                ] += 1
                reactions += record.reactions
                replies += change.external_thread_id is not None
    assert watch.grown < 2_000, f"{watch.grown} blocks more after {watch.untraced} messages"
    assert watch.untraced == 19_999
    assert sum(counts.values()) == stats.messages == 20_000
    assert counts == stats.by_subtype
    assert reactions == stats.reactions
    assert replies == stats.replies
