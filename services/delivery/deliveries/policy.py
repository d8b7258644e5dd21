"""When to try again: the retry schedule with jitter, Retry-After, and what ends a delivery."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

# A Retry-After longer than this is not honoured as is: the endpoint's own schedule must
# still end in bounded time.
MAX_RETRY_AFTER = timedelta(hours=1)
JITTER = 0.2  # ±20 %: endpoints recovering from an outage are not hit by a synchronised wave


class Verdict(StrEnum):
    COMPLETED = "completed"  # 2xx
    RETRY = "retry"  # try again at `next_attempt_at`
    FAILED = "failed"  # schedule exhausted (or a manual retry failed): dead-lettered
    GONE = "gone"  # 410: the endpoint asked to be disabled
    CANCELLED = "cancelled"  # its transformation cancelled it: ended, unsent


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None


def decide(
    *,
    status_code: int | None,
    attempt: int,
    schedule: list[int],
    now: datetime,
    retry_after: str | None = None,
    manual: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """After attempt number `attempt` (1-based) ended with `status_code` (None: no answer).

    The schedule lists the waits before attempts 2, 3, ...: `[5, 10, 20]` means four
    attempts in all. A manual retry is one attempt, never a new schedule.
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision(Verdict.COMPLETED)
    if status_code == 410:
        return Decision(Verdict.GONE)
    if manual or attempt > len(schedule):
        return Decision(Verdict.FAILED)
    wait = schedule[attempt - 1] * (1 + (rng or random).uniform(-JITTER, JITTER))
    delay = timedelta(seconds=max(wait, 0.0))
    honoured = parse_retry_after(retry_after, now)
    if honoured is not None:
        delay = max(delay, min(honoured, MAX_RETRY_AFTER))
    return Decision(Verdict.RETRY, now + delay)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(moment - now, timedelta(0))
