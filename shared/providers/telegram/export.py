"""Telegram Desktop's "Machine-readable JSON" export as an import source: one chat ("Export
chat history") or the whole account ("Settings → Advanced → Export Telegram data"), as the
bare `result.json` or as a ZIP of the export folder; checked whole before any job runs, then
read one chat at a time, streaming, in bounded memory (SPEC §9).

What the file holds (tdesktop, Telegram/SourceFiles/export/output/export_output_json.cpp,
`JsonWriter::writeDialogStart` and `SerializeMessage`; the folder's other members, `photos/`,
`files/`, `video_files/`, `voice_messages/`, `round_video_messages/`, `stickers/` ..., are
what the messages' relative paths name):

- one chat: `{"name", "type", "id", "messages": [...]}` at the top; the whole account:
  `{"about", "personal_information", ..., "chats": {"about", "list": [chat, ...]},
  "left_chats": {"about", "list": [...]}, ...}`, every chat as above. tdesktop writes a chat's
  `messages` last; this reader takes the keys in any order.
- `type`: personal_chat, bot_chat, saved_messages, replies, verification_codes,
  private_group (a basic group), private_supergroup, public_supergroup, private_channel,
  public_channel. `name` is absent for saved_messages, replies and verification_codes, and
  null for a deleted account.
- `id`: the peer's bare id (`Data::PeerToBareId`, the MTProto user, chat or channel id, always
  positive). The Bot API, and so live sync, names a chat otherwise ("Bot API dialog IDs",
  core.telegram.org/api/bots/ids; danog/tg-dialog-id's examples): a user as its id, a basic
  group as `-id`, a supergroup or channel as `-(1000000000000 + id)` (the `-100` prefix:
  `1234567890` here is `-1001234567890` there). `conversations` carry the Bot API id; an id
  that is already negative is taken as one.
- a message: `id`; `type` (`message`, `service`, or `unsupported` with nothing but the id);
  `date` (ISO 8601 in the exporting computer's local time, no offset) and, in newer exports
  (an older export_output_json.cpp has neither it nor `reactions` nor `text_entities`),
  `date_unixtime` (seconds, as a string); `edited`/`edited_unixtime` when it was
  edited (its `text` is then the latest: Telegram keeps no earlier one); `from` (a name, null
  for a deleted account) and `from_id` (`user<id>`, `channel<id>` or `chat<id>`); `author`
  (a channel post's signature); `reply_to_message_id` (with `reply_to_peer_id` when the
  replied message is in another chat); `text` (a string, or an array of strings and
  `{type, text}` entities) and `text_entities` (the same, always an array of entities, `plain`
  ones included); `photo`, or `file` with `file_name`, `media_type` (sticker, video_message,
  voice_message, animation, video_file, audio_file), `mime_type`, `sticker_emoji`,
  `performer`, `title`: each a path relative to `result.json`, or a note in parentheses when
  the file was not exported ("(File not included. Change data exporting settings to
  download.)"); `contact_information`, `location_information` (`place_name`, `address` for a
  venue), `poll`, `game_title`, `invoice_information`; `reactions`: `[{type, count, emoji}]`.
  A service message has `actor`, `actor_id` and `action` (create_group, invite_members,
  pin_message, phone_call, migrate_to_supergroup, ...).

Message ids: in supergroups and channels one numbering is shared by every member, the bot
included, so an exported message and the same message heard by live sync have the same id
and the same envelope id. In private chats and basic groups each account numbers the
messages it receives itself (pyrogram's "Message identifiers", after Telethon's): the id in a
member's export is not the id the bot saw, and an import there can repeat, as new envelopes,
messages live sync already delivered. Nothing in the export can map one numbering onto the
other. A supergroup that was a basic group before carries that group's history first, its
ids and its replies' ids shifted by -1,000,000,000 (tdesktop's export_data_types.cpp,
`AdjustMigrateMessageIds`, `kMigratedMessagesIdShift`): negative ids, read as they are,
which cannot collide with the supergroup's own (nor match what live sync heard in the basic
group, under its own chat id).

How it is read. `result.json` can hold a million messages: it is never loaded whole. `open`
streams it once (ijson's C parser, fed in pieces that end at each `{`, so that a chat's
opening brace is known to the byte) and keeps, per chat, its id, name, type and byte span.
It parses only what `shared.providers.exports.JsonGuard` accepted: values nested at most 64
deep (ijson's prefixes grow with the depth: a few hundred kilobytes of brackets would take
gigabytes), none running on past 64 MiB; the document breaks at the first byte that is not
(and no later pass parses a byte this one did not check). `records` then streams one chat's
span again with `ijson.items`, one message object at a time; a chat of an account export is
read as a document of its own (its span between `{"chats":{"list":[` and `{}]}}`), so no
chat is parsed to get to another. In a ZIP the member is read as it inflates
(`ZipDirectory.pieces`, a megabyte at a time); a stream read up to one chat is kept to go on
to the next, since a member cannot be sought.

Refused at `open` (`ExportRefused`): a file that is neither JSON nor a ZIP
(`not_an_export_file`), a ZIP with member names that could escape a folder or hide, too many
members or a bomb (`checked_members`), a ZIP without `result.json` at its top or in its one
top folder, a document that is not a Telegram export or breaks before its first chat
(`not_a_telegram_export`), a bare file over the size limit (`export_too_large`). Quarantined
while reading, with the position in the chat's `messages` (the rest is read): a message that
is not an object, has no integer id or no usable date, or is `unsupported`. A document that
breaks midway (a syntax error, nesting too deep, a cut file, a member that cannot be
inflated or whose CRC-32 fails) is read up to the break; what is left of that chat is
quarantined as one record saying why and that any chat after it could not be read either
(chats after the break cannot be found: they are not listed; `broken` says why).

Before a chat's messages are read, a first pass over the chat notes each reply's parent and
each message's id (`shared.providers.exports.Outline`): a reply is threaded under the first
message of its chain (threads are flat), wherever that message is, and a message written
twice is imported once (its last copy). A zipped export is inflated once per pass, each
pass going on from chat to chat on its own stream.

Text is rendered as CommonMark (`render_text`): Telegram's formatting as markup, every other
character literal (leading whitespace of a line is dropped, as commonmark.py does, since four
spaces would start a code block; mentions are left as they are, as live sync leaves them).
Media are not fetched: each is named in the text as live sync names it (`[photo]`,
`[voice]`, `[sticker: 👍]`, ...), and an exported file is an `Attachment` whose `url` is its
path inside the export (relative to `result.json`, as tdesktop wrote it: no scheme, no host)
and whose `name` is its file name (`file_name` when the export has one).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol

import ijson  # type: ignore[import-untyped]

from shared.kernel.zipdir import ZipDirectory
from shared.providers import commonmark as md
from shared.providers.chat import Attachment, Author, MessageChange, SenderMarks
from shared.providers.exports import (
    UNREADABLE,
    ExportFile,
    ExportLimits,
    ExportRefused,
    JsonGuard,
    Outline,
    checked_members,
    json_problem,
    json_type,
    kind_of,
    open_archive,
    short,
)
from shared.providers.history import Conversation, HistoryRecord, Quarantined

__all__ = [
    "ExportLimits",
    "ExportRefused",
    "TelegramExport",
    "bot_api_chat_id",
    "render_text",
]

RESULT = "result.json"
PAGE = 1000  # `page_start` every PAGE messages (the importer counts them as pages read)
_CHUNK = 2**16
_BOM = b"\xef\xbb\xbf"
_CHANNEL_OFFSET = 10**12  # Bot API: -(1000000000000 + channel id)

# Telegram chat type → (Conversation.kind, how the Bot API writes its id).
_TYPES: dict[str, tuple[str, Literal["user", "chat", "channel"]]] = {
    "personal_chat": ("dm", "user"),
    "bot_chat": ("dm", "user"),
    "saved_messages": ("dm", "user"),
    "replies": ("dm", "user"),
    "verification_codes": ("dm", "user"),
    "private_group": ("group", "chat"),
    "private_supergroup": ("group", "channel"),
    "public_supergroup": ("group", "channel"),
    "private_channel": ("channel", "channel"),
    "public_channel": ("channel", "channel"),
}
_UNNAMED = {
    "saved_messages": "Saved Messages",
    "replies": "Replies",
    "verification_codes": "Verification Codes",
}
_PEER = re.compile(r"^(user|chat|channel)(\d{1,20})$")
_UNIXTIME = re.compile(r"^\d{1,12}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
# tdesktop's export media types → the Bot API's field name, as live sync labels media.
_MEDIA_TYPES = {
    "sticker": "sticker",
    "video_message": "video_note",
    "voice_message": "voice",
    "animation": "animation",
    "video_file": "video",
    "audio_file": "audio",
}
_ERRORS = (ijson.JSONError, UnicodeDecodeError, ValueError, *UNREADABLE)


def bot_api_chat_id(export_id: int, telegram_type: str | None) -> str | None:
    """The chat's id as the Bot API (and so live sync) writes it, from the bare id an export
    gives; None when the type does not say which kind of peer it is. A negative id is taken
    as a Bot API id already."""
    if export_id < 0:
        return str(export_id)
    kind = _TYPES.get(telegram_type or "")
    if kind is None:
        return None
    if kind[1] == "channel":
        return str(-(_CHANNEL_OFFSET + export_id))
    if kind[1] == "chat":
        return str(-export_id)
    return str(export_id)


def _peer_id(kind: str, number: int) -> str:
    if kind == "channel":
        return str(-(_CHANNEL_OFFSET + number))
    if kind == "chat":
        return str(-number)
    return str(number)


@dataclass(frozen=True)
class _Chat:
    """Where one chat is: its object's `{` (`start`); where the next chat's `{` is (`whole`)
    or where the document breaks (`stop`, None: the end of the file); where its `}` was seen
    (`end`); which list holds it, at which index (`""` for a one-chat export, whose document
    is the chat)."""

    conversation: Conversation
    telegram_type: str | None
    bare_id: int | None
    listed_in: str
    index: int
    start: int
    stop: int | None
    whole: bool
    end: int | None

    @property
    def label(self) -> str:
        return f"{self.listed_in}.list[{self.index}].messages" if self.listed_in else "messages"


class TelegramExport(ExportFile):
    """An opened, checked export. Use `TelegramExport.open(path)`, as a context manager."""

    provider = "telegram"

    def __init__(
        self,
        source: _Source,
        limits: ExportLimits,
        chats: list[_Chat],
        broken: str | None,
    ) -> None:
        self._source = source
        self.limits = limits
        self.account: str | None = None  # the job's bot integration says whose it is
        self._chats = {chat.conversation.id: chat for chat in chats}
        self.conversations = [chat.conversation for chat in chats]
        # Why the document could not be read to its end (None: it could).
        self.broken = broken

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        limits: ExportLimits | None = None,
        *,
        chats: Collection[str] | None = None,
    ) -> TelegramExport:
        """Check the export (a bare `result.json`, or a ZIP of the export folder) and list its
        chats, reading the document once. `chats`: list only these (Bot API ids, the export's
        own ids or names); every chat when None. Raises `ExportRefused` saying what is
        wrong."""
        limits = limits or ExportLimits()
        kind = kind_of(path)
        if kind == "other":
            raise ExportRefused(
                "not_an_export_file",
                "the file is neither JSON nor a ZIP: not a Telegram Desktop export "
                "(export as Machine-readable JSON)",
            )
        source = _FileSource(path, limits) if kind == "json" else _ZipSource(path, limits)
        try:
            found, broken = _survey(source)
            if chats is not None:
                wanted = set(chats)
                found = [
                    chat
                    for chat in found
                    if wanted & {chat.conversation.id, chat.conversation.name, str(chat.bare_id)}
                ]
            return cls(source, limits, found, broken)
        except BaseException:
            source.close()
            raise

    # -- reading -------------------------------------------------------------------------------

    def users(self) -> dict[str, Author]:
        """{}: every exported message names its author itself."""
        return {}

    def size(self, conversation: Conversation) -> int:
        """The chat's bytes in `result.json` (what `done` is a share of)."""
        chat = self._chat(conversation)
        return max(1, _end_of(chat, self._source.size) - chat.start)

    def telegram_type(self, conversation: Conversation) -> str | None:
        """The chat's Telegram type (`private_supergroup`, `personal_chat`, ...)."""
        return self._chat(conversation).telegram_type

    def records(
        self, conversation: Conversation, after: Mapping[str, Any] | None = None
    ) -> Iterator[HistoryRecord]:
        """The chat's messages in the export's order (oldest first), one message object in
        memory at a time. Each record's checkpoint is `{"chat": conversation id, "index": i}`,
        `i` the message's position in the chat's `messages` (`"rest": True` on the record
        that quarantines what is left of a chat the document breaks in); `after=` one of them
        goes on right after it (the chat is read again from its start, the messages before
        it parsed and passed over). `page_start` on the first record and every 1000th."""
        chat = self._chat(conversation)
        skip = _resume_point(chat, after)
        if skip is None:
            return
        yield from self._read(chat, skip, self._outline(chat))

    def _outline(self, chat: _Chat) -> Outline:
        """The first pass over the chat: its replies' parents and its messages' ids (see
        `Outline`), read from a stream of its own (a ZIP member's second inflation goes on
        from chat to chat as the first does). A problem is the second pass's to report."""
        outline = Outline()
        window, prefix = self._window(chat, lane=1)
        context = self._context(chat, None)
        try:
            for item in ijson.items(window, prefix, use_float=True):
                if type(item) is dict and type(item.get("id")) is int:
                    outline.add(item["id"], _parent(context, item))
                else:
                    outline.add(None)
        except _ERRORS:
            pass
        finally:
            window.release()
        outline.seal()
        return outline

    def _window(self, chat: _Chat, lane: int = 0) -> tuple[_Window, str]:
        """The chat's span as a document of its own, and the prefix of its messages."""
        if chat.listed_in:
            head = b'{"' + chat.listed_in.encode() + b'":{"list":['
            tail = b"{}]}}" if chat.whole else b""
            prefix = f"{chat.listed_in}.list.item.messages.item"
        else:
            head, tail, prefix = b"", b"", "messages.item"
        return _Window(self._source, chat.start, chat.stop, head, tail, lane), prefix

    def _context(self, chat: _Chat, outline: Outline | None) -> _Context:
        source = self._source
        return _Context(
            channel=chat.conversation.id,
            bare_id=chat.bare_id,
            bot_chat=chat.telegram_type == "bot_chat",
            file=f"{source.name}: {chat.label}" if chat.listed_in else source.name,
            outline=outline,
        )

    def _chat(self, conversation: Conversation) -> _Chat:
        chat = self._chats.get(conversation.id)
        if chat is None:
            raise ValueError(f"{conversation.id!r} is not a chat of this export")
        return chat

    def _read(self, chat: _Chat, skip: int, outline: Outline) -> Iterator[HistoryRecord]:
        source = self._source
        end = _end_of(chat, source.size)
        span = max(1, end - chat.start)
        window, prefix = self._window(chat)
        context = self._context(chat, outline)
        file = context.file
        index = -1
        held: HistoryRecord | None = None
        first = True
        failed: BaseException | None = None
        broken = None if chat.whole else self.broken
        try:
            try:
                for index, item in enumerate(ijson.items(window, prefix, use_float=True)):
                    if index < skip:
                        continue
                    done = min(1.0, max(0.0, (window.position - chat.start) / span))
                    record = _record(context, index, item, done)
                    if first or index % PAGE == 0:
                        record = replace(record, page_start=True)
                        first = False
                    if held is not None:
                        yield held
                    held = record
            except _ERRORS as exc:
                failed = exc
            if broken is None and failed is None:
                if held is not None:
                    yield replace(held, done=1.0)
                return
            if broken is None:
                problem = f"the rest of the chat cannot be read: {_problem(failed, window)}"
            elif chat.end is not None:  # the chat was whole; the document breaks after it
                problem = f"the export cannot be read past this chat: {broken}"
            elif failed is not None:
                problem = f"the rest of the chat cannot be read: {broken}"
            else:
                # Read up to where the file could not be read further (a CRC-32 that fails
                # at its end): what was read may be corrupt.
                problem = f"the export cannot be read past this point: {broken}"
            if broken is not None and chat.listed_in:
                problem += "; any chat after it in the document could not be read either"
            if held is not None:
                yield held
            if index + 1 >= skip:
                yield HistoryRecord(
                    checkpoint={"chat": chat.conversation.id, "index": index + 1, "rest": True},
                    quarantined=Quarantined(file, index + 1, problem),
                    done=1.0,
                    page_start=first,
                )
        finally:
            window.release()

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        self._source.close()


def _end_of(chat: _Chat, size: int) -> int:
    for candidate in (chat.end, chat.stop):
        if candidate is not None:
            return candidate
    return size


def _resume_point(chat: _Chat, after: Mapping[str, Any] | None) -> int | None:
    """The first message index to yield, or None when nothing is left."""
    if not after:
        return 0
    index = after.get("index")
    if (
        after.get("chat") != chat.conversation.id
        or not isinstance(index, int)
        or isinstance(index, bool)
        or index < 0
    ):
        raise ValueError(
            f"not a checkpoint of the Telegram chat {chat.conversation.id}: {dict(after)!r}"
        )
    return None if after.get("rest") else index + 1


# -- the sources: a bare file or a ZIP member ----------------------------------------------------


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class _Source:
    """Where `result.json`'s bytes come from; `stream(at)` gives a binary stream positioned at
    `at`, `give_back` returns it once read up to `position`."""

    name: str
    size: int

    def stream(self, at: int, lane: int = 0) -> _Readable:
        raise NotImplementedError

    def give_back(self, stream: _Readable, position: int, lane: int = 0) -> None:
        stream.close()

    def close(self) -> None:
        pass


class _FileSource(_Source):
    def __init__(self, path: Path, limits: ExportLimits) -> None:
        self._path = path
        self.name = RESULT
        self.size = path.stat().st_size
        if self.size > limits.max_uncompressed_bytes:
            raise ExportRefused(
                "export_too_large",
                f"the export is {self.size} bytes, over the limit of "
                f"{limits.max_uncompressed_bytes}",
            )

    def stream(self, at: int, lane: int = 0) -> _Readable:
        file = self._path.open("rb")
        file.seek(at)
        return file


class _ZipSource(_Source):
    """`result.json` in the ZIP, read as it inflates. A ZIP member cannot be sought: a stream
    given back after reading one chat is kept, to go on from there to a later chat. One is
    kept per lane: the first pass over each chat (lane 1) and the reading of its messages
    (lane 0) each go through the member once, chat after chat."""

    def __init__(self, path: Path, limits: ExportLimits) -> None:
        self._archive = open_archive(path, limits)
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[_Readable, int]] = {}
        try:
            self._member = _result_member(self._archive, limits)
        except BaseException:
            self._archive.close()
            raise
        self.name = self._archive.name(self._member)
        self.size = self._archive.file_size(self._member)

    def stream(self, at: int, lane: int = 0) -> _Readable:
        with self._lock:
            kept = self._kept.pop(lane, None)
        if kept is not None and kept[1] <= at:
            stream, position = kept
        else:
            if kept is not None:
                kept[0].close()
            stream, position = _Pieces(self._archive.pieces(self._member)), 0
        while position < at:
            piece = stream.read(min(at - position, 2**20))
            if not piece:
                break
            position += len(piece)
        return stream

    def give_back(self, stream: _Readable, position: int, lane: int = 0) -> None:
        with self._lock:
            kept = self._kept.pop(lane, None)
            self._kept[lane] = (stream, position)
        if kept is not None:
            kept[0].close()

    def close(self) -> None:
        with self._lock:
            kept, self._kept = list(self._kept.values()), {}
        for stream, _ in kept:
            stream.close()
        self._archive.close()


class _Pieces:
    """A member's inflated pieces as a stream: a read returns what was inflated before a
    problem and the next read raises it (a buffered reader reading ahead would drop what it
    held with the error): a CRC-32 that fails after the last piece loses nothing read."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._left = b""
        self._at = 0

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        out: list[bytes] = []
        while size > 0:
            if self._at >= len(self._left):
                if out:
                    break  # what is there now; a problem with the next piece comes next time
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._left, self._at = piece, 0
            taken = self._left[self._at : self._at + size]
            self._at += len(taken)
            size -= len(taken)
            out.append(taken)
        return b"".join(out)

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def _result_member(archive: ZipDirectory, limits: ExportLimits) -> int:
    """`result.json` at the ZIP's top or in a top folder (`ChatExport_2024-05-01/`); other
    top-level entries (macOS's `__MACOSX/`) are let be. Every member is checked first."""
    top_level: list[int] = []
    for member, name in checked_members(archive, limits):
        if name == RESULT or (name.count("/") == 1 and name.endswith("/" + RESULT)):
            top_level.append(member)
    at_top = [member for member in top_level if archive.name(member) == RESULT]
    if at_top:
        return at_top[0]
    if len(top_level) == 1:
        return top_level[0]
    if not top_level:
        raise ExportRefused(
            "not_a_telegram_export",
            "the ZIP has no result.json at its top or in a top folder: it is not a Telegram "
            "Desktop export in Machine-readable JSON",
        )
    names = ", ".join(archive.name(member) for member in top_level[:5])
    raise ExportRefused(
        "not_a_telegram_export", f"the ZIP holds several exports ({names}): send one at a time"
    )


class _Window:
    """The bytes `[start, stop)` of the source (to its end when `stop` is None) after `head`
    and before `tail`, as a file ijson reads: one chat of an account export as a document of
    its own. `position`: the source offset read up to."""

    def __init__(
        self,
        source: _Source,
        start: int,
        stop: int | None,
        head: bytes,
        tail: bytes,
        lane: int = 0,
    ) -> None:
        self._source = source
        self._lane = lane
        self._stream: _Readable | None = None
        self._start = start
        self._stop = stop
        self._head = head
        self._tail = tail
        self._failed = False
        self.position = start

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = _CHUNK
        if not size:
            return b""
        if self._head:
            out, self._head = self._head[:size], self._head[size:]
            return out
        want = size if self._stop is None else min(size, self._stop - self.position)
        if want > 0:
            try:
                if self._stream is None:
                    self._stream = self._source.stream(self._start, self._lane)
                piece = self._stream.read(want)
            except BaseException:
                self._failed = True
                raise
            if piece:
                self.position += len(piece)
                return piece
            self._stop = self.position  # the file ends before the span does
        out, self._tail = self._tail[:size], self._tail[size:]
        return out

    def release(self) -> None:
        """The stream back to the source to go on from (closed if reading it failed)."""
        stream, self._stream = self._stream, None
        if stream is not None and self._failed:
            stream.close()
        elif stream is not None:
            self._source.give_back(stream, self.position, self._lane)


# -- the open pass -------------------------------------------------------------------------------


class _Broken(Exception):
    """The document cannot be read further. `position`: where to stop reading it (nothing
    from there on was checked), or None where a parser meets the problem itself at the same
    byte (a syntax error, a cut file) and all before it was checked."""

    def __init__(self, position: int | None, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


@dataclass
class _Found:
    """What the open pass saw of one chat (or of the document's root)."""

    listed_in: str
    index: int
    start: int
    end: int | None = None
    name: Any = None
    type: Any = None
    id: Any = None
    messages: bool = False


@dataclass
class _Walked:
    root: _Found
    chats: list[_Found]
    lists: int = 0  # `chats.list` and `left_chats.list` arrays seen
    origin: int = 0  # where the document starts (after a UTF-8 BOM)
    broken: _Broken | None = None


def _survey(source: _Source) -> tuple[list[_Chat], str | None]:
    """The chats, from one streaming pass over the document (see the module's docstring)."""
    walked = _Walked(_Found("", 0, 0), [])
    stream = source.stream(0)
    try:
        _walk(stream, source, walked)
    except _Broken as exc:
        walked.broken = exc
    finally:
        stream.close()
    root, found, broken = walked.root, walked.chats, walked.broken
    if not root.messages and not found:
        if broken is not None:
            why = f"{source.name} cannot be read as a Telegram export: {broken.reason}"
        elif walked.lists:
            why = (
                f"{source.name} is an account export without chats: export again with "
                "chats selected"
            )
        else:
            why = (
                f"{source.name} is JSON but not a Telegram Desktop export: it has neither the "
                "messages of a chat nor the chats of an account (chats.list)"
            )
        raise ExportRefused("not_a_telegram_export", why)
    cut = broken.position if broken is not None else None
    reason = broken.reason if broken is not None else None
    if root.messages:
        root.start = walked.origin
        return [_chat(root, cut, whole=False)], reason
    chats: list[_Chat] = []
    seen: set[str] = set()
    for number, one in enumerate(found):
        following = found[number + 1].start if number + 1 < len(found) else None
        if following is not None and (cut is None or following <= cut):
            chat = _chat(one, following, whole=True)
        else:
            chat = _chat(one, cut, whole=False)
        if chat.conversation.id in seen:
            continue  # the same peer listed twice: its first listing is read
        seen.add(chat.conversation.id)
        chats.append(chat)
    return chats, reason


def _chat(one: _Found, stop: int | None, *, whole: bool) -> _Chat:
    telegram_type = one.type if isinstance(one.type, str) else None
    bare = one.id if type(one.id) is int else None
    chat_id = bot_api_chat_id(bare, telegram_type) if bare is not None else None
    if chat_id is None:
        # No id, or a type that does not say which kind of peer it is: an id live sync
        # cannot share, but the chat can still be mapped by its name.
        chat_id = f"{one.listed_in or 'chat'}.list[{one.index}]" if bare is None else str(bare)
    name = one.name if isinstance(one.name, str) and one.name.strip() else None
    name = name or _UNNAMED.get(telegram_type or "") or chat_id
    kind = _TYPES.get(telegram_type or "", ("channel", "user"))[0]
    return _Chat(
        conversation=Conversation(
            id=chat_id,
            name=name,
            kind=kind,
            aliases=(str(bare),) if bare is not None and str(bare) != chat_id else (),
        ),
        telegram_type=telegram_type,
        bare_id=bare,
        listed_in=one.listed_in,
        index=one.index,
        start=one.start,
        stop=stop,
        whole=whole,
        end=one.end,
    )


_LISTS = ("chats", "left_chats")


def _walk(stream: _Readable, source: _Source, walked: _Walked) -> None:
    """Parse the whole document, noting the root's chat fields (a one-chat export) and each
    chat of `chats.list` and `left_chats.list` with the offset of its `{`. The parser is fed
    what a `JsonGuard` accepted, in pieces that end at a `{`: a map's start event then comes
    last for its piece, and the brace is that piece's last byte. Raises `_Broken` where it
    cannot go on."""
    events = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, use_float=True)
    root, found = walked.root, walked.chats
    keys: list[Any] = [None] * 8  # the current key of the map at each depth (1-based)
    arrays = [False] * 8  # whether the container at each depth is an array
    depth = 0
    chat: _Found | None = None
    counts = dict.fromkeys(_LISTS, 0)
    position = 0  # the source offset of the current chunk
    pending = _read(stream, source, 0, len(_BOM))
    if pending == _BOM:
        position, pending, walked.origin = len(_BOM), b"", len(_BOM)
    guard = JsonGuard(position)
    while True:
        chunk = pending + _read(stream, source, position + len(pending), _CHUNK)
        pending = b""
        if not chunk:
            break
        size = guard.feed(chunk)
        start = 0
        while start < size:
            at = chunk.find(b"{", start, size)
            end = size if at < 0 else at + 1
            try:
                parser.send(chunk[start:end])
            except _ERRORS as exc:
                syntax: BaseException | None = exc  # the events before it are checked first
            else:
                syntax = None
            for event, value in events:
                if event == "map_key":
                    if depth < 5:
                        keys[depth] = value
                elif event == "start_map" or event == "start_array":
                    depth += 1
                    if depth < 8:
                        keys[depth] = None
                        arrays[depth] = event == "start_array"
                    if depth == 4 and _in_list(keys, arrays):
                        listed_in = keys[1]
                        chat = None
                        if event == "start_map":
                            chat = _Found(listed_in, counts[listed_in], position + end - 1)
                            found.append(chat)
                        counts[listed_in] += 1
                    elif depth == 3 and _in_list(keys, arrays):
                        walked.lists += 1
                    elif depth == 2 and keys[1] == "messages" and not arrays[1]:
                        root.messages = root.messages or event == "start_array"
                elif event == "end_map" or event == "end_array":
                    if depth == 4 and chat is not None:
                        chat.end = position + end
                        chat = None
                    depth -= 1
                elif depth == 1 and keys[1] in ("name", "type", "id") and not arrays[1]:
                    setattr(root, keys[1], value)
                elif depth == 4 and chat is not None and keys[4] in ("name", "type", "id"):
                    setattr(chat, keys[4], value)
                elif depth == 3 and _in_list(keys, arrays):
                    counts[keys[1]] += 1  # an item of the list that is not an object
            del events[:]
            if syntax is not None:
                raise _Broken(None, f"a syntax error: {_first_line(syntax)}") from syntax
            start = end
        if guard.problem is not None:
            raise _Broken(guard.problem.position, guard.problem.reason)
        position += size
    try:
        parser.close()
    except _ERRORS as exc:
        raise _Broken(None, _first_line(exc)) from exc


def _in_list(keys: list[Any], arrays: list[bool]) -> bool:
    """Whether the container at depth 3 is `chats.list` or `left_chats.list`."""
    return keys[1] in _LISTS and keys[2] == "list" and arrays[3] and not arrays[1] and not arrays[2]


def _read(stream: _Readable, source: _Source, position: int, size: int) -> bytes:
    try:
        return stream.read(size)
    except UNREADABLE as exc:
        raise _Broken(position, f"{source.name} cannot be read: {exc}") from exc


def _first_line(error: BaseException) -> str:
    """A parser's error in the user's words (`json_problem`), without the byte it names."""
    return json_problem(error).removeprefix("not valid JSON: ")


def _problem(error: BaseException | None, window: _Window) -> str:
    """Why the rest of a chat cannot be read, in the user's words."""
    if isinstance(error, ijson.JSONError | UnicodeDecodeError):
        return json_problem(error, window.position)
    return short(error or ValueError("it ends early"))


# -- one message ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    channel: str
    bare_id: int | None
    bot_chat: bool
    file: str
    outline: Outline | None = None  # the chat's first pass (`Outline`)


def _record(context: _Context, index: int, item: Any, done: float) -> HistoryRecord:
    checkpoint = {"chat": context.channel, "index": index}

    def quarantined(reason: str) -> HistoryRecord:
        return HistoryRecord(
            checkpoint, quarantined=Quarantined(context.file, index, reason), done=done
        )

    if not isinstance(item, dict):
        return quarantined(f"the message is not a JSON object but {json_type(item)}")
    message_id = item.get("id")
    if type(message_id) is not int:
        return quarantined("the message has no integer id")
    kind = item.get("type")
    if kind == "unsupported":
        return quarantined("Telegram Desktop could not export this message (type unsupported)")
    occurred_at = _moment(item.get("date_unixtime"), item.get("date"))
    if occurred_at is None:
        return quarantined("the message has no usable date")
    if kind == "service":
        action = item.get("action")
        subtype: str | None = action if isinstance(action, str) and action else "service"
        change = MessageChange(
            kind="created",
            external_channel_id=context.channel,
            external_message_id=str(message_id),
            occurred_at=occurred_at,
            author=_author(item, "actor"),
            sender=_sender(context, item, "actor"),
            subtype=subtype,
            ignored=f"Telegram service message ({subtype})",
        )
        return HistoryRecord(checkpoint, change=change, done=done)
    body = render_text(item.get("text_entities"), item.get("text"))
    media_kind, label, attachments = _media(item)
    text = f"{label}\n{body}" if label and body else label or body
    outline = context.outline
    parent = _parent(context, item)
    if parent is not None and outline is not None:
        parent = outline.root(parent)  # threads are flat: the chain's first message
    subtype, ignored = media_kind, None
    if outline is not None and not outline.kept(message_id, index):
        subtype = "duplicate"
        ignored = "the export writes this message again later: the later copy is imported"
    elif not text:
        subtype = "empty"
        ignored = "the message carries nothing that can be bridged"
    change = MessageChange(
        kind="created",
        external_channel_id=context.channel,
        external_message_id=str(message_id),
        occurred_at=occurred_at,
        text=text,
        external_thread_id=str(parent) if parent is not None else None,
        author=_author(item, "from"),
        sender=_sender(context, item, "from"),
        attachments=attachments,
        subtype=subtype,
        ignored=ignored,
    )
    return HistoryRecord(checkpoint, change=change, done=done, reactions=_reactions(item))


def _moment(unixtime: Any, iso: Any) -> datetime | None:
    """`date_unixtime` when the export has it; else `date`, local time of the computer that
    exported, with no offset: read as UTC (the file does not say the zone)."""
    seconds: int | None = None
    if isinstance(unixtime, str) and _UNIXTIME.match(unixtime):
        seconds = int(unixtime)
    elif type(unixtime) is int and unixtime >= 0:
        seconds = unixtime
    if seconds is not None:
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(iso, str) and _DATE.match(iso):
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return None


def _peer(value: Any) -> tuple[str, int] | None:
    return _peer_of(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=4096)
def _peer_of(value: str) -> tuple[str, int] | None:
    """(`user`, `chat` or `channel`, the bare id) of a `from_id`: a chat has few senders."""
    match = _PEER.match(value)
    return (match.group(1), int(match.group(2))) if match else None


def _author(item: Mapping[str, Any], field: str) -> Author | None:
    """Who sent it, as live sync names a sender: a user by their id; a channel or a group
    posting as itself by the chat's Bot API id, a post's signature first ("Ada (News)")."""
    peer = _peer(item.get(f"{field}_id"))
    name = item.get(field)
    name = name.strip() if isinstance(name, str) else ""
    if peer is None:
        return Author(name=name) if name else None
    external_id = _peer_id(*peer)
    signature = item.get("author") if field == "from" else None
    if peer[0] != "user" and isinstance(signature, str) and signature.strip():
        name = f"{signature.strip()} ({name})" if name else signature.strip()
    return Author(name=name or external_id, external_id=external_id)


def _sender(context: _Context, item: Mapping[str, Any], field: str) -> SenderMarks:
    """Live sync's marks: the sending user's id (none when a chat posted as itself); a bot
    when it is the bot of a bot chat (the export says no more about bots)."""
    peer = _peer(item.get(f"{field}_id"))
    if peer is None or peer[0] != "user":
        return SenderMarks()
    return SenderMarks(user_id=str(peer[1]), is_bot=context.bot_chat and peer[1] == context.bare_id)


def _parent(context: _Context, item: Mapping[str, Any]) -> int | None:
    """The replied message's id, unless it is in another chat (`reply_to_peer_id`): live
    sync's `reply_to_message` is only ever a message of the same chat."""
    parent = item.get("reply_to_message_id")
    if type(parent) is not int:
        return None
    elsewhere = _peer(item.get("reply_to_peer_id"))
    if elsewhere is not None and elsewhere[1] != context.bare_id:
        return None
    return parent


def _reactions(item: Mapping[str, Any]) -> int:
    reactions = item.get("reactions")
    if not isinstance(reactions, list):
        return 0
    return sum(
        r["count"]
        for r in reactions
        if isinstance(r, dict) and type(r.get("count")) is int and r["count"] > 0
    )


# -- media ---------------------------------------------------------------------------------------


def _media(item: Mapping[str, Any]) -> tuple[str | None, str, tuple[Attachment, ...]]:
    """(the Bot API's name for the media, its `[photo]`-like label as live sync writes it,
    the exported files as attachments)."""
    kind: str | None = None
    detail: Any = None
    files: list[Attachment] = []
    photo = item.get("photo")
    file = item.get("file")
    if isinstance(photo, str):
        kind = "photo"
        files += _file(photo, None, item.get("mime_type") or "image/jpeg")
    elif isinstance(file, str) or item.get("media_type") in _MEDIA_TYPES:
        # A sticker, a voice message ... with its file, or with none (an export that left
        # the `file` out): named all the same, as live sync names it.
        media_type = item.get("media_type")
        kind = _MEDIA_TYPES.get(media_type, "document") if isinstance(media_type, str) else None
        kind = kind or "document"
        file_name = item.get("file_name") if isinstance(item.get("file_name"), str) else None
        mime = item.get("mime_type") if isinstance(item.get("mime_type"), str) else None
        if isinstance(file, str):
            files += _file(file, file_name, mime)
        detail = {
            "document": file_name or (files[0].name if files else None),
            "audio": _audio_title(item) or file_name,
            "sticker": item.get("sticker_emoji"),
        }.get(kind)
    elif isinstance(item.get("contact_information"), dict):
        kind = "contact"
        contact = item["contact_information"]
        detail = " ".join(
            str(contact[k]) for k in ("first_name", "last_name") if contact.get(k)
        ).strip() or contact.get("phone_number")
        vcard = item.get("contact_vcard")
        if isinstance(vcard, str):
            files += _file(vcard, None, "text/vcard")
    elif isinstance(item.get("place_name"), str) or isinstance(item.get("address"), str):
        kind, detail = "venue", item.get("place_name") or item.get("address")
    elif "location_information" in item:
        kind = "location"
    elif isinstance(item.get("poll"), dict):
        kind, detail = "poll", item["poll"].get("question")
    elif isinstance(item.get("game_title"), str):
        kind, detail = "game", item["game_title"]
    elif isinstance(item.get("invoice_information"), dict):
        kind, detail = "invoice", item["invoice_information"].get("title")
    if kind is None:
        return None, "", ()
    name = kind.replace("_", " ")
    detail = detail.strip() if isinstance(detail, str) else ""
    label = f"[{name}: {detail}]" if detail else f"[{name}]"
    return kind, _escape(label, True), tuple(files)


def _audio_title(item: Mapping[str, Any]) -> str | None:
    title, performer = item.get("title"), item.get("performer")
    if isinstance(title, str) and title:
        return f"{performer} - {title}" if isinstance(performer, str) and performer else title
    return None


def _file(path: str, file_name: str | None, mime: str | None) -> list[Attachment]:
    """An exported file as an attachment (its path inside the export as the url), or none
    when tdesktop left it out and wrote why in parentheses instead of a path."""
    path = path.strip()
    if not path or path.startswith("("):
        return []
    return [Attachment(url=path, name=file_name or PurePosixPath(path).name, mime_type=mime)]


# -- text as CommonMark --------------------------------------------------------------------------

# Anywhere on a line, what can open emphasis, code, links, images, raw HTML, entities, GFM
# tables and strikethrough (commonmark.py's set) gets a backslash.
_INLINE = str.maketrans({char: "\\" + char for char in "\\`*_[]<|~&"})
# At a line's start: headings, quotes, list items, thematic breaks, setext underlines.
_LINE_START = re.compile(r"^(?:#{1,6}(?=\s|$)|[>+=-]|\d{1,9}[.)](?=\s|$))")
_BACKTICKS = re.compile(r"`+")
_LANGUAGE = re.compile(r"^[\w+#.-]{1,32}$")
_EMPHASIS = {"bold": "**", "italic": "*", "strikethrough": "~~"}


def _escape(text: str, line_start: bool) -> str:
    """`text` as literal CommonMark; `line_start`: it begins a line."""
    lines = md.clean(text).translate(_INLINE).split("\n")
    for number, line in enumerate(lines):
        if number or line_start:
            line = line.lstrip(" \t")  # four spaces would start a code block
            match = _LINE_START.match(line)
            if match:
                marker = match.group(0)
                line = f"{marker[:-1]}\\{marker[-1]}{line[match.end() :]}"
            lines[number] = line
    return "\n".join(lines)


def render_text(entities: Any, text: Any = None) -> str:
    """A message's text as CommonMark, from `text_entities` (preferred: an array of `{type,
    text}`) or, when that is absent or empty, `text` (a string, or an array of strings and
    entities).

    bold `**`, italic `*`, strikethrough `~~`, code a code span whose fence is longer than
    any backtick run inside, pre a fenced block (with its `language`), blockquote `> ` lines,
    text_link `[text](<href>)` (http(s) only, else the text), link `<url>` (http(s), else
    the text); underline and spoiler (CommonMark has neither), mention, mention_name,
    hashtag, cashtag, bot_command, email, phone, bank_card and custom_emoji as their text.
    Every other character is literal: `*not bold*` stays `\\*not bold\\*`."""
    # Entities when there are some: an export may write `text_entities: []` beside a text.
    parts = entities if isinstance(entities, list) and entities else text
    if isinstance(parts, str):
        return _escape(parts, True).strip()
    if not isinstance(parts, list):
        return ""
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            kind, value, extra = "plain", part, None
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            kind, value = str(part.get("type") or "plain"), part["text"]
            extra = part.get("language") if kind == "pre" else part.get("href")
        else:
            continue
        if value:
            out.append(_part(kind, value, extra, not out or out[-1].endswith("\n")))
    return "".join(out).strip()


def _part(kind: str, value: str, extra: Any, line_start: bool) -> str:
    if kind in _EMPHASIS:
        return _emphasis(_EMPHASIS[kind], value, line_start)
    if kind == "code":
        return _code_span(value)
    if kind == "pre":
        return _fenced(value, extra, line_start)
    if kind == "blockquote":
        lines = md.clean(value).strip("\n").split("\n")
        quoted = "\n".join(f"> {_escape(line, True)}".rstrip() for line in lines)
        return ("" if line_start else "\n") + quoted + "\n\n"
    if kind == "text_link":
        label = _escape(value, line_start)
        return md.link(label, extra) if md.safe_url(extra) else label
    if kind == "link":
        url = md.safe_url(value)
        if url is not None and url == value.strip():
            return f"<{url}>"
    return _escape(value, line_start)


def _emphasis(marker: str, value: str, line_start: bool) -> str:
    """Each line wrapped on its own (emphasis cannot span a blank line), the whitespace at
    its ends outside the markers (`** x**` is no emphasis)."""
    out = []
    for number, line in enumerate(md.clean(value).split("\n")):
        core = line.strip()
        if number or line_start:
            line = line.lstrip(" \t")  # four spaces would start a code block
        if not core:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        trail = line[len(line.rstrip()) :]
        # After the opening marker the text is not at a line's start.
        out.append(f"{lead}{marker}{_escape(core, False)}{marker}{trail}")
    return "\n".join(out)


def _code_span(value: str) -> str:
    inner = md.clean(value).replace("\n", " ")
    if not inner.strip():
        return _escape(inner, False)
    longest = max((len(run) for run in _BACKTICKS.findall(inner)), default=0)
    fence = "`" * (longest + 1)
    if inner.startswith("`") or inner.endswith("`"):
        inner = f" {inner} "
    return f"{fence}{inner}{fence}"


def _fenced(value: str, language: Any, line_start: bool) -> str:
    body = md.clean(value).strip("\n")
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    info = language.strip() if isinstance(language, str) else ""
    info = info if _LANGUAGE.match(info) else ""
    return f"{'' if line_start else chr(10)}{fence}{info}\n{body}\n{fence}\n"
