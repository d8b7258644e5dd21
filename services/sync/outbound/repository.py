"""The `sync_outbox` and `sync_workers` collections: every query on them lives here.

An outbox job is one write to one provider channel (post, edit or delete of one chat
message in one mapping). Jobs are written before the chat event's offset is committed,
with ids derived from what they do, so a replayed event finds them there and nothing is
sent twice. A job is held by the process that wrote it (shared.kernel.ownership) until it is
finished; finished jobs keep their outcome for a week (`KEEP_FINISHED`, removed in batches).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.kernel.mongo import Collection, Database, Document, Index, insert_new

OUTBOX = "sync_outbox"
WORKERS = "sync_workers"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEEP_FINISHED = timedelta(days=7)

INDEXES = [
    Index(OUTBOX, [("lease_owner", 1), ("next_attempt_at", 1)]),
    # Finished jobs are removed in batches KEEP_FINISHED after they finished (sync's
    # retention sweep, whose every query names a range of dates from EPOCH on). Only the
    # finished have an entry: a job queued costs no entry of a null `finished_at`.
    Index(
        OUTBOX, [("finished_at", 1)], {"partialFilterExpression": {"finished_at": {"$gte": EPOCH}}}
    ),
    # No query reads jobs by mapping: an entry every job's insert and finish paid for.
    Index(OUTBOX, [("mapping_id", 1), ("status", 1)], retired=True),
]


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self.jobs: Collection = db[OUTBOX]
        self.workers: Collection = db[WORKERS]

    async def insert_new(self, docs: list[Document]) -> list[Document]:
        return await insert_new(self.jobs, docs)

    async def held_by(self, owner: str, ids: list[str]) -> list[Document]:
        """Those of `ids` that `owner` holds, still queued."""
        query = {"_id": {"$in": ids}, "lease_owner": owner, "status": "queued"}
        return await self.jobs.find(query).to_list()

    async def claim(self, owner: str, now: datetime, dead: list[str], limit: int) -> list[Document]:
        """Take for `owner` the open jobs nobody holds that are due, and those held by the
        `dead` workers, each conditionally so that two racing processes never both get one.
        Those taken from the dead are marked `recovered`: their post may have been made."""
        due = {"lease_owner": None, "next_attempt_at": {"$gte": EPOCH, "$lte": now}}
        ids = [d["_id"] for d in await self.jobs.find(due, {"_id": 1}).limit(limit).to_list()]
        orphans: list[Any] = []
        if dead and len(ids) < limit:
            cursor = self.jobs.find({"lease_owner": {"$in": dead}}, {"_id": 1})
            orphans = [d["_id"] for d in await cursor.limit(limit - len(ids)).to_list()]
        if not ids and not orphans:
            return []
        if ids:
            await self.jobs.update_many(
                {"_id": {"$in": ids}, "lease_owner": None}, {"$set": {"lease_owner": owner}}
            )
        if orphans:
            await self.jobs.update_many(
                {"_id": {"$in": orphans}, "lease_owner": {"$in": dead}},
                {"$set": {"lease_owner": owner, "recovered": True}},
            )
        taken = {"_id": {"$in": ids + orphans}, "lease_owner": owner}
        return await self.jobs.find(taken).sort("seq", 1).to_list()

    async def mark_recovered(self, job_ids: list[str]) -> None:
        """Jobs cut off mid-call at a stop: whoever runs them next checks first whether the
        post was made."""
        await self.jobs.update_many({"_id": {"$in": job_ids}}, {"$set": {"recovered": True}})
