"""HTTP routes of `/api/integrations` (import and mappings are other services')."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status

from services.oauth.integrations.schemas import (
    Disconnected,
    IntegrationCreate,
    IntegrationOut,
    IntegrationStatus,
    IntegrationUpdate,
    ProviderName,
)
from services.oauth.integrations.service import IntegrationService, webhook_url
from shared.domain.integrations.repository import IntegrationRepository
from shared.kernel.errors import Conflict, Forbidden, NotFound
from shared.kernel.http.app import from_state, runtime_of
from shared.kernel.http.auth import Authenticated, CallerDep
from shared.kernel.http.errors import MANAGEMENT_ERRORS, error_responses
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.mongo import Document
from shared.kernel.runtime import Runtime
from shared.providers.catalog import CATALOG
from shared.providers.matrix.appservice import registration_for

router = APIRouter(
    prefix="/api/integrations",
    tags=["integrations"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)


ServiceDep = Annotated[IntegrationService, Depends(from_state("integrations", IntegrationService))]
RepositoryDep = Annotated[
    IntegrationRepository, Depends(from_state("integration_repository", IntegrationRepository))
]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
IntegrationId = Annotated[str, Path(max_length=200)]


def _fields(doc: Document, runtime: Runtime) -> dict[str, Any]:
    oauth = doc.get("oauth") or {}
    tokens = sorted(doc.get("tokens") or {})
    return {
        **doc,
        "id": doc["_id"],
        "settings_configured": sorted({*(doc.get("secrets") or {}), *(doc.get("config") or {})}),
        "config": doc.get("config") or {},
        "oauth": {**oauth, "tokens_configured": tokens} if tokens else None,
        "webhook_url": webhook_url(runtime.settings.public_url, doc["provider"], doc["_id"]),
    }


def _out(doc: Document, runtime: Runtime) -> IntegrationOut:
    return IntegrationOut.model_validate(_fields(doc, runtime))


async def _get(repository: IntegrationRepository, integration_id: str) -> Document:
    doc = await repository.get(integration_id)
    if doc is None:
        raise NotFound(f"integration {integration_id} not found")
    return doc


@router.post("", status_code=status.HTTP_201_CREATED, response_model=IntegrationOut)
async def create_integration(
    body: IntegrationCreate, service: ServiceDep, runtime: RuntimeDep
) -> IntegrationOut:
    """Create an integration that needs no OAuth (settings are write-only)."""
    return _out(await service.create(body), runtime)


@router.get("", response_model=Page[IntegrationOut])
async def list_integrations(
    repository: RepositoryDep,
    runtime: RuntimeDep,
    page: PageDep,
    workspace_id: str | None = None,
    provider: ProviderName | None = None,
) -> Page[IntegrationOut]:
    docs, next_cursor = await repository.page(
        workspace_id=workspace_id,
        provider=provider,
        limit=page.limit,
        cursor=page.cursor,
    )
    return Page(data=[_out(doc, runtime) for doc in docs], next_cursor=next_cursor)


@router.get("/{integration_id}", response_model=IntegrationOut)
async def get_integration(
    integration_id: IntegrationId, repository: RepositoryDep, runtime: RuntimeDep
) -> IntegrationOut:
    doc = await _get(repository, integration_id)
    return IntegrationOut.model_validate(
        {**_fields(doc, runtime), "pending_verification_token": _pending_token(doc, runtime)}
    )


def _pending_token(doc: Document, runtime: Runtime) -> str | None:
    """A handed-over secret the user copies back into the provider (Notion's
    verification_token, to verify the subscription): shown while no verified event has
    come, the only time it is needed (an event signed with it means the provider has it).
    A secret otherwise never leaves hookhub."""
    entry = CATALOG.get(doc["provider"])
    shown = [s.name for s in entry.settings if s.shown_until_first_event] if entry else []
    sealed = (doc.get("secrets") or {}).get(shown[0]) if shown else None
    if sealed is None or doc.get("event_count", 0) > 0:
        return None
    return runtime.secrets.decrypt(sealed)


@router.get(
    "/{integration_id}/registration",
    response_class=Response,
    responses={200: {"content": {"application/yaml": {}}}, **error_responses(409)},
)
async def appservice_registration(
    integration_id: IntegrationId, repository: RepositoryDep, runtime: RuntimeDep, caller: CallerDep
) -> Response:
    """A Matrix integration's application service registration file, for the homeserver's
    `app_service_config_files`: its `url` the integration's webhook URL. It holds the
    integration's `as_token` and `hs_token`, so only a caller who may change the
    integration's settings (the admin, a key with the write scope) reads it: the one place
    the API hands secrets back, to whoever could have set them."""
    if not caller.can_write:
        raise Forbidden(
            "the registration holds the integration's tokens: a key with the write scope reads it",
            code="read_only_key",
        )
    doc = await _get(repository, integration_id)
    if doc["provider"] != "matrix":
        raise Conflict(
            f"integration {integration_id} is a {doc['provider']} integration: only a matrix "
            "integration has a registration",
            code="not_a_matrix_integration",
        )
    secrets = {k: runtime.secrets.decrypt(v) for k, v in (doc.get("secrets") or {}).items()}
    settings = {**(doc.get("config") or {}), **secrets}
    url = webhook_url(runtime.settings.public_url, doc["provider"], doc["_id"]) or ""
    body = registration_for(doc["_id"], url, settings)
    return Response(
        body,
        media_type="application/yaml",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="hookhub-{doc["_id"]}.yaml"',
        },
    )


@router.patch("/{integration_id}", response_model=IntegrationOut)
async def update_integration(
    integration_id: IntegrationId, body: IntegrationUpdate, service: ServiceDep, runtime: RuntimeDep
) -> IntegrationOut:
    return _out(await service.update(integration_id, body), runtime)


@router.delete("/{integration_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_integration(integration_id: IntegrationId, service: ServiceDep) -> Response:
    await service.delete(integration_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{integration_id}/status", response_model=IntegrationStatus)
async def integration_status(
    integration_id: IntegrationId, repository: RepositoryDep
) -> IntegrationStatus:
    doc = await _get(repository, integration_id)
    oauth = doc.get("oauth") or {}
    return IntegrationStatus.model_validate(
        {
            **doc,
            "id": doc["_id"],
            "token_expires_at": oauth.get("expires_at"),
            "last_refresh_error": oauth.get("last_refresh_error"),
        }
    )


@router.post("/{integration_id}/disconnect", response_model=Disconnected)
async def disconnect_integration(
    integration_id: IntegrationId, service: ServiceDep, runtime: RuntimeDep
) -> Disconnected:
    """Revoke at the provider where it offers revocation, forget the tokens, publish
    `integration.disconnected`. An unreachable provider does not block it: the revocation
    is retried (`revocation: pending`)."""
    doc, revocation = await service.disconnect(integration_id)
    return Disconnected.model_validate({**_fields(doc, runtime), "revocation": revocation})
