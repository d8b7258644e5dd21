"""`RefreshingCache` over a real collection: what a write through this replica leaves."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest

from shared.kernel import cache as cache_module
from shared.kernel.cache import Kept, RefreshingCache
from shared.kernel.ids import utcnow
from shared.kernel.mongo import UNSCOPED, Database, Document, TombstoneCollection
from tests.support import FakeClock, until


def _cache(
    repository: TombstoneCollection,
    gate: asyncio.Event | None = None,
    read: list[int] | None = None,
) -> RefreshingCache[str, str]:
    """`read`: how many documents each refresh's query returned, appended."""

    async def changed_since(since: datetime | None) -> list[Document]:
        docs = await repository.changed_since(since)  # read now...
        if read is not None:
            read.append(len(docs))
        if gate is not None:
            await gate.wait()  # ...answered later, as a slow query is
        return docs

    return RefreshingCache(
        changed_since=changed_since,
        find=repository.find_any,
        key=lambda doc: str(doc["_id"]),
        snapshot=lambda doc: str(doc["secret"]),
        refresh_seconds=60,
        name="test",
    )


async def test_a_refresh_that_read_before_a_write_here_does_not_undo_it(db: Database) -> None:
    repository = TombstoneCollection(db, "things", UNSCOPED)
    now = utcnow()
    await repository.insert(
        {"_id": "t1", "secret": "old", "created_at": now, "updated_at": now, "deleted_at": None}
    )
    gate, read = asyncio.Event(), list[int]()
    cache = _cache(repository, gate, read)
    gate.set()
    await cache.refresh()
    assert cache.get("t1") == "old"

    gate.clear()
    refreshing = asyncio.create_task(cache.refresh())
    await until(lambda: len(read) == 2)  # its query has read "old" and waits to be answered
    rotated = await repository.update("t1", {"secret": "new"})  # a rotation through this replica
    assert rotated is not None
    cache.apply(rotated)
    gate.set()
    await refreshing
    assert cache.get("t1") == "new"  # not "old" again until the next refresh
    await cache.refresh()  # which reads it again, now as it is
    assert cache.get("t1") == "new"

    # Changes made elsewhere still arrive by refresh.
    await repository.update("t1", {"secret": "newer"})
    await cache.refresh()
    assert cache.get("t1") == "newer"


async def test_reread_asks_mongodb_at_most_once_a_second_per_key(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache's clock is the test's: "too soon" holds however slow the round trips are.
    clock = FakeClock()
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=clock))
    repository = TombstoneCollection(db, "things", UNSCOPED)
    now = utcnow()
    await repository.insert(
        {"_id": "t2", "secret": "one", "created_at": now, "updated_at": now, "deleted_at": None}
    )
    cache = _cache(repository)
    await cache.refresh()
    await repository.update("t2", {"secret": "two"})  # elsewhere: this cache has not seen it
    assert cache.get("t2") == "one"
    assert await cache.reread("t2", at_most_every=0.5) == "two"
    assert cache.get("t2") == "two"
    await repository.update("t2", {"secret": "three"})
    assert await cache.reread("t2", at_most_every=0.5) is None  # too soon
    assert cache.get("t2") == "two"
    await clock.sleep(0.6)
    assert await cache.reread("t2", at_most_every=0.5) == "three"
    assert await cache.reread("missing", at_most_every=0.5) is None


async def test_documents_changed_together_long_ago_are_not_read_at_every_refresh(
    db: Database,
) -> None:
    """A burst of documents written within seconds of each other (a thousand mappings
    created at once) is read once, not again at every refresh because they all lie within
    the overlap of the newest of them."""
    repository = TombstoneCollection(db, "burst", UNSCOPED)
    long_ago = utcnow() - timedelta(hours=1)
    await repository.collection.insert_many(
        [
            {
                "_id": f"b{i}",
                "secret": str(i),
                "created_at": long_ago,
                "updated_at": long_ago + timedelta(milliseconds=i),
                "deleted_at": None,
            }
            for i in range(50)
        ]
    )
    read: list[int] = []
    cache = _cache(repository, read=read)
    await cache.refresh()
    version = cache.version
    await cache.refresh()
    await cache.refresh()
    assert read == [50, 0, 0]
    assert cache.version == version  # nothing applied again: views built on it stay

    # A replica whose clock runs 3 s behind ours writes after our last refresh: its
    # `updated_at` is older than that refresh, and still read.
    behind = utcnow() - timedelta(seconds=3)
    await repository.collection.update_one(
        {"_id": "b7"}, {"$set": {"secret": "changed", "updated_at": behind}}
    )
    await cache.refresh()
    assert cache.get("b7") == "changed"


def test_kept_answers_are_fresh_for_their_own_while_and_the_oldest_go_first() -> None:
    now = [100.0]
    kept: Kept[str, int | None] = Kept(2, clock=lambda: now[0])
    kept.put("a", 1, 10.0)
    kept.put("none", None, 1.0)  # a kept None is an answer too
    assert kept.fresh("a") == (1,) and kept.fresh("none") == (None,)
    now[0] = 102.0
    assert kept.fresh("none") is None and kept.entry("none") == (None, False)
    assert kept.entry("a") == (1, True)
    kept.put("b", 2, 10.0)  # a third: the oldest put is forgotten
    assert kept.entry("a") is None and kept.fresh("b") == (2,)
    kept.clear()
    assert kept.entry("b") is None
