"""Slack's published limits on the methods hookhub calls many times in a row (reading
history), and the pacer that keeps to them.

Slack limits each Web API method per app and workspace by tier
(docs.slack.dev/apis/web-api/rate-limits): Tier 2 "20+ per minute", Tier 3 "50+ per minute
... Sporadic bursts are welcome". `conversations.history` and `conversations.replies` are
Tier 3 for Marketplace and internal (customer-built) apps, and 1 a minute with 15 messages a
page for commercially distributed apps outside the Marketplace (new installs since
2025-05-29, existing ones from 2026-03-03). A 429 says how long to wait (`Retry-After`);
keeping to the tier beforehand is what keeps a client from being cut off.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

HISTORY = "conversations.history"
REPLIES = "conversations.replies"

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Tier:
    """Slack's limit for one method: requests a minute, and messages a page."""

    per_minute: float
    page_size: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.page_size < 1:
            raise ValueError("a tier needs requests per minute > 0 and a page size >= 1")


# conversations.history|replies for Marketplace and internal apps (Slack says "50+").
TIER_3 = Tier(50, 200)
# The same methods for commercially distributed apps outside the Marketplace.
LIMITED = Tier(1, 15)
# users.list ("20+"); its pages are not limited to 15.
TIER_2 = Tier(20, 200)
# The provider app's `history_tier` setting, by name.
HISTORY_TIERS = {"tier3": TIER_3, "limited": LIMITED}


def history_tier(name: str | None) -> Tier:
    """The tier a `history_tier` setting names; Tier 3 when it names none."""
    return HISTORY_TIERS.get(name or "", TIER_3)


class Pacer:
    """Requests of one method with one token: `burst` at once at most, then one every
    `interval` seconds (a leaky bucket: GCRA), and none before a 429's Retry-After has
    passed. With `burst` 1, requests are simply `interval` apart."""

    def __init__(self, interval: float, clock: Clock, sleep: Sleep, *, burst: int = 1) -> None:
        self._interval = interval
        self._slack = (max(burst, 1) - 1) * interval
        self._clock = clock
        self._sleep = sleep
        # When the bucket is empty again ("theoretical arrival time").
        self._empty_at = -math.inf
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            delay = self._empty_at - self._slack - self._clock()
            if delay > 1e-6:  # not a rounding error of the sums
                await self._sleep(delay)
            self._empty_at = max(self._empty_at, self._clock()) + self._interval

    def hold(self, seconds: float) -> None:
        """Nothing before `seconds` from now (a 429, an outage's backoff)."""
        self._empty_at = max(self._empty_at, self._clock() + seconds + self._slack)
