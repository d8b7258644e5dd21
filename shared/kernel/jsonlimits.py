"""The JSON hookhub takes in: nested at most `MAX_DEPTH` deep, Unicode text only (no lone
UTF-16 surrogate); the chat product's own events also with integers that fit in 64 bits.

Every consumer can then decode and store what the API and the gateway acknowledged:
pydantic's JSON parser stops at 200 levels, orjson writes 255, MongoDB holds integers of
64 bits, and a JavaScript subscriber reads numbers past 2^53 wrong anyway. Real payloads
are far inside: GitHub's deepest example (tests/corpus/github) is 7 levels, Slack's Block
Kit and Jira's ADF a dozen or so. JSON's `\\ud800` escape, alone, names half a character:
the standard library's parser takes it, but no UTF-8 encoder (orjson, BSON, Kafka's
consumers) can write it again, so a body holding one is refused where it comes in.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

# `too_deep` keeps only what decides nesting: brackets and quotes.
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'{}[]"')
_BRACKETS_AS_BRACES = bytes.maketrans(b"[]", b"{}")
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"{}[]")


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON document `body` (already known to be valid JSON) nests arrays and
    objects more than `limit` deep.

    In C-speed steps, without decoding: a body with no more than `limit` brackets in all
    (most webhooks) is answered by two counts. Otherwise strings are cut out (escaped
    backslashes and quotes first, then every quoted run), which leaves the brackets of
    the structure, and each pass removes the innermost pairs: a body with pairs left
    after `limit` passes is deeper."""
    if body.count(b"{") + body.count(b"[") <= limit:
        return False
    if b"\\" in body:  # escapes first: what is left of `\n` must not meet a quote
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = body.translate(None, _NOT_STRUCTURE)
    nesting = b"".join(skeleton.split(b'"')[::2]).translate(_BRACKETS_AS_BRACES, _NOT_BRACKETS)
    for _ in range(limit):
        if not nesting:
            return False
        nesting = nesting.replace(b"{}", b"")
    return bool(nesting)


# Where a JSON text may escape a surrogate: only then can one decode to a lone one (a raw
# surrogate is not UTF-8, which every body is decoded as first).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(what: str) -> str:
    """What a user is told of a document holding a lone UTF-16 surrogate."""
    return (
        f"{what} holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff not in a pair): "
        "not Unicode text"
    )


def holds_lone_surrogate(body: bytes) -> bool:
    """Whether the JSON text `body` decodes to a string (or key) with a lone surrogate. Not
    JSON at all: False (the parser reading it says what is wrong). A body escaping no
    surrogate is answered by one regular-expression search; orjson refuses exactly the
    lone ones, and what else it refuses (integers past 64 bits, nesting past 1024) is
    decoded by the standard library and looked through."""
    if _SURROGATE_ESCAPE.search(body) is None:
        return False
    try:
        orjson.loads(body)
        return False
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return has_surrogate(value)


def has_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a surrogate in any string or key. Iterative, so
    no depth can exhaust the stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item) is not None:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def nested_too_deep(what: str) -> str:
    """What a user is told of a document nested past `MAX_DEPTH`: whether the nesting was
    measured, or was so deep that a parser gave up on it (a RecursionError) before."""
    return f"{what} is nested deeper than {MAX_DEPTH} levels"


def problem(value: Any, where: str, limit: int = MAX_DEPTH) -> str | None:
    """What makes the decoded JSON `value` one hookhub does not take, or None: nesting over
    `limit`, an integer outside 64 bits, or a lone surrogate (`where` names `value` in the
    message, and the path to the culprit follows it). Iterative, so no depth can exhaust
    the stack; paths are only made once something is found."""
    if _found(value, limit, None) is None:
        return None
    return _found(value, limit, where)


def _found(value: Any, limit: int, where: str | None) -> str | None:
    stack: list[tuple[Any, int, str | None]] = [(value, 0, where)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return f"{path}: nested deeper than {limit} levels"
            # Before any key goes into a path: a message holding one could not be written.
            if isinstance(item, dict) and any(_SURROGATE.search(key) for key in item):
                return f"{path}: a key holds a lone UTF-16 surrogate, not Unicode text"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            if path is None:
                stack.extend((child, depth + 1, None) for _, child in pairs)
            else:
                stack.extend((child, depth + 1, f"{path}.{key}") for key, child in pairs)
        elif type(item) is int and not INT_MIN <= item <= INT_MAX:
            return f"{path}: integer outside 64 bits (send it as a string)"
        elif isinstance(item, str) and _SURROGATE.search(item) is not None:
            return f"{path}: a lone UTF-16 surrogate, not Unicode text"
    return None
