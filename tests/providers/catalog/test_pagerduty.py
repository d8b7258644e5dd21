"""PagerDuty: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]`, HMAC-SHA256 of the raw body
keyed by the signing secret as text, checked against PagerDuty's own published vector.

The vector is PagerDuty's Go client's, PagerDuty/go-pagerduty `webhookv3/webhookv3_test.go`
(commit 3df5eb4e, Apache-2.0): its `secret`, its `defaultBody` (the sample file, byte for
byte) and its "valid" and "mismatch" signatures. PagerDuty's Python client has no webhook
helper."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["pagerduty"]
WEBHOOKS = declared(ENTRY)
# go-pagerduty webhookv3/webhookv3_test.go: `secret`, and the "valid" / "mismatch" cases.
SECRET = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
VALID = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
MISMATCH = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5"
SETTINGS = {"signing_secret": SECRET}
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("pagerduty")  # the vector's `defaultBody`
HEADERS = {"content-type": "application/json", **ENTRY.sample.headers}


def with_signature(value: str | None) -> dict[str, str]:
    return {**HEADERS, **({"x-pagerduty-signature": value} if value is not None else {})}


def test_pagerdutys_published_vector_verifies() -> None:
    WEBHOOKS.verify(inbound(BODY, with_signature(VALID)), SETTINGS, NOW)
    assert signed_sample(ENTRY, SETTINGS).header("x-pagerduty-signature") == VALID


def test_pagerdutys_mismatch_and_a_missing_header_are_refused() -> None:
    with pytest.raises(SignatureInvalid, match="does not match"):
        WEBHOOKS.verify(inbound(BODY, with_signature(MISMATCH)), SETTINGS, NOW)
    with pytest.raises(SignatureInvalid, match="x-pagerduty-signature header is missing"):
        WEBHOOKS.verify(inbound(BODY, with_signature(None)), SETTINGS, NOW)


def test_while_a_secret_rotates_any_v1_matching_is_enough() -> None:
    """ "Multiple signatures may be present to allow for a zero-downtime secret rotation";
    entries of other versions are skipped, as PagerDuty's Go client skips them."""
    for header in (f"{MISMATCH},{VALID}", f"{VALID},{MISMATCH}", f"v2=abc,{VALID}"):
        WEBHOOKS.verify(inbound(BODY, with_signature(header)), SETTINGS, NOW)
    for header in (f"{MISMATCH},{MISMATCH}", "v0=" + VALID.removeprefix("v1=")):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(BODY, with_signature(header)), SETTINGS, NOW)


def test_the_secret_is_text_not_base64_and_the_signature_hex() -> None:
    """The secret looks like base64; the Go client keys with its characters: decoding it
    would be another key. A base64 signature is not PagerDuty's Base16."""
    decoded = hmac.new(base64.b64decode(SECRET), BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, with_signature("v1=" + decoded)), SETTINGS, NOW)
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).digest()
    as_base64 = "v1=" + base64.b64encode(digest).decode()
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, with_signature(as_base64)), SETTINGS, NOW)


def test_event_type_and_the_webhook_id_else_the_event_id() -> None:
    parsed = WEBHOOKS.parse(inbound(BODY, HEADERS))
    assert (parsed.event_type, parsed.delivery_id) == (
        "incident.priority_updated",
        HEADERS["x-webhook-id"],
    )
    assert json.loads(BODY)["event"]["id"] == "01BWDWL3NYY7LUFPZCC28QUCMK"
    no_header = WEBHOOKS.parse(inbound(BODY, {"content-type": "application/json"}))
    assert no_header.delivery_id == "01BWDWL3NYY7LUFPZCC28QUCMK"
