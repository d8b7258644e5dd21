"""BatchedWriter and BatchedExistence against the real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import (
    BatchedExistence,
    BatchedWriter,
    Database,
    GroupInserter,
    Index,
    ensure_indexes,
)
from tests.infra import Infra
from tests.support import new_namespace


async def test_insert_once_keeps_the_first_document_and_folds_in_later_fields(db: Database) -> None:
    writer = BatchedWriter(db)
    await db.things.insert_one({"_id": "old", "status": "first"})
    writer.insert_once("things", "old", {"status": "second"})  # exists: left as it is
    writer.insert_once("things", "new", {"status": "pending", "n": 0})
    writer.set_fields("things", "new", {"status": "completed"})  # folded into the insert
    writer.bump("things", "new", "n")  # an update after the insert, same flush
    await writer.flush()
    assert await db.things.find_one({"_id": "old"}) == {"_id": "old", "status": "first"}
    assert await db.things.find_one({"_id": "new"}) == {
        "_id": "new",
        "status": "completed",
        "n": 1,
    }


async def test_a_retired_index_is_dropped_where_it_exists(db: Database) -> None:
    await db.logs.create_index([("at", 1)])
    await db.logs.create_index([("kind", 1)])
    retired = [
        Index("logs", [("at", 1)], retired=True),
        Index("nothing_here", [("at", 1)], retired=True),  # no such collection: no error
        Index("logs", [("kind", 1)]),
    ]
    for _ in range(2):  # and again, once it is gone
        await ensure_indexes(db, retired)
        names = set((await db.logs.index_information()).keys())
        assert names == {"_id_", "kind_1"}


async def test_written_within_says_whether_the_flush_came_in_time(db: Database) -> None:
    """A writer not started never flushes: the bounded wait gives up and says so (a
    rebalance's handover with MongoDB away); started, the same wait sees the write."""
    writer = BatchedWriter(db, interval=0.01)
    writer.insert_once("things", "t1", {"n": 1})
    assert await writer.written_within(0.05) is False
    assert await db["things"].count_documents({}) == 0
    writer.start()
    try:
        assert await writer.written_within(30.0) is True
        assert await db["things"].count_documents({"_id": "t1"}) == 1
    finally:
        await writer.stop(5.0)


async def test_set_fields_after_a_flush_updates_the_document(db: Database) -> None:
    writer = BatchedWriter(db)
    writer.insert_once("things", "a", {"status": "pending"})
    await writer.flush()
    writer.set_fields("things", "a", {"status": "failed"})
    await writer.flush()
    assert await db.things.find_one({"_id": "a"}) == {"_id": "a", "status": "failed"}


async def test_stopping_during_a_flush_loses_nothing_of_the_batch_it_took(db: Database) -> None:
    """The writer's stop once cancelled a flush under way, and the batch that flush had
    taken was lost with it (a stopping delivery service left deliveries `active`)."""
    writer = BatchedWriter(db, interval=0.01)
    for n in range(2_000):
        writer.set_fields("things", f"t{n}", {"status": "pending"})
        writer.insert_once("things", f"t{n}", {"status": "active"})
    writer.start()
    while writer._inserts:  # the periodic flush has taken the batch and is writing it
        await asyncio.sleep(0.001)
    await writer.stop()
    assert await db.things.count_documents({"status": "pending"}) == 2_000


class _Timed:
    """The real database, whose update writes take `per_write` seconds of a clock of its
    own (the writer's `clock`) and can be held until released: a stop's deadline met by
    construction, not by racing a timer."""

    def __init__(self, db: Database, per_write: float = 0.0) -> None:
        self.db = db
        self.per_write = per_write
        self.now = 0.0
        self.writes: list[int] = []  # the size of each update write, in order
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    def clock(self) -> float:
        return self.now

    def __getitem__(self, name: str) -> _TimedCollection:
        return _TimedCollection(self, name)


class _TimedCollection:
    def __init__(self, timed: _Timed, name: str) -> None:
        self._timed = timed
        self._name = name

    async def bulk_write(self, ops: list[Any], **kwargs: Any) -> Any:
        timed = self._timed
        timed.started.set()
        await timed.release.wait()
        result = await timed.db[self._name].bulk_write(ops, **kwargs)
        timed.writes.append(len(ops))
        timed.now += timed.per_write
        return result


async def _cut_off(db: Database, writer: BatchedWriter, count: int) -> None:
    """`count` documents `active` in MongoDB, and the writer holding the update of each to
    `pending` (as a stopping delivery service's cut-off attempts)."""
    await db.things.insert_many([{"_id": f"t{n}", "status": "active"} for n in range(count)])
    for n in range(count):
        writer.set_fields("things", f"t{n}", {"status": "pending"})


async def test_a_stop_with_no_time_left_writes_nothing_and_keeps_it_all(db: Database) -> None:
    writer = BatchedWriter(db)
    await _cut_off(db, writer, 120)
    writer.insert_once("things", "new", {"status": "pending"})
    writer.add_to_bucket("seen", "ids", "evt_1", utcnow())
    assert await writer.stop(0) == 122
    assert await db.things.count_documents({"status": "active"}) == 120
    assert await db.things.count_documents({}) == 120 and await db.seen.count_documents({}) == 0
    # Kept, not dropped: a stop without a bound writes all of it.
    assert await writer.stop() == 0
    assert await db.things.count_documents({"status": "pending"}) == 121
    assert await db.seen.count_documents({}) == 1


async def test_a_bounded_stop_writes_the_pieces_that_fit_and_keeps_the_rest(
    db: Database,
) -> None:
    """Each write of 50 takes 30 s of the writer's clock: of a stop's 100 s it writes
    within 80, so three pieces start (at 0, 30, 60) and none after."""
    timed = _Timed(db, per_write=30)
    writer = BatchedWriter(cast(Database, timed), clock=timed.clock)
    await _cut_off(db, writer, 300)
    assert await writer.stop(100) == 150
    assert timed.writes == [50, 50, 50]
    assert await db.things.count_documents({"status": "pending"}) == 150
    assert await db.things.count_documents({"status": "active"}) == 150
    assert await writer.stop() == 0
    assert await db.things.count_documents({"status": "pending"}) == 300


async def test_a_bounded_stop_leaves_a_held_flush_to_end_on_its_own(db: Database) -> None:
    """The periodic flush took the batch and its write does not end: the stop returns by
    its deadline (what that flush holds counted as unwritten), without cancelling it."""
    timed = _Timed(db)
    timed.release.clear()
    writer = BatchedWriter(cast(Database, timed), interval=3600)
    await _cut_off(db, writer, 120)
    writer.start()
    writer.hurry()
    await timed.started.wait()
    writer.set_fields("things", "later", {"status": "pending"})  # after the flush took its batch
    assert await writer.stop(0.05) == 121
    assert await db.things.count_documents({"status": "pending"}) == 0
    timed.release.set()
    await writer.flush()  # waits for the flush under way: its batch lands, whole
    assert await db.things.count_documents({"status": "pending"}) == 120


async def test_a_spread_flush_writes_in_paused_pieces_until_a_flush_is_asked_for(
    db: Database,
) -> None:
    """An hour's interval: the pauses between the pieces (half of it over three pieces)
    hold the flush after its first piece until `hurry()` asks for the rest."""
    timed = _Timed(db)
    writer = BatchedWriter(cast(Database, timed), interval=3600, spread=True)
    await _cut_off(db, writer, 120)
    spread = asyncio.ensure_future(writer.flush(spread=True))
    while not timed.writes:  # the first piece is written, then the pause begins
        await asyncio.sleep(0.01)
    assert await db.things.count_documents({"status": "pending"}) == 50
    assert not spread.done() and timed.writes == [50]
    writer.hurry()
    await asyncio.wait_for(spread, 60)
    assert timed.writes == [50, 50, 20]
    assert await db.things.count_documents({"status": "pending"}) == 120


async def test_hurry_flushes_before_the_interval_ends(db: Database) -> None:
    """An hour's interval: only `hurry()` can have written it."""
    writer = BatchedWriter(db, interval=3600)
    writer.start()
    try:
        writer.insert_once("things", "hurried", {"status": "pending"})
        written = asyncio.ensure_future(writer.written())
        writer.hurry()
        await asyncio.wait_for(written, 60)
        assert await db.things.find_one({"_id": "hurried"}) == {
            "_id": "hurried",
            "status": "pending",
        }
    finally:
        await writer.stop()


async def test_next_flush_is_done_when_the_flush_that_took_it_has_written(db: Database) -> None:
    """What is handed over before a flush takes its batch shares one future, done when that
    flush has written; what is handed over while it writes waits for the flush after it.
    A `written()` caller cancelled does not cancel the shared future."""
    timed = _Timed(db)
    writer = BatchedWriter(cast(Database, timed), interval=3600)
    await _cut_off(db, writer, 2)
    first = writer.next_flush()
    assert writer.next_flush() is first
    timed.release.clear()
    flushing = asyncio.create_task(writer.flush())
    await timed.started.wait()  # the batch taken, its write held
    writer.set_fields("things", "t0", {"status": "delayed"})
    second = writer.next_flush()
    assert second is not first
    waiting = asyncio.ensure_future(writer.written())
    await asyncio.sleep(0)
    waiting.cancel()
    timed.release.set()
    await flushing
    assert first.done() and not second.done() and not second.cancelled()
    assert await db.things.count_documents({"status": "pending"}) == 2
    await writer.flush()
    assert second.done()
    assert (await db.things.find_one({"_id": "t0"}) or {})["status"] == "delayed"


class _Order:
    """The real database, remembering which collection each insert went to, in order."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.inserts: list[str] = []

    def __getitem__(self, name: str) -> Any:
        order = self

        class Collection:
            async def insert_many(self, docs: list[Any], **kwargs: Any) -> Any:
                order.inserts.append(name)
                return await order.db[name].insert_many(docs, **kwargs)

        return Collection()


async def test_first_collections_are_inserted_before_the_others(db: Database) -> None:
    """A delivery handed over before the attempt it refers to: with `first` naming the
    attempts, a flush inserts the attempt first all the same (a reader that finds the
    delivery finds its attempt)."""
    order = _Order(db)
    for first, expected in (
        ((), ["deliveries", "attempts"]),
        (("attempts",), ["attempts", "deliveries"]),
    ):
        order.inserts.clear()
        writer = BatchedWriter(cast(Database, order), first=first)
        writer.insert_once("deliveries", new_id("dlv"), {"status": "completed"})
        writer.insert_once("attempts", new_id("att"), {"status_code": 200})
        await writer.flush()
        assert order.inserts == expected


async def test_a_flush_returns_once_the_flush_under_way_has_written_too(db: Database) -> None:
    """`flush()` while another flush writes: it waits for that one, so what was handed
    over before the call is in MongoDB when it returns (a caller's "flush, then read")."""
    writer = BatchedWriter(db)
    for n in range(500):
        writer.bump("counts", f"c{n}", "n", by=2, create={"kind": "count"})
    under_way = asyncio.create_task(writer.flush())
    while writer._incs:  # it has taken the batch and is writing it
        await asyncio.sleep(0)
    await writer.flush()
    assert await db.counts.count_documents({"n": 2, "kind": "count"}) == 500
    await under_way


async def test_bucket_values_are_found_by_concurrent_lookups(db: Database) -> None:
    writer = BatchedWriter(db)
    expires = utcnow() + timedelta(hours=1)
    recorded = [new_id("evt") for _ in range(2_500)]  # three buckets
    for value in recorded:
        writer.add_to_bucket("seen", "ids", value, expires)
    await writer.flush()
    assert await db.seen.count_documents({}) == 3
    lookups = BatchedExistence(db.seen, field="ids")
    absent = [new_id("evt") for _ in range(50)]
    probes = recorded[::97] + absent
    answers = await asyncio.gather(*(lookups.exists(value) for value in probes))
    assert dict(zip(probes, answers, strict=True)) == {
        **dict.fromkeys(recorded[::97], True),
        **dict.fromkeys(absent, False),
    }
    bucket = await db.seen.find_one({})
    assert bucket is not None
    # BSON dates keep milliseconds.
    assert abs(bucket["expires_at"].replace(tzinfo=UTC) - expires) < timedelta(milliseconds=1)


async def test_unwritten_changes_are_kept_while_the_database_is_unreachable(infra: Infra) -> None:
    unreachable: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200"
    )
    writer = BatchedWriter(unreachable["nowhere"])
    writer.insert_once("things", "a", {"status": "pending"})
    writer.bump("things", "b", "n")
    writer.add_to_bucket("seen", "ids", "evt_1", utcnow())
    waiting = asyncio.create_task(writer.written())
    await asyncio.sleep(0)
    await writer.flush()
    await asyncio.sleep(0)
    assert not waiting.done()  # nothing was written: whoever waits for it goes on waiting
    await unreachable.close()
    # The same writer, pointed at a server that answers, writes everything it kept.
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongo_uri)
    name = f"hookhub_{new_namespace()}"
    db = client[name]
    await db.things.insert_one({"_id": "b", "n": 1})
    writer._db = db
    await writer.flush()
    await asyncio.wait_for(waiting, 1)
    assert await db.things.find_one({"_id": "a"}) == {"_id": "a", "status": "pending"}
    assert await db.things.find_one({"_id": "b"}) == {"_id": "b", "n": 2}
    assert await BatchedExistence(db.seen, field="ids").exists("evt_1")
    await client.drop_database(name)
    await client.close()


class _Counting:
    """The real collection, with its insert_many calls counted."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.inserts: list[int] = []

    async def insert_many(self, docs: list[Any], **kwargs: Any) -> Any:
        self.inserts.append(len(docs))
        return await self._collection.insert_many(docs, **kwargs)


async def test_group_inserter_writes_concurrent_callers_in_few_bulk_inserts(db: Database) -> None:
    collection = _Counting(db["grouped"])
    inserter = GroupInserter(cast(Any, collection), max_docs=300)
    callers = [[{"_id": f"d{c}-{n}"} for n in range(10)] for c in range(60)]
    callers.append([{"_id": "d0-0"}, {"_id": "extra"}])  # one already asked for: no error

    await asyncio.gather(*(inserter.insert(docs) for docs in callers))

    assert await db["grouped"].count_documents({}) == 60 * 10 + 1
    assert 1 < len(collection.inserts) < 10, collection.inserts  # grouped, within max_docs
    assert max(collection.inserts) <= 300


async def test_group_inserter_with_an_interval_gathers_a_stream_of_small_callers(
    db: Database,
) -> None:
    """Callers a few ms apart, as a stream of small batches comes: with `interval`, writes
    start at most that often and each takes what arrived meanwhile; the first is at once."""
    collection = _Counting(db["grouped_stream"])
    inserter = GroupInserter(cast(Any, collection), interval=0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await inserter.insert([{"_id": "s-first"}])
    assert loop.time() - started < 0.09  # not held back after a quiet spell

    async def caller(n: int) -> None:
        await asyncio.sleep(n * 0.004)
        await inserter.insert([{"_id": f"s{n}"}])

    await asyncio.gather(*(caller(n) for n in range(60)))  # 0.24 s of callers
    assert await db["grouped_stream"].count_documents({}) == 61
    # 0.24 s at most one write each 0.1 s: 3 or 4 writes after the first, not 60.
    assert len(collection.inserts) <= 5, collection.inserts


async def test_group_inserter_fails_the_callers_of_a_failed_write_and_goes_on(
    db: Database,
) -> None:
    inserter = GroupInserter(db["grouped_fail"])
    with pytest.raises(PyMongoError):
        await inserter.insert([{"_id": "big", "blob": "x" * (17 * 1024 * 1024)}])
    await inserter.insert([{"_id": "small"}])
    assert await db["grouped_fail"].count_documents({}) == 1
