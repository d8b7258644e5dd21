"""Discord: Ed25519 signatures made with PyNaCl, interactions and Webhook Events."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import nacl.encoding
import nacl.signing
import pytest

from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.discord.webhooks import WEBHOOKS
from shared.providers.ids import derived_delivery_id
from tests.providers.shapes import NOT_JSON_OBJECTS, mutations

SIGNING_KEY = nacl.signing.SigningKey.generate()
PUBLIC_KEY = SIGNING_KEY.verify_key.encode(nacl.encoding.HexEncoder).decode()
NOW = datetime(2024, 1, 1, tzinfo=UTC)
TIMESTAMP = "1704067200"
APP_ID = "1011121314151617"


def request(
    body: bytes,
    *,
    key: nacl.signing.SigningKey = SIGNING_KEY,
    signature: str | None = "sign",
    timestamp: str | None = TIMESTAMP,
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature == "sign":
        signature = key.sign((timestamp or "").encode() + body).signature.hex()
    if signature is not None:
        headers["x-signature-ed25519"] = signature
    if timestamp is not None:
        headers["x-signature-timestamp"] = timestamp
    return InboundRequest(headers=headers, body=body, received_at=NOW)


def verify(req: InboundRequest, public_key: str = PUBLIC_KEY) -> None:
    WEBHOOKS.verify(req, {"public_key": public_key}, NOW)


def interaction(kind: int, **extra: Any) -> bytes:
    body = {
        "id": "786008729715212338",
        "application_id": APP_ID,
        "type": kind,
        "token": "A_UNIQUE_TOKEN",
        "version": 1,
        **extra,
    }
    return json.dumps(body).encode()


def test_registered_with_its_contract() -> None:
    assert WEBHOOK_PROVIDERS["discord"] is WEBHOOKS
    assert WEBHOOKS.secret_fields == ("public_key",)
    assert WEBHOOKS.max_body_bytes == 1024 * 1024


def test_pynacl_signatures_verify_within_five_minutes_of_their_timestamp() -> None:
    verify(request(interaction(1)))
    verify(request(interaction(1)), public_key=PUBLIC_KEY.upper())
    for skew in (-300, -299, 299, 300):
        verify(request(interaction(1), timestamp=str(int(TIMESTAMP) + skew)))


@pytest.mark.parametrize(
    "timestamp",
    [
        "978307200",  # 2001
        "99999999999",  # the year 5138
        str(int(TIMESTAMP) - 301),
        str(int(TIMESTAMP) + 301),
        "old-capture",
        "",
        "1704067200.5",
        "+1704067200",
        " 1704067200",
        "1" * 16,
    ],
)
def test_a_signed_timestamp_that_is_no_integer_or_over_five_minutes_off_is_refused(
    timestamp: str,
) -> None:
    # Validly signed over that timestamp: only the window refuses it (as a bad signature).
    with pytest.raises(SignatureInvalid, match="X-Signature-Timestamp"):
        verify(request(interaction(1), timestamp=timestamp))


def test_invalid_signatures_are_refused() -> None:
    body = interaction(1)
    signed = request(body)
    probes = [
        request(body, signature=os.urandom(64).hex()),
        request(body, key=nacl.signing.SigningKey.generate()),
        InboundRequest(headers=signed.headers, body=body + b" ", received_at=NOW),
        InboundRequest(
            headers={**signed.headers, "x-signature-timestamp": "1704067201"},
            body=body,
            received_at=NOW,
        ),
        request(body, signature=None),
        request(body, timestamp=None),
        request(body, signature="zz" * 64),
        request(body, signature=signed.headers["x-signature-ed25519"][:-2]),
        request(body, signature=" " + signed.headers["x-signature-ed25519"][1:]),
        request(body, signature=""),
    ]
    for probe in probes:
        with pytest.raises(SignatureInvalid):
            verify(probe)


@pytest.mark.parametrize("public_key", ["", "zz" * 32, "ab" * 31, "00" * 32])
def test_missing_or_unusable_public_key_is_refused(public_key: str) -> None:
    with pytest.raises(SignatureInvalid):
        verify(request(interaction(1)), public_key=public_key)
    with pytest.raises(SignatureInvalid, match="public_key"):
        WEBHOOKS.verify(request(interaction(1)), {}, NOW)


def test_ping_is_answered_with_pong_and_not_published() -> None:
    parsed = WEBHOOKS.parse(request(interaction(1)))
    assert parsed.publish is False
    assert (parsed.reply.status, parsed.reply.body) == (200, {"type": 1})


@pytest.mark.parametrize(
    ("kind", "event_type", "answer"),
    [
        (2, "application_command", {"type": 5, "data": {"flags": 64}}),
        (3, "message_component", {"type": 6}),
        (4, "application_command_autocomplete", {"type": 8, "data": {"choices": []}}),
        (5, "modal_submit", {"type": 5}),
    ],
)
def test_interactions_are_published_and_deferred(
    kind: int, event_type: str, answer: dict[str, Any]
) -> None:
    parsed = WEBHOOKS.parse(request(interaction(kind, data={"name": "hello"})))
    assert parsed.event_type == event_type
    assert parsed.publish is True
    assert (parsed.reply.status, parsed.reply.body) == (200, answer)
    assert parsed.delivery_id == "786008729715212338"
    assert parsed.account_id == APP_ID


def test_replies_are_not_shared_between_requests() -> None:
    first = WEBHOOKS.parse(request(interaction(4)))
    first.reply.body["data"]["choices"].append({"name": "x", "value": "x"})
    assert WEBHOOKS.parse(request(interaction(4))).reply.body == {
        "type": 8,
        "data": {"choices": []},
    }


def test_webhook_event_ping_gets_204_and_is_not_published() -> None:
    parsed = WEBHOOKS.parse(request(b'{"version": 1, "application_id": "1011", "type": 0}'))
    assert parsed.publish is False
    assert (parsed.reply.status, parsed.reply.body) == (204, None)


def test_webhook_event_is_published_with_a_derived_id() -> None:
    body = json.dumps(
        {
            "version": 1,
            "application_id": APP_ID,
            "type": 1,
            "event": {
                "type": "APPLICATION_AUTHORIZED",
                "timestamp": "2024-10-18T14:42:53.064834",
                "data": {"integration_type": 1, "scopes": ["applications.commands"]},
            },
        }
    ).encode()
    parsed = WEBHOOKS.parse(request(body))
    assert parsed.event_type == "event.APPLICATION_AUTHORIZED"
    assert parsed.publish is True
    assert (parsed.reply.status, parsed.reply.body) == (204, None)
    assert parsed.delivery_id == derived_delivery_id(body)
    assert parsed.account_id == APP_ID


WEIRD_BODIES = [
    *NOT_JSON_OBJECTS,
    b'{"type": Infinity}',
    b"{}",
    b'{"type": 1}',
    b'{"type": true, "id": "1", "application_id": "2"}',
    b'{"type": "1", "id": "1", "application_id": "2"}',
    b'{"type": 1, "id": "1"}',
    b'{"type": 1, "id": "1", "application_id": ["2"]}',
    b'{"type": 99, "id": "1", "application_id": "2"}',
    b'{"type": 1, "application_id": "2"}',
    b'{"version": 1, "application_id": "2", "type": 2}',
    b'{"version": 1, "application_id": "2", "type": 1}',
    b'{"version": 1, "application_id": "2", "type": 1, "event": {"type": 3}}',
    b'{"version": 1, "application_id": "2", "type": 1, "event": "x"}',
]


@pytest.mark.parametrize("body", WEIRD_BODIES)
def test_weird_bodies_are_malformed_and_nothing_else(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body))


def test_wrong_shapes_anywhere_never_raise_anything_but_malformed() -> None:
    bodies = [
        json.loads(interaction(2, data={"name": "hi", "options": [{"value": 1}]})),
        {"version": 1, "application_id": APP_ID, "type": 1, "event": {"type": "X", "data": {}}},
    ]
    for body in bodies:
        for variant in mutations(body):
            try:
                parsed = WEBHOOKS.parse(request(json.dumps(variant).encode()))
            except MalformedWebhook:
                pass
            else:
                assert parsed.account_id is not None
