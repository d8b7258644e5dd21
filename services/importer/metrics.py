"""The importer's Prometheus metrics (names in docs/operations.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STATUSES = ("queued", "running", "completed", "failed", "cancelled")


class ImportMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "hookhub_import_messages",
            "Imported messages by provider and outcome (imported, skipped, quarantined)",
            ["provider", "outcome"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "hookhub_import_provider_rate_limited",
            "429 answers from providers to an import (each waited out, then asked again)",
            ["provider"],
            registry=registry,
        )
        self.pages = Counter(
            "hookhub_import_pages",
            "Pages read: API pages (Slack, Discord) and export day files",
            ["provider", "source"],
            registry=registry,
        )
        self.jobs_finished = Counter(
            "hookhub_import_jobs_finished",
            "Jobs this replica ended, by status (completed, failed, cancelled)",
            ["status"],
            registry=registry,
        )


class JobsCollector(Collector):
    """`hookhub_import_jobs{status}`: every job in MongoDB by status, as last counted (a
    background task counts every few seconds; a scrape never waits on MongoDB)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def refresh(self, count: Callable[[], Awaitable[dict[str, int]]]) -> None:
        self.counts = await count()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hookhub_import_jobs", "Import jobs by status (all replicas)", labels=["status"]
        )
        for status in STATUSES:
            family.add_metric([status], float(self.counts.get(status, 0)))
        yield family
