"""Jobs run before they are written: a post that goes through at once costs the outbox
nothing, only its copy in the message map.

The intake hands a chat event's jobs to the lanes without writing them to `sync_outbox`,
after it raised the progress mark of the event's partition (OutboxRepository.mark). The
batch's offsets are committed once each of its jobs has either finished (its copy handed
to the writer, which the batch then waits for) or been written to the outbox after all
("spilled", with the process as its holder, as every job was before):

- a job whose channel's pace will hold it more than `WAIT_SECONDS` (the jobs ahead of it
  in its lane, each a pace apart), at once;
- a job that met a 429 or a passing failure (its lane waits: no batch waits with it);
- a job still running `SPILL_SECONDS` after its batch was handed over (a slow network);
- every job the process holds when its partitions are taken away or it stops.

A spill goes through the batched writer, as outcomes do: an outcome set after the spill is
written after it, however the flushes fall. A job that finished is written only if it was
not done (failed or skipped: the outbox keeps what went wrong, for a week); a job done
leaves its copy in the map and nothing else.

After a crash, the events up to the mark come again to whoever takes the partition. A
lane runs one job at a time and moves on once its outcome is written, so of a mapping's
posts whose copies the map lacks, only the first can have been made: the intake marks that
one `recovered` (the sender looks for the post, in the map and then in the network's
history, before making it, as it does for a dead process's outbox jobs). Where lanes do
not wait for their outcomes (`Network.posts_once`: a post made again is the same message;
`Network.finds_own_posts`: ours are found again by their tag), none is marked, or every
one the map lacks. A recovered post is looked for from its chat event's time on. An edit
or a delete that was in flight is made again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from services.sync.metrics import SyncMetrics
from services.sync.outbound.repository import OUTBOX
from shared.kernel.consumers import REVOKE_WAIT_SECONDS
from shared.kernel.mongo import BatchedWriter, Document

log = structlog.get_logger(__name__)

# A job its channel's pace will hold longer than this is written to the outbox at once.
WAIT_SECONDS = 1.0
# How long a batch waits for its jobs before those not finished are written to the outbox.
SPILL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class _Held:
    doc: Document
    settled: asyncio.Future[None]


class Unwritten:
    """The jobs this process runs that the outbox does not hold, by id."""

    def __init__(self, writer: BatchedWriter, metrics: SyncMetrics) -> None:
        self._writer = writer
        self._metrics = metrics
        self._held: dict[str, _Held] = {}

    def settled(self, job_id: str) -> asyncio.Future[None] | None:
        """Done once the job has finished or been spilled; None if it is not held here."""
        held = self._held.get(job_id)
        return None if held is None else held.settled

    def hold(self, doc: Document) -> asyncio.Future[None]:
        """Hold the job `doc` describes, unwritten: see `settled`."""
        held = self._held.get(doc["_id"])
        if held is None:
            future = asyncio.get_running_loop().create_future()
            held = self._held[doc["_id"]] = _Held(doc, future)
        return held.settled

    def forget(self, job_id: str) -> None:
        """No longer held here: the outbox holds it (a lane had it already)."""
        held = self._held.pop(job_id, None)
        if held is not None:
            held.settled.set_result(None)

    def finish(self, job_id: str, outcome: Document) -> None:
        """The job finished with `outcome` (its fields as a finished job's): an update of
        its outbox document if it has one (written behind the spill, if it was spilled); a
        job held unwritten is written, finished, only if it was not done."""
        held = self._held.pop(job_id, None)
        if held is None:
            self._writer.set_fields(OUTBOX, job_id, outcome)
            return
        if outcome["status"] != "done":
            self._writer.insert_once(OUTBOX, job_id, {**held.doc, **outcome})
        held.settled.set_result(None)

    def spill(self, reason: str, job_ids: Iterable[str] | None = None) -> int:
        """Write these jobs (every job held, by default) to the outbox, held by this process,
        queued; how many were held. Their lanes keep running them. `reason`: the metric's
        (SyncMetrics.written)."""
        ids = list(self._held) if job_ids is None else [i for i in job_ids if i in self._held]
        for job_id in ids:
            held = self._held.pop(job_id)
            self._writer.insert_once(OUTBOX, job_id, held.doc)
            self._metrics.written.labels(held.doc["provider"], reason).inc()
            held.settled.set_result(None)
        return len(ids)

    async def written(self) -> None:
        """Once everything handed to the writer so far is in MongoDB."""
        await self._writer.written()

    async def spill_all(self) -> None:
        """Every job held, written to the outbox (for a handover: the partitions' next owner
        finds them there and leaves them to this process), waiting `REVOKE_WAIT_SECONDS` at
        most."""
        spilled = self.spill("handover")
        if not spilled:
            return
        if not await self._writer.written_within(REVOKE_WAIT_SECONDS):
            # MongoDB is away: the next owner may make their posts again (at least once).
            log.warning("sync_revoke_unwritten", jobs=spilled)
