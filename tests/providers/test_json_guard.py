"""`JsonGuard` and `CheckedReader` (shared/providers/exports.py): a JSON document checked
before ijson is given it. The guard follows the structure in C-speed steps without parsing;
it must agree with yajl (ijson's parser) on every document yajl reads: the first byte too
deep is the one where yajl's depth goes over the limit, whatever the pieces, the escapes
and the brackets in strings."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import ijson  # type: ignore[import-untyped]
import pytest

from shared.providers import exports
from shared.providers.exports import CheckedReader, JsonGuard, Unacceptable

# What strings are made of: brackets, quotes and backslashes (escaped by json.dumps) most.
_CHARS = ['"', "\\", "[", "]", "{", "}", "a", '\\"', "\\\\", "é", "\n"]


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 10 or roll < 0.3:
        return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 8)))
    if roll < 0.6:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.9:
        return {_value(rng, 99): _value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return rng.choice([1, -2.5e3, True, None])


def _yajl(document: bytes, limit: int) -> tuple[str, int] | None:
    """Where yajl, fed a byte at a time, goes deeper than `limit` ("deep") or stops ("error")."""
    events = ijson.sendable_list()
    parser = ijson.basic_parse_coro(events, use_float=True)
    depth = 0
    for at in range(len(document)):
        try:
            parser.send(document[at : at + 1])
        except ijson.JSONError:
            return "error", at
        for event, _ in events:
            if event in ("start_map", "start_array"):
                depth += 1
                if depth > limit:
                    return "deep", at
            elif event in ("end_map", "end_array"):
                depth -= 1
        del events[:]
    return None


def _fed(document: bytes, limit: int, rng: random.Random) -> JsonGuard:
    """The guard fed `document` in random pieces until it stops."""
    guard = JsonGuard()
    guard.max_depth = limit
    at = 0
    while at < len(document):
        piece = document[at : at + rng.randint(1, 9)]
        if guard.feed(piece) < len(piece):
            break
        at += len(piece)
    return guard


@pytest.mark.parametrize("seed", range(4))
def test_the_guard_stops_where_yajl_goes_too_deep(seed: int) -> None:
    rng = random.Random(seed)
    deep = 0
    for _ in range(400):
        document = json.dumps(_value(rng, 0), ensure_ascii=rng.random() < 0.5).encode()
        if rng.random() < 0.3:  # broken somewhere: only what yajl reads must agree
            at = rng.randrange(len(document))
            document = document[:at] + bytes([rng.choice(b'"\\[]{}a')]) + document[at + 1 :]
        limit = rng.randint(1, 8)
        found = _yajl(document, limit)
        guard = _fed(document, limit, rng)
        if found is not None and found[0] == "deep":
            deep += 1
            assert guard.problem is not None, (document, limit)
            assert guard.problem.position == found[1], (document, limit)
            assert guard.problem.reason == f"values nest deeper than {limit} levels"
        else:  # never stops before yajl does
            end = len(document) if found is None else found[1]
            assert guard.problem is None or guard.problem.position >= end, (document, limit)
    assert deep > 40  # the too deep case is exercised


def test_a_string_or_a_number_longer_than_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted in the file's bytes (escapes too), across pieces; whitespace and many short
    values are not one long value."""
    monkeypatch.setattr(exports, "MAX_VALUE_BYTES", 1000)

    def stopped(document: bytes) -> Unacceptable | None:
        guard = JsonGuard()
        for at in range(0, len(document), 100):
            guard.feed(document[at : at + 100])
        return guard.problem

    assert stopped(b'["' + b"\\\\" * 600 + b'"]') is not None  # 1200 bytes, 600 characters
    assert stopped(b"[" + b"9" * 1200 + b"]") is not None
    assert stopped(b"[" + b" " * 5000 + b"1]") is None
    assert stopped(json.dumps(["x" * 50] * 200).encode()) is None
    problem = stopped(b'{"a": "' + b"x" * 5000 + b'"}')
    assert problem is not None and problem.reason == "a value runs on for more than 1000 bytes"
    assert 0 < problem.position <= 1100  # within a piece of the limit


def _pieces(*pieces: bytes, error: Exception | None = None) -> Iterator[bytes]:
    yield from pieces
    if error is not None:
        raise error


def test_the_reader_gives_the_bytes_before_the_problem_then_raises_it() -> None:
    document = b'{"messages": [1, ' + b"[" * 100
    reader = CheckedReader(_pieces(document[:10], document[10:]))
    assert reader.read(0) == b""  # how ijson sees that it reads bytes
    got = reader.read(4) + reader.read(100) + reader.read(100)
    assert got == document[: 17 + 62]  # `{`, `[` and 62 levels: the 65th is refused
    with pytest.raises(Unacceptable, match=r"deeper than 64 levels \(at byte 79\)"):
        reader.read(100)
    with pytest.raises(Unacceptable):
        reader.read(100)


def test_the_reader_drops_a_byte_order_mark_and_raises_the_pieces_error_last() -> None:
    reader = CheckedReader(_pieces(b"\xef", b"\xbb\xbf[1,", b"2]", error=OSError("bad CRC")))
    assert reader.read(100) + reader.read(100) == b"[1,2]"
    with pytest.raises(OSError, match="bad CRC"):
        reader.read(100)
    reader = CheckedReader(_pieces(b"\xef\xbb\xbf", b'{"a": [[[1]]]}'))
    assert list(ijson.items(reader, "a.item.item.item")) == [1]
