"""Airtable's webhook notification pings: `X-Airtable-Content-MAC: hmac-sha256=<lower-case
hex>`, HMAC-SHA256 of the raw body keyed by the webhook's `macSecretBase64` decoded from
base64 (not its text); no timestamp. A ping carries no event, only which base and webhook
have new payloads (fetched with Airtable's API): `event_type` is `ping`, `delivery_id` the
body's digest. Airtable wants 200 or 204 with an empty body: 200, empty.

Checked against Airtable's docs (the JavaScript of "Webhook notification delivery",
https://airtable.com/developers/web/api/webhooks-overview#webhook-notification-delivery,
re-serialises the parsed body: hookhub hashes the bytes as received) and the vector of
pyairtable's tests (`tests/test_models_webhook.py`, MIT; a community SDK: Airtable
publishes no Python one).
"""

from __future__ import annotations

import base64
import secrets

from shared.providers.base import Reply
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, Fixed
from shared.providers.schemes import Hmac

WEBHOOKS = Declared(
    name="airtable",
    scheme=Hmac(
        "x-airtable-content-mac", setting="mac_secret_base64", prefix="hmac-sha256=", key="base64"
    ),
    # The spec's table names `webhook.id`: it says which webhook, not what happened (the
    # ping has no event); it is in the payload, and the integration is one webhook's.
    event=Fixed("ping"),
    # "The recipient of this request should respond with an HTTP 200 or 204 status code and
    # an empty response body."
    reply=Reply(200),
)

ENTRY = Entry(
    provider="airtable",
    name="Airtable",
    category="productivity",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "mac_secret_base64",
            "the webhook's macSecretBase64, from the response of Create a webhook (shown once)",
            pattern=r"[A-Za-z0-9+/]+={0,2}",
        ),
    ),
    events=("ping",),
    setup=(
        "Make a personal access token with webhook:manage (and data.records:read for "
        "record changes) at airtable.com/create/tokens.",
        "Create the webhook: POST https://api.airtable.com/v0/bases/{baseId}/webhooks with "
        '{"notificationUrl": "{webhook_url}", "specification": {"options": {"filters": '
        '{"dataTypes": ["tableData"]}}}}.',
        "Save the response's macSecretBase64 here as mac_secret_base64 (Airtable shows it "
        "only once). A ping says there are new payloads: list them with the webhook's id. "
        "Webhooks made with a token expire after 7 days unless refreshed.",
    ),
    docs_url="https://airtable.com/developers/web/api/webhooks-overview",
    sample=Sample("ping.json"),
    example_settings=lambda: {
        "mac_secret_base64": base64.b64encode(secrets.token_bytes(32)).decode()
    },
)
