"""HTTP routes of `/api/outgoing-webhooks` (SPEC §4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from services.delivery.deliveries.circuit import Circuit, State, circuit_out, tuning_out
from services.delivery.deliveries.replay import ReplayCreate, ReplayOut, Replays, replay_out
from services.delivery.deliveries.repository import DeliveryRepository, KeyRepository, schedule
from services.delivery.deliveries.service import FanOut
from services.delivery.destinations.catalog import shown
from services.delivery.outgoing_webhooks.repository import EndpointRepository
from services.delivery.outgoing_webhooks.schemas import (
    HeldKeysOut,
    OutgoingWebhookCreate,
    OutgoingWebhookOut,
    OutgoingWebhookUpdate,
    OutgoingWebhookWithSecret,
    Recover,
    RotateSecret,
)
from services.delivery.outgoing_webhooks.service import EndpointService, snapshot
from shared.kernel.cache import RefreshingCache
from shared.kernel.http.app import from_state, runtime_of
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Document
from shared.kernel.runtime import Runtime

router = APIRouter(
    prefix="/api/outgoing-webhooks",
    tags=["outgoing webhooks"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

ServiceDep = Annotated[EndpointService, Depends(from_state("endpoint_service", EndpointService))]
RepositoryDep = Annotated[
    EndpointRepository, Depends(from_state("endpoint_repository", EndpointRepository))
]
DeliveriesDep = Annotated[
    DeliveryRepository, Depends(from_state("delivery_repository", DeliveryRepository))
]
FanOutDep = Annotated[FanOut, Depends(from_state("fan_out", FanOut))]
KeysDep = Annotated[KeyRepository, Depends(from_state("key_repository", KeyRepository))]
CacheDep = Annotated[
    RefreshingCache[str, Any], Depends(from_state("endpoint_cache", RefreshingCache))
]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
ReplaysDep = Annotated[Replays, Depends(from_state("replays", Replays))]
EndpointId = Annotated[str, Path(max_length=200)]
# How much later than the probe's time the breaker may have written a delivery set aside
# for it: its own clock read twice (utcnow() + (the probe's time - utcnow())).
SET_ASIDE_SLACK = timedelta(seconds=1)


def endpoint_out(doc: Document) -> dict[str, Any]:
    tuning = tuning_out(doc.get("circuit_breaker"))
    # Header values often are the receiver's credentials: write-only, names only here.
    return {
        **doc,
        "id": doc["_id"],
        "url": doc.get("url"),
        "destination": shown(doc.get("destination")),
        "headers_configured": list(doc.get("headers") or {}),
        # Off, nothing is held whatever a replica wrote before it heard (deliveries/circuit.py).
        "circuit": circuit_out(doc.get("circuit") if tuning["enabled"] else None),
        "circuit_breaker": tuning,
    }


@router.post("", status_code=status.HTTP_201_CREATED, response_model=OutgoingWebhookWithSecret)
async def create_outgoing_webhook(
    body: OutgoingWebhookCreate, service: ServiceDep, cache: CacheDep
) -> OutgoingWebhookWithSecret:
    doc, secret = await service.create(body)
    cache.apply(doc)
    return OutgoingWebhookWithSecret.model_validate({**endpoint_out(doc), "secret": secret})


@router.get("", response_model=Page[OutgoingWebhookOut])
async def list_outgoing_webhooks(
    repository: RepositoryDep, page: PageDep, workspace_id: str | None = None
) -> Page[OutgoingWebhookOut]:
    docs, next_cursor = await repository.page(
        workspace_id=workspace_id, limit=page.limit, cursor=page.cursor
    )
    return Page(
        data=[OutgoingWebhookOut.model_validate(endpoint_out(d)) for d in docs],
        next_cursor=next_cursor,
    )


@router.get("/{endpoint_id}", response_model=OutgoingWebhookOut)
async def get_outgoing_webhook(endpoint_id: EndpointId, service: ServiceDep) -> OutgoingWebhookOut:
    return OutgoingWebhookOut.model_validate(endpoint_out(await service.get(endpoint_id)))


@router.patch("/{endpoint_id}", response_model=OutgoingWebhookOut)
async def update_outgoing_webhook(
    endpoint_id: EndpointId,
    body: OutgoingWebhookUpdate,
    service: ServiceDep,
    cache: CacheDep,
    deliveries: DeliveriesDep,
) -> OutgoingWebhookOut:
    breaker_off = body.circuit_breaker is not None and body.circuit_breaker.enabled is False
    before = await service.get(endpoint_id) if breaker_off else None
    doc = await service.update(endpoint_id, body)
    cache.apply(doc)
    if before is not None:
        await _release_set_aside(deliveries, before)
    return OutgoingWebhookOut.model_validate(endpoint_out(doc))


async def _release_set_aside(deliveries: DeliveryRepository, before: Document) -> None:
    """Its breaker turned off: what its open circuit set aside is due now, not at the next
    probe's time, which is when the breaker made each due (deliveries/circuit.py; the
    moment it did so adds microseconds). A FIFO key parked for the probe keeps its time."""
    circuit = Circuit.from_doc(before.get("circuit"))
    if circuit is None or circuit.state is State.CLOSED or circuit.next_probe_at is None:
        return
    probe_at = circuit.next_probe_at
    await deliveries.reopen(
        {
            "endpoint_id": before["_id"],
            "status": "delayed",
            "lease_owner": None,
            "next_attempt_at": {"$gte": probe_at, "$lt": probe_at + SET_ASIDE_SLACK},
        },
        schedule(next_attempt_at=utcnow()),
    )


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_outgoing_webhook(
    endpoint_id: EndpointId, service: ServiceDep, cache: CacheDep
) -> Response:
    await service.delete(endpoint_id)
    cache.apply({"_id": endpoint_id, "deleted_at": utcnow()})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/rotate-secret", response_model=OutgoingWebhookWithSecret)
async def rotate_outgoing_webhook_secret(
    endpoint_id: EndpointId,
    service: ServiceDep,
    cache: CacheDep,
    body: RotateSecret | None = None,
) -> OutgoingWebhookWithSecret:
    """A new secret; the old one keeps signing beside it for `grace_seconds` (24 h)."""
    doc, secret = await service.rotate_secret(endpoint_id, body or RotateSecret())
    cache.apply(doc)
    return OutgoingWebhookWithSecret.model_validate({**endpoint_out(doc), "secret": secret})


@router.post("/{endpoint_id}/test", status_code=status.HTTP_202_ACCEPTED)
async def test_outgoing_webhook(
    endpoint_id: EndpointId, service: ServiceDep, fan_out: FanOutDep, runtime: RuntimeDep
) -> dict[str, str]:
    """Send a `webhook.test` event to this endpoint only."""
    doc = await service.get(endpoint_id)
    event_id = new_id("evt")
    [delivery] = await fan_out.event(
        event_id=event_id,
        workspace_id=doc["workspace_id"],
        event_type="webhook.test",
        occurred_at=utcnow(),
        data={"message": "a test event from hookhub", "webhook_id": endpoint_id},
        only=snapshot(doc, runtime.secrets),
    )
    return {"event_id": event_id, "delivery_id": delivery["_id"]}


@router.post("/{endpoint_id}/recover", status_code=status.HTTP_202_ACCEPTED)
async def recover_outgoing_webhook(
    endpoint_id: EndpointId, body: Recover, service: ServiceDep, deliveries: DeliveriesDep
) -> dict[str, int]:
    """Send again every failed delivery of this endpoint created in [since, until)."""
    await service.get(endpoint_id)
    created: dict[str, Any] = {"$gte": body.since}
    if body.until:
        created["$lt"] = body.until
    count = await deliveries.reopen(
        {"endpoint_id": endpoint_id, "status": "failed", "created_at": created},
        {
            "status": "pending",
            "tries": 0,
            "manual": False,
            **schedule(next_attempt_at=utcnow()),
        },
    )
    return {"recovered": count}


@router.post(
    "/{endpoint_id}/replay", status_code=status.HTTP_202_ACCEPTED, response_model=ReplayOut
)
async def replay_outgoing_webhook(
    endpoint_id: EndpointId, body: ReplayCreate, service: ServiceDep, replays: ReplaysDep
) -> ReplayOut:
    """Send what this endpoint missed: its workspace's events of its types published in
    [since, until) of which it has no delivery, read back from Kafka (a job: follow it at
    `GET …/replays/{id}`)."""
    return replay_out(await replays.start(await service.get(endpoint_id), body))


@router.get("/{endpoint_id}/replays", response_model=list[ReplayOut])
async def list_replays(
    endpoint_id: EndpointId,
    service: ServiceDep,
    replays: ReplaysDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[ReplayOut]:
    """This endpoint's replays, newest first."""
    await service.get(endpoint_id)
    return [replay_out(doc) for doc in await replays.page(endpoint_id, limit)]


@router.get("/{endpoint_id}/replays/{replay_id}", response_model=ReplayOut)
async def get_replay(
    endpoint_id: EndpointId, replay_id: EndpointId, service: ServiceDep, replays: ReplaysDep
) -> ReplayOut:
    await service.get(endpoint_id)
    return replay_out(await replays.get(endpoint_id, replay_id))


@router.post("/{endpoint_id}/replays/{replay_id}/cancel", response_model=ReplayOut)
async def cancel_replay(
    endpoint_id: EndpointId, replay_id: EndpointId, service: ServiceDep, replays: ReplaysDep
) -> ReplayOut:
    """Stop a running replay; the deliveries it made are kept (and sent)."""
    await service.get(endpoint_id)
    return replay_out(await replays.cancel(await replays.get(endpoint_id, replay_id)))


HELD_READ = 5000  # queued deliveries read for the held keys, at most


@router.get("/{endpoint_id}/held-keys", response_model=HeldKeysOut)
async def held_keys(endpoint_id: EndpointId, service: ServiceDep, keys: KeysDep) -> HeldKeysOut:
    """A FIFO endpoint's keys whose deliveries wait in MongoDB (a head to be retried, or
    queued behind one): each key's head and how long it has waited. Keys that flow are
    not listed."""
    await service.get(endpoint_id)  # in the caller's workspace
    queued = await keys.held_keys(endpoint_id, HELD_READ)
    now = utcnow()
    by_key: dict[str, dict[str, Any]] = {}
    for doc in queued:
        held = by_key.get(doc["ordering_key"])
        if held is None:
            by_key[doc["ordering_key"]] = {
                "ordering_key": doc["ordering_key"],
                "head": {**doc, "id": doc["_id"]},
                "waiting_seconds": round((now - doc["created_at"]).total_seconds(), 3),
                "queued": 1,
            }
        else:
            held["queued"] += 1
    data = sorted(by_key.values(), key=lambda held: -held["waiting_seconds"])
    return HeldKeysOut.model_validate({"data": data, "truncated": len(queued) >= HELD_READ})
