"""Deliveries and their attempts, removed `HOOKHUB_DELIVERY_RETENTION` after they ended
(SPEC §14).

A delivery ends when it is completed, failed (dead-lettered, or its endpoint deleted) or
cancelled (by its endpoint's transformation):
the dispatcher writes `ended_at` with that outcome, and a retry or recover that reopens it
clears it. Pending, active and delayed deliveries have none and are never removed. The
attempts go with their delivery, and the workspace's usage counts of deliveries and
attempts kept go down by as much.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import UpdateOne

from services.delivery.deliveries.repository import ATTEMPTS, DELIVERIES, FINISHED, attempt_ids
from shared.domain.retention import ExpiredDocuments
from shared.kernel.mongo import Database, Document

# (workspace id, deliveries removed, attempts removed)
OnRemoved = Callable[[str, int, int], None]
ENDED = ("completed", "failed", "cancelled")


class EndedDeliveries(ExpiredDocuments):
    def __init__(self, db: Database, keep: timedelta, on_removed: OnRemoved | None = None):
        super().__init__(
            db[DELIVERIES],
            "ended_at",
            keep,
            # Named for the index (`lease_owner, next_attempt_at, ended_at`): always true of
            # an ended delivery.
            where=FINISHED,
            projection={"_id": 1, "workspace_id": 1, "attempts": 1},
        )
        self._attempts = db[ATTEMPTS]
        self._on_removed = on_removed
        self._backfilled = False

    async def remove(self, now: datetime, limit: int) -> dict[str, int]:
        if not self._backfilled:
            await self._backfill(limit)
        return await super().remove(now, limit)

    async def dispose(self, docs: list[Document], cutoff: datetime) -> dict[str, int]:
        removed = await super().dispose(docs, cutoff)
        if removed[self.name] < len(docs):  # some were reopened meanwhile: they stay
            ids = [d["_id"] for d in docs]
            kept = {
                d["_id"]
                for d in await self.collection.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()
            }
            docs = [d for d in docs if d["_id"] not in kept]
        if docs:
            ids = [attempt_id for d in docs for attempt_id in attempt_ids(d)]
            result = await self._attempts.delete_many({"_id": {"$in": ids}})
            removed[ATTEMPTS] = result.deleted_count
        if self._on_removed is not None:
            per_workspace: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for doc in docs:
                counts = per_workspace[doc.get("workspace_id") or ""]
                counts[0] += 1
                counts[1] += int(doc.get("attempts") or 0)
            for workspace_id, (deliveries, attempts) in per_workspace.items():
                self._on_removed(workspace_id, deliveries, attempts)
        return removed

    async def _backfill(self, limit: int) -> None:
        """Deliveries that ended before `ended_at` was written take their last update's
        time as it, a batch a pass, until none is left (then never looked for again)."""
        # The query names only the index's fields (`ended_at` null or missing, past the two
        # nulls of `FINISHED`), so any server answers it from the index; the status is
        # checked here. With the status in the query SecantusDB read every delivery
        # (0.2 s at 20,000, at every process's start).
        docs = []
        query = {**FINISHED, "ended_at": None}
        async for doc in self.collection.find(query, {"status": 1, "updated_at": 1, "ended_at": 1}):
            if doc.get("status") in ENDED and "ended_at" not in doc:
                docs.append(doc)
                if len(docs) == limit:
                    break
        if docs:
            await self.collection.bulk_write(
                [
                    UpdateOne(
                        {"_id": d["_id"], "ended_at": {"$exists": False}},
                        {"$set": {"ended_at": d["updated_at"]}},
                    )
                    for d in docs
                ],
                ordered=False,
            )
            self.floor = None  # they ended long ago: below where the sweep got to
            return
        self._backfilled = True
