"""Dropbox: `X-Dropbox-Signature`, hex HMAC-SHA256 of the body with the app secret, and
the `GET ?challenge=` verification, as Dropbox's webhooks reference says."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["dropbox"]
WEBHOOKS = declared(ENTRY)
SECRET = "k3x9q2m7z1w8v4p"  # an App secret's form: 15 lower-case letters and digits
SETTINGS = {"app_secret": SECRET}
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("dropbox")


def signature(body: bytes = BODY, secret: str = SECRET) -> str:
    """dropbox/mdwebhook's `hmac.new(APP_SECRET, message, sha256).hexdigest()`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request(
    header: str | None,
    body: bytes = BODY,
    method: str = "POST",
    query: dict[str, str] | None = None,
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["x-dropbox-signature"] = header
    return inbound(body, headers, method=method, query=query)


def test_the_sample_apps_recipe_verifies_and_is_what_hookhub_signs() -> None:
    WEBHOOKS.verify(request(signature()), SETTINGS, NOW)
    WEBHOOKS.verify(request(signature().upper()), SETTINGS, NOW)  # hex is hex
    _, headers = ENTRY.signed_sample(SETTINGS, "https://h/x", NOW)
    assert headers["x-dropbox-signature"] == signature()


@pytest.mark.parametrize(
    "header",
    [
        signature(secret="the app key"),
        signature(body=BODY.replace(b"12345678", b"12345679")),
        base64.b64encode(bytes.fromhex(signature())).decode(),
        "sha256=" + signature(),
        None,
    ],
    ids=["other-secret", "other-body", "base64", "prefixed", "missing"],
)
def test_what_dropbox_would_not_send_is_refused(header: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(header), SETTINGS, NOW)


def test_a_notification_is_list_folder_and_its_id_the_bodys_digest() -> None:
    parsed = WEBHOOKS.parse(request(None))
    assert parsed.event_type == "list_folder"
    assert parsed.delivery_id == "sha256:" + hashlib.sha256(BODY).hexdigest()
    with pytest.raises(MalformedWebhook, match="list_folder"):
        WEBHOOKS.parse(request(None, b'{"delta": {"users": [12345678]}}'))


def test_the_challenge_is_echoed_as_text_with_nosniff() -> None:
    get = request(None, b"", method="GET", query={"challenge": "<script>abc123</script>"})
    reply = WEBHOOKS.handshake(get, SETTINGS)
    assert reply is not None
    assert (reply.status, reply.body, reply.media_type) == (
        200,
        "<script>abc123</script>",
        "text/plain",
    )
    assert reply.headers == {"X-Content-Type-Options": "nosniff"}
    assert WEBHOOKS.handshake(get, None) is None  # the app-level URL answers nothing
    assert WEBHOOKS.handshake(request(None, b"", method="GET"), SETTINGS) is None
    long = request(None, b"", method="GET", query={"challenge": "x" * 1001})
    assert WEBHOOKS.handshake(long, SETTINGS) is None
    # a POST with ?challenge= is a notification, verified as any
    post = request(signature(), query={"challenge": "abc123"})
    assert WEBHOOKS.handshake(post, SETTINGS) is None
    assert WEBHOOKS.handshake_methods == ("GET",)


def test_the_probe_is_the_challenge() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(SETTINGS, "https://h/x", NOW)
    reply = WEBHOOKS.handshake(
        request(None, b"", method=probe.method, query=dict(probe.query)), SETTINGS
    )
    assert reply is not None and probe.answer == str(reply.body).encode()
