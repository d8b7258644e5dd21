"""The `incoming_webhooks` collection: every query on it lives here."""

from __future__ import annotations

from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.mongo import Database, Document, Index

COLLECTION = "incoming_webhooks"

INDEXES = [
    Index(COLLECTION, [("token_hash", 1)], {"unique": True}),
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]


class IncomingWebhookRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def find_by_token_hash(self, token_hash: str) -> Document | None:
        """Tombstones included: a revoked token must leave every replica's cache."""
        return await self.collection.find_one({"token_hash": token_hash})
