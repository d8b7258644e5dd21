"""HTTP routes of `/api/event-types` (SPEC §17), and the global catalog for the edge's
AsyncAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from services.delivery.event_types.catalog import Catalog, EventTypeSnapshot
from services.delivery.event_types.schemas import EventTypeCreate, EventTypeOut, EventTypeUpdate
from services.delivery.event_types.service import EventTypeService, examples_of, schema_of
from shared.kernel.envelopes import EVENT_TYPE_PATTERN
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.mongo import Document

router = APIRouter(
    prefix="/api/event-types",
    tags=["event types"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)
# Not under /api: the edge asks it for /asyncapi.json and routes no client to it.
catalog_router = APIRouter(include_in_schema=False)

ServiceDep = Annotated[
    EventTypeService, Depends(from_state("event_type_service", EventTypeService))
]
CatalogDep = Annotated[Catalog, Depends(from_state("event_type_catalog", Catalog))]
Name = Annotated[str, Path(pattern=EVENT_TYPE_PATTERN, max_length=200)]
Workspace = Annotated[
    str | None,
    Query(
        max_length=200,
        description="the admin token's choice of workspace (its own types, and the global "
        "ones it does not shadow); a key's or portal session's is its own whatever this asks",
    ),
]


def _out(doc: Document) -> EventTypeOut:
    return EventTypeOut.model_validate(
        {**doc, "id": doc["_id"], "schema": schema_of(doc), "examples": examples_of(doc)}
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EventTypeOut,
    responses=error_responses(409),
)
async def create_event_type(
    body: EventTypeCreate, service: ServiceDep, catalog: CatalogDep
) -> EventTypeOut:
    """A global type (no `workspace_id`: the admin token only) or a workspace's own, which
    shadows a global type of the same name for that workspace. 422 when the schema is not
    JSON Schema 2020-12, or an example fails it."""
    doc = await service.create(body)
    catalog.cache.apply(doc)
    return _out(doc)


@router.get("", response_model=Page[EventTypeOut])
async def list_event_types(
    service: ServiceDep, page: PageDep, workspace_id: Workspace = None
) -> Page[EventTypeOut]:
    """A workspace's view of the catalog: its own types and the global ones it does not
    shadow. The admin token without `workspace_id`: every type, global and every
    workspace's."""
    docs, next_cursor = await service.page(workspace_id, limit=page.limit, cursor=page.cursor)
    return Page(data=[_out(doc) for doc in docs], next_cursor=next_cursor)


@router.get("/{name}", response_model=EventTypeOut)
async def get_event_type(
    name: Name, service: ServiceDep, workspace_id: Workspace = None
) -> EventTypeOut:
    """The type as the workspace sees it (its own, else the global one); the admin token
    without `workspace_id`: the global type."""
    return _out(await service.get(name, workspace_id))


@router.patch("/{name}", response_model=EventTypeOut)
async def update_event_type(
    name: Name,
    body: EventTypeUpdate,
    service: ServiceDep,
    catalog: CatalogDep,
    workspace_id: Workspace = None,
) -> EventTypeOut:
    """The workspace's own type (the admin token: that of `workspace_id`, else the global
    one). A key is refused a global type (403): it may shadow it with its own."""
    doc = await service.update(name, workspace_id, body)
    catalog.cache.apply(doc)
    return _out(doc)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_event_type(
    name: Name, service: ServiceDep, catalog: CatalogDep, workspace_id: Workspace = None
) -> Response:
    """As PATCH chooses the type. Events of the type are then unchecked (refused in strict
    mode, unless a global type of the name is left)."""
    catalog.cache.apply(await service.delete(name, workspace_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _described(entry: EventTypeSnapshot) -> dict[str, Any]:
    return {
        "name": entry.name,
        "description": entry.description,
        "schema": entry.schema,
        "examples": entry.examples,
        "deprecated": entry.deprecated,
        "enforce": entry.enforce,
    }


@catalog_router.get("/asyncapi/event-types")
async def global_event_types(catalog: CatalogDep) -> dict[str, list[dict[str, Any]]]:
    """The global catalog, for the edge's AsyncAPI document (services/asyncapi.py). A
    workspace's own types are its data: never in it."""
    return {"data": [_described(entry) for entry in catalog.globals()]}
