"""shared.domain.retention: what is due is removed in bounded batches, what is not stays, and of
two replicas one removes at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from prometheus_client import CollectorRegistry

from services.sync.outbound.repository import INDEXES, KEEP_FINISHED, OUTBOX
from shared.domain.retention import LEASES, ExpiredDocuments, Lease, Retention
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, ensure_indexes


async def _seed(db: Database, due: int, kept: int, open_: int) -> None:
    now = utcnow()
    docs = [{"_id": f"due{i:05d}", "at": now - timedelta(hours=2, seconds=i)} for i in range(due)]
    docs += [
        {"_id": f"kept{i:05d}", "at": now - timedelta(minutes=30, seconds=i)} for i in range(kept)
    ]
    docs += [{"_id": f"open{i:05d}", "at": None} for i in range(open_)]
    docs += [{"_id": f"none{i:05d}"} for i in range(open_)]
    await db.items.insert_many(docs)
    await db.items.create_index([("at", 1)])


async def test_only_what_is_due_is_removed_a_batch_at_a_time(db: Database) -> None:
    await _seed(db, due=250, kept=40, open_=10)
    sweep = ExpiredDocuments(db.items, "at", keep=timedelta(hours=1))
    batches = []
    while removed := (await sweep.remove(utcnow(), 60))["items"]:
        batches.append(removed)
    assert batches == [60, 60, 60, 60, 10]
    left = {d["_id"][:4] for d in await db.items.find({}, {"_id": 1}).to_list()}
    assert left == {"kept", "open", "none"}
    assert await db.items.count_documents({}) == 40 + 20
    # Everything older than the floor is gone, and the floor is not past the cutoff.
    assert sweep.floor is not None
    assert sweep.floor <= utcnow() - timedelta(hours=1)
    assert await db.items.count_documents({"at": {"$lt": sweep.floor}}) == 0


async def test_a_document_changed_after_it_was_read_stays(db: Database) -> None:
    await _seed(db, due=5, kept=0, open_=0)
    sweep = ExpiredDocuments(db.items, "at", keep=timedelta(hours=1))
    now = utcnow()
    cutoff = await sweep.cutoff(now)
    docs = await sweep.due(now, cutoff, 10)
    assert len(docs) == 5
    await db.items.update_one({"_id": docs[0]["_id"]}, {"$set": {"at": None}})  # reopened
    assert await sweep.dispose(docs, cutoff) == {"items": 4}
    assert await db.items.find_one({"_id": docs[0]["_id"]}) is not None


async def test_documents_due_later_are_found_once_their_time_comes(db: Database) -> None:
    await _seed(db, due=3, kept=0, open_=0)
    sweep = ExpiredDocuments(db.items, "at", keep=timedelta(hours=1))
    assert (await sweep.remove(utcnow(), 100))["items"] == 3
    # Written after the first pass, due an hour and a half later.
    await db.items.insert_one({"_id": "late", "at": utcnow()})
    assert (await sweep.remove(utcnow(), 100))["items"] == 0
    later = utcnow() + timedelta(minutes=90)
    assert (await sweep.remove(later, 100))["items"] == 1


def _runner(db: Database, owner: str, batch: int = 50, interval: float = 60.0) -> Retention:
    return Retention(
        db,
        [ExpiredDocuments(db.items, "at", keep=timedelta(hours=1))],
        owner=owner,
        registry=CollectorRegistry(),
        interval=interval,
        batch=batch,
    )


async def test_two_replicas_at_once_remove_each_document_once(db: Database) -> None:
    await _seed(db, due=300, kept=20, open_=0)
    first, second = _runner(db, "a"), _runner(db, "b")
    results = await asyncio.gather(first.pass_once(), second.pass_once())
    assert sorted(r.get("items", 0) for r in results) == [0, 300]
    assert await db.items.count_documents({}) == 20
    states = sorted(r.status["items"].state for r in (first, second))
    assert states == ["ok", "run by another replica"]
    removed = [
        r.registry.get_sample_value("hookhub_retention_removed_total", {"collection": "items"})
        for r in (first, second)
    ]
    assert sorted(v or 0 for v in removed) == [0, 300]


async def test_the_lease_passes_on_when_it_runs_out(db: Database) -> None:
    await _seed(db, due=10, kept=0, open_=0)
    first = _runner(db, "a")
    assert (await first.pass_once())["items"] == 10
    await _seed_more(db, 5)
    second = _runner(db, "b")
    assert (await second.pass_once())["items"] == 0
    assert second.status["items"].state == "run by another replica"
    await db[LEASES].update_one(
        {"_id": "items"}, {"$set": {"until": utcnow() - timedelta(seconds=1)}}
    )
    assert (await second.pass_once())["items"] == 5
    assert second.status["items"].state == "ok"
    await first.release()  # not the holder: changes nothing
    assert await Lease(db[LEASES], "c", timedelta(seconds=30)).take("items") is None
    await second.release()
    assert await Lease(db[LEASES], "c", timedelta(seconds=30)).take("items") is not None


async def test_a_straggler_below_the_floor_waits_for_the_daily_look(db: Database) -> None:
    await _seed(db, due=3, kept=0, open_=0)
    sweep = ExpiredDocuments(db.items, "at", keep=timedelta(hours=1))
    assert (await sweep.remove(utcnow(), 100))["items"] == 3
    await db.items.insert_one({"_id": "straggler", "at": utcnow() - timedelta(days=3)})
    assert (await sweep.remove(utcnow(), 100))["items"] == 0
    # A new process (its first pass), or a day later, looks for the oldest again.
    assert (await sweep.remove(utcnow() + ExpiredDocuments.RESCAN * 1.01, 100))["items"] == 1


async def _seed_more(db: Database, count: int) -> None:
    at = utcnow() - timedelta(hours=1, minutes=30)
    await db.items.insert_many([{"_id": f"more{i}", "at": at} for i in range(count)])


async def test_readiness_says_behind_when_a_pass_cannot_remove_what_is_due(db: Database) -> None:
    await _seed(db, due=200, kept=0, open_=0)
    # Half an interval of 2 ms per pass: one batch of 20, and most of the backlog is left.
    runner = _runner(db, "a", batch=20, interval=0.004)
    await runner.pass_once()
    status = runner.readiness()["items"]
    assert isinstance(status, dict)
    assert str(status["state"]).startswith("behind: "), status
    assert float(str(status["overdue_seconds"])) > 3000
    overdue = runner.registry.get_sample_value(
        "hookhub_retention_overdue_seconds", {"collection": "items"}
    )
    assert overdue is not None and overdue > 3000
    while (await runner.pass_once())["items"]:
        pass
    # Caught up. At the service's interval, not 4 ms: the milliseconds between two passes
    # on a busy machine would be "behind" at 4 ms.
    runner.interval = 60.0
    await runner.pass_once()
    assert runner.readiness()["items"]["state"] == "ok"  # type: ignore[index]
    assert await db.items.count_documents({}) == 0


async def test_sync_outbox_jobs_finished_long_ago_go_with_the_partial_index(db: Database) -> None:
    """sync's outbox indexes only finished jobs by `finished_at` (a queued job has none):
    the sweep's queries find the old finished ones, never a queued one."""
    await ensure_indexes(db, INDEXES)
    now = utcnow()
    old, recent = now - KEEP_FINISHED - timedelta(hours=1), now - timedelta(hours=1)
    jobs = db[OUTBOX]
    await jobs.insert_many(
        [{"_id": f"old{i}", "status": "done", "finished_at": old} for i in range(30)]
        + [{"_id": f"new{i}", "status": "done", "finished_at": recent} for i in range(5)]
        + [{"_id": f"queued{i}", "status": "queued"} for i in range(5)]
    )
    [index] = [
        i for i in (await jobs.index_information()).values() if i["key"] == [("finished_at", 1)]
    ]
    assert "partialFilterExpression" in index
    sweep = ExpiredDocuments(jobs, "finished_at", keep=KEEP_FINISHED)
    while (await sweep.remove(utcnow(), 20))[OUTBOX]:
        pass
    left = sorted(d["_id"] for d in await jobs.find({}, {"_id": 1}).to_list())
    assert left == sorted([f"new{i}" for i in range(5)] + [f"queued{i}" for i in range(5)])
