"""Intercom: `X-Hub-Signature: sha1=` and the HEAD that checks the URL.

Intercom publishes no vector with its secret and its Python SDK has no webhook helper, so
the signature is made as Intercom's "Signed Notifications" reference describes it: an
HMAC-SHA1 (RFC 2104) of the JSON notification keyed by the secret, 40 hex digits after
`sha1=` (e.g. its example `sha1=21ff2e149e0fdcac6f947740f6177f6434bda921`)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["intercom"]
WEBHOOKS = declared(ENTRY)
SECRET = "f2f6c8a1-intercom-client-secret"
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("intercom")


def request(signature: str | None, body: bytes = BODY, method: str = "POST") -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-hub-signature"] = signature
    return inbound(body, headers, method=method)


def settings(secret: str = SECRET) -> dict[str, str]:
    return {"client_secret": secret}


def digest(algorithm: str = "sha1", body: bytes = BODY, secret: str = SECRET) -> bytes:
    return hmac.new(secret.encode(), body, algorithm).digest()


def test_the_documented_signature_verifies() -> None:
    signature = "sha1=" + digest().hex()
    assert len(signature) == len("sha1=21ff2e149e0fdcac6f947740f6177f6434bda921")
    WEBHOOKS.verify(request(signature), settings(), NOW)
    # and what hookhub signs is that
    _, headers = ENTRY.signed_sample(settings(), "https://h/x", NOW)
    assert headers["X-Hub-Signature"] == signature


@pytest.mark.parametrize(
    "signature",
    [
        "sha1=" + digest(secret="another").hex(),
        "sha256=" + hashlib.sha256(BODY).hexdigest(),
        "sha1=" + base64.b64encode(digest()).decode(),
        digest().hex(),  # no prefix
        "sha1=",
        None,
    ],
    ids=["another-secret", "sha256", "base64", "no-prefix", "empty", "missing"],
)
def test_what_is_not_intercoms_signature_is_refused(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature), settings(), NOW)


def test_the_raw_body_is_signed() -> None:
    """Intercom's notification is pretty-printed; the bytes as sent are what is signed."""
    signature = "sha1=" + digest().hex()
    compact = b"".join(BODY.split())
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature, compact), settings(), NOW)


def test_topic_and_notification_id() -> None:
    parsed = WEBHOOKS.parse(request("sha1=" + digest().hex()))
    assert (parsed.event_type, parsed.delivery_id, parsed.account_id) == (
        "user.created",
        "notif_78c122d0-23ba-11e4-9464-79b01267cc2e",
        "a86dr8yl",
    )


def test_the_head_that_checks_the_url_is_answered() -> None:
    head = request(None, b"", method="HEAD")
    reply = WEBHOOKS.handshake(head, settings())
    assert reply is not None and (reply.status, reply.body) == (200, None)
    assert "HEAD" in WEBHOOKS.handshake_methods
    assert WEBHOOKS.handshake(head, None) is None  # the app-level URL answers none
    assert WEBHOOKS.handshake(request("sha1=" + digest().hex()), settings()) is None
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(settings(), "https://h/x", NOW)
    assert (probe.method, probe.status) == ("HEAD", 200)
