"""Which endpoints want an event: exact types, `*`, and prefix wildcards like `message.*`."""

from __future__ import annotations

from collections.abc import Iterable


def matches(patterns: Iterable[str], event_type: str) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def valid_pattern(pattern: str) -> bool:
    """`*`, a dotted type, or a dotted prefix ending in `.*` (no other wildcards)."""
    if pattern == "*":
        return True
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    parts = body.split(".")
    return all(part and all(c.isalnum() or c in "_-:" for c in part) for part in parts)
