"""The JSON hookhub takes: nesting measured on the bytes as on the decoded value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.kernel.jsonlimits import MAX_DEPTH, problem, too_deep
from tests.support import github_corpus


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' * depth + inner + b"}" * depth


TRICKY = [
    # Brackets, escaped quotes and backslashes inside strings are not structure.
    b'{"a": "' + b"{[" * 100 + b'"}',
    b'{"a": "\\"' + b"{" * 100 + b'\\\\", "b": ' + _nested(3) + b"}",
    b'{"a": "line\\n", "b": "\\\\", "c": "\\"}}}}]]]]", "d": [[[[1]]]]}',
    b'{"a": "\\\\\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}',
    b'{"u": "\\u0022{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{"}',
    _nested(64),
    _nested(65),
    b"[" * 65 + b"]" * 65,
    _nested(
        40, b"[" + b"[]," * 30 + b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
    ),
]


@pytest.mark.parametrize("limit", [3, 5, 7, 8, MAX_DEPTH])
def test_the_bytes_and_the_decoded_value_agree_on_every_real_payload(limit: int) -> None:
    for path in github_corpus():
        body = path.read_bytes()
        assert too_deep(body, limit) == (_depth(json.loads(body)) > limit), path


@pytest.mark.parametrize("body", TRICKY)
def test_strings_never_count_as_nesting(body: bytes) -> None:
    depth = _depth(json.loads(body))
    assert too_deep(body) == (depth > MAX_DEPTH)
    assert too_deep(body, depth) is False and too_deep(body, depth - 1) is True


def test_a_decoded_value_names_where_it_goes_wrong() -> None:
    deep = json.loads(_nested(64))
    assert problem(deep, "data") is None
    assert problem({"x": deep}, "data") == ("data.x" + ".a" * 63 + ": nested deeper than 64 levels")
    assert problem({"ok": [2**63 - 1, -(2**63)]}, "data") is None
    assert problem({"l": [0, {"n": 2**63}]}, "data") == (
        "data.l.1.n: integer outside 64 bits (send it as a string)"
    )
    assert problem({"b": True, "f": 1e300}, "data") is None
