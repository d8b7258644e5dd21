"""HTTP route of `/api/audit-events`: the audit log, newest first, filtered and paginated.

A workspace's key or portal session sees its own workspace's entries only; asking for
another workspace's answers 403 (SPEC §13: other workspaces' audit is 403, unlike other
lists, which show the caller's own whatever they ask for). Entries of no workspace
(provider apps) are the admin's alone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shared.domain import audit, tenancy
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.mongo import Document

router = APIRouter(
    prefix="/api/audit-events",
    tags=["audit"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

AuditDep = Annotated[audit.AuditLog, Depends(from_state("audit", audit.AuditLog))]
Filter = Annotated[str | None, Query(max_length=200)]


class Actor(BaseModel):
    kind: Literal["admin", "key", "portal", "chat_user"]
    id: str = Field(
        description="`admin`, a key's id, a portal session's id, or the chat user who "
        "clicked a card's action or typed a slash command"
    )


class CardAction(BaseModel):
    """What a click on a card did at the provider (SPEC §20): `result` done, duplicate
    (already done by another click), refused or failed."""

    result: str
    provider: str | None
    provider_user: str | None = Field(description="who the provider acted as")
    item: str | None = Field(description="the item acted on, as the thread knows it")
    message_id: str = Field(description="the card clicked")
    outcome: str | None = Field(description="what the thread was told")


class SlashCommand(BaseModel):
    """The slash command that made a change from a channel (SPEC §20)."""

    id: str = Field(description="the `command.invoked` event's id")
    name: str = Field(description="`subscribe` or `unsubscribe`")
    channel_id: str = Field(description="the channel it was typed in")
    integration_id: str | None = Field(description="the integration it acted on")


class AuditEvent(BaseModel):
    """One change made through the management API. `fields` names what the request body
    set (`settings.<name>` for an integration's settings), never a value."""

    id: str
    at: datetime
    workspace_id: str | None = Field(description="null: of no workspace (provider apps)")
    actor: Actor
    resource_type: str | None = Field(
        description="integration, outgoing_webhook, incoming_webhook, mapping, subscription, "
        "delivery, import, api_key, portal_session, provider_app, account_link, card_action"
    )
    resource_id: str | None
    action: str = Field(
        description="create, update, delete, enable, disable, rotate, test, recover, retry, "
        "connect, disconnect, import, cancel, resume, expire-all, create-issue, put; a "
        "card action's id (acknowledge, silence:1h)"
    )
    fields: list[str]
    request_id: str | None = Field(description="the answer's `X-Request-ID`")
    method: str | None = Field(
        description="the request's; null for a change from a channel (a card's action, a "
        "slash command)"
    )
    route: str | None = Field(
        description="the route's template: /api/integrations/{integration_id}; null for a "
        "change from a channel"
    )
    status: int | None = Field(description="the answer's; null for a change from a channel")
    card_action: CardAction | None = None
    command: SlashCommand | None = None


def _out(doc: Document) -> AuditEvent:
    return AuditEvent.model_validate({**doc, "id": doc["_id"]})


@router.get("", response_model=Page[AuditEvent], responses=error_responses(403))
async def list_audit_events(
    log: AuditDep,
    page: PageDep,
    workspace_id: Filter = None,
    resource_id: Filter = None,
    resource_type: Filter = None,
    action: Filter = None,
    actor: Annotated[str | None, Query(max_length=200, description="an actor's id")] = None,
    since: Annotated[datetime | None, Query(description="entries at or after")] = None,
) -> Page[AuditEvent]:
    if workspace_id and not tenancy.visible(workspace_id):
        raise tenancy.OtherWorkspace(
            f"the audit log of workspace {workspace_id} is not this {tenancy.acting_as()}'s"
        )
    docs, next_cursor = await log.page(
        limit=page.limit,
        cursor=page.cursor,
        since=since,
        workspace_id=workspace_id,
        resource_id=resource_id,
        resource_type=resource_type,
        action=action,
        actor=actor,
    )
    return Page(data=[_out(doc) for doc in docs], next_cursor=next_cursor)
