"""The `seen_deliveries` collection: envelope ids published recently, for every replica.

Ids are recorded a thousand to a bucket document (`ids`, multikey-indexed), which expires
as a whole when the newest id in it leaves the dedupe window.
"""

from __future__ import annotations

from datetime import datetime

from shared.mongo import BatchedExistence, BatchedWriter, Database, Index

COLLECTION = "seen_deliveries"

INDEXES = [
    Index(COLLECTION, [("expires_at", 1)], {"expireAfterSeconds": 0}),
    Index(COLLECTION, [("ids", 1)]),
]


class SeenDeliveries:
    """Concurrent requests' lookups share one query; records are written in batches."""

    def __init__(self, db: Database, writer: BatchedWriter) -> None:
        # At most 200 lookups a second: they wait up to 5 ms for company under load.
        self._lookups = BatchedExistence(db[COLLECTION], field="ids", interval=0.005)
        self._writer = writer

    async def contains(self, envelope_id: str) -> bool:
        return await self._lookups.exists(envelope_id)

    def record(self, envelope_id: str, expires_at: datetime) -> None:
        self._writer.add_to_bucket(COLLECTION, "ids", envelope_id, expires_at)
