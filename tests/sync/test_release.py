"""A stopping sync process hands its outbox jobs over, against the real MongoDB-protocol
server: cleared when every outcome was written, as a stopped worker's when not."""

from __future__ import annotations

from datetime import timedelta

from services.sync.outbound.repository import OutboxRepository
from shared.ids import utcnow
from shared.mongo import Database
from shared.ownership import Ownership

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
