"""Calendly's webhooks: `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`, the HMAC-SHA256 of
`{t}.{raw body}` keyed by the subscription's webhook signing key (its text), any `v1`
matching, within three minutes (Calendly's own verification sample refuses a `t` more than
180 s old; hookhub refuses one as far in the future too).

Checked against Calendly's "Webhook Signatures" page and its webhooks overview
("Verify HMAC-SHA256(key, "<t>." + raw_body)"). Calendly has no SDK and publishes no
vector: the tests compute the docs' recipe with the standard library. Calendly sends no
delivery id: a retry repeats the body (with a new `t`), so the body's digest is the id.
"""

from __future__ import annotations

from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import BODY_DIGEST, Declared, FromJson
from shared.providers.schemes import Timestamped

WEBHOOKS = Declared(
    name="calendly",
    scheme=Timestamped("calendly-webhook-signature", tolerance_seconds=180, setting="signing_key"),
    event=FromJson("event"),
    delivery_id=BODY_DIGEST,
)

ENTRY = Entry(
    provider="calendly",
    name="Calendly",
    category="scheduling",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_key",
            "the webhook signing key: the `signing_key` you gave POST /webhook_subscriptions "
            "(personal access token), or your OAuth app's key from the developer portal",
        ),
    ),
    events=(
        "invitee.created",
        "invitee.canceled",
        "invitee_no_show.created",
        "invitee_no_show.deleted",
        "routing_form_submission.created",
    ),
    setup=(
        "Choose a long random signing key (`openssl rand -hex 32`) and save it here as "
        "signing_key (an OAuth app: its generated webhook signing key instead).",
        "Find your organization's URI: GET https://api.calendly.com/users/me "
        "(`current_organization`).",
        'POST https://api.calendly.com/webhook_subscriptions {"url": "{webhook_url}", '
        '"events": ["invitee.created", "invitee.canceled"], "organization": "<its URI>", '
        '"scope": "organization", "signing_key": "<the same key>"} (a paid plan).',
    ),
    docs_url="https://developer.calendly.com/api-docs/overview/webhooks/webhook-signatures",
    sample=Sample("invitee.created.json"),
)
