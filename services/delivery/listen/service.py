"""The listening endpoint `hookhub listen --events` makes, or finds again: the same caller,
workspace, name and events always come back to the same endpoint, so a listener that was
stopped gets, once restarted, what waited for it meanwhile."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.delivery.destinations.schemas import Listen
from services.delivery.outgoing_webhooks.repository import EndpointRepository
from services.delivery.outgoing_webhooks.schemas import (
    OutgoingWebhookCreate,
    OutgoingWebhookOut,
    check_events,
)
from services.delivery.outgoing_webhooks.service import EndpointService
from shared.kernel.errors import Invalid
from shared.kernel.http.auth import Caller
from shared.kernel.ids import PrintableId
from shared.kernel.mongo import Document

# A laptop is away for hours (a night, a weekend), not seconds: its deliveries wait about
# two days (and arrive at once when it reconnects) before they are dead-lettered.
RETRY_SCHEDULE = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400]


class ListenEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: PrintableId | None = Field(
        None, description="a key's own workspace when left out; required with the admin token"
    )
    events: list[str] = Field(
        min_length=1, max_length=100, description="event types, `*` and prefix wildcards"
    )
    name: str = Field("hookhub listen", min_length=1, max_length=200)

    _events = field_validator("events")(check_events)


class ListenEndpointOut(OutgoingWebhookOut):
    created: bool = Field(description="true: made by this call; false: found again")
    secret: str | None = Field(
        None, description="the signing secret, shown when this call made the endpoint (once)"
    )


def listen_key(workspace_id: str, caller: Caller, name: str, events: list[str]) -> str:
    """What makes a listening endpoint the same one: who asked, where, its name and its
    events (in any order)."""
    said = "\n".join([workspace_id, caller.kind, caller.id, name, *sorted(set(events))])
    return hashlib.sha256(said.encode()).hexdigest()


async def listening_endpoint(
    service: EndpointService,
    repository: EndpointRepository,
    caller: Caller,
    body: ListenEndpointCreate,
) -> tuple[Document, str | None]:
    """The caller's listening endpoint for `body`: found (no secret), or made (its secret).
    Two listeners started at the same instant with the same key, name and events may make
    two; each then finds the older one from its next start on."""
    workspace_id = body.workspace_id or caller.workspace_id
    if workspace_id is None:
        raise Invalid("workspace_id: the admin token must name the workspace to listen in")
    key = listen_key(workspace_id, caller, body.name, body.events)
    found = await repository.listening(workspace_id, key)
    if found is not None:
        return found, None
    return await service.create(
        OutgoingWebhookCreate(
            workspace_id=workspace_id,
            name=body.name,
            destination=Listen(type="listen"),
            events=body.events,
            retry_schedule=RETRY_SCHEDULE,
        ),
        marks={"listen_key": key},
    )
