"""The `integrations` collection: every query on it lives here."""

from __future__ import annotations

from shared.ids import utcnow
from shared.mongo import Database, Index, TombstoneCollection

COLLECTION = "integrations"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("provider", 1), ("account.id", 1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]


class IntegrationRepository(TombstoneCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def clear_default(self, provider: str, workspace_id: str, keep: str) -> None:
        await self.collection.update_many(
            {
                "provider": provider,
                "workspace_id": workspace_id,
                "is_default": True,
                "_id": {"$ne": keep},
                "deleted_at": None,
            },
            {"$set": {"is_default": False, "updated_at": utcnow()}},
        )
