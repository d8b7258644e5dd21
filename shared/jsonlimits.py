"""The JSON hookhub takes in: nested at most `MAX_DEPTH` deep; the chat product's own events
also with integers that fit in 64 bits.

Every consumer can then decode and store what the API and the gateway acknowledged:
pydantic's JSON parser stops at 200 levels, orjson writes 255, MongoDB holds integers of
64 bits, and a JavaScript subscriber reads numbers past 2^53 wrong anyway. Real payloads
are far inside: GitHub's deepest example (tests/corpus/github) is 7 levels, Slack's Block
Kit and Jira's ADF a dozen or so.
"""

from __future__ import annotations

from typing import Any

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


def nested_too_deep(what: str) -> str:
    """What a user is told of a document nested past `MAX_DEPTH`: whether the nesting was
    measured, or was so deep that a parser gave up on it (a RecursionError) before."""
    return f"{what} is nested deeper than {MAX_DEPTH} levels"


def problem(value: Any, where: str, limit: int = MAX_DEPTH) -> str | None:
    """What makes the decoded JSON `value` one hookhub does not take, or None: nesting over
    `limit`, or an integer outside 64 bits (`where` names `value` in the message, and the
    path to the culprit follows it). Iterative, so no depth can exhaust the stack; paths
    are only made once something is found."""
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
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            if path is None:
                stack.extend((child, depth + 1, None) for _, child in pairs)
            else:
                stack.extend((child, depth + 1, f"{path}.{key}") for key, child in pairs)
        elif type(item) is int and not INT_MIN <= item <= INT_MAX:
            return f"{path}: integer outside 64 bits (send it as a string)"
    return None
