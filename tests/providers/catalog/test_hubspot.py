"""HubSpot: `X-HubSpot-Signature-v3` checked against HubSpot's SDK and its tests' vector."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hubspot.utils.signature import Signature

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["hubspot"]
WEBHOOKS = declared(ENTRY)
URL = "https://hooks.example.com/api/webhooks/hubspot/int_1"
MS = int(NOW.timestamp() * 1000)
SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"  # HubSpot's docs' and SDK tests' client secret
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("hubspot")


def request(
    body: bytes, signature: str | None, stamp: int | None = MS, url: str = URL, method: str = "POST"
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-hubspot-signature-v3"] = signature
    if stamp is not None:
        headers["x-hubspot-request-timestamp"] = str(stamp)
    return inbound(body, headers, url=url, method=method)


def settings(secret: str = SECRET) -> dict[str, str]:
    return {"client_secret": secret}


def sdk(body: bytes = BODY, stamp: int = MS, url: str = URL, secret: str = SECRET) -> str:
    signature: str = Signature.get_signature(
        secret, body.decode(), "v3", http_uri=url, http_method="POST", timestamp=str(stamp)
    )
    return signature


def test_the_sdk_tests_vector_verifies() -> None:
    """HubSpot/hubspot-api-python tests/spec/utils/test_signature.py (Apache-2.0): v3 of
    POST https://www.example.com/webhook_uri, body {'example_field':'example_value'},
    timestamp 15000000 (ms)."""
    vector = request(
        b"{'example_field':'example_value'}",
        "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=",
        15000000,
        url="https://www.example.com/webhook_uri",
    )
    WEBHOOKS.verify(vector, settings(), datetime.fromtimestamp(15000, UTC))


def test_a_signature_made_by_hubspots_sdk_verifies_and_the_reverse() -> None:
    WEBHOOKS.verify(request(BODY, sdk()), settings(), NOW)
    now = datetime.now(UTC)  # the SDK checks the timestamp against the clock
    body, headers = ENTRY.signed_sample(settings(), URL, now)
    assert Signature.is_valid(
        headers["X-HubSpot-Signature-v3"],
        SECRET,
        body.decode(),
        http_uri=URL,
        http_method="POST",
        signature_version="v3",
        timestamp=headers["X-HubSpot-Request-Timestamp"],
    )


@pytest.mark.parametrize(
    "signed",
    [
        request(BODY, sdk(secret="another")),
        request(BODY, sdk(url=URL + "?x=1")),
        request(BODY, base64.b64decode(sdk()).hex()),
        request(BODY, None),
        request(BODY, sdk(), stamp=None),
        request(BODY, sdk(), method="PUT"),  # the method is signed
    ],
    ids=["another-secret", "another-url", "hex", "missing", "no-timestamp", "another-method"],
)
def test_what_hubspot_did_not_sign_is_refused(signed: InboundRequest) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(signed, settings(), NOW)


def test_the_older_signatures_alone_are_refused() -> None:
    """v1/v2 (`X-HubSpot-Signature`, hex SHA-256 of secret + …) carry no timestamp."""
    v1 = hashlib.sha256(SECRET.encode() + BODY).hexdigest()
    old = inbound(BODY, {"x-hubspot-signature": v1, "x-hubspot-signature-version": "v1"}, url=URL)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(old, settings(), NOW)


def test_the_timestamp_is_milliseconds_within_five_minutes() -> None:
    for offset in (-299_000, 299_000):
        WEBHOOKS.verify(request(BODY, sdk(stamp=MS + offset), MS + offset), settings(), NOW)
    for offset in (-301_000, 301_000):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(BODY, sdk(stamp=MS + offset), MS + offset), settings(), NOW)
    seconds = MS // 1000  # a timestamp in seconds is decades off
    with pytest.raises(SignatureInvalid, match="stale"):
        WEBHOOKS.verify(request(BODY, sdk(stamp=seconds), seconds), settings(), NOW)


def test_each_event_of_the_batch_is_its_own() -> None:
    batch = (
        b'[{"eventId":1,"subscriptionType":"contact.creation","portalId":62515},'
        b'{"eventId":2,"subscriptionType":"contact.propertyChange","portalId":62515}]'
    )
    parsed = WEBHOOKS.parse(request(batch, sdk(batch)))
    assert [(e.event_type, e.delivery_id) for e in parsed.events] == [
        ("contact.creation", "1"),
        ("contact.propertyChange", "2"),
    ]
    sample = WEBHOOKS.parse(request(BODY, sdk()))
    assert [(e.event_type, e.delivery_id) for e in sample.events] == [("contact.creation", "1")]
    assert WEBHOOKS.handshake(request(BODY, sdk()), settings()) is None


def test_the_base64_is_of_the_hmac() -> None:
    content = b"POST" + URL.encode() + BODY + str(MS).encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), content, hashlib.sha256).digest())
    assert sdk() == expected.decode()
