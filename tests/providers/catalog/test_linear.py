"""Linear: `Linear-Signature`, hex HMAC-SHA256 of the raw body, and the body's
`webhookTimestamp` (milliseconds) within 60 s, as Linear's own SDK checks them.

Linear has no Python SDK and publishes no test vector. The signature is made here as
`@linear/sdk` makes the one it compares (linear/linear `packages/sdk/src/webhooks/
client.ts`, MIT): `crypto.createHmac("sha256", secret).update(rawBody).digest("hex")`, and
`Math.abs(Date.now() - webhookTimestamp) > 1000 * 60` is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["linear"]
WEBHOOKS = declared(ENTRY)
SECRET = "lin_wh_signing_secret"
SETTINGS = {"signing_secret": SECRET}
assert ENTRY.sample is not None
SAMPLE = json.loads(ENTRY.sample.body("linear"))
HEADERS = {"content-type": "application/json; charset=utf-8", **ENTRY.sample.headers}
NOW_MS = int(NOW.timestamp() * 1000)


def body_at(ms: int) -> bytes:
    return json.dumps({**SAMPLE, "webhookTimestamp": ms}).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def headers(signature: str | None) -> dict[str, str]:
    return {**HEADERS, **({"linear-signature": signature} if signature is not None else {})}


def test_a_body_signed_as_linears_sdk_signs_verifies() -> None:
    body = body_at(NOW_MS)
    WEBHOOKS.verify(inbound(body, headers(sign(body))), SETTINGS, NOW)


def test_the_sandbox_stamps_the_time_it_sends_and_signs_that() -> None:
    sent = signed_sample(ENTRY, SETTINGS)
    assert json.loads(sent.body)["webhookTimestamp"] == NOW_MS
    assert sent.header("linear-signature") == sign(sent.body)


def test_sixty_seconds_either_way_in_milliseconds() -> None:
    for offset in (-60_000, 60_000, -59_999):
        body = body_at(NOW_MS + offset)
        WEBHOOKS.verify(inbound(body, headers(sign(body))), SETTINGS, NOW)
    for offset in (-60_001, 60_001, -3_600_000):
        body = body_at(NOW_MS + offset)
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(inbound(body, headers(sign(body))), SETTINGS, NOW)
    # seconds where milliseconds belong are 54 years off
    body = body_at(NOW_MS // 1000)
    with pytest.raises(SignatureInvalid, match="stale"):
        WEBHOOKS.verify(inbound(body, headers(sign(body))), SETTINGS, NOW)


def test_a_body_without_its_timestamp_is_refused() -> None:
    body = json.dumps({k: v for k, v in SAMPLE.items() if k != "webhookTimestamp"}).encode()
    with pytest.raises(SignatureInvalid, match="webhookTimestamp"):
        WEBHOOKS.verify(inbound(body, headers(sign(body))), SETTINGS, NOW)


def test_a_wrong_missing_or_base64_signature_is_refused() -> None:
    body = body_at(NOW_MS)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    for wrong in (sign(body, "another"), base64.b64encode(digest).decode(), "sha256=" + sign(body)):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(body, headers(wrong)), SETTINGS, NOW)
    with pytest.raises(SignatureInvalid, match="linear-signature header is missing"):
        WEBHOOKS.verify(inbound(body, headers(None)), SETTINGS, NOW)
    # changing the timestamp changes the signed body
    moved = body_at(NOW_MS + 1)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(moved, headers(sign(body))), SETTINGS, NOW)


def test_event_is_type_and_action_and_the_id_linear_delivery() -> None:
    parsed = WEBHOOKS.parse(inbound(body_at(NOW_MS), HEADERS))
    assert (parsed.event_type, parsed.delivery_id) == ("Issue.create", HEADERS["linear-delivery"])
    removed = json.dumps({**SAMPLE, "type": "Comment", "action": "remove"}).encode()
    assert WEBHOOKS.parse(inbound(removed, HEADERS)).event_type == "Comment.remove"
    with pytest.raises(MalformedWebhook, match="`type`"):
        WEBHOOKS.parse(inbound(json.dumps({"action": "create"}).encode(), HEADERS))
