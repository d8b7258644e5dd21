"""The `endpoints` collection: every query on it lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from shared.ids import utcnow
from shared.mongo import Collection, Database, Document, Index, paginate

COLLECTION = "endpoints"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]

_LIVE = {"deleted_at": None}


class EndpointRepository:
    def __init__(self, db: Database) -> None:
        self._endpoints: Collection = db[COLLECTION]

    async def insert(self, doc: Document) -> None:
        await self._endpoints.insert_one(doc)

    async def get(self, endpoint_id: str) -> Document | None:
        return await self._endpoints.find_one({"_id": endpoint_id, **_LIVE})

    async def find_any(self, endpoint_id: str) -> Document | None:
        return await self._endpoints.find_one({"_id": endpoint_id})

    async def page(
        self, *, workspace_id: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        query: Document = dict(_LIVE)
        if workspace_id:
            query["workspace_id"] = workspace_id
        return await paginate(self._endpoints, query, limit=limit, cursor=cursor)

    async def update(
        self, endpoint_id: str, fields: dict[str, Any], *, only_if: Document | None = None
    ) -> Document | None:
        return await self._endpoints.find_one_and_update(
            {"_id": endpoint_id, **_LIVE, **(only_if or {})},
            {"$set": {**fields, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def soft_delete(self, endpoint_id: str) -> bool:
        now = utcnow()
        result = await self._endpoints.update_one(
            {"_id": endpoint_id, **_LIVE}, {"$set": {"deleted_at": now, "updated_at": now}}
        )
        return result.modified_count == 1

    async def changed_since(self, since: datetime | None) -> list[Document]:
        query: Document = {"updated_at": {"$gte": since}} if since else dict(_LIVE)
        return await self._endpoints.find(query).to_list()
