"""The `endpoints` collection: every query on it lives here."""

from __future__ import annotations

from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.mongo import Database, Index

COLLECTION = "endpoints"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]


class EndpointRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)
