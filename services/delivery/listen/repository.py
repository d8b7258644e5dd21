"""The `listen_sessions` collection: which delivery replica holds each listening endpoint's
socket, and where the others reach it. Every query on it lives here."""

from __future__ import annotations

from datetime import datetime

from pymongo import ReturnDocument

from shared.kernel.ids import utcnow
from shared.kernel.mongo import UNSCOPED, Database, Document, Index, TombstoneCollection

COLLECTION = "listen_sessions"

INDEXES = [Index(COLLECTION, [("updated_at", 1)])]


class SessionRepository(TombstoneCollection):
    """One document per listening endpoint (`_id` its id): its latest session. No request
    reads it by workspace (the replicas' caches follow it: `changed_since`)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION, UNSCOPED)

    async def connected(
        self,
        endpoint_id: str,
        *,
        workspace_id: str,
        session_id: str,
        owner: str,
        address: str,
        forward_to: str,
        caller: Document,
    ) -> Document:
        """The endpoint's session is now `session_id`, held by worker `owner` (whose
        heartbeat is its lease) at `address`: whatever session it had is replaced."""
        now = utcnow()
        doc: Document | None = await self.collection.find_one_and_update(
            {"_id": endpoint_id},
            {
                "$set": {
                    "workspace_id": workspace_id,
                    "session_id": session_id,
                    "owner": owner,
                    "address": address,
                    "forward_to": forward_to,
                    "caller": caller,
                    "connected": True,
                    "connected_at": now,
                    "ended_at": None,
                    "ended_reason": None,
                    "updated_at": now,
                },
                "$setOnInsert": {"created_at": now, "deleted_at": None},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return doc

    async def ended(
        self, endpoint_id: str, session_id: str, at: datetime, why: str
    ) -> Document | None:
        """Session `session_id` ended, if it is still the endpoint's (a newer one is left)."""
        found: Document | None = await self.collection.find_one_and_update(
            {"_id": endpoint_id, "session_id": session_id},
            {
                "$set": {
                    "connected": False,
                    "ended_at": at,
                    "ended_reason": why[:200],
                    "updated_at": utcnow(),
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        return found
