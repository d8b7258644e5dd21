"""Box: `BOX-SIGNATURE-PRIMARY`/`-SECONDARY`, base64 HMAC-SHA256 of body + timestamp, checked
against box-sdk-gen, Box's official SDK, and the vectors of its tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from box_sdk_gen.internal.utils import compute_webhook_signature
from box_sdk_gen.managers.webhooks import WebhooksManager

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.box.signature import escaped
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import declared, inbound

ENTRY = CATALOG["box"]
WEBHOOKS = declared(ENTRY)

# box/box-python-sdk (Apache-2.0), test/box_sdk_gen/test/webhooks.py, testWebhookValidation.
PRIMARY, SECONDARY = "SamplePrimaryKey", "SampleSecondaryKey"
KEYS = {"primary_key": PRIMARY, "secondary_key": SECONDARY}
STAMP = "2020-01-01T00:00:00-07:00"
AT = datetime(2020, 1, 1, 7, 0, tzinfo=UTC)  # STAMP, in UTC
_SOURCE = '{"webhook":{"id":"1234567890"},"trigger":"FILE.UPLOADED","source":{"id":"1234567890","type":"file","name":"%s"}}'
BODY = '{"type":"webhook_event","webhook":{"id":"1234567890"},"trigger":"FILE.UPLOADED","source":{"id":"1234567890","type":"file","name":"Test.txt"}}'
VECTORS = {  # the body's file name → the primary signature the SDK's test expects
    "スクリーンショット 2020-08-05.txt": "LV2uCu+5NJtIHrCXDYgZ0v/PP5THGRuegw3RtdnEyuE=",
    "😀 2020-08-05.txt": "xF/SDZosX4le+v4A0Qn59sZhuD1RqY5KRUKzVMSbh0E=",
    "test \r": "SVkbKgy3dEEf2PbbzpNu2lDZS7zZ/aboU7HOZgBGrJk=",
    "\\/": "t41PWT5ZB6OcysnD6SDy9Ud+p9hdXxIdXqcdweyZv/Q=",
    "\\": "ERpMZwUQsGDTfj82ehdX6VvDZfvOhK5ULNfVmwVAGe0=",
}


def headers(
    primary: str | None = "6TfeAW3A1PASkgboxxA5yqHNKOwFyMWuEXny/FPD5hI=",
    secondary: str | None = "v+1CD1Jdo3muIcbpv5lxxgPglOqMfsNHPV899xWYydo=",
    stamp: str = STAMP,
    version: str = "1",
    algorithm: str = "HmacSHA256",
) -> dict[str, str]:
    out = {
        "box-delivery-id": "f96bb54b-ee16-4fc5-aa65-8c2d9e5b546f",
        "box-delivery-timestamp": stamp,
        "box-signature-algorithm": algorithm,
        "box-signature-version": version,
    }
    if primary is not None:
        out["box-signature-primary"] = primary
    if secondary is not None:
        out["box-signature-secondary"] = secondary
    return out


def request(body: str, given: dict[str, str]) -> InboundRequest:
    return inbound(body.encode(), {"content-type": "application/json", **given})


def test_the_sdk_tests_vectors_verify() -> None:
    WEBHOOKS.verify(request(BODY, headers()), KEYS, AT)
    WEBHOOKS.verify(request(BODY, headers(secondary=None)), KEYS, AT)
    WEBHOOKS.verify(request(BODY, headers(primary=None)), KEYS, AT)


@pytest.mark.parametrize(
    "name", list(VECTORS), ids=["japanese", "emoji", "cr", "slash", "backslash"]
)
def test_box_signs_its_escaped_body(name: str) -> None:
    body = _SOURCE % name
    WEBHOOKS.verify(request(body, headers(VECTORS[name], None)), {"primary_key": PRIMARY}, AT)


def test_the_escaping_is_box_sdks() -> None:
    from box_sdk_gen.internal.utils import escape_unicode

    for name in VECTORS:
        body = _SOURCE % name
        assert (escaped(body.encode()) or body.encode()) == escape_unicode(body).encode()


def test_what_box_signs_hookhub_verifies_and_what_hookhub_signs_box_verifies() -> None:
    now = datetime.now(UTC)
    stamp = now.isoformat(timespec="seconds")
    sdk_headers = headers(None, None, stamp)
    sdk_headers["box-signature-primary"] = str(
        compute_webhook_signature(BODY, sdk_headers, PRIMARY)
    )
    sdk_headers["box-signature-secondary"] = str(
        compute_webhook_signature(BODY, sdk_headers, SECONDARY, escape_body=True)
    )
    WEBHOOKS.verify(request(BODY, sdk_headers), KEYS, now)
    WEBHOOKS.verify(
        request(BODY, sdk_headers), {"primary_key": "IncorrectKey", "secondary_key": SECONDARY}, now
    )
    body, signed = ENTRY.signed_sample(KEYS, "https://h/x", now)
    lower = {k.lower(): v for k, v in signed.items()}
    assert WebhooksManager.validate_message(body.decode(), lower, PRIMARY, secondary_key=SECONDARY)
    assert WebhooksManager.validate_message(
        body.decode(), lower, "IncorrectKey", secondary_key=SECONDARY
    )
    assert not WebhooksManager.validate_message(
        body.decode(), lower, "IncorrectKey", secondary_key="IncorrectKey"
    )


@pytest.mark.parametrize(
    ("given", "keys"),
    [
        (headers(), {"primary_key": "IncorrectKey", "secondary_key": "IncorrectKey"}),
        (headers(secondary=None), {"primary_key": "IncorrectKey", "secondary_key": SECONDARY}),
        # each header is checked with its own key
        (headers(primary=None), {"primary_key": SECONDARY}),
        (headers(version="2"), KEYS),
        (headers(algorithm="HmacSHA1"), KEYS),
        (headers(primary=None, secondary=None), KEYS),
    ],
    ids=[
        "wrong-keys",
        "primary-wrong",
        "secondary-needs-its-key",
        "version-2",
        "sha1",
        "missing",
    ],
)
def test_what_box_would_not_send_is_refused(given: dict[str, str], keys: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(BODY, given), keys, AT)


def test_a_hex_signature_is_refused() -> None:
    digest = hmac.new(PRIMARY.encode(), (BODY + STAMP).encode(), hashlib.sha256).digest()
    assert base64.b64encode(digest).decode() == headers()["box-signature-primary"]
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(BODY, headers(digest.hex(), None)), KEYS, AT)


def test_ten_minutes_either_way() -> None:
    WEBHOOKS.verify(request(BODY, headers()), KEYS, AT + timedelta(minutes=10))
    WEBHOOKS.verify(request(BODY, headers()), KEYS, AT - timedelta(minutes=10))
    for off in (timedelta(seconds=601), -timedelta(seconds=601)):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(BODY, headers()), KEYS, AT + off)


def test_the_delivery_id_is_the_bodys_id_which_a_retry_keeps() -> None:
    assert ENTRY.sample is not None
    body = ENTRY.sample.body("box")
    first = WEBHOOKS.parse(inbound(body, ENTRY.sample.headers))
    retry = WEBHOOKS.parse(inbound(body, {"box-delivery-id": "another-per-retry-id"}))
    assert (first.event_type, first.delivery_id) == (
        "FILE.UPLOADED",
        "eb0c4e06-751f-442c-86f8-fd5bb404dbec",
    )
    assert retry.delivery_id == first.delivery_id == json.loads(body)["id"]


def test_no_handshake() -> None:
    assert WEBHOOKS.handshake(request(BODY, headers()), KEYS) is None
