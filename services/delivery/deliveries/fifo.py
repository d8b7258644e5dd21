"""FIFO endpoints (SPEC §17): a key's deliveries go one at a time, in their events' order.

An endpoint with `ordering: "fifo"` orders its deliveries per key: the event's
`ordering_key`, else its `data.channel_id`, else one key for the endpoint. Each delivery
carries its key and its `sequence` (the event's Kafka offset: one key's events are in one
partition, in the order they were published).

**One process sends a key.** A key is held by one delivery process at a time (its document
in `delivery_keys`, `lease_owner` that process's id, kept by its heartbeat as its
deliveries are), and only the holder sends the key's deliveries: in memory, a key's
**run** is a queue of which only the head is handed to the endpoint's lane; the next one
goes when the head ends (completed, or dead-lettered). Nothing of this costs MongoDB while
a key flows: the process that consumes a key's partition holds the key, and its fan-out
hands the key's deliveries to the run unrecorded, as any other (deliveries/service.py).

**A key that waits is queued in MongoDB.** When the head is to be tried later (a retry;
an open circuit; an endpoint disabled or unknown), the key is **parked**: the head and
every delivery behind it are written with `lease_owner: "fifo"` (`QUEUED`), never claimed
one by one by the scheduler, and leave memory; the holder keeps the key and loads its queue
again, first in order first, when the head is due. Meanwhile fan-out writes the key's new
deliveries to the queue too, behind it. A delivery fan-out makes for a key another process
holds is queued as well, and the key marked `waiting`; each scheduler poll looks at the
waiting keys: its own are loaded when their run drains, those held by nobody are taken
and loaded, those of a dead process (heartbeat older than the lease, or stopped) are
taken over. So a key's successor is never sent before its head ends, by any process, and
across a crash and a restart the queue is sent again from its first open delivery.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.delivery.deliveries.job import Job


def key_of(event_key: str | None, data: Any) -> str:
    """A delivery's ordering key: the event's `ordering_key`, else its `data.channel_id`,
    else "" (one queue for the endpoint)."""
    if event_key:
        return event_key
    channel = data.get("channel_id") if isinstance(data, dict) else None
    return channel if isinstance(channel, str) else ""


def key_id(endpoint_id: str, key: str) -> str:
    """A key's `_id` in `delivery_keys` (endpoint ids hold no "/")."""
    return f"{endpoint_id}/{key}"


@dataclass(eq=False)
class Run:
    """A held key's deliveries in this process, in their order: only the head is out."""

    id: str
    endpoint_id: str
    key: str
    jobs: deque[Job] = field(default_factory=deque)
    queued: bool = False  # deliveries of the key may wait in MongoDB: load them when drained
    due: datetime | None = None  # the parked head's next attempt
    writing: int = 0  # fan-out writes of its deliveries to the queue under way
    written: int = 0  # fan-out writes of its deliveries to the queue done (a count)
    loading: bool = False
    idle_since: float = field(default_factory=time.monotonic)
    moved: float = field(default_factory=time.monotonic)  # its head handed to the lane
    timer: asyncio.TimerHandle | None = None

    @property
    def drained(self) -> bool:
        return not self.jobs

    @property
    def head(self) -> Job | None:
        return self.jobs[0] if self.jobs else None


class Runs:
    """The runs of the keys this process holds, by key id (in memory only). Used by the
    dispatcher: `add` a job; when a head is let go, `ended` says what comes next."""

    def __init__(self) -> None:
        self.by_id: dict[str, Run] = {}
        # A run parked, or drained with deliveries queued: load it (Ordering.load).
        self.on_queued: Callable[[Run], None] = lambda _run: None

    def of(self, endpoint_id: str, key: str) -> Run:
        run_id = key_id(endpoint_id, key)
        run = self.by_id.get(run_id)
        if run is None:
            run = self.by_id[run_id] = Run(run_id, endpoint_id, key)
        return run

    def add(self, job: Job) -> bool:
        """Put `job` behind its key's run; True if it is the head (to be sent now)."""
        assert job.ordering_key is not None
        run = self.of(job.endpoint_id, job.ordering_key)
        run.jobs.append(job)
        if len(run.jobs) == 1 and run.due is None:
            run.moved = time.monotonic()
            return True
        return False

    def waits(self, endpoint_id: str, key: str, hold_seconds: float) -> bool:
        """Whether fan-out waits before handing the key one more delivery: the key moves
        (its head went to the lane less than `hold_seconds` ago) but more slowly than
        fan-out feeds it (the one behind its head has waited half of `hold_seconds`). Fed
        on, its deliveries would wait past the hold bound behind their heads and be
        written pending, each then an insert and an update (`Dispatcher.write_held`); a
        key that does not move is not waited for (its deliveries are written)."""
        run = self.by_id.get(key_id(endpoint_id, key))
        if run is None or len(run.jobs) < 2:
            return False
        now = time.monotonic()
        return now - run.moved < hold_seconds and now - run.jobs[1].since >= hold_seconds / 2

    def parked(self, job: Job) -> None:
        """`job` was written to its key's queue before it reached the run (set aside, its
        endpoint unknown here): the key waits for it in MongoDB."""
        assert job.ordering_key is not None
        run = self.of(job.endpoint_id, job.ordering_key)
        run.queued = True
        if job.next_at is not None and (run.due is None or job.next_at > run.due):
            run.due = job.next_at
        self.on_queued(run)

    def ended(self, job: Job) -> tuple[Job | None, list[Job]]:
        """`job`, its key's head, is let go: the next head to send, or (the head to be
        tried later: the key parks) the jobs behind it, to be queued in MongoDB."""
        assert job.ordering_key is not None
        run = self.by_id.get(key_id(job.endpoint_id, job.ordering_key))
        if run is None or run.head is not job:
            return None, []
        run.jobs.popleft()
        run.idle_since = time.monotonic()
        if job.outcome in ("completed", "failed"):
            if run.jobs:
                run.moved = run.idle_since
                return run.jobs[0], []
            if run.queued:
                self.on_queued(run)
            return None, []
        if job.next_at is not None:  # delayed: the key waits for its head, in MongoDB
            behind = list(run.jobs)
            run.jobs.clear()
            run.queued = True
            run.due = job.next_at
            self.on_queued(run)
            return None, behind
        return None, []  # cut off by the stop: nothing more is sent here
