"""Which endpoints want an event: exact types, `*`, and prefix wildcards like `message.*`.

Operational events (SPEC §17, `operational.*`) go only to endpoints that name them, by their
type or a prefix (`operational.*`, `operational.delivery.*`): `*` alone, which most
endpoints have, does not take them in. And one about an endpoint never goes to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.domain.operational import is_operational


def matches(patterns: Iterable[str], event_type: str) -> bool:
    operational = is_operational(event_type)
    for pattern in patterns:
        if pattern == event_type or (pattern == "*" and not operational):
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def about_itself(endpoint_id: str, event_type: str, data: Mapping[str, Any] | Any) -> bool:
    """Whether the event is an operational one about this endpoint: its own troubles, which
    it would be asked to take while it has them (and which would feed themselves)."""
    return (
        is_operational(event_type)
        and isinstance(data, Mapping)
        and data.get("endpoint_id") == endpoint_id
    )


def valid_pattern(pattern: str) -> bool:
    """`*`, a dotted type, or a dotted prefix ending in `.*` (no other wildcards)."""
    if pattern == "*":
        return True
    body = pattern[:-2] if pattern.endswith(".*") else pattern
    parts = body.split(".")
    return all(part and all(c.isalnum() or c in "_-:" for c in part) for part in parts)
