"""The `event_types` collection: every query on it lives here.

A type is global (`workspace_id` null) or a workspace's own. `live_key` makes one live type
per name and owner, also when two creates race; a deleted type's is freed (`remove`).
"""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument

from shared.domain import tenancy
from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, Document, Index, paginate

COLLECTION = "event_types"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
    Index(COLLECTION, [("live_key", 1)], {"unique": True}),
]


def live_key(workspace_id: str | None, name: str) -> str:
    # Workspace ids never hold a space (shared.kernel.ids), so `* name` is no workspace's.
    return f"{workspace_id or '*'} {name}"


class EventTypeRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def named(self, workspace_id: str | None, name: str) -> Document | None:
        """The live type `name` of `workspace_id` (None: the global one). Unscoped: the
        caller says whose it asks for (a workspace reads the global types too)."""
        return tenancy.note(
            await self.collection.find_one({"live_key": live_key(workspace_id, name)})
        )

    async def change(self, doc_id: str, fields: dict[str, Any]) -> Document | None:
        """`update` without the request's narrowing: the caller decided whose type it is
        (only the admin token changes a global one)."""
        return await self.collection.find_one_and_update(
            {"_id": doc_id, "deleted_at": None},
            {"$set": {**fields, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def remove(self, doc_id: str) -> Document | None:
        """The tombstone, its name free to be used again."""
        now = utcnow()
        return await self.collection.find_one_and_update(
            {"_id": doc_id, "deleted_at": None},
            {"$set": {"live_key": f"deleted {doc_id}", "deleted_at": now, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def view(
        self, workspace_id: str | None, *, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        """A page of what `workspace_id` sees (its own types and the global ones, newest
        first); None: every type, global and every workspace's (the admin's list)."""
        query: Document = {"deleted_at": None}
        if workspace_id is not None:
            query["workspace_id"] = {"$in": [workspace_id, None]}
        return await paginate(self.collection, query, limit=limit, cursor=cursor)

    async def own_names(self, workspace_id: str) -> set[str]:
        names = await self.collection.distinct(
            "name", {"workspace_id": workspace_id, "deleted_at": None}
        )
        return {str(name) for name in names}
