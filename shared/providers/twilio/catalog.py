"""Twilio's webhooks: `X-Twilio-Signature`, the standard base64 of an HMAC-SHA1 keyed by the
account's Auth Token (as text) of the URL Twilio called, scheme to query string as sent,
followed by every POST parameter sorted by name, each as name + value (a repeated name:
each of its distinct values, sorted). For a JSON body Twilio signs the URL alone, which
carries `bodySHA256` (hex SHA-256 of the body): both must match. As Twilio's SDK does, the
URL is tried as called, without its port and with the default port (443, 80) added:
"sig generation on back end is inconsistent". No timestamp: no replay window.

A request matched by a Webhooks Rule carries `X-Twilio-Webhooks-Signature-Settings:
key=…,algorithm=HMAC_SHA1|HMAC_SHA256`: it is signed the same way with the SharedKey's
secret (`shared_key`) and that algorithm. Checked against Twilio's "Webhooks security",
error 57012 (JSON bodies) and "Sign webhooks with shared keys", and Twilio's Python SDK
(twilio 9.13, `twilio.request_validator`), whose tests' vectors the tests verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlsplit, urlunsplit

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import InboundRequest, MalformedWebhook, Reply, SignatureInvalid
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FirstOf, Fixed, FromHeader, FromJson
from shared.providers.ids import decode_form, is_form, required_secret
from shared.providers.schemes import Algorithm

SIGNATURE = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
_ALGORITHMS: dict[str, Algorithm] = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}


def url_forms(url: str) -> list[str]:
    """The URL as called, without its port, and with the default port: the forms Twilio's
    SDK accepts a signature over."""
    parts = urlsplit(url)
    forms = [url]
    try:
        port = parts.port
    except ValueError:
        return forms
    host = parts.netloc.rsplit(":", 1)[0] if port else parts.netloc
    default = 443 if parts.scheme == "https" else 80
    for netloc in (host, parts.netloc if port else f"{host}:{default}"):
        forms.append(urlunsplit(parts._replace(netloc=netloc)))
    return list(dict.fromkeys(forms))


def signed_params(request: InboundRequest) -> bytes:
    """What follows the URL: the form's parameters sorted, or nothing for a JSON body whose
    `bodySHA256` matches it (refused otherwise: Twilio's signature would not cover it)."""
    if is_form(request):
        try:
            fields = decode_form(request.body)
        except MalformedWebhook as exc:
            # Before the signature is known good nothing is "malformed": a form Twilio
            # could not have signed is a request whose signature cannot match (a 401).
            raise SignatureInvalid(
                "the body is not a UTF-8 form: no parameters a signature could cover"
            ) from exc
        out = []
        for name in sorted(fields):
            given = fields[name]
            for value in sorted(set(given if isinstance(given, list) else [given])):
                out.append(name + value)
        return "".join(out).encode()
    declared = parse_qs(urlsplit(request.url).query).get("bodySHA256")
    if not declared:
        raise SignatureInvalid(
            "a body that is not a form must be signed through the URL's bodySHA256 parameter"
        )
    if not constant_time_equal(declared[0].lower(), hashlib.sha256(request.body).hexdigest()):
        raise SignatureInvalid("the URL's bodySHA256 is not the body's SHA-256")
    return b""


@dataclass(frozen=True)
class TwilioSignature:
    """`X-Twilio-Signature` over the URL and the sorted form (see the module docstring)."""

    auth_token: str = "auth_token"  # noqa: S105 - the setting's name
    shared_key: str = "shared_key"
    name: str = "twilio"

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.auth_token, self.shared_key)

    @property
    def headers(self) -> tuple[str, ...]:
        return (SIGNATURE, SETTINGS_HEADER)

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return bool(secrets.get(self.auth_token))

    def _key(self, request: InboundRequest, secrets: Mapping[str, str]) -> tuple[str, Algorithm]:
        """The Auth Token and SHA-1, or with the settings header its SharedKey and algorithm
        (an absent `algorithm=` is HMAC_SHA1, as in Twilio's SDK)."""
        settings = (request.header(SETTINGS_HEADER) or "").strip()
        if not settings:
            return required_secret(secrets, self.auth_token), "sha1"
        named = "HMAC_SHA1"
        for part in settings.split(","):
            key, sep, value = part.partition("=")
            if sep and key.strip() == "algorithm" and value.strip():
                named = value.strip().upper()
        if named not in _ALGORITHMS:
            raise SignatureInvalid(f"{SETTINGS_HEADER} names an unknown algorithm {named!r}")
        return required_secret(secrets, self.shared_key), _ALGORITHMS[named]

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        signature = request.header(SIGNATURE)
        if signature is None or not signature.strip():
            raise SignatureInvalid(f"{SIGNATURE} header is missing")
        key, algorithm = self._key(request, secrets)
        params = signed_params(request)
        # Every form is compared, so the time taken does not say which one matched. The
        # base64 is compared as Twilio's SDK compares it: exactly.
        matched = [
            constant_time_equal(
                signature.strip(), signature_of(key, url.encode() + params, algorithm)
            )
            for url in url_forms(request.url)
        ]
        if not any(matched):
            raise SignatureInvalid(f"{SIGNATURE} does not match the URL and the parameters")

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        content = request.url.encode() + signed_params(request)
        return {SIGNATURE: signature_of(secrets[self.auth_token], content, "sha1")}


def signature_of(key: str, content: bytes, algorithm: Algorithm) -> str:
    return base64.b64encode(hmac.new(key.encode(), content, algorithm).digest()).decode()


# "To do nothing, simply send the following TwiML in your response": an incoming message
# gets no reply and a call ends; a status callback's answer is not read.
EMPTY_TWIML = Reply(200, b"<Response></Response>", media_type="text/xml")

WEBHOOKS = Declared(
    name="twilio",
    scheme=TwilioSignature(),
    # Twilio has no event field: what changed is in a status parameter (Conversations,
    # TaskRouter and the like name it in EventType); a request with none is `webhook`.
    event=FirstOf(
        (
            FromJson("EventType"),
            FromJson("MessageStatus"),
            FromJson("SmsStatus"),
            FromJson("CallStatus"),
            Fixed("webhook"),
        )
    ),
    # The same on Twilio's retries of a request; without it, the body's digest.
    delivery_id=FromHeader("I-Twilio-Idempotency-Token"),
    body="json_or_form",
    reply=EMPTY_TWIML,
    account=FromJson("AccountSid"),
)

ENTRY = Entry(
    provider="twilio",
    name="Twilio",
    category="messaging",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "auth_token",
            "the account's primary Auth Token (Console → Account → API keys & tokens)",
        ),
        Setting(
            "shared_key",
            "the secret of the SharedKey a Webhooks Rule signs with (requests carrying "
            "X-Twilio-Webhooks-Signature-Settings); only with such a rule",
            required=False,
        ),
    ),
    events=(
        "received",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "ringing",
        "in-progress",
        "completed",
        "busy",
        "no-answer",
        "canceled",
        "onMessageAdded",
        "onConversationAdded",
        "onParticipantAdded",
        "webhook",
    ),
    setup=(
        "In the Twilio Console: Phone Numbers → Manage → Active numbers → the number.",
        "Messaging (or Voice) configuration → A message (call) comes in: Webhook, "
        "{webhook_url}, HTTP POST; for status callbacks, send {webhook_url} as "
        "StatusCallback. Save.",
        "Copy the primary Auth Token (Account → API keys & tokens) and save it here as "
        "auth_token; with a Webhooks Rule signing with a SharedKey, its secret as shared_key.",
    ),
    docs_url="https://www.twilio.com/docs/usage/webhooks/webhooks-security",
    sample=Sample("gather.form", content_type="application/x-www-form-urlencoded"),
)
