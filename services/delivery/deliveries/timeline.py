"""Attempts per minute by outcome (`GET /api/webhooks/stats/timeline`), counted as each
attempt ends rather than read back from the attempt log.

A count is a dict addition in the delivery process; every `FLUSH_SECONDS` the counts go to
`delivery_minutes` in one bulk write of `$inc` upserts, a document per endpoint and minute
(`_id` `<YYYYMMDDHHMM>:<endpoint>`). So the timeline reads at most a document per endpoint
and minute, never the attempts (a busy hour is hundreds of thousands of them), and an
attempt costs its log no index for it: the log is found by its delivery alone. The
documents are kept `KEEP` (the timeline looks a day back at most), then removed by the
retention job. A process killed without its stop loses the counts of its last seconds;
the attempts themselves are made again (their outcomes were not written either).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.domain import tenancy
from shared.domain.retention import ExpiredDocuments, retain
from shared.kernel.mongo import BatchedWriter, Database, Document, Index

if TYPE_CHECKING:
    from shared.kernel.runtime import Runtime

COLLECTION = "delivery_minutes"
FLUSH_SECONDS = 2.0
KEEP = timedelta(days=2)
OUTCOMES = ("success", "http_error", "network_error")

INDEXES = [
    Index(COLLECTION, [("minute", 1)]),  # the whole timeline, and the retention job's
    Index(COLLECTION, [("endpoint_id", 1), ("minute", 1)]),  # one endpoint's
]


def outcome_of(status_code: int | None) -> str:
    """`success` (a 2xx), `http_error` (any other status), `network_error` (no answer)."""
    if status_code is None:
        return "network_error"
    return "success" if 200 <= status_code < 300 else "http_error"


class AttemptMinutes:
    """Attempts counted per endpoint, minute and outcome, on their way to MongoDB."""

    def __init__(self, db: Database, *, interval: float = FLUSH_SECONDS) -> None:
        self._collection = db[COLLECTION]
        self._writer = BatchedWriter(db, interval=interval)
        self._minute: datetime | None = None
        self._prefix = ""

    def register(self, runtime: Runtime) -> None:
        """Started with the service, its last counts written at the stop (register it after
        the dispatcher's stop, whose last attempts it counts), and swept by retention."""

        async def start(_: Runtime) -> None:
            self._writer.start()

        runtime.on_startup(start)
        runtime.on_shutdown("delivery_minutes", self._writer.stop, minimum=0.02, cap=0.1)
        retain(runtime, ExpiredDocuments(self._collection, "minute", KEEP))

    async def flush(self) -> None:
        await self._writer.flush()

    def count(
        self, workspace_id: str, endpoint_id: str, at: datetime, status_code: int | None
    ) -> None:
        """An attempt started at `at` that ended with `status_code` (None: no answer)."""
        minute = at.replace(second=0, microsecond=0)
        if minute != self._minute:  # its name made once a minute, not once an attempt
            self._minute, self._prefix = minute, f"{minute:%Y%m%d%H%M}:"
        self._writer.bump(
            COLLECTION,
            self._prefix + endpoint_id,
            outcome_of(status_code),
            create={"workspace_id": workspace_id, "endpoint_id": endpoint_id, "minute": minute},
        )

    async def since(
        self, start: datetime, endpoint_id: str | None
    ) -> list[tuple[datetime, dict[str, int]]]:
        """(minute, {outcome: attempts}) of the minutes from `start`, in the caller's
        workspaces (one endpoint's when given)."""
        query: Document = tenancy.narrow({"minute": {"$gte": start}})
        if endpoint_id:
            query["endpoint_id"] = endpoint_id
        projection = {"minute": 1, **dict.fromkeys(OUTCOMES, 1)}
        docs = await self._collection.find(query, projection).to_list()
        return [
            (doc["minute"], {name: int(doc.get(name) or 0) for name in OUTCOMES}) for doc in docs
        ]
