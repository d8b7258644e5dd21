"""`GET /api/messages/lookup`: every copy of one message, from the message map (SPEC §4)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from shared.domain import tenancy
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.message_map import Copy, MessageMap
from shared.kernel.errors import BadRequest, NotFound
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS

router = APIRouter(
    prefix="/api/messages",
    tags=["messages"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

MapDep = Annotated[MessageMap, Depends(from_state("message_map", MessageMap))]
IntegrationsDep = Annotated[
    IntegrationRepository, Depends(from_state("integration_repository", IntegrationRepository))
]
Param = Annotated[str | None, Query(min_length=1, max_length=200)]


class CopyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    provider: str
    integration_id: str
    mapping_id: str | None
    external_channel_id: str
    external_message_id: str
    external_thread_id: str | None
    # outbound: hookhub posted it; inbound: a provider user wrote it; import: history;
    # notification: a notification's root, hookhub's own (its provider the notifying one).
    origin: Literal["outbound", "inbound", "import", "notification"]


class Lookup(BaseModel):
    workspace_id: str
    channel_id: str
    # The chat's id of the message; null until the chat named it (`data.inbound_id`).
    message_id: str | None
    # The `message.received` envelope id the chat got it under, for provider messages.
    inbound_id: str | None
    copies: list[CopyOut]


@router.get("/lookup", response_model=Lookup)
async def lookup_message(
    message_map: MapDep,
    integrations: IntegrationsDep,
    provider: Param = None,
    external_channel_id: Param = None,
    external_message_id: Param = None,
    channel_id: Param = None,
    message_id: Param = None,
) -> Lookup:
    """By a provider copy (`provider`, `external_channel_id`, `external_message_id`) or by
    the chat's message (`channel_id`, `message_id`; the inbound envelope id works too)."""
    if provider and external_channel_id and external_message_id:
        copies = await message_map.lookup_external(
            provider,
            external_channel_id,
            external_message_id,
            await integrations.ids_of(provider),
        )
    elif channel_id and message_id:
        copies = [
            c for c in await message_map.of_messages([message_id]) if c.channel_id == channel_id
        ]
    else:
        raise BadRequest(
            "give provider, external_channel_id and external_message_id, or channel_id and "
            "message_id",
            code="incomplete_lookup",
        )
    # The map serves every workspace's sync from its cache: confined here, not in its queries.
    copies = [c for c in copies if tenancy.visible(c.workspace_id)]
    if not copies:
        raise NotFound("the message map holds no such message")
    return _lookup(copies)


def _lookup(copies: list[Copy]) -> Lookup:
    first = copies[0]
    return Lookup(
        workspace_id=first.workspace_id,
        channel_id=first.channel_id,
        message_id=next((c.chat_message_id for c in copies if c.chat_message_id), None),
        inbound_id=next((c.inbound_id for c in copies if c.inbound_id), None),
        copies=[CopyOut.model_validate(c) for c in sorted(copies, key=lambda c: c.id)],
    )
