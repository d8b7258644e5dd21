"""The `incoming_webhooks` collection: every query on it lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from shared.ids import utcnow
from shared.mongo import Collection, Database, Document, Index, paginate

COLLECTION = "incoming_webhooks"

INDEXES = [
    Index(COLLECTION, [("token_hash", 1)], {"unique": True}),
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]

_LIVE = {"deleted_at": None}


class IncomingWebhookRepository:
    def __init__(self, db: Database) -> None:
        self._hooks: Collection = db[COLLECTION]

    async def insert(self, doc: Document) -> None:
        await self._hooks.insert_one(doc)

    async def get(self, hook_id: str) -> Document | None:
        return await self._hooks.find_one({"_id": hook_id, **_LIVE})

    async def page(
        self, *, workspace_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        query: Document = dict(_LIVE)
        if workspace_id:
            query["workspace_id"] = workspace_id
        return await paginate(self._hooks, query, limit=limit, cursor=cursor)

    async def update(self, hook_id: str, fields: dict[str, Any]) -> Document | None:
        return await self._hooks.find_one_and_update(
            {"_id": hook_id, **_LIVE},
            {"$set": {**fields, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def soft_delete(self, hook_id: str) -> bool:
        # Kept as a tombstone so every gateway replica's cache refresh sees the revocation.
        now = utcnow()
        result = await self._hooks.update_one(
            {"_id": hook_id, **_LIVE}, {"$set": {"deleted_at": now, "updated_at": now}}
        )
        return result.modified_count == 1

    async def find_by_token_hash(self, token_hash: str) -> Document | None:
        return await self._hooks.find_one({"token_hash": token_hash})

    async def changed_since(self, since: datetime | None) -> list[Document]:
        query: Document = {"updated_at": {"$gte": since}} if since else dict(_LIVE)
        return await self._hooks.find(query).to_list()
