"""Jira: `X-Hub-Signature: sha256=` signatures, webhookEvent names, the identifier header."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from githubkit.webhooks import sign

from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.ids import derived_delivery_id
from shared.providers.jira.webhooks import WEBHOOKS
from tests.providers.shapes import NOT_JSON_OBJECTS, WRONG_TYPES

SECRET = "jira-webhook-secret"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
BODY = json.dumps(
    {
        "timestamp": 1704067200000,
        "webhookEvent": "jira:issue_created",
        "issue_event_type_name": "issue_created",
        "issue": {"id": "10001", "key": "PROJ-1", "fields": {"summary": "It broke"}},
        "matchedWebhookIds": [1],
    }
).encode()


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request(
    body: bytes = BODY, signature: str | None = "sign", identifier: str | None = None
) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if signature == "sign":
        signature = signed(body)
    if signature is not None:
        headers["x-hub-signature"] = signature
    if identifier is not None:
        headers["x-atlassian-webhook-identifier"] = identifier
    return InboundRequest(headers=headers, body=body, received_at=NOW)


def verify(req: InboundRequest) -> None:
    WEBHOOKS.verify(req, {"webhook_secret": SECRET}, NOW)


def test_registered_with_its_contract() -> None:
    assert WEBHOOK_PROVIDERS["jira"] is WEBHOOKS
    assert WEBHOOKS.secret_fields == ("webhook_secret",)
    assert WEBHOOKS.max_body_bytes == 1024 * 1024


def test_sha256_signature_verifies_and_matches_an_independent_hmac() -> None:
    # Same `sha256=<hex HMAC>` format as GitHub, so githubkit is an independent check.
    assert signed(BODY) == sign(SECRET, BODY, "sha256")
    verify(request())


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        signed(BODY, "wrong secret"),
        signed(BODY + b" "),
        sign(SECRET, BODY, "sha1"),
        "sha512=" + hmac.new(SECRET.encode(), BODY, hashlib.sha512).hexdigest(),
        signed(BODY)[len("sha256=") :],
        "sha256=" + "g" * 64,
    ],
)
def test_wrong_tampered_or_other_algorithm_signatures_are_refused(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        verify(request(signature=signature))


def test_other_algorithms_are_refused_for_what_they_are() -> None:
    with pytest.raises(SignatureInvalid, match="must be sha256="):
        verify(request(signature=sign(SECRET, BODY, "sha1")))


@pytest.mark.parametrize("secrets", [{}, {"webhook_secret": ""}])
def test_missing_secret_names_the_setting(secrets: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid, match="webhook_secret"):
        WEBHOOKS.verify(request(), secrets, NOW)


def test_event_type_comes_from_the_body_and_delivery_id_from_the_identifier_header() -> None:
    parsed = WEBHOOKS.parse(request(identifier="b2a9c3a4-5e6f-4a1b-9c8d-7e6f5a4b3c2d"))
    assert parsed.event_type == "jira:issue_created"
    assert parsed.delivery_id == "b2a9c3a4-5e6f-4a1b-9c8d-7e6f5a4b3c2d"
    assert parsed.account_id is None
    assert parsed.publish is True
    assert (parsed.reply.status, parsed.reply.body) == (200, {"ok": True})
    assert parsed.payload["issue"]["key"] == "PROJ-1"


@pytest.mark.parametrize("identifier", [None, "", "  "])
def test_without_identifier_the_delivery_id_is_derived_from_the_body(
    identifier: str | None,
) -> None:
    assert WEBHOOKS.parse(request(identifier=identifier)).delivery_id == derived_delivery_id(BODY)


WEIRD_BODIES = [
    *NOT_JSON_OBJECTS,
    b'{"webhookEvent": NaN}',
    b"{}",
    b'{"webhookEvent": ""}',
    b'{"webhookEvent": 1}',
    b'{"webhookEvent": ["jira:issue_created"]}',
    b'{"webhookEvent": {"name": "jira:issue_created"}}',
]


@pytest.mark.parametrize("body", WEIRD_BODIES)
def test_weird_bodies_are_malformed_and_nothing_else(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body))


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_odd_shapes_elsewhere_are_passed_through(value: Any) -> None:
    body = json.dumps({"webhookEvent": "comment_created", "issue": value}).encode()
    assert WEBHOOKS.parse(request(body)).event_type == "comment_created"
