"""DiscordChatExporter's JSON exports as an import source (SPEC §9): one channel file, or a
ZIP of several, checked before any job runs, then read one message at a time in bounded
memory, each message becoming the change the Discord API import makes of it.

What a file is (Tyrrrz/DiscordChatExporter, `DiscordChatExporter.Core/Exporting/
JsonMessageWriter.cs`, read at commits 08524e94 and 4e3deb40; the 2021 writer at
`Exporting/Json/JsonMessageWriter.cs`, 6917406): one JSON object per channel, written in this
order: `guild` (`id`, `name`, `iconUrl`), `channel` (`id`, `type`, `categoryId`,
`category`, `name`, `topic`, and `iconUrl` for a group DM), `dateRange` (`after`,
`before`), `exportedAt`, then the `messages` array, and `messageCount` after it. So the
channel is known from a file's first kilobytes, and the message count only at its end.

- Direct messages are exported under a pseudo-guild of id `0`, "Direct Messages"
  (`Discord/Data/Guild.cs`, `Guild.DirectMessages` = `Snowflake.Zero`).
- `channel.type` is `ChannelKind.ToString()` (`Discord/Data/ChannelKind.cs`):
  `GuildTextChat`, `DirectTextChat`, `GuildVoiceChat`, `DirectGroupTextChat`,
  `GuildCategory`, `GuildNews`, `GuildNewsThread`, `GuildPublicThread`,
  `GuildPrivateThread`, `GuildStageVoice`, `GuildDirectory`, `GuildForum`.
- A thread is exported as a channel file of its own, its `categoryId`/`category` being
  the thread's parent channel ("Original schema did not account for threads, so
  'category' actually refers to the parent channel", JsonMessageWriter.cs).
- A long export split with `--partition` is several files of one channel: the first named
  as usual, the others `<name> [part N].json`, each with the same `guild` and `channel`
  (`Exporting/MessageExporter.cs`, `GetPartitionFilePath`). Downloaded media (`--media`)
  go to `<file>_Files/` (`Exporting/ExportRequest.cs`, `AssetsDirPath`).
- A message: `id`, `type`, `timestamp`, `timestampEdited`, `callEndedTimestamp`,
  `isPinned`, `content`, `author` (`id`, `name` = username, `discriminator`, `nickname`,
  `color`, `isBot`, `roles`, `avatarUrl`), `attachments` (`id`, `url`, `fileName`,
  `fileSizeBytes`), `components`, `embeds`, `stickers`, `reactions` (`emoji`, `count`,
  `users`), `mentions` (users, written as authors are), `reference` (`type`, `messageId`,
  `channelId`, `guildId`), `forwardedMessage`, `interaction`, `inlineEmojis`.
- `type` is `MessageKind.ToString()` (`Discord/Data/MessageKind.cs`, commit 5abe748):
  `Default` 0, `RecipientAdd` 1, `RecipientRemove` 2, `Call` 3, `ChannelNameChange` 4,
  `ChannelIconChange` 5, `ChannelPinnedMessage` 6, `GuildMemberJoin` 7, `ThreadCreated` 18,
  `Reply` 19. Any other Discord type is cast to the enum as it is (`Message.Parse`), and
  .NET writes an enum value without a name as its number: `"20"` for a slash command's
  answer, `"21"` for a thread's starter message.
- `timestamp` is the moment in the exporter's local offset, or UTC with `--utc`
  (`ExportContext.NormalizeDate`), as ISO 8601 with its offset.
- `nickname` is the member's display name: server nickname, else global name, else
  username (`TryGetMember(id)?.DisplayName ?? user.DisplayName`; `User.cs`: DisplayName =
  `global_name` ?? `username`); the 2021 writer wrote the nickname or the username.
- `avatarUrl` is `https://cdn.discordapp.com/avatars/{id}/{hash}.{png|gif}?size=512` (the
  server avatar's URL when the member has one), or the default avatar
  `embed/avatars/{n}.png` (`Discord/Data/Common/ImageCdn.cs`); with `--media`, every
  asset URL (avatars, attachments) is the downloaded file's path instead
  (`ExportContext.ResolveAssetUrlAsync`).
- `content` is rendered by default (`--markdown`, default true,
  `Cli/Commands/Base/ExportCommandBase.cs`): mentions as `@display name`, `#channel`,
  `@role`, custom emoji as `:name:`, timestamps as local dates
  (`Exporting/PlainTextMarkdownVisitor.cs`; the tests `JsonMentionSpecs.cs`: "User
  mention: @Tyrrrz", "Text channel mention: #mention-tests"). With `--markdown false` it is
  Discord's raw markup (`<@123>`). The 2021 writer always rendered it. A system message's
  `content` is DCE's own sentence ("Pinned a message.", `Message.GetFallbackContent`).

How a message becomes a change: as `DiscordChat.import_records` makes one of the same
message from the API (shared/providers/discord/messages.py), so that an export and an API
import of a channel are one set of messages (same ids, the same envelope ids):

- ids: the channel file's channel id (a thread's own id, as the API sees it) and the
  message's snowflake; `occurred_at` the `timestamp` in UTC.
- author: `nickname`, else `name` (what live sync shows: server nickname, global name or
  username; the API import, whose pages carry no member, shows the global name or
  username); the avatar as the API import builds it from the avatar hash found in the URL,
  else the default avatar (a downloaded file's path is no link); `isBot` → `is_bot`.
- text: the latest (the file keeps only that). Raw markup is made readable by the
  renderer live sync uses (`readable`), with the names the file gives (the message's
  `mentions`, the authors and roles seen so far, the export's channel files); text DCE
  rendered has no markup left and comes through as it is.
- replies (`Reply`, and `Default` with a `reference` to a message of the same channel: how
  older DCE versions write a reply, as chat-analytics' sample GC_3A_5M shows) are threaded
  under the first message of their chain (threads are flat, `shared.providers.exports.
  Outline`: a first pass over the conversation's files notes each reply's parent); other
  references (a pin notice's, a crosspost's, a forward's) are not replies.
- attachments as links (`url`, `fileName`); a downloaded file's path is replaced by the
  attachment's CDN address (`cdn.discordapp.com/attachments/{channel}/{id}/{fileName}`).
  The file gives no content type. Stickers are named in the text (`[sticker: Laugh]`) and
  linked (`sourceUrl`, or the CDN's address when it is a downloaded file's path). Embeds
  and forwarded messages are not imported (the API import does not import them either): a
  message with nothing else is ignored (`empty`).
- a message the file writes twice (chat-analytics' SV_5A_5M: an edited message) is one
  message, its last copy; the earlier ones are ignored as `duplicate`.
- `Default` and `Reply` are messages; every other type is ignored with the subtype the API
  import gives it (`recipient_add`, `user_join`, `thread_created`, `chat_input_command`,
  `thread_starter_message`, ...), so the importer counts them as `skipped:<subtype>`.
- reactions: the sum of their counts.

Refused at `open` (`ExportRefused`, before any message is read): a file that is neither a
ZIP nor JSON (`not_an_export_file`); JSON that is not a DCE export (no `channel` object
with an id, no `messages` array: `not_a_discord_export`); a ZIP whose member names could
escape a folder or hide, with too many members, or a bomb (as every export,
`shared.providers.exports.checked_members`); a ZIP where no `.json` file is a DCE export,
or whose files are of more than one server (or of a server and direct messages): one
import reads one account. In a ZIP, other members (media folders, HTML exports) are not
read, and a `.json` file that is not a DCE export is left out and listed in
`skipped_files` (downloaded media can be `.json`).

Quarantined while reading (the rest is read): a message that is not an object, has no
snowflake id or no valid timestamp (`position`: its index in the file's `messages`); the
rest of a file from where it stops being JSON, cannot be read (a bad CRC), or nests values
deeper than 64 levels or runs one on past 64 MiB, with the index where it broke.

How it is read: a file's bytes (a member's as it inflates, `ZipDirectory.pieces`) go
through `shared.providers.exports.CheckedReader` to ijson, so that ijson, which builds a
prefix string per nesting level, is never given a byte past the first one too deep (a few
hundred kilobytes of `[[[[` would take gigabytes) or in a value too long. Opening reads a
file up to its `messages` that way (a file too deep before them is not an export); reading
it checks the rest as it goes, in C-speed steps that cost about a tenth of the reading.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ijson  # type: ignore[import-untyped]

from shared.kernel.zipdir import ZipDirectory
from shared.providers.chat import Attachment, Author, MessageChange, SenderMarks
from shared.providers.discord.messages import (
    CDN,
    avatar_url,
    has_markup,
    readable,
    sticker_url,
    system_subtype,
    with_stickers,
)
from shared.providers.exports import (
    UNREADABLE,
    CheckedReader,
    ExportFile,
    ExportLimits,
    ExportRefused,
    Outline,
    Unacceptable,
    checked_members,
    json_problem,
    json_type,
    kind_of,
    open_archive,
    short,
)
from shared.providers.history import Conversation, HistoryRecord, Quarantined

__all__ = ["DiscordExport", "ExportLimits", "ExportRefused"]

DEFAULT, REPLY = 0, 19
# MessageKind.cs: DCE's names of Discord's message types.
KINDS = {
    "Default": 0,
    "RecipientAdd": 1,
    "RecipientRemove": 2,
    "Call": 3,
    "ChannelNameChange": 4,
    "ChannelIconChange": 5,
    "ChannelPinnedMessage": 6,
    "GuildMemberJoin": 7,
    "ThreadCreated": 18,
    "Reply": 19,
}
# ChannelKind.cs → Conversation.kind; any other channel type is a "channel".
CONVERSATION_KINDS = {
    "DirectTextChat": "dm",
    "DirectGroupTextChat": "mpim",
    "GuildNewsThread": "thread",
    "GuildPublicThread": "thread",
    "GuildPrivateThread": "thread",
}
# Guild.cs: the pseudo-guild direct messages are exported under.
DIRECT_MESSAGES = "0"
# A record with `page_start` every this many messages of a file (the importer's pages).
PAGE = 1000
# Names (users', roles') kept for rendering raw markup, and authors kept made: at most.
MAX_NAMES = 100_000
# Files left out of a ZIP kept in `skipped_files` (all are counted in `skipped_total`).
MAX_SKIPPED = 100

_PART = re.compile(r" \[part (\d{1,9})\]\.json$", re.IGNORECASE)
_SNOWFLAKE = re.compile(r"^\d{1,20}$")
_AVATAR = re.compile(
    r"^https://cdn\.discordapp\.com/avatars/\d+/((?:a_)?[0-9A-Fa-f]{8,64})\.\w+(?:\?.*)?$"
)
_DEFAULT_AVATAR = re.compile(r"^https://cdn\.discordapp\.com/embed/avatars/\d+\.png(?:\?.*)?$")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_CHUNK = 2**16  # a bare file's bytes read at a time (what ijson asks for)
_NO_CONTENT = (
    "the message carries no text, file or sticker (an embed or a forwarded message only: "
    "those are not imported)"
)
_DUPLICATE = "the export writes this message again later: the later copy is imported"
# DCE's `stickers[].format` → the file's extension on Discord's CDN (as `STICKER_FILES`
# maps the API's `format_type`; any other format is PNG).
_STICKER_FILES = {"Lottie": "json", "Gif": "gif"}


class _NotAnExport(Exception):
    """The JSON document is not a DCE channel export; the message says why."""


@dataclass(frozen=True)
class _File:
    """One channel file: its name (the ZIP member's; a bare file's is made from its channel,
    as DCE names files), its member number (-1: the bare file), its size in bytes and its
    partition number."""

    name: str
    member: int
    size: int
    part: int


@dataclass(frozen=True)
class _Header:
    """What a file says before its messages."""

    guild_id: str | None
    guild_name: str | None
    channel_id: str
    channel_name: str
    channel_type: str | None
    parent_id: str | None
    parent_name: str | None


class DiscordExport(ExportFile):
    """An opened, checked export. Use `DiscordExport.open(path)`, as a context manager.

    - `account`: the guild the files are of (None for direct messages, guild `0`).
    - `conversations`: one per channel (a thread's own id, kind `thread`; `dm`, `mpim` for
      direct and group messages; `channel` otherwise), threads after the channels.
    - `skipped_files`: `.json` members of a ZIP left out (not a DCE export, unreadable),
      the first `MAX_SKIPPED` of `skipped_total`.
    """

    provider = "discord"

    def __init__(
        self,
        path: Path,
        archive: ZipDirectory | None,
        limits: ExportLimits,
        found: list[tuple[_File, _Header]],
        skipped: list[Quarantined],
        skipped_total: int,
    ) -> None:
        self._path = path
        self._archive = archive
        self.limits = limits
        self.skipped_files = skipped
        self.skipped_total = skipped_total
        headers: dict[str, _Header] = {}
        self._files: dict[str, list[_File]] = {}
        for file, header in found:
            headers.setdefault(header.channel_id, header)
            self._files.setdefault(header.channel_id, []).append(file)
        for files in self._files.values():
            files.sort(key=lambda file: (file.part, file.name))
        guilds = {h.guild_id for h in headers.values() if h.guild_id is not None}
        guild = next(iter(guilds), None)
        self.account = guild if guild != DIRECT_MESSAGES else None
        self.guild_name = next((h.guild_name for h in headers.values() if h.guild_name), None)
        conversations = [
            Conversation(
                id=channel_id,
                name=header.channel_name,
                kind=CONVERSATION_KINDS.get(header.channel_type or "", "channel"),
            )
            for channel_id, header in headers.items()
        ]
        self.conversations = sorted(conversations, key=lambda c: c.kind == "thread")
        self._parents = {
            channel_id: (header.parent_id, header.parent_name)
            for channel_id, header in headers.items()
            if header.parent_id and CONVERSATION_KINDS.get(header.channel_type or "") == "thread"
        }
        # For raw markup: the channels the export names (its files' and their parents').
        self._channel_names: dict[str, str] = {}
        for channel_id, header in headers.items():
            self._channel_names[channel_id] = header.channel_name
        for header in headers.values():
            if header.parent_id and header.parent_name:
                self._channel_names.setdefault(header.parent_id, header.parent_name)
        self._names: dict[str, str] = {}
        self._roles: dict[str, str] = {}
        self._authors: dict[str, tuple[Any, Any, Any, Author]] = {}
        self._kinds: dict[Any, tuple[int, str | None]] = {}

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, limits: ExportLimits | None = None) -> DiscordExport:
        """Check the export (a DCE JSON file, or a ZIP of them) from its files' first bytes,
        and keep it open for reading. Raises `ExportRefused` saying what is wrong."""
        limits = limits or ExportLimits()
        kind = kind_of(path)
        if kind == "other":
            raise ExportRefused(
                "not_an_export_file",
                "the file is neither a ZIP nor a JSON document: upload DiscordChatExporter's "
                "JSON export (a channel's .json file, or a ZIP of them)",
            )
        if kind == "json":
            return cls._bare(path, limits)
        archive = open_archive(path, limits)
        try:
            return cls._zipped(path, archive, limits)
        except BaseException:
            archive.close()
            raise

    @classmethod
    def _bare(cls, path: Path, limits: ExportLimits) -> DiscordExport:
        size = path.stat().st_size
        if size > limits.max_uncompressed_bytes:
            raise ExportRefused(
                "export_too_large",
                f"the export is {size} bytes, over the limit of "
                f"{limits.max_uncompressed_bytes} bytes",
            )
        try:
            with CheckedReader(_FileChunks(path)) as stream:
                header = _header(stream)
        except _NotAnExport as exc:
            raise ExportRefused(
                "not_a_discord_export",
                f"the file is not a DiscordChatExporter JSON export: {exc}",
            ) from exc
        # Named after its channel, as DCE names a file (`<channel> [<id>].json`): the local
        # file's name is the importer's scratch copy's, another one when a job resumes.
        name = f"{header.channel_name} [{header.channel_id}].json"
        return cls(path, None, limits, [(_File(name, -1, size, 1), header)], [], 0)

    @classmethod
    def _zipped(cls, path: Path, archive: ZipDirectory, limits: ExportLimits) -> DiscordExport:
        # Every member checked before any is read.
        candidates = [
            member
            for member, name in checked_members(archive, limits)
            if _is_channel_file(name) and not archive.is_dir(member)
        ]
        found: list[tuple[_File, _Header]] = []
        skipped: list[Quarantined] = []
        skipped_total = 0
        for member in candidates:
            name = archive.name(member)
            try:
                with CheckedReader(archive.pieces(member)) as stream:
                    header = _header(stream)
            except _NotAnExport as exc:
                why = f"not a DiscordChatExporter JSON export: {exc}"
            except UNREADABLE as exc:
                why = f"the file cannot be read: {short(exc)}"
            else:
                found.append((_File(name, member, archive.file_size(member), _part(name)), header))
                continue
            skipped_total += 1
            if len(skipped) < MAX_SKIPPED:
                skipped.append(Quarantined(name, None, why))
        if not found:
            detail = (
                f" ({skipped[0].file}: {skipped[0].reason})"
                if skipped
                else " (it holds no .json file outside media folders)"
            )
            raise ExportRefused(
                "not_a_discord_export",
                f"the ZIP holds no DiscordChatExporter JSON export{detail}",
            )
        guilds: dict[str, str] = {}
        for _, header in found:
            if header.guild_id is not None:
                guilds.setdefault(header.guild_id, header.guild_name or header.guild_id)
        if len(guilds) > 1:
            named = ", ".join(f"{name!r} ({guild})" for guild, name in list(guilds.items())[:5])
            raise ExportRefused(
                "not_a_discord_export",
                f"the ZIP holds exports of more than one server or of a server and direct "
                f"messages ({named}): an import reads one server's channels, or direct "
                "messages; upload each in a ZIP of its own",
            )
        return cls(path, archive, limits, found, skipped, skipped_total)

    # -- what the export holds -----------------------------------------------------------------

    def users(self) -> dict[str, Author]:
        """{}: every message names its author (and its mentions) itself."""
        return {}

    def size(self, conversation: Conversation) -> int:
        """Bytes of the conversation's files (what `done` is a share of)."""
        return sum(file.size for file in self._files.get(conversation.id, ()))

    def files(self, conversation: Conversation) -> list[str]:
        """The names of the conversation's files, in reading order (partitions in order)."""
        return [file.name for file in self._files.get(conversation.id, ())]

    def parent(self, conversation: Conversation) -> tuple[str, str | None] | None:
        """A thread's parent channel, `(id, name)`, as its file names it; else None."""
        return self._parents.get(conversation.id)

    # -- reading -------------------------------------------------------------------------------

    def records(
        self, conversation: Conversation, after: Mapping[str, Any] | None = None
    ) -> Iterator[HistoryRecord]:
        """The conversation's messages in each file's order, file after file, one message
        in memory at a time. Each record's checkpoint is `{"file": name, "index": i}` (`i`
        the message's index in the file's `messages`; `"index": None` after the rest of a
        file was quarantined). `after=` one of them goes on right after it; `after=
        {"after": message_id}` goes on with the messages written after that one (larger
        snowflakes; records without an id are not skipped). The first record read from a
        file, and every `PAGE`th, has `page_start`."""
        files = self._files.get(conversation.id, [])
        total = sum(file.size for file in files) or 1
        skip_to, skip_index, newer_than = _resume_point(after, [file.name for file in files])
        outline, starts = self._outline(conversation.id, files)
        before = 0
        for number, file in enumerate(files):
            start = 0
            if skip_to is not None:
                if file.name != skip_to:
                    before += file.size
                    continue
                skip_to = None
                if skip_index is None:
                    before += file.size
                    continue
                start = skip_index + 1
            yield from self._read(
                conversation.id, file, start, before, total, newer_than, outline, starts[number]
            )
            before += file.size

    def _outline(self, channel_id: str, files: list[_File]) -> tuple[Outline, list[int]]:
        """The first pass over the conversation's files: its replies' parents and its
        messages' ids (see `Outline`), and where each file's records start in its count. A
        problem is the second pass's to report."""
        outline = Outline()
        starts: list[int] = []
        for file in files:
            starts.append(outline.count)
            try:
                with CheckedReader(self._pieces(file)) as stream:
                    for item in ijson.items(stream, "messages.item", use_float=True):
                        message_id = _snowflake(item.get("id")) if type(item) is dict else None
                        if message_id is None:
                            outline.add(None)
                            continue
                        parent = _parent(item, channel_id)
                        outline.add(int(message_id), int(parent) if parent else None)
            except (ijson.JSONError, Unacceptable, *UNREADABLE):
                continue
        outline.seal()
        return outline, starts

    def _read(
        self,
        channel_id: str,
        file: _File,
        start: int,
        before: int,
        total: int,
        newer_than: int | None,
        outline: Outline,
        start_of: int,
    ) -> Iterator[HistoryRecord]:
        name = file.name
        index = -1
        problem: str | None = None
        try:
            stream: CheckedReader | None = CheckedReader(self._pieces(file))
        except UNREADABLE as exc:
            stream, problem = None, f"the file cannot be read: {short(exc)}"
        if stream is not None:
            first = True
            message = self._message
            try:
                for index, item in enumerate(ijson.items(stream, "messages.item", use_float=True)):
                    if index < start:
                        continue
                    if newer_than is not None and _older(item, newer_than):
                        continue
                    page_start = first or index % PAGE == 0
                    first = False
                    done = min(1.0, (before + stream.count) / total)
                    position = start_of + index
                    yield message(
                        channel_id, name, index, item, done, page_start, outline, position
                    )
            except ijson.JSONError as exc:
                problem = (
                    f"the file cannot be read from there on: {json_problem(exc, stream.count)}"
                )
            except Unacceptable as exc:
                problem = f"the file cannot be read from there on: {exc}"
            except UNREADABLE as exc:
                problem = f"the file cannot be read from there on: {short(exc)}"
            finally:
                stream.close()
        if problem is not None:
            yield HistoryRecord(
                checkpoint={"file": name, "index": None},
                quarantined=Quarantined(name, index + 1 if stream is not None else None, problem),
                done=min(1.0, (before + file.size) / total),
                page_start=stream is None,
            )

    def _pieces(self, file: _File) -> Iterator[bytes]:
        """The file's bytes: a bare file's, a member's as it inflates."""
        if self._archive is None:
            return _FileChunks(self._path)
        return self._archive.pieces(file.member)

    # -- one message ---------------------------------------------------------------------------

    def _message(
        self,
        channel_id: str,
        file: str,
        index: int,
        item: Any,
        done: float,
        page_start: bool,
        outline: Outline | None = None,
        position: int | None = None,
    ) -> HistoryRecord:
        """The change the API import makes of the same message (see the module's
        docstring), or the message quarantined saying why."""
        checkpoint = {"file": file, "index": index}

        def left_out(reason: str) -> HistoryRecord:
            return HistoryRecord(
                checkpoint,
                quarantined=Quarantined(file, index, reason),
                done=done,
                page_start=page_start,
            )

        if type(item) is not dict:
            return left_out(f"the message is not a JSON object but {json_type(item)}")
        message_id = item.get("id")
        if type(message_id) is not str or not _SNOWFLAKE.match(message_id):
            return left_out("the message has no valid id (a snowflake)")
        occurred_at = _moment(item.get("timestamp"))
        if occurred_at is None:
            return left_out("the message has no valid timestamp")
        kind = item.get("type", "Default")
        known = self._kinds.get(kind) if type(kind) in (str, int) else None
        if known is None:
            known = _kind(kind)
            if known is None:
                return left_out(f"the message's type is {json_type(kind)}, not a type name")
            if len(self._kinds) < MAX_NAMES:
                self._kinds[kind] = known
        number, subtype = known
        user = item.get("author")
        author = self._author(user) if type(user) is dict else None
        content = item.get("content")
        text = content if type(content) is str else ""
        if has_markup(text):
            text = self._readable(text, item)
        found = item.get("attachments")
        attachments = _attachments(found, channel_id) if found else ()
        stickers = item.get("stickers")
        if stickers and number in (DEFAULT, REPLY):
            text, attachments = with_stickers(text, attachments, _stickers(stickers))
        thread = _parent(item, channel_id)
        if thread is not None and outline is not None:
            thread = str(outline.root(int(thread)))  # threads are flat: the chain's first
        ignored = None
        if number != DEFAULT and number != REPLY:
            ignored = f"Discord system message ({subtype})"
        elif (
            outline is not None
            and position is not None
            and not outline.kept(int(message_id), position)
        ):
            subtype, ignored = "duplicate", _DUPLICATE
        elif not text and not attachments:
            subtype, ignored = "empty", _NO_CONTENT
        reactions = item.get("reactions")
        return HistoryRecord(
            checkpoint,
            change=MessageChange(
                kind="created",
                external_channel_id=channel_id,
                external_message_id=message_id,
                occurred_at=occurred_at,
                text=text,
                external_thread_id=thread,
                author=author,
                sender=SenderMarks(
                    user_id=author.external_id if author is not None else None,
                    is_bot=user.get("isBot") is True if type(user) is dict else False,
                ),
                attachments=attachments,
                subtype=subtype,
                ignored=ignored,
            ),
            done=done,
            reactions=_reactions(reactions) if reactions else 0,
            page_start=page_start,
        )

    def _author(self, user: dict[str, Any]) -> Author | None:
        """The author as the API import names them; the same one made once per author (and
        again when their name or avatar changes), their roles noted for raw markup."""
        user_id = _snowflake(user.get("id"))
        if user_id is None:
            return None
        nickname, name, avatar = user.get("nickname"), user.get("name"), user.get("avatarUrl")
        known = self._authors.get(user_id)
        if known is not None and known[0] == nickname and known[1] == name and known[2] == avatar:
            return known[3]
        shown = _text(nickname) or _text(name) or user_id
        made = Author(name=shown, avatar_url=_avatar(user_id, avatar), external_id=user_id)
        if len(self._authors) < MAX_NAMES or user_id in self._authors:
            self._authors[user_id] = (nickname, name, avatar, made)
        self._note(user_id, shown, user.get("roles"))
        return made

    def _readable(self, text: str, item: dict[str, Any]) -> str:
        """Raw markup made readable by live sync's renderer, with the message's mentions and
        the authors and roles seen so far."""
        mentions = item.get("mentions")
        for user in mentions if type(mentions) is list else ():
            if type(user) is dict and (user_id := _snowflake(user.get("id"))):
                shown = _text(user.get("nickname")) or _text(user.get("name"))
                if shown:
                    self._note(user_id, shown, user.get("roles"))
        return readable(text, self._names, self._channel_names, self._roles)

    def _note(self, user_id: str, name: str, roles: Any) -> None:
        if len(self._names) < MAX_NAMES or user_id in self._names:
            self._names[user_id] = name
        for role in roles if type(roles) is list else ():
            if type(role) is dict and len(self._roles) < MAX_NAMES:
                role_id, role_name = _snowflake(role.get("id")), _text(role.get("name"))
                if role_id and role_name:
                    self._roles[role_id] = role_name

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._archive is not None:
            self._archive.close()

    def left_out(self) -> tuple[list[Quarantined], int]:
        return list(self.skipped_files), self.skipped_total


class _FileChunks:
    """A bare file's bytes, a chunk at a time (opened at once: an error opening it is the
    file's, not a message's)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")

    def __iter__(self) -> _FileChunks:
        return self

    def __next__(self) -> bytes:
        piece = self._file.read(_CHUNK)
        if not piece:
            raise StopIteration
        return piece

    def close(self) -> None:
        self._file.close()


# -- a file's head ---------------------------------------------------------------------------------


def _header(stream: CheckedReader) -> _Header:
    """The file's `guild` and `channel`, read from its first events: DCE writes them before
    `messages`, where reading stops (another writer's order is read on until both are
    found, without building the messages). Raises `_NotAnExport`."""
    try:
        values, messages = _preamble(stream)
    except ijson.JSONError as exc:
        raise _NotAnExport(f"it is {json_problem(exc, stream.count)}") from exc
    except Unacceptable as exc:
        raise _NotAnExport(f"it cannot be read up to its messages: {exc}") from exc
    channel = values.get("channel")
    channel_id = _snowflake(channel.get("id")) if type(channel) is dict else None
    if type(channel) is not dict or channel_id is None:
        raise _NotAnExport("it has no channel object with an id")
    if messages is None:
        raise _NotAnExport("it has no messages array")
    if not messages:
        raise _NotAnExport("its messages are not an array")
    guild = values.get("guild")
    guild = guild if type(guild) is dict else {}
    return _Header(
        guild_id=_snowflake(guild.get("id")),
        guild_name=_text(guild.get("name")),
        channel_id=channel_id,
        channel_name=_text(channel.get("name")) or channel_id,
        channel_type=_text(channel.get("type")),
        parent_id=_snowflake(channel.get("categoryId")),
        parent_name=_text(channel.get("category")),
    )


def _preamble(stream: CheckedReader) -> tuple[dict[str, Any], bool | None]:
    """The top level's `guild` and `channel` values, and whether `messages` is an array
    (None: there is none)."""
    events = ijson.parse(stream, use_float=True)
    first = next(events, None)
    if first is None:
        raise _NotAnExport("it is empty")
    if first[1] != "start_map":
        raise _NotAnExport("it is a JSON array, not an object")
    wanted = ("guild", "channel")
    values: dict[str, Any] = {}
    messages: bool | None = None
    key: str | None = None  # the top-level key whose value comes next
    building: Any = None
    built = ""
    depth = 0
    for prefix, event, value in events:
        if building is not None:
            building.event(event, value)
            if event in ("start_map", "start_array"):
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
            if depth == 0:
                values[built], building = building.value, None
                if messages and all(name in values for name in wanted):
                    break
            continue
        if key is not None:
            if key in wanted:
                building, built = ijson.ObjectBuilder(), key
                building.event(event, value)
                depth = 1 if event in ("start_map", "start_array") else 0
                if depth == 0:
                    values[built], building = building.value, None
            elif key == "messages":
                messages = event == "start_array"
                if messages and all(name in values for name in wanted):
                    break
            key = None
            continue
        if event == "map_key" and prefix == "":
            key = value
    return values, messages


def _is_channel_file(name: str) -> bool:
    """A `.json` member that can be a channel file: not in a media folder (DCE's
    `<file>_Files/`), nor macOS's metadata (`__MACOSX/`, `._name`)."""
    if not name.lower().endswith(".json"):
        return False
    *folders, base = name.split("/")
    if base.startswith("._"):
        return False
    return not any(f.lower().endswith("_files") or f == "__MACOSX" for f in folders)


def _part(name: str) -> int:
    found = _PART.search(name)
    return int(found.group(1)) if found else 1


# -- one message's fields --------------------------------------------------------------------------


def _kind(value: Any) -> tuple[int, str | None] | None:
    """A DCE `type` → (Discord's number, the subtype the API import gives it): None for
    `Default`, `reply`, else the system message's. A number written as a name (a type DCE
    has no name for) is read as the number; a name DCE may add later is its snake case."""
    if value is None:
        return DEFAULT, None
    if type(value) is str:
        number = KINDS.get(value)
        if number is None and value.isdigit() and len(value) < 6:
            number = int(value)
        if number is None:
            return -1, _CAMEL.sub("_", value).lower() if value else "type_"
    elif type(value) is int:
        number = value
    else:
        return None
    if number == DEFAULT:
        return DEFAULT, None
    if number == REPLY:
        return REPLY, "reply"
    return number, system_subtype(number)


def _moment(value: Any) -> datetime | None:
    if type(value) is not str or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _avatar(user_id: str, url: Any) -> str:
    """The avatar URL the API import builds (`avatar_url(id, hash)`), from the hash in
    DCE's URL; a default avatar's or a downloaded file's → the default avatar; another CDN
    URL (a server avatar) as it is."""
    if type(url) is str and url:
        found = _AVATAR.match(url)
        if found:
            return avatar_url(user_id, found.group(1))
        if url.startswith(("https://", "http://")) and not _DEFAULT_AVATAR.match(url):
            return url
    return avatar_url(user_id, None)


def _attachments(value: Any, channel_id: str) -> tuple[Attachment, ...]:
    made = []
    for item in value if type(value) is list else ():
        if type(item) is not dict:
            continue
        url, name = item.get("url"), _text(item.get("fileName"))
        if type(url) is not str or not url:
            continue
        if not url.startswith(("https://", "http://")):
            # Downloaded with --media: the file's path; the attachment's address instead.
            attachment_id = _snowflake(item.get("id"))
            if attachment_id is None or name is None:
                continue
            url = f"{CDN}/attachments/{channel_id}/{attachment_id}/{name}"
        made.append(Attachment(url=url, name=name))
    return tuple(made)


def _parent(item: dict[str, Any], channel_id: str) -> str | None:
    """The message a reply answers: `reference.messageId` of a `Reply`, or of a `Default`
    message with a reference (older DCE versions write replies so), when the reference is a
    reply's (not a forward's) and in the same channel (a crosspost's is another channel's)."""
    kind = item.get("type", "Default")
    reference = item.get("reference")
    if type(reference) is not dict:
        return None
    if kind in ("Reply", REPLY):  # as the API import threads `message_reference`
        return _snowflake(reference.get("messageId"))
    if kind not in ("Default", DEFAULT, None):
        return None
    if reference.get("type") not in (None, "Default", 0):
        return None  # a forward
    elsewhere = _snowflake(reference.get("channelId"))
    if elsewhere is not None and elsewhere != channel_id:
        return None  # a crosspost's source
    return _snowflake(reference.get("messageId"))


def _stickers(value: Any) -> Iterator[tuple[str | None, str | None]]:
    """DCE's `stickers` as (name, url) for `with_stickers`, named and linked as the API import
    names them: the url DCE's `sourceUrl`, or the CDN's address of the file when the export
    downloaded it (`--media`: the url is then a local path)."""
    for sticker in value if type(value) is list else ():
        if type(sticker) is not dict:
            continue
        url = sticker.get("sourceUrl")
        if type(url) is not str or not url.startswith(("https://", "http://")):
            sticker_id = _snowflake(sticker.get("id"))
            extension = _STICKER_FILES.get(str(sticker.get("format")), "png")
            url = sticker_url(sticker_id, extension) if sticker_id else None
        yield _text(sticker.get("name")), url


def _reactions(value: Any) -> int:
    total = 0
    for reaction in value if type(value) is list else ():
        if type(reaction) is dict:
            count = reaction.get("count")
            if type(count) is int and count > 0:
                total += count
    return total


def _older(item: Any, newer_than: int) -> bool:
    """The message is the resume point's or older (only messages with an id are)."""
    if type(item) is not dict:
        return False
    message_id = item.get("id")
    if type(message_id) is not str or not _SNOWFLAKE.match(message_id):
        return False
    return int(message_id) <= newer_than


def _resume_point(
    after: Mapping[str, Any] | None, files: list[str]
) -> tuple[str | None, int | None, int | None]:
    """(file to go on in, the index in it to go on after (None: after the whole file),
    the snowflake to go on after)."""
    if not after:
        return None, None, None
    if "after" in after:
        message_id = after.get("after")
        if type(message_id) is not str or not _SNOWFLAKE.match(message_id):
            raise ValueError(f"not a checkpoint of a Discord export: {dict(after)!r}")
        return None, None, int(message_id)
    file, index = after.get("file"), after.get("index")
    if type(file) is not str or (index is not None and type(index) is not int):
        raise ValueError(f"not a checkpoint of a Discord export: {dict(after)!r}")
    if file not in files:
        raise ValueError(f"{file!r} is not a file of this conversation")
    return file, index, None


def _snowflake(value: Any) -> str | None:
    if type(value) is str:
        return value if _SNOWFLAKE.match(value) else None
    if type(value) is int and value >= 0:
        return str(value)
    return None


def _text(value: Any) -> str | None:
    return value if type(value) is str and value else None
