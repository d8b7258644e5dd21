"""`/api/workspaces/{workspace_id}/portal-sessions` (SPEC §13): a short-lived token that
opens the console in one workspace, for the chat product to link to or embed from its own
settings page; and expire-all.

A session is a key of kind `portal` (shared.domain.api_keys): checked, cached and refused once
ended exactly as a key is. Issued by the admin token or a `write` key of that workspace;
never by a portal session (a session must not outlive itself through another)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from services.oauth.api_keys.endpoints import RepositoryDep, WorkspaceId
from shared.domain import api_keys, tenancy
from shared.kernel.errors import Forbidden
from shared.kernel.http.app import runtime_of
from shared.kernel.http.auth import Authenticated, CallerDep
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.runtime import Runtime

router = APIRouter(
    prefix="/api/workspaces/{workspace_id}/portal-sessions",
    tags=["portal sessions"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]

DEFAULT_SECONDS = 3600
MAX_SECONDS = 7 * 24 * 3600


class PortalSessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: int = Field(DEFAULT_SECONDS, ge=60, le=MAX_SECONDS, description="seconds")
    read_only: bool = False


class PortalSession(BaseModel):
    id: str
    workspace_id: str
    url: str = Field(description="The console in this workspace; the token is in the fragment")
    token: str = Field(description="Shown in this answer only")
    read_only: bool
    expires_at: datetime


class Expired(BaseModel):
    expired: int


async def _issuer(caller: CallerDep, workspace_id: WorkspaceId) -> None:
    if caller.kind == "portal":
        raise Forbidden("a portal session cannot open another", code="not_a_key")
    tenancy.may_create_in(workspace_id)


IssuerDep = Depends(_issuer)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PortalSession,
    dependencies=[IssuerDep],
)
async def create_portal_session(
    workspace_id: WorkspaceId,
    repository: RepositoryDep,
    runtime: RuntimeDep,
    body: PortalSessionCreate | None = None,
) -> PortalSession:
    body = body or PortalSessionCreate()
    token, doc = api_keys.issue(
        api_keys.PORTAL,
        workspace_id,
        "portal session",
        ["read"] if body.read_only else ["read", "write"],
        None,
    )
    doc["expires_at"] = doc["created_at"] + timedelta(seconds=body.expires_in)
    await repository.insert(doc)
    base = runtime.settings.public_url.rstrip("/")
    return PortalSession(
        id=doc["_id"],
        workspace_id=workspace_id,
        url=f"{base}/portal#token={token}",
        token=token,
        read_only=body.read_only,
        expires_at=doc["expires_at"],
    )


@router.post("/expire-all", response_model=Expired, dependencies=[IssuerDep])
async def expire_portal_sessions(workspace_id: WorkspaceId, repository: RepositoryDep) -> Expired:
    """End every portal session of the workspace: refused by every replica within 5 s."""
    return Expired(expired=await repository.end_portal_sessions(workspace_id))


me_router = APIRouter(prefix="/api/me", tags=["portal sessions"], responses=MANAGEMENT_ERRORS)


class Me(BaseModel):
    """Who the bearer is: what the console (and a chat product's code) asks first."""

    kind: Literal["admin", "key", "portal"]
    id: str
    workspace_id: str | None = Field(description="null for the admin token: every workspace")
    can_write: bool
    expires_at: datetime | None = None


@me_router.get("", response_model=Me)
async def who_am_i(caller: CallerDep) -> Me:
    return Me(
        kind=caller.kind,
        id=caller.id,
        workspace_id=caller.workspace_id,
        can_write=caller.can_write,
        expires_at=caller.expires_at,
    )
