"""Clicks taken from the chat's events (SPEC §20): the outbound consumer hands each batch
here before its jobs; its `message.action` envelopes are written (once each: the click's
id is the envelope's) and the worker woken."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from services.sync.clicks.repository import ACTION, BadClick, Clicks, click_doc
from services.sync.metrics import SyncMetrics
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document

log = structlog.get_logger(__name__)


class ClickIntake:
    def __init__(self, clicks: Clicks, metrics: SyncMetrics, wake: Callable[[], None]) -> None:
        self._clicks = clicks
        self._metrics = metrics
        self._wake = wake

    async def accept(self, events: list[ChatEvent]) -> None:
        now = utcnow()
        docs: list[Document] = []
        for event in events:
            if event.type != ACTION:
                continue
            try:
                docs.append(click_doc(event, now))
            except BadClick as exc:
                log.warning("chat_event_unusable", envelope_id=event.id, error=str(exc))
                self._metrics.messages.labels("-", "outbound", "invalid").inc()
        if docs and await self._clicks.accept(docs):
            self._wake()
