"""The gateway's in-memory dedupe window against the real MongoDB-protocol server.

Two replicas are two `SeenDeliveries` on one database: what one records, the other's window
reads. Only lookups the window cannot answer may reach MongoDB, so the tests count those.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.gateway.provider_webhooks.repository import COLLECTION, SeenDeliveries
from services.gateway.provider_webhooks.service import Deduplicator
from services.gateway.provider_webhooks.window import CLOCK_SKEW_SECONDS, SeenWindow
from shared.kernel.cache import RecentIds
from shared.kernel.ids import id_floor
from shared.kernel.mongo import BUCKET_PREFIX, BatchedWriter, Database

WINDOW = timedelta(days=1)


class CountingSeen(SeenDeliveries):
    """The real repository, counting the lookups that reach MongoDB."""

    lookups = 0

    async def contains(self, envelope_id: str) -> bool:
        self.lookups += 1
        return await super().contains(envelope_id)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def _ids(n: int) -> list[str]:
    return [f"evt_{uuid.uuid4().hex}" for _ in range(n)]


async def _record(db: Database, ids: list[str]) -> None:
    """What another replica's `Deduplicator.remember` and writer flush leave in MongoDB."""
    writer = BatchedWriter(db)
    other = SeenDeliveries(db, writer)
    expires_at = datetime.now(UTC) + WINDOW
    for envelope_id in ids:
        other.record(envelope_id, expires_at)
    await writer.flush()


def _replica(db: Database, **window: Any) -> tuple[CountingSeen, SeenWindow, Deduplicator]:
    """This replica's repository (counting), in-memory window and deduplicator."""
    seen = CountingSeen(db, BatchedWriter(db))
    memory = SeenWindow(seen, **window)
    return seen, memory, Deduplicator(RecentIds(), seen, WINDOW, memory)


async def _bucket(db: Database, ids: list[str], written_at: float) -> None:
    """A bucket document as a writer whose clock reads `written_at` makes it."""
    await db[COLLECTION].insert_one(
        {
            "_id": id_floor(BUCKET_PREFIX, written_at) + "x",
            "ids": ids,
            "expires_at": datetime.now(UTC) + WINDOW,
        }
    )


async def test_new_ids_are_answered_from_memory_and_redeliveries_from_mongodb(
    db: Database,
) -> None:
    elsewhere = _ids(2500)  # three buckets
    await _record(db, elsewhere)
    seen, window, dedupe = _replica(db, max_ids=1_000_000)
    assert not window.ready
    assert not await dedupe.seen(_ids(1)[0])
    assert seen.lookups == 1, "before its first read the window answers nothing"

    await window.read()
    assert window.ready
    assert all(window.might_contain(i) for i in elsewhere)
    new = _ids(1000)
    assert not any([await dedupe.seen(i) for i in new])
    # Only the window's false positives (about 0.4%) may have asked MongoDB.
    assert seen.lookups - 1 < 20
    before = seen.lookups
    assert all([await dedupe.seen(i) for i in elsewhere[:50]])
    assert seen.lookups == before + 50, "a possible redelivery is MongoDB's call"


async def test_each_read_takes_only_buckets_written_since_the_last(db: Database) -> None:
    window = SeenWindow(CountingSeen(db, BatchedWriter(db)), max_ids=1_000_000)
    first = _ids(45_000)  # 45 buckets: three pages on the first read
    await _record(db, first)
    await window.read()
    assert all(window.might_contain(i) for i in first[::97])
    loaded = window.ids

    later = _ids(10)
    await _record(db, later)
    await window.read()
    assert all(window.might_contain(i) for i in later)
    assert window.ids == loaded + 10, "buckets read before are not read again"


async def test_a_bucket_is_read_once_though_the_next_read_starts_before_it(
    db: Database,
) -> None:
    clock = Clock()
    window = SeenWindow(CountingSeen(db, BatchedWriter(db)), max_ids=1_000_000, clock=clock)
    await _record(db, _ids(10))
    await window.read()
    # The next read's floor is the last read's start less the clock skew: below the bucket.
    clock.now += CLOCK_SKEW_SECONDS + 1
    await window.read()
    assert window.ids == 10


async def test_a_bucket_from_a_replica_whose_clock_is_behind_is_still_read(
    db: Database,
) -> None:
    clock = Clock()
    window = SeenWindow(CountingSeen(db, BatchedWriter(db)), max_ids=1_000_000, clock=clock)
    await window.read()
    clock.now += 1
    late = _ids(3)
    # Written after our read, stamped by a clock running behind ours.
    await _bucket(db, late, clock.now - CLOCK_SKEW_SECONDS + 5)
    await window.read()
    assert all(window.might_contain(i) for i in late)


async def test_a_window_whose_reads_fail_gives_the_lookups_back_to_mongodb(
    db: Database,
) -> None:
    clock = Clock()
    seen, window, dedupe = _replica(db, max_ids=1_000_000, poll_seconds=1.0, clock=clock)
    await window.read()
    assert window.ready
    clock.now += window.stale_seconds + 1  # no successful read since
    assert not window.ready
    assert not await dedupe.seen(_ids(1)[0])
    assert seen.lookups == 1


async def test_past_its_size_the_window_stops_answering_until_what_it_dropped_expires(
    db: Database,
) -> None:
    clock = Clock()
    _, window, dedupe = _replica(db, max_ids=2000, block_ids=1000, clock=clock)
    ids = _ids(3500)
    await _record(db, ids)
    await window.read()
    assert not window.ready, "ids were dropped: a redelivery of one would look new"
    assert await dedupe.seen(ids[0]), "MongoDB still knows the dropped ids"
    clock.now += WINDOW.total_seconds() + 60  # everything dropped has expired
    await window.read()
    assert window.ready
