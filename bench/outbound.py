"""What a bare relay loop sends to a chat network for one chat event (`bench.sync_baseline`,
Slack's request and each of `bench.networks`'s)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outbound:
    """What the loop sends for one chat event, as the network's API takes it: the URL, the
    headers and the body; and whether an answer's JSON says it was posted."""

    url: Callable[[dict[str, Any]], str]
    headers: dict[str, str]
    body: Callable[[dict[str, Any]], bytes]
    posted: Callable[[Any], bool]
    method: str = "POST"  # Matrix sends with PUT
