"""What the chat asks of hookhub, taken from its events (SPEC §20): the outbound consumer
hands each batch here before its jobs; its `message.action` (clicks on cards) and
`command.invoked` (slash commands) envelopes go to their workers, once each (an ask's id
is its envelope's, services.sync.clicks.queue):

- an ask whose worker takes them unwritten (`Asked.hand`: the clicks) is handed over
  without being written first, unless MongoDB has it (looked for only when its event may
  have been read before: at or below its partition's progress mark); the batch's
  offsets wait until each is written, with its outcome, or after `SPILL_SECONDS` as it
  is (`Asked.spill`), acted on all the same;
- any other is written queued before the batch's offsets are committed, and its worker
  woken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from services.sync.clicks.queue import Queue, Unusable
from services.sync.metrics import SyncMetrics
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document

log = structlog.get_logger(__name__)

# How long a batch waits for the asks handed over unwritten before it has them written.
SPILL_SECONDS = 5.0


@dataclass(frozen=True)
class Asked:
    """One type of chat event taken: its document (`doc` raises `Unusable` for one that
    lacks what it needs), the queue it is written to and the worker to wake; or, with
    `hand` and `spill`, the worker that takes them unwritten."""

    type: str
    doc: Callable[[ChatEvent, datetime], Document]
    queue: Queue[Any]
    wake: Callable[[], None]
    hand: Callable[[list[Document]], list[asyncio.Future[None]]] | None = None
    spill: Callable[[Iterable[str] | None], Awaitable[int]] | None = None


class ChatIntake:
    def __init__(
        self, asked: Sequence[Asked], metrics: SyncMetrics, spill_seconds: float = SPILL_SECONDS
    ) -> None:
        self._asked = {kind.type: kind for kind in asked}
        self._metrics = metrics
        self._spill_seconds = spill_seconds

    def asks(self, events: list[ChatEvent]) -> list[ChatEvent]:
        """The events of a batch that ask something."""
        return [event for event in events if event.type in self._asked]

    async def accept(
        self, events: list[ChatEvent], replayed: Collection[str] = ()
    ) -> Awaitable[object] | None:
        """The batch's asks taken (`replayed`: the ids of those perhaps read before, looked
        for in MongoDB); returns what the batch's offsets wait for, if anything."""
        now = utcnow()
        docs: dict[str, list[Document]] = {}
        for event in events:
            kind = self._asked.get(event.type)
            if kind is None:
                continue
            try:
                docs.setdefault(kind.type, []).append(kind.doc(event, now))
            except Unusable as exc:
                log.warning("chat_event_unusable", envelope_id=event.id, error=str(exc))
                self._metrics.messages.labels("-", "outbound", "invalid").inc()
        waits: list[Awaitable[None]] = []
        for type_, found in docs.items():
            kind = self._asked[type_]
            if kind.hand is not None and kind.spill is not None:
                again = [doc for doc in found if doc["_id"] in replayed]
                fresh = [doc for doc in found if doc["_id"] not in replayed]
                fresh += await kind.queue.unknown(again)
                handed = dict(zip(kind.hand(fresh), (doc["_id"] for doc in fresh), strict=True))
                if handed:
                    waits.append(self._written(handed, kind.spill))
            elif found and await kind.queue.accept(found):
                kind.wake()
        return asyncio.gather(*waits) if waits else None

    async def revoked(self) -> None:
        """Partitions going to another process: every ask handed over is written first."""
        for kind in self._asked.values():
            if kind.spill is not None:
                await kind.spill(None)

    async def _written(
        self,
        handed: dict[asyncio.Future[None], str],
        spill: Callable[[Iterable[str] | None], Awaitable[int]],
    ) -> None:
        """Once the asks handed over are written: those not within `spill_seconds`, then."""
        _, late = await asyncio.wait(handed, timeout=self._spill_seconds)
        if late:
            spilled = await spill([handed[future] for future in late])
            if spilled:
                log.info("sync_asks_spilled", count=spilled)
            await asyncio.wait(handed)
