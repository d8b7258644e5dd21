"""`GET /api/provider-catalog[/{provider}]`: every provider hookhub knows, for any valid key.

What the console's "new integration" form is built from: each provider's settings (secrets
flagged), how its webhooks are verified, its events, and its setup steps with
`{webhook_url}` where the integration's URL goes (SPEC §15).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field

from shared.kernel.errors import NotFound
from shared.kernel.http.auth import Authenticated
from shared.kernel.http.errors import MANAGEMENT_ERRORS
from shared.kernel.ids import utcnow
from shared.providers.base import InboundRequest
from shared.providers.catalog import CATALOG, CATEGORIES, Entry, catalog_entry

router = APIRouter(
    prefix="/api/provider-catalog",
    tags=["provider catalog"],
    dependencies=[Authenticated],
    responses=MANAGEMENT_ERRORS,
)

Capability = Literal["webhooks", "oauth", "sync", "history", "import", "actions", "notifications"]


class CatalogSetting(BaseModel):
    name: str
    secret: bool = Field(description="sealed at rest, write-only: never shown again")
    required: bool
    description: str
    choices: list[str] | None = None
    default: str | None = None
    type: Literal["text", "integer"] = Field(
        "text", description="integer: given as a JSON number or a string of digits"
    )


class Verification(BaseModel):
    scheme: str = Field(
        description="hmac, timestamped_hmac, standard_webhooks, token, basic, ecdsa_p256, "
        "ed25519, any_of, or the provider's own"
    )
    headers: list[str] = Field(description="the request headers it reads")


class CatalogSample(BaseModel):
    """The provider's documented example webhook, for trying a template on (SPEC §16)."""

    headers: dict[str, str] = Field(description="the unsigned headers it comes with")
    payload: Any = Field(description="its JSON body")
    event_type: str | None = Field(None, description="the event name the gateway gives it")


class CatalogEntry(BaseModel):
    provider: str
    name: str
    category: str
    capabilities: list[Capability]
    verification: Verification | None = Field(description="null: the provider sends no webhooks")
    settings: list[CatalogSetting]
    handshake: str | None = Field(description="what the provider checks before sending, if any")
    events: list[str] = Field(description="common event names, as the provider spells them")
    setup: list[str] = Field(description="steps; `{webhook_url}` is where the URL goes")
    docs_url: str
    sample: CatalogSample | None = Field(
        None,
        description="only on `GET /api/provider-catalog/{provider}`: the provider's example "
        "webhook (where the catalog has one with a JSON body)",
    )


class Catalog(BaseModel):
    items: list[CatalogEntry]


@router.get("", response_model=Catalog)
async def provider_catalog(
    category: str | None = None, capability: Capability | None = None
) -> dict[str, object]:
    """Every provider, by name; narrowed to a `category` or a `capability` when given."""
    if category is not None and category not in CATEGORIES:
        raise NotFound(
            f"no category {category!r}; one of {', '.join(sorted(CATEGORIES))}",
            code="unknown_category",
        )
    return {
        "items": [
            entry.to_json()
            for entry in CATALOG.values()
            if (category is None or entry.category == category)
            and (capability is None or capability in entry.capabilities)
        ]
    }


@router.get("/{provider}", response_model=CatalogEntry)
async def provider_catalog_entry(provider: str) -> dict[str, object]:
    entry = catalog_entry(provider)
    return {**entry.to_json(), "sample": _sample(entry)}


def _sample(entry: Entry) -> dict[str, Any] | None:
    sample = entry.sample
    if sample is None or sample.content_type != "application/json":
        return None
    body = sample.body(entry.provider)
    return {
        "headers": dict(sample.headers),
        "payload": orjson.loads(body),
        "event_type": _event_type(entry, body, sample.headers),
    }


def _event_type(entry: Entry, body: bytes, headers: Mapping[str, str]) -> str | None:
    """The event name the gateway gives the sample (what a subscription names)."""
    if entry.webhooks is None:
        return None
    request = InboundRequest({k.lower(): v for k, v in headers.items()}, body, utcnow())
    try:
        parsed = entry.webhooks.parse(request)
    except Exception:  # a sample that needs more than its body and headers
        return None
    return parsed.event_type or None
