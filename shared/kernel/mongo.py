"""MongoDB wiring: the async client, declared indexes, cursor pagination and batched counters."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

import pymongo
import structlog
from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from shared.kernel import tracing
from shared.kernel.errors import BadRequest
from shared.kernel.ids import new_id, utcnow
from shared.kernel.settings import Settings
from shared.kernel.shutdown import WORK_SHARE

log = structlog.get_logger(__name__)

Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]

# Errors that mean "the database cannot be reached now", as opposed to a bad query.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)
# What creating an index refuses when one of the same keys exists with other options
# (IndexOptionsConflict, IndexKeySpecsConflict: which, depends on the server's version).
INDEX_CONFLICTS = frozenset({85, 86})
# Dropping an index that is not there: IndexNotFound, or NamespaceNotFound for a collection
# that is not there either.
NOT_THERE = frozenset({26, 27})


def connect(settings: Settings, appname: str) -> AsyncMongoClient[Document]:
    timeout_ms = int(settings.mongo_timeout_seconds * 1000)
    operation_ms = max(timeout_ms * 3, 10_000)
    return AsyncMongoClient(
        settings.mongo_uri,
        tz_aware=True,
        appname=appname,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=operation_ms,
        # Without it a request waiting for a pooled connection waits for ever: once seen
        # for 100 s after the database came back from an outage. With it, the wait ends in
        # a WaitQueueTimeoutError (a ConnectionFailure: 503, retry later).
        waitQueueTimeoutMS=operation_ms,
        # A pooled connection idle this long is closed: the pool grows for a burst (a
        # backlog after an outage) and shrinks back, instead of holding its peak for good.
        maxIdleTimeMS=60_000,
    )


@dataclass(frozen=True)
class Index:
    """An index a repository needs; created idempotently at service start. A `retired` one
    is no longer needed: dropped at service start where an older version made it (an index
    costs every insert its entry)."""

    collection: str
    keys: Sequence[tuple[str, int]]
    options: Mapping[str, Any] = field(default_factory=dict)
    retired: bool = False


async def ensure_indexes(db: Database, indexes: Sequence[Index]) -> None:
    """Create the indexes. A TTL index that exists with another expiry (its retention
    setting changed) is given the new one in place: creating it again would be refused. One
    whose other options changed (a TTL index no longer, removal moved to shared.domain.retention's
    batches; a partial filter added) is dropped and made again with the new ones. A retired
    one is dropped if it exists."""
    for index in indexes:
        if index.retired:
            try:
                await db[index.collection].drop_index(list(index.keys))
                log.info("index_dropped", collection=index.collection, keys=index.keys)
            except OperationFailure as exc:
                if exc.code not in NOT_THERE:
                    raise
            continue
        try:
            await db[index.collection].create_index(list(index.keys), **dict(index.options))
        except OperationFailure as exc:
            if exc.code not in INDEX_CONFLICTS:
                raise
            expiry = index.options.get("expireAfterSeconds")
            if expiry is None:
                await db[index.collection].drop_index(list(index.keys))
                await db[index.collection].create_index(list(index.keys), **dict(index.options))
                log.info("index_remade", collection=index.collection, keys=index.keys)
                continue
            await db.command(
                "collMod",
                index.collection,
                index={"keyPattern": dict(index.keys), "expireAfterSeconds": expiry},
            )
            log.info("ttl_index_changed", collection=index.collection, expire_after=expiry)


async def ping(db: Database) -> None:
    await db.command("ping")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded or encode_cursor(decoded) != cursor:
        raise BadRequest("cursor is not one this API handed out", code="invalid_cursor")
    return decoded


async def paginate(
    collection: Collection,
    query: Document,
    *,
    limit: int,
    cursor: str | None,
    projection: Document | None = None,
) -> tuple[list[Document], str | None]:
    """Newest first by `_id` (ids are time-ordered); returns the page and the next cursor.
    `limit + 1` documents are asked for: the one more says whether there is a next page.
    An `_id` range in `query` (a lower bound by time, `shared.kernel.ids.id_floor`) is kept."""
    if cursor:
        bounds = query.get("_id")
        below = {"$lt": decode_cursor(cursor)}
        query = {**query, "_id": {**bounds, **below} if isinstance(bounds, dict) else below}
    docs = await collection.find(query, projection).sort("_id", -1).limit(limit + 1).to_list()
    if len(docs) > limit:
        docs = docs[:limit]
        return docs, encode_cursor(str(docs[-1]["_id"]))
    return docs, None


D = TypeVar("D", bound=Document | None)


class Scope(Protocol):
    """What of a collection the current request may see: the narrowing `TombstoneCollection`
    asks for on every request-facing query. The kernel knows no owner of a document; the
    domain's workspaces are one (shared.domain.tenancy.WORKSPACES, through
    `shared.domain.tenancy.WorkspaceCollection`)."""

    def narrow(self, query: Document) -> Document:
        """`query` confined to what the current request may see."""
        ...

    def note(self, doc: D) -> D:
        """`doc` unchanged, noted as found by the current request."""
        ...

    def may_insert(self, doc: Document) -> None:
        """Raises when the current request may not create `doc`."""
        ...


class _Unscoped:
    def narrow(self, query: Document) -> Document:
        return query

    def note(self, doc: D) -> D:
        return doc

    def may_insert(self, doc: Document) -> None:
        return None


# Every document, whoever asks: for collections no request reads by owner.
UNSCOPED: Scope = _Unscoped()


class TombstoneCollection:
    """CRUD over a collection whose deletions are tombstones (`deleted_at` set, kept), so
    every replica's cache refresh (shared.kernel.cache) learns of them. Repositories extend it.

    What a request asks (`get`, `page`, `update`, `soft_delete`, `insert`) is confined by
    `scope` (the domain's repositories: the request's workspace, shared.domain.tenancy): a document
    out of it is not found, and one cannot be inserted there. The cache feeds (`find_any`,
    `changed_since`) are everyone's."""

    def __init__(self, db: Database, name: str, scope: Scope) -> None:
        self.collection: Collection = db[name]
        self.scope = scope

    async def insert(self, doc: Document) -> None:
        self.scope.may_insert(doc)
        await self.collection.insert_one(self.scope.note(doc))

    async def get(self, doc_id: str) -> Document | None:
        return self.scope.note(
            await self.collection.find_one(self.scope.narrow({"_id": doc_id, "deleted_at": None}))
        )

    async def find_any(self, doc_id: str) -> Document | None:
        """Including a tombstone (for caches, which must learn of deletions)."""
        return await self.collection.find_one({"_id": doc_id})

    async def page(
        self, *, limit: int, cursor: str | None, **filters: str | None
    ) -> tuple[list[Document], str | None]:
        query: Document = {"deleted_at": None}
        query.update({name: value for name, value in filters.items() if value})
        return await paginate(self.collection, self.scope.narrow(query), limit=limit, cursor=cursor)

    async def update(
        self, doc_id: str, fields: dict[str, Any], *, only_if: Document | None = None
    ) -> Document | None:
        return self.scope.note(
            await self.collection.find_one_and_update(
                self.scope.narrow({"_id": doc_id, "deleted_at": None, **(only_if or {})}),
                {"$set": {**fields, "updated_at": utcnow()}},
                return_document=ReturnDocument.AFTER,
            )
        )

    async def soft_delete(self, doc_id: str, **cleared: Any) -> Document | None:
        now = utcnow()
        return self.scope.note(
            await self.collection.find_one_and_update(
                self.scope.narrow({"_id": doc_id, "deleted_at": None}),
                {"$set": {**cleared, "deleted_at": now, "updated_at": now}},
                return_document=ReturnDocument.AFTER,
            )
        )

    async def changed_since(self, since: datetime | None) -> list[Document]:
        query: Document = {"updated_at": {"$gte": since}} if since else {"deleted_at": None}
        return await self.collection.find(query).to_list()


class GroupInserter:
    """`insert_new` for many concurrent callers, as a group commit: documents asked for
    while a write is in flight go into the next one, so a burst costs a few large bulk
    inserts instead of one round trip per caller, and a lone caller is written at once.
    `await insert(docs)` returns once they are stored (or existed already), or raises the
    write's error for every caller whose documents were in it.

    Writes start at most every `interval` seconds (as BatchedExistence's queries): under a
    steady stream of small callers a short wait makes one large insert of what would be many
    small ones, each of which costs the server and the client a command's overhead (the
    embedded server spends 0.46 ms a document in inserts of 5, 0.32 in inserts of 500). A
    caller after a quiet spell is written at once."""

    def __init__(
        self, collection: Collection, *, max_docs: int = 5_000, interval: float = 0.0
    ) -> None:
        self._collection = collection
        self._max_docs = max_docs
        self._interval = interval
        self._last_write = -interval
        self._waiting: list[tuple[list[Document], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def insert(self, docs: list[Document]) -> None:
        if not docs:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((docs, future))
        if self._task is None or self._task.done():
            with tracing.detached():  # it writes for every caller, not the first one's trace
                self._task = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            if (wait := self._last_write + self._interval - loop.time()) > 0:
                await asyncio.sleep(wait)
            self._last_write = loop.time()
            group: list[tuple[list[Document], asyncio.Future[None]]] = []
            size = 0
            while self._waiting and (
                not group or size + len(self._waiting[0][0]) <= self._max_docs
            ):
                docs, future = self._waiting.pop(0)
                group.append((docs, future))
                size += len(docs)
            try:
                await insert_new(self._collection, [doc for docs, _ in group for doc in docs])
            except Exception as exc:
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)


class BatchedExistence:
    """`await exists(value)` from many concurrent requests, answered by one `$in` query.

    Requests arriving while a query is in flight wait for the next one, so under load there
    is one MongoDB round trip per batch instead of per request, and none at all when idle.
    Queries start at most every `interval` seconds: a query costs the client a few hundred
    microseconds of CPU whatever its size, so under load a short wait for a larger batch
    is cheaper than a query per round trip. An idle caller is answered at once.
    `field` is `_id`, or an array field of bucket documents (`BatchedWriter.add_to_bucket`).
    """

    def __init__(
        self,
        collection: Collection,
        *,
        field: str = "_id",
        max_batch: int = 500,
        interval: float = 0.0,
    ) -> None:
        self._collection = collection
        self._field = field
        self._max_batch = max_batch
        self._interval = interval
        self._last_query = -interval
        self._waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def exists(self, value: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(value, []).append(future)
        if self._task is None or self._task.done():
            with tracing.detached():  # it writes for every caller, not the first one's trace
                self._task = asyncio.create_task(self._drain())
        return await future

    async def _found(self, values: list[str]) -> set[str]:
        query = self._collection.find({self._field: {"$in": values}}, {self._field: 1})
        if self._field == "_id":
            return {doc["_id"] async for doc in query}
        wanted, found = set(values), set()
        async for doc in query:
            found.update(wanted.intersection(doc.get(self._field) or ()))
        return found

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        # Let the requests of this loop iteration join the batch, and the next ones within
        # `interval` of the previous query.
        await asyncio.sleep(max(self._last_query + self._interval - loop.time(), 0))
        while self._waiting:
            wait = self._last_query + self._interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_query = loop.time()
            values = list(self._waiting)[: self._max_batch]
            batch = {value: self._waiting.pop(value) for value in values}
            try:
                found = await self._found(values)
            except Exception as exc:
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for value, futures in batch.items():
                for future in futures:
                    if not future.done():
                        future.set_result(value in found)


_MAX_BULK = 1000
# A stop's pieces (`BatchedWriter.stop(seconds)`): one cut off by the deadline leaves at
# most this many behind; on the embedded server 50 updates of a delivery take 50-100 ms.
_STOP_PIECE = 50
# A spread flush (`BatchedWriter(spread=True)`): its updates in pieces this large, paused
# between so that they take up to half the interval.
_SPREAD_PIECE = 50
DUPLICATE_KEY = 11000
# Bucket documents' `_id`s: `new_id(BUCKET_PREFIX)`, made when the bucket is written, so
# they sort by when it was written (`shared.kernel.ids.id_floor`).
BUCKET_PREFIX = "bkt"


def not_written(exc: BulkWriteError, count: int) -> set[int]:
    """After an unordered `insert_many` of `count` documents raised: the indexes of those
    not written. A duplicate key counts as written (the document exists already)."""
    if exc.details.get("writeConcernErrors"):
        return set(range(count))
    errors = exc.details.get("writeErrors", [])
    return {error["index"] for error in errors if error["code"] != DUPLICATE_KEY}


def already_there(exc: BulkWriteError) -> set[int]:
    """After an unordered `insert_many` raised: the indexes whose `_id` existed already."""
    errors = exc.details.get("writeErrors", [])
    return {error["index"] for error in errors if error["code"] == DUPLICATE_KEY}


async def insert_new(collection: Collection, docs: list[Document]) -> list[Document]:
    """Insert the documents whose `_id` does not exist yet; return those. Plain unordered
    inserts: a duplicate key means "exists already" (an upsert costs more)."""
    if not docs:
        return []
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if not_written(exc, len(docs)):
            raise
        existing = already_there(exc)
        return [doc for index, doc in enumerate(docs) if index not in existing]
    return docs


class BatchedWriter:
    """Writes kept off the request path and flushed in one bulk write per collection.

    - `bump(collection, id, counter, by=..., set_max=..., create=...)`: increment a counter
      (and raise fields such as `last_event_at`) on an existing document; with `create`, on
      the document made with those fields if there is none yet (an upsert: for counters
      whose document is made by the first count, such as shared.domain.usage's day buckets).
    - `insert_once(collection, id, fields)`: create a document unless it exists. Fields
      `set_fields` gives the same document before the flush are folded into the insert.
    - `set_fields(collection, id, fields)`: `$set` on an existing document; for one field,
      the last value set before a flush wins.
    - `add_to_bucket(collection, field, value, expires_at)`: record a value (a seen id) in
      a bucket document holding up to a thousand of them in the array `field`; look them
      up with `BatchedExistence(field=...)` and expire them with a TTL index on
      `expires_at`. A thousand records cost one insert.

    Inserts are plain inserts (a duplicate key means "already there"), never upserts, and
    creating a document whole is preferred to creating and then updating it: on the
    embedded MongoDB server an upsert costs three inserts and an update four
    (docs/benchmarks.md), and real servers also do less work.

    Each call costs a dict update; a background task writes every `interval` seconds.
    What could not be written while MongoDB was down is kept and retried, so a blip loses
    none of it. `stop(seconds)` writes what is pending within a step of the bounded stop
    (shared.kernel.shutdown) and says how much it left unwritten.

    `spread`: the interval's flush spreads its updates over up to half the interval, in
    pieces of `_SPREAD_PIECE` with pauses between, rather than writing them in one burst:
    for counts of many documents kept every few seconds (sync's subscription counts: an
    update each of a thousand subscriptions every 10 s), whose burst took a core of the
    embedded MongoDB server for most of a second and slowed every service sharing its
    machine meanwhile. A flush asked for (`flush`, `hurry`, `stop`, `written`) is not
    spread, and one under way stops pausing.

    `first`: collections whose inserts a flush writes before any other's, so that a reader
    never finds a document without the ones it refers to (a delivery's outcome without its
    attempt's log entry).
    """

    def __init__(
        self,
        db: Database,
        *,
        interval: float = 1.0,
        spread: bool = False,
        first: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._first = {name: rank for rank, name in enumerate(first)}
        self._interval = interval
        self._spread = spread
        # Clear while a spread flush may pause; a flush asked for sets it (`_unpace`), which
        # ends the pauses.
        self._unpaced = asyncio.Event()
        self._unpaced.set()
        self._clock = clock  # for the stop's deadline; pymongo's own deadlines use monotonic
        self._incs: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._maxes: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
        self._inserts: dict[tuple[str, str], Document] = {}
        self._sets: dict[tuple[str, str], Document] = defaultdict(dict)
        self._creates: dict[tuple[str, str], Document] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a flush called while another writes waits for it, so that
        # what was handed over before the call is written (or kept) when it returns.
        self._flushing = asyncio.Lock()
        self._stopped = False
        self._hurried = asyncio.Event()  # flush now, not at the end of the interval
        self._waiters: list[asyncio.Future[None]] = []
        self._next: asyncio.Future[None] | None = None  # `next_flush`'s, until a flush takes it
        self._kept = False
        self._deadline: float | None = None  # set by a bounded stop, on `clock`
        # Of the batch the flush under way took: how many documents (and bucket values) are
        # neither written nor kept yet. A bounded stop that leaves that flush to end on its
        # own counts them as left unwritten.
        self._in_flight = 0
        self._inserting: dict[tuple[str, str], Document] = {}  # the flush under way's

    def bump(
        self,
        collection: str,
        doc_id: str,
        counter: str,
        *,
        by: int = 1,
        set_max: Document | None = None,
        create: Document | None = None,
    ) -> None:
        self._incs[(collection, doc_id)][counter] += by
        if set_max:
            self._maxes[(collection, doc_id)].update(set_max)
        if create is not None:
            self._creates[(collection, doc_id)] = create

    def insert_once(self, collection: str, doc_id: str, fields: Document) -> None:
        self._inserts[(collection, doc_id)] = fields

    def set_fields(self, collection: str, doc_id: str, fields: Document) -> None:
        pending = self._inserts.get((collection, doc_id))
        if pending is not None:
            pending.update(fields)
        else:
            self._sets[(collection, doc_id)].update(fields)

    def inserting(self, collection: str, doc_id: str) -> bool:
        """Whether an `insert_once` of this document is handed over and not yet written: a
        read of MongoDB does not find it yet."""
        key = (collection, doc_id)
        return key in self._inserts or key in self._inserting

    def add_to_bucket(self, collection: str, field: str, value: str, expires_at: datetime) -> None:
        bucket = self._buckets.get((collection, field))
        if bucket is None:
            bucket = self._buckets[(collection, field)] = _Bucket(expires_at)
        bucket.values.append(value)
        bucket.expires_at = max(bucket.expires_at, expires_at)

    def start(self) -> None:
        with tracing.detached():
            self._task = asyncio.create_task(self._run(), name="batched-writer")

    def hurry(self) -> None:
        """Flush as soon as the flush under way (if any) ends, not at the interval's end:
        for a caller whose work waits on what it handed over (`written()`)."""
        self._unpace()
        self._hurried.set()

    async def written(self) -> None:
        """Return once everything handed to the writer before the call is in MongoDB (at
        the end of the next flush that wrote all it took; after a failed one, the flush
        after that). For callers that must not go on before their record is durable."""
        future = self.next_flush()
        self._unpace()
        await asyncio.shield(future)  # shared: one caller's cancellation is its own

    async def written_within(self, seconds: float) -> bool:
        """`written`, waiting `seconds` at most: whether it was (a handover at a rebalance
        waits this way, so that a MongoDB outage does not hold the group for long)."""
        try:
            await asyncio.wait_for(self.written(), seconds)
        except TimeoutError:
            return False
        return True

    def next_flush(self) -> asyncio.Future[None]:
        """Done once everything handed to the writer so far is in MongoDB (as `written`),
        without asking for a flush or waiting: one future shared by every caller until a
        flush takes it, so a caller may ask for it per document it hands over (and count
        them on it). Never cancel it."""
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self._waiters.append(self._next)
        return self._next

    async def stop(self, seconds: float | None = None) -> int:
        """Write what is pending; returns how many documents (and bucket values) it left
        unwritten. A flush under way is let finish, not cancelled: it holds the batch it
        took, which a cancellation lost (a stopping delivery service's last status updates,
        seen as deliveries left `active`).

        Given `seconds` (a step of the bounded stop, shared.kernel.shutdown), it writes within
        most of them, so a slow MongoDB cannot make the step overrun: every write from then
        on is a piece of at most `_STOP_PIECE` documents under pymongo's own deadline, and
        once the time is gone no piece starts. What was not written is kept, as after a
        failed write, and counted; a flush still under way at the deadline is left to end
        on its own (its batch counts as unwritten: whether it lands is not known). Nothing
        its callers left that way is lost: a delivery whose outcome is unwritten stays
        open and is handed over, so it is sent again; sync hands its jobs over as a stopped
        worker's when the count is not 0, so their takers look for the post first."""
        self._deadline = None if seconds is None else self._clock() + seconds * WORK_SHARE
        self._unpace()
        task = self._task
        if task:
            self._stopped = True
            self._hurried.set()
            done, _ = await asyncio.wait({task}, timeout=self._time_left())
            if not done:
                return self._left_unwritten(self._in_flight)
            self._task = None
        await self.flush()
        return self._left_unwritten(0)

    def _left_unwritten(self, in_flight: int) -> int:
        kept: dict[str, int] = defaultdict(int)
        for name, _ in set(self._incs) | set(self._maxes) | set(self._inserts) | set(self._sets):
            kept[name] += 1
        for (name, _), bucket in self._buckets.items():
            kept[name] += len(bucket.values)
        left = sum(kept.values()) + in_flight
        if left:
            log.warning("batched_writes_left", kept=dict(kept), in_flight=in_flight)
        return left

    def _time_left(self) -> float | None:
        """Seconds until a bounded stop's deadline; None when there is none."""
        return None if self._deadline is None else max(0.0, self._deadline - self._clock())

    def _piece(self) -> int:
        """How many documents the next write may hold: 0 once a bounded stop's time is gone."""
        left = self._time_left()
        if left is None:
            return _SPREAD_PIECE if self._pacing else _MAX_BULK
        return _STOP_PIECE if left > 0 else 0

    def _bounded(self) -> contextlib.AbstractContextManager[object]:
        """A bounded stop's piece ends by the deadline (pymongo's own, not a cancellation:
        cancelled, a write's outcome is unknown and its batch was lost)."""
        left = self._time_left()
        return contextlib.nullcontext() if left is None else pymongo.timeout(max(left, 1e-3))

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurried.wait(), self._interval)
            if self._stopped:
                return
            spread = self._spread and not self._hurried.is_set()
            self._hurried.clear()
            await self.flush(spread=spread)

    async def flush(self, *, spread: bool = False) -> None:
        """Write what is pending now; `spread`: as the interval's flush of a spread writer
        (see the class)."""
        self._unpace()
        async with self._flushing:
            if spread:
                self._unpaced.clear()
            try:
                await self._flush_once()
            finally:
                self._unpaced.set()

    def _unpace(self) -> None:
        self._unpaced.set()

    @property
    def _pacing(self) -> bool:
        return not self._unpaced.is_set()

    async def _pause(self, seconds: float) -> None:
        """Between a spread flush's pieces; ends early once a flush is asked for."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._unpaced.wait(), seconds)

    async def _flush_once(self) -> None:
        waiters, self._waiters = self._waiters, []
        self._next = None  # what is handed over from now on waits for the flush after
        self._kept = False
        try:
            await self._flush()
        except BaseException:
            self._waiters = waiters + self._waiters
            raise
        if self._kept:  # not all of it was written: they wait for the next flush
            self._waiters = waiters + self._waiters
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _flush(self) -> None:
        incs, maxes, inserts, sets = self._incs, self._maxes, self._inserts, self._sets
        buckets, creates = self._buckets, self._creates
        if not incs and not maxes and not inserts and not sets and not buckets:
            return
        if not self._piece():  # a bounded stop's time is gone: all of it stays pending
            self._kept = True
            return
        self._incs, self._maxes = defaultdict(lambda: defaultdict(int)), defaultdict(dict)
        self._inserts, self._sets, self._buckets = {}, defaultdict(dict), {}
        self._creates = {}
        self._inserting = inserts
        updated = set(incs) | set(maxes) | set(sets)
        self._in_flight = len(updated | set(inserts))
        self._in_flight += sum(len(bucket.values) for bucket in buckets.values())
        try:
            await self._write_buckets(buckets)
            # Inserts first: a document created and updated in one window must exist to be
            # set.
            failed = await self._write_inserts(inserts)
            self._in_flight -= len(set(inserts) - failed - updated)
            if failed:
                # Their updates wait with them: the documents may not exist yet.
                self._keep(failed, incs, maxes, inserts, sets, creates)
            updates: dict[str, list[tuple[tuple[str, str], UpdateOne]]] = defaultdict(list)
            for key in updated - failed:
                update: Document = {}
                if key in incs:
                    update["$inc"] = dict(incs[key])
                if key in maxes:
                    update["$max"] = maxes[key]
                if key in sets:
                    update["$set"] = sets[key]
                if key in creates:
                    update["$setOnInsert"] = creates[key]
                one = UpdateOne({"_id": key[1]}, update, upsert=key in creates)
                updates[key[0]].append((key, one))
            pieces = sum(len(batch) // _SPREAD_PIECE + 1 for batch in updates.values())
            pause = self._interval / 2 / max(1, pieces)
            for name, batch in updates.items():
                # Bounded requests: one huge backlog write could outlast the socket timeout
                # and be retried whole, forever. What a failed piece and those after it
                # held is kept, and so is what a bounded stop had no time left for.
                start = 0
                while start < len(batch) and (chunk := batch[start : start + self._piece()]):
                    if start and self._pacing:
                        await self._pause(pause)
                    try:
                        with self._bounded():
                            await self._db[name].bulk_write([op for _, op in chunk], ordered=True)
                    except PyMongoError as exc:
                        log.warning("batched_write_failed", collection=name, error=str(exc))
                        break
                    start += len(chunk)
                    self._in_flight -= len(chunk)
                unwritten = {key for key, _ in batch[start:]}
                if unwritten:
                    self._keep(unwritten, incs, maxes, inserts, sets, creates)
        finally:
            self._in_flight = 0
            self._inserting = {}

    async def _write_inserts(
        self, inserts: dict[tuple[str, str], Document]
    ) -> set[tuple[str, str]]:
        """Insert every document (one that exists already counts as written); the keys of
        those that could not be written, or that a bounded stop had no time left for."""
        per_collection: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key in inserts:
            per_collection[key[0]].append(key)
        failed: set[tuple[str, str]] = set()
        # `first`'s collections before the others (sorted is stable: the rest as handed over).
        last = len(self._first)
        ordered = sorted(per_collection.items(), key=lambda item: self._first.get(item[0], last))
        for name, keys in ordered:
            start = 0
            while start < len(keys) and (chunk := keys[start : start + self._piece()]):
                start += len(chunk)
                docs = [{**inserts[key], "_id": key[1]} for key in chunk]
                try:
                    with self._bounded():
                        await self._db[name].insert_many(docs, ordered=False)
                except BulkWriteError as exc:
                    failed.update(chunk[index] for index in not_written(exc, len(chunk)))
                except PyMongoError as exc:
                    log.warning("batched_write_failed", collection=name, error=str(exc))
                    failed.update(chunk)
            failed.update(keys[start:])  # a bounded stop had no time left for them
        return failed

    async def _write_buckets(self, buckets: dict[tuple[str, str], _Bucket]) -> None:
        for (name, field_name), bucket in buckets.items():
            start = 0
            # A bucket document holds up to `_MAX_BULK` values whatever the stop: one insert.
            while start < len(bucket.values) and self._piece():
                values = bucket.values[start : start + _MAX_BULK]
                doc = {
                    "_id": new_id(BUCKET_PREFIX),
                    field_name: values,
                    "expires_at": bucket.expires_at,
                }
                try:
                    with self._bounded():
                        await self._db[name].insert_one(doc)
                except PyMongoError as exc:
                    log.warning("batched_write_failed", collection=name, error=str(exc))
                    break
                start += len(values)
                self._in_flight -= len(values)
            if start < len(bucket.values):
                self._kept = True
                self._in_flight -= len(bucket.values) - start
                for value in bucket.values[start:]:
                    self.add_to_bucket(name, field_name, value, bucket.expires_at)

    def _keep(
        self,
        keys: set[tuple[str, str]],
        incs: dict[tuple[str, str], dict[str, int]],
        maxes: dict[tuple[str, str], dict[str, Any]],
        inserts: dict[tuple[str, str], Document],
        sets: dict[tuple[str, str], Document],
        creates: dict[tuple[str, str], Document],
    ) -> None:
        """Put the unwritten changes back for the next flush."""
        self._kept = True
        self._in_flight -= len(keys)
        for key in keys:
            for counter, n in incs.get(key, {}).items():
                self._incs[key][counter] += n
            if key in maxes:
                self._maxes[key] = {**maxes[key], **self._maxes[key]}
            if key in inserts:
                self._inserts.setdefault(key, inserts[key])
            if key in sets:
                self._sets[key] = {**sets[key], **self._sets[key]}
            if key in creates:
                self._creates.setdefault(key, creates[key])


@dataclass
class _Bucket:
    expires_at: datetime
    values: list[str] = field(default_factory=list)
