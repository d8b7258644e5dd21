"""The `action_requests` collection: what an `Idempotency-Key` stands for, per integration.

One document per (integration, key), unique, kept 24 hours (TTL on `expires_at`):

- `pending`: a request holds the key and is calling the provider, until `lease_until`. A
  second request with the key meanwhile is told so (409 `idempotency_in_progress`); once
  the lease has run out (the holder died mid-call), the next request takes the claim over.
- `done`: the first answer (`status`, `response`), replayed to every retry with the same
  body, and the reply envelope with whether it was published yet.

A failed provider call deletes its pending claim, so that a retry can try again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.kernel.errors import Conflict
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Database, Document, Index

COLLECTION = "action_requests"

INDEXES = [
    Index(COLLECTION, [("integration_id", 1), ("key", 1)], {"unique": True}),
    Index(COLLECTION, [("expires_at", 1)], {"expireAfterSeconds": 0}),
]

RETENTION = timedelta(hours=24)
LEASE = timedelta(seconds=60)


class KeyReused(Conflict):
    code = "idempotency_key_reused"


class InProgress(Conflict):
    code = "idempotency_in_progress"


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it calls the provider, then completes or releases."""

    id: str
    owner: str


@dataclass(frozen=True)
class Replay:
    """The key's first answer; `reply` the reply envelope (JSON) not yet published, if any."""

    id: str
    status: int
    response: dict[str, Any]
    reply: dict[str, Any] | None


class IdempotencyStore:
    def __init__(
        self, db: Database, *, lease: timedelta = LEASE, retention: timedelta = RETENTION
    ) -> None:
        self.collection = db[COLLECTION]
        self._lease = lease
        self._retention = retention

    async def claim(
        self, integration_id: str, key: str, action: str, body_hash: str
    ) -> Claim | Replay:
        """The claim on `key`, or the answer it already has. Raises KeyReused (the key was
        used with another body) or InProgress (another request holds it now)."""
        for _ in range(3):  # a document may expire between our reads; then it is free
            now = utcnow()
            owner = uuid.uuid4().hex
            doc_id = new_id("act")
            try:
                await self.collection.insert_one(
                    {
                        "_id": doc_id,
                        "integration_id": integration_id,
                        "key": key,
                        "action": action,
                        "body_hash": body_hash,
                        "state": "pending",
                        "owner": owner,
                        "lease_until": now + self._lease,
                        "created_at": now,
                        "expires_at": now + self._retention,
                    }
                )
                return Claim(doc_id, owner)
            except DuplicateKeyError:
                pass
            found = await self.collection.find_one({"integration_id": integration_id, "key": key})
            if found is None:
                continue
            if found.get("action") != action or found.get("body_hash") != body_hash:
                raise KeyReused(
                    f"Idempotency-Key {key!r} was used with another request body on this "
                    "integration (within 24 hours); use a new key for a new request"
                )
            if found["state"] == "done":
                return _replay(found)
            taken = await self.collection.find_one_and_update(
                {"_id": found["_id"], "state": "pending", "lease_until": {"$lt": now}},
                {"$set": {"owner": owner, "lease_until": now + self._lease}},
                return_document=ReturnDocument.AFTER,
            )
            if taken is not None:
                return Claim(str(taken["_id"]), owner)
            raise InProgress(
                f"a request with Idempotency-Key {key!r} is in progress; retry in a few "
                "seconds to get its answer",
                headers={"Retry-After": "2"},
            )
        raise InProgress(f"Idempotency-Key {key!r} is changing hands; retry")

    async def complete(
        self, claim: Claim, status: int, response: dict[str, Any], reply: dict[str, Any] | None
    ) -> bool:
        """Store the answer; False if the claim was taken over meanwhile (lease run out)."""
        done = await self.collection.update_one(
            {"_id": claim.id, "owner": claim.owner, "state": "pending"},
            {
                "$set": {
                    "state": "done",
                    "status": status,
                    "response": response,
                    "reply": reply,
                    "replied": reply is None,
                    "completed_at": utcnow(),
                },
                "$unset": {"lease_until": ""},
            },
        )
        return done.matched_count == 1

    async def replied(self, record_id: str) -> None:
        await self.collection.update_one({"_id": record_id}, {"$set": {"replied": True}})

    async def release(self, claim: Claim) -> None:
        """Give the key up after a failed call: the next request with it tries afresh."""
        await self.collection.delete_one(
            {"_id": claim.id, "owner": claim.owner, "state": "pending"}
        )

    async def get(self, integration_id: str, key: str) -> Document | None:
        return await self.collection.find_one({"integration_id": integration_id, "key": key})


def _replay(doc: Document) -> Replay:
    reply = doc.get("reply")
    return Replay(
        id=str(doc["_id"]),
        status=int(doc["status"]),
        response=dict(doc["response"]),
        reply=None if doc.get("replied") or not reply else dict(reply),
    )
