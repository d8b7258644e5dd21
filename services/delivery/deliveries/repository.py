"""The `deliveries` and `delivery_attempts` collections: every query on them lives here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import BulkWriteError

from shared.mongo import DUPLICATE_KEY, Collection, Database, Document, Index, paginate

DELIVERIES = "deliveries"
ATTEMPTS = "delivery_attempts"
OPEN_STATUSES = ("pending", "active", "delayed")
STATUSES = ("pending", "active", "completed", "failed", "delayed")
NEVER = datetime(1970, 1, 1, tzinfo=UTC)

INDEXES = [
    Index(DELIVERIES, [("status", 1), ("next_attempt_at", 1)]),
    Index(DELIVERIES, [("endpoint_id", 1), ("_id", -1)]),
    Index(DELIVERIES, [("workspace_id", 1), ("_id", -1)]),
    Index(DELIVERIES, [("endpoint_id", 1), ("status", 1), ("created_at", 1)]),
    Index(ATTEMPTS, [("delivery_id", 1), ("attempt", 1)]),
]


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self._deliveries: Collection = db[DELIVERIES]
        self._attempts: Collection = db[ATTEMPTS]

    async def insert_new(self, docs: list[Document]) -> list[Document]:
        """Insert the deliveries that do not exist yet; return those (a replayed event's
        deliveries exist already, so nothing is sent twice)."""
        if not docs:
            return []
        # Plain inserts: a duplicate key is "exists already"; an upsert costs more.
        try:
            await self._deliveries.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise
            errors = exc.details.get("writeErrors", [])
            if any(error["code"] != DUPLICATE_KEY for error in errors):
                raise
            existing = {error["index"] for error in errors}
            return [doc for index, doc in enumerate(docs) if index not in existing]
        return docs

    async def get(self, delivery_id: str) -> Document | None:
        return await self._deliveries.find_one({"_id": delivery_id})

    async def attempts(self, delivery_id: str) -> list[Document]:
        return await self._attempts.find({"delivery_id": delivery_id}).sort("attempt", 1).to_list()

    async def page(
        self, *, filters: Document, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        return await paginate(self._deliveries, filters, limit=limit, cursor=cursor)

    async def claim_due(self, now: datetime, lease: timedelta, limit: int) -> list[Document]:
        """Open deliveries that are due and held by nobody (or by a worker that died)."""
        due = {
            "status": {"$in": list(OPEN_STATUSES)},
            "next_attempt_at": {"$lte": now},
            "lease_until": {"$lt": now},
        }
        ids = [
            d["_id"] for d in await self._deliveries.find(due, {"_id": 1}).limit(limit).to_list()
        ]
        if not ids:
            return []
        owner = uuid.uuid4().hex
        await self._deliveries.update_many(
            {"_id": {"$in": ids}, "lease_until": {"$lt": now}},
            {"$set": {"lease_until": now + lease, "lease_owner": owner}},
        )
        return await self._deliveries.find({"_id": {"$in": ids}, "lease_owner": owner}).to_list()

    async def extend_leases(self, ids: list[str], until: datetime) -> None:
        if ids:
            await self._deliveries.update_many(
                {"_id": {"$in": ids}, "status": {"$in": list(OPEN_STATUSES)}},
                {"$set": {"lease_until": until}},
            )

    async def reopen(self, query: Document, fields: dict[str, Any]) -> int:
        result = await self._deliveries.update_many(query, {"$set": fields})
        return result.modified_count

    async def count_status(self, status: str) -> int:
        return await self._deliveries.count_documents({"status": status})

    async def counts(self, endpoint_id: str | None) -> dict[str, int]:
        match: Document = {"endpoint_id": endpoint_id} if endpoint_id else {}
        rows = await (
            await self._deliveries.aggregate(
                [{"$match": match}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
            )
        ).to_list()
        counts = dict.fromkeys(STATUSES, 0)
        for row in rows:
            counts[row["_id"]] = row["n"]
        return counts
