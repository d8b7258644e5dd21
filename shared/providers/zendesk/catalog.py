"""Zendesk's webhooks: `X-Zendesk-Webhook-Signature`, the standard base64 of the
HMAC-SHA256 of `X-Zendesk-Webhook-Signature-Timestamp` + the raw body (nothing between),
keyed by the webhook's signing secret as text (it looks like base64; it is not decoded).

Checked against Zendesk's "Verifying webhook authenticity" page ("base64(HMACSHA256(
TIMESTAMP + BODY))"; an older version of the page said body + timestamp, the current one
wins) and the vector of aaronellington/zendesk-go's tests. Zendesk has no SDK that signs.
The timestamp is RFC 3339 (`2021-03-25T05:09:27Z`); Zendesk documents no replay window,
so hookhub's is ten minutes either way. Only POST webhooks reach hookhub (a webhook's
method is POST; its format JSON or form encoded).
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FirstOf, Fixed, FromHeader, FromJson
from shared.providers.schemes import BODY, HeaderValue, Hmac, Window

TIMESTAMP = "x-zendesk-webhook-signature-timestamp"

WEBHOOKS = Declared(
    name="zendesk",
    scheme=Hmac(
        "x-zendesk-webhook-signature",
        setting="signing_secret",
        encoding="base64",
        signed=(HeaderValue(TIMESTAMP), BODY),
        window=Window(600, header=TIMESTAMP, unit="rfc3339"),
    ),
    # A webhook subscribed to Zendesk events names it (`zen:event-type:user.created`); a
    # trigger's or automation's body is what the admin wrote, with no name of Zendesk's.
    event=FirstOf((FromJson("type"), Fixed("trigger"))),
    # One invocation, however many attempts (the Webhooks API lists attempts by it).
    delivery_id=FromHeader("x-zendesk-webhook-invocation-id"),
    body="json_or_form",
    account=FromHeader("x-zendesk-account-id"),
)

ENTRY = Entry(
    provider="zendesk",
    name="Zendesk",
    category="support",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_secret",
            "the webhook's signing secret: Admin Center → Apps and integrations → Webhooks "
            "→ the webhook → Signing secret → Reveal secret",
        ),
    ),
    events=(
        "zen:event-type:user.created",
        "zen:event-type:user.deleted",
        "zen:event-type:user.active_changed",
        "zen:event-type:user.group_membership_created",
        "zen:event-type:organization.created",
        "zen:event-type:ticket.created",
        "zen:event-type:ticket.status_changed",
        "zen:event-type:ticket.comment_added",
        "zen:event-type:article.published",
        "trigger",
    ),
    setup=(
        "In Zendesk Admin Center: Apps and integrations → Webhooks → Create webhook.",
        "Subscribe it to Zendesk events (or connect it to a trigger or automation); "
        "Endpoint URL {webhook_url}, Request method POST, Request format JSON.",
        "Create it (a trigger's webhook: add the action Notify active webhook to the "
        "trigger), then Signing secret → Reveal secret, and save it here as signing_secret.",
    ),
    docs_url="https://developer.zendesk.com/documentation/webhooks/verifying/",
    sample=Sample(
        "user.active_changed.json",
        headers={
            "x-zendesk-account-id": "123456",
            "x-zendesk-webhook-id": "01F1KRFQ6BG29CNWFR60NK5FNY",
            "x-zendesk-webhook-invocation-id": "8350205582",
        },
    ),
)
