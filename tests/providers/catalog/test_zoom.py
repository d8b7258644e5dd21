"""Zoom: `x-zm-signature: v0=` and the `endpoint.url_validation` challenge.

Zoom publishes no vector and has no Python SDK; signatures are made as its official sample
(zoom/webhook-sample, index.js) makes them:
`v0=` + hex HMAC-SHA256(secret, `v0:{x-zm-request-timestamp}:{body}`), and the challenge's
`encryptedToken` as hex HMAC-SHA256(secret, plainToken)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import orjson
import pytest

from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["zoom"]
WEBHOOKS = declared(ENTRY)
SECRET = "zoom_secret_token_0123"
STAMP = int(NOW.timestamp())
assert ENTRY.sample is not None
# Zoom sends compact JSON (`JSON.stringify` in its sample).
BODY = json.dumps(json.loads(ENTRY.sample.body("zoom")), separators=(",", ":")).encode()


def sign(body: bytes, stamp: int = STAMP, secret: str = SECRET) -> str:
    message = f"v0:{stamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def request(body: bytes = BODY, signature: str | None = None, stamp: int = STAMP) -> InboundRequest:
    headers = {"content-type": "application/json", "x-zm-request-timestamp": str(stamp)}
    headers["x-zm-signature"] = sign(body, stamp) if signature is None else signature
    return inbound(body, headers)


def settings(secret: str = SECRET) -> dict[str, str]:
    return {"secret_token": secret}


def test_the_samples_signature_verifies() -> None:
    WEBHOOKS.verify(request(), settings(), NOW)
    _, headers = ENTRY.signed_sample(settings(), "https://h/x", NOW)
    assert headers["x-zm-request-timestamp"] == str(STAMP)
    assert headers["x-zm-signature"] == sign(ENTRY.sample.body("zoom"))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "signature",
    [
        sign(BODY, secret="another"),
        "v0=" + base64.b64encode(bytes.fromhex(sign(BODY)[3:])).decode(),
        sign(BODY)[3:],  # no v0=
        "v1=" + sign(BODY)[3:],
        sign(BODY, STAMP + 1),  # the timestamp is signed
    ],
    ids=["another-secret", "base64", "no-prefix", "v1", "another-timestamp"],
)
def test_what_zoom_did_not_sign_is_refused(signature: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature=signature), settings(), NOW)


def test_missing_headers_are_refused() -> None:
    for header in ("x-zm-signature", "x-zm-request-timestamp"):
        good = request()
        headers = {k: v for k, v in good.headers.items() if k != header}
        with pytest.raises(SignatureInvalid, match=header):
            WEBHOOKS.verify(inbound(BODY, headers), settings(), NOW)


def test_five_minutes_either_way() -> None:
    for offset in (-299, 299):
        WEBHOOKS.verify(request(stamp=STAMP + offset), settings(), NOW)
    for offset in (-301, 301):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(stamp=STAMP + offset), settings(), NOW)


def test_event_and_delivery_id() -> None:
    parsed = WEBHOOKS.parse(request())
    assert parsed.event_type == "meeting.started"
    assert parsed.delivery_id == "1635885799302:sha256:" + hashlib.sha256(BODY).hexdigest()
    assert parsed.account_id == "{ACCOUNT_ID}"
    assert WEBHOOKS.handshake(request(), settings()) is None  # an event is no challenge


VALIDATION = b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}'


def test_the_url_validation_is_answered_once_its_signature_checks() -> None:
    reply = WEBHOOKS.handshake(request(VALIDATION), settings())
    assert reply is not None and reply.status == 200
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert reply.body == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    with pytest.raises(SignatureInvalid):  # forged: no answer made with the secret
        WEBHOOKS.handshake(request(VALIDATION, sign(VALIDATION, secret="x")), settings())
    with pytest.raises(SignatureInvalid, match="stale"):
        WEBHOOKS.handshake(request(VALIDATION, stamp=STAMP - 3600), settings())
    assert WEBHOOKS.handshake(request(VALIDATION), None) is None


def test_a_validation_without_a_plain_token_is_malformed() -> None:
    body = b'{"payload":{},"event":"endpoint.url_validation"}'
    with pytest.raises(MalformedWebhook, match="plainToken"):
        WEBHOOKS.handshake(request(body), settings())


def test_the_app_level_url_neither_answers_nor_publishes_a_validation() -> None:
    with pytest.raises(MalformedWebhook, match="integration's URL"):
        WEBHOOKS.parse(request(VALIDATION))


def test_the_probe_is_what_the_handshake_answers() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(settings(), "https://h/x", NOW)
    sent = inbound(probe.body, probe.headers, method=probe.method)
    WEBHOOKS.verify(sent, settings(), NOW)
    reply = WEBHOOKS.handshake(sent, settings())
    assert reply is not None and reply.status == probe.status
    assert orjson.dumps(reply.body) == probe.answer
