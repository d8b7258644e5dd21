"""Standard Webhooks (standardwebhooks.com) and Svix-signed senders (Clerk, Resend, …):
`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` (or `svix-*`), an
HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed by the base64 after `whsec_`, five minutes.

Checked against the `standardwebhooks` package (standard-webhooks/standard-webhooks, MIT),
whose own test vector and signing the tests use."""

from __future__ import annotations

import base64
import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FirstOf, FromHeader, FromJson
from shared.providers.schemes import StandardWebhooks

WEBHOOKS = Declared(
    name="standard_webhooks",
    scheme=StandardWebhooks(setting="signing_secret"),
    # `type` is what the specification recommends; senders that follow it name events so.
    event=FromJson("type"),
    # The message id, the same on every retry; Svix's header when the sender is Svix.
    delivery_id=FirstOf((FromHeader("webhook-id"), FromHeader("svix-id"))),
)

ENTRY = Entry(
    provider="standard_webhooks",
    name="Standard Webhooks / Svix sender",
    category="generic",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_secret",
            "the endpoint's signing secret (whsec_ followed by base64)",
            pattern=r"whsec_[A-Za-z0-9+/=]{16,}",
        ),
    ),
    events=("email.delivered", "user.created", "contact.created"),
    setup=(
        "In the sender's dashboard (Clerk, Resend, any Svix-powered app): add an endpoint "
        "with URL {webhook_url}.",
        "Copy the endpoint's Signing Secret (whsec_…) and save it here as signing_secret.",
    ),
    docs_url="https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md",
    sample=Sample(
        "email.delivered.json", headers={"webhook-id": "msg_2LJS1qzJZ7hEMAlpMrz2mW8B6Ku"}
    ),
    example_settings=lambda: {
        "signing_secret": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    },
)
