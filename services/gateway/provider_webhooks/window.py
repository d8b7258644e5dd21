"""This replica's copy of the dedupe window: a Bloom filter of every id in `seen_deliveries`.

Asking MongoDB whether a webhook was seen before costs the gateway a query's worth of CPU
per batch and every request the wait for it, though almost every answer is "no". The
window answers "no" from memory instead: it holds every id any replica recorded in the
window, read at start and then from the bucket documents written since, once a second.
An id it might hold (a redelivery, or about 0.4% of new ids) is still looked up in
MongoDB, which has the last word; one it cannot hold is new.

What the window cannot know is what other replicas recorded in the last moment: their
records reach MongoDB within `BatchedWriter`'s interval (1 s) and this replica within
`poll_seconds` more. A redelivery that reaches another replica within those two seconds
is published twice; asking MongoDB every time narrowed that gap to the writer's interval
but did not close it, and consumers deduplicate by envelope id either way.

The window answers only while it is sure to be complete: not before the first read of
`seen_deliveries` has finished, not when its last successful read is older than
`stale_seconds`, and not while ids it dropped to stay within `max_ids` could still be
redelivered. Otherwise every lookup goes to MongoDB, as without a window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import structlog
from prometheus_client import CollectorRegistry, Gauge

from services.gateway.provider_webhooks.repository import SeenDeliveries
from shared.kernel.bloom import BloomBlock
from shared.kernel.ids import id_floor
from shared.kernel.mongo import BUCKET_PREFIX

log = structlog.get_logger(__name__)

# Bucket `_id`s carry their writer's clock: reads start this far before the previous one,
# so a bucket from a replica whose clock is behind ours by up to this much is not missed.
CLOCK_SKEW_SECONDS = 30.0
# Bucket documents per query: a thousand ids each, added to the filter without a pause.
_PAGE = 20


@dataclass
class _Block:
    bloom: BloomBlock
    newest_expiry: float = 0.0  # Unix time when the last of its ids leaves the window


class SeenWindow:
    def __init__(
        self,
        seen: SeenDeliveries,
        *,
        max_ids: int,
        poll_seconds: float = 1.0,
        block_ids: int = 1_000_000,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._seen = seen
        self._max_blocks = max(max_ids // block_ids, 1)
        self._block_ids = block_ids
        self._poll_seconds = poll_seconds
        self.stale_seconds = max(10 * poll_seconds, 10.0)
        self._clock = clock
        self._blocks: list[_Block] = []
        # Bucket documents read whose `_id` the next read's floor does not exclude.
        self._read: set[str] = set()
        self._last_read: float | None = None  # when the last complete read started
        self._fresh_until = 0.0
        self._incomplete_until = 0.0  # ids dropped for space may be redelivered until then
        if registry is not None:
            Gauge(
                "hookhub_gateway_dedupe_window_ids",
                "Ids in this replica's in-memory dedupe window",
                registry=registry,
            ).set_function(lambda: self.ids)
            Gauge(
                "hookhub_gateway_dedupe_window_ready",
                "1 when new webhooks are told from redeliveries in memory, 0 when MongoDB is asked",
                registry=registry,
            ).set_function(lambda: float(self.ready))

    @property
    def ids(self) -> int:
        """How many ids the window holds (a bucket read twice would count twice)."""
        return sum(block.bloom.count for block in self._blocks)

    @property
    def ready(self) -> bool:
        now = self._clock()
        return now < self._fresh_until and now >= self._incomplete_until

    def might_contain(self, envelope_id: str) -> bool:
        return any(envelope_id in block.bloom for block in self._blocks)

    def _add_bucket(self, ids: Iterable[str], expires_at: datetime) -> None:
        block = self._current()
        block.bloom.update(ids)
        block.newest_expiry = max(block.newest_expiry, expires_at.timestamp())

    def _current(self) -> _Block:
        if not self._blocks or self._blocks[-1].bloom.full:
            self._blocks.append(_Block(BloomBlock(self._block_ids)))
            if len(self._blocks) > self._max_blocks:
                dropped = self._blocks.pop(0)
                self._incomplete_until = max(self._incomplete_until, dropped.newest_expiry)
                log.warning(
                    "dedupe_window_full",
                    max_ids=self._max_blocks * self._block_ids,
                    incomplete_until=dropped.newest_expiry,
                )
        return self._blocks[-1]

    async def run(self) -> None:
        while True:
            try:
                await self.read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("dedupe_window_read_failed", error=repr(exc))
            await asyncio.sleep(self._poll_seconds)

    async def read(self) -> None:
        """Read the bucket documents written since the last read (all of them, the first
        time), a page at a time."""
        started = self._clock()
        first = self._last_read is None
        cursor = ""  # the first read takes every bucket
        if self._last_read is not None:
            cursor = id_floor(BUCKET_PREFIX, self._last_read - CLOCK_SKEW_SECONDS)
        # The next read starts from here; what it would read again is excluded by `_id`.
        next_floor = id_floor(BUCKET_PREFIX, started - CLOCK_SKEW_SECONDS)
        while True:
            known = [bucket for bucket in self._read if bucket > cursor]
            page = await self._seen.buckets_after(cursor, known, _PAGE)
            for doc in page:
                self._add_bucket(doc.get("ids") or (), doc["expires_at"])
                if doc["_id"] >= next_floor:
                    self._read.add(doc["_id"])
            if len(page) < _PAGE:
                break
            cursor = page[-1]["_id"]
            await asyncio.sleep(0)  # requests go on between pages
        # Only now: until this read is done, what the last one read above its floor counts.
        self._read = {bucket for bucket in self._read if bucket >= next_floor}
        self._last_read = started
        self._fresh_until = started + self.stale_seconds
        now = self._clock()
        while len(self._blocks) > 1 and self._blocks[0].newest_expiry < now:
            self._blocks.pop(0)
        if first:
            log.info(
                "dedupe_window_loaded",
                ids=self.ids,
                seconds=round(now - started, 3),
            )
