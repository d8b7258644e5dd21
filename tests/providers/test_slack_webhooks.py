"""Slack: v0 signatures (published vector, slack_sdk), the 5-minute window, every body kind."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import Clock, SignatureVerifier

from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.ids import derived_delivery_id
from shared.providers.slack.webhooks import WEBHOOKS
from tests.providers.shapes import NOT_JSON_OBJECTS, mutations

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = 1531420618
NOW = datetime.fromtimestamp(TIMESTAMP, UTC)
VECTOR_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmib"
    b"IGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
VECTOR_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
FORM = "application/x-www-form-urlencoded"


def request(
    body: bytes,
    *,
    content_type: str = "application/json",
    timestamp: str | None = str(TIMESTAMP),
    signature: str | None = "sign",
) -> InboundRequest:
    headers = {"content-type": content_type}
    if timestamp is not None:
        headers["x-slack-request-timestamp"] = timestamp
        if signature == "sign":
            signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    if signature is not None and signature != "sign":
        headers["x-slack-signature"] = signature
    return InboundRequest(headers=headers, body=body, received_at=NOW)


def verify(req: InboundRequest, now: datetime = NOW, secret: str = SECRET) -> None:
    WEBHOOKS.verify(req, {"signing_secret": secret}, now)


def form(fields: dict[str, str]) -> InboundRequest:
    return request(urlencode(fields).encode(), content_type=FORM)


def event(body: dict[str, Any]) -> InboundRequest:
    return request(json.dumps(body).encode())


def test_registered_with_its_contract() -> None:
    assert WEBHOOK_PROVIDERS["slack"] is WEBHOOKS
    assert WEBHOOKS.secret_fields == ("signing_secret",)
    assert WEBHOOKS.max_body_bytes == 1024 * 1024


def test_published_vector_verifies() -> None:
    verify(request(VECTOR_BODY, content_type=FORM, signature=VECTOR_SIGNATURE))
    assert (
        SignatureVerifier(SECRET).generate_signature(timestamp=str(TIMESTAMP), body=VECTOR_BODY)
        == VECTOR_SIGNATURE
    )


def test_slack_sdk_signed_requests_verify_and_slack_sdk_accepts_ours() -> None:
    body = b'{"type":"event_callback","event":{"type":"message"},"event_id":"Ev1"}'
    req = request(body)
    verify(req)
    assert SignatureVerifier(SECRET, clock=FixedClock()).is_valid_request(body, dict(req.headers))


class FixedClock(Clock):
    def now(self) -> float:
        return float(TIMESTAMP)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_within_five_minutes_either_way_are_accepted(skew: int) -> None:
    verify(request(b"{}"), now=NOW + timedelta(seconds=skew))


@pytest.mark.parametrize("skew", [-301, 301, 86400])
def test_stale_timestamps_are_refused_even_when_correctly_signed(skew: int) -> None:
    with pytest.raises(SignatureInvalid, match="stale"):
        verify(request(b"{}"), now=NOW + timedelta(seconds=skew))


@pytest.mark.parametrize("timestamp", [None, "", "abc", "1531420618.5", " 1531420618", "١٢"])
def test_missing_or_non_integer_timestamps_are_refused(timestamp: str | None) -> None:
    with pytest.raises(SignatureInvalid, match="Timestamp"):
        verify(request(b"{}", timestamp=timestamp, signature=VECTOR_SIGNATURE))


def test_missing_wrong_or_tampered_signatures_are_refused() -> None:
    with pytest.raises(SignatureInvalid):
        verify(request(VECTOR_BODY, content_type=FORM, signature=None))
    with pytest.raises(SignatureInvalid):
        verify(request(VECTOR_BODY, content_type=FORM, signature="v1=" + "0" * 64))
    with pytest.raises(SignatureInvalid):
        verify(request(VECTOR_BODY + b"x", content_type=FORM, signature=VECTOR_SIGNATURE))
    with pytest.raises(SignatureInvalid):
        verify(request(VECTOR_BODY, content_type=FORM, signature=VECTOR_SIGNATURE), secret="x")
    # The timestamp is part of what is signed: moving it breaks the signature.
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify(request(VECTOR_BODY, timestamp=str(TIMESTAMP + 1), signature=VECTOR_SIGNATURE))


@pytest.mark.parametrize("secrets", [{}, {"signing_secret": ""}])
def test_missing_secret_names_the_setting(secrets: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid, match="signing_secret"):
        WEBHOOKS.verify(request(b"{}"), secrets, NOW)


def test_ssl_check_is_answered_before_verification() -> None:
    unsigned = request(b"ssl_check=1&token=xyz", content_type=FORM, timestamp=None)
    reply = WEBHOOKS.handshake(unsigned, {})
    assert reply is not None
    assert (reply.status, reply.body) == (200, None)
    assert WEBHOOKS.handshake(request(b"ssl_check=0", content_type=FORM), {}) is None
    assert WEBHOOKS.handshake(request(b"ssl_check=1"), {}) is None
    assert WEBHOOKS.handshake(request(VECTOR_BODY, content_type=FORM), {}) is None
    assert WEBHOOKS.handshake(request(b"%FF", content_type=FORM), {}) is None


def test_url_verification_answers_the_challenge_and_publishes_nothing() -> None:
    parsed = WEBHOOKS.parse(
        event({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9", "type": "url_verification"})
    )
    assert parsed.publish is False
    assert (parsed.reply.status, parsed.reply.body) == (
        200,
        {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9"},
    )


def test_event_callback_is_named_after_the_inner_event_and_dedupes_by_event_id() -> None:
    body = {
        "token": "t",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {"type": "message", "channel": "C1", "text": "hi", "ts": "1.2"},
        "type": "event_callback",
        "event_id": "Ev123ABC456",
        "event_time": 1234567890,
    }
    first = WEBHOOKS.parse(event(body))
    retry = WEBHOOKS.parse(request(json.dumps(body, indent=2).encode()))
    assert first.event_type == "event_callback.message"
    assert first.delivery_id == retry.delivery_id == "Ev123ABC456"
    assert first.account_id == "T123ABC456"
    assert first.publish is True
    assert (first.reply.status, first.reply.body) == (200, None)


def test_app_rate_limited_gets_a_derived_delivery_id() -> None:
    req = event(
        {"token": "t", "type": "app_rate_limited", "team_id": "T1", "minute_rate_limited": 1}
    )
    parsed = WEBHOOKS.parse(req)
    assert parsed.event_type == "app_rate_limited"
    assert parsed.delivery_id == derived_delivery_id(req.body)
    assert parsed.delivery_id.startswith("sha256:") and len(parsed.delivery_id) == 7 + 64
    assert parsed.account_id == "T1"


def test_slash_command_form() -> None:
    parsed = WEBHOOKS.parse(request(VECTOR_BODY, content_type=FORM))
    assert parsed.event_type == "slash_command"
    assert parsed.delivery_id == "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    assert parsed.account_id == "T1DC2JH3J"
    assert parsed.payload["command"] == "/webhook-collect"
    assert parsed.payload["text"] == ""
    assert (parsed.reply.status, parsed.reply.body) == (200, None)


def test_slash_command_without_trigger_id_gets_a_derived_id_and_repeated_fields_a_list() -> None:
    req = request(b"command=%2Fx&team_id=T1&text=a&text=b", content_type=FORM)
    parsed = WEBHOOKS.parse(req)
    assert parsed.delivery_id == derived_delivery_id(req.body)
    assert parsed.payload["text"] == ["a", "b"]


def test_interactivity_payload() -> None:
    payload = {
        "type": "block_actions",
        "team": {"id": "T9TK3CUKW", "domain": "example"},
        "user": {"id": "UA8RXUSPL"},
        "trigger_id": "12321423423.333649436676.d8c1bb837935619ccad0f624c448ffb3",
        "container": {"type": "message", "message_ts": "1548261231.000200"},
        "actions": [{"action_id": "a", "action_ts": "1548426417.840180"}],
    }
    parsed = WEBHOOKS.parse(form({"payload": json.dumps(payload)}))
    assert parsed.event_type == "interactive.block_actions"
    assert parsed.delivery_id == payload["trigger_id"]
    assert parsed.account_id == "T9TK3CUKW"
    assert parsed.payload == payload
    assert (parsed.reply.status, parsed.reply.body) == (200, None)


def test_interactions_without_trigger_id_fall_back_to_action_ts_then_the_body() -> None:
    payload: dict[str, Any] = {
        "type": "block_suggestion",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "container": {"message_ts": "1.2"},
        "action_ts": "1548426417.840180",
    }
    by_action = WEBHOOKS.parse(form({"payload": json.dumps(payload)}))
    assert by_action.delivery_id == "action:1548426417.840180:1.2:U1"
    del payload["action_ts"]
    payload["actions"] = [{"action_ts": "9.9"}]
    assert WEBHOOKS.parse(form({"payload": json.dumps(payload)})).delivery_id == "action:9.9:1.2:U1"
    del payload["actions"]
    req = form({"payload": json.dumps(payload)})
    assert WEBHOOKS.parse(req).delivery_id == derived_delivery_id(req.body)


def test_the_verification_token_is_dropped_from_every_payload() -> None:
    callback = event(
        {"token": "t", "type": "event_callback", "team_id": "T1", "event": {"type": "message"}}
    )
    rate_limited = event({"token": "t", "type": "app_rate_limited", "team_id": "T1"})
    interaction = form({"payload": json.dumps({"type": "shortcut", "token": "t", "team": {}})})
    command = request(VECTOR_BODY, content_type=FORM)
    for req in (callback, rate_limited, interaction, command):
        parsed = WEBHOOKS.parse(req)
        assert "token" not in parsed.payload, parsed.event_type
    # The envelope encodes the payload instead of carrying the body's bytes (with the token).
    assert WEBHOOKS.parse(callback).payload_is_body is False
    assert WEBHOOKS.parse(event({"type": "app_rate_limited"})).payload_is_body is True


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"ssl_check=1",
        b"text=hello",
        b"payload=1",
        b"payload=%7B%7D",
        b"payload=%7B%22type%22%3A1%7D",
        b"payload=a&payload=b",
        b"payload=%FF",
        b"command=%FF",
    ],
)
def test_bad_form_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body, content_type=FORM, signature=None))


WEIRD_BODIES = [
    *NOT_JSON_OBJECTS,
    b'{"type": NaN}',
    b'{"type": ' + b"1" * 5000 + b"}",
    b"{}",
    b'{"type": 1}',
    b'{"type": "event_callback"}',
    b'{"type": "event_callback", "event": []}',
    b'{"type": "event_callback", "event": {"type": 5}}',
    b'{"type": "url_verification"}',
    b'{"type": "url_verification", "challenge": {"a": 1}}',
]


@pytest.mark.parametrize("body", WEIRD_BODIES)
def test_weird_bodies_are_malformed_and_nothing_else(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body, signature=None))


def test_wrong_shapes_anywhere_never_raise_anything_but_malformed() -> None:
    events = {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": "Ev1",
        "event": {"type": "message", "blocks": [{"type": "rich_text"}]},
    }
    interaction = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "U1"},
        "container": {"message_ts": "1.2"},
        "actions": [{"action_ts": "1.3"}],
    }
    for variant in mutations(events):
        with contextlib.suppress(MalformedWebhook):
            WEBHOOKS.parse(event(variant))
    for variant in mutations(interaction):
        try:
            parsed = WEBHOOKS.parse(form({"payload": json.dumps(variant)}))
        except MalformedWebhook:
            pass
        else:
            assert parsed.event_type.startswith("interactive.")
            assert isinstance(parsed.delivery_id, str) and parsed.delivery_id
