"""SendGrid's Event Webhook: `X-Twilio-Email-Event-Webhook-Signature`, the base64 of a DER
ECDSA P-256/SHA-256 signature over `X-Twilio-Email-Event-Webhook-Timestamp` immediately
followed by the raw body (CR LF included), checked with the webhook's Verification Key (a
base64 DER public key, `MFkw…`). SendGrid documents no replay window and its SDK checks
none; the timestamp is signed, so hookhub refuses one more than five minutes off.

The body is an array of events: each is its own envelope, named by its `event` and
deduplicated by its `sg_event_id` ("unique for every event"; SendGrid may post an event
twice). Checked against SendGrid's "Event Webhook Security Features" and its Python SDK
(sendgrid 6.12, `sendgrid.helpers.eventwebhook.EventWebhook`), whose tests' vector verifies.

Only SendGrid can sign; so that the sandbox and the tests can, an integration may hold a
P-256 private key as `sandbox_signing_key` (what the example settings hold with its public
key). A real integration leaves it unset: verification never reads it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.providers.base import InboundRequest
from shared.providers.catalog import Entry, Sample, Setting
from shared.providers.declared import Declared, FromJson, Split, json_array
from shared.providers.schemes import EcdsaP256, Unsignable, Window

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SIGNING_KEY = "sandbox_signing_key"
_TOLERANCE = 300


@dataclass(frozen=True)
class SendGridSignature:
    """SendGrid's ECDSA check (`EcdsaP256`), and signing for the sandbox with a private key
    only example settings carry."""

    verifier: EcdsaP256 = field(
        default_factory=lambda: EcdsaP256(
            SIGNATURE, TIMESTAMP, public_key="verification_key", tolerance_seconds=_TOLERANCE
        )
    )
    name: str = "ecdsa_p256"

    @property
    def settings(self) -> tuple[str, ...]:
        return self.verifier.settings

    @property
    def headers(self) -> tuple[str, ...]:
        return self.verifier.headers

    def configured(self, secrets: Mapping[str, str]) -> bool:
        return self.verifier.configured(secrets)

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        self.verifier.verify(request, secrets, now)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        key = _private_key(secrets.get(SIGNING_KEY))
        stamp = Window(_TOLERANCE, header=TIMESTAMP).stamp(now)
        signature = key.sign(stamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp}


def _private_key(text: str | None) -> ec.EllipticCurvePrivateKey:
    if not text:
        raise Unsignable("only SendGrid signs: this integration has no sandbox_signing_key")
    try:
        key = serialization.load_der_private_key(base64.b64decode(text, validate=True), None)
    except (ValueError, binascii.Error, TypeError) as exc:
        raise Unsignable("sandbox_signing_key is not a base64 DER P-256 private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise Unsignable("sandbox_signing_key is not a P-256 private key")
    return key


def example_settings() -> dict[str, str]:
    """A fresh key pair: the public half as SendGrid shows it, the private one to sign."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "verification_key": base64.b64encode(public).decode(),
        SIGNING_KEY: base64.b64encode(private).decode(),
    }


WEBHOOKS = Declared(
    name="sendgrid",
    scheme=SendGridSignature(),
    event=FromJson("event"),
    # An event without sg_event_id is deduplicated by its own bytes' digest.
    split=Split(json_array, event=FromJson("event"), delivery_id=FromJson("sg_event_id")),
)

ENTRY = Entry(
    provider="sendgrid",
    name="SendGrid",
    category="email",
    webhooks=WEBHOOKS,
    settings=(
        Setting(
            "verification_key",
            "the Event Webhook's Verification Key, base64 (MFkw…), shown once Signed Event "
            "Webhook is enabled (Settings → Mail Settings → Event Webhooks)",
            secret=False,
            pattern=r"[A-Za-z0-9+/=\s]{80,400}|-----BEGIN PUBLIC KEY-----[\s\S]{80,600}",
        ),
        Setting(
            SIGNING_KEY,
            "hookhub's sandbox and tests only: a base64 DER (PKCS #8) P-256 private key their "
            "sample is signed with; SendGrid keeps its own, so a real integration leaves it unset",
            required=False,
        ),
    ),
    events=(
        "processed",
        "dropped",
        "delivered",
        "deferred",
        "bounce",
        "open",
        "click",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
    ),
    setup=(
        "In SendGrid: Settings → Mail Settings → Event Webhooks → Create new webhook.",
        "Post URL: {webhook_url}; select the events.",
        "Enable Signed Event Webhook (signature verification) and save; copy the "
        "Verification Key (MFkw…) and save it here as verification_key.",
        "Enable the webhook; Test Your Integration posts signed sample events.",
    ),
    docs_url=(
        "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/"
        "getting-started-event-webhook-security-features"
    ),
    sample=Sample("dropped.json"),
    example_settings=example_settings,
)
