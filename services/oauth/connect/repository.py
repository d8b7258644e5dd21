"""The `oauth_states` collection: connects in progress, each taken at most once."""

from __future__ import annotations

from shared.kernel.mongo import Collection, Database, Document, Index

COLLECTION = "oauth_states"

INDEXES = [
    # Clean-up only: the 10-minute limit is checked on use. Kept an hour past it so that a
    # late callback is told "expired" rather than "unknown".
    Index(COLLECTION, [("expires_at", 1)], {"expireAfterSeconds": 3600}),
]


class StateRepository:
    def __init__(self, db: Database) -> None:
        self._states: Collection = db[COLLECTION]

    async def insert(self, doc: Document) -> None:
        await self._states.insert_one(doc)

    async def take(self, state_id: str) -> Document | None:
        """The state, removed in the same operation: a second callback finds nothing."""
        return await self._states.find_one_and_delete({"_id": state_id})
