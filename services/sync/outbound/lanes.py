"""One lane per mapping (one provider channel): its jobs in order, one at a time, paced.

A lane waits for its provider channel alone: a 429 on one Slack channel holds that
channel's lane for the `Retry-After`, every other lane goes on. Jobs are ordered by `seq`
(the order their chat events were read), also when some come back from a dead process.
The scheduler hands the lanes what is due and nobody holds: jobs released by a stopping
process and jobs of one that died.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from services.sync.outbound.jobs import Job
from services.sync.outbound.repository import OutboxRepository
from services.sync.outbound.sender import Retry, Sender
from services.sync.outbound.unwritten import Unwritten
from shared.kernel import tracing
from shared.kernel.ids import utcnow
from shared.kernel.ownership import Ownership
from shared.providers.chat import RateLimited

log = structlog.get_logger(__name__)

BACKOFF_FIRST_SECONDS = 1.0


@dataclass
class Lane:
    mapping_id: str
    jobs: list[tuple[int, str, Job]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    current: Job | None = None
    next_write_at: float = 0.0


class Lanes:
    def __init__(
        self,
        sender: Sender,
        pace: Callable[[Job], float],
        *,
        max_backoff_seconds: float,
        unwritten: Unwritten | None = None,
        unwaited: Callable[[str], bool] = lambda provider: False,
    ) -> None:
        self._sender = sender
        # Providers whose lanes need not wait for each outcome's write: a post made again
        # is the same message there, or ours are found again by their tag
        # (shared.providers.networks `Network.posts_once`, `finds_own_posts`).
        self._unwaited = unwaited
        # Jobs held unwritten (services.sync.outbound.unwritten): one that must wait for a
        # 429 or a backoff is written to the outbox, for its batch not to wait with it.
        self._unwritten = unwritten
        self._pace = pace
        self._max_backoff = max_backoff_seconds
        self._lanes: dict[str, Lane] = {}
        # When each channel may be written to next, kept after its lane ran dry: a
        # message arriving half a second after the last one still waits for the pace.
        self._next_write: dict[str, float] = {}
        self._stopping = False

    def wait(self, job: Job) -> float:
        """How long a job handed over now would wait for its channel's pace before it runs:
        the lane's next write, then a pace for each job ahead of it (those running too)."""
        lane = self._lanes.get(job.mapping_id)
        now = time.monotonic()
        if lane is None:
            return max(self._next_write.get(job.mapping_id, now) - now, 0.0)
        ahead = len(lane.jobs) + (lane.current is not None)
        return max(lane.next_write_at - now, 0.0) + ahead * self._pace(job)

    async def taken_over(self, jobs: list[Job]) -> list[Job]:
        """Claimed jobs as the lanes run them (`Sender.taken_over`)."""
        return await self._sender.taken_over(jobs)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def submit(self, job: Job) -> bool:
        """Whether the job was taken: not if a lane has it already, or the lanes stop (an
        outbox job is released with the rest at the stop)."""
        if self._stopping:
            return False
        lane = self._lanes.get(job.mapping_id)
        if lane is None:
            lane = self._lanes[job.mapping_id] = Lane(
                job.mapping_id, next_write_at=self._next_write.pop(job.mapping_id, 0.0)
            )
        if job.id in lane.ids:
            return False
        lane.ids.add(job.id)
        heapq.heappush(lane.jobs, (job.seq, job.id, job))
        if lane.task is None:
            lane.task = asyncio.create_task(self._run(lane), name=f"sync-lane-{job.mapping_id}")
        return True

    async def _run(self, lane: Lane) -> None:
        # Begun while a batch of chat events was handled: none of their traces is its own.
        with tracing.detached():
            await self._drain(lane)

    async def _drain(self, lane: Lane) -> None:
        try:
            while lane.jobs and not self._stopping:
                # Taken off the heap before it runs: a job with a lower `seq` arriving
                # meanwhile (taken over from a dead process) runs next, and this one once.
                _, _, job = heapq.heappop(lane.jobs)
                lane.current = job
                await self._attempt(lane, job)
                lane.current = None
                lane.ids.discard(job.id)
        finally:
            lane.current = None
            lane.task = None
            if not lane.jobs:
                self._lanes.pop(lane.mapping_id, None)
                self._remember_pace(lane)

    def _remember_pace(self, lane: Lane) -> None:
        now = time.monotonic()
        if lane.next_write_at > now:
            self._next_write[lane.mapping_id] = lane.next_write_at
        if len(self._next_write) > 10_000:  # forget the channels whose pace has passed
            self._next_write = {m: at for m, at in self._next_write.items() if at > now}

    async def _attempt(self, lane: Lane, job: Job) -> None:
        """Until the job is finished: paced, 429s waited out, passing failures backed off."""
        backoff = min(BACKOFF_FIRST_SECONDS, self._max_backoff)
        while True:
            wait = lane.next_write_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._sender.run(job)
                lane.next_write_at = time.monotonic() + self._pace(job)
                if not self._unwaited(job.provider):
                    # So a crash leaves at most this job's post unrecorded in the channel.
                    await self._sender.recorded()
                return
            except RateLimited as exc:
                log.info(
                    "sync_rate_limited", mapping_id=lane.mapping_id, retry_after=exc.retry_after
                )
                self._spill(job)
                lane.next_write_at = time.monotonic() + max(exc.retry_after, self._pace(job))
            except Retry as exc:
                self._spill(job)
                log.warning(
                    "sync_job_retry", job_id=job.id, error=str(exc), retry_in=round(backoff, 1)
                )
                lane.next_write_at = time.monotonic() + backoff
                backoff = min(backoff * 2, self._max_backoff)

    def _spill(self, job: Job) -> None:
        if self._unwritten is not None:
            self._unwritten.spill("retry", [job.id])

    def depth(self) -> dict[str, tuple[int, float]]:
        """(jobs held, age of the oldest in seconds) per provider."""
        now = utcnow()
        found: dict[str, tuple[int, float]] = {}
        for lane in list(self._lanes.values()):
            held = [job for _, _, job in lane.jobs]
            for job in [*held, *([lane.current] if lane.current else [])]:
                count, age = found.get(job.provider, (0, 0.0))
                found[job.provider] = (count + 1, max(age, (now - job.queued_at).total_seconds()))
        return found

    def in_flight(self) -> list[Job]:
        return [lane.current for lane in self._lanes.values() if lane.current is not None]

    async def stop(self, seconds: float) -> list[Job]:
        """Take no more jobs; let the calls in flight finish within `seconds`, then cut
        them off. Returns the jobs cut off mid-call (their post may have been made)."""
        self._stopping = True
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if not tasks:
            return []
        _, pending = await asyncio.wait(tasks, timeout=max(seconds, 0.0))
        cut = self.in_flight()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return cut


class Scheduler:
    """Hands due jobs nobody holds, and a dead process's jobs, to this process's lanes."""

    def __init__(
        self,
        repository: OutboxRepository,
        lanes: Lanes,
        ownership: Ownership,
        *,
        poll_seconds: float,
    ) -> None:
        self._repository = repository
        self._lanes = lanes
        self._ownership = ownership
        self._poll = poll_seconds

    async def run(self) -> None:
        polls = 0
        while True:
            try:
                await self.poll(utcnow())
                if polls % max(int(3600 / self._poll), 1) == 0:
                    await self._ownership.forget_dead(utcnow())
            except Exception as exc:
                log.warning("sync_scheduler_poll_failed", error=repr(exc))
            polls += 1
            await asyncio.sleep(self._poll)

    async def poll(self, now: datetime) -> None:
        dead = await self._ownership.dead(now)
        claimed = await self._repository.claim(self._ownership.id, now, dead, limit=1000)
        if claimed:
            log.info("sync_jobs_claimed", count=len(claimed), dead_workers=len(dead))
        for job in await self._lanes.taken_over([Job.from_doc(doc) for doc in claimed]):
            self._lanes.submit(job)
