"""`GET /api/usage`: what each workspace uses (SPEC §14), from the counters kept as the work
happens (shared.domain.usage), never a scan of the deliveries.

With `workspace_id` (the admin, or that workspace's key or portal session): that workspace.
Without it: the admin gets the busiest workspaces of the window, a key or portal session
its own workspace. Another workspace's usage is 403 `other_workspace`, as its audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shared.domain import tenancy, usage
from shared.kernel.http.app import runtime_of
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.runtime import Runtime

router = APIRouter(
    prefix="/api/usage",
    tags=["usage"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


class Window(BaseModel):
    """The UTC days the windowed counts cover: those `HOOKHUB_DELIVERY_RETENTION` keeps."""

    since: datetime = Field(description="midnight (UTC) of the window's first day")
    until: datetime = Field(description="now")
    days: int = Field(description="the days in the window, today included")


class ByProvider(BaseModel):
    total: int
    by_provider: dict[str, int]


class WorkspaceUsage(BaseModel):
    workspace_id: str
    integrations: ByProvider = Field(description="integrations now (not deleted)")
    endpoints: int = Field(description="outgoing webhooks now (not deleted)")
    deliveries_kept: int = Field(description="deliveries stored now")
    attempts_kept: int = Field(description="delivery attempts stored now")
    events: ByProvider = Field(
        description="in the window: events accepted and published, by provider "
        "(`incoming` for incoming webhooks)"
    )
    messages_synced: int = Field(
        description="in the window: messages sync relayed, posted to a provider or brought "
        "in from one (not edits and deletes)"
    )
    messages_imported: int = Field(description="in the window: messages imports published")
    deliveries: int = Field(description="in the window: deliveries created")
    attempts: int = Field(description="in the window: delivery attempts made")
    activity: int = Field(
        description="in the window: the sum of events, messages synced and imported, "
        "deliveries and attempts (what the busiest are ranked by)"
    )


class UsageReport(BaseModel):
    window: Window
    data: list[WorkspaceUsage] = Field(
        description="the workspace asked for (or the caller's), else the busiest first"
    )


def _by_provider(counts: dict[str, int]) -> ByProvider:
    return ByProvider(total=sum(counts.values()), by_provider=dict(sorted(counts.items())))


def _out(found: usage.Usage) -> WorkspaceUsage:
    return WorkspaceUsage(
        workspace_id=found.workspace_id,
        integrations=_by_provider(found.integrations),
        endpoints=found.endpoints,
        deliveries_kept=found.deliveries_kept,
        attempts_kept=found.attempts_kept,
        events=_by_provider(found.events),
        messages_synced=found.messages_synced,
        messages_imported=found.messages_imported,
        deliveries=found.deliveries,
        attempts=found.attempts,
        activity=found.activity,
    )


@router.get("", response_model=UsageReport)
async def get_usage(
    runtime: RuntimeDep,
    workspace_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="one workspace; without it the admin gets the busiest workspaces",
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=100, description="how many of the busiest workspaces")
    ] = 10,
) -> UsageReport:
    if workspace_id and not tenancy.visible(workspace_id):
        raise tenancy.OtherWorkspace(
            f"the usage of workspace {workspace_id} is not this {tenancy.acting_as()}'s"
        )
    window = usage.window(runtime.settings.delivery_retention)
    db = runtime.db
    scope = workspace_id or tenancy.current()
    ids = [scope] if scope else await usage.busiest(db, window.since, limit)
    found = await usage.usage_of(db, ids, window.since)
    return UsageReport(
        window=Window(since=window.since, until=window.until, days=window.days),
        data=[_out(found[workspace]) for workspace in ids],
    )
