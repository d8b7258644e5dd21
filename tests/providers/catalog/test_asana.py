"""Asana: `X-Hook-Signature` (hex HMAC-SHA256 of the body keyed by the X-Hook-Secret's
text), one envelope per event, and the handshake that hands the secret over.

Asana publishes no vector: signatures are made as its example server checks them
(github.com/Asana/devrel-examples `python/webhooks_v5/server.py`, MIT):
`hmac.new(key=stored_secret.encode(), msg=request.data, digestmod=hashlib.sha256).hexdigest()`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from shared.providers.base import SignatureInvalid
from shared.providers.catalog import CATALOG
from tests.providers.catalog.support import NOW, declared, inbound

ENTRY = CATALOG["asana"]
WEBHOOKS = declared(ENTRY)
# The handshake example of https://developers.asana.com/reference/createwebhook.
SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
SETTINGS = {"webhook_secret": SECRET}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(key=secret.encode(), msg=body, digestmod=hashlib.sha256).hexdigest()
    return {"x-hook-signature": digest, "content-type": "application/json"}


def sample() -> bytes:
    assert ENTRY.sample is not None
    return ENTRY.sample.body("asana")


def test_a_body_signed_as_asanas_example_server_checks_verifies() -> None:
    WEBHOOKS.verify(inbound(sample(), signed(sample())), SETTINGS, NOW)


def test_the_secret_is_its_text_not_hex_decoded_and_other_forms_are_refused() -> None:
    body = sample()
    decoded = hmac.new(bytes.fromhex(SECRET), body, hashlib.sha256)
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
    for headers in (
        {"x-hook-signature": decoded.hexdigest()},  # the secret hex-decoded: not Asana's
        signed(body, "other"),
        {},
        {"x-hook-signature": base64.b64encode(digest).decode()},
        {"x-hook-signature": "sha256=" + digest.hex()},
    ):
        with pytest.raises(SignatureInvalid):
            WEBHOOKS.verify(inbound(body, headers), SETTINGS, NOW)
    with pytest.raises(SignatureInvalid, match="webhook_secret"):  # no handshake yet
        WEBHOOKS.verify(inbound(body, signed(body)), {}, NOW)


def test_each_event_is_named_by_its_resource_type_and_action() -> None:
    body = json.dumps(
        {
            "events": [
                {"action": "added", "resource": {"gid": "1", "resource_type": "task"}},
                {"action": "changed", "resource": {"gid": "1", "resource_type": "task"}},
                {"action": "deleted", "resource": {"gid": "2"}},
            ]
        }
    ).encode()
    parsed = WEBHOOKS.parse(inbound(body, {}))
    assert [e.event_type for e in parsed.events] == ["task.added", "task.changed", "deleted"]
    ids = [e.delivery_id for e in parsed.events]
    assert len(set(ids)) == 3 and all(i.startswith("sha256:") for i in ids)
    assert WEBHOOKS.parse(inbound(body, {})).events[0].delivery_id == ids[0]  # a retry
    assert [e.event_type for e in WEBHOOKS.parse(inbound(sample(), {})).events] == ["task.changed"]


def test_no_events_is_answered_and_not_published() -> None:
    parsed = WEBHOOKS.parse(inbound(b'{"events": []}', {}))
    assert parsed.publish is False and parsed.reply.status == 200


def test_the_handshake_echoes_and_keeps_the_secret() -> None:
    """The reference's example: `X-Hook-Secret: b537…` in, the same header out (200)."""
    request = inbound(b"", {"x-hook-secret": SECRET})
    reply = WEBHOOKS.handshake(request, {})
    assert reply is not None and reply.status == 200
    assert dict(reply.headers) == {"X-Hook-Secret": SECRET}
    assert dict(reply.store) == {"webhook_secret": SECRET}
    assert WEBHOOKS.handshake(request, None) is None  # the app-level URL answers nothing
    assert WEBHOOKS.handshake(inbound(sample(), signed(sample())), SETTINGS) is None
    injected = WEBHOOKS.handshake(inbound(b"", {"x-hook-secret": "a\r\nSet-Cookie: x"}), {})
    assert injected is not None and injected.status == 400 and not injected.store


def test_the_probe_hands_the_settings_secret_over() -> None:
    assert ENTRY.handshake_probe is not None
    probe = ENTRY.handshake_probe(SETTINGS, "https://h/x", NOW)
    reply = WEBHOOKS.handshake(inbound(probe.body, dict(probe.headers)), {})
    assert reply is not None and dict(reply.store) == SETTINGS
    assert probe.stores == ("webhook_secret",) and probe.status == 200
    assert {k.lower(): v for k, v in reply.headers.items()} == dict(probe.answer_headers)
