"""A stopping sync process hands its outbox jobs over, against the real MongoDB-protocol
server: cleared when every outcome was written, as a stopped worker's when not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry
from pymongo.errors import NetworkTimeout

from services.sync.mappings.service import MappingDirectory, MappingSnapshot
from services.sync.metrics import SyncMetrics
from services.sync.outbound.intake import Intake
from services.sync.outbound.jobs import Job
from services.sync.outbound.lanes import Lanes, Scheduler
from services.sync.outbound.repository import OutboxRepository
from services.sync.outbound.sender import Sender
from shared.domain.message_map import MessageMap
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database
from shared.kernel.ownership import Ownership
from tests.support import until

LEASE = timedelta(seconds=60)


async def test_jobs_whose_outcomes_the_stop_may_have_left_unwritten_are_taken_as_recovered(
    db: Database,
) -> None:
    """`wrote_all` wrote every outcome: its jobs are cleared and taken as due. `left_some`
    did not, so any of its jobs may have been posted: they stay its own, and whoever takes
    them over looks for the post before making it again."""
    outbox = OutboxRepository(db)
    stopping = {}
    for name in ("wrote_all", "left_some"):
        stopping[name] = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id=name)
        await stopping[name].beat()
        held = {"lease_owner": name, "next_attempt_at": utcnow(), "status": "queued"}
        await outbox.jobs.insert_many([{"_id": f"{name}{n}", "seq": n, **held} for n in (0, 1)])
    assert await stopping["wrote_all"].release(1.0) == 2
    assert await stopping["left_some"].release(1.0, clear=False) == 0
    assert await outbox.jobs.count_documents({"lease_owner": "left_some"}) == 2

    following = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id="next")
    taken = await outbox.claim("next", utcnow(), await following.dead(utcnow()), limit=10)
    assert {doc["_id"]: bool(doc.get("recovered")) for doc in taken} == {
        "wrote_all0": False,
        "wrote_all1": False,
        "left_some0": True,
        "left_some1": True,
    }


class _Sent:
    """What the lanes need of a sender: each job run is remembered, its outcome written."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def run(self, job: Job) -> None:
        self.ran.append(job.id)

    async def recorded(self) -> None:
        return None


async def _process(
    db: Database, worker: str
) -> tuple[OutboxRepository, Ownership, _Sent, Lanes, Scheduler]:
    """A sync process's outbox parts, its heartbeat beaten, its sender a `_Sent`."""
    outbox = OutboxRepository(db)
    ownership = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id=worker)
    await ownership.beat()
    sent = _Sent()
    lanes = Lanes(cast(Sender, sent), lambda _job: 0.0, max_backoff_seconds=1.0)
    return outbox, ownership, sent, lanes, Scheduler(outbox, lanes, ownership, poll_seconds=60.0)


def _job(job_id: str, owner: str) -> dict[str, object]:
    now = utcnow()
    return {
        "_id": job_id,
        "seq": 1,
        "op": "post",
        "mapping_id": "map_taken_back",
        "integration_id": "int_taken_back",
        "provider": "slack",
        "external_channel_id": "C1",
        "workspace_id": "ws_taken_back",
        "channel_id": "ch_taken_back",
        "message_id": f"msg_{job_id}",
        "status": "queued",
        "queued_at": now,
        "lease_owner": owner,
        "next_attempt_at": now,
    }


async def test_jobs_a_failed_write_made_all_the_same_are_taken_back_once(db: Database) -> None:
    """The intake's write raised, but MongoDB had written the job, held by this process: a
    replay of the batch finds it written and leaves it, and this process's heartbeat keeps
    anyone else from taking it. The scheduler takes back what it still holds, queued, once
    (the soak found one such job queued for the rest of its run after MongoDB stopped)."""
    outbox, _, sent, lanes, scheduler = await _process(db, "me_taking_back")
    await outbox.jobs.insert_many(
        [_job("job_written", "me_taking_back"), _job("job_theirs", "someone_else")]
    )
    lanes.unanswered.update({"job_written", "job_theirs", "job_never_written"})

    assert await scheduler.take_back() == 1
    await until(lambda: sent.ran == ["job_written"], what="the job taken back sent")
    assert not lanes.unanswered
    assert await scheduler.take_back() == 0
    assert sent.ran == ["job_written"]


class _Channels:
    """The mapping directory's one question the intake asks: a channel's mappings."""

    def __init__(self, mapping: MappingSnapshot) -> None:
        self._mapping = mapping

    def of_channel(self, workspace_id: str, channel_id: str) -> list[MappingSnapshot]:
        wanted = (self._mapping.workspace_id, self._mapping.channel_id)
        return [self._mapping] if (workspace_id, channel_id) == wanted else []


async def test_a_batch_whose_job_write_raised_after_writing_posts_each_message_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake's insert raised after MongoDB wrote the jobs (a timeout): the batch fails
    and comes again; the replay finds the job written and leaves it; the scheduler takes it
    back. A job whose write raised without writing is made by the replay, and only it."""
    outbox, ownership, sent, lanes, scheduler = await _process(db, "me_intake")
    mapping = MappingSnapshot(
        id="map_intake",
        workspace_id="ws_intake",
        integration_id="int_intake",
        provider="slack",
        external_channel_id="C1",
        channel_id="ch_intake",
        direction="both",
        enabled=True,
    )
    intake = Intake(
        mappings=cast(MappingDirectory, _Channels(mapping)),
        message_map=MessageMap(db),
        repository=outbox,
        ownership=ownership,
        lanes=lanes,
        metrics=SyncMetrics(CollectorRegistry()),
    )
    insert_new = outbox.insert_new

    async def written_then_timed_out(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        await insert_new(docs)
        raise NetworkTimeout("timed out")

    async def timed_out(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NetworkTimeout("timed out")

    for n, failing in enumerate((written_then_timed_out, timed_out)):
        event = ChatEvent(
            id=f"evt_intake_{n}",
            type="message.created",
            workspace_id="ws_intake",
            occurred_at=utcnow(),
            data={"message_id": f"msg_intake_{n}", "channel_id": "ch_intake", "text": "hi"},
        )
        monkeypatch.setattr(outbox, "insert_new", failing)
        with pytest.raises(NetworkTimeout):
            await intake.events([event])
        monkeypatch.setattr(outbox, "insert_new", insert_new)
        await intake.events([event])  # the batch again
    await until(lambda: len(sent.ran) == 1, what="the job the replay made sent")
    assert await scheduler.take_back() == 1  # the one the failed write made
    await until(lambda: len(sent.ran) == 2, what="the job taken back sent")
    assert await scheduler.take_back() == 0
    assert sorted(sent.ran) == sorted(d["_id"] for d in await outbox.jobs.find({}).to_list())
