"""Typeform: `Typeform-Signature: sha256=<base64>` as Typeform's "Secure your webhooks" says."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["typeform"]
WEBHOOKS = declared(ENTRY)
SECRET = "e1b1e7f3a6c0d3b6c3a1b2c3d4e5f60718293a4b"  # what `SecureRandom.hex(20)` makes
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("typeform")


def digest(body: bytes = BODY, secret: str = SECRET) -> bytes:
    """The docs' Ruby sample: `OpenSSL::HMAC.digest('sha256', secret, payload_body)`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def request(signature: str | None, body: bytes = BODY) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["typeform-signature"] = signature
    return inbound(body, headers)


def test_the_docs_recipe_verifies() -> None:
    # 'sha256=' + Base64.strict_encode64(hash)
    WEBHOOKS.verify(
        request("sha256=" + base64.b64encode(digest()).decode()), {"secret": SECRET}, NOW
    )
    # and what hookhub signs is that recipe
    _, headers = ENTRY.signed_sample({"secret": SECRET}, "https://h/x", NOW)
    assert headers["typeform-signature"] == "sha256=" + base64.b64encode(digest()).decode()


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=" + digest().hex(),  # hex is not Typeform's encoding
        base64.b64encode(digest()).decode(),  # the prefix is part of the value
        "sha1=" + base64.b64encode(digest()).decode(),
        "sha256=" + base64.b64encode(digest(secret="another secret")).decode(),
        "sha256=" + base64.b64encode(digest(body=BODY + b"\n")).decode(),
        None,
    ],
    ids=["hex", "no-prefix", "sha1-prefix", "other-secret", "other-body", "missing"],
)
def test_what_typeform_would_not_send_is_refused(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature), {"secret": SECRET}, NOW)


def test_event_type_and_delivery_id_are_the_bodys() -> None:
    parsed = WEBHOOKS.parse(request(None))
    assert (parsed.event_type, parsed.delivery_id) == ("form_response", "LtWXD3crgy")


def test_no_handshake() -> None:
    assert WEBHOOKS.handshake(request(None), {"secret": SECRET}) is None
    assert WEBHOOKS.handshake_methods == ()
