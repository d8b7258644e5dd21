"""BatchedWriter and BatchedExistence against the real MongoDB-protocol server."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from shared.ids import new_id, utcnow
from shared.mongo import BatchedExistence, BatchedWriter, Database, GroupInserter
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
