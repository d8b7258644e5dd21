"""Stripe: `Stripe-Signature: t=,v1=` checked against stripe-python, Stripe's own SDK."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import stripe

from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["stripe"]
WEBHOOKS = declared(ENTRY)
SECRET = "whsec_test_secret"  # stripe-python tests/test_webhook.py (MIT)
# stripe-python's tests/test_webhook.py DUMMY_WEBHOOK_PAYLOAD (MIT).
PAYLOAD = """{
  "id": "evt_test_webhook",
  "object": "event",
  "data": { "object": { "id": "rdr_123", "object": "terminal.reader" } }
}"""
STAMP = int(NOW.timestamp())


def settings(secret: str = SECRET) -> dict[str, str]:
    return {"signing_secret": secret}


def request(header: str, body: str = PAYLOAD) -> InboundRequest:
    return inbound(body.encode(), {"stripe-signature": header, "content-type": "application/json"})


def sdk_header(body: str = PAYLOAD, secret: str = SECRET, stamp: int = STAMP) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=stamp)
    return header


def test_a_header_signed_by_stripes_sdk_verifies() -> None:
    header = sdk_header()
    WEBHOOKS.verify(request(header), settings(), NOW)
    # and what hookhub signs, Stripe's SDK accepts
    body, headers = ENTRY.signed_sample(settings(), "https://h/x", NOW)
    assert stripe.WebhookSignature.verify_header(
        body.decode(), headers["stripe-signature"], SECRET, tolerance=None
    )


def test_the_vector_computed_with_the_sdk() -> None:
    """`generate_signature_header(PAYLOAD, "whsec_test_secret", 1492774577)` with stripe 16.1.0:
    the key is the whole secret as text, `whsec_` included (not base64-decoded)."""
    header = "t=1492774577,v1=d21d91b425674689e03346536b8fec6384a8721d43ebe269a1689a3ad22cba9c"
    at = NOW.replace(year=2017, month=4, day=21, hour=11, minute=36, second=17)
    assert int(at.timestamp()) == 1492774577
    WEBHOOKS.verify(request(header), settings(), at)


def test_any_v1_matches_and_v0_is_ignored() -> None:
    good = sdk_header()
    signature = good.split("v1=")[1]
    rolled = f"t={STAMP},v1={'0' * 64},v1={signature}"
    WEBHOOKS.verify(request(rolled), settings(), NOW)
    with pytest.raises(SignatureInvalid):  # a test-mode v0 alone is not a signature
        WEBHOOKS.verify(request(f"t={STAMP},v0={signature}"), settings(), NOW)


@pytest.mark.parametrize(
    "header",
    [
        "bad_header",
        f"t={STAMP}",
        "v1=" + "0" * 64,
        f"t=abc,v1={'0' * 64}",
        f"t={STAMP},t={STAMP},v1={'0' * 64}",
    ],
    ids=["garbage", "no-v1", "no-t", "t-not-a-number", "two-t"],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(header), settings(), NOW)


def test_a_base64_signature_is_no_hex_signature() -> None:
    digest = hmac.new(SECRET.encode(), f"{STAMP}.{PAYLOAD}".encode(), hashlib.sha256).digest()
    header = f"t={STAMP},v1={base64.b64encode(digest).decode()}"
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(header), settings(), NOW)


def test_five_minutes_either_way() -> None:
    for offset in (-299, 299):
        stamp = STAMP + offset
        WEBHOOKS.verify(request(sdk_header(stamp=stamp)), settings(), NOW)
    for offset in (-301, 301):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(sdk_header(stamp=STAMP + offset)), settings(), NOW)


def test_event_type_and_id_come_from_the_event() -> None:
    with pytest.raises(MalformedWebhook, match="no event name in `type`"):
        WEBHOOKS.parse(request(sdk_header()))  # the SDK's dummy event has no type
    assert ENTRY.sample is not None
    body = json.loads(ENTRY.sample.body("stripe"))
    sample = WEBHOOKS.parse(inbound(json.dumps(body).encode(), {}))
    assert (sample.event_type, sample.delivery_id) == (
        "setup_intent.created",
        "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    )
