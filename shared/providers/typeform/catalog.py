"""Typeform's webhooks: `Typeform-Signature: sha256=<base64>`, the HMAC-SHA256 of the raw
body keyed by the webhook's `secret` (its text, not decoded), standard base64; no
timestamp is signed, so a replay is the dedupe's (by `event_id`).

Checked against Typeform's "Secure your webhooks" page (its Ruby sample:
`'sha256=' + Base64.strict_encode64(OpenSSL::HMAC.digest('sha256', secret, payload))`).
Typeform's SDK on PyPI (`typeform` 1.1.0) has no webhook code, and Typeform publishes no
vector: the tests compute the docs' recipe with the standard library.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import Hmac

WEBHOOKS = Declared(
    name="typeform",
    scheme=Hmac("typeform-signature", setting="secret", encoding="base64", prefix="sha256="),
    event=FromJson("event_type"),  # form_response, form_response_partial
    delivery_id=FromJson("event_id"),
)

ENTRY = Entry(
    provider="typeform",
    name="Typeform",
    category="forms",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "secret",
            "the webhook's Secret (Connect → Webhooks → Edit → Secret, or `secret` in the "
            "Webhooks API): a random string you choose",
        ),
    ),
    events=("form_response", "form_response_partial"),
    setup=(
        "Choose a long random secret (`openssl rand -hex 20`) and save it here as secret.",
        "In Typeform: open the form → Connect → Webhooks → Add a webhook; Endpoint: {webhook_url}.",
        "Edit the webhook, paste the same secret under Secret and save; switch the webhook "
        'on ("Send test request" checks it).',
        "Or with the Webhooks API: PUT https://api.typeform.com/forms/{form_id}/webhooks/"
        '{tag} {"url": "{webhook_url}", "enabled": true, "secret": "…"}.',
    ),
    docs_url="https://www.typeform.com/developers/webhooks/secure-your-webhooks/",
    sample=Sample("form_response.json"),
)
