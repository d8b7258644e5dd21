"""What every export file import shares (SPEC §9): Slack's export ZIP, Telegram Desktop's
`result.json` (bare or in a ZIP) and DiscordChatExporter's JSON files (bare or in a ZIP).

- `ExportReader`: what the importer reads of an opened export, whatever made it.
- `ExportRefused`: the file cannot be imported, said before any job exists.
- `ExportLimits`: what an export may be (sizes, members, ratios).
- `open_archive` and `checked_members`: a ZIP opened and every member of its directory
  checked (path tricks, duplicates, total size, compression ratio) before a record is read.
- `kind_of`: a ZIP, JSON, or neither, from the file's first bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from shared.errors import HookhubError
from shared.providers.chat import Author
from shared.providers.history import Conversation, HistoryRecord
from shared.zipdir import MemberError, NameNotUtf8, NotAZip, TooManyMembers, ZipDirectory

__all__ = [
    "UNREADABLE",
    "ExportLimits",
    "ExportReader",
    "ExportRefused",
    "checked_members",
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
      bot, says). Part of every envelope id (shared.message_map.inbound_message_id).
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

    def close(self) -> None: ...


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
