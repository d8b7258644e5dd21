"""GitHub webhooks: published vector, githubkit cross-check, the real payload corpus, bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from githubkit.webhooks import sign

from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.github.webhooks import WEBHOOKS
from shared.providers.ids import JsonBody
from tests.providers.shapes import NOT_JSON_OBJECTS, mutations
from tests.support import CORPUS_DIR, github_corpus

SECRET = "It's a Secret to Everybody"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
CORPUS = CORPUS_DIR / "github"


def request(
    body: bytes,
    *,
    signature: str | None = "sign",
    event: str | None = "push",
    delivery: str | None = "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> InboundRequest:
    headers = {"content-type": content_type, **(extra or {})}
    if signature == "sign":
        signature = sign(SECRET, body, "sha256")
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    if event is not None:
        headers["x-github-event"] = event
    if delivery is not None:
        headers["x-github-delivery"] = delivery
    return InboundRequest(headers=headers, body=body, received_at=NOW)


def verify(req: InboundRequest, secret: str = SECRET) -> None:
    WEBHOOKS.verify(req, {"webhook_secret": secret}, NOW)


def test_registered_with_its_contract() -> None:
    assert WEBHOOK_PROVIDERS["github"] is WEBHOOKS
    assert WEBHOOKS.secret_fields == ("webhook_secret",)
    assert WEBHOOKS.max_body_bytes == 25 * 1024 * 1024


def test_published_vector_verifies() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(SECRET, b"Hello, World!", "sha256") == expected
    verify(request(b"Hello, World!", signature=expected))
    verify(request(b"Hello, World!", signature=expected.upper().replace("SHA256=", "sha256=")))


def test_githubkit_signatures_verify_and_our_hmac_matches_theirs() -> None:
    body = b'{"zen":"Design for failure.","hook_id":1}'
    ours = "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    assert ours == sign("another secret", body, "sha256")
    verify(request(body, signature=ours), secret="another secret")


@pytest.mark.parametrize(
    ("req", "message"),
    [
        (request(b"Hello, World!", signature=None), "missing"),
        (request(b"Hello, World!", signature=""), "not sha256="),
        (request(b"Hello, World!", signature="sha256=zz"), "not sha256="),
        (request(b"Hello, World!", signature="sha256=" + "0" * 64), "does not match"),
        (
            request(b"Hello, World!", signature="sha256=" + "é" * 64),
            "not sha256=",
        ),
    ],
)
def test_missing_or_malformed_or_wrong_signatures_are_refused(
    req: InboundRequest, message: str
) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        verify(req)


def test_sha1_only_is_refused_with_a_clear_message() -> None:
    body = b"Hello, World!"
    req = request(body, signature=None, extra={"x-hub-signature": sign(SECRET, body, "sha1")})
    with pytest.raises(SignatureInvalid, match="X-Hub-Signature-256 is required: SHA-1"):
        verify(req)


def test_tampered_body_and_wrong_secret_are_refused() -> None:
    signed = request(b'{"a":1}')
    tampered = InboundRequest(headers=signed.headers, body=b'{"a":2}', received_at=NOW)
    with pytest.raises(SignatureInvalid):
        verify(tampered)
    with pytest.raises(SignatureInvalid):
        verify(signed, secret="not the secret")
    verify(signed)


@pytest.mark.parametrize("secrets", [{}, {"webhook_secret": ""}, {"public_key": "x"}])
def test_missing_secret_names_the_setting(secrets: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid, match="webhook_secret"):
        WEBHOOKS.verify(request(b"{}"), secrets, NOW)


def test_parse_keeps_header_event_type_and_delivery_and_routes_by_account() -> None:
    body = json.dumps(
        {
            "action": "opened",
            "issue": {"number": 1},
            "repository": {"owner": {"login": "octocat"}},
            "organization": {"login": "octo-org"},
            "installation": {"id": 2311213},
        }
    ).encode()
    parsed = WEBHOOKS.parse(request(body, event="issues", delivery="d-1"))
    assert parsed.event_type == "issues"
    assert parsed.delivery_id == "d-1"
    assert parsed.account_id == "2311213"
    assert parsed.publish is True
    assert (parsed.reply.status, parsed.reply.body) == (200, {"ok": True})
    # Checked, not decoded: the envelope carries the body as it came.
    assert parsed.payload == JsonBody(body)
    assert parsed.payload.decode()["action"] == "opened"


@pytest.mark.parametrize(
    ("payload", "account"),
    [
        (
            {"repository": {"owner": {"login": "octocat"}}, "organization": {"login": "o"}},
            "octocat",
        ),
        ({"organization": {"login": "octo-org"}}, "octo-org"),
        ({"installation": {"id": True}, "organization": {"login": "o"}}, "o"),
        ({"installation": "x", "repository": {"owner": None}}, None),
        ({"zen": "Keep it logically awesome."}, None),
    ],
)
def test_account_id_falls_back_and_ignores_wrong_shapes(
    payload: dict[str, Any], account: str | None
) -> None:
    parsed = WEBHOOKS.parse(request(json.dumps(payload).encode()))
    assert parsed.account_id == account


def test_ping_is_a_normal_event() -> None:
    parsed = WEBHOOKS.parse(request(b'{"zen":"Speak like a human.","hook_id":1}', event="ping"))
    assert (parsed.event_type, parsed.publish) == ("ping", True)


def test_form_encoded_deliveries_are_signed_over_the_raw_form_body() -> None:
    payload = {"action": "created", "installation": {"id": 7}}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    req = request(body, event="installation", content_type="application/x-www-form-urlencoded")
    verify(req)
    parsed = WEBHOOKS.parse(req)
    assert parsed.payload == payload
    assert (parsed.event_type, parsed.account_id) == ("installation", "7")


@pytest.mark.parametrize(
    "body",
    [b"", b"zen=1", b"payload=1&payload=2", b"payload=%5B%5D", b"payload=%FF", b"payload=%7B"],
)
def test_bad_form_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body, content_type="application/x-www-form-urlencoded"))


@pytest.mark.parametrize(
    ("event", "delivery"), [(None, "d"), ("", "d"), ("push", None), ("push", " ")]
)
def test_missing_event_or_delivery_header_is_malformed(
    event: str | None, delivery: str | None
) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(b"{}", event=event, delivery=delivery))


WEIRD_BODIES = [
    *NOT_JSON_OBJECTS,
    b"1",
    b'{"a": "\xff"}',
    b'{"a": NaN}',
    b'{"a": ' + b"1" * 5000 + b"}",
    '{"a": 1}'.encode("utf-16"),
]


@pytest.mark.parametrize("body", WEIRD_BODIES)
def test_weird_bodies_are_malformed_and_nothing_else(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body))


def test_wrong_shapes_anywhere_never_raise_anything_but_malformed() -> None:
    valid = {
        "action": "opened",
        "installation": {"id": 1},
        "repository": {"owner": {"login": "o"}},
        "organization": {"login": "org"},
        "commits": [{"id": "abc"}],
    }
    for variant in mutations(valid):
        try:
            parsed = WEBHOOKS.parse(request(json.dumps(variant).encode()))
        except MalformedWebhook:
            assert not isinstance(variant, dict)
        else:
            assert isinstance(variant, dict)
            assert parsed.account_id is None or isinstance(parsed.account_id, str)


def test_every_real_payload_verifies_and_parses() -> None:
    files = github_corpus()
    for path in files:
        body = path.read_bytes()
        delivery = str(uuid.uuid4())
        req = request(body, event=path.parent.name, delivery=delivery)
        verify(req)
        parsed = WEBHOOKS.parse(req)
        payload = json.loads(body)
        assert parsed.event_type == path.parent.name, path
        assert parsed.delivery_id == delivery
        assert parsed.payload == JsonBody(body)
        assert parsed.payload.decode() == payload
        if isinstance(payload.get("installation"), dict):
            assert parsed.account_id == str(payload["installation"]["id"]), path
        elif isinstance(payload.get("repository"), dict):
            assert parsed.account_id == payload["repository"]["owner"]["login"], path
