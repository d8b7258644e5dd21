"""What the catalog providers' tests share: a request as the gateway builds it, and the
sample of a provider signed for an integration of the test's."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from shared.providers.base import InboundRequest
from shared.providers.catalog import CATALOG, Entry
from shared.providers.declared import Declared

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
URL = "https://hooks.example.com/api/webhooks/{provider}/int_0123456789"

DECLARED: list[Entry] = [e for e in CATALOG.values() if isinstance(e.webhooks, Declared)]


def inbound(
    body: bytes,
    headers: Mapping[str, str],
    *,
    url: str = "",
    method: str = "POST",
    query: Mapping[str, str] | None = None,
    at: datetime = NOW,
) -> InboundRequest:
    """The request as the gateway hands it to a provider: lower-case header names."""
    return InboundRequest(
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        received_at=at,
        query=dict(query or {}),
        method=method,
        url=url,
    )


def declared(entry: Entry) -> Declared:
    assert isinstance(entry.webhooks, Declared)
    return entry.webhooks


def signed_sample(entry: Entry, settings: Mapping[str, str], at: datetime = NOW) -> InboundRequest:
    url = entry.sender_url(settings, URL.format(provider=entry.provider))
    body, headers = entry.signed_sample(settings, url, at)
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return inbound(body, headers, url=url, query=query, at=at)
