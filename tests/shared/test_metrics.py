"""`EventLoopLag`: the worst lateness of the loop's timer over its window, as a gauge."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry

from shared.kernel.metrics import EventLoopLag

NAME = "hookhub_event_loop_lag_seconds"


def test_the_gauge_is_the_worst_of_the_window_and_forgets_older_ones() -> None:
    registry = CollectorRegistry()
    lag = EventLoopLag(registry, every=1.0, window=3.0)  # the last three timers
    for late in (0.002, 0.4, 0.01):
        lag.observe(late)
    assert registry.get_sample_value(NAME) == 0.4
    lag.observe(0.003)
    assert registry.get_sample_value(NAME) == 0.4  # still one of the last three
    lag.observe(0.003)  # now four timers old
    assert registry.get_sample_value(NAME) == 0.01
    for _ in range(3):
        lag.observe(-0.001)  # a timer that fired early was not late: 0, not negative
    assert registry.get_sample_value(NAME) == 0.0


async def test_a_blocked_loop_shows_as_lag() -> None:
    registry = CollectorRegistry()
    lag = EventLoopLag(registry, every=0.05, window=5.0)
    task = asyncio.create_task(lag.run())
    try:
        await asyncio.sleep(0.12)
        quiet = registry.get_sample_value(NAME)
        assert quiet is not None and quiet < 0.1
        time.sleep(0.3)  # the blocking call is what is measured
        await asyncio.sleep(0.12)
        blocked = registry.get_sample_value(NAME)
        assert blocked is not None and blocked >= 0.25
    finally:
        task.cancel()
