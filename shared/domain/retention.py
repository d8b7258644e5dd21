"""Keeping data for a bounded time (SPEC §14): removal in bounded batches, one replica at a
time, visible in metrics and `/readyz`.

A `Sweep` says what of one kind is due for removal and removes one batch of it; the
`Retention` runner of a service runs its sweeps every `HOOKHUB_RETENTION_INTERVAL_SECONDS`
in a background task (never on a request or a consumer's path). Each sweep runs under a
lease (`retention_leases`, one document per sweep, taken with a conditional update), so
that of several replicas of a service one removes at a time; when it dies, another takes
the lease over once it has run out. Between batches the runner sleeps as long as the batch
took, so removal never has more than half of the database's time; a pass stops after half
an interval, and while more is due the next one follows a second later: a backlog of
millions is worked through at that pace while the services go on writing.

Why batches and not TTL indexes: on the embedded MongoDB server a TTL index is a pass
over every document of its collection every 60 s, which stalls every other operation for
as long (256 ms for 10,000 documents); a batch reads the due documents off an index and
costs what it removes. Real MongoDB's TTL monitor removes one document at a time and falls
behind at a few thousand a second. TTL indexes stay where a collection is small by
construction (OAuth states, action idempotency records, the audit log's entries are
written by people, not by traffic): docs/operations.md lists which is which.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo import DeleteMany, DeleteOne, ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.kernel import idempotency
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import UNAVAILABLE_ERRORS, Collection, Database, Document
from shared.kernel.runtime import Runtime

log = structlog.get_logger(__name__)

LEASES = "retention_leases"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Sweep(Protocol):
    """One kind of data and its retention rule."""

    @property
    def name(self) -> str:
        """The collection (or GridFS bucket) it removes from: the metrics' label."""
        ...

    # Everything older than this (by the sweep's clock) has been removed; None: not known
    # yet (a process's first pass looks for the oldest).
    floor: datetime | None

    async def remove(self, now: datetime, limit: int) -> dict[str, int]:
        """Remove at most `limit` due documents; how many were removed from each collection
        (from `name`'s: fewer than `limit` when nothing more is due; others: what went with
        them, as a delivery's attempts)."""
        ...

    async def cutoff(self, now: datetime) -> datetime:
        """What is older than this (by the sweep's clock) is due."""
        ...


class ExpiredDocuments:
    """Documents whose `field` (a date, indexed) is older than `keep` before now: what a TTL
    index on `field` with `expireAfterSeconds=keep` would remove. A document whose field is
    missing or null is never due; `where` narrows what is due further.

    The due documents are read a time window at a time, from `floor` (below it, everything
    is removed) upwards, each window's query bounded on both sides and limited to what is
    left of the batch. A window that came back short is done: the floor moves past it and
    the next one is twice as long; a full one is halved. So a batch reads what it removes
    and not the whole backlog below the cutoff (which the embedded server would scan on
    every query: 25 µs a document), and on any server each query is one bounded index
    range. The floor is found by a look for the oldest due document, made by a process's
    first pass and then once a day: nothing new appears below it meanwhile (the clocks are
    when something ended or expires, written as it happens), and a straggler (a replica's
    clock behind, documents written by hand) waits a day at most. On the embedded server
    that look reads the whole due range: nearly nothing once caught up.
    """

    MIN_STEP = timedelta(milliseconds=1)
    # Empty windows double: from a floor years below the first due document (nothing was
    # due when it was set) the walk gets there in a few dozen queries.
    MAX_STEP = timedelta(days=365 * 100)
    RESCAN = timedelta(days=1)

    def __init__(
        self,
        collection: Collection,
        field: str,
        keep: timedelta = timedelta(0),
        *,
        where: Document | None = None,
        projection: Document | None = None,
    ) -> None:
        self.name = collection.name
        self.collection = collection
        self.field = field
        self.keep = keep
        self.floor: datetime | None = None
        self._where = where or {}
        self._projection = projection or {"_id": 1}
        self._step = timedelta(minutes=1)
        self._scanned_at: datetime | None = None

    async def cutoff(self, now: datetime) -> datetime:
        return now - self.keep

    async def remove(self, now: datetime, limit: int) -> dict[str, int]:
        cutoff = await self.cutoff(now)
        docs = await self.due(now, cutoff, limit)
        return await self.dispose(docs, cutoff) if docs else {self.name: 0}

    async def dispose(self, docs: list[Document], cutoff: datetime) -> dict[str, int]:
        """Remove what `due` found; each on the same condition again, so that a document
        changed since it was read (a delivery reopened) stays."""
        due = {self.field: {"$gte": EPOCH, "$lt": cutoff}, **self._where}
        result = await self.collection.bulk_write(
            [DeleteOne({"_id": doc["_id"], **due}) for doc in docs], ordered=False
        )
        return {self.name: result.deleted_count}

    async def due(self, now: datetime, cutoff: datetime, limit: int) -> list[Document]:
        """Up to `limit` due documents, oldest windows first."""
        stale = self._scanned_at is not None and now - self._scanned_at > self.RESCAN
        if self.floor is None or stale:
            self.floor = await self._oldest(cutoff) or cutoff
            self._scanned_at = now
        found: list[Document] = []
        while len(found) < limit and self.floor < cutoff:
            high = min(self.floor + self._step, cutoff)
            want = limit - len(found)
            window = {self.field: {"$gte": self.floor, "$lt": high}, **self._where}
            got = await self.collection.find(window, self._projection).limit(want).to_list()
            found += got
            if len(got) == want:  # maybe more in this window: the next batch reads it again
                self._step = max(self._step / 2, self.MIN_STEP)
                break
            self.floor = high
            self._step = min(self._step * 2, self.MAX_STEP)
        return found

    async def _oldest(self, cutoff: datetime) -> datetime | None:
        first = await self.collection.find_one(
            {self.field: {"$gte": EPOCH, "$lt": cutoff}, **self._where},
            {self.field: 1},
            sort=[(self.field, 1)],
        )
        return None if first is None else first[self.field]


async def remove_files(db: Database, bucket: str, file_ids: list[object]) -> dict[str, int]:
    """GridFS files removed with their chunks, a batch at a time (GridFS's own delete takes
    one file a call)."""
    if not file_ids:
        return {bucket: 0}
    files = await db[f"{bucket}.files"].bulk_write(
        [DeleteOne({"_id": file_id}) for file_id in file_ids], ordered=False
    )
    chunks = await db[f"{bucket}.chunks"].bulk_write(
        [DeleteMany({"files_id": file_id}) for file_id in file_ids], ordered=False
    )
    return {bucket: files.deleted_count, f"{bucket}.chunks": chunks.deleted_count}


class Lease:
    """Who runs a sweep: one document per sweep in `retention_leases`."""

    def __init__(self, collection: Collection, owner: str, ttl: timedelta) -> None:
        self._collection = collection
        self.owner = owner
        self.ttl = ttl

    async def take(self, name: str, now: datetime | None = None) -> Document | None:
        """The lease's document, taken (or kept) by this owner; None while another holds
        it unexpired."""
        now = now or utcnow()
        try:
            doc: Document | None = await self._collection.find_one_and_update(
                {"_id": name, "$or": [{"owner": self.owner}, {"until": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "until": now + self.ttl, "taken_at": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # it exists and another holds it: the upsert's insert
            return None
        return doc

    async def release(self, name: str) -> None:
        await self._collection.update_one(
            {"_id": name, "owner": self.owner}, {"$set": {"until": EPOCH}}
        )


@dataclass
class SweepStatus:
    removed_last_pass: int = 0
    kept_since: datetime | None = None
    overdue_seconds: float = 0.0
    state: str = "not run yet"
    at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "removed_last_pass": self.removed_last_pass,
            "kept_since": self.kept_since.isoformat() if self.kept_since else None,
            "overdue_seconds": round(self.overdue_seconds, 1),
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass
class Retention:
    """Runs a service's sweeps: every `interval` seconds, each under its lease, in batches
    of `batch` documents, for at most half an interval per pass."""

    db: Database
    sweeps: list[Sweep]
    owner: str
    registry: CollectorRegistry
    interval: float = 60.0
    batch: int = 1000
    status: dict[str, SweepStatus] = field(init=False)

    def __post_init__(self) -> None:
        ttl = timedelta(seconds=max(3 * self.interval, 30))
        self.lease = Lease(self.db[LEASES], self.owner, ttl)
        self.status = {sweep.name: SweepStatus() for sweep in self.sweeps}
        self._more = False  # the last pass stopped with more due
        self.removed = Counter(
            "hookhub_retention_removed",
            "Documents removed by retention (SPEC §14), per collection",
            ["collection"],
            registry=self.registry,
        )
        self.oldest_age = Gauge(
            "hookhub_retention_oldest_kept_seconds",
            "How far back documents are kept, by the clock retention counts from: "
            "everything older has been removed",
            ["collection"],
            registry=self.registry,
        )
        self.overdue = Gauge(
            "hookhub_retention_overdue_seconds",
            "How long the oldest document due for removal has been due (0: caught up)",
            ["collection"],
            registry=self.registry,
        )

    def add(self, *sweeps: Sweep) -> None:
        for sweep in sweeps:
            self.sweeps.append(sweep)
            self.status[sweep.name] = SweepStatus()

    async def run(self) -> None:
        while True:
            await self.pass_once()
            # With more due than a pass removed, the next pass starts after a pause as long
            # as a batch may take, not an interval: a backlog goes at half the database's
            # time, and the other sweeps get their turn in between.
            await asyncio.sleep(min(1.0, self.interval) if self._more else self.interval)

    async def pass_once(self) -> dict[str, int]:
        """One pass of every sweep this replica holds the lease of; removed per sweep."""
        removed: dict[str, int] = {}
        self._more = False
        for sweep in self.sweeps:
            try:
                removed[sweep.name] = await self._sweep(sweep)
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE_ERRORS as exc:
                self._state(sweep.name, f"database unavailable: {type(exc).__name__}")
            except Exception as exc:
                log.exception("retention_failed", collection=sweep.name)
                self._state(sweep.name, f"failed: {type(exc).__name__}")
        return removed

    def _state(self, name: str, state: str) -> None:
        self.status[name].state = state
        self.status[name].at = utcnow()

    async def _sweep(self, sweep: Sweep) -> int:
        status = self.status[sweep.name]
        if await self.lease.take(sweep.name) is None:
            status.removed_last_pass = 0
            self._state(sweep.name, "run by another replica")
            return 0
        deadline = time.monotonic() + self.interval / 2
        total = 0
        while True:
            started = time.monotonic()
            removed = await sweep.remove(utcnow(), self.batch)
            for collection, n in removed.items():
                self.removed.labels(collection).inc(n)
            count = removed.get(sweep.name, 0)
            total += count
            if count < self.batch:
                break
            if time.monotonic() >= deadline:
                self._more = True
                break
            # Half of the database's time at most: as long again as the batch took.
            await asyncio.sleep(time.monotonic() - started)
            if await self.lease.take(sweep.name) is None:
                break
        now = utcnow()
        cutoff = await sweep.cutoff(now)
        floor = sweep.floor or cutoff
        overdue = max((cutoff - floor).total_seconds(), 0.0)
        status.removed_last_pass = total
        status.kept_since = floor
        status.overdue_seconds = overdue
        self.oldest_age.labels(sweep.name).set(max((now - floor).total_seconds(), 0.0))
        self.overdue.labels(sweep.name).set(overdue)
        # Behind: what was due a couple of passes ago is still there.
        behind = overdue > 2 * self.interval
        self._state(sweep.name, f"behind: {_age(overdue)} overdue" if behind else "ok")
        if total:
            log.info("retention_removed", collection=sweep.name, count=total, overdue_s=overdue)
        return total

    def readiness(self) -> dict[str, object]:
        """For `/readyz`: every sweep's last pass; `behind` when removal cannot keep up."""
        return {name: status.to_json() for name, status in self.status.items()}

    async def release(self) -> None:
        """On shutdown: the leases go to another replica now, not once they run out."""
        for sweep in self.sweeps:
            with contextlib.suppress(Exception):
                await self.lease.release(sweep.name)


def install(runtime: Runtime) -> Retention:
    """The process's runner (shared.domain.platform plugs it into every service): started once the
    indexes are made (its queries read them), its last pass in /readyz (`retention`: `state`
    says `behind` when removal cannot keep up), its leases handed back at the stop. Every
    service with consumers keeps the processed-envelope ledger, so that is one sweep."""
    retention = Retention(
        runtime.db,
        [ExpiredDocuments(runtime.db[idempotency.COLLECTION], "expires_at")],
        owner=new_id("ret"),
        registry=runtime.registry,
        interval=runtime.settings.retention_interval_seconds,
        batch=runtime.settings.retention_batch_size,
    )
    runtime.provide(retention)
    runtime.once_indexed("retention", retention.run)
    runtime.report("retention", retention.readiness)
    runtime.on_shutdown("retention_leases", lambda _: retention.release(), minimum=0.0, cap=0.05)
    return retention


def retain(runtime: Runtime, *sweeps: Sweep) -> None:
    """Run these sweeps too, in the process's runner (before `start`)."""
    runtime.part(Retention).add(*sweeps)


def _age(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    return f"{seconds:.0f} s"
