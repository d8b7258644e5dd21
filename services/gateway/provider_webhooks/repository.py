"""The `seen_deliveries` collection: envelope ids published recently, for every replica."""

from __future__ import annotations

from shared.mongo import Collection, Database, Index

COLLECTION = "seen_deliveries"

INDEXES = [Index(COLLECTION, [("expires_at", 1)], {"expireAfterSeconds": 0})]


class SeenDeliveries:
    def __init__(self, db: Database) -> None:
        self._seen: Collection = db[COLLECTION]

    async def contains(self, envelope_id: str) -> bool:
        return await self._seen.find_one({"_id": envelope_id}, {"_id": 1}) is not None
