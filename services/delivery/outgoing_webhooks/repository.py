"""The `endpoints` collection: every query on it lives here."""

from __future__ import annotations

from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.mongo import Database, Document, Index

COLLECTION = "endpoints"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]


class EndpointRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def listening(self, workspace_id: str, listen_key: str) -> Document | None:
        """The listening endpoint `hookhub listen` made for `listen_key` (its caller, name
        and events: services/delivery/listen/service.py), while it still listens."""
        found: Document | None = await self.collection.find_one(
            self.scope.narrow(
                {
                    "workspace_id": workspace_id,
                    "listen_key": listen_key,
                    "destination.type": "listen",
                    "deleted_at": None,
                }
            ),
            sort=[("_id", 1)],  # the oldest, should two have been made at once
        )
        return self.scope.note(found)
