"""The `subscriptions` collection: every query on it lives here."""

from __future__ import annotations

from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.mongo import Database, Document, Index

COLLECTION = "subscriptions"

INDEXES = [
    Index(COLLECTION, [("integration_id", 1), ("_id", -1)]),
    # Cache refreshes read what changed since their last read.
    Index(COLLECTION, [("updated_at", 1)]),
    # A channel's subscriptions, as its slash commands list them (services.sync.commands).
    Index(COLLECTION, [("workspace_id", 1), ("channel_id", 1)]),
]


class SubscriptionRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def remove(self, subscription_id: str) -> Document | None:
        """The tombstone (kept, so that every replica's cache learns of the deletion)."""
        return await self.soft_delete(subscription_id)

    async def of_channel(self, workspace_id: str, channel_id: str, limit: int) -> list[Document]:
        """The channel's subscriptions (not deleted), oldest first, at most `limit`."""
        query = {"workspace_id": workspace_id, "channel_id": channel_id, "deleted_at": None}
        cursor = self.collection.find(self.scope.narrow(query)).sort("created_at", 1)
        found: list[Document] = await cursor.limit(limit).to_list()
        return found
