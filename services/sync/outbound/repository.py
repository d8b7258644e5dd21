"""The `sync_outbox`, `sync_workers` and `sync_progress` collections: every query on them
lives here.

An outbox job is one write to one provider channel (post, edit or delete of one chat
message in one mapping), with an id derived from what it does. A job is written here only
when it cannot finish at once (services.sync.outbound.unwritten: a channel's pace, a 429, a
handover), before the chat event's offset is committed; a replayed event finds it here and
leaves it. A job is held by the process that wrote it (shared.kernel.ownership) until it is
finished; finished jobs keep their outcome for a week (`KEEP_FINISHED`, removed in batches).
A job that finished at once leaves no document: its record is its copy in the message map.

A progress mark (`sync_progress`, one per partition of the chat events) says up to which
offset a process has handed events to its lanes: whoever reads them again treats those as
perhaps posted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne

from shared.kernel.mongo import Collection, Database, Document, Index

OUTBOX = "sync_outbox"
WORKERS = "sync_workers"
PROGRESS = "sync_progress"
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
        self.progress: Collection = db[PROGRESS]

    async def existing(self, ids: list[str]) -> set[str]:
        """Those of `ids` the outbox holds, in whatever state."""
        if not ids:
            return set()
        found = self.jobs.find({"_id": {"$in": ids}}, {"_id": 1})
        return {doc["_id"] for doc in await found.to_list()}

    async def marks(self, keys: list[str]) -> dict[str, int]:
        """The progress marks of these partitions (`{topic}:{partition}`): the last offset
        any process handed to its lanes; partitions without one are left out."""
        found = self.progress.find({"_id": {"$in": keys}}, {"offset": 1})
        return {doc["_id"]: int(doc["offset"]) for doc in await found.to_list()}

    async def mark(self, offsets: dict[str, int], owner: str, now: datetime) -> None:
        """Raise the marks to `offsets` (never lower them), saying who."""
        await self.progress.bulk_write(
            [
                UpdateOne(
                    {"_id": key},
                    {"$max": {"offset": offset}, "$set": {"owner": owner, "at": now}},
                    upsert=True,
                )
                for key, offset in offsets.items()
            ],
            ordered=False,
        )

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
