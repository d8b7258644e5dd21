"""Notion's integration webhooks: `X-Notion-Signature: sha256=<lower-case hex>`,
HMAC-SHA256 of the raw body keyed by the subscription's `verification_token` (as text);
no timestamp. `event_type` is the event's `type`, `delivery_id` its `id` (a retry resends
the same `id` with a higher `attempt_number`, so the body's digest would not do).

The token is handed over, unsigned, in the one POST Notion sends when a subscription is
created (`{"verification_token": "secret_…"}`): hookhub keeps it (sealed, once: a second
one is refused 409) and shows it as the integration's `pending_verification_token` until
the first verified event, for the user to paste into Notion's Verify form.

Checked against https://developers.notion.com/reference/webhooks ("Step 3: Validating
event payloads", whose sample signature the tests verify). Notion's example re-serialises
the parsed body; hookhub hashes the bytes as received (Notion sends them minified, which is
what its example reproduces). Notion publishes no Python SDK with a verifier.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime

import orjson

from shared.providers.base import InboundRequest, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.schemes import Hmac

TOKEN = "verification_token"  # noqa: S105 - the setting's name


def verification_token(request: InboundRequest) -> str | None:
    """The token of Notion's verification POST: a body that is only `verification_token`."""
    if request.method != "POST" or b'"verification_token"' not in request.body:
        return None  # every event: no decoding on the hot path
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or set(body) != {TOKEN}:
        return None
    token = body[TOKEN]
    return token if isinstance(token, str) and 0 < len(token) <= 500 else None


def verification(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """Keep the token (the gateway refuses a second one: 409) and answer 200."""
    token = verification_token(request)
    if token is None:
        return None
    return Reply(200, {"ok": True}, store={TOKEN: token})


WEBHOOKS = Declared(
    name="notion",
    scheme=Hmac("x-notion-signature", setting=TOKEN, prefix="sha256="),
    event=FromJson("type"),
    delivery_id=FromJson("id"),
    handshakes=(verification,),
)


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    """Notion's verification POST handing over the settings' token (a new one if none)."""
    token = settings.get(TOKEN) or "secret_" + secrets.token_urlsafe(32)
    return Probe(
        "POST",
        headers={"content-type": "application/json"},
        body=orjson.dumps({TOKEN: token}),
        stores=(TOKEN,),
    )


ENTRY = Entry(
    provider="notion",
    name="Notion",
    category="productivity",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            TOKEN,
            "the subscription's verification_token (secret_…): kept by hookhub from "
            "Notion's first POST; set it yourself only if that POST was missed",
            required=False,
            shown_until_first_event=True,
        ),
    ),
    events=(
        "page.created",
        "page.content_updated",
        "page.properties_updated",
        "page.moved",
        "page.deleted",
        "page.undeleted",
        "page.locked",
        "page.unlocked",
        "database.created",
        "database.moved",
        "database.deleted",
        "database.undeleted",
        "data_source.content_updated",
        "data_source.schema_updated",
        "comment.created",
        "comment.updated",
        "comment.deleted",
    ),
    setup=(
        "Create the integration here (no settings needed) and keep its page open.",
        "At notion.so/profile/integrations: your integration → Webhooks → Create a "
        "subscription, Webhook URL {webhook_url}, pick the event types → Create "
        "subscription. Notion POSTs a verification_token, which hookhub keeps.",
        "GET the integration here: copy its pending_verification_token, then in Notion "
        "click Verify, paste it and Verify subscription.",
        "Give the integration access to the pages it should see (and the comment read "
        "capability for comment events).",
    ),
    handshake=(
        'Notion\'s first POST, {"verification_token": "secret_…"}, is answered 200 and '
        "the token kept (once; a second one is refused 409) and shown as "
        "pending_verification_token until the first verified event."
    ),
    docs_url="https://developers.notion.com/reference/webhooks",
    sample=Sample("page.created.json"),
    example_settings=lambda: {TOKEN: "secret_" + secrets.token_urlsafe(32)},
    handshake_probe=_probe,
)
