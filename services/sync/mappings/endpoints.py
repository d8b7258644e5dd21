"""HTTP routes of `/api/integrations/{id}/mappings` (SPEC §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from services.sync.mappings.schemas import MappingCreate, MappingOut, MappingUpdate
from services.sync.mappings.service import MappingService, out
from shared.domain.mappings import MappingRepository
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.kernel.http.pagination import Page, PageDep
from shared.providers.connections import InScope

router = APIRouter(
    prefix="/api/integrations/{integration_id}/mappings",
    tags=["mappings"],
    dependencies=[Authenticated, InScope],
    responses=MANAGEMENT_ERRORS,
)

ServiceDep = Annotated[MappingService, Depends(from_state("mapping_service", MappingService))]
RepositoryDep = Annotated[
    MappingRepository, Depends(from_state("mapping_repository", MappingRepository))
]
IntegrationId = Annotated[str, Path(max_length=200)]
MappingId = Annotated[str, Path(max_length=200)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=MappingOut,
    responses=error_responses(404, 409, 422, 429, 503),
)
async def create_mapping(
    integration_id: IntegrationId, body: MappingCreate, service: ServiceDep
) -> MappingOut:
    """Map a provider channel to a chat channel. The provider is asked first whether the
    bot can see the channel (Slack `conversations.info`, Telegram `getChat`)."""
    return MappingOut.model_validate(out(await service.create(integration_id, body)))


@router.get("", response_model=Page[MappingOut])
async def list_mappings(
    integration_id: IntegrationId, repository: RepositoryDep, page: PageDep
) -> Page[MappingOut]:
    docs, next_cursor = await repository.page(
        integration_id=integration_id, limit=page.limit, cursor=page.cursor
    )
    return Page(data=[MappingOut.model_validate(out(d)) for d in docs], next_cursor=next_cursor)


@router.get("/{mapping_id}", response_model=MappingOut, responses=error_responses(404))
async def get_mapping(
    integration_id: IntegrationId, mapping_id: MappingId, service: ServiceDep
) -> MappingOut:
    return MappingOut.model_validate(out(await service.get(integration_id, mapping_id)))


@router.patch("/{mapping_id}", response_model=MappingOut, responses=error_responses(404, 422))
async def update_mapping(
    integration_id: IntegrationId, mapping_id: MappingId, body: MappingUpdate, service: ServiceDep
) -> MappingOut:
    return MappingOut.model_validate(out(await service.update(integration_id, mapping_id, body)))


@router.delete(
    "/{mapping_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404)
)
async def delete_mapping(
    integration_id: IntegrationId, mapping_id: MappingId, service: ServiceDep
) -> Response:
    await service.delete(integration_id, mapping_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
