"""Prometheus helpers shared by the hot paths."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram

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
