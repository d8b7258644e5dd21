"""Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>`, HMAC-SHA256 of the raw body keyed by the
webhook's secret.

Atlassian publishes no test vector (the docs' `sha256=c3383246…2222` is a placeholder) and
no Python SDK that verifies webhooks; the signature is made here as the docs describe:
"perform the HMAC algorithm on the received body with the secret as the key"."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["bitbucket"]
WEBHOOKS = declared(ENTRY)
SECRET = "generated-webhook-secret"
SETTINGS = {"secret": SECRET}
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("bitbucket")
HEADERS = {"content-type": "application/json", **ENTRY.sample.headers}


def digest(secret: str = SECRET) -> bytes:
    return hmac.new(secret.encode(), BODY, hashlib.sha256).digest()


def with_signature(value: str | None) -> dict[str, str]:
    return {**HEADERS, **({"x-hub-signature": value} if value is not None else {})}


def test_the_documented_signature_verifies() -> None:
    header = "sha256=" + digest().hex()
    WEBHOOKS.verify(inbound(BODY, with_signature(header)), SETTINGS, NOW)
    assert signed_sample(ENTRY, SETTINGS).header("x-hub-signature") == header


@pytest.mark.parametrize(
    "value",
    [
        "sha256=" + digest("another").hex(),
        "sha256=" + base64.b64encode(digest()).decode(),  # base64 is not Bitbucket's
        digest().hex(),  # the prefix is part of the format
        "sha1=" + digest().hex(),
        "sha256=",
    ],
    ids=["other-secret", "base64", "no-prefix", "sha1-prefix", "empty"],
)
def test_a_wrong_signature_is_refused(value: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, with_signature(value)), SETTINGS, NOW)


def test_an_unsigned_request_is_refused() -> None:
    """A webhook saved without a secret sends no X-Hub-Signature: hookhub takes none."""
    with pytest.raises(SignatureInvalid, match="x-hub-signature header is missing"):
        WEBHOOKS.verify(inbound(BODY, with_signature(None)), SETTINGS, NOW)


def test_event_key_and_request_uuid_come_from_the_headers() -> None:
    parsed = WEBHOOKS.parse(inbound(BODY, HEADERS))
    assert (parsed.event_type, parsed.delivery_id) == ("repo:push", HEADERS["x-request-uuid"])
    with pytest.raises(MalformedWebhook, match="header x-event-key"):
        WEBHOOKS.parse(inbound(BODY, {"content-type": "application/json"}))
