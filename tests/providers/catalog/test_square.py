"""Square: `x-square-hmacsha256-signature` checked against Square's SDK and its tests' vectors."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac

import pytest
from square.utils.webhooks_helper import verify_signature

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["square"]
WEBHOOKS = declared(ENTRY)
HEADER = "x-square-hmacsha256-signature"

# square/square-python-sdk tests/integration/test_webhooks_helper.py (commit ef5c175f, MIT).
REQUEST_BODY = (
    '{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
    '"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z",'
    '"data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}'
)
SIGNATURE_HEADER = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
SIGNATURE_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
NOTIFICATION_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"


def request(
    signature: str | None,
    body: str = REQUEST_BODY,
    url: str = NOTIFICATION_URL,
    config: dict[str, str] | None = None,
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers[HEADER] = signature
    return dataclasses.replace(inbound(body.encode(), headers, url=url), config=config or {})


def settings(key: str = SIGNATURE_KEY) -> dict[str, str]:
    return {"signature_key": key}


def test_the_sdks_vectors_verify() -> None:
    WEBHOOKS.verify(request(SIGNATURE_HEADER), settings(), NOW)
    # test_signature_validation_escaped_pass: the body's `>` and `<` are signed as sent.
    escaped = request(
        "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=",
        body='{"data":{"type":"webhooks","id":">id<"}}',
        url="https://webhook.site/webhooks",
    )
    WEBHOOKS.verify(escaped, settings("signature-key"), NOW)


def test_what_hookhub_signs_squares_sdk_accepts() -> None:
    url = "https://hooks.example.com/api/webhooks/square/int_1"
    body, headers = ENTRY.signed_sample(settings(), url, NOW)
    assert verify_signature(
        request_body=body.decode(),
        signature_header=headers[HEADER],
        signature_key=SIGNATURE_KEY,
        notification_url=url,
    )
    WEBHOOKS.verify(request(headers[HEADER], body.decode(), url), settings(), NOW)


@pytest.mark.parametrize(
    ("signature", "key", "url"),
    [
        (
            SIGNATURE_HEADER,
            SIGNATURE_KEY,
            "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9",
        ),
        (SIGNATURE_HEADER, "MCmhFRxGX82xMwg5FsaoQA", NOTIFICATION_URL),
        ("1z2n3DEJJiUPKcPzQo1ftvbxGdw=", SIGNATURE_KEY, NOTIFICATION_URL),
        (None, SIGNATURE_KEY, NOTIFICATION_URL),
    ],
    ids=["another-url", "another-key", "another-signature", "no-signature"],
)
def test_the_sdks_refusals_are_refused(signature: str | None, key: str, url: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature, url=url), settings(key), NOW)


def test_a_hex_signature_is_no_base64_signature() -> None:
    digest = hmac.new(
        SIGNATURE_KEY.encode(), (NOTIFICATION_URL + REQUEST_BODY).encode(), hashlib.sha256
    ).digest()
    assert base64.b64encode(digest).decode() == SIGNATURE_HEADER
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(digest.hex()), settings(), NOW)


def test_the_key_is_text_not_base64() -> None:
    """The key looks like base64url; Square's SDK uses its UTF-8 bytes."""
    decoded = base64.urlsafe_b64encode(base64.urlsafe_b64decode(SIGNATURE_KEY + "==")).decode()
    assert decoded.rstrip("=") == SIGNATURE_KEY
    digest = hmac.new(
        base64.urlsafe_b64decode(SIGNATURE_KEY + "=="),
        (NOTIFICATION_URL + REQUEST_BODY).encode(),
        hashlib.sha256,
    ).digest()
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(base64.b64encode(digest).decode()), settings(), NOW)


def test_a_configured_notification_url_is_the_signed_one() -> None:
    """Behind a proxy the request reaches hookhub at its own URL; Square signed the one
    entered in the subscription, which `notification_url` holds."""
    own = "https://hooks.example.com/api/webhooks/square/int_1"
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(SIGNATURE_HEADER, url=own), settings(), NOW)
    configured = request(SIGNATURE_HEADER, url=own, config={"notification_url": NOTIFICATION_URL})
    WEBHOOKS.verify(configured, settings(), NOW)
    setting = ENTRY.setting("notification_url")
    assert setting is not None and not setting.secret and not setting.required


def test_event_type_and_id_are_the_events() -> None:
    parsed = WEBHOOKS.parse(request(SIGNATURE_HEADER))
    assert (parsed.event_type, parsed.delivery_id, parsed.account_id) == (
        "webhooks.test_notification",
        "ac3ac95b-f97d-458c-a6e6-18981597e05f",
        "MLEFBHHSJGVHD",
    )
    assert WEBHOOKS.handshake(request(SIGNATURE_HEADER), settings()) is None
