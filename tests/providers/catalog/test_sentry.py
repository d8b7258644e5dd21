"""Sentry: `Sentry-Hook-Signature`, hex HMAC-SHA256 of the body keyed by the integration's
Client Secret, as https://docs.sentry.io/integrations/integration-platform/webhooks/ says.

Sentry publishes no test vector and sentry-sdk has no webhook helper; the signature is
made here as the docs' Python example makes it (`hmac.new(key=client_secret.encode(
"utf-8"), msg=body, digestmod=hashlib.sha256).hexdigest()`), over the raw bytes sent, as
Sentry's server signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound, signed_sample

ENTRY = CATALOG["sentry"]
WEBHOOKS = declared(ENTRY)
SECRET = "sentry-client-secret-0123456789abcdef"
SETTINGS = {"client_secret": SECRET}
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("sentry")
HEADERS = {"content-type": "application/json", **ENTRY.sample.headers}


def digest(secret: str = SECRET, body: bytes = BODY) -> bytes:
    return hmac.new(key=secret.encode("utf-8"), msg=body, digestmod=hashlib.sha256).digest()


def with_signature(value: str | None) -> dict[str, str]:
    return {**HEADERS, **({"sentry-hook-signature": value} if value is not None else {})}


def test_the_documented_signature_verifies() -> None:
    WEBHOOKS.verify(inbound(BODY, with_signature(digest().hex())), SETTINGS, NOW)
    assert signed_sample(ENTRY, SETTINGS).header("sentry-hook-signature") == digest().hex()


@pytest.mark.parametrize(
    "value",
    [digest("another").hex(), base64.b64encode(digest()).decode(), "sha256=" + digest().hex()],
    ids=["other-secret", "base64", "prefixed"],
)
def test_a_wrong_signature_is_refused(value: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(BODY, with_signature(value)), SETTINGS, NOW)


def test_the_raw_bytes_are_signed_not_a_reserialisation() -> None:
    """Sentry signs the very string it sends; the same JSON spaced otherwise is refused."""
    compact = BODY.replace(b"\n", b"").replace(b"  ", b"")
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(inbound(compact, with_signature(digest().hex())), SETTINGS, NOW)


def test_a_missing_signature_is_refused() -> None:
    with pytest.raises(SignatureInvalid, match="sentry-hook-signature header is missing"):
        WEBHOOKS.verify(inbound(BODY, with_signature(None)), SETTINGS, NOW)


def test_event_is_the_resource_and_action_and_the_id_request_id() -> None:
    parsed = WEBHOOKS.parse(inbound(BODY, HEADERS))
    assert (parsed.event_type, parsed.delivery_id) == ("issue.created", HEADERS["request-id"])
    alert = b'{"action": "critical", "data": {}}'
    metric = {**HEADERS, "sentry-hook-resource": "metric_alert"}
    assert WEBHOOKS.parse(inbound(alert, metric)).event_type == "metric_alert.critical"
    without = {k: v for k, v in HEADERS.items() if k != "sentry-hook-resource"}
    with pytest.raises(MalformedWebhook, match="sentry-hook-resource"):
        WEBHOOKS.parse(inbound(BODY, without))
