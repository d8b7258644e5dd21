"""Mailgun's webhooks: no header; the JSON body's `signature` object holds `timestamp`,
`token` (50 random characters) and `signature`, the lower-case hex HMAC-SHA256 of
`{timestamp}{token}` keyed by the HTTP webhook signing key (as text; not the API key). On
a subaccount's domain `parent-signature`, keyed by the parent account's key, is there too:
either may match the integration's key. The timestamp is Unix seconds, as sent; a request
more than 15 minutes off is refused (Mailgun's SDK's default: its docs make the check
optional and warn against an aggressive one).

Mailgun signs the timestamp and token, not the event: `event-data` is not covered. The
token is a nonce ("cache the token value locally and not honor any subsequent request with
the same token"), so it is the delivery id: a replayed token, whatever event it carries,
is a duplicate. Checked against Mailgun's "Securing webhooks" and its Python SDK
(mailgun 1.10, `mailgun.security.SecurityGuard.verify_webhook`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from secrets import token_hex
from typing import Any

import orjson

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson
from shared.providers.ids import decode_json_object, required_secret
from shared.providers.schemes import KeyedBy, check_window

_TOLERANCE = 900


def signature_of(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def _signature_object(body: bytes) -> dict[str, Any]:
    try:
        signature = decode_json_object(body).get("signature")
    except MalformedWebhook as exc:
        raise SignatureInvalid("the body is not Mailgun's JSON: no signature to check") from exc
    if not isinstance(signature, dict):
        raise SignatureInvalid("the body has no `signature` object")
    return signature


@dataclass(frozen=True)
class MailgunSignature(KeyedBy):
    """The `signature` object of the body (see the module docstring)."""

    setting: str = "signing_key"
    name: str = "mailgun"

    @property
    def headers(self) -> tuple[str, ...]:
        return ()

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        key = required_secret(secrets, self.setting)
        signature = _signature_object(request.body)
        token, stamp = signature.get("token"), signature.get("timestamp")
        if not isinstance(token, str) or not token:
            raise SignatureInvalid("`signature.token` is missing")
        if isinstance(stamp, int) and not isinstance(stamp, bool):
            stamp = str(stamp)
        if not isinstance(stamp, str):
            raise SignatureInvalid("`signature.timestamp` is missing or not an integer timestamp")
        check_window(stamp, "`signature.timestamp`", _TOLERANCE, now)
        expected = signature_of(key, stamp, token)
        given = [signature.get(name) for name in ("signature", "parent-signature")]
        # Both are compared, so the time taken does not say which one matched.
        matched = [constant_time_equal(g, expected) for g in given if isinstance(g, str)]
        if not any(matched):
            raise SignatureInvalid("`signature.signature` does not match the timestamp and token")

    def signed_body(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> bytes:
        """The body with a fresh `signature` object (what the sandbox sends)."""
        body = decode_json_object(request.body)
        stamp, token = str(int(now.timestamp())), token_hex(25)  # 50 characters, as Mailgun's
        body["signature"] = {
            "token": token,
            "timestamp": stamp,
            "signature": signature_of(secrets[self.setting], stamp, token),
        }
        return orjson.dumps(body)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        return {}  # the signature is in the body (`signed_body`)


WEBHOOKS = Declared(
    name="mailgun",
    scheme=MailgunSignature(),
    event=FromJson("event-data", "event"),
    delivery_id=FromJson("signature", "token"),
    account=FromJson("event-data", "account", "id"),
)

ENTRY = Entry(
    provider="mailgun",
    name="Mailgun",
    category="email",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "signing_key",
            "the HTTP webhook signing key (Mailgun → Settings → API Security → Webhook "
            "signing key; not the API key); for a subaccount's events, its own or the "
            "parent account's",
        ),
    ),
    events=(
        "accepted",
        "rejected",
        "delivered",
        "failed",
        "opened",
        "clicked",
        "unsubscribed",
        "complained",
        "stored",
    ),
    setup=(
        "In Mailgun: Sending → Webhooks → the domain → Add webhook.",
        "Choose the event type, URL {webhook_url}; save (one URL per event type).",
        "Copy the HTTP webhook signing key (Settings → API Security) and save it here as "
        "signing_key.",
        "Test webhook sends a sample.",
    ),
    docs_url="https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
    sample=Sample("accepted.json"),
)
