"""Notion: `X-Notion-Signature: sha256=<hex>` keyed by the subscription's verification
token, checked against the sample signature of Notion's docs, and the verification POST
that hands the token over."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["notion"]
WEBHOOKS = declared(ENTRY)
# https://developers.notion.com/reference/webhooks, "Step 3: Validating event payloads":
# the token, the body (minified, as the docs' code makes it) and "Sample X-Notion-Signature
# from Notion".
TOKEN = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"
BODY = b'{"verification_token":"secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl"}'
SIGNATURE = "sha256=461e8cbcba8a75c3edd866f0e71280f5a85cbf21eff040ebd10fe266df38a735"
SETTINGS = {"verification_token": TOKEN}


def test_notions_published_signature_verifies() -> None:
    WEBHOOKS.verify(inbound(BODY, {"x-notion-signature": SIGNATURE}), SETTINGS, NOW)


def test_wrong_missing_and_base64_signatures_are_refused() -> None:
    digest = hmac.new(TOKEN.encode(), BODY, hashlib.sha256).digest()
    for headers in (
        {"x-notion-signature": SIGNATURE.replace("461e", "461f")},
        {},
        {"x-notion-signature": SIGNATURE.removeprefix("sha256=")},
        {"x-notion-signature": "sha256=" + base64.b64encode(digest).decode()},
    ):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(BODY, headers), SETTINGS, NOW)
    with pytest.raises(SignatureInvalid, match="verification_token"):  # none kept yet
        WEBHOOKS.verify(inbound(BODY, {"x-notion-signature": SIGNATURE}), {}, NOW)
    # the same bytes re-serialised with spaces are other bytes: the raw body is what counts
    spaced = json.dumps(json.loads(BODY)).encode()
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(spaced, {"x-notion-signature": SIGNATURE}), SETTINGS, NOW)


def test_event_type_and_delivery_id_are_the_events() -> None:
    assert ENTRY.sample is not None
    parsed = WEBHOOKS.parse(inbound(ENTRY.sample.body("notion"), {}))
    assert (parsed.event_type, parsed.delivery_id) == (
        "page.created",
        "367cba44-b6f3-4c92-81e7-6a2e9659efd4",
    )


def test_the_verification_post_hands_the_token_over() -> None:
    """The docs' verification body: kept as the setting, answered 200 (the gateway keeps
    it once and refuses a second: 409)."""
    pretty = b'{\n  "verification_token": "' + TOKEN.encode() + b'"\n}'
    for body in (BODY, pretty):
        reply = WEBHOOKS.handshake(inbound(body, {"content-type": "application/json"}), {})
        assert reply is not None
        assert reply.status == 200 and dict(reply.store) == {"verification_token": TOKEN}
    assert WEBHOOKS.handshake(inbound(BODY, {}), None) is None  # the app-level URL
    assert ENTRY.sample is not None
    event = inbound(ENTRY.sample.body("notion"), {})
    assert WEBHOOKS.handshake(event, SETTINGS) is None  # an event is no handshake
    for other in (
        b'{"verification_token": "' + TOKEN.encode() + b'", "type": "page.created"}',
        b'{"verification_token": 12}',
        b'{"verification_token": ""}',
        b'["verification_token"]',
    ):
        assert WEBHOOKS.handshake(inbound(other, {}), {}) is None


def test_the_probe_hands_the_settings_token_over() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(SETTINGS, "https://h/x", NOW)
    assert probe.stores == ("verification_token",) and probe.status == 200
    reply = WEBHOOKS.handshake(inbound(probe.body, dict(probe.headers)), {})
    assert reply is not None and dict(reply.store) == SETTINGS
    fresh = ENTRY.handshake_probe({}, "https://h/x", NOW)
    assert json.loads(fresh.body)["verification_token"].startswith("secret_")
