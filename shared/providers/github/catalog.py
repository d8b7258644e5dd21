"""GitHub in the provider catalog."""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.github.webhooks import WEBHOOKS

ENTRY = Entry(
    provider="github",
    name="GitHub",
    category="devtools",
    capabilities=("webhooks", "oauth", "actions", "notifications"),
    webhooks=WEBHOOKS,
    verification=("hmac", ("x-hub-signature-256",)),
    settings=(
        Setting(
            "webhook_secret",
            "the webhook's Secret (any long random string, e.g. `openssl rand -hex 32`)",
        ),
    ),
    events=("push", "pull_request", "issues", "issue_comment", "release", "workflow_run", "ping"),
    setup=(
        "Choose a random secret (`openssl rand -hex 32`) and save it here as webhook_secret.",
        "In the repository or organization: Settings → Webhooks → Add webhook.",
        "Payload URL: {webhook_url}; Content type: application/json; Secret: the same secret.",
        "Pick the events; GitHub sends a `ping` at once.",
        "For actions (create issues), connect through OAuth: it asks for the default scopes.",
    ),
    docs_url="https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries",
)
