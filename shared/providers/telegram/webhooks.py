"""Telegram: Bot API updates, authenticated by the `secret_token` given to setWebhook."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import decode_json_object, required_secret


class TelegramWebhooks:
    name: str = "telegram"
    max_body_bytes: int = 1024 * 1024
    secret_fields: tuple[str, ...] = ("secret_token",)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None  # the id is in the body

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, "secret_token")
        token = request.header("x-telegram-bot-api-secret-token")
        if token is None:
            raise SignatureInvalid("X-Telegram-Bot-Api-Secret-Token header is missing")
        if not constant_time_equal(token, secret):
            raise SignatureInvalid("X-Telegram-Bot-Api-Secret-Token does not match")

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        body = decode_json_object(request.body)
        update_id = body.get("update_id")
        if type(update_id) is not int:
            raise MalformedWebhook("update has no integer `update_id`")
        # An Update holds update_id plus exactly one optional field naming what happened.
        event_type = next((key for key in body if key != "update_id"), None)
        if event_type is None:
            raise MalformedWebhook("update carries nothing besides `update_id`")
        return ParsedWebhook(
            event_type=event_type,
            delivery_id=str(update_id),
            payload=body,
            reply=Reply(200, _answer(body)),
        )


def _answer(update: dict[str, Any]) -> dict[str, Any]:
    """What the webhook's answer says: a button press (`callback_query`) is answered in it
    (`answerCallbackQuery`, "Making requests when getting updates": the client stops its
    spinner, no call of ours); anything else, nothing (core.telegram.org/bots/api)."""
    query = update.get("callback_query")
    query_id = query.get("id") if isinstance(query, dict) else None
    if isinstance(query_id, str) and query_id:
        return {"method": "answerCallbackQuery", "callback_query_id": query_id}
    return {"ok": True}


WEBHOOKS = TelegramWebhooks()
