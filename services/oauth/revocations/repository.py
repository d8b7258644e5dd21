"""The `pending_revocations` collection: tokens still to revoke at a provider (sealed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from shared.kernel.mongo import Collection, Database, Document, Index

COLLECTION = "pending_revocations"

INDEXES = [Index(COLLECTION, [("status", 1), ("next_attempt_at", 1)])]


class RevocationRepository:
    def __init__(self, db: Database) -> None:
        self._revocations: Collection = db[COLLECTION]

    async def insert(self, doc: Document) -> None:
        await self._revocations.insert_one(doc)

    async def claim_due(self, now: datetime, hold: timedelta, limit: int) -> list[Document]:
        """Due revocations, each pushed `hold` into the future as it is taken, so another
        replica's loop does not take it too (and takes it back if this process dies)."""
        due = {"status": "pending", "next_attempt_at": {"$lte": now}}
        candidates = await self._revocations.find(due, {"_id": 1}).limit(limit).to_list()
        claimed = []
        for candidate in candidates:
            doc = await self._revocations.find_one_and_update(
                {"_id": candidate["_id"], **due},
                {"$set": {"next_attempt_at": now + hold}},
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                claimed.append(doc)
        return claimed

    async def update(self, revocation_id: str, fields: dict[str, Any]) -> None:
        await self._revocations.update_one({"_id": revocation_id}, {"$set": fields})

    async def delete(self, revocation_id: str) -> None:
        await self._revocations.delete_one({"_id": revocation_id})
