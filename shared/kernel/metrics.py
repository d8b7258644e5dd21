"""Prometheus helpers shared by the hot paths."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

M = TypeVar("M", Counter, Histogram)

# Seconds; from a millisecond (a cached lookup) to the slowest a request may take.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Labelled(Generic[M]):
    """A metric's labelled children, looked up once each: `labels()` takes a lock and
    validates its arguments on every call, which a per-request path should not pay."""

    def __init__(self, metric: M) -> None:
        self._metric: Any = metric
        self._children: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._children.get(labels)
        if child is None:
            child = self._metric.labels(*labels)
            self._children[labels] = child
        return child


class CountedGauge(Collector):
    """A gauge of documents counted in MongoDB, as last counted: `keep_counted` counts
    every few seconds in the background, so a scrape never waits on MongoDB. Each replica
    reports the same figures (take `max` across replicas, not `sum`)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        known: Iterable[tuple[str, ...]] = (),
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.known = list(known)  # reported as 0 when none are counted
        self.counts: dict[tuple[str, ...], int] = {}

    async def keep_counted(
        self, count: Callable[[], Awaitable[dict[tuple[str, ...], int]]], every: float
    ) -> None:
        while True:
            with contextlib.suppress(Exception):  # MongoDB away: the last counts stay
                self.counts = await count()
            await asyncio.sleep(every)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for key in dict.fromkeys([*self.known, *self.counts]):
            family.add_metric(list(key), float(self.counts.get(key, 0)))
        yield family


async def count_by(
    collection: Any, fields: Sequence[str], match: dict[str, Any] | None = None
) -> dict[tuple[str, ...], int]:
    """Documents of a collection grouped by `fields` (missing values count as "")."""
    pipeline: list[dict[str, Any]] = [{"$match": match}] if match else []
    pipeline.append(
        {"$group": {"_id": {f: f"${f}" for f in fields}, "n": {"$sum": 1}}},
    )
    cursor = await collection.aggregate(pipeline)
    return {
        tuple(str(row["_id"].get(f) or "") for f in fields): int(row["n"]) async for row in cursor
    }


class EventLoopLag:
    """`hookhub_event_loop_lag_seconds`: how late a timer of the process's event loop fired,
    the worst of the last `window` seconds. A timer is set every `every` seconds; it fires
    late by as long as something held the loop (a blocking call, a long callback), which
    is how long every request, message and heartbeat of the process waited then."""

    def __init__(
        self, registry: CollectorRegistry, every: float = 0.5, window: float = 10.0
    ) -> None:
        self.every = every
        self._recent: deque[float] = deque(maxlen=max(1, round(window / every)))
        self.gauge = Gauge(
            "hookhub_event_loop_lag_seconds",
            f"How late the event loop ran a timer, the worst of the last {window:g} s",
            registry=registry,
        )

    def observe(self, late: float) -> None:
        self._recent.append(max(late, 0.0))
        self.gauge.set(max(self._recent))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.every
            await asyncio.sleep(self.every)
            self.observe(loop.time() - due)
