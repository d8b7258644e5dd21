"""Bitbucket Cloud's webhooks: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`,
keyed by the webhook's Secret as text; one signature, no signed time. A webhook saved
without a secret sends no signature: hookhub refuses it. The event is `X-Event-Key`
(`repo:push`), the delivery id `X-Request-UUID`.

Checked against Bitbucket's announcement of webhook secrets
(https://bitbucket.org/blog/enhanced-webhook-security), its "Event payloads" header table
(https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/) and the Data Center
docs' description of the same header ("The header X-Hub-Signature is defined and contains
the HMAC … x-hub-signature: sha256=…"). Atlassian publishes no Python SDK that verifies
webhooks and no test vector; the tests sign as those pages describe.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromHeader
from shared.providers.schemes import Hmac

WEBHOOKS = Declared(
    name="bitbucket",
    scheme=Hmac("x-hub-signature", setting="secret", prefix="sha256="),
    event=FromHeader("x-event-key"),
    delivery_id=FromHeader("x-request-uuid"),
    # "Webhook payload is limited to 256 KB" (Bitbucket's troubleshooting page).
    max_body_bytes=256 * 1024,
)

ENTRY = Entry(
    provider="bitbucket",
    name="Bitbucket",
    category="devtools",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "secret",
            "the webhook's Secret (Bitbucket shows it only while the webhook is being saved)",
        ),
    ),
    events=(
        "repo:push",
        "repo:fork",
        "repo:updated",
        "repo:commit_comment_created",
        "repo:commit_status_created",
        "repo:commit_status_updated",
        "pullrequest:created",
        "pullrequest:updated",
        "pullrequest:approved",
        "pullrequest:unapproved",
        "pullrequest:fulfilled",
        "pullrequest:rejected",
        "pullrequest:comment_created",
        "issue:created",
        "issue:updated",
    ),
    setup=(
        "In Bitbucket: the repository (or workspace) → Repository settings → Webhooks → "
        "Add webhook.",
        "URL: {webhook_url}; Secret: Generate secret (or paste a long random string) and "
        "save it here as secret before you save the webhook: Bitbucket does not show it again.",
        "Choose the triggers (Repository push, or the full list) and Save.",
    ),
    docs_url="https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
    sample=Sample(
        "repo_push.json",
        headers={
            "x-event-key": "repo:push",
            "x-request-uuid": "7f1a9a6e-2b1e-4d3c-9a55-1f0c4f2f8d21",
            "x-hook-uuid": "3c1b0f7e-93f1-4d6b-8f2e-6a2f9e0b5c11",
            "x-attempt-number": "1",
        },
    ),
)
