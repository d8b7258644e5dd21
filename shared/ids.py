"""Identifiers and timestamps: time-ordered resource ids and UTC clocks."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime

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
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


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
