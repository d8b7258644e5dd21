"""Identifiers and timestamps: time-ordered resource ids, the ids hookhub takes from outside
(`PrintableId`), and UTC clocks."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A ULID-style id (48-bit millisecond time, 80 random bits) with a type prefix.

    Ids sort by creation time, which is what cursor pagination walks.
    """
    return _timed(prefix, time.time(), os.urandom(10))


def new_id_at(prefix: str, moment: datetime) -> str:
    """`new_id` as if made at `moment` (a record of something that happened then)."""
    return _timed(prefix, moment.timestamp(), os.urandom(10))


def id_floor(prefix: str, seconds: float) -> str:
    """The smallest `new_id(prefix)` made at `seconds` (Unix time) or later, for range
    queries over ids by creation time."""
    return _timed(prefix, seconds, bytes(10))


def id_time(resource_id: str) -> float:
    """When `new_id` made `resource_id` (Unix time), from its 48-bit millisecond prefix."""
    value = 0
    for char in resource_id.rpartition("_")[2][:10]:
        value = value * 32 + _CROCKFORD.index(char)
    return value / 1000


def _timed(prefix: str, seconds: float, low: bytes) -> str:
    """48 bits of milliseconds, then 80 bits of `low`."""
    value = (max(int(seconds * 1000), 0) << 80) | int.from_bytes(low[:10], "big")
    return f"{prefix}_{_crockford(value)}"


def _crockford(value: int) -> str:
    """The low 130 bits of `value` as 26 of Crockford's base-32 digits, most significant
    first, two digits (ten bits) a step."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_SHIFTS = range(120, -1, -10)


def derived_timed_id(prefix: str, moment: datetime, *parts: str) -> str:
    """Deterministic like `derived_id`, and sorting by `moment` like `new_id`: the
    millisecond time of `moment`, then 80 bits of a hash of `parts`. For things made again
    on a redelivery that must still list newest first."""
    return _timed(prefix, moment.timestamp(), _digest(parts))


def derived_id(*parts: str, prefix: str = "evt") -> str:
    """A deterministic id for something that may arrive more than once (a redelivery)."""
    return f"{prefix}_{_digest(parts).hex()[:32]}"


def _digest(parts: tuple[str, ...]) -> bytes:
    return hashlib.sha256("\x1f".join(("hookhub", *parts)).encode()).digest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def utcnow_ms() -> datetime:
    """Now, to the millisecond, as MongoDB keeps a time: an answer built from a document
    just written is then what a read of it gives."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def isoformat(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- Ids from outside ----------------------------------------------------------------------
#
# A workspace id, a chat channel's id, an event's id, a provider's channel id: hookhub
# stores them, routes by them (partition keys, lookups) and shows them (console, logs,
# messages). Each is 1 to MAX_ID_LENGTH characters, none of them whitespace, a control
# character or one of Unicode's format characters, whose work is to be unseen: a NUL cuts a
# C string short, U+202E RIGHT-TO-LEFT OVERRIDE shows `ws_\u202eemos` as `ws_some`, a zero-width
# space makes two ids that look one. Every id a provider makes fits (Slack `C0…`, Discord
# snowflakes, Telegram's `-100…`, Jira's `PROJ-1`, GitHub's `owner/repo`), and so do ids in
# any script. The rule is the Unicode general categories below (surrogates included, which
# no UTF-8 text can hold); docs/api.md ("Requests and resources") states it for users.

MAX_ID_LENGTH = 200
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_PRINTABLE_ASCII = re.compile(r"[!-~]+")


def refused_in_id(value: str) -> tuple[int, str] | None:
    """The first character of `value` an id may not hold, with its position; None if none.
    ASCII ids (nearly all) in one C-speed match."""
    if value.isascii() and _PRINTABLE_ASCII.fullmatch(value):
        return None
    for position, char in enumerate(value):
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            return position, char
    return None


def describe_character(char: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)`; `U+0000 (a control character)` for the unnamed."""
    name = unicodedata.name(char, "")
    if not name:
        name = "a control character" if unicodedata.category(char) == "Cc" else "unnamed"
    return f"U+{ord(char):04X} ({name})"


def id_problem(value: str) -> str | None:
    """Why `value` is not an id, in a user's words; None when it is one."""
    if not value:
        return "is empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is longer than {MAX_ID_LENGTH} characters"
    found = refused_in_id(value)
    if found is None:
        return None
    position, char = found
    return (
        f"holds {describe_character(char)} at position {position}: an id holds no "
        "whitespace, control or format (bidi, zero-width) characters"
    )


def _printable(value: str) -> str:
    if (problem := id_problem(value)) is not None:
        raise PydanticCustomError("id_character", "{problem}", {"problem": problem})
    return value


@functools.cache
def id_pattern() -> str:
    """The rule as a JSON Schema `pattern` (for /openapi.json, and so for schemathesis):
    exact over the Basic Multilingual Plane, whose refused characters it names as `\\uXXXX`
    escapes that ECMA-262 and Python regular expressions read alike. Beyond it (a few
    format characters: Unicode's tags, U+E0001…) only the validator refuses."""
    ranges: list[list[int]] = []
    for code in range(0x10000):
        if unicodedata.category(chr(code)) in REFUSED_CATEGORIES:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    refused = "".join(
        f"\\u{low:04x}" if low == high else f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges
    )
    return f"^[^{refused}]+$"


@dataclass(frozen=True)
class _IdPattern:
    """Puts `id_pattern()` in the JSON schema of the type it annotates."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        value = handler(schema)
        value["pattern"] = id_pattern()
        return value


# The type of every id a model takes from outside, in a body, a path or a query alike.
PrintableId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
    AfterValidator(_printable),
    _IdPattern(),
]
