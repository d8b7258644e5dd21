"""Stripe's webhooks: `Stripe-Signature: t=<unix>,v1=<hex>`, HMAC-SHA256 of `{t}.{body}`
keyed by the endpoint's whole signing secret (`whsec_…` as text, not decoded), any `v1`
matching (several while a secret is rolled), `v0` ignored, five minutes either way.

Checked against stripe-python 16.1.0 (`stripe/_webhook.py`: `WebhookSignature`), which
the tests sign with; the SDK refuses only old timestamps, hookhub a future one too.
"""

from __future__ import annotations

import secrets

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import Timestamped

WEBHOOKS = Declared(
    name="stripe",
    scheme=Timestamped("stripe-signature", tolerance_seconds=300, setting="signing_secret"),
    event=FromJson("type"),
    # Stripe retries an event with the same `id` for up to three days.
    delivery_id=FromJson("id"),
    # Stripe does not document a limit; its events are a few KB, with the object inside.
    max_body_bytes=1024 * 1024,
    account=FromJson("account"),  # Connect: the connected account the event is for
)

ENTRY = Entry(
    provider="stripe",
    name="Stripe",
    category="payments",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_secret",
            "the endpoint's Signing secret (whsec_…), under Developers → Webhooks → the "
            "endpoint → Signing secret",
            pattern=r"whsec_\S+",
        ),
    ),
    events=(
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.refunded",
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
        "setup_intent.created",
    ),
    setup=(
        "In the Stripe Dashboard: Developers → Webhooks → Add endpoint.",
        "Endpoint URL: {webhook_url}; select the events to send.",
        "Open the endpoint, reveal its Signing secret (whsec_…) and save it here as "
        "signing_secret.",
    ),
    docs_url="https://docs.stripe.com/webhooks#verify-manually",
    sample=Sample("setup_intent.created.json"),
    example_settings=lambda: {"signing_secret": "whsec_" + secrets.token_urlsafe(24)},
)
