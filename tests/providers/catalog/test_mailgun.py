"""Mailgun: the body's `signature` object, checked against Mailgun's SDK.

Mailgun publishes no vector with a key (its docs' example is a placeholder: its signature
ends in `12345`) and its SDK has no signing function: signatures are made as its docs say
(hex HMAC-SHA256 of timestamp + token) and checked with `SecurityGuard.verify_webhook`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from mailgun.security import SecurityGuard

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["mailgun"]
WEBHOOKS = declared(ENTRY)
KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
TOKEN = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123"  # the docs' example token
STAMP = str(int(NOW.timestamp()))
assert ENTRY.sample is not None
SAMPLE: dict[str, Any] = json.loads(ENTRY.sample.body("mailgun"))


def hexdigest(timestamp: str = STAMP, token: str = TOKEN, key: str = KEY) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def request(signature: dict[str, Any] | None, event: str = "accepted") -> InboundRequest:
    body: dict[str, Any] = {"event-data": {**SAMPLE["event-data"], "event": event}}
    if signature is not None:
        body = {"signature": signature, **body}
    return inbound(json.dumps(body).encode(), {"content-type": "application/json"})


def signed(timestamp: str = STAMP, token: str = TOKEN, key: str = KEY) -> dict[str, Any]:
    return {"token": token, "timestamp": timestamp, "signature": hexdigest(timestamp, token, key)}


def settings(key: str = KEY) -> dict[str, str]:
    return {"signing_key": key}


def test_the_docs_signature_verifies_as_mailguns_sdk_checks_it() -> None:
    signature = signed()
    assert SecurityGuard.verify_webhook(
        KEY, TOKEN, STAMP, signature["signature"], max_age_seconds=0
    )
    WEBHOOKS.verify(request(signature), settings(), NOW)
    WEBHOOKS.verify(request({**signature, "timestamp": int(STAMP)}), settings(), NOW)


def test_what_the_sandbox_signs_mailguns_sdk_accepts() -> None:
    body, headers = ENTRY.signed_sample(settings(), "https://h/x", NOW)
    sent = json.loads(body)["signature"]
    assert len(sent["token"]) == 50
    assert SecurityGuard.verify_webhook(
        KEY, sent["token"], sent["timestamp"], sent["signature"], max_age_seconds=0
    )
    WEBHOOKS.verify(inbound(body, headers), settings(), NOW)
    assert json.loads(body)["event-data"] == SAMPLE["event-data"]


@pytest.mark.parametrize(
    "signature",
    [
        SAMPLE["signature"],  # the docs' placeholder
        signed(key="another-key"),
        {**signed(), "token": TOKEN[::-1]},
        {**signed(), "signature": base64.b64encode(bytes.fromhex(hexdigest())).decode()},
        {**signed(), "signature": hexdigest().upper()},  # the SDK compares exactly too
        {"token": TOKEN, "timestamp": STAMP},
        {"timestamp": STAMP, "signature": hexdigest()},
        None,
    ],
    ids=[
        "docs-placeholder",
        "another-key",
        "another-token",
        "base64",
        "upper-hex",
        "no-signature",
        "no-token",
        "no-object",
    ],
)
def test_what_mailgun_did_not_sign_is_refused(signature: dict[str, Any] | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature), settings(), NOW)


def test_a_body_that_is_not_json_is_refused_as_unsigned() -> None:
    form = inbound(
        b"timestamp=1&token=x&signature=y", {"content-type": "application/x-www-form-urlencoded"}
    )
    with pytest.raises(SignatureInvalid, match="not Mailgun's JSON"):
        WEBHOOKS.verify(form, settings(), NOW)


def test_a_subaccounts_parent_signature_matches_the_parents_key() -> None:
    parent = "key-parent-account"
    both = {**signed(key="key-subaccount"), "parent-signature": hexdigest(key=parent)}
    WEBHOOKS.verify(request(both), settings(parent), NOW)
    WEBHOOKS.verify(request(both), settings("key-subaccount"), NOW)
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(both), settings("key-third"), NOW)


def test_fifteen_minutes_either_way() -> None:
    """Mailgun's SDK's default `max_age_seconds=900`, either way (`abs`)."""
    for offset in (-899, 899):
        WEBHOOKS.verify(request(signed()), settings(), NOW + timedelta(seconds=offset))
    for offset in (-901, 901):
        with pytest.raises(SignatureInvalid, match="stale"):
            WEBHOOKS.verify(request(signed()), settings(), NOW + timedelta(seconds=offset))


def test_the_token_is_the_delivery_id_whatever_the_event() -> None:
    """The event is not signed: a captured token replayed with another event is the same
    delivery, a duplicate."""
    first = WEBHOOKS.parse(request(signed()))
    replayed = WEBHOOKS.parse(request(signed(), event="failed"))
    assert (first.event_type, first.delivery_id) == ("accepted", TOKEN)
    assert (replayed.event_type, replayed.delivery_id) == ("failed", TOKEN)
    assert first.account_id == "1234567890303a4bd1f33898"
    assert WEBHOOKS.handshake(request(signed()), settings()) is None
