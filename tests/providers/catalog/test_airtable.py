"""Airtable: `X-Airtable-Content-MAC: hmac-sha256=<hex>` keyed by the base64-decoded MAC
secret, checked against the vector of pyairtable's tests (community SDK, MIT; Airtable
publishes no Python SDK): github.com/gtalarico/pyairtable `tests/test_models_webhook.py`,
`test_notification_from_request`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["airtable"]
WEBHOOKS = declared(ENTRY)
SECRET = "c2VjcmV0LWtleQ=="  # base64 of b"secret-key"
# `json.dumps(notification_json)` of the test: Python's default separators, exactly.
BODY = json.dumps(
    {
        "base": {"id": "app00000000000000"},
        "webhook": {"id": "ach00000000000000"},
        "timestamp": "2022-02-01T21:25:05.663Z",
    }
).encode()
HEADER = "hmac-sha256=e26da696a90933647bddc83995c3e1e3bb1c3d8ce1ff61cb7469767d50b2b2d4"
SETTINGS = {"mac_secret_base64": SECRET}


def test_pyairtables_vector_verifies() -> None:
    WEBHOOKS.verify(inbound(BODY, {"x-airtable-content-mac": HEADER}), SETTINGS, NOW)


def test_the_key_is_the_decoded_secret_and_other_forms_are_refused() -> None:
    as_text = hmac.new(SECRET.encode(), BODY, hashlib.sha256)
    digest = hmac.new(base64.b64decode(SECRET), BODY, hashlib.sha256).digest()
    for headers in (
        {"x-airtable-content-mac": "hmac-sha256=" + as_text.hexdigest()},  # the text as key
        {"x-airtable-content-mac": HEADER.replace("e26d", "e26e")},
        {"x-airtable-content-mac": HEADER.removeprefix("hmac-sha256=")},
        {"x-airtable-content-mac": "sha256=" + digest.hex()},
        {"x-airtable-content-mac": "hmac-sha256=" + base64.b64encode(digest).decode()},
        {},
    ):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(BODY, headers), SETTINGS, NOW)
    with pytest.raises(SignatureInvalid):  # another webhook's secret
        other = {"mac_secret_base64": base64.b64encode(b"other-key").decode()}
        WEBHOOKS.verify(inbound(BODY, {"x-airtable-content-mac": HEADER}), other, NOW)


def test_a_ping_is_named_ping_deduplicated_by_its_digest_and_answered_empty() -> None:
    parsed = WEBHOOKS.parse(inbound(BODY, {"x-airtable-content-mac": HEADER}))
    assert parsed.event_type == "ping"
    assert parsed.delivery_id == "sha256:" + hashlib.sha256(BODY).hexdigest()
    # "respond with an HTTP 200 or 204 status code and an empty response body"
    assert parsed.reply.status in (200, 204) and parsed.reply.body is None


def test_no_handshake() -> None:
    assert WEBHOOKS.handshake(inbound(BODY, {}), SETTINGS) is None
    assert WEBHOOKS.handshake(inbound(BODY, {}), None) is None
    assert ENTRY.handshake_probe is None
