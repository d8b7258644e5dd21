"""Meta: `X-Hub-Signature-256: sha256=<hex>` over the raw body, the escaped-unicode form
Meta once documented, and the `hub.challenge` verification request.

Meta publishes no vector and no Python helper: the signatures here are made as its
"Validating Payloads" section says (HMAC-SHA256 of the payload with the App Secret, hex,
after `sha256=`): https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["meta"]
WEBHOOKS = declared(ENTRY)
SECRET = "meta-app-secret"
SETTINGS = {"app_secret": SECRET, "verify_token": "meatyhamhock"}  # the docs' verify token


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_documented_sample_signed_as_meta_says_verifies_and_is_named() -> None:
    assert ENTRY.sample is not None
    body = ENTRY.sample.body("meta")
    request = inbound(body, {"x-hub-signature-256": signature(body)})
    WEBHOOKS.verify(request, SETTINGS, NOW)
    parsed = WEBHOOKS.parse(request)
    assert parsed.event_type == "user.photos"
    # no delivery id from Meta: the body's digest
    assert parsed.delivery_id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_refused_another_secret_none_base64_and_a_sha1_header() -> None:
    body = ENTRY.sample.body("meta") if ENTRY.sample else b""
    for header in (signature(body, "other"), None, "sha256=", signature(body)[7:]):
        request = inbound(body, {"x-hub-signature-256": header} if header is not None else {})
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(request, SETTINGS, NOW)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    b64 = inbound(body, {"x-hub-signature-256": "sha256=" + base64.b64encode(digest).decode()})
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(b64, SETTINGS, NOW)
    # the legacy SHA-1 header alone is not enough
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureInvalid, match="x-hub-signature-256 header is missing"):
        WEBHOOKS.verify(inbound(body, {"x-hub-signature": sha1}), SETTINGS, NOW)


def test_a_body_signed_in_its_escaped_unicode_form_verifies() -> None:
    """The docs' example: `äöå` is signed as `\\u00e4\\u00f6\\u00e5` (lower-case hex); an
    astral character as its surrogate pair. The raw body as sent keeps the characters."""
    raw = '{"object":"page","entry":[{"changes":[{"field":"feed","value":{"m":"äöå 😀"}}]}]}'
    escaped = raw.replace("äöå", "\\u00e4\\u00f6\\u00e5").replace("😀", "\\ud83d\\ude00")
    assert json.loads(escaped) == json.loads(raw)
    WEBHOOKS.verify(inbound(raw.encode(), {"x-hub-signature-256": signature(escaped.encode())}),
                    SETTINGS, NOW)  # fmt: skip
    WEBHOOKS.verify(inbound(raw.encode(), {"x-hub-signature-256": signature(raw.encode())}),
                    SETTINGS, NOW)  # fmt: skip
    upper = raw.replace("äöå", "\\u00E4\\u00F6\\u00E5").replace("😀", "\\uD83D\\uDE00")
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(
            inbound(raw.encode(), {"x-hub-signature-256": signature(upper.encode())}),
            SETTINGS,
            NOW,
        )


@pytest.mark.parametrize(
    ("body", "event"),
    [
        ({"object": "page", "entry": [{"changes": [{"field": "feed"}]}]}, "page.feed"),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "messages"}]}],
            },
            "whatsapp_business_account.messages",
        ),
        (
            {"object": "instagram", "entry": [{"messaging": [{"message": {}}]}]},
            "instagram.messaging",
        ),
    ],
)
def test_event_names(body: dict[str, object], event: str) -> None:
    raw = json.dumps(body).encode()
    assert WEBHOOKS.parse(inbound(raw, {})).event_type == event


def test_the_verification_request_is_answered_with_the_challenge() -> None:
    """The docs' request: GET ?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock."""
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": "meatyhamhock",
    }
    request = inbound(b"", {}, method="GET", query=query)
    reply = WEBHOOKS.handshake(request, SETTINGS)
    assert reply is not None
    assert (reply.status, reply.body, reply.media_type) == (200, "1158201444", "text/plain")
    assert "GET" in WEBHOOKS.handshake_methods
    wrong = inbound(b"", {}, method="GET", query={**query, "hub.verify_token": "other"})
    refused = WEBHOOKS.handshake(wrong, SETTINGS)
    assert refused is not None and refused.status == 403
    html = inbound(b"", {}, method="GET", query={**query, "hub.challenge": "<b>x</b>"})
    assert (reply := WEBHOOKS.handshake(html, SETTINGS)) is not None and reply.status == 400
    assert WEBHOOKS.handshake(request, None) is None  # the app-level URL answers nothing
    # a POST is no handshake
    assert WEBHOOKS.handshake(signed_sample(ENTRY, SETTINGS), SETTINGS) is None


def test_the_probe_is_what_the_handshake_answers() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(SETTINGS, "https://h/x", NOW)
    reply = WEBHOOKS.handshake(inbound(b"", {}, method=probe.method, query=probe.query), SETTINGS)
    assert reply is not None and reply.status == probe.status
    assert str(reply.body).encode() == probe.answer
