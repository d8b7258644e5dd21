"""Operational events (SPEC §17): what hookhub tells a workspace's subscribers about its own
endpoints, deliveries, integrations and imports, on `hookhub.operational.events`.

The services that notice something publish it here: delivery its endpoints' changes and
troubles (through an `Announcer`, off the path of the attempt or request that caused them),
oauth and sync an integration's error or disconnection and the importer a failed import (with
the integration event they already publish: `publish_integration_event`). The delivery service
reads the topic, keeps each event for the console's timeline and delivers it to the
workspace's endpoints that name it (services/delivery/operational/).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.kernel.envelopes import (
    OPERATIONAL_PREFIX,
    Encoded,
    IntegrationEvent,
    OperationalEvent,
    OperationalType,
    Topic,
    new_event_id,
)
from shared.kernel.errors import HookhubError
from shared.kernel.kafka import EventPublisher, EventTooLarge

log = structlog.get_logger(__name__)

TEXT_LIMIT = 1000
BATCH = 500  # the most an announcer publishes in one produce request

# The integration events that are operational events too, and what they are called there.
_MIRRORED: dict[str, OperationalType] = {
    "integration.error": "operational.integration.error",
    "integration.disconnected": "operational.integration.disconnected",
    "import.failed": "operational.import.failed",
}


def is_operational(event_type: str) -> bool:
    return event_type.startswith(OPERATIONAL_PREFIX)


def operational_event(workspace_id: str, type: OperationalType, **data: Any) -> OperationalEvent:
    """An operational event about now; `data` without its None values, its texts (an
    error, a reason) cut to `TEXT_LIMIT`."""
    return OperationalEvent(
        id=new_event_id(),
        type=type,
        workspace_id=workspace_id,
        data={
            name: value[:TEXT_LIMIT] if isinstance(value, str) else value
            for name, value in data.items()
            if value is not None
        },
    )


def mirror(event: IntegrationEvent) -> OperationalEvent | None:
    """The operational event an integration event is also, if it is one: the integration (or
    import job) it concerns, the reason, and the error as the integration event gave them."""
    kind = _MIRRORED.get(event.type)
    if kind is None:
        return None
    data = dict(event.data)
    if event.type == "import.failed":
        data["import_id"] = data.pop("job_id", None)
    reason = data.pop("reason", None) or event.type.split(".", 1)[1]
    return operational_event(
        event.workspace_id,
        kind,
        **data,
        integration_id=event.integration_id or None,
        provider=event.provider,
        reason=reason,
    ).model_copy(update={"occurred_at": event.occurred_at})


async def publish_integration_event(publisher: EventPublisher, event: IntegrationEvent) -> None:
    """`event` on `hookhub.integration.events` (raises as `EventPublisher.publish`), then the
    operational event it also is, if any: that one's loss is logged (and counted by the
    publisher), not raised, since the integration event that says the same is published."""
    await publisher.publish(Topic.INTEGRATION_EVENTS, event)
    operational = mirror(event)
    if operational is None:
        return
    try:
        await publisher.publish(Topic.OPERATIONAL_EVENTS, operational)
    except HookhubError as exc:
        log.warning(
            "operational_event_not_published",
            type=operational.type,
            event_id=operational.id,
            error=exc.message,
        )


class Announcer:
    """Operational events published off the path that makes them: `emit` queues one (no
    wait), a background task (`run`) publishes what has queued in one produce request, and
    what Kafka did not take is tried again, oldest first, after a pause that doubles up to
    `max_pause`. At most `limit` wait: past that (Kafka away for long) the oldest are let go
    of, logged and counted (`hookhub_operational_events_dropped_total`); the stop publishes
    what is left within its share and counts what it could not."""

    def __init__(
        self,
        publisher: EventPublisher,
        registry: CollectorRegistry,
        *,
        limit: int = 10_000,
        pause: float = 0.5,
        max_pause: float = 30.0,
    ) -> None:
        self._publisher = publisher
        self._limit = limit
        self._pause = pause
        self._max_pause = max_pause
        self._queued: deque[OperationalEvent] = deque()
        self._ready = asyncio.Event()
        self.dropped = Counter(
            "hookhub_operational_events_dropped_total",
            "Operational events never published: too many waited while Kafka was away, or "
            "the stop came first",
            registry=registry,
        )
        waiting = Gauge(
            "hookhub_operational_events_waiting",
            "Operational events waiting to be published",
            registry=registry,
        )
        waiting.set_function(lambda: len(self._queued))

    def emit(self, event: OperationalEvent) -> None:
        self._queued.append(event)
        self._trim()
        self._ready.set()

    def _trim(self) -> None:
        while len(self._queued) > self._limit:
            lost = self._queued.popleft()
            self.dropped.inc()
            log.warning("operational_event_dropped", type=lost.type, event_id=lost.id)

    async def run(self) -> None:
        pause = self._pause
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queued:
                try:
                    await self._publish_queued()
                except EventTooLarge:  # never taken: not tried again (data is kept short)
                    lost = [self._queued.popleft() for _ in range(min(BATCH, len(self._queued)))]
                    self.dropped.inc(len(lost))
                except HookhubError:  # logged and counted by the publisher: tried again
                    await asyncio.sleep(pause)
                    pause = min(self._max_pause, pause * 2)
                else:
                    pause = self._pause

    async def _publish_queued(self) -> None:
        """The oldest `BATCH` queued, in one produce request; given back (first again) if
        Kafka did not take them."""
        batch = [self._queued.popleft() for _ in range(min(BATCH, len(self._queued)))]
        try:
            await self._publisher.publish_encoded(
                Topic.OPERATIONAL_EVENTS,
                [Encoded(e.id, e.partition_key(), e.to_kafka()) for e in batch],
            )
        except BaseException:
            self._queued.extendleft(reversed(batch))
            self._trim()
            raise

    async def stop(self, seconds: float) -> None:
        """What is still queued, published within `seconds`; what is not, counted lost."""
        with contextlib.suppress(HookhubError, TimeoutError):
            async with asyncio.timeout(seconds):
                while self._queued:
                    await self._publish_queued()
        if self._queued:
            self.dropped.inc(len(self._queued))
            log.warning("operational_events_unpublished", count=len(self._queued))
            self._queued.clear()
