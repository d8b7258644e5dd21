"""MongoDB wiring: the async client, declared indexes, cursor pagination and batched counters."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from shared.errors import BadRequest
from shared.settings import Settings

log = structlog.get_logger(__name__)

Document = dict[str, Any]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]

# Errors that mean "the database cannot be reached now", as opposed to a bad query.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)


def connect(settings: Settings, appname: str) -> AsyncMongoClient[Document]:
    timeout_ms = int(settings.mongo_timeout_seconds * 1000)
    return AsyncMongoClient(
        settings.mongo_uri,
        tz_aware=True,
        appname=appname,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 3, 10_000),
    )


@dataclass(frozen=True)
class Index:
    """An index a repository needs; created idempotently at service start."""

    collection: str
    keys: Sequence[tuple[str, int]]
    options: Mapping[str, Any] = field(default_factory=dict)


async def ensure_indexes(db: Database, indexes: Sequence[Index]) -> None:
    for index in indexes:
        await db[index.collection].create_index(list(index.keys), **dict(index.options))


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
) -> tuple[list[Document], str | None]:
    """Newest first by `_id` (ids are time-ordered); returns the page and the next cursor."""
    if cursor:
        query = {**query, "_id": {"$lt": decode_cursor(cursor)}}
    docs = await collection.find(query).sort("_id", -1).limit(limit + 1).to_list()
    if len(docs) > limit:
        docs = docs[:limit]
        return docs, encode_cursor(str(docs[-1]["_id"]))
    return docs, None


class BatchedCounters:
    """Counters and last-seen times kept off the request path and flushed in one bulk write.

    `bump("incoming_webhooks", hook_id, "message_count", at=now)` costs a dict update; a
    background task writes every `interval` seconds. Counts not yet written when MongoDB is
    down are kept and retried, so a blip loses none.
    """

    def __init__(self, db: Database, *, interval: float = 1.0) -> None:
        self._db = db
        self._interval = interval
        self._incs: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._sets: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
        self._task: asyncio.Task[None] | None = None

    def bump(
        self, collection: str, doc_id: str, counter: str, *, set_max: Document | None = None
    ) -> None:
        self._incs[(collection, doc_id)][counter] += 1
        if set_max:
            self._sets[(collection, doc_id)].update(set_max)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="batched-counters")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        incs, sets = self._incs, self._sets
        if not incs and not sets:
            return
        self._incs, self._sets = defaultdict(lambda: defaultdict(int)), defaultdict(dict)
        by_collection: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key in set(incs) | set(sets):
            by_collection[key[0]].append(key)
        for name, keys in by_collection.items():
            ops = [
                UpdateOne(
                    {"_id": key[1]},
                    {
                        **({"$inc": dict(incs[key])} if key in incs else {}),
                        **({"$max": sets[key]} if key in sets else {}),
                    },
                )
                for key in keys
            ]
            try:
                await self._db[name].bulk_write(ops, ordered=False)
            except PyMongoError as exc:
                log.warning("counters_flush_failed", collection=name, error=str(exc))
                for key in keys:  # keep them for the next flush
                    for counter, n in incs.get(key, {}).items():
                        self._incs[key][counter] += n
                    if key in sets:
                        self._sets[key] = {**sets[key], **self._sets[key]}
