"""The bounded stop: every step of a service's shutdown has a deadline inside one budget.

A stop begins when the process is asked to stop (SIGTERM, SIGINT, a test fixture) and must
be over within `HOOKHUB_SHUTDOWN_SECONDS`, whatever the state of Kafka, MongoDB and the
endpoints being called. Each step gets a share of what is left, keeping a reserve for the
steps after it; a step that overruns is logged with its name and abandoned (cancelled and
not waited for), and the stop goes on. What an abandoned step held is left for a retry:
uncommitted offsets are redelivered, unreleased leases expire.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

log = structlog.get_logger("hookhub.shutdown")

# The part of its seconds a step gives its own work (attempts let end, writes, owners
# cleared): the rest is for ending that work cleanly and going on with the stop.
WORK_SHARE = 0.8

# A step, given the seconds it may take: work that can end itself cleanly inside them (a
# drain that cancels what is left) uses them; the budget abandons it past them anyway.
StopHook = Callable[[float], Awaitable[object]]


@dataclass(frozen=True)
class StopStep:
    """One named step; `minimum` and `cap` are fractions of the whole budget. The steps
    after it are always left their minimums."""

    name: str
    work: StopHook
    minimum: float = 0.1
    cap: float = 1.0


class StopBudget:
    """The time a stop may take, shared out among its steps in order."""

    def __init__(self, seconds: float, started: float | None = None) -> None:
        self.seconds = seconds
        self.started = started if started is not None else time.monotonic()
        self.deadline = self.started + seconds
        self.overran: list[str] = []

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    async def run(self, steps: Sequence[StopStep]) -> None:
        """Every step in order, each within what is left less the later steps' minimums."""
        for index, step in enumerate(steps):
            reserve = sum(later.minimum for later in steps[index + 1 :]) * self.seconds
            seconds = max(0.0, min(self.seconds * step.cap, self.remaining() - reserve))
            await self.step(step.name, functools.partial(step.work, seconds), seconds)
        log.info(
            "service_stop_took",
            took_ms=round((time.monotonic() - self.started) * 1000, 1),
            overran=self.overran,
        )

    async def step(self, name: str, work: Callable[[], Awaitable[object]], seconds: float) -> bool:
        """Run one step for at most `seconds`; True when it finished in time (even with an
        error, which is logged), False when it was abandoned."""
        started = time.monotonic()
        task = asyncio.ensure_future(work())
        done, _ = await asyncio.wait({task}, timeout=seconds)
        took_ms = round((time.monotonic() - started) * 1000, 1)
        if not done:
            task.cancel()  # abandoned: not waited for, so a step that ignores it cannot hold us
            task.add_done_callback(_quietly)
            self.overran.append(name)
            log.warning("shutdown_step_overran", step=name, limit_s=round(seconds, 2))
            return False
        error = task.exception()
        if error is not None:
            log.warning("shutdown_step_failed", step=name, error=repr(error), took_ms=took_ms)
        else:
            log.info("shutdown_step_done", step=name, took_ms=took_ms)
        return True


def _quietly(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception never retrieved"
