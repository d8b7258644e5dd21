"""HubSpot's webhooks: `X-HubSpot-Signature-v3`, the standard base64 of an HMAC-SHA256 of
`{method}{URL}{raw body}{X-HubSpot-Request-Timestamp}` keyed by the app's client secret as
text; the timestamp is Unix milliseconds and a request more than five minutes off is
refused. The URL is the one HubSpot called, scheme to query string, as sent.

The body is a JSON array of events, each published on its own, named by its
`subscriptionType` and deduplicated by its `eventId` (the same on a retry, when
`attemptNumber` counts up). The older `X-HubSpot-Signature` (v1, v2: a plain SHA-256 with no
timestamp) is not accepted. Checked against HubSpot's "Validating requests" and its Python
SDK (hubspot-api-client 12, `hubspot.utils.signature.Signature`), which the tests sign with.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson, Split, json_array
from shared.providers.schemes import BODY, METHOD, URL, HeaderValue, Hmac, Window

_STAMP = "X-HubSpot-Request-Timestamp"


WEBHOOKS = Declared(
    name="hubspot",
    scheme=Hmac(
        "X-HubSpot-Signature-v3",
        setting="client_secret",
        encoding="base64",
        signed=(METHOD, URL, BODY, HeaderValue(_STAMP)),
        window=Window(300, header=_STAMP, unit="ms"),
    ),
    event=FromJson("subscriptionType"),
    split=Split(json_array, event=FromJson("subscriptionType"), delivery_id=FromJson("eventId")),
)

ENTRY = Entry(
    provider="hubspot",
    name="HubSpot",
    category="crm",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "client_secret",
            "the app's Client secret (your app → Auth), which HubSpot signs with",
        ),
    ),
    events=(
        "contact.creation",
        "contact.deletion",
        "contact.propertyChange",
        "contact.merge",
        "contact.associationChange",
        "contact.restore",
        "contact.privacyDeletion",
        "company.creation",
        "company.propertyChange",
        "deal.creation",
        "deal.propertyChange",
        "deal.deletion",
        "ticket.creation",
        "conversation.newMessage",
        "object.creation",
        "object.propertyChange",
    ),
    setup=(
        "In your HubSpot developer account: your app → Webhooks.",
        "Target URL: {webhook_url}; create the subscriptions (e.g. contact.creation) and "
        "activate them.",
        "Copy the app's Client secret (Auth) and save it here as client_secret.",
        "Install the app in a HubSpot account so that its events flow.",
    ),
    docs_url=(
        "https://developers.hubspot.com/docs/apps/developer-platform/build-apps/"
        "authentication/request-validation"
    ),
    sample=Sample("contact.creation.json"),
)
