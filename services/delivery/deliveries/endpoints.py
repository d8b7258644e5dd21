"""HTTP routes of `/api/deliveries`, `/api/webhooks/stats` and `/api/events` (SPEC §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field

from services.delivery.deliveries.repository import DeliveryRepository, schedule
from services.delivery.deliveries.timeline import AttemptMinutes
from services.delivery.event_types.catalog import Catalog
from shared.domain import tenancy
from shared.kernel import tracing
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.errors import Conflict, Invalid, NotFound
from shared.kernel.http.app import from_state, runtime_of
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.ids import id_time, utcnow
from shared.kernel.mongo import Document
from shared.kernel.runtime import Runtime

router = APIRouter(tags=["deliveries"], dependencies=[Authenticated], responses=MANAGEMENT_ERRORS)

DeliveriesDep = Annotated[
    DeliveryRepository, Depends(from_state("delivery_repository", DeliveryRepository))
]
MinutesDep = Annotated[AttemptMinutes, Depends(from_state("attempt_minutes", AttemptMinutes))]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
CatalogDep = Annotated[Catalog, Depends(from_state("event_type_catalog", Catalog))]
Status = Literal["pending", "active", "completed", "failed", "delayed", "cancelled"]


class SentRequest(BaseModel):
    """What an attempt sent the endpoint."""

    method: str
    url: str
    headers: dict[str, str] = Field(
        description="every header sent, the signatures too; the values of the endpoint's "
        "own `headers` (write-only) replaced by a note"
    )
    body: str | None = Field(
        description="the body sent where it is not the delivery's `payload` as it is (a "
        "transformation's); null: the payload was sent"
    )


class Attempt(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    response_headers: dict[str, str]
    response_body: str
    duration_ms: float
    error: str | None
    next_attempt_at: datetime | None
    request: SentRequest | None = Field(
        None,
        description="what was sent; null when nothing was (the transformation failed) or "
        "the attempt was made before hookhub kept it",
    )


class Delivery(BaseModel):
    id: str
    webhook_id: str
    workspace_id: str
    event_id: str
    event_type: str
    msg_id: str
    status: Status
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None = None
    last_error: str | None = None
    replayed: bool = False  # made by a replay of what the endpoint missed
    trace_id: str | None = Field(
        None,
        description="the trace of the event it was made for (W3C trace id), which each of its "
        "attempts is a span of; null when the event came with none or tracing is off",
    )
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime


class DeliveryWithAttempts(Delivery):
    payload: dict[str, Any]
    attempt_log: list[Attempt]


class Stats(BaseModel):
    total: int
    pending: int
    active: int
    completed: int
    failed: int
    delayed: int
    cancelled: int = 0


class Minute(BaseModel):
    minute: datetime
    success: int = 0
    http_error: int = 0
    network_error: int = 0


class Timeline(BaseModel):
    since: datetime
    until: datetime
    minutes: list[Minute]


def _delivery(doc: Document) -> dict[str, Any]:
    # Deliveries written before `occurred_at` was stored: the millisecond in their `_id`.
    occurred_at = doc.get("occurred_at") or datetime.fromtimestamp(id_time(doc["_id"]), UTC)
    return {
        **doc,
        "id": doc["_id"],
        "webhook_id": doc["endpoint_id"],
        "occurred_at": occurred_at,
        "trace_id": tracing.trace_id(doc.get("traceparent")),
    }


@router.get("/api/deliveries", response_model=Page[Delivery])
async def list_deliveries(
    deliveries: DeliveriesDep,
    page: PageDep,
    workspace_id: Annotated[
        str | None,
        Query(
            max_length=200,
            description="one workspace's deliveries (the admin token's filter; a key's or "
            "portal session's list is its own workspace's whatever this asks)",
        ),
    ] = None,
    webhook_id: str | None = None,
    status: Status | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
) -> Page[Delivery]:
    filters: Document = {}
    if workspace_id:
        filters["workspace_id"] = workspace_id  # narrowed to a key's own by the repository
    if webhook_id:
        filters["endpoint_id"] = webhook_id
    if status:
        filters["status"] = status
    if event_type:
        filters["event_type"] = event_type
    if since:
        filters["created_at"] = {"$gte": since}
    docs, next_cursor = await deliveries.page(filters=filters, limit=page.limit, cursor=page.cursor)
    return Page(data=[Delivery.model_validate(_delivery(d)) for d in docs], next_cursor=next_cursor)


@router.get("/api/deliveries/{delivery_id}", response_model=DeliveryWithAttempts)
async def get_delivery(
    delivery_id: Annotated[str, Path(max_length=200)], deliveries: DeliveriesDep
) -> DeliveryWithAttempts:
    doc = await deliveries.get(delivery_id)
    if doc is None:
        raise NotFound(f"delivery {delivery_id} not found")
    attempts = await deliveries.attempts(doc)
    return DeliveryWithAttempts.model_validate(
        {**_delivery(doc), "payload": orjson.loads(bytes(doc["body"])), "attempt_log": attempts}
    )


@router.post(
    "/api/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Delivery,
    responses=error_responses(409),
)
async def retry_delivery(
    delivery_id: Annotated[str, Path(max_length=200)],
    deliveries: DeliveriesDep,
    force: Annotated[
        bool,
        Query(description="send a `completed` delivery again (the receiver gets it twice)"),
    ] = False,
) -> Delivery:
    """One more attempt now (not a new schedule) of a `failed` or `delayed` delivery.

    409 `delivery_in_progress` while it is `pending` or `active`; 409 `delivery_completed`
    once the endpoint has accepted it, unless `force=true`: the same event (same
    `webhook-id`, so receivers that deduplicate drop it) is sent once more."""
    doc = await deliveries.get(delivery_id)
    if doc is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if doc["status"] in ("pending", "active"):
        raise Conflict("the delivery is already being sent", code="delivery_in_progress")
    if doc["status"] == "completed" and not force:
        raise Conflict(
            "the endpoint already accepted this delivery; retry with force=true to send it again",
            code="delivery_completed",
        )
    await deliveries.reopen(
        {"_id": delivery_id},
        {
            "status": "pending",
            "manual": True,
            **schedule(next_attempt_at=utcnow()),
        },
    )
    updated = await deliveries.get(delivery_id)
    if updated is None:  # removed by retention a moment ago
        raise NotFound(f"delivery {delivery_id} not found")
    return Delivery.model_validate(_delivery(updated))


@router.get("/api/webhooks/stats", response_model=Stats)
async def delivery_stats(deliveries: DeliveriesDep, webhook_id: str | None = None) -> Stats:
    counts = await deliveries.counts(webhook_id)
    return Stats(total=sum(counts.values()), **counts)


@router.get("/api/webhooks/stats/timeline", response_model=Timeline)
async def delivery_timeline(
    counted: MinutesDep,
    minutes: Annotated[int, Query(ge=1, le=1440)] = 60,
    webhook_id: str | None = None,
) -> Timeline:
    """Delivery attempts per minute by outcome over the last `minutes`, oldest first, every
    minute present: `success` (a 2xx), `http_error` (any other status), `network_error`
    (no answer: timeout, refused connection, TLS)."""
    until = utcnow()
    start = until.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    buckets = {
        start + timedelta(minutes=i): Minute(minute=start + timedelta(minutes=i))
        for i in range(minutes)
    }
    for minute, counts in await counted.since(start, webhook_id):
        bucket = buckets.get(minute.replace(tzinfo=UTC) if minute.tzinfo is None else minute)
        if bucket is not None:
            bucket.success += counts["success"]
            bucket.http_error += counts["http_error"]
            bucket.network_error += counts["network_error"]
    return Timeline(since=start, until=until, minutes=list(buckets.values()))


@router.post("/api/events", status_code=status.HTTP_202_ACCEPTED)
async def publish_event(
    event: ChatEvent, runtime: RuntimeDep, catalog: CatalogDep
) -> dict[str, str]:
    """Publish a chat event; 202 once it is on `hookhub.chat.events`. 422 when its type's
    enforced schema refuses its `data` (naming the JSON path that fails), or, with
    HOOKHUB_EVENT_TYPES_STRICT, when the catalog does not hold its type."""
    tenancy.may_create_in(event.workspace_id)
    refused = await catalog.refusal(
        event.workspace_id, event.type, event.data, published_at=utcnow(), source="api"
    )
    if refused is not None:
        raise Invalid(
            refused.message,
            code="unknown_event_type" if refused.reason == "unknown_type" else "invalid_event",
        )
    tracing.describe(event)
    await runtime.publisher.publish(Topic.CHAT_EVENTS, event)
    return {"id": event.id, "status": "accepted"}
