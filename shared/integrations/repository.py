"""The `integrations` collection: every query on it lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from shared.ids import utcnow
from shared.mongo import Collection, Database, Document, Index, paginate

COLLECTION = "integrations"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("provider", 1), ("account.id", 1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]

_LIVE = {"deleted_at": None}


class IntegrationRepository:
    def __init__(self, db: Database) -> None:
        self._integrations: Collection = db[COLLECTION]

    async def insert(self, doc: Document) -> None:
        await self._integrations.insert_one(doc)

    async def get(self, integration_id: str) -> Document | None:
        return await self._integrations.find_one({"_id": integration_id, **_LIVE})

    async def page(
        self,
        *,
        workspace_id: str | None,
        provider: str | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Document], str | None]:
        query: Document = dict(_LIVE)
        if workspace_id:
            query["workspace_id"] = workspace_id
        if provider:
            query["provider"] = provider
        return await paginate(self._integrations, query, limit=limit, cursor=cursor)

    async def update(self, integration_id: str, fields: dict[str, Any]) -> Document | None:
        return await self._integrations.find_one_and_update(
            {"_id": integration_id, **_LIVE},
            {"$set": {**fields, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def clear_default(self, provider: str, workspace_id: str, keep: str) -> None:
        await self._integrations.update_many(
            {
                "provider": provider,
                "workspace_id": workspace_id,
                "is_default": True,
                "_id": {"$ne": keep},
                **_LIVE,
            },
            {"$set": {"is_default": False, "updated_at": utcnow()}},
        )

    async def soft_delete(self, integration_id: str) -> Document | None:
        # Kept as a tombstone so every gateway replica's cache refresh sees it go.
        now = utcnow()
        return await self._integrations.find_one_and_update(
            {"_id": integration_id, **_LIVE},
            {"$set": {"deleted_at": now, "updated_at": now, "secrets": {}}},
            return_document=ReturnDocument.AFTER,
        )

    async def find_any(self, integration_id: str) -> Document | None:
        """Including deleted ones (for caches, which must learn of deletions)."""
        return await self._integrations.find_one({"_id": integration_id})

    async def changed_since(self, since: datetime | None) -> list[Document]:
        query: Document = {"updated_at": {"$gte": since}} if since else dict(_LIVE)
        return await self._integrations.find(query).to_list()
