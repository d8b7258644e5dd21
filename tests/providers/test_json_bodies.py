"""JSON bodies: `check_json_object` accepts and refuses exactly what `decode_json_object` does."""

from __future__ import annotations

import json

import pytest

from shared.providers.base import MalformedWebhook
from shared.providers.ids import JsonBody, check_json_object, decode_json_object
from tests.support import github_corpus

BODIES = [
    b'{"a": 1}',
    b' {"a": {"b": "x"}} \n',
    b'{"a": {"b": true}, "installation": {"id": 42}}',
    b'{"a": {"b": [1, 2]}, "repository": {"owner": {"login": ""}}}',
    b'{"a": null, "a": 2}',  # a repeated name: the last one wins, as in Python
    b'{"a": 18446744073709551615}',  # the largest unsigned 64-bit integer
    b'{"a": -9223372036854775808}',
    b'{"a": 123456789012345678901234567890}',  # beyond 64 bits: simdjson refuses, json not
    b'{"a": -9223372036854775809}',
    b'{"a": 1e400}',  # overflows a double: the standard library makes it inf
    b'{"a": "\\ud800"}',  # a lone surrogate escape
    b'{"a": "\\ud83d\\ude00"}',  # a proper pair
    b'{"a": "caf\xc3\xa9"}',
    b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 BOM: simdjson skips it, JSON forbids it
    b'{"a": "\xff"}',  # invalid UTF-8
    b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": 1} x',
    b'{"a": 1}\x00',
    b'{"a": "x\x01"}',
    b"[1, 2]",
    b'"a"',
    b"1",
    b"null",
    b"",
    b"{",
    b"[" * 1023 + b"{}" + b"]" * 1023,
    b"[" * 1024 + b"{}" + b"]" * 1024,
    b'{"a":' * 1023 + b"1" + b"}" * 1023,
    b'{"a":' * 1024 + b"1" + b"}" * 1024,
]


def _accepted(body: bytes) -> bool:
    try:
        decode_json_object(body)
    except MalformedWebhook:
        return False
    return True


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_checking_agrees_with_decoding(body: bytes) -> None:
    if _accepted(body):
        checked = check_json_object(body)
        assert checked == JsonBody(body)
        if body.count(b"{") + body.count(b"[") < 100:  # == on deeper ones hits the recursion limit
            assert checked.decode() == decode_json_object(body)
    else:
        with pytest.raises(MalformedWebhook):
            check_json_object(body)


def test_the_cases_cover_both_outcomes_and_the_fallback() -> None:
    outcomes = [_accepted(body) for body in BODIES]
    assert outcomes.count(True) >= 10 and outcomes.count(False) >= 10
    # Bodies simdjson refuses that the standard library accepts: the fallback decides them.
    assert _accepted(b'{"a": 123456789012345678901234567890}')
    # A lone surrogate escape the standard library takes is refused: no consumer could
    # write the envelope again. A pair is one character.
    assert not _accepted(b'{"a": "\\ud800"}')
    assert _accepted(b'{"a": "\\ud83d\\ude00"}')
    assert not _accepted(b'\xef\xbb\xbf{"a": 1}')  # simdjson alone would take it


def test_every_real_github_payload_is_checked_as_it_decodes() -> None:
    for path in github_corpus():
        body = path.read_bytes()
        assert check_json_object(body).decode() == json.loads(body), path


@pytest.mark.parametrize("depth", [65, 500, 1_500, 100_000])
@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_a_body_nested_too_deep_is_told_so_however_deep(depth: int, opening: bytes) -> None:
    """100,000 levels once read "not valid UTF-8 JSON" (the parser's RecursionError), where
    500 read "nested deeper than 64 levels": both are the same fault, named as such."""
    closing = b"]" if opening == b"[" else b"}"
    body = b'{"x": ' + opening * depth + b"1" + closing * depth + b"}"
    with pytest.raises(MalformedWebhook, match=r"^body is nested deeper than 64 levels$"):
        check_json_object(body)
