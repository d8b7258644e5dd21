"""Calendly: `Calendly-Webhook-Signature: t=,v1=` as Calendly's docs say, three minutes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["calendly"]
WEBHOOKS = declared(ENTRY)
KEY = "7d3f0a1c5b9e4d2a8f6c0b1e3d5a7c9e"
SETTINGS = {"signing_key": KEY}
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("calendly")
STAMP = int(NOW.timestamp())


def signature(stamp: int = STAMP, body: bytes = BODY, key: str = KEY) -> str:
    """The docs' recipe: HMAC-SHA256(key, "<t>." + raw_body), hex."""
    return hmac.new(key.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def request(header: str | None, body: bytes = BODY) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["calendly-webhook-signature"] = header
    return inbound(body, headers)


def test_the_docs_recipe_verifies_and_is_what_hookhub_signs() -> None:
    WEBHOOKS.verify(request(f"t={STAMP},v1={signature()}"), SETTINGS, NOW)
    _, headers = ENTRY.signed_sample(SETTINGS, "https://h/x", NOW)
    assert headers["calendly-webhook-signature"] == f"t={STAMP},v1={signature()}"


def test_three_minutes_either_way() -> None:
    for offset in (-180, 180):
        header = f"t={STAMP + offset},v1={signature(STAMP + offset)}"
        WEBHOOKS.verify(request(header), SETTINGS, NOW)
    for offset in (-181, 181):
        header = f"t={STAMP + offset},v1={signature(STAMP + offset)}"
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(header), SETTINGS, NOW)


@pytest.mark.parametrize(
    "header",
    [
        f"t={STAMP},v1={signature(key='another key')}",
        f"t={STAMP},v1={signature(body=BODY + b' ')}",
        f"t={STAMP + 1},v1={signature()}",  # the signature is of another t
        f"t={STAMP},v1=" + base64.b64encode(bytes.fromhex(signature())).decode(),
        f"v1={signature()}",
        None,
    ],
    ids=["other-key", "other-body", "other-t", "base64", "no-t", "missing"],
)
def test_what_calendly_would_not_send_is_refused(header: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(header), SETTINGS, NOW)


def test_the_event_is_named_by_event_and_a_retry_has_the_same_id() -> None:
    parsed = WEBHOOKS.parse(request(None))
    assert parsed.event_type == "invitee.created"
    # No delivery id is sent: a retry repeats the body (its t changes, in the header).
    assert parsed.delivery_id == "sha256:" + hashlib.sha256(BODY).hexdigest()
    other = json.loads(BODY)
    other["payload"]["uri"] += "B"
    assert WEBHOOKS.parse(request(None, json.dumps(other).encode())).delivery_id != (
        parsed.delivery_id
    )


def test_no_handshake() -> None:
    assert WEBHOOKS.handshake(request(None), SETTINGS) is None
