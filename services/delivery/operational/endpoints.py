"""HTTP route of `/api/operational-events` (SPEC §17): the timeline of a workspace's
operational events, or of one endpoint's, integration's or import's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.delivery.operational.repository import OperationalEventRepository
from shared.kernel.envelopes import OperationalType
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.mongo import Document

router = APIRouter(
    prefix="/api/operational-events",
    tags=["operational events"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

RepositoryDep = Annotated[
    OperationalEventRepository,
    Depends(from_state("operational_events", OperationalEventRepository)),
]


class OperationalEventOut(BaseModel):
    id: str
    workspace_id: str
    type: str
    occurred_at: datetime
    resource_id: str | None = None
    data: dict[str, Any]


@router.get("", response_model=Page[OperationalEventOut])
async def list_operational_events(
    repository: RepositoryDep,
    page: PageDep,
    workspace_id: Annotated[
        str | None,
        Query(
            max_length=200,
            description="one workspace's (the admin token's filter; a key's or portal "
            "session's list is its own workspace's whatever this asks)",
        ),
    ] = None,
    resource_id: Annotated[
        str | None,
        Query(max_length=200, description="one endpoint's, integration's or import's"),
    ] = None,
    type: OperationalType | None = None,
) -> Page[OperationalEventOut]:
    """The operational events the delivery service kept (as long as deliveries), newest
    first."""
    filters: Document = {}
    if workspace_id:
        filters["workspace_id"] = workspace_id
    if resource_id:
        filters["resource_id"] = resource_id
    if type:
        filters["type"] = type
    docs, next_cursor = await repository.page(filters, limit=page.limit, cursor=page.cursor)
    return Page(
        data=[OperationalEventOut.model_validate({**d, "id": d["_id"]}) for d in docs],
        next_cursor=next_cursor,
    )
