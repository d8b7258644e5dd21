"""PagerDuty's v3 webhooks: `X-PagerDuty-Signature: v1=<hex HMAC-SHA256 of the raw body>`,
keyed by the subscription's signing secret as text (it looks like base64 but is not
decoded); one `v1=` per active secret, comma-separated, while a secret is rotated: any one
matching is enough, other versions are ignored. No signed time. The event is
`event.event_type`; the delivery id the `X-Webhook-Id` header ("repeated for each delivery
attempt"), else `event.id`.

Checked against https://developer.pagerduty.com/docs/ZG9jOjExMDI5NTkz-verifying-signatures
and .../webhooks-behavior-ref (PagerDuty/developer-docs `docs/webhooks/04-Signatures.md`,
`02-Behavior.md`) and PagerDuty's Go client, whose test vector the tests verify
(go-pagerduty `webhookv3/webhookv3_test.go`). PagerDuty's Python client (`pagerduty` 7.2)
has no webhook helper.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FirstOf, FromHeader, FromJson
from shared.providers.schemes import Hmac

WEBHOOKS = Declared(
    name="pagerduty",
    scheme=Hmac("x-pagerduty-signature", setting="signing_secret", prefix="v1=", several=","),
    event=FromJson("event", "event_type"),
    # One event sent to two subscriptions shares `event.id`; `X-Webhook-Id` is the delivery.
    delivery_id=FirstOf((FromHeader("x-webhook-id"), FromJson("event", "id"))),
    # "All webhooks with a final size greater than 256 KB are always dropped."
    max_body_bytes=256 * 1024,
)

ENTRY = Entry(
    provider="pagerduty",
    name="PagerDuty",
    category="incidents",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_secret",
            "the webhook subscription's Signing Secret (shown once, when it is created)",
        ),
        # Acting from the channel (SPEC §20, ./acting.py): without it, no buttons.
        Setting(
            "api_token",
            "a general access REST API key, not read-only (Integrations → Developer Tools → "
            "API Access Keys), to act on incidents from the channel as each linked user; "
            "unset, cards have no buttons",
            required=False,
        ),
    ),
    events=(
        "incident.triggered",
        "incident.acknowledged",
        "incident.unacknowledged",
        "incident.resolved",
        "incident.reopened",
        "incident.escalated",
        "incident.delegated",
        "incident.reassigned",
        "incident.annotated",
        "incident.priority_updated",
        "incident.responder.added",
        "incident.responder.replied",
        "incident.status_update_published",
        "service.created",
        "service.updated",
        "service.deleted",
        "pagey.ping",
    ),
    setup=(
        "In PagerDuty: Integrations → Generic Webhooks (v3) → New Webhook.",
        "Webhook URL: {webhook_url}; choose the scope (account, service or team) and the "
        "event subscriptions; Add Webhook.",
        "Copy the Signing Secret PagerDuty shows once and save it here as signing_secret.",
    ),
    docs_url="https://developer.pagerduty.com/docs/webhooks-overview",
    sample=Sample(
        "incident_priority_updated.json",
        headers={"x-webhook-id": "01BWDWL3P0RBTW7CM9GDXDTPNV"},
    ),
)
