"""HTTP routes of `/api/providers`: hookhub's app at each provider, secrets write-only."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shared.kernel.errors import Invalid, NotFound
from shared.kernel.http.app import from_state, runtime_of
from shared.kernel.http.auth import AdminOnly
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.http.pagination import Page
from shared.kernel.mongo import Document
from shared.kernel.runtime import Runtime
from shared.providers import OAUTH_PROVIDERS
from shared.providers.apps import FIELDS, PUBLIC_FIELDS, ProviderAppRepository, from_environment
from shared.providers.catalog import catalog_entry

router = APIRouter(
    prefix="/api/providers",
    tags=["provider apps"],
    dependencies=[AdminOnly],
    responses=MANAGEMENT_ERRORS,
)


def _with_app(provider: str) -> str:
    # NotFound passes through pydantic (a ValueError would be a 422 `invalid`): a name the
    # catalog lacks is 404 `unknown_provider`, one of its providers without an app 404.
    if provider not in FIELDS:
        catalog_entry(provider)
        raise NotFound(f"{provider} has no provider app; the ones there are: {', '.join(FIELDS)}")
    return provider


AppProvider = Annotated[
    str, Path(json_schema_extra={"enum": list(FIELDS)}), AfterValidator(_with_app)
]
RepositoryDep = Annotated[
    ProviderAppRepository, Depends(from_state("provider_apps", ProviderAppRepository))
]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")


class ProviderAppUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str | None = Field(None, min_length=1, max_length=500)
    client_secret: str | None = Field(None, min_length=1, max_length=2000)
    signing_secret: str | None = Field(None, min_length=1, max_length=2000)
    public_key: str | None = Field(None, min_length=1, max_length=200)
    # Slack: the rate tier of conversations.history|replies for imports (SPEC §9): tier3
    # (internal and Marketplace apps) or limited (other commercially distributed apps).
    history_tier: Literal["tier3", "limited"] | None = None

    @field_validator("client_id", "client_secret", "signing_secret")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        # Providers issue these in printable ASCII without spaces (RFC 6749 A.1 allows
        # spaces in a client_id; none of ours uses them): an ellipsis or a space is an
        # example or a line break copied along, refused rather than stored to fail later.
        if value is not None and not all("!" <= c <= "~" for c in value):
            raise ValueError(
                "only printable ASCII without spaces: copy the value from the provider's "
                "app settings (an example's … or a line break is not part of it)"
            )
        return value


class ProviderApp(BaseModel):
    provider: str = Field(json_schema_extra={"enum": list(FIELDS)})
    client_id: str | None
    history_tier: str | None = None
    default_scopes: list[str] = Field(
        description="what a connect asks for when it names no scopes (empty: no OAuth)"
    )
    configured: list[str] = Field(description="settings that have a value (secrets never shown)")
    source: Literal["api", "environment", "none"]
    updated_at: datetime | None


def _out(provider: str, doc: Document | None, runtime: Runtime) -> ProviderApp:
    env = from_environment(runtime.settings, provider)
    doc = doc or {}
    stored = {*(doc.get("secrets") or {}), *(name for name in PUBLIC_FIELDS if doc.get(name))}
    return ProviderApp.model_validate(
        {
            "provider": provider,
            "client_id": doc.get("client_id") or env.get("client_id"),
            "history_tier": doc.get("history_tier") or env.get("history_tier"),
            "default_scopes": list(OAUTH_PROVIDERS[provider].scopes)
            if provider in OAUTH_PROVIDERS
            else [],
            "configured": sorted(stored | set(env)),
            "source": "api" if stored else ("environment" if env else "none"),
            "updated_at": doc.get("updated_at"),
        }
    )


@router.get("", response_model=Page[ProviderApp])
async def list_provider_apps(repository: RepositoryDep, runtime: RuntimeDep) -> Page[ProviderApp]:
    """Every provider, configured or not: one page (`next_cursor` is always null), in the
    list format of the other collections."""
    return Page(data=[_out(p, await repository.get(p), runtime) for p in FIELDS])


@router.get("/{provider}", response_model=ProviderApp)
async def get_provider_app(
    provider: AppProvider, repository: RepositoryDep, runtime: RuntimeDep
) -> ProviderApp:
    return _out(provider, await repository.get(provider), runtime)


@router.put("/{provider}", response_model=ProviderApp)
async def put_provider_app(
    provider: AppProvider, body: ProviderAppUpdate, repository: RepositoryDep, runtime: RuntimeDep
) -> ProviderApp:
    """Set (merge) the app's settings; the API wins over the environment."""
    values = body.model_dump(exclude_none=True)
    unknown = sorted(set(values) - set(FIELDS[provider]))
    if unknown:
        raise Invalid(f"{provider} apps take no {', '.join(unknown)}", code="unknown_setting")
    if "public_key" in values and not _HEX_KEY.match(values["public_key"]):
        raise Invalid("public_key must be 64 hex digits", code="invalid_setting")
    fields: dict[str, str] = {
        (name if name in PUBLIC_FIELDS else f"secrets.{name}"): (
            value if name in PUBLIC_FIELDS else runtime.secrets.encrypt(value)
        )
        for name, value in values.items()
    }
    return _out(provider, await repository.upsert(provider, fields), runtime)


@router.delete("/{provider}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_provider_app(provider: AppProvider, repository: RepositoryDep) -> Response:
    """Forget the API's settings; the environment's apply again."""
    if not await repository.delete(provider):
        raise NotFound(f"no {provider} app configured through the API")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
