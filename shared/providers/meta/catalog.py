"""Meta's Graph API webhooks (Facebook Pages, Instagram, WhatsApp, Messenger):
`X-Hub-Signature-256: sha256=<lower-case hex>`, HMAC-SHA256 of the raw body keyed by the
app's App Secret (as text); no timestamp, no delivery id. The legacy SHA-1
`X-Hub-Signature` Meta still sends is not read.

Checked against Meta's "Webhooks: Getting Started" page (Validating Payloads, Verification
Requests): https://developers.facebook.com/docs/graph-api/webhooks/getting-started. An
earlier revision of that page says Meta signs "an escaped unicode version of the payload,
with lowercase hex digits" (`äöå` as `\\u00e4\\u00f6\\u00e5`): a body with non-ASCII
characters whose raw bytes do not match is checked once more in that form. Meta publishes
no test vector and no Python helper (`facebook-business` has none).

The handshake: `GET ?hub.mode=subscribe&hub.challenge=<int>&hub.verify_token=<token>`,
answered 200 with the challenge as plain text when the token is the integration's
`verify_token` (403 otherwise).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import InboundRequest, Reply, SignatureInvalid
from shared.providers.catalog import Entry, Probe, Sample, Setting
from shared.providers.declared import Declared, Fields, Found, echoed
from shared.providers.ids import decode_json_object
from shared.providers.schemes import Hmac

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(match: re.Match[str]) -> str:
    units = match[0].encode("utf-16-be")  # astral characters as their surrogate pair
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def escaped_unicode(body: bytes) -> bytes | None:
    """The body with every non-ASCII character as `\\uXXXX` (lower-case hex), as Meta signs
    it; None when there is none to escape (or the body is not UTF-8)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    escaped = _NON_ASCII.sub(_escape, text)
    return escaped.encode() if escaped != text else None


@dataclass(frozen=True)
class MetaSignature:
    """`Hmac` over the raw body, else over its escaped-unicode form (see the module)."""

    hmac: Hmac
    name: str = "hmac"

    @property
    def settings(self) -> tuple[str, ...]:
        return self.hmac.settings

    @property
    def headers(self) -> tuple[str, ...]:
        return self.hmac.headers

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return self.hmac.configured(secrets)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        try:
            self.hmac.verify(request, secrets, now)
        except SignatureInvalid:
            escaped = escaped_unicode(request.body)
            if escaped is None:
                raise
            self.hmac.verify(replace(request, body=escaped), secrets, now)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        return self.hmac.sign(request, secrets, now)


def verification(request: InboundRequest, settings: Mapping[str, str]) -> Reply | None:
    """Meta's verification request: the challenge back, for the integration's token only."""
    if request.method != "GET" or request.query.get("hub.mode") != "subscribe":
        return None
    challenge = request.query.get("hub.challenge", "")
    expected = settings.get("verify_token")
    given = request.query.get("hub.verify_token")
    if not expected or given is None or not constant_time_equal(given, expected):
        return Reply(403, {"error": "hub.verify_token is not this integration's verify_token"})
    # "An int": ASCII digits only (str.isdigit takes `١٢٣` too), never other text echoed.
    if not (challenge.isascii() and challenge.isdigit()) or len(challenge) > 64:
        return Reply(400, {"error": "hub.challenge is not an integer"})
    return echoed(challenge)


def event_name(request: InboundRequest, fields: Fields) -> str | None:
    """`{object}.{field}` of the first change (`page.feed`, `whatsapp_business_account.
    messages`); `{object}.messaging` for Messenger/Instagram messaging, which has no field."""
    body = decode_json_object(request.body)
    kind = body.get("object")
    entries = body.get("entry")
    if not isinstance(kind, str) or not kind or not isinstance(entries, list) or not entries:
        return None
    first: Any = entries[0]
    if not isinstance(first, dict):
        return None
    changes = first.get("changes")
    if isinstance(changes, list) and changes and isinstance(changes[0], dict):
        field = changes[0].get("field")
        return f"{kind}.{field}" if isinstance(field, str) and field else None
    if isinstance(first.get("messaging"), list):
        return f"{kind}.messaging"
    return None


WEBHOOKS = Declared(
    name="meta",
    scheme=MetaSignature(Hmac("x-hub-signature-256", setting="app_secret", prefix="sha256=")),
    event=Found(event_name, "`object` + '.' + `entry[0].changes[0].field` (or 'messaging')"),
    # Meta sends no delivery id ("Your server should handle deduplication"): a retry of
    # the same batch repeats its bytes, so the body's digest (the default) recognises it.
    # WhatsApp documents payloads "up to 3 MB".
    max_body_bytes=3 * 1024 * 1024,
    handshakes=(verification,),
    handshake_methods=("GET",),
)


def _probe(settings: Mapping[str, str], url: str, now: datetime) -> Probe:
    challenge = str(int(now.timestamp()))
    return Probe(
        "GET",
        query={
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": settings["verify_token"],
        },
        answer=challenge.encode(),
    )


ENTRY = Entry(
    provider="meta",
    name="Meta (Facebook, Instagram, WhatsApp, Messenger)",
    category="social",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "app_secret",
            "the app's App Secret (App Dashboard → App settings → Basic → App Secret)",
        ),
        Setting(
            "verify_token",
            "the Verify Token you type into the app's Webhooks settings (any string you "
            "choose); Meta's verification request must carry it",
        ),
    ),
    events=(
        "page.feed",
        "page.messages",
        "page.messaging",
        "instagram.comments",
        "instagram.mentions",
        "instagram.messaging",
        "whatsapp_business_account.messages",
        "whatsapp_business_account.message_template_status_update",
        "user.photos",
        "permissions.connected",
    ),
    setup=(
        "Choose a Verify Token (any string, e.g. `openssl rand -hex 16`) and save it here as "
        "verify_token; save the app's App Secret (App Dashboard → App settings → Basic) as "
        "app_secret.",
        "In the App Dashboard: your app → Webhooks (for WhatsApp: WhatsApp → Configuration), "
        "pick the object, Callback URL {webhook_url}, Verify Token the same string → Verify "
        "and save (Meta sends its verification request, which hookhub answers).",
        "Subscribe to the fields you want (messages, feed, comments…); for Pages and "
        "Instagram also subscribe the app to the Page (POST /{page-id}/subscribed_apps).",
    ),
    handshake=(
        "Meta's GET ?hub.mode=subscribe&hub.challenge=…&hub.verify_token=… is answered with "
        "the challenge (text/plain) when hub.verify_token is the integration's verify_token; "
        "403 otherwise."
    ),
    docs_url="https://developers.facebook.com/docs/graph-api/webhooks/getting-started",
    sample=Sample("user.photos.json"),
    example_settings=lambda: {
        "app_secret": secrets.token_hex(16),
        "verify_token": secrets.token_urlsafe(16),
    },
    handshake_probe=_probe,
)
