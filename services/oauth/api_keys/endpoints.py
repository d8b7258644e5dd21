"""`/api/workspaces/{workspace_id}/api-keys`: issue (the key shown once), list, read and
revoke a workspace's API keys. Admin token only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.domain import api_keys
from shared.kernel.errors import Invalid, NotFound
from shared.kernel.http.app import from_state
from shared.kernel.http.auth import AdminOnly
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.http.pagination import Page, PageDep
from shared.kernel.ids import PrintableId, utcnow
from shared.kernel.mongo import Document

router = APIRouter(
    prefix="/api/workspaces/{workspace_id}/api-keys",
    tags=["api keys"],
    dependencies=[AdminOnly],
    responses=MANAGEMENT_ERRORS,
)

RepositoryDep = Annotated[
    api_keys.ApiKeyRepository,
    Depends(from_state("api_key_repository", api_keys.ApiKeyRepository)),
]
WorkspaceId = Annotated[PrintableId, Path()]
KeyId = Annotated[str, Path(max_length=200)]
Scope = Literal["read", "write"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1, max_length=2)
    expires_at: datetime | None = None

    @field_validator("scopes")
    @classmethod
    def _read_or_read_write(cls, scopes: list[Scope]) -> list[Scope]:
        if sorted(set(scopes)) not in (["read"], ["read", "write"]):
            raise ValueError('scopes are ["read"] or ["read", "write"]')
        return sorted(set(scopes))

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (2026-12-31T00:00:00Z)")
        return value


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself, only `prefix` (its first characters)."""

    id: str
    workspace_id: str
    name: str
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key: shown in this answer only, keep it now")


def _out(doc: Document) -> ApiKeyOut:
    return ApiKeyOut.model_validate({**doc, "id": doc["_id"]})


async def _get(repository: api_keys.ApiKeyRepository, workspace_id: str, key_id: str) -> Document:
    doc = await repository.get(key_id)
    if (
        doc is None
        or doc["workspace_id"] != workspace_id
        or doc.get("kind", api_keys.KEY) != api_keys.KEY
    ):
        raise NotFound(f"api key {key_id} not found in workspace {workspace_id}")
    return doc


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(
    workspace_id: WorkspaceId, body: ApiKeyCreate, repository: RepositoryDep
) -> ApiKeyCreated:
    if body.expires_at is not None and body.expires_at.astimezone(UTC) <= utcnow():
        raise Invalid("expires_at is not in the future", code="invalid_expiry")
    key, doc = api_keys.issue(
        api_keys.KEY, workspace_id, body.name, list(body.scopes), body.expires_at
    )
    await repository.insert(doc)
    return ApiKeyCreated.model_validate({**doc, "id": doc["_id"], "key": key})


@router.get("", response_model=Page[ApiKeyOut])
async def list_api_keys(
    workspace_id: WorkspaceId, page: PageDep, repository: RepositoryDep
) -> Page[ApiKeyOut]:
    docs, cursor = await repository.page_of_kind(
        api_keys.KEY, workspace_id, limit=page.limit, cursor=page.cursor
    )
    return Page(data=[_out(doc) for doc in docs], next_cursor=cursor)


@router.get("/{key_id}", response_model=ApiKeyOut)
async def get_api_key(
    workspace_id: WorkspaceId, key_id: KeyId, repository: RepositoryDep
) -> ApiKeyOut:
    return _out(await _get(repository, workspace_id, key_id))


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    workspace_id: WorkspaceId, key_id: KeyId, repository: RepositoryDep
) -> Response:
    await _get(repository, workspace_id, key_id)
    await repository.soft_delete(key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
