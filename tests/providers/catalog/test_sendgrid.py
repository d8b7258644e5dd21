"""SendGrid: the Event Webhook's ECDSA signature, checked against SendGrid's SDK and its
tests' vector."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sendgrid.helpers.eventwebhook import EventWebhook

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from shared.providers.schemes import Unsignable
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["sendgrid"]
WEBHOOKS = declared(ENTRY)

# sendgrid/sendgrid-python test/unit/test_eventwebhook.py (MIT).
PUBLIC_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3G"
    "Rqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15T"
    "luLtEZtM="
)
TIMESTAMP = "1600112502"
AT = datetime.fromtimestamp(int(TIMESTAMP), UTC)
assert ENTRY.sample is not None
PAYLOAD = ENTRY.sample.body("sendgrid")  # the test's PAYLOAD, CR LF included


def request(
    signature: str | None = SIGNATURE, stamp: str | None = TIMESTAMP, body: bytes = PAYLOAD
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-twilio-email-event-webhook-signature"] = signature
    if stamp is not None:
        headers["x-twilio-email-event-webhook-timestamp"] = stamp
    return inbound(body, headers, at=AT)


def settings(key: str = PUBLIC_KEY) -> dict[str, str]:
    return {"verification_key": key}


def test_the_sdk_tests_vector_verifies() -> None:
    assert PAYLOAD.endswith(b"}]\r\n")
    assert EventWebhook(PUBLIC_KEY).verify_signature(PAYLOAD.decode(), SIGNATURE, TIMESTAMP)
    WEBHOOKS.verify(request(), settings(), AT)
    pem = f"-----BEGIN PUBLIC KEY-----\n{PUBLIC_KEY}\n-----END PUBLIC KEY-----"
    WEBHOOKS.verify(request(), settings(pem), AT)  # as the SDK wraps it


@pytest.mark.parametrize(
    ("signed", "key"),
    [
        # The SDK test's refusals: another key, another signature, another timestamp/payload.
        (
            request(),
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8R"
            "Entlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==",
        ),
        (
            request(
                "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVR"
                "amr2nlxFDWYNH3j/0="
            ),
            PUBLIC_KEY,
        ),
        (request(stamp=str(int(TIMESTAMP) + 1)), PUBLIC_KEY),
        (request(body=PAYLOAD.rstrip()), PUBLIC_KEY),  # without SendGrid's CR LF
        (request(signature=None), PUBLIC_KEY),
        (request(stamp=None), PUBLIC_KEY),
    ],
    ids=["another-key", "another-signature", "another-time", "body-trimmed", "no-sig", "no-time"],
)
def test_what_sendgrid_did_not_sign_is_refused(signed: InboundRequest, key: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(signed, settings(key), AT)


def test_the_signature_is_base64_der_not_raw_or_hex() -> None:
    r, s = decode_dss_signature(base64.b64decode(SIGNATURE))
    raw = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    for other in (raw, base64.b64decode(SIGNATURE).hex()):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(request(other), settings(), AT)


def test_five_minutes_either_way() -> None:
    for offset in (-299, 299):
        WEBHOOKS.verify(request(), settings(), AT + timedelta(seconds=offset))
    for offset in (-301, 301):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(), settings(), AT + timedelta(seconds=offset))


def test_what_the_sandbox_signs_sendgrids_sdk_accepts() -> None:
    examples = ENTRY.examples()
    body, headers = ENTRY.signed_sample(examples, "https://h/x", NOW)
    public = examples["verification_key"]
    assert public.startswith("MFkw")
    assert EventWebhook(public).verify_signature(
        body.decode(),
        headers["X-Twilio-Email-Event-Webhook-Signature"],
        headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )
    # verification reads the public key only
    sent = inbound(body, headers, at=NOW)
    WEBHOOKS.verify(sent, {"verification_key": public}, NOW)
    with pytest.raises(Unsignable):
        ENTRY.signed_sample({"verification_key": public}, "https://h/x", NOW)
    key = ENTRY.setting("sandbox_signing_key")
    assert key is not None and key.secret and not key.required
    shown = ENTRY.setting("verification_key")
    assert shown is not None and not shown.secret  # a public key


def test_each_event_is_its_own() -> None:
    parsed = WEBHOOKS.parse(request())
    assert [(e.event_type, e.delivery_id) for e in parsed.events] == [
        ("dropped", "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA")
    ]
    two = b'[{"event":"open","sg_event_id":"a"},{"event":"click"}]\r\n'
    events = WEBHOOKS.parse(request(body=two)).events
    assert [e.event_type for e in events] == ["open", "click"]
    assert events[0].delivery_id == "a" and events[1].delivery_id.startswith("sha256:")
    assert WEBHOOKS.handshake(request(), {"verification_key": PUBLIC_KEY}) is None


def test_the_curve_is_p256() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SignatureInvalid, match="P-256"):
        WEBHOOKS.verify(request(), settings(base64.b64encode(der).decode()), AT)
