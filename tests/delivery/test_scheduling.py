"""Who sends which delivery: owners, heartbeats and the scheduler's claims, against the
real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

from services.delivery.deliveries.repository import (
    CLAIM_PAGE,
    DELIVERIES,
    INDEXES,
    WORKERS,
    DeliveryRepository,
    schedule,
)
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, ensure_indexes
from shared.kernel.ownership import Ownership

LEASE = timedelta(seconds=60)
MINUTE = timedelta(minutes=1)


async def _repository(db: Database) -> DeliveryRepository:
    await ensure_indexes(db, INDEXES)
    return DeliveryRepository(db)


def _worker(repository: DeliveryRepository, name: str) -> Ownership:
    return Ownership(repository.workers, repository.deliveries, LEASE, worker_id=name)


async def test_only_due_unheld_deliveries_and_dead_workers_ones_are_claimed(db: Database) -> None:
    repository = await _repository(db)
    now = utcnow()
    await _worker(repository, "alive").beat(now)
    await _worker(repository, "dead").beat(now - 2 * LEASE)
    docs = {
        # Written by a live process a moment ago and being sent by it.
        "held": {"status": "pending", **schedule(next_attempt_at=now, owner="alive")},
        # Its process died: taken over, whatever its next attempt says.
        "orphaned": {"status": "active", **schedule(next_attempt_at=now, owner="dead")},
        "retry_due": {"status": "delayed", **schedule(next_attempt_at=now - MINUTE)},
        "retry_later": {"status": "delayed", **schedule(next_attempt_at=now + MINUTE)},
        "manual_retry": {"status": "pending", **schedule(next_attempt_at=now)},
        "completed": {"status": "completed", **schedule(next_attempt_at=None)},
    }
    await db[DELIVERIES].insert_many([{"_id": key, **doc} for key, doc in docs.items()])

    dead = await _worker(repository, "me").dead(utcnow())
    assert dead == ["dead"]
    claimed = await repository.claim("me", utcnow(), dead, limit=100)
    assert {doc["_id"] for doc in claimed} == {"orphaned", "retry_due", "manual_retry"}
    assert {doc["lease_owner"] for doc in claimed} == {"me"}
    # Nothing is claimed twice, by this scheduler or another one.
    assert await repository.claim("me", utcnow(), dead, limit=100) == []
    assert await repository.claim("other", utcnow(), dead, limit=100) == []
    assert await repository.count_scheduled(utcnow()) == 1  # retry_later


async def test_a_full_lanes_backlog_of_due_retries_does_not_hide_another_endpoints(
    db: Database,
) -> None:
    """More of a full endpoint's deliveries are due than a page holds, all before another
    endpoint's: the claim reads past them, and of the dead worker's too."""
    repository = await _repository(db)
    now = utcnow()
    await _worker(repository, "dead").beat(now - 2 * LEASE)
    slow = [
        {
            "_id": f"slow{n:04d}",
            "endpoint_id": "slow",
            "status": "delayed",
            **schedule(next_attempt_at=now - 2 * MINUTE + timedelta(milliseconds=n)),
        }
        for n in range(3 * CLAIM_PAGE)
    ]
    other = [
        {
            "_id": f"other{n}",
            "endpoint_id": "other",
            "status": "delayed",
            **schedule(next_attempt_at=now - MINUTE),
        }
        for n in range(3)
    ]
    orphans = [
        {
            "_id": f"orphan-{e}{n}",
            "endpoint_id": e,
            "status": "pending",
            **schedule(next_attempt_at=now, owner="dead"),
        }
        for e in ("slow", "third")
        for n in range(2)
    ]
    await db[DELIVERIES].insert_many([*slow, *other, *orphans])

    dead = await _worker(repository, "me").dead(utcnow())
    claimed = await repository.claim("me", utcnow(), dead, limit=10, full=["slow"])
    assert {doc["_id"] for doc in claimed} == {
        "other0",
        "other1",
        "other2",
        "orphan-third0",
        "orphan-third1",
    }
    left = await db[DELIVERIES].count_documents({"endpoint_id": "slow", "lease_owner": None})
    assert left == 3 * CLAIM_PAGE, "the full lane's due deliveries stay where they were"
    # Room comes back to it: the oldest of its backlog first.
    claimed = await repository.claim("me", utcnow(), dead, limit=2)
    assert [doc["_id"] for doc in sorted(claimed, key=lambda d: d["_id"])] == [
        "slow0000",
        "slow0001",
    ]


async def test_racing_schedulers_never_take_the_same_delivery(db: Database) -> None:
    repository = await _repository(db)
    now = utcnow()
    await db[DELIVERIES].insert_many(
        [
            {"_id": f"d{n}", "status": "delayed", **schedule(next_attempt_at=now - MINUTE)}
            for n in range(30)
        ]
    )
    a, b = await asyncio.gather(
        repository.claim("a", utcnow(), [], limit=20), repository.claim("b", utcnow(), [], limit=20)
    )
    taken_a, taken_b = {doc["_id"] for doc in a}, {doc["_id"] for doc in b}
    assert not taken_a & taken_b
    assert len(taken_a) <= 20 and len(taken_b) <= 20 and len(taken_a | taken_b) >= 20
    owners = {doc["_id"]: doc["lease_owner"] async for doc in db[DELIVERIES].find()}
    assert all(owners[key] == "a" for key in taken_a)
    assert all(owners[key] == "b" for key in taken_b)


async def test_a_released_worker_hands_over_at_once_and_is_forgotten_a_day_later(
    db: Database,
) -> None:
    repository = await _repository(db)
    now = utcnow()
    stopping = _worker(repository, "stopping")
    await stopping.beat(now)
    await db[DELIVERIES].insert_many(
        [
            {
                "_id": "queued",
                "status": "pending",
                **schedule(next_attempt_at=now, owner="stopping"),
            },
            {"_id": "sent", "status": "completed", **schedule(next_attempt_at=None)},
        ]
    )
    assert await stopping.release() == 1
    claimed = await repository.claim("next", utcnow(), [], limit=10)
    assert [doc["_id"] for doc in claimed] == ["queued"]
    # Released means gone: what it writes while it stops is taken over like a dead one's.
    assert await _worker(repository, "next").dead(utcnow()) == ["stopping"]

    await stopping.forget_dead(utcnow())
    assert await db[WORKERS].count_documents({}) == 1  # gone, but only just
    await stopping.forget_dead(utcnow() + timedelta(days=2))
    assert await db[WORKERS].count_documents({}) == 0


async def test_a_process_whose_own_heartbeat_went_stale_is_not_dead_to_itself(
    db: Database,
) -> None:
    """MongoDB away for longer than the lease: its heartbeat is stale when it comes back,
    but what it holds is still its own, not a dead worker's to take over and send again."""
    repository = await _repository(db)
    now = utcnow()
    me, other = _worker(repository, "me"), _worker(repository, "other")
    await me.beat(now - 2 * LEASE)
    await other.beat(now - 2 * LEASE)
    assert await me.dead(now) == ["other"]
    assert await other.dead(now) == ["me"]


class _SentMeanwhile:
    """The deliveries collection, with `meanwhile` run just before the first update: what
    another scheduler does between this one's find and its conditional update."""

    def __init__(self, collection: Any, meanwhile: Callable[[], Awaitable[None]]) -> None:
        self._collection = collection
        self._meanwhile: Callable[[], Awaitable[None]] | None = meanwhile

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    async def update_many(self, *args: Any, **kwargs: Any) -> Any:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            await meanwhile()
        return await self._collection.update_many(*args, **kwargs)


async def test_a_delivery_another_scheduler_sent_meanwhile_is_not_claimed_again(
    db: Database,
) -> None:
    """Held by nobody again once its attempt ended, but no longer due: not claimable."""
    repository = await _repository(db)
    now = utcnow()
    await db[DELIVERIES].insert_many(
        [
            {"_id": key, "status": "pending", **schedule(next_attempt_at=now - MINUTE)}
            for key in ("completed", "retried", "still_due")
        ]
    )

    async def another_scheduler_meanwhile() -> None:
        claimed = await DeliveryRepository(db).claim("other", utcnow(), [], limit=10)
        outcomes = {
            "completed": {"status": "completed", **schedule(next_attempt_at=None)},
            "retried": {"status": "delayed", **schedule(next_attempt_at=utcnow() + MINUTE)},
            # Not sent: handed back (a stopping process), due at once.
            "still_due": schedule(next_attempt_at=now),
        }
        assert {doc["_id"] for doc in claimed} == set(outcomes)
        for doc in claimed:
            await db[DELIVERIES].update_one({"_id": doc["_id"]}, {"$set": outcomes[doc["_id"]]})

    collection = repository.deliveries
    cast(Any, repository)._deliveries = _SentMeanwhile(collection, another_scheduler_meanwhile)
    claimed = await repository.claim("me", utcnow(), [], limit=10)
    owners = {doc["_id"]: doc["lease_owner"] async for doc in db[DELIVERIES].find()}
    assert owners == {"completed": None, "retried": None, "still_due": "me"}
    assert [doc["_id"] for doc in claimed] == ["still_due"]


async def test_a_release_cut_off_by_the_stop_still_hands_everything_over(db: Database) -> None:
    repository = await _repository(db)
    now = utcnow()
    stopping = _worker(repository, "stopping")
    await stopping.beat(now)
    held = {"status": "pending", **schedule(next_attempt_at=now, owner="stopping")}
    await db[DELIVERIES].insert_many([{"_id": f"d{n}", **held} for n in range(3)])
    # No time left to clear the owners: the one write saying it stopped is what hands over.
    assert await stopping.release(0) == 0
    assert await db[DELIVERIES].count_documents({"lease_owner": "stopping"}) == 3
    dead = await _worker(repository, "next").dead(utcnow())
    assert dead == ["stopping"]
    claimed = await repository.claim("next", utcnow(), dead, limit=10)
    assert sorted(doc["_id"] for doc in claimed) == ["d0", "d1", "d2"]
