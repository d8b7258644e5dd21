"""Fan-out and scheduling: an event becomes one delivery per matching endpoint, durably.

Deliveries are written before the event's offset is committed, with ids derived from
(event, endpoint), so a replayed event finds its deliveries already there and sends nothing
twice. The scheduler hands due deliveries (retries, and anything a dead process held) to
the dispatcher; leases keep two processes from sending the same delivery at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge

from services.delivery.deliveries.dispatcher import Dispatcher, Job
from services.delivery.deliveries.repository import DeliveryRepository
from services.delivery.outgoing_webhooks.matching import matches
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.cache import RefreshingCache
from shared.ids import derived_id, isoformat, utcnow
from shared.mongo import Document
from shared.signing import webhook_body

log = structlog.get_logger(__name__)


def delivery_doc(
    *,
    endpoint: EndpointSnapshot,
    event_id: str,
    event_type: str,
    body: bytes,
    now: datetime,
    lease: timedelta,
    manual: bool = False,
) -> Document:
    return {
        "_id": derived_id(event_id, endpoint.id, prefix="dlv"),
        # Standard Webhooks' webhook-id: one per event, the same on every retry and endpoint.
        "msg_id": derived_id(event_id, prefix="msg"),
        "endpoint_id": endpoint.id,
        "workspace_id": endpoint.workspace_id,
        "event_id": event_id,
        "event_type": event_type,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "tries": 0,
        "manual": manual,
        "next_attempt_at": now,
        # Held by the process that wrote it until it is sent; if that process dies the
        # lease runs out and the scheduler of another one takes over.
        "lease_until": now + lease,
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True)
class Event:
    """What fan-out needs of a chat or provider event."""

    id: str
    workspace_id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any] | Any


class FanOut:
    def __init__(
        self,
        endpoints: RefreshingCache[str, EndpointSnapshot],
        repository: DeliveryRepository,
        dispatcher: Dispatcher,
        lease: timedelta,
    ) -> None:
        self._endpoints = endpoints
        self._repository = repository
        self._dispatcher = dispatcher
        self._lease = lease

    async def event(
        self,
        *,
        event_id: str,
        workspace_id: str,
        event_type: str,
        occurred_at: datetime,
        data: Mapping[str, Any] | Any,
        only: EndpointSnapshot | None = None,
    ) -> list[Document]:
        return await self.events(
            [Event(event_id, workspace_id, event_type, occurred_at, data)], only=only
        )

    async def events(
        self, events: list[Event], only: EndpointSnapshot | None = None
    ) -> list[Document]:
        """One bulk write for every delivery of every event in the batch."""
        now = utcnow()
        docs: list[Document] = []
        for event in events:
            targets = [only] if only is not None else self._targets(event)
            if not targets:
                continue
            body = webhook_body(event.type, isoformat(event.occurred_at), event.data)
            docs += [
                delivery_doc(
                    endpoint=e,
                    event_id=event.id,
                    event_type=event.type,
                    body=body,
                    now=now,
                    lease=self._lease,
                )
                for e in targets
            ]
        created = await self._repository.insert_new(docs)
        for doc in created:
            self._dispatcher.submit(Job.from_doc(doc))
        return created

    def _targets(self, event: Event) -> list[EndpointSnapshot]:
        return [
            e
            for e in self._endpoints.values()
            if e.workspace_id == event.workspace_id and e.enabled and matches(e.events, event.type)
        ]


class Scheduler:
    def __init__(
        self,
        repository: DeliveryRepository,
        dispatcher: Dispatcher,
        *,
        lease: timedelta,
        poll_seconds: float,
        registry: CollectorRegistry,
    ) -> None:
        self._repository = repository
        self._dispatcher = dispatcher
        self._lease = lease
        self._poll = poll_seconds
        self.scheduled = Gauge(
            "hookhub_delivery_scheduled",
            "Deliveries waiting for a retry (status delayed)",
            registry=registry,
        )

    async def run(self) -> None:
        polls = 0
        while True:
            try:
                for doc in await self._repository.claim_due(utcnow(), self._lease, limit=1000):
                    self._dispatcher.submit(Job.from_doc(doc))
                if polls % max(int(10 / self._poll), 1) == 0:  # every ~10 s
                    self.scheduled.set(await self._repository.count_status("delayed"))
            except Exception as exc:
                log.warning("scheduler_poll_failed", error=repr(exc))
            polls += 1
            await asyncio.sleep(self._poll)

    async def keep_leases(self) -> None:
        """Extend the leases of what this process holds, so nobody else takes it over."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            try:
                await self._repository.extend_leases(
                    list(self._dispatcher.held), utcnow() + self._lease
                )
            except Exception as exc:
                log.warning("lease_extension_failed", error=repr(exc))
