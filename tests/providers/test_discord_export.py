"""The DiscordChatExporter JSON reader (shared/providers/discord/export.py) on files written
as DCE writes them: what is refused at open, how each kind of message reads (and that it
reads as the Discord API import reads the same message), what is quarantined, resuming
from a checkpoint, and memory on a generated 100,000-message file.

Where the format facts come from (Tyrrrz/DiscordChatExporter):

- the file: `DiscordChatExporter.Core/Exporting/JsonMessageWriter.cs` (`WritePreambleAsync`:
  `guild`, `channel`, `dateRange`, `exportedAt`, then `messages`; `WritePostambleAsync`:
  `messageCount` after them; `WriteMessageAsync`: each message's fields in the order
  `dce_message` writes them; `WriteUserAsync`: `id`, `name`, `discriminator`, `nickname`,
  `color`, `isBot`, `roles`, `avatarUrl`), indented, non-ASCII written as it is
  (`JavaScriptEncoder.UnsafeRelaxedJsonEscaping`);
- `type` names: `Discord/Data/MessageKind.cs`; channel `type` names:
  `Discord/Data/ChannelKind.cs`; the direct-messages pseudo-guild `0`:
  `Discord/Data/Guild.cs`; a thread's parent in `categoryId`/`category`: the comment in
  `WritePreambleAsync`; partitions `<name> [part N].json`: `Exporting/MessageExporter.cs`;
  media in `<file>_Files/`: `Exporting/ExportRequest.cs`;
- rendered content ("User mention: @Tyrrrz", "Text channel mention: #mention-tests", "Role
  mention: @Role 1"): `DiscordChatExporter.Cli.Tests/Specs/JsonMentionSpecs.cs` and
  `Exporting/PlainTextMarkdownVisitor.cs`; raw content with `--markdown false`:
  `Cli/Commands/Base/ExportCommandBase.cs`; attachments' `url`, `fileName`,
  `fileSizeBytes`: `Cli.Tests/Specs/JsonAttachmentSpecs.cs`; stickers' `id`, `name`,
  `format`, `sourceUrl`: `Cli.Tests/Specs/JsonStickerSpecs.cs`; avatar URLs:
  `Discord/Data/Common/ImageCdn.cs`.
"""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shared.kernel.http.tls import tls
from shared.providers import exports
from shared.providers.chat import Attachment, Author, MessageChange, SenderMarks
from shared.providers.discord import export as export_module
from shared.providers.discord.api import DiscordApi
from shared.providers.discord.export import DiscordExport, ExportLimits, ExportRefused
from shared.providers.discord.messages import DiscordChat, avatar_url
from shared.providers.exports import ExportReader
from shared.providers.history import Conversation, HistoryRecord
from tests.memory import Watch

GUILD = {
    "id": "1000000000000000009",
    "name": "Synthwave Club",
    "iconUrl": "https://cdn.discordapp.com/icons/1000000000000000009/abc.png?size=512",
}
GENERAL = "1100000000000000002"
RANDOM = "1100000000000000003"
THREAD = "1100000000000000040"
CATEGORY = "1100000000000000000"
ROLE_MODS = "1300000000000000001"
AVATAR_HASH = "0123456789abcdef0123456789abcdef"
# What a bare file's messages are quarantined and checkpointed under: its channel's name
# and id, as DCE names a file (the uploaded file's own name is not kept).
BARE = f"general [{GENERAL}].json"
ADA_ID, BOB_ID, BOT_ID = "1400000000000000001", "1400000000000000002", "1400000000000000003"


def user(
    user_id: str,
    name: str,
    nickname: str | None = None,
    *,
    avatar: str | None = AVATAR_HASH,
    bot: bool = False,
    roles: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """A user as `WriteUserAsync` writes one (`nickname`: the member's display name)."""
    return {
        "id": user_id,
        "name": name,
        "discriminator": "0000",
        "nickname": nickname or name,
        "color": None,
        "isBot": bot,
        "roles": [
            {"id": role_id, "name": role_name, "color": None, "position": 1}
            for role_id, role_name in roles
        ],
        "avatarUrl": f"https://cdn.discordapp.com/avatars/{user_id}/{avatar}.png?size=512"
        if avatar
        else "https://cdn.discordapp.com/embed/avatars/0.png",
    }


ADA = user(ADA_ID, "ada", "Ada Lovelace", roles=((ROLE_MODS, "Mods"),))
BOB = user(BOB_ID, "bob", avatar=None)
CIBOT = user(BOT_ID, "ci-bot", bot=True)


def utc(n: int) -> datetime:
    """Minute `n` after 2024-03-01 12:00 UTC."""
    return datetime(2024, 3, 1, 12, 0, 0, 123000, tzinfo=UTC) + timedelta(minutes=n)


def moment(n: int) -> str:
    """`utc(n)` as DCE writes it: in the exporter's offset (+02:00 here), to the
    millisecond."""
    return utc(n).astimezone(timezone(timedelta(hours=2))).isoformat(timespec="milliseconds")


def sid(n: int) -> str:
    """Message snowflakes, in order."""
    return str(1200000000000000000 + n)


def dce_message(
    n: int,
    content: str = "",
    *,
    kind: str = "Default",
    author: dict[str, Any] = ADA,
    edited: int | None = None,
    attachments: list[dict[str, Any]] | None = None,
    embeds: list[dict[str, Any]] | None = None,
    stickers: list[dict[str, Any]] | None = None,
    reactions: list[tuple[str, int]] | None = None,
    mentions: list[dict[str, Any]] | None = None,
    reference: str | None = None,
    reference_channel: str = GENERAL,
) -> dict[str, Any]:
    """A message as `WriteMessageAsync` writes it, its fields in that order."""
    found: dict[str, Any] = {
        "id": sid(n),
        "type": kind,
        "timestamp": moment(n),
        "timestampEdited": moment(edited) if edited is not None else None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": attachments or [],
        "components": [],
        "embeds": embeds or [],
        "stickers": stickers or [],
        "reactions": [
            {
                "emoji": {
                    "id": "",
                    "name": emoji,
                    "code": "thumbsup",
                    "isAnimated": False,
                    "imageUrl": "https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/1f44d.svg",
                },
                "count": count,
                "users": [],
            }
            for emoji, count in reactions or []
        ],
        "mentions": mentions or [],
    }
    if reference is not None:
        found["reference"] = {
            "type": "Default",
            "messageId": reference,
            "channelId": reference_channel,
            "guildId": GUILD["id"],
        }
    found["inlineEmojis"] = []
    return found


def channel(
    channel_id: str = GENERAL,
    name: str = "general",
    kind: str = "GuildTextChat",
    parent: tuple[str, str] | None = (CATEGORY, "Text Channels"),
) -> dict[str, Any]:
    return {
        "id": channel_id,
        "type": kind,
        "categoryId": parent[0] if parent else None,
        "category": parent[1] if parent else None,
        "name": name,
        "topic": None,
    }


def dce_file(
    messages: list[Any], chan: dict[str, Any] | None = None, guild: dict[str, Any] = GUILD
) -> bytes:
    """A channel file as the writer writes it: preamble, messages, then messageCount."""
    document = {
        "guild": guild,
        "channel": chan or channel(),
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-03-02T10:00:00.000+02:00",
        "messages": messages,
        "messageCount": len(messages),
    }
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def zipped(path: Path, members: dict[str, bytes], *, stored: bool = False) -> Path:
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def read(export: DiscordExport, conversation: Conversation, **kwargs: Any) -> list[HistoryRecord]:
    return list(export.records(conversation, **kwargs))


def changes(records: list[HistoryRecord]) -> list[MessageChange]:
    return [r.change for r in records if r.change is not None]


def by_id(records: list[HistoryRecord]) -> dict[str, MessageChange]:
    return {c.external_message_id: c for c in changes(records)}


# -- a channel file, message by message -------------------------------------------------------------

ATTACHMENT: dict[str, Any] = {
    "id": "1500000000000000001",
    "url": f"https://cdn.discordapp.com/attachments/{GENERAL}/1500000000000000001/Test.txt?ex=65f1&is=65de&hm=ab12",
    "fileName": "Test.txt",
    "fileSizeBytes": 11,
}
EMBED: dict[str, Any] = {
    "title": "hookhub",
    "url": "https://example.com/hookhub",
    "timestamp": None,
    "description": "An integration hub",
    "images": [],
    "fields": [],
    "inlineEmojis": [],
}
STICKER: dict[str, Any] = {
    "id": "904215665597120572",
    "name": "rock",
    "format": "Apng",
    "sourceUrl": "https://cdn.discordapp.com/stickers/904215665597120572.png",
}


def general_messages() -> list[Any]:
    return [
        dce_message(1, "Hello world", reactions=[("👍", 2), ("🔥", 3)]),
        dce_message(2, "Fixed the typo", author=BOB, edited=9),
        dce_message(3, "Replying to the first", kind="Reply", reference=sid(1)),
        dce_message(4, "Replying to a later one", kind="Reply", reference=sid(7)),
        dce_message(5, "Generic file attachment", attachments=[ATTACHMENT]),
        dce_message(6, "", attachments=[ATTACHMENT]),
        dce_message(7, "Link: https://example.com/hookhub", embeds=[EMBED]),
        dce_message(8, "", embeds=[EMBED], author=CIBOT),
        dce_message(9, "", stickers=[STICKER]),
        dce_message(10, "Joined the server.", kind="GuildMemberJoin", author=BOB),
        dce_message(11, "Pinned a message.", kind="ChannelPinnedMessage", reference=sid(1)),
        dce_message(12, "Started a thread.", kind="ThreadCreated", reference=THREAD),
        dce_message(13, "Pong!", kind="20", author=CIBOT),
        dce_message(14, "Build passed", author=CIBOT),
    ]


@pytest.fixture
def general(tmp_path: Path) -> Path:
    name = f"Synthwave Club - Text Channels - general [{GENERAL}].json"
    return write(tmp_path / name, dce_file(general_messages()))


def test_a_channel_file_opens_as_one_conversation_of_its_guild(general: Path) -> None:
    with DiscordExport.open(general) as export:
        reader: ExportReader = export  # what the importer reads (mypy checks it)
        assert reader.provider == "discord"
        assert export.account == GUILD["id"]
        assert export.guild_name == "Synthwave Club"
        assert export.conversations == [Conversation(GENERAL, "general", "channel")]
        assert export.users() == {}
        assert export.size(export.conversations[0]) == general.stat().st_size
        assert export.files(export.conversations[0]) == [BARE]
        assert export.parent(export.conversations[0]) is None


def test_each_message_reads_as_a_change(general: Path) -> None:
    """Plain, edited (the file keeps the latest text), replies to an earlier and to a later
    message, attachments, reactions counted, ids and times as the API import makes them."""
    with DiscordExport.open(general) as export:
        records = read(export, export.conversations[0])
    assert [r.quarantined for r in records] == [None] * 14
    found = by_id(records)
    ada = Author("Ada Lovelace", avatar_url(ADA_ID, AVATAR_HASH), ADA_ID)
    assert found[sid(1)] == MessageChange(
        kind="created",
        external_channel_id=GENERAL,
        external_message_id=sid(1),
        occurred_at=utc(1),
        text="Hello world",
        author=ada,
        sender=SenderMarks(user_id=ADA_ID),
    )
    assert found[sid(1)].occurred_at.tzinfo is UTC
    assert records[0].reactions == 5
    assert [r.reactions for r in records[1:]] == [0] * 13
    # Edited: the latest text, at the time it was first written.
    assert (found[sid(2)].text, found[sid(2)].occurred_at) == ("Fixed the typo", utc(2))
    assert found[sid(2)].author == Author("bob", avatar_url(BOB_ID, None), BOB_ID)
    # Replies are threaded under what they reply to, earlier or later.
    assert (found[sid(3)].external_thread_id, found[sid(3)].subtype) == (sid(1), "reply")
    assert found[sid(4)].external_thread_id == sid(7)
    assert found[sid(1)].external_thread_id is None
    # A pin notice and a thread notice reference a message or a thread: no replies.
    assert found[sid(11)].external_thread_id is None
    assert found[sid(12)].external_thread_id is None
    # Attachments as links, with or without text.
    attachment = Attachment(url=ATTACHMENT["url"], name="Test.txt")
    assert found[sid(5)].attachments == (attachment,)
    assert (found[sid(6)].text, found[sid(6)].attachments, found[sid(6)].ignored) == (
        "",
        (attachment,),
        None,
    )
    # An embed is not imported (as the API import does not): the text is.
    assert (found[sid(7)].text, found[sid(7)].ignored) == (
        "Link: https://example.com/hookhub",
        None,
    )
    # A bot's message is a message, marked.
    assert found[sid(14)].sender == SenderMarks(user_id=BOT_ID, is_bot=True)
    assert found[sid(14)].ignored is None


def test_system_messages_and_empty_ones_are_skipped_and_counted_by_type(general: Path) -> None:
    """System types are ignored under the API import's subtype (a type DCE has no name for
    is written as its number: 20 is a slash command's answer); a message with only an embed
    carries nothing the import takes (`skipped:empty`, saying why); one with only a sticker
    is a message, the sticker named and linked."""
    with DiscordExport.open(general) as export:
        records = read(export, export.conversations[0])
    found = by_id(records)
    skipped = Counter(c.subtype or "message" for c in found.values() if c.ignored)
    assert skipped == Counter(
        {
            "user_join": 1,
            "channel_pinned_message": 1,
            "thread_created": 1,
            "chat_input_command": 1,
            "empty": 1,
        }
    )
    assert found[sid(10)].ignored == "Discord system message (user_join)"
    assert "embed" in (found[sid(8)].ignored or "")
    assert found[sid(9)].text == "[sticker: rock]"
    assert found[sid(9)].attachments == (Attachment(url=STICKER["sourceUrl"], name="rock.png"),)
    imported = Counter(c.subtype or "message" for c in found.values() if not c.ignored)
    assert imported == Counter({"message": 7, "reply": 2})


@pytest.mark.parametrize(
    ("kind", "subtype"),
    [
        ("RecipientAdd", "recipient_add"),
        ("RecipientRemove", "recipient_remove"),
        ("Call", "call"),
        ("ChannelNameChange", "channel_name_change"),
        ("ChannelIconChange", "channel_icon_change"),
        ("21", "thread_starter_message"),
        ("46", "poll_result"),
        ("999", "type_999"),
        ("GuildBoost", "guild_boost"),
    ],
)
def test_every_system_type_is_named_as_the_api_import_names_it(
    tmp_path: Path, kind: str, subtype: str
) -> None:
    path = write(tmp_path / "c.json", dce_file([dce_message(1, "Added a recipient.", kind=kind)]))
    with DiscordExport.open(path) as export:
        [record] = read(export, export.conversations[0])
    assert record.change is not None
    assert (record.change.subtype, record.change.ignored) == (
        subtype,
        f"Discord system message ({subtype})",
    )


# -- mentions: raw markup and DCE's rendered text -----------------------------------------------------


def test_raw_markup_is_made_readable_with_the_names_the_file_gives(tmp_path: Path) -> None:
    """With `--markdown false` the content is Discord's markup: users are named from the
    message's `mentions` (else an author seen before), channels from the export's files,
    roles from the authors' `roles`, emoji and timestamps as live sync renders them."""
    carol = user("1400000000000000004", "carol", "Carol C")
    messages = [
        dce_message(1, "first", author=BOB),
        dce_message(
            2,
            f"<@{carol['id']}> and <@!{BOB_ID}>: see <#{RANDOM}> and <#{GENERAL}>, ask <@&{ROLE_MODS}> "
            "<:blob:1600000000000000001> <a:dance:1600000000000000002> at <t:1709294400:R>",
            mentions=[carol],
        ),
        dce_message(
            3, "<@1400000000000000099> <#1100000000000000099> </deploy:1700000000000000001>"
        ),
    ]
    path = zipped(
        tmp_path / "export.zip",
        {
            "general.json": dce_file(messages),
            "random.json": dce_file([], channel(RANDOM, "random")),
        },
    )
    with DiscordExport.open(path) as export:
        found = by_id(read(export, export.conversations[0]))
    assert found[sid(2)].text == (
        "@Carol C and @bob: see #random and #general, ask @Mods :blob: :dance: at "
        "2024-03-01T12:00:00Z"
    )
    # Unknown ids as live sync shows them.
    assert found[sid(3)].text == "@1400000000000000099 #1100000000000000099 /deploy"


async def test_rendered_text_is_kept_as_it_is_and_not_rendered_twice(tmp_path: Path) -> None:
    """DCE's default output (`JsonMentionSpecs.cs`) has no markup left: it comes through
    unchanged, and what the reader makes of raw markup is left alone by the importer's
    own `render` (it runs on every imported text)."""
    rendered = [
        "User mention: @Tyrrrz",
        "Text channel mention: #mention-tests",
        "Role mention: @Role 1",
        "Voice channel mention: #general [voice]",
        "I <3 this, a < b > c, :blob:",
    ]
    raw = f"<@{BOB_ID}> <#{GENERAL}>"
    messages = [dce_message(n, text) for n, text in enumerate(rendered, 1)]
    messages.append(dce_message(9, raw, mentions=[BOB]))
    path = write(tmp_path / "c.json", dce_file(messages))
    with DiscordExport.open(path) as export:
        texts = [c.text for c in changes(read(export, export.conversations[0]))]
    assert texts == [*rendered, "@bob #general"]
    async with httpx.AsyncClient(verify=tls()) as client:
        chat = DiscordChat(DiscordApi(client, "http://127.0.0.1:9/api/v10"))

        async def nobody(user_id: str) -> Author | None:
            return None

        assert [await chat.render(text, nobody) for text in texts] == texts


# -- the same message from the API ---------------------------------------------------------------------


class OnePage(DiscordApi):
    """Discord's `GET /channels/{id}/messages` answering one page, newest first."""

    def __init__(self, page: list[dict[str, Any]]) -> None:
        super().__init__(httpx.AsyncClient(verify=tls()), "http://127.0.0.1:9/api/v10")
        self.page = page

    async def messages(
        self,
        token: str,
        channel_id: str,
        *,
        after: str | None = None,
        before: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        page, self.page = self.page, []
        return page


def api_message(n: int, content: str, **fields: Any) -> dict[str, Any]:
    """A message as the API lists it (docs: resources/message, the message object; no
    `guild_id` or `member` in a channel's message list)."""
    return {
        "id": sid(n),
        "channel_id": GENERAL,
        "type": 0,
        "content": content,
        "timestamp": utc(n).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "author": {
            "id": ADA_ID,
            "username": "ada",
            "global_name": "Ada Lovelace",
            "discriminator": "0",
            "avatar": AVATAR_HASH,
        },
        **fields,
    }


async def test_the_same_messages_from_the_api_make_the_same_changes(tmp_path: Path) -> None:
    """An export and an API import of one channel are one set of messages: the same ids,
    channel, time, author, text, thread, attachments, subtype and marks. (The export has no
    attachment content type.)"""
    api_attachment = {
        "id": ATTACHMENT["id"],
        "filename": "Test.txt",
        "size": 11,
        "url": ATTACHMENT["url"],
        "proxy_url": ATTACHMENT["url"].replace("cdn.discordapp.com", "media.discordapp.net"),
        "content_type": "text/plain; charset=utf-8",
    }
    page = [
        api_message(
            1, "Hello world", reactions=[{"count": 2, "emoji": {"id": None, "name": "👍"}}]
        ),
        api_message(2, "Generic file attachment", attachments=[api_attachment]),
        api_message(
            3,
            "Replying",
            type=19,
            message_reference={"type": 0, "message_id": sid(1), "channel_id": GENERAL},
        ),
        api_message(4, "", type=7),
        api_message(
            5, "Bleep", author={"id": BOT_ID, "username": "ci-bot", "bot": True, "avatar": None}
        ),
    ]
    dce = [
        dce_message(1, "Hello world", reactions=[("👍", 2)]),
        dce_message(2, "Generic file attachment", attachments=[ATTACHMENT]),
        dce_message(3, "Replying", kind="Reply", reference=sid(1)),
        dce_message(4, "Joined the server.", kind="GuildMemberJoin"),
        dce_message(
            5,
            "Bleep",
            author=CIBOT | {"avatarUrl": "https://cdn.discordapp.com/embed/avatars/1.png"},
        ),
    ]
    chat = DiscordChat(OnePage(list(reversed(page))))
    from_api = [r async for r in chat.import_records("token", GENERAL, oldest=None, latest=None)]
    path = write(tmp_path / "c.json", dce_file(dce))
    with DiscordExport.open(path) as export:
        from_file = read(export, export.conversations[0])
    assert [r.reactions for r in from_file] == [r.reactions for r in from_api]
    for api_record, file_record in zip(from_api, from_file, strict=True):
        assert api_record.change is not None and file_record.change is not None
        expected = replace(
            api_record.change,
            attachments=tuple(replace(a, mime_type=None) for a in api_record.change.attachments),
        )
        if expected.ignored:  # a system message: DCE writes its own sentence as the text
            assert (file_record.change.subtype, file_record.change.ignored) == (
                expected.subtype,
                expected.ignored,
            )
            continue
        assert file_record.change == expected


# -- ZIPs of several files ------------------------------------------------------------------------------


def test_a_zip_of_channels_threads_and_partitions(tmp_path: Path) -> None:
    """Each channel file is a conversation (a partitioned channel's files read in order), a
    thread one of its own under its id with its parent noted; media folders and macOS's
    metadata are not read; a .json file that is not a DCE export is left out and listed."""
    base = f"Synthwave Club - Text Channels - general [{GENERAL}]"
    thread_channel = channel(THREAD, "Release 1.0", "GuildPublicThread", (GENERAL, "general"))
    members = {
        f"export/{base} [part 2].json": dce_file([dce_message(3, "three"), dce_message(4, "four")]),
        f"export/{base}.json": dce_file([dce_message(1, "one"), dce_message(2, "two")]),
        f"export/{base}.json_Files/config-1a2b3.json": b'{"not": "an export"}',
        f"export/{base}.json_Files/avatar-9f8e7.png": b"\x89PNG",
        "export/random.json": dce_file([dce_message(5, "five")], channel(RANDOM, "random")),
        "export/thread.json": dce_file(
            [dce_message(6, "", kind="21"), dce_message(7, "in the thread")], thread_channel
        ),
        "export/notes.json": b'{"notes": []}',
        "__MACOSX/export/._random.json": b"\x00\x05\x16\x07",
        "export/index.html": b"<html></html>",
    }
    path = zipped(tmp_path / "export.zip", members)
    with DiscordExport.open(path) as export:
        assert export.account == GUILD["id"]
        assert export.conversations == [
            Conversation(GENERAL, "general", "channel"),
            Conversation(RANDOM, "random", "channel"),
            Conversation(THREAD, "Release 1.0", "thread"),
        ]
        general, random, thread = export.conversations
        assert export.files(general) == [f"export/{base}.json", f"export/{base} [part 2].json"]
        assert export.parent(thread) == (GENERAL, "general")
        assert export.parent(general) is None
        assert [(q.file, q.position) for q in export.skipped_files] == [("export/notes.json", None)]
        assert "no channel object" in export.skipped_files[0].reason
        assert export.skipped_total == 1
        assert [c.text for c in changes(read(export, general))] == ["one", "two", "three", "four"]
        assert [c.text for c in changes(read(export, random))] == ["five"]
        in_thread = changes(read(export, thread))
        assert {c.external_channel_id for c in in_thread} == {THREAD}
        assert [(c.text, c.subtype) for c in in_thread] == [
            ("", "thread_starter_message"),
            ("in the thread", None),
        ]


def test_a_direct_messages_export_has_no_account(tmp_path: Path) -> None:
    """DCE exports direct messages under the pseudo-guild 0 ("Direct Messages")."""
    dms = {
        "id": "0",
        "name": "Direct Messages",
        "iconUrl": "https://cdn.discordapp.com/embed/avatars/0.png",
    }
    members = {
        "dm.json": dce_file(
            [dce_message(1, "hi"), dce_message(2, "Added a recipient.", kind="RecipientAdd")],
            channel("1100000000000000050", "bob", "DirectTextChat", None),
            dms,
        ),
        "group.json": dce_file(
            [dce_message(3, "hello all")],
            channel("1100000000000000051", "bob, carol", "DirectGroupTextChat", None),
            dms,
        ),
    }
    with DiscordExport.open(zipped(tmp_path / "dms.zip", members)) as export:
        assert export.account is None
        assert [(c.name, c.kind) for c in export.conversations] == [
            ("bob", "dm"),
            ("bob, carol", "mpim"),
        ]
        dm = changes(read(export, export.conversations[0]))
    # Direct messages are imported (live sync does not bridge them; an import can).
    assert [(c.text, c.ignored) for c in dm] == [
        ("hi", None),
        ("Added a recipient.", "Discord system message (recipient_add)"),
    ]


def test_downloaded_media_paths_become_links_again(tmp_path: Path) -> None:
    """With `--media`, DCE writes the downloaded files' paths instead of their URLs."""
    local = dict(ATTACHMENT, url=f"general [{GENERAL}].json_Files/Test-5d41a.txt")
    author = ADA | {"avatarUrl": f"general [{GENERAL}].json_Files/{AVATAR_HASH}-0cc17.png"}
    path = write(
        tmp_path / "c.json", dce_file([dce_message(1, "file", attachments=[local], author=author)])
    )
    with DiscordExport.open(path) as export:
        [change] = changes(read(export, export.conversations[0]))
    assert change.attachments == (
        Attachment(
            url=f"https://cdn.discordapp.com/attachments/{GENERAL}/{ATTACHMENT['id']}/Test.txt",
            name="Test.txt",
        ),
    )
    assert change.author is not None
    assert change.author.avatar_url == avatar_url(ADA_ID, None)


def test_a_file_with_a_byte_order_mark_and_fields_in_another_order(tmp_path: Path) -> None:
    """A file saved again by an editor (a BOM), or written by another tool with `messages`
    before `channel`: the head is read on until the channel is found."""
    document = {"messages": [dce_message(1, "one")], "channel": channel(), "guild": GUILD}
    path = write(tmp_path / "c.json", b"\xef\xbb\xbf" + json.dumps(document).encode())
    with DiscordExport.open(path) as export:
        assert export.conversations == [Conversation(GENERAL, "general", "channel")]
        assert [c.text for c in changes(read(export, export.conversations[0]))] == ["one"]


# -- refused at open ------------------------------------------------------------------------------------


def refused(path: Path, limits: ExportLimits | None = None) -> ExportRefused:
    with pytest.raises(ExportRefused) as caught:
        DiscordExport.open(path, limits)
    return caught.value


@pytest.mark.parametrize("content", [b"", b"hello", b"<html></html>", b"\x89PNG\r\n"])
def test_a_file_that_is_neither_zip_nor_json_is_refused_with_400(
    tmp_path: Path, content: bytes
) -> None:
    error = refused(write(tmp_path / "export", content))
    assert (error.code, error.status) == ("not_an_export_file", 400)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (
            b'{"name": "Saved Messages", "type": "saved_messages", "id": 1, "messages": []}',
            "no channel object",
        ),
        (b'{"channel": {"name": "general"}, "messages": []}', "no channel object with an id"),
        (b'{"guild": {"id": "1"}, "channel": {"id": "2"}}', "no messages array"),
        (b'{"channel": {"id": "2"}, "messages": {"1": {}}}', "not an array"),
        (b"[]", "array, not an object"),
        (b'{"channel": {"id": "2", "name": "gen', "not valid JSON"),
        (b"{", "not valid JSON"),
    ],
)
def test_json_that_is_not_a_dce_export_is_refused(tmp_path: Path, content: bytes, why: str) -> None:
    error = refused(write(tmp_path / "result.json", content))
    assert (error.code, error.status) == ("not_a_discord_export", 422)
    assert why in error.message


def test_a_zip_without_any_dce_file_is_refused(tmp_path: Path) -> None:
    error = refused(
        zipped(tmp_path / "e.zip", {"result.json": b'{"chats": {"list": []}}', "a.txt": b"x"})
    )
    assert error.code == "not_a_discord_export"
    assert "result.json" in error.message
    error = refused(zipped(tmp_path / "f.zip", {"a.txt": b"x"}))
    assert "no .json file" in error.message


def test_files_of_two_servers_in_one_zip_are_refused(tmp_path: Path) -> None:
    other = {"id": "2000000000000000001", "name": "Other Server", "iconUrl": ""}
    dms = {"id": "0", "name": "Direct Messages", "iconUrl": ""}
    for second in (other, dms):
        members = {
            "a.json": dce_file([dce_message(1, "a")]),
            "b.json": dce_file([dce_message(2, "b")], channel(RANDOM, "random"), second),
        }
        error = refused(zipped(tmp_path / "two.zip", members))
        assert error.code == "not_a_discord_export"
        assert "more than one server" in error.message
        assert second["name"] in error.message


@pytest.fixture
def heads_read(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The files whose head was read (none may be, when the ZIP is refused)."""
    calls: list[Any] = []
    real = export_module._header

    def recorded(stream: Any) -> Any:
        calls.append(stream)
        return real(stream)

    monkeypatch.setattr(export_module, "_header", recorded)
    return calls


@pytest.mark.parametrize(
    "member",
    [
        "../outside.json",
        "/etc/passwd.json",
        "a\\..\\b.json",
        "C:/evil.json",
        "gen\neral.json",
        "a/../../b.json",
    ],
)
def test_path_tricks_are_refused_before_anything_is_read(
    tmp_path: Path, member: str, heads_read: list[Any]
) -> None:
    members = {"general.json": dce_file([dce_message(1, "hi")]), member: b"{}"}
    error = refused(zipped(tmp_path / "e.zip", members))
    assert (error.code, error.status) == ("unsafe_member_name", 422)
    assert heads_read == []


def test_a_member_twice_is_refused_before_anything_is_read(
    tmp_path: Path, heads_read: list[Any]
) -> None:
    path = tmp_path / "e.zip"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("general.json", dce_file([]))
        archive.writestr("general.json", dce_file([]))
    assert refused(path).code == "unsafe_member_name"
    assert heads_read == []


def test_a_bomb_and_too_many_members_are_refused_before_anything_is_read(
    tmp_path: Path, heads_read: list[Any]
) -> None:
    # The bomb comes after a good channel file: the whole directory is checked first.
    members = {"general.json": dce_file([dce_message(1, "hi")]), "z.json": b" " * (8 * 2**20)}
    path = zipped(tmp_path / "bomb.zip", members)
    error = refused(path)
    assert (error.code, error.status) == ("zip_bomb", 422)
    assert "z.json" in error.message
    assert refused(path, ExportLimits(max_members=1)).code == "too_many_members"
    assert refused(path, ExportLimits(max_uncompressed_bytes=2**20)).code == "export_too_large"
    assert heads_read == []
    # The same ZIP within the limits: now the files' heads are read.
    with DiscordExport.open(path, ExportLimits(max_ratio=10_000)) as export:
        assert [c.id for c in export.conversations] == [GENERAL]
    assert len(heads_read) == 2


def test_a_bare_file_over_the_size_limit_is_refused(general: Path) -> None:
    assert refused(general, ExportLimits(max_uncompressed_bytes=100)).code == "export_too_large"


# -- quarantine ------------------------------------------------------------------------------------------


def test_malformed_messages_are_quarantined_with_their_position(tmp_path: Path) -> None:
    messages = [
        dce_message(1, "one"),
        "not a message",
        dce_message(3, "no id") | {"id": None},
        dce_message(4, "bad id") | {"id": "12ab"},
        dce_message(5, "no timestamp") | {"timestamp": None},
        dce_message(6, "bad timestamp") | {"timestamp": "yesterday"},
        dce_message(7, "odd type") | {"type": ["Default"]},
        dce_message(8, "odd fields")
        | {
            "author": "ada",
            "attachments": "x",
            "reactions": {"count": 3},
            "mentions": 5,
            "content": 5,
        },
        dce_message(9, "nine"),
    ]
    path = write(tmp_path / "general.json", dce_file(messages))
    with DiscordExport.open(path) as export:
        records = read(export, export.conversations[0])
    quarantined = [(r.quarantined.file, r.quarantined.position) for r in records if r.quarantined]
    assert quarantined == [(BARE, n) for n in (1, 2, 3, 4, 5, 6)]
    reasons = [r.quarantined.reason for r in records if r.quarantined]
    assert "not a JSON object but a string" in reasons[0]
    assert "no valid id" in reasons[1] and "no valid id" in reasons[2]
    assert "no valid timestamp" in reasons[3] and "no valid timestamp" in reasons[4]
    assert "type" in reasons[5]
    # Fields of the wrong type are read as absent: no text, author or file left to import.
    odd = by_id(records)[sid(8)]
    assert (odd.text, odd.author, odd.attachments, odd.sender) == ("", None, (), SenderMarks())
    assert "no text, file or sticker" in (odd.ignored or "")
    assert records[7].reactions == 0
    assert [c.text for c in changes(records)] == ["one", "", "nine"]
    assert [r.checkpoint for r in records] == [{"file": BARE, "index": i} for i in range(9)]


def test_a_file_that_stops_being_json_midway_is_read_up_to_there(tmp_path: Path) -> None:
    whole = dce_file([dce_message(n, f"message {n}") for n in range(1, 6)])
    cut = whole.index(b'"message 4"')
    broken = write(
        tmp_path / "general.json", whole[:cut] + b"message 4 without quotes" + whole[cut + 11 :]
    )
    truncated = write(tmp_path / "truncated.json", whole[: whole.index(b'"message 5"')])
    for path in (broken, truncated):
        with DiscordExport.open(path) as export:
            records = read(export, export.conversations[0])
        assert [c.text for c in changes(records)] == [f"message {n}" for n in range(1, 4)] + (
            ["message 4"] if path is truncated else []
        )
        last = records[-1]
        assert last.quarantined is not None
        assert (last.quarantined.file, last.quarantined.position) == (
            BARE,
            3 if path is broken else 4,
        )
        assert "not valid JSON" in last.quarantined.reason
        assert last.checkpoint == {"file": BARE, "index": None}
        assert last.done == 1.0


def corrupted(path: Path, members: dict[str, bytes], text: bytes) -> Path:
    """A ZIP of stored members where `text` (in one of them) is changed after the CRC-32 was
    computed."""
    zipped(path, members, stored=True)
    data = bytearray(path.read_bytes())
    at = data.index(text)
    data[at : at + len(text)] = text.upper()
    path.write_bytes(data)
    return path


def test_a_member_with_a_bad_crc_is_read_then_quarantined(tmp_path: Path) -> None:
    """A member is inflated a megabyte at a time and its CRC-32 checked at its end: what was
    read stands, the end is quarantined where it was found."""
    messages = [dce_message(n, f"message {n} " + "x" * 1000) for n in range(1500)]
    content = dce_file(messages)
    assert len(content) > 2 * 2**20
    path = corrupted(tmp_path / "e.zip", {"general.json": content}, b"message 1499")
    with DiscordExport.open(path) as export:
        records = read(export, export.conversations[0])
    assert len(changes(records)) == 1500
    assert changes(records)[-1].text.startswith("MESSAGE 1499")
    last = records[-1]
    assert last.quarantined is not None
    assert "CRC" in last.quarantined.reason
    assert (last.quarantined.file, last.quarantined.position) == ("general.json", 1500)


def test_a_small_member_with_a_bad_crc_is_read_then_quarantined_too(tmp_path: Path) -> None:
    """Opening reads only a member's head, so a bad CRC-32 is found while it is read."""
    members = {
        "general.json": dce_file([dce_message(1, "one")]),
        "random.json": dce_file([dce_message(2, "two")], channel(RANDOM, "random")),
    }
    path = corrupted(tmp_path / "e.zip", members, b'"two"')
    with DiscordExport.open(path) as export:
        assert [c.id for c in export.conversations] == [GENERAL, RANDOM]
        assert export.skipped_files == []
        records = read(export, export.conversations[1])
    assert [c.text for c in changes(records)] == ["TWO"]
    assert records[-1].quarantined is not None
    assert "CRC" in records[-1].quarantined.reason
    assert records[-1].quarantined.position == 1


# -- nesting too deep, a value too long ------------------------------------------------------------------

# ijson builds a prefix string for every level a value nests (`item.item.item...`, its C
# backend too): a few hundred kilobytes of brackets would take gigabytes (a 400 KB file of
# `[` got a process killed for its memory).
DEEP = 400_000


def deep_file(where: str, levels: int = DEEP) -> bytes:
    """A channel file of three messages with `levels` of `[` (and as many `]`) where the
    second message's content goes (`message`), or as a field before `messages`."""
    nested = b"[" * levels + b"]" * levels
    content = dce_file([dce_message(1, "before"), dce_message(2, "DEEP"), dce_message(3, "after")])
    if where == "message":
        return content.replace(b'"DEEP"', nested)
    return content.replace(b'"exportedAt"', b'"deep": ' + nested + b',\n  "exportedAt"')


def too_deep_at(content: bytes, depth: int) -> int:
    """The offset of the first `[` of the run that opens level 65, the run starting at
    `depth` (the levels of the objects and arrays around it)."""
    return content.index(b"[" * 100) + 64 - depth


@pytest.mark.parametrize("zip_it", [False, True], ids=["bare", "zipped"])
def test_values_nested_too_deep_in_a_message_are_quarantined_not_parsed(
    tmp_path: Path, zip_it: bool
) -> None:
    """Opening reads a file up to its messages; reading checks the rest before ijson is
    given it: the message before is read, the rest of the file is quarantined from the
    message that nests too deep, saying where, in a few megabytes."""
    content = deep_file("message")
    if zip_it:
        path, name = zipped(tmp_path / "e.zip", {"general.json": content}), "general.json"
    else:
        path, name = write(tmp_path / "general.json", content), BARE
    tracemalloc.start()
    try:
        with DiscordExport.open(path) as export:
            records = read(export, export.conversations[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert [c.text for c in changes(records)] == ["before"]
    last = records[-1].quarantined
    assert last is not None and (last.file, last.position) == (name, 1)
    # The document, `messages` and the message are levels 1 to 3.
    at = too_deep_at(content, 3)
    assert f"values nest deeper than 64 levels (at byte {at})" in last.reason
    assert records[-1].checkpoint == {"file": name, "index": None}


def test_values_nested_too_deep_before_the_messages(tmp_path: Path) -> None:
    """The head is read to find the channel: nested too deep there, the file is no export
    (refused bare; in a ZIP left out, the other files read)."""
    content = deep_file("head")
    at = too_deep_at(content, 1)
    tracemalloc.start()
    try:
        error = refused(write(tmp_path / "general.json", content))
        members = {
            "general.json": content,
            "random.json": dce_file([dce_message(4, "elsewhere")], channel(RANDOM, "random")),
        }
        with DiscordExport.open(zipped(tmp_path / "e.zip", members)) as export:
            assert [c.id for c in export.conversations] == [RANDOM]
            (skipped,) = export.skipped_files
            records = read(export, export.conversations[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert (error.code, error.status) == ("not_a_discord_export", 422)
    assert f"values nest deeper than 64 levels (at byte {at})" in error.message
    assert skipped.file == "general.json"
    assert f"values nest deeper than 64 levels (at byte {at})" in skipped.reason
    assert [c.text for c in changes(records)] == ["elsewhere"]


def test_a_value_that_runs_on_is_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """yajl holds a string (or a number) until it ends: one longer than the limit is not
    read (the limit is 64 MiB; 100,000 bytes here)."""
    monkeypatch.setattr(exports, "MAX_VALUE_BYTES", 100_000)
    messages = [dce_message(1, "before"), dce_message(2, "x" * 300_000), dce_message(3, "after")]
    path = write(tmp_path / "general.json", dce_file(messages))
    with DiscordExport.open(path) as export:
        records = read(export, export.conversations[0])
    assert [c.text for c in changes(records)] == ["before"]
    last = records[-1].quarantined
    assert last is not None and last.position == 1
    assert "a value runs on for more than 100000 bytes" in last.reason


# -- checkpoints -----------------------------------------------------------------------------------------


@pytest.fixture
def parts(tmp_path: Path) -> Path:
    """general in three partitions (one with a quarantined message), 2,500 messages."""
    base = "general"
    numbers = iter(range(1, 10_000))
    files = {}
    for part, count in ((1, 1200), (2, 1000), (3, 300)):
        name = f"{base}.json" if part == 1 else f"{base} [part {part}].json"
        messages: list[Any] = [
            dce_message(n, f"m{n}") for n in (next(numbers) for _ in range(count))
        ]
        if part == 2:
            messages[10] = 42
        files[name] = dce_file(messages)
    return zipped(tmp_path / "e.zip", files)


def test_resuming_from_any_checkpoint_yields_exactly_the_rest(parts: Path) -> None:
    with DiscordExport.open(parts) as export:
        conversation = export.conversations[0]
        whole = read(export, conversation)
        assert len(whole) == 2500
        for at in (0, 1, 999, 1199, 1200, 1209, 1210, 2199, 2200, 2498):
            rest = read(export, conversation, after=whole[at].checkpoint)
            assert [r.checkpoint for r in rest] == [r.checkpoint for r in whole[at + 1 :]]
            assert [r.change for r in rest] == [r.change for r in whole[at + 1 :]]
            assert rest[0].page_start if rest else True
        assert read(export, conversation, after=whole[-1].checkpoint) == []
        # After a message's id: what was written after it.
        assert changes(read(export, conversation, after={"after": sid(2000)})) == changes(
            whole[2000:]
        )
        for bad in ({"file": "other.json", "index": 1}, {"file": 3}, {"after": "x"}, {"index": 2}):
            with pytest.raises(ValueError, match=r"checkpoint|not a file"):
                read(export, conversation, after=bad)


def test_a_bare_file_resumes_from_another_copy_of_it(general: Path, tmp_path: Path) -> None:
    """A resumed job reads a new scratch copy of the upload, under another name."""
    with DiscordExport.open(general) as export:
        whole = read(export, export.conversations[0])
    copy = write(tmp_path / "upload-1234.tmp", general.read_bytes())
    with DiscordExport.open(copy) as export:
        rest = read(export, export.conversations[0], after=whole[4].checkpoint)
    assert changes(rest) == changes(whole[5:])


def test_done_grows_to_one_and_pages_start_every_thousand(parts: Path) -> None:
    with DiscordExport.open(parts) as export:
        records = read(export, export.conversations[0])
    done = [r.done for r in records]
    assert done == sorted(done)
    assert 0 < done[0] < 0.5 and done[-1] == 1.0
    starts = [i for i, r in enumerate(records) if r.page_start]
    # Each file's first message, then every 1,000th of a file.
    assert starts == [0, 1000, 1200, 2200]


# -- memory ---------------------------------------------------------------------------------------------


def generated(path: Path, count: int) -> Path:
    """A DCE file of `count` messages, written a message at a time."""
    head = dce_file([]).decode()
    start = head.index('"messages": [') + len('"messages": [')
    with path.open("wb") as out:
        out.write(head[:start].encode() + b"\n")
        for n in range(count):
            text = f"message {n}: " + "lorem ipsum dolor sit amet " * 3
            message = dce_message(
                n, text, author=ADA if n % 3 else BOB, reactions=[("👍", 1)] if n % 7 == 0 else None
            )
            out.write((b"," if n else b"") + orjson.dumps(message, option=orjson.OPT_INDENT_2))
        out.write(f'\n  ],\n  "messageCount": {count}\n}}\n'.encode())
    return path


def test_a_20000_message_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """Reading a file one message at a time, a file of 20,000 messages (about 17 MB) read
    twice. Traced: the peak of Python's allocations over the first pass (the outline: a few
    bytes a message) and the first 1,000 messages stays under 1 MiB (it would be the size
    of the file and more were the file kept; ~0.5 MiB measured). Untraced: the 19,999
    messages after the first leave no more allocated than before (were the records, or
    anything of each, kept: tens of thousands of blocks more). A file of 100,000 and of a
    million is `make bench --only import`'s. tests/memory.py says why a long read is not
    traced."""
    path = generated(tmp_path / "big.json", 20_000)
    assert path.stat().st_size > 15_000_000
    with DiscordExport.open(path) as export, Watch(traced=1_000) as watch:
        assert sum(1 for _ in watch.each(export.records(export.conversations[0]))) == 20_000
    assert watch.peak < 2**20, f"peak {watch.peak} bytes for a file of {path.stat().st_size}"

    with DiscordExport.open(path) as export, Watch(traced=0) as watch:
        records = watch.each(export.records(export.conversations[0]))
        reactions = sum(record.reactions for record in records)
    assert watch.count == 20_000 and watch.untraced == 19_999
    assert reactions == len(range(0, 20_000, 7))
    assert watch.grown < 2_000, f"{watch.grown} blocks more after 19,999 messages"


def test_a_zipped_file_is_streamed_as_it_inflates(tmp_path: Path) -> None:
    """The same from a ZIP member: inflated a megabyte at a time (the compressed chunk,
    the inflated piece and the reader's buffer), whatever its size."""
    big = generated(tmp_path / "big.json", 20_000)
    path = tmp_path / "e.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(big, "general.json")
    size = big.stat().st_size
    big.unlink()
    with DiscordExport.open(path) as export, Watch(traced=1_000) as watch:
        count = sum(1 for _ in watch.each(export.records(export.conversations[0])))
    assert count == 20_000
    assert size > 15_000_000
    assert watch.peak < 8 * 2**20, f"peak {watch.peak} bytes for a member of {size}"
    assert watch.grown < 2_000, f"{watch.grown} blocks more after 19,000 messages"
