"""Trello: `X-Trello-Webhook`, base64 HMAC-SHA1 of the body and the callback URL, as
Atlassian's Trello webhooks guide says; the HEAD check answered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["trello"]
WEBHOOKS = declared(ENTRY)
SECRET = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
SETTINGS = {"app_secret": SECRET}
CALLBACK = "https://hooks.example.com/api/webhooks/trello/int_0123456789"
assert ENTRY.sample is not None
BODY = ENTRY.sample.body("trello")


def signature(body: bytes = BODY, url: str = CALLBACK, secret: str = SECRET) -> str:
    """The guide: base64 HMAC-SHA1 of the full body + the callbackURL, the app's secret."""
    digest = hmac.new(secret.encode(), body + url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def request(
    header: str | None, body: bytes = BODY, url: str = CALLBACK, method: str = "POST"
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if header is not None:
        headers["x-trello-webhook"] = header
    return inbound(body, headers, url=url, method=method)


def test_the_guides_recipe_verifies_and_is_what_hookhub_signs() -> None:
    WEBHOOKS.verify(request(signature()), SETTINGS, NOW)
    _, headers = ENTRY.signed_sample(SETTINGS, CALLBACK, NOW)
    assert headers["x-trello-webhook"] == signature()


def test_a_name_beyond_latin1_is_hashed_as_utf8() -> None:
    """Trello's api-docs #26 (2016) dropped the caveat that such characters were hashed as
    their low bytes: "we accidentally fixed this ... and we're keeping it"."""
    card = json.loads(BODY)
    card["action"]["data"]["card"]["name"] = "Webhooks ✅ 日本"
    body = json.dumps(card, ensure_ascii=False).encode()
    WEBHOOKS.verify(request(signature(body), body), SETTINGS, NOW)
    low_bytes = bytes(c & 0xFF for c in body.decode().encode("utf-16-le")[::2])
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(signature(low_bytes), body), SETTINGS, NOW)


@pytest.mark.parametrize(
    "header",
    [
        signature(url=CALLBACK + "/"),  # the URL is signed byte for byte
        signature(url="http://hooks.example.com/api/webhooks/trello/int_0123456789"),
        signature(secret="the API key, not the secret"),
        signature(body=BODY + b" "),
        hmac.new(SECRET.encode(), BODY + CALLBACK.encode(), hashlib.sha1).hexdigest(),
        base64.b64encode(
            hmac.new(SECRET.encode(), BODY + CALLBACK.encode(), hashlib.sha256).digest()
        ).decode(),
        None,
    ],
    ids=["other-url", "http", "other-secret", "other-body", "hex", "sha256", "missing"],
)
def test_what_trello_would_not_send_is_refused(header: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(header), SETTINGS, NOW)


def test_event_type_and_delivery_id_are_the_actions() -> None:
    parsed = WEBHOOKS.parse(request(None))
    assert (parsed.event_type, parsed.delivery_id) == ("voteOnCard", "51f9424bcd6e040f3c002412")


def test_the_head_check_is_answered_200_for_an_integration_only() -> None:
    head = request(None, b"", method="HEAD")
    reply = WEBHOOKS.handshake(head, SETTINGS)
    assert reply is not None and (reply.status, reply.body) == (200, None)
    assert WEBHOOKS.handshake(head, None) is None
    assert WEBHOOKS.handshake(request(None, b"", method="GET"), SETTINGS) is None
    assert WEBHOOKS.handshake(request(signature()), SETTINGS) is None  # a POST is an event
    assert WEBHOOKS.handshake_methods == ("HEAD",)
    probe = ENTRY.handshake_probe
    assert probe is not None and (
        probe(SETTINGS, CALLBACK, NOW).method,
        probe(SETTINGS, CALLBACK, NOW).status,
    ) == ("HEAD", 200)
