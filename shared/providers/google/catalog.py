"""Google in the provider catalog: an OAuth connection."""

from __future__ import annotations

from shared.providers.catalog import Entry

ENTRY = Entry(
    provider="google",
    name="Google",
    category="productivity",
    capabilities=("oauth",),
    setup=(
        "Connect with OAuth (Integrations → Connect); the OAuth client is set once for "
        "hookhub (docs/providers.md#google).",
    ),
    docs_url="https://developers.google.com/identity/protocols/oauth2/web-server",
)
