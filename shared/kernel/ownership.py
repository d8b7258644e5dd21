"""Which process holds which queued work: one heartbeat document per process, and a
`lease_owner` field on each piece of work it holds.

A process writes its work with its own id as `lease_owner` and keeps all of it with one
heartbeat every third of the lease; when the heartbeat is older than the lease, or the
process said it stopped, any other process may take the work over (conditionally, so each
piece goes to one). Holding costs no write per item: a backlog of thousands is kept by one
heartbeat. Delivery's deliveries and sync's outbox are held this way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import structlog

from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Collection
from shared.kernel.shutdown import WORK_SHARE

log = structlog.get_logger(__name__)


class Ownership:
    def __init__(
        self, workers: Collection, held: Collection, lease: timedelta, worker_id: str | None = None
    ) -> None:
        self.id = worker_id or new_id("wkr")
        self.lease = lease
        self._workers = workers
        self._held = held
        self._registered = False

    async def registered(self) -> None:
        """Beat once before the first item is written under this name, so that if the
        process dies then, its items are found as a dead worker's."""
        if not self._registered:
            await self.beat()
            self._registered = True

    async def beat(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        await self._workers.update_one(
            {"_id": self.id},
            {"$set": {"heartbeat_at": now}, "$setOnInsert": {"started_at": now}},
            upsert=True,
        )

    async def keep_alive(self) -> None:
        while True:
            try:
                await self.beat()
                self._registered = True
            except Exception as exc:
                log.warning("heartbeat_failed", collection=self._workers.name, error=repr(exc))
            await asyncio.sleep(self.lease.total_seconds() / 3)

    async def dead(self, now: datetime) -> list[str]:
        """Workers that stopped, or whose heartbeat is older than the lease: never this one.
        Its own heartbeat is stale after MongoDB was away for longer than the lease, and
        taking its own work over sent what it was sending a second time (and left the first
        attempt's outcome overwritten: found by the soak)."""
        gone = {
            "_id": {"$ne": self.id},
            "$or": [{"stopped": True}, {"heartbeat_at": {"$lt": now - self.lease}}],
        }
        return [d["_id"] for d in await self._workers.find(gone, {"_id": 1}).to_list()]

    async def alive(self, now: datetime) -> set[str]:
        """Workers running (not stopped, heartbeat within the lease), this one among them
        once it has beaten: whoever holds work and is not among them may lose it."""
        running = {"stopped": {"$ne": True}, "heartbeat_at": {"$gte": now - self.lease}}
        return {d["_id"] for d in await self._workers.find(running, {"_id": 1}).to_list()}

    async def others_alive(self, now: datetime) -> int:
        """How many other processes are running: not stopped, heartbeat within the lease."""
        return await self._workers.count_documents(
            {
                "_id": {"$ne": self.id},
                "stopped": {"$ne": True},
                "heartbeat_at": {"$gte": now - self.lease},
            }
        )

    async def release(self, seconds: float | None = None, *, clear: bool = True) -> int:
        """On shutdown: what is still held goes to the other processes now, not after the
        lease. Saying this worker stopped hands all of it over in one write (the others
        take a stopped worker's work as a dead one's, so anything it still writes while
        stopping is taken over too); clearing the owner of each piece then spares them the
        takeover, if it ends within most of `seconds`. Cut off, it leaves nothing behind.
        Without `clear`, the one write only: for work whose outcome the stop may have left
        unwritten, which its takers must treat as a dead worker's (sync marks it
        `recovered`)."""
        await self._workers.update_one({"_id": self.id}, {"$set": {"stopped": True}})
        if not clear:
            log.warning("work_left_for_takeover", collection=self._held.name)
            return 0
        cleared = self._held.update_many({"lease_owner": self.id}, {"$set": {"lease_owner": None}})
        within = None if seconds is None else seconds * WORK_SHARE
        try:
            result = await asyncio.wait_for(cleared, within)
        except TimeoutError:
            log.warning("work_left_for_takeover", collection=self._held.name)
            return 0
        log.info("work_released", collection=self._held.name, count=result.modified_count)
        return result.modified_count

    async def forget_dead(self, now: datetime) -> None:
        """Drop the documents of workers silent for a day that hold nothing any more (a
        process that was only stalled beats again and is recreated)."""
        silent = {"heartbeat_at": {"$lt": now - timedelta(days=1)}}
        for owner in [d["_id"] for d in await self._workers.find(silent, {"_id": 1}).to_list()]:
            if await self._held.find_one({"lease_owner": owner}, {"_id": 1}) is None:
                await self._workers.delete_one(
                    {"_id": owner, "heartbeat_at": {"$lt": now - timedelta(days=1)}}
                )
