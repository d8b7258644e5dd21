"""The `operational_events` collection: the recent operational events, as the delivery
service read them off `hookhub.operational.events`, for the console's timelines. Written in
batches (the delivery writer, one insert per event id: a batch read again writes nothing
twice), read by resource and time, kept as long as deliveries are (HOOKHUB_DELIVERY_RETENTION)."""

from __future__ import annotations

from datetime import timedelta

from shared.domain import tenancy
from shared.domain.retention import ExpiredDocuments
from shared.kernel.envelopes import OperationalEvent
from shared.kernel.mongo import BatchedWriter, Database, Document, Index, paginate

COLLECTION = "operational_events"

INDEXES = [
    # `_id`s are time-ordered event ids: the newest first, per resource or per workspace.
    Index(COLLECTION, [("resource_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("occurred_at", 1)]),  # the retention job's
]


class OperationalEventRepository:
    def __init__(self, db: Database, writer: BatchedWriter) -> None:
        self._collection = db[COLLECTION]
        self._writer = writer

    def record(self, event: OperationalEvent) -> None:
        """Kept by the next flush of the writer (`BatchedWriter.written` to wait for it)."""
        self._writer.insert_once(
            COLLECTION,
            event.id,
            {
                "workspace_id": event.workspace_id,
                "type": event.type,
                "occurred_at": event.occurred_at,
                "resource_id": event.resource_id(),
                "data": event.data,
            },
        )

    async def page(
        self, filters: Document, *, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        """Newest first, in the caller's workspace (shared.domain.tenancy)."""
        return await paginate(self._collection, tenancy.narrow(filters), limit=limit, cursor=cursor)

    def retention(self, keep: timedelta) -> ExpiredDocuments:
        return ExpiredDocuments(self._collection, "occurred_at", keep)
