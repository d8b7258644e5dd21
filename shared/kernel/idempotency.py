"""Consumer idempotency by envelope `id`: at-least-once delivery, at-most-once effect.

Each consumer (a group and a purpose) claims an envelope id before acting and marks it done
after. A redelivered id that is done is skipped; one whose claim is held by a live worker
is handed back to Kafka for later; one whose claim lease ran out (its worker died) is taken
over. Effects must therefore finish within the lease, or renew it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar

from pymongo.errors import DuplicateKeyError

from shared.kernel.ids import utcnow
from shared.kernel.mongo import Collection, Index

COLLECTION = "processed_envelopes"

# Removed in batches once `expires_at` passed (shared.domain.retention; every service's runtime
# runs that sweep): one document per envelope and consumer is too many for a TTL index.
INDEXES = [Index(COLLECTION, [("expires_at", 1)])]

T = TypeVar("T")


class ClaimBusy(RuntimeError):
    """Another live worker holds this envelope; the message is retried later."""


class Outcome(StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"


class ProcessedLedger:
    def __init__(
        self,
        collection: Collection,
        consumer: str,
        *,
        lease: timedelta = timedelta(seconds=60),
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._collection = collection
        self._consumer = consumer
        self._lease = lease
        self._retention = retention

    def _key(self, envelope_id: str) -> str:
        return f"{self._consumer}:{envelope_id}"

    async def claim(self, envelope_id: str) -> bool:
        """True when the caller should act; False when the envelope was already processed."""
        now = utcnow()
        key = self._key(envelope_id)
        try:
            await self._collection.insert_one(
                {
                    "_id": key,
                    "state": "claimed",
                    "lease_until": now + self._lease,
                    "expires_at": now + self._retention,
                }
            )
            return True
        except DuplicateKeyError:
            pass
        taken = await self._collection.find_one_and_update(
            {"_id": key, "state": "claimed", "lease_until": {"$lt": now}},
            {"$set": {"lease_until": now + self._lease}},
        )
        if taken is not None:
            return True
        existing = await self._collection.find_one({"_id": key}, {"state": 1})
        if existing is None:  # expired between our two reads: treat as new
            return await self.claim(envelope_id)
        if existing["state"] == "done":
            return False
        raise ClaimBusy(f"envelope {envelope_id} is being processed by another worker")

    async def done(self, envelope_id: str) -> None:
        await self._collection.update_one(
            {"_id": self._key(envelope_id)},
            {"$set": {"state": "done", "expires_at": utcnow() + self._retention}},
        )

    async def release(self, envelope_id: str) -> None:
        await self._collection.delete_one({"_id": self._key(envelope_id), "state": "claimed"})

    async def once(self, envelope_id: str, effect: Callable[[], Awaitable[T]]) -> Outcome:
        """Run `effect` unless this consumer already finished `envelope_id`."""
        if not await self.claim(envelope_id):
            return Outcome.DUPLICATE
        try:
            await effect()
        except BaseException:
            with contextlib.suppress(Exception):  # if MongoDB is down the lease runs out instead
                await self.release(envelope_id)
            raise
        await self.done(envelope_id)
        return Outcome.PROCESSED
