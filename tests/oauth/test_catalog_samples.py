"""`GET /api/provider-catalog/{provider}` gives the provider's documented example webhook
(for trying a template on it, SPEC §16); the list does not carry them."""

from __future__ import annotations

import json

from services.oauth.catalog.endpoints import (
    CatalogEntry,
    provider_catalog,
    provider_catalog_entry,
)
from shared.providers.catalog import CATALOG


async def test_an_entry_carries_its_json_sample_and_the_list_none() -> None:
    entry = CatalogEntry.model_validate(await provider_catalog_entry("alertmanager"))
    assert entry.sample is not None
    body = CATALOG["alertmanager"].sample
    assert body is not None
    assert entry.sample.payload == json.loads(body.body("alertmanager"))
    assert entry.sample.payload["status"] == "firing"
    # The event name the gateway gives it: what a subscription names, a template is tried with.
    assert entry.sample.event_type == "firing"
    sentry = CatalogEntry.model_validate(await provider_catalog_entry("sentry"))
    assert sentry.sample is not None and sentry.sample.event_type == "issue.created"
    github = CatalogEntry.model_validate(await provider_catalog_entry("github"))
    assert github.sample is None  # no sample in the catalog (its corpus is the tests')
    listed = await provider_catalog()
    assert all("sample" not in item for item in listed["items"])  # type: ignore[attr-defined]
