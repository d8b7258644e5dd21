"""What the chat asks of hookhub, taken from its events (SPEC §20): the outbound consumer
hands each batch here before its jobs; its `message.action` (clicks on cards) and
`command.invoked` (slash commands) envelopes are written, each to its queue (once each:
an ask's id is its envelope's, services.sync.clicks.queue), and their workers woken."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


@dataclass(frozen=True)
class Asked:
    """One type of chat event taken: its document (`doc` raises `Unusable` for one that
    lacks what it needs), the queue it is written to and the worker to wake."""

    type: str
    doc: Callable[[ChatEvent, datetime], Document]
    queue: Queue[Any]
    wake: Callable[[], None]


class ChatIntake:
    def __init__(self, asked: Sequence[Asked], metrics: SyncMetrics) -> None:
        self._asked = {kind.type: kind for kind in asked}
        self._metrics = metrics

    async def accept(self, events: list[ChatEvent]) -> None:
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
        for type_, found in docs.items():
            kind = self._asked[type_]
            if found and await kind.queue.accept(found):
                kind.wake()
