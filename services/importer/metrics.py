"""The importer's Prometheus metrics (names in docs/operations.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.kernel.metrics import CountedGauge

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


def jobs_gauge() -> CountedGauge:
    """`hookhub_import_jobs{status}`: every job in MongoDB by status (all replicas)."""
    return CountedGauge(
        "hookhub_import_jobs",
        "Import jobs by status (all replicas)",
        ["status"],
        known=[(status,) for status in STATUSES],
    )
