"""What every export file import shares (SPEC §9): Slack's export ZIP, Telegram Desktop's
`result.json` (bare or in a ZIP) and DiscordChatExporter's JSON files (bare or in a ZIP).

- `ExportReader`: what the importer reads of an opened export, whatever made it.
- `ExportRefused`: the file cannot be imported, said before any job exists.
- `ExportLimits`: what an export may be (sizes, members, ratios).
- `open_archive` and `checked_members`: a ZIP opened and every member of its directory
  checked (path tricks, duplicates, total size, compression ratio) before a record is read.
- `kind_of`: a ZIP, JSON, or neither, from the file's first bytes.
- `Outline`: what a first pass over one conversation learns before its messages are
  imported: each reply's parent, so that a reply is threaded under the first message of its
  chain (threads are flat), wherever in the export that message is; and which copy of a
  message written more than once is the one imported.
- `json_problem`: a JSON parser's error in the user's words.
- `JsonGuard` and `CheckedReader`: a JSON document checked before ijson is given a byte
  of it. `ijson.items` and `ijson.parse` build a prefix string for every level a value
  nests (the C backend too): a few hundred kilobytes of `[[[[` take gigabytes. The guard
  stops at the first byte where values nest deeper than `MAX_DEPTH`, or where one value (a
  string, a number) has run on for more than `MAX_VALUE_BYTES` (yajl buffers a value until
  it ends).
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, Protocol, Self

from shared.kernel.errors import HookhubError
from shared.kernel.zipdir import MemberError, NameNotUtf8, NotAZip, TooManyMembers, ZipDirectory
from shared.providers.chat import Author
from shared.providers.history import Conversation, HistoryRecord, Quarantined

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUE_BYTES",
    "UNREADABLE",
    "CheckedReader",
    "ExportLimits",
    "ExportReader",
    "ExportRefused",
    "JsonGuard",
    "Outline",
    "Unacceptable",
    "checked_members",
    "json_problem",
    "json_type",
    "kind_of",
    "open_archive",
    "short",
]

MAX_NAME_CHARS = 1024
MAX_SEGMENT_BYTES = 255
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What reading a member can raise: a bad CRC or local header, an encrypted member, a
# compression method other than stored and deflated, corrupt compressed data (MemberError),
# and the disk's errors (OSError).
UNREADABLE = (MemberError, OSError)
# Refusals that say the request was wrong (400); the others say the file was (422).
_BAD_REQUEST = frozenset({"not_a_zip", "not_an_export_file"})
# What an export's JSON may be (`JsonGuard`). Telegram Desktop nests 10 deep at most
# (account → chats → list → chat → messages → message → reactions → reaction → recent →
# sender), DiscordChatExporter 7 (messages → message → reactions → reaction → users →
# user → roles → role): nothing real comes near.
MAX_DEPTH = 64
# Bytes fed to the parser without it finishing a token: one string or number that long.
# Telegram's longest text is 4096 characters, Discord's 4000.
MAX_VALUE_BYTES = 64 * 2**20
_BOM = b"\xef\xbb\xbf"
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'{}[]"')
_NUMBER = b"0123456789+-.eE"
_STEP = [0] * 256  # a bracket's step in depth
for _bracket in b"[{":
    _STEP[_bracket] = 1
for _bracket in b"]}":
    _STEP[_bracket] = -1


class ExportRefused(HookhubError):
    """The file cannot be imported as the export it was sent as; nothing of it was imported.
    `code`: not_a_zip | not_an_export_file (400) | no_channels_json | not_a_telegram_export |
    not_a_discord_export | malformed_index | unsafe_member_name | too_many_members |
    export_too_large | zip_bomb (422)."""

    status = 422
    code = "export_refused"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
        if code in _BAD_REQUEST:
            self.status = 400


@dataclass(frozen=True)
class ExportLimits:
    """What an export may be. Sizes are uncompressed bytes, as the ZIP's directory declares
    them (and as reading enforces: a member is never read past its declared size)."""

    max_uncompressed_bytes: int = 20 * 2**30
    # Per member, for members of at least `ratio_floor_bytes`: chat exports' JSON
    # compresses about 10:1; a bomb's filler compresses 1000:1 and more.
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 2**20
    max_members: int = 500_000  # about 60 MB of directory (HOOKHUB_IMPORT_MAX_MEMBERS)
    # A bigger Slack day file is quarantined whole, not read (a day file is read whole).
    max_day_file_bytes: int = 256 * 2**20
    # Slack's channels.json, users.json and the others are read whole, at open.
    max_index_bytes: int = 512 * 2**20


class ExportReader(Protocol):
    """An opened, checked export, read one conversation at a time in bounded memory.

    - `provider`: whose messages they are (`slack`, `telegram`, `discord`).
    - `account`: the provider account the file says they belong to (Slack team, Discord
      guild), or None when it does not say (a Telegram export: the job's integration, the
      bot, says). Part of every envelope id (shared.domain.message_map.inbound_message_id).
    - `conversations`: what can be imported, ids as live sync knows them (a Telegram
      supergroup's `-100…` id, a Discord channel's snowflake).
    - `records(conversation, after)`: its messages in order, each with the checkpoint to go
      on from (`after=` one of them resumes right after it); service messages as ignored
      changes with a `subtype`, unreadable records quarantined with file and position.
    """

    provider: str
    account: str | None
    conversations: list[Conversation]

    def users(self) -> dict[str, Author]: ...

    def size(self, conversation: Conversation) -> int:
        """The conversation's weight for the job's percent (bytes, or 1 when unknown)."""
        ...

    def records(
        self, conversation: Conversation, after: Mapping[str, Any] | None = None
    ) -> Iterator[HistoryRecord]: ...

    def left_out(self) -> tuple[list[Quarantined], int]:
        """Files of the export left out whole (the first ones, and how many in all), for
        the job's report: a ZIP's `.json` member that is not one of its files."""
        ...

    def close(self) -> None: ...


class ExportFile:
    """What the readers share: `with Reader.open(path) as export:` closes it, and no file
    of it is left out unless the reader says so (`left_out`)."""

    def close(self) -> None:
        raise NotImplementedError

    def left_out(self) -> tuple[list[Quarantined], int]:
        return [], 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def kind_of(path: Path) -> Literal["zip", "json", "other"]:
    """What the file is, from its first bytes: a ZIP (a local header, or the end record of
    an empty one), JSON (an object or array after optional whitespace and a UTF-8 BOM)."""
    with path.open("rb") as file:
        head = file.read(4096)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if text[:1] in (b"{", b"["):
        return "json"
    return "other"


def open_archive(path: Path, limits: ExportLimits) -> ZipDirectory:
    """The ZIP's directory, or `ExportRefused` saying why not."""
    try:
        return ZipDirectory(path, max_members=limits.max_members)
    except TooManyMembers as exc:
        raise ExportRefused(
            "too_many_members",
            f"the export has {'' if exc.exact else 'more than '}{exc.count} members, "
            f"more than the limit of {limits.max_members}",
        ) from exc
    except NameNotUtf8 as exc:
        raise ExportRefused(
            "unsafe_member_name", "a member name is flagged UTF-8 but is not UTF-8"
        ) from exc
    except NotAZip as exc:
        raise ExportRefused("not_a_zip", f"the file is not a ZIP archive ({exc})") from exc


def checked_members(archive: ZipDirectory, limits: ExportLimits) -> Iterator[tuple[int, str]]:
    """Every member, `(number, name)` in directory order, each checked as it comes: its name
    (no escape from a folder, nothing hidden), not twice, the running total of declared
    sizes and its compression ratio within the limits. Raises `ExportRefused`."""
    total = 0
    for member in range(len(archive)):
        name = archive.name(member)
        check_name(name)
        if member == archive.duplicate:
            raise ExportRefused("unsafe_member_name", f"the member {name!r} appears twice")
        total += archive.file_size(member)
        if total > limits.max_uncompressed_bytes:
            raise ExportRefused(
                "export_too_large",
                f"the export's uncompressed size is over the limit of "
                f"{limits.max_uncompressed_bytes} bytes",
            )
        _check_ratio(name, archive, member, limits)
        yield member, name


def check_name(name: str) -> None:
    """Refuses a member name that could escape a folder or hide (`ExportRefused`)."""

    def refuse(why: str) -> None:
        raise ExportRefused("unsafe_member_name", f"the member name {name!r} {why}")

    if _CONTROL.search(name):
        refuse("holds a control character")
    if "\\" in name:
        refuse("holds a backslash")
    if name.startswith("/"):
        refuse("is an absolute path")
    if _DRIVE.match(name):
        refuse("starts with a drive letter")
    if len(name) > MAX_NAME_CHARS:
        refuse(f"is over {MAX_NAME_CHARS} characters")
    segments = name.rstrip("/").split("/")
    if ".." in segments:
        refuse("holds a '..' segment")
    if len(name) > MAX_SEGMENT_BYTES // 4 and any(
        len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES for segment in segments
    ):
        refuse(f"holds a segment over {MAX_SEGMENT_BYTES} bytes")


def _check_ratio(name: str, archive: ZipDirectory, member: int, limits: ExportLimits) -> None:
    size = archive.file_size(member)
    if size < limits.ratio_floor_bytes:
        return
    compressed = archive.compress_size(member)
    ratio = size / max(compressed, 1)
    if ratio > limits.max_ratio:
        raise ExportRefused(
            "zip_bomb",
            f"the member {name!r} expands {ratio:.0f} times ({size} bytes from "
            f"{compressed}), over the limit of {limits.max_ratio:.0f}",
        )


def json_type(value: Any) -> str:
    """`an object`, `an array`, ...: what a JSON value is, for an error message."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def short(error: BaseException) -> str:
    """An error's text, cut to 200 characters."""
    text = str(error)
    return text if len(text) <= 200 else text[:197] + "..."


# yajl's words → the user's (its first line, `parse error: premature EOF`, ...).
_YAJL_WORDS = {
    "premature EOF": "the file is cut short (it ends before its JSON does)",
    "trailing garbage": "something follows the end of the JSON document",
}


def json_problem(error: BaseException, before: int | None = None) -> str:
    """A JSON parser's error in the user's words: `not valid JSON before byte N: what` (`N`:
    the bytes read when the parser stopped; the problem is in the last piece read). yajl's
    text is its first line without its `parse error:` prefix: never the caret diagram that
    follows it, nor Python's repr of bytes (`b'...'`) some errors carry."""
    if isinstance(error, UnicodeDecodeError):
        what = f"a byte that is not UTF-8 ({error.reason})"
    else:
        text = str(error.args[0]) if error.args else str(error)
        if isinstance(error.args[0] if error.args else None, bytes):
            text = error.args[0].decode("utf-8", errors="replace")
        elif text.startswith(("b'", 'b"')):
            text = text[2:-1].replace("\\n", "\n")
        what = text.strip().split("\n", 1)[0].strip()
        for prefix in ("parse error:", "lexical error:"):
            what = what.removeprefix(prefix).strip()
        what = _YAJL_WORDS.get(what, what).rstrip(".") or "a syntax error"
    where = f" before byte {before}" if before is not None else ""
    return short(ValueError(f"not valid JSON{where}: {what}"))


# -- the first pass over a conversation ----------------------------------------------------------

# Messages per conversation whose ids (and replies whose parents) the first pass keeps: 8
# bytes a message and 16 a reply, about 48 MB at the bound.
MAX_OUTLINED = 2_000_000
# Replies followed up a chain to its first message, at most (a loop in a forged file ends).
MAX_CHAIN = 10_000
# Messages out of id order the first pass looks at as possible copies, at most (a file
# sorted otherwise than oldest first has every message out of order).
MAX_SUSPECTS = 100_000
_INT64 = range(-(2**63), 2**63)
_NONE = -(2**63)  # a record without an id (no message id is that)


class Outline:
    """What a first pass over one conversation learns (SPEC §9, docs/import.md "Threads"):

    - each reply's parent (`add(id, parent)`), so that `root(parent)` is the first message
      of the chain a reply belongs to (threads are flat: a reply to a reply is in the thread
      of the message that started the chain), wherever that message is in the conversation:
      before the reply or after it, in the same file or another of the same export. A parent
      the conversation does not hold is its chain's first message.
    - which copy of a message written more than once is imported (`kept(id, position)`): the
      last one (some DiscordChatExporter versions write an edited message twice; the last
      is its latest text). `position`: the record's number in the conversation, counting
      from 0 every record the pass was given (`add`), with an id or not.

    Memory: 8 bytes per record and 16 per reply while the pass runs (in arrays, not Python
    objects), the replies' 16 bytes after; at most `MAX_OUTLINED` records: past that the
    rest is imported as it reads (a reply under its parent's chain as far as it is known,
    every copy of a message). A copy is looked for among the messages whose id is not
    larger than every id before them (a later copy's is not), `MAX_SUSPECTS` at most."""

    def __init__(self, limit: int = MAX_OUTLINED) -> None:
        self.limit = limit
        self.full = False  # the bound was reached
        self._ids = array("q")  # every record's id, _NONE for one without
        self._children = array("q")
        self._parents = array("q")
        self._last = _NONE  # the largest id so far
        # Ids not larger than every id before them: a message's second copy is one (the
        # exports write messages oldest first, ids growing); at most MAX_SUSPECTS.
        self._suspects: set[int] = set()
        self._copies: dict[int, int] = {}  # id written twice or more → its last position

    def add(self, message_id: int | None, parent: int | None = None) -> None:
        """The conversation's next record, in the order they are read: its message id (None:
        it has none) and the message it replies to."""
        if len(self._ids) >= self.limit:
            self.full = True
            return
        if message_id is None or message_id not in _INT64 or message_id == _NONE:
            self._ids.append(_NONE)
            return
        if message_id <= self._last:
            if len(self._suspects) < MAX_SUSPECTS:
                self._suspects.add(message_id)
        else:
            self._last = message_id
        self._ids.append(message_id)
        if parent is not None and parent != message_id and parent in _INT64:
            self._children.append(message_id)
            self._parents.append(parent)

    def seal(self) -> None:
        """The pass is over: replies sorted for look-ups, copies found, the ids let go."""
        children = self._children
        if any(children[i] > children[i + 1] for i in range(len(children) - 1)):
            order = sorted(range(len(children)), key=children.__getitem__)
            self._children = array("q", (children[i] for i in order))
            self._parents = array("q", (self._parents[i] for i in order))
        if self._suspects:
            suspects, seen = self._suspects, Counter[int]()
            for position, message_id in enumerate(self._ids):
                if message_id in suspects:
                    seen[message_id] += 1
                    self._copies[message_id] = position
            self._copies = {m: at for m, at in self._copies.items() if seen[m] > 1}
            self._suspects = set()
        self._ids = array("q")

    def _parent(self, message_id: int) -> int | None:
        children = self._children
        at = bisect_left(children, message_id)
        if at < len(children) and children[at] == message_id:
            return self._parents[at]
        return None

    def root(self, parent: int) -> int:
        """The first message of the chain `parent` is in (`parent` itself when it replies to
        nothing the conversation holds)."""
        found = parent
        for _ in range(MAX_CHAIN):
            above = self._parent(found)
            if above is None or above == parent:
                break
            found = above
        return found

    @property
    def count(self) -> int:
        """Records added so far."""
        return len(self._ids)

    def kept(self, message_id: int, position: int) -> bool:
        """Whether this copy of the message is the one imported (the last)."""
        last = self._copies.get(message_id)
        return last is None or last == position


# -- JSON checked before ijson is given it -------------------------------------------------------


class Unacceptable(Exception):
    """A JSON document cannot be read on from `position` (an offset, as `JsonGuard` counts
    them): `reason` says why (values nest too deep, a value runs on too long)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"{reason} (at byte {position})")
        self.position = position
        self.reason = reason


class JsonGuard:
    """A JSON document's bytes, fed in order, checked before a parser is given them: values
    nest at most `MAX_DEPTH` deep, and no value runs on for more than `MAX_VALUE_BYTES`
    (see the module's docstring). `position`: the offset of the next byte to feed (`start`
    before the first); `problem`: why the guard stopped (nothing more is accepted then).

    In C-speed steps over each piece, without parsing it: escaped backslashes, then escaped
    quotes are cut out; of what is left, quotes and brackets are kept; the runs between
    quotes outside strings hold the structure's brackets, whose running depth is summed.
    Where a piece is too deep, the first byte that is, by bisection on the same steps.

    This follows the document as yajl does as long as it is JSON, and yajl stops where it
    is not (a stray backslash or bracket, an unknown escape): a parser given only accepted
    bytes never nests deeper, nor buffers a longer value, than the guard allows. A string
    (or number) is counted in whole pieces: it is refused within a piece of the limit."""

    def __init__(self, start: int = 0) -> None:
        self.max_depth = MAX_DEPTH
        self.max_value_bytes = MAX_VALUE_BYTES
        self.position = start
        self.problem: Unacceptable | None = None
        self.depth = 0
        self._inside = False  # in a string
        self._escaped = False  # the next byte is escaped (a piece ended in a string's `\`)
        self._value = 0  # bytes of the value the last piece ended in, at least as many

    def feed(self, data: bytes) -> int:
        """How many of `data`'s bytes (the document's next) are acceptable: all, or those
        before the first that is not, `problem` then saying why (the guard accepts nothing
        more)."""
        if self.problem is not None or not data:
            return 0
        brackets, quotes, escaped = self._structure(data)
        opens = brackets.count(b"[") + brackets.count(b"{")
        if self.depth + opens > self.max_depth and self._peak(brackets) > self.max_depth:
            return self._stop(
                self._too_deep(data), f"values nest deeper than {self.max_depth} levels"
            )
        if not quotes and (self._inside or not data.translate(None, _NUMBER)):
            self._value += len(data)  # all of it in the string, or the number, it began in
        else:
            self._value = len(data)  # the value it ends in began in it
        if self._value > self.max_value_bytes:
            return self._stop(0, f"a value runs on for more than {self.max_value_bytes} bytes")
        self.depth += 2 * opens - len(brackets)
        self._inside = self._inside != (quotes % 2 == 1)
        self._escaped = escaped
        self.position += len(data)
        return len(data)

    def _structure(self, data: bytes) -> tuple[bytes, int, bool]:
        """(the brackets of `data` outside strings, in order; how many of its quotes start or
        end a string; whether its last byte escapes the next)."""
        text = data[1:] if self._escaped else data
        escaped = False
        if b"\\" in text:
            escaped = (len(text) - len(text.rstrip(b"\\"))) % 2 == 1
            text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
        skeleton = text.translate(None, _NOT_STRUCTURE)
        quotes = skeleton.count(b'"')
        if not quotes:
            return (b"" if self._inside else skeleton), 0, escaped
        # Every string made whole (the one it began in opened, the one it ends in closed):
        # strings are then the runs between the 1st and 2nd quote, the 3rd and 4th, ...
        if self._inside:
            skeleton = b'"' + skeleton
        if (quotes + self._inside) % 2:
            skeleton += b'"'
        # Most strings hold no bracket: a quote left after cutting out `""` shows one does.
        brackets = skeleton.replace(b'""', b"")
        if b'"' in brackets:
            brackets = b"".join(skeleton.split(b'"')[::2])
        return brackets, quotes, escaped

    def _peak(self, brackets: bytes) -> int:
        return max(accumulate(map(_STEP.__getitem__, brackets), initial=self.depth))

    def _too_deep(self, data: bytes) -> int:
        """Where in `data` the first bracket too deep is: the shortest start of it that is
        too deep ends with it."""
        low, high = 0, len(data)  # data[:low] is not too deep, data[:high] is
        while high - low > 1:
            middle = (low + high) // 2
            if self._peak(self._structure(data[:middle])[0]) > self.max_depth:
                high = middle
            else:
                low = middle
        return low

    def _stop(self, accepted: int, reason: str) -> int:
        self.position += accepted
        self.problem = Unacceptable(self.position, reason)
        return accepted


class CheckedReader:
    """A JSON document given in pieces (a file's chunks, a ZIP member's inflated pieces) as
    the file `ijson.items` and `ijson.parse` read, each read returning only bytes a
    `JsonGuard` accepted: where it stops, a read returns the bytes before and the next one
    raises `Unacceptable`. An error of the pieces (a ZIP member's CRC-32, checked after its
    last piece) is raised after every piece before it was read. A UTF-8 byte order mark at
    the start is dropped (yajl refuses it). `count`: the document's bytes read so far."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._guard = JsonGuard()
        self._left = b""
        self._at = 0
        self._started = False
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson reads 0 bytes first, to see they are bytes
            return b""
        guard = self._guard
        if guard.problem is not None:  # what it accepted was all returned with it
            raise guard.problem
        if self._at >= len(self._left):
            self._left, self._at = self._next(), 0
        end = len(self._left) if size < 0 else min(len(self._left), self._at + size)
        data = self._left[self._at : end]
        accepted = guard.feed(data)
        if accepted < len(data):
            data = data[:accepted]
            if not data and guard.problem is not None:
                raise guard.problem
        self._at += len(data)
        self.count += len(data)
        return data

    def _next(self) -> bytes:
        """The next piece that is not empty, or nothing at the end."""
        piece = b""
        for piece in self._pieces:
            if piece:
                break
        if not self._started and piece:
            self._started = True
            while len(piece) < len(_BOM) and _BOM.startswith(piece):
                more = self._next()  # a piece shorter than the mark
                if not more:
                    break
                piece += more
            if piece.startswith(_BOM):
                piece = piece[len(_BOM) :]
                self._guard.position = len(_BOM)  # offsets are the file's
                if not piece:
                    return self._next()
        return piece

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> CheckedReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
