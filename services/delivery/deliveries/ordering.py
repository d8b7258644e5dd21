"""Which process sends each FIFO key (deliveries/fifo.py): keys taken for fan-out, loaded
from their queue in MongoDB, swept for those waiting, let go when idle and at the stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from services.delivery.deliveries.dispatcher import Dispatcher
from services.delivery.deliveries.fifo import Run, Runs, key_id
from services.delivery.deliveries.job import Job
from services.delivery.deliveries.repository import KeyRepository
from shared.kernel.ids import utcnow
from shared.kernel.mongo import BatchedWriter, Document

log = structlog.get_logger(__name__)

LOAD = 50  # a key's queued deliveries read at a time
KEY_IDLE_SECONDS = 30.0  # a key nothing came for is let go after this long


class Ordering:
    """The keys this process holds (`delivery_keys`): taken for fan-out, loaded from their
    queue, swept for those waiting, let go when idle and at the stop."""

    def __init__(
        self,
        keys: KeyRepository,
        dispatcher: Dispatcher,
        writer: BatchedWriter,
        owner: Callable[[], str],
        insert: Callable[[list[Document]], Awaitable[list[Document]]],
        count_made: Callable[[Document], None],
        wanted: Callable[[], bool] = lambda: True,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.wanted = wanted  # whether any endpoint is FIFO: else nothing to sweep
        self._keys = keys
        self._dispatcher = dispatcher
        self._writer = writer
        self._owner = owner
        self._insert = insert
        self._count_made = count_made
        self.runs: Runs = dispatcher.runs
        self.runs.on_queued = self._queued
        self.held: set[str] = set()  # key ids this process holds
        self._lock = asyncio.Lock()  # key documents written one change at a time
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.queued = Counter(
            "hookhub_delivery_fifo_queued",
            "FIFO deliveries written to their key's queue in MongoDB, by why: no room at "
            "fan-out (room), their key's earlier ones queued (behind), their key held by "
            "another process (elsewhere)",
            ["reason"],
            registry=registry,
        )
        self.loaded = Counter(
            "hookhub_delivery_fifo_loaded",
            "FIFO deliveries read back from their key's queue in MongoDB",
            registry=registry,
        )
        self.loads = Counter(
            "hookhub_delivery_fifo_loads",
            "Reads of a FIFO key's queue in MongoDB",
            registry=registry,
        )

    async def hand_over(self, docs: list[Document], owed: list[asyncio.Future[None]]) -> int:
        """A fan-out piece's FIFO deliveries (not written yet), in their order: to the runs
        of the keys this process holds (taken now if nobody does), unrecorded, while their
        key has nothing queued and there is room; else written to their key's queue. The
        records of those handed to the runs are added to `owed`; returns how many were
        written."""
        wanted = {key_id(doc["endpoint_id"], doc["ordering_key"]) for doc in docs}
        await self._take(sorted(wanted - self.held))
        queued: list[Document] = []
        with self._dispatcher.room_for(len(docs)) as room:
            taken = 0
            for doc in docs:
                run_id = key_id(doc["endpoint_id"], doc["ordering_key"])
                run = self.runs.by_id.get(run_id) if run_id in self.held else None
                if run is not None and not run.queued and run.due is None and taken < room:
                    taken += 1
                    owed.append(self._dispatcher.owe(doc))
                    continue
                if run is None:
                    self.queued.labels("elsewhere").inc()
                elif run.queued or run.due is not None:
                    self.queued.labels("behind").inc()
                else:
                    self.queued.labels("room").inc()
                if run is not None:
                    run.queued = True  # the rest of the key follows it in MongoDB
                    run.writing += 1
                queued.append(doc)
        if not queued:
            return 0
        try:
            made = await self._insert(queued)
        finally:
            for doc in queued:
                run = self._held_run(doc)
                if run is not None:
                    run.writing -= 1
                    run.written += 1
        for doc in made:
            self._count_made(doc)
        others = {key_id(d["endpoint_id"], d["ordering_key"]) for d in queued} - self.held
        await self._keys.mark_waiting(sorted(others))
        for doc in queued:
            run = self._held_run(doc)
            if run is not None:
                run.queued = True
                self._queued(run)
        return len(made)

    def _held_run(self, doc: Document) -> Run | None:
        run_id = key_id(doc["endpoint_id"], doc["ordering_key"])
        return self.runs.by_id.get(run_id) if run_id in self.held else None

    async def _take(self, ids: list[str]) -> None:
        """Take the keys of `ids` held by nobody; those found with deliveries queued (left
        by a process before) are loaded before anything new of theirs is sent."""
        if not ids:
            return
        async with self._lock:
            got = await self._keys.acquire(self._owner(), ids)
        if not got:
            return
        pairs = [run_id.partition("/") for run_id in got]
        queued = await self._keys.queued_keys(
            sorted({p[0] for p in pairs}), sorted({p[2] for p in pairs})
        )
        for endpoint_id, _, key in pairs:
            run = self.runs.of(endpoint_id, key)
            self.held.add(run.id)
            if (endpoint_id, key) in queued:
                run.queued = True
                self._queued(run)

    def _queued(self, run: Run) -> None:
        """The run has deliveries waiting in MongoDB: loaded when it drains, at its head's
        time if the key is parked."""
        if self._stopped or not run.drained or run.loading:
            return
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        delay = (run.due - utcnow()).total_seconds() if run.due is not None else 0.0
        if delay > 0:
            loop = asyncio.get_running_loop()
            run.timer = loop.call_later(delay, lambda: self._spawn(self.load(run)))
        else:
            self._spawn(self.load(run))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def load(self, run: Run) -> None:
        """The key's first queued deliveries, in order, into its run: its head sent now if
        due, else at its time."""
        if run.loading or not run.drained or self._stopped:
            return
        run.loading = True
        run.timer = None
        # A delivery fan-out queues while the query runs may be missed by it, and its
        # `_queued` finds the run loading: the key stays queued, loaded again once drained.
        written = run.written
        try:
            # What this process sent is recorded first: a delivery it ended is not queued.
            await self._writer.written()
            await self._keys.clear_waiting(self._owner(), run.id)
            room = max(1, min(LOAD, self._dispatcher.free))
            docs = await self._keys.queued(run.endpoint_id, run.key, room)
            self.loads.inc()
            self.loaded.inc(len(docs))
        except Exception as exc:  # MongoDB away: the next sweep finds the key again
            log.warning("fifo_key_load_failed", key=run.id, error=repr(exc))
            await self._keys_waiting([run.id])
            return
        finally:
            run.loading = False
        if run.id not in self.held or not run.drained:
            return
        missed = run.written != written
        if not docs:
            run.due = None
            if missed:
                self._queued(run)
            elif not run.writing:
                run.queued = False
            return
        due = docs[0].get("next_attempt_at")
        if due is not None and due > utcnow():
            run.due = due
            self._queued(run)
            return
        run.due = None
        if len(docs) < room and not run.writing and not missed:
            run.queued = False  # what others queue from now marks the key waiting
        for doc in docs:
            self._dispatcher.submit(Job.from_doc(doc))

    async def _keys_waiting(self, ids: list[str]) -> None:
        try:
            await self._keys.mark_waiting(ids)
        except Exception as exc:
            log.warning("fifo_key_mark_failed", error=repr(exc))

    async def sweep(self, dead: list[str]) -> None:
        """A scheduler poll's look at the keys: the dead workers' taken over, the waiting
        ones this process holds (or takes, held by nobody) loaded, the idle ones let go."""
        me = self._owner()
        taken = await self._keys.take_over(me, dead) if dead else []
        free: list[str] = []
        for doc in await self._keys.waiting():
            owner = doc.get("lease_owner")
            if owner == me and doc["_id"] in self.held:
                run = self.runs.by_id.get(doc["_id"])
                if run is not None:
                    # Its queue is read again, its head's time with it: parked, the head
                    # may have been made due since (a listener connected: KeyRepository.wake).
                    run.due = None
                    run.queued = True
                    self._queued(run)
            elif owner is None or owner == me:
                free.append(doc["_id"])
        if free:
            async with self._lock:
                taken += sorted(await self._keys.acquire(me, free))
        for run_id in taken:
            endpoint_id, _, key = run_id.partition("/")
            run = self.runs.of(endpoint_id, key)
            self.held.add(run.id)
            run.queued = True
            self._queued(run)
        await self._let_go_idle()

    async def _let_go_idle(self) -> None:
        before = time.monotonic() - KEY_IDLE_SECONDS
        idle = [
            run.id
            for run in self.runs.by_id.values()
            if run.drained
            and not run.queued
            and not run.writing
            and run.due is None
            and run.idle_since < before
        ]
        if not idle:
            return
        for run_id in idle:  # before the write: fan-out takes the key anew meanwhile
            self.held.discard(run_id)
            del self.runs.by_id[run_id]
        async with self._lock:
            await self._keys.release(self._owner(), idle)

    def held_keys(self) -> int:
        return len(self.held)

    async def stop(self, seconds: float | None = None) -> None:
        """Every key this process holds to the others, marked waiting: what it had queued
        or left unsent is loaded by whoever takes each."""
        self._stopped = True
        for run in self.runs.by_id.values():
            if run.timer is not None:
                run.timer.cancel()
        ids = sorted(self.held)
        self.held.clear()
        if not ids:
            return
        await self._keys.mark_waiting(ids)
        async with self._lock:
            await self._keys.release(self._owner(), ids)
