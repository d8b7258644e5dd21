"""Telegram: the secret token header, update kinds, and update_id as the delivery id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest, MalformedWebhook, SignatureInvalid
from shared.providers.telegram.webhooks import WEBHOOKS
from tests.providers.shapes import NOT_JSON_OBJECTS, WRONG_TYPES

SECRET = "s3cr3t_T0ken-for-the-bot"
NOW = datetime(2024, 1, 1, tzinfo=UTC)


def request(body: bytes, token: str | None = SECRET) -> InboundRequest:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["x-telegram-bot-api-secret-token"] = token
    return InboundRequest(headers=headers, body=body, received_at=NOW)


def update(update_id: Any = 10000, **fields: Any) -> bytes:
    return json.dumps({"update_id": update_id, **fields}).encode()


def test_registered_with_its_contract() -> None:
    assert WEBHOOK_PROVIDERS["telegram"] is WEBHOOKS
    assert WEBHOOKS.secret_fields == ("secret_token",)
    assert WEBHOOKS.max_body_bytes == 1024 * 1024


def test_right_token_verifies() -> None:
    WEBHOOKS.verify(request(update()), {"secret_token": SECRET}, NOW)


@pytest.mark.parametrize("token", [None, "", "wrong", SECRET + "x", SECRET[:-1], "é" * 5])
def test_missing_or_wrong_token_is_refused(token: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(update(), token), {"secret_token": SECRET}, NOW)


@pytest.mark.parametrize("secrets", [{}, {"secret_token": ""}])
def test_missing_secret_names_the_setting(secrets: dict[str, str]) -> None:
    with pytest.raises(SignatureInvalid, match="secret_token"):
        WEBHOOKS.verify(request(update(), ""), secrets, NOW)


@pytest.mark.parametrize(
    "kind", ["message", "edited_message", "callback_query", "channel_post", "my_chat_member"]
)
def test_update_kind_is_the_event_type_and_update_id_the_delivery_id(kind: str) -> None:
    parsed = WEBHOOKS.parse(request(update(123456789, **{kind: {"message_id": 1}})))
    assert parsed.event_type == kind
    assert parsed.delivery_id == "123456789"
    assert parsed.account_id is None
    assert parsed.publish is True
    assert (parsed.reply.status, parsed.reply.body) == (200, {"ok": True})


def test_update_id_need_not_come_first() -> None:
    parsed = WEBHOOKS.parse(request(b'{"message": {"text": "hi"}, "update_id": 7}'))
    assert (parsed.event_type, parsed.delivery_id) == ("message", "7")


@pytest.mark.parametrize("update_id", ["10000", 1.0, True, None, [], {}])
def test_non_integer_update_id_is_malformed(update_id: Any) -> None:
    with pytest.raises(MalformedWebhook, match="update_id"):
        WEBHOOKS.parse(request(update(update_id, message={})))


WEIRD_BODIES = [
    *NOT_JSON_OBJECTS,
    b'{"update_id": NaN, "message": {}}',
    b'{"update_id": ' + b"1" * 5000 + b', "message": {}}',
    b"{}",
    b'{"message": {}}',
    b'{"update_id": 1}',
]


@pytest.mark.parametrize("body", WEIRD_BODIES)
def test_weird_bodies_are_malformed_and_nothing_else(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        WEBHOOKS.parse(request(body))


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_odd_update_contents_are_passed_through(value: Any) -> None:
    parsed = WEBHOOKS.parse(request(update(5, message=value)))
    assert (parsed.event_type, parsed.payload["message"]) == ("message", value)
