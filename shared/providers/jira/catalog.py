"""Jira (Cloud, Server and Data Center) in the provider catalog."""

from __future__ import annotations

from shared.providers.catalog import Entry, Setting
from shared.providers.jira.webhooks import WEBHOOKS

ENTRY = Entry(
    provider="jira",
    name="Jira",
    category="devtools",
    capabilities=("webhooks", "oauth", "actions", "notifications"),
    webhooks=WEBHOOKS,
    verification=("hmac", ("x-hub-signature",)),
    settings=(Setting("webhook_secret", "the webhook's Secret (any long random string)"),),
    events=(
        "jira:issue_created",
        "jira:issue_updated",
        "jira:issue_deleted",
        "comment_created",
        "comment_updated",
        "comment_deleted",
    ),
    setup=(
        "Choose a random secret and save it here as webhook_secret.",
        "Jira → Settings → System → WebHooks → Create a WebHook.",
        "URL: {webhook_url}; Secret: the same secret; pick the events.",
        "For actions (create issues), connect through OAuth: it asks for the default scopes.",
    ),
    docs_url="https://developer.atlassian.com/server/jira/platform/webhooks/",
)
