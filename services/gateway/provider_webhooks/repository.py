"""The `seen_deliveries` collection: envelope ids published recently, for every replica.

Ids are recorded a thousand to a bucket document (`ids`, multikey-indexed), which expires
as a whole when the newest id in it leaves the dedupe window. Bucket `_id`s sort by when
the bucket was written, which is how replicas read each other's new buckets
(`window.SeenWindow`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from shared.kernel.mongo import BatchedExistence, BatchedWriter, Database, Document, Index

COLLECTION = "seen_deliveries"

INDEXES = [
    # Buckets are removed in batches once expired (the gateway's retention sweep).
    Index(COLLECTION, [("expires_at", 1)]),
    Index(COLLECTION, [("ids", 1)]),
]


class SeenDeliveries:
    """Concurrent requests' lookups share one query; records are written in batches."""

    def __init__(self, db: Database, writer: BatchedWriter) -> None:
        self._collection = db[COLLECTION]
        # At most 200 lookups a second: they wait up to 5 ms for company under load.
        self._lookups = BatchedExistence(self._collection, field="ids", interval=0.005)
        self._writer = writer

    async def contains(self, envelope_id: str) -> bool:
        return await self._lookups.exists(envelope_id)

    def record(self, envelope_id: str, expires_at: datetime) -> None:
        self._writer.add_to_bucket(COLLECTION, "ids", envelope_id, expires_at)

    async def buckets_after(self, floor: str, known: Collection[str], limit: int) -> list[Document]:
        """Bucket documents whose `_id` is above `floor`, but not those in `known`, in
        `_id` order: `{_id, ids, expires_at}`."""
        condition: Document = {"$gt": floor}
        if known:
            condition["$nin"] = list(known)
        cursor = self._collection.find({"_id": condition}, {"ids": 1, "expires_at": 1})
        return await cursor.sort("_id", 1).limit(limit).to_list()
