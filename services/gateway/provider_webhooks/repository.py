"""The `seen_deliveries` collection: envelope ids published recently, for every replica."""

from __future__ import annotations

from shared.mongo import BatchedExistence, Database, Index

COLLECTION = "seen_deliveries"

INDEXES = [Index(COLLECTION, [("expires_at", 1)], {"expireAfterSeconds": 0})]


class SeenDeliveries:
    """Concurrent requests' lookups share one query (written in batches by BatchedWriter)."""

    def __init__(self, db: Database) -> None:
        self._lookups = BatchedExistence(db[COLLECTION])

    async def contains(self, envelope_id: str) -> bool:
        return await self._lookups.exists(envelope_id)
