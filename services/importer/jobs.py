"""Import jobs (`import_jobs`): what to import, how far it got, and who runs it.

A job is `queued` until an importer replica takes its lease, `running` while that replica
renews the lease, and `completed`, `failed` or `cancelled` at the end. A replica that dies
stops renewing: once the lease has expired another replica (or the restarted one) takes
the job and goes on from its `checkpoint`. Every query on the collection lives here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pymongo import ReturnDocument

from services.importer.schemas import Progress
from shared.domain import tenancy
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Collection, Database, Document, Index, paginate

COLLECTION = "import_jobs"
INDEXES = [
    Index(COLLECTION, [("status", 1), ("lease_until", 1)]),
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("integration_id", 1), ("_id", -1)]),
]

Status = Literal["queued", "running", "completed", "failed", "cancelled"]
ACTIVE = ("queued", "running")
ENDED = ("completed", "failed", "cancelled")
# The report keeps the first quarantined records whole; the rest are only counted.
QUARANTINE_KEPT = 100


class LeaseLost(Exception):
    """Another replica holds the job now (this one was presumed dead): stop, write nothing."""


def new_job(
    *,
    workspace_id: str,
    provider: str,
    source: Literal["api", "export"],
    integration_id: str | None,
    params: dict[str, Any],
    upload: dict[str, Any] | None = None,
) -> Document:
    now = utcnow()
    return {
        "_id": new_id("imp"),
        "workspace_id": workspace_id,
        "integration_id": integration_id,
        "provider": provider,
        "source": source,
        "params": params,
        "upload": upload,
        "status": "queued",
        "progress": Progress().model_dump(),
        "checkpoint": {},
        "report": None,
        "error": None,
        "owner": None,
        "lease_until": None,
        "cancel_requested": False,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
    }


class JobRepository:
    def __init__(self, db: Database, lease: timedelta) -> None:
        self.collection: Collection = db[COLLECTION]
        self.lease = lease

    async def insert(self, doc: Document) -> None:
        tenancy.may_create_in(doc["workspace_id"])
        await self.collection.insert_one(doc)

    async def get(self, job_id: str) -> Document | None:
        return tenancy.note(await self.collection.find_one(tenancy.narrow({"_id": job_id})))

    async def page(
        self, *, limit: int, cursor: str | None, **filters: str | None
    ) -> tuple[list[Document], str | None]:
        query = {name: value for name, value in filters.items() if value}
        return await paginate(self.collection, tenancy.narrow(query), limit=limit, cursor=cursor)

    # -- the lease -----------------------------------------------------------------------

    async def take(self, owner: str) -> Document | None:
        """The oldest job nobody runs (queued, or running under an expired lease), now
        leased to `owner`; None when there is none."""
        now = utcnow()
        return await self.collection.find_one_and_update(
            {
                "status": {"$in": list(ACTIVE)},
                "$or": [{"owner": None}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {
                    "owner": owner,
                    "lease_until": now + self.lease,
                    "status": "running",
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("_id", 1)],
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, job_id: str, owner: str, fields: dict[str, Any]) -> Document:
        """The lease extended and `fields` written; the job as it is now (its
        `cancel_requested` is how a cancel reaches the replica running it)."""
        now = utcnow()
        doc = await self.collection.find_one_and_update(
            {"_id": job_id, "owner": owner, "status": "running"},
            {"$set": {**fields, "lease_until": now + self.lease, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise LeaseLost(job_id)
        return doc

    async def finish(
        self, job_id: str, owner: str, status: Status, fields: dict[str, Any]
    ) -> Document | None:
        now = utcnow()
        return await self.collection.find_one_and_update(
            {"_id": job_id, "owner": owner, "status": "running"},
            {
                "$set": {
                    **fields,
                    "status": status,
                    "owner": None,
                    "lease_until": None,
                    "finished_at": now,
                    "updated_at": now,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def hand_back(self, job_id: str, owner: str, fields: dict[str, Any]) -> None:
        """A stopping replica's job, free at once for another (not after the lease)."""
        await self.collection.update_one(
            {"_id": job_id, "owner": owner, "status": "running"},
            {"$set": {**fields, "owner": None, "lease_until": None, "updated_at": utcnow()}},
        )

    # -- what the API asks -----------------------------------------------------------------

    async def request_cancel(self, job_id: str) -> Document | None:
        """A queued job is cancelled at once; a running one is told through its document
        and stops at its next renewal, which its heartbeat makes every
        `import_progress_seconds` whatever the job is waiting for."""
        now = utcnow()
        doc = await self.collection.find_one_and_update(
            tenancy.narrow({"_id": job_id, "status": "queued", "owner": None}),
            {"$set": {"status": "cancelled", "finished_at": now, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None:
            return doc
        return await self.collection.find_one_and_update(
            tenancy.narrow({"_id": job_id, "status": {"$in": list(ACTIVE)}}),
            {"$set": {"cancel_requested": True, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )

    async def resume(self, job_id: str) -> Document | None:
        """A cancelled or failed job queued again; it goes on from its checkpoint."""
        return await self.collection.find_one_and_update(
            tenancy.narrow(
                {
                    "_id": job_id,
                    "status": {"$in": ["cancelled", "failed"]},
                    "upload.removed_at": {"$exists": False},
                }
            ),
            {
                "$set": {
                    "status": "queued",
                    "cancel_requested": False,
                    "owner": None,
                    "lease_until": None,
                    "error": None,
                    "finished_at": None,
                    "updated_at": utcnow(),
                }
            },
            return_document=ReturnDocument.AFTER,
        )
