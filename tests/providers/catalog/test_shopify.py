"""Shopify: `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the raw body, as shopify.dev says.

Shopify publishes no test vector and its Python package (ShopifyAPI) has no webhook helper,
so the signature is made here exactly as https://shopify.dev/docs/apps/build/webhooks/
verify-deliveries describes: "compute HMAC-SHA256 of the raw request body using your app's
client secret as the key, then compare it to the decoded header value"."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["shopify"]
WEBHOOKS = declared(ENTRY)
SECRET = "hush-client-secret"
SETTINGS = {"client_secret": SECRET}
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("shopify")
HEADERS = {"content-type": "application/json", **ENTRY.sample.headers}


def digest(body: bytes = BODY, secret: str = SECRET) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def signed(signature: str | None) -> dict[str, str]:
    headers = dict(HEADERS)
    if signature is not None:
        headers["x-shopify-hmac-sha256"] = signature
    return headers


def test_the_documented_signature_verifies() -> None:
    WEBHOOKS.verify(inbound(BODY, signed(base64.b64encode(digest()).decode())), SETTINGS, NOW)
    # and what the sandbox signs is that same base64 digest
    request = signed_sample(ENTRY, SETTINGS)
    assert request.header("x-shopify-hmac-sha256") == base64.b64encode(digest()).decode()


@pytest.mark.parametrize(
    "signature",
    [
        base64.b64encode(digest(secret="another")).decode(),
        digest().hex(),  # hex is not what Shopify sends
        "sha256=" + base64.b64encode(digest()).decode(),  # nor with a prefix
        "",
    ],
    ids=["other-secret", "hex", "prefixed", "empty"],
)
def test_a_wrong_signature_is_refused(signature: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, signed(signature)), SETTINGS, NOW)


def test_a_missing_signature_or_secret_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="x-shopify-hmac-sha256 header is missing"):
        WEBHOOKS.verify(inbound(BODY, signed(None)), SETTINGS, NOW)
    good = signed(base64.b64encode(digest()).decode())
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, good), {}, NOW)


def test_the_key_is_the_secret_as_text_not_decoded() -> None:
    """A secret that happens to be valid base64 is still used as its characters."""
    secret = "c2VjcmV0LWtleQ=="
    header = base64.b64encode(digest(secret=secret)).decode()
    WEBHOOKS.verify(inbound(BODY, signed(header)), {"client_secret": secret}, NOW)


def test_topic_webhook_id_and_shop_come_from_the_headers() -> None:
    parsed = WEBHOOKS.parse(inbound(BODY, HEADERS))
    assert parsed.event_type == "products/update"
    assert parsed.delivery_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"  # not X-Shopify-Event-Id
    assert parsed.account_id == "my-store.myshopify.com"
    without_topic = {k: v for k, v in HEADERS.items() if k != "x-shopify-topic"}
    with pytest.raises(MalformedWebhook, match="header x-shopify-topic"):
        WEBHOOKS.parse(inbound(BODY, without_topic))


def test_while_the_secret_rotates_the_previous_one_is_accepted_too() -> None:
    """Shopify signs with a rotated secret only up to an hour later: the old one set as
    previous_client_secret still verifies, and nothing else does."""
    rotating = {"client_secret": "the-new-secret", "previous_client_secret": SECRET}
    old_signed = signed(base64.b64encode(digest()).decode())
    WEBHOOKS.verify(inbound(BODY, old_signed), rotating, NOW)
    new_signed = signed(base64.b64encode(digest(secret="the-new-secret")).decode())
    WEBHOOKS.verify(inbound(BODY, new_signed), rotating, NOW)
    other = signed(base64.b64encode(digest(secret="neither")).decode())
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, other), rotating, NOW)
    with pytest.raises(SignatureInvalid):  # once cleared, the old secret is refused
        WEBHOOKS.verify(inbound(BODY, old_signed), {"client_secret": "the-new-secret"}, NOW)
    with pytest.raises(SignatureInvalid):  # the previous secret alone is no configuration
        WEBHOOKS.verify(inbound(BODY, old_signed), {"previous_client_secret": SECRET}, NOW)
