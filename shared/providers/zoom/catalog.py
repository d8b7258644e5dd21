"""Zoom's webhooks: `x-zm-signature: v0=<hex>`, an HMAC-SHA256 of
`v0:{x-zm-request-timestamp}:{raw body}` keyed by the app's Secret Token as text, lower-case
hex. Zoom documents no replay window and its sample and SDK check none; the timestamp is
signed, so hookhub refuses one more than five minutes off (Unix seconds).

`endpoint.url_validation` (when the URL is validated, and every 72 hours) is a POST signed
the same way: once its signature checks, it is answered 200 `{"plainToken": …,
"encryptedToken": hex HMAC-SHA256 of plainToken keyed by the Secret Token}` and not
published. Checked against Zoom's webhook sample (zoom/webhook-sample, index.js) and its
SDK Zoom Rivet (@zoom/rivet 0.4.0, `CommonHttpRequest`): Zoom has no Python SDK.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

import orjson

from shared.providers.base import InboundRequest, MalformedWebhook, Reply
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import BODY_DIGEST, Declared, Fields, FromJson, Joined
from shared.providers.ids import decode_json_object, field_at
from shared.providers.schemes import BODY, HeaderValue, Hmac, Text, Window

_STAMP = "x-zm-request-timestamp"
SCHEME = Hmac(
    "x-zm-signature",
    setting="secret_token",
    prefix="v0=",
    signed=(Text("v0:"), HeaderValue(_STAMP), Text(":"), BODY),
    window=Window(300, header=_STAMP),
)
_VALIDATION = "endpoint.url_validation"


def encrypted_token(plain_token: str, secret_token: str) -> str:
    return hmac.new(secret_token.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


def _url_validation(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """Zoom's challenge, answered once its signature checks (as Zoom's sample and Rivet do):
    a forged one gets 401, not an answer made with the Secret Token."""
    if request.method != "POST" or _VALIDATION.encode() not in request.body:
        return None  # the usual event: no second look at its body
    SCHEME.verify(request, settings, request.received_at)
    body = decode_json_object(request.body)
    if body.get("event") != _VALIDATION:
        return None
    plain = field_at(body, "payload", "plainToken")
    if not isinstance(plain, str) or not plain:
        raise MalformedWebhook("endpoint.url_validation has no payload.plainToken")
    answer = {
        "plainToken": plain,
        "encryptedToken": encrypted_token(plain, settings["secret_token"]),
    }
    return Reply(200, answer)


def _not_here(request: InboundRequest, fields: Fields) -> Reply | None:
    """A validation reaching the app-level URL: no integration, so no Secret Token to answer
    with, and it is no event to publish."""
    if fields.get(("event",)) == _VALIDATION:
        raise MalformedWebhook(
            "Zoom's endpoint.url_validation is answered on an integration's URL "
            "(/api/webhooks/zoom/{integration_id}) only"
        )
    return None


def probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    """The validation as Zoom sends it (the plainToken of Zoom's docs), signed."""
    plain = "qgg8vlvZRS6UYooatFL8Aw"
    body = orjson.dumps(
        {
            "payload": {"plainToken": plain},
            "event_ts": int(now.timestamp() * 1000),
            "event": _VALIDATION,
        }
    )
    request = InboundRequest(headers={}, body=body, received_at=now, url=url)
    headers = {"content-type": "application/json", **SCHEME.sign(request, settings, now)}
    answer = {
        "plainToken": plain,
        "encryptedToken": encrypted_token(plain, settings["secret_token"]),
    }
    return Probe("POST", headers=headers, body=body, status=200, answer=orjson.dumps(answer))


WEBHOOKS = Declared(
    name="zoom",
    scheme=SCHEME,
    event=FromJson("event"),
    # Zoom sends no delivery id; a retry repeats the body, `event_ts` (ms) included.
    delivery_id=Joined((FromJson("event_ts"), BODY_DIGEST), ":"),
    handshakes=(_url_validation,),
    control=_not_here,
    account=FromJson("payload", "account_id"),
)

ENTRY = Entry(
    provider="zoom",
    name="Zoom",
    category="video",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "secret_token",
            "the app's Secret Token (App Marketplace → Manage → your app → Features → Access "
            "→ Event Subscriptions)",
        ),
    ),
    handshake="endpoint.url_validation (signed POST): {plainToken, encryptedToken} answered",
    events=(
        "meeting.created",
        "meeting.updated",
        "meeting.deleted",
        "meeting.started",
        "meeting.ended",
        "meeting.participant_joined",
        "meeting.participant_left",
        "recording.completed",
        "webinar.started",
        "webinar.ended",
        "user.created",
        "app_deauthorized",
    ),
    setup=(
        "In the Zoom App Marketplace: Manage → your app → Features → Access; enable Event "
        "Subscriptions → Add New Event Subscription.",
        "Copy the Secret Token and save it here as secret_token (before validating).",
        "Event notification endpoint URL: {webhook_url}; select the events.",
        "Click Validate (hookhub answers Zoom's challenge), then Save.",
    ),
    docs_url="https://developers.zoom.us/docs/api/webhooks/",
    sample=Sample("meeting.started.json"),
    handshake_probe=probe,
)
