"""A stopping sync process hands its outbox jobs over, against the real MongoDB-protocol
server: cleared when every outcome was written, as a stopped worker's when not."""

from __future__ import annotations

from datetime import timedelta

from services.sync.outbound.repository import OutboxRepository
from shared.ids import utcnow
from shared.mongo import Database
from shared.ownership import Ownership

LEASE = timedelta(seconds=60)


async def _held(db: Database, owner: str) -> tuple[OutboxRepository, Ownership]:
    outbox = OutboxRepository(db)
    stopping = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id=owner)
    await stopping.beat()
    held = {"lease_owner": owner, "next_attempt_at": utcnow(), "status": "queued"}
    await outbox.jobs.insert_many([{"_id": f"j{n}", "seq": n, **held} for n in range(3)])
    return outbox, stopping


async def _taken_by_the_next(outbox: OutboxRepository) -> dict[str, bool]:
    following = Ownership(outbox.workers, outbox.jobs, LEASE, worker_id="next")
    taken = await outbox.claim("next", utcnow(), await following.dead(utcnow()), limit=10)
    return {doc["_id"]: bool(doc.get("recovered")) for doc in taken}


async def test_jobs_whose_outcomes_the_stop_may_have_left_unwritten_are_taken_as_recovered(
    db: Database,
) -> None:
    """Not cleared: a job among them may have been posted, so whoever takes it looks for the
    post before making it again."""
    outbox, stopping = await _held(db, "stopping")
    assert await stopping.release(1.0, clear=False) == 0
    assert await outbox.jobs.count_documents({"lease_owner": "stopping"}) == 3
    assert await _taken_by_the_next(outbox) == {"j0": True, "j1": True, "j2": True}


async def test_jobs_of_a_stop_that_wrote_every_outcome_are_cleared_and_taken_as_due(
    db: Database,
) -> None:
    outbox, stopping = await _held(db, "stopping")
    assert await stopping.release(1.0) == 3
    assert await _taken_by_the_next(outbox) == {"j0": False, "j1": False, "j2": False}
