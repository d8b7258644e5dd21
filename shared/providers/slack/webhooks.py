"""Slack: v0 request signatures, Events API bodies, slash commands and interactivity forms."""

from __future__ import annotations

import hashlib
import hmac
import re
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
from shared.providers.freshness import check_fresh
from shared.providers.ids import (
    decode_form,
    decode_json_object,
    derived_delivery_id,
    field_at,
    is_form,
    required_secret,
    str_field,
)

# Slack's deprecated verification token: one secret of the app's, in every Events API body,
# interaction payload and slash command. The signature is what verifies a request; the
# token is dropped so that it does not travel on to every consumer of provider events.
_VERIFICATION_TOKEN = "token"  # noqa: S105 - the field's name, not a secret
_SIGNATURE = re.compile(r"v0=[0-9a-fA-F]{64}")


class SlackWebhooks:
    name: str = "slack"
    max_body_bytes: int = 1024 * 1024
    secret_fields: tuple[str, ...] = ("signing_secret",)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None  # the id is in the body

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        # Slack checks the certificate with an unsigned form POST; it only needs a 200.
        if not is_form(request):
            return None
        try:
            fields = decode_form(request.body)
        except MalformedWebhook:
            return None
        return Reply(200, None) if fields.get("ssl_check") == "1" else None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, "signing_secret")
        timestamp = check_fresh(request, "X-Slack-Request-Timestamp", now)
        signature = request.header("x-slack-signature")
        if signature is None or not _SIGNATURE.fullmatch(signature):
            raise SignatureInvalid("X-Slack-Signature is missing or not v0=<64 hex digits>")
        base = b"v0:" + timestamp.encode() + b":" + request.body
        expected = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        if not constant_time_equal(signature[len("v0=") :].lower(), expected):
            raise SignatureInvalid("X-Slack-Signature does not match the request")

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        if is_form(request):
            return self._parse_form(request)
        return self._parse_event(request)

    @staticmethod
    def _parse_event(request: InboundRequest) -> ParsedWebhook:
        body = decode_json_object(request.body)
        had_token = _VERIFICATION_TOKEN in body
        body.pop(_VERIFICATION_TOKEN, None)
        kind = str_field(body, "type")
        team_id = str_field(body, "team_id")
        if kind == "url_verification":
            challenge = str_field(body, "challenge")
            if challenge is None:
                raise MalformedWebhook("url_verification without a challenge")
            return ParsedWebhook(
                event_type=kind,
                delivery_id=derived_delivery_id(request.body),
                payload=body,
                reply=Reply(200, {"challenge": challenge}),
                publish=False,
            )
        if kind == "event_callback":
            event_type = str_field(body, "event", "type")
            if event_type is None:
                raise MalformedWebhook("event_callback without event.type")
            return ParsedWebhook(
                event_type=f"event_callback.{event_type}",
                # Slack retries carry the same event_id; that is what makes them recognisable.
                delivery_id=str_field(body, "event_id") or derived_delivery_id(request.body),
                payload=body,
                reply=Reply(200, None),
                account=team_id,
                payload_is_body=not had_token,
            )
        if kind is None:
            raise MalformedWebhook("Events API body without a string `type`")
        # `app_rate_limited` and any envelope type Slack adds later: no id of their own.
        return ParsedWebhook(
            event_type=kind,
            delivery_id=derived_delivery_id(request.body),
            payload=body,
            reply=Reply(200, None),
            account=team_id,
            payload_is_body=not had_token,
        )

    @staticmethod
    def _parse_form(request: InboundRequest) -> ParsedWebhook:
        fields = decode_form(request.body)
        if "payload" in fields:
            raw = fields["payload"]
            if not isinstance(raw, str):
                raise MalformedWebhook("interactivity form must carry exactly one `payload`")
            payload = decode_json_object(raw, "payload field")
            payload.pop(_VERIFICATION_TOKEN, None)
            kind = str_field(payload, "type")
            if kind is None:
                raise MalformedWebhook("interactivity payload without a string `type`")
            return ParsedWebhook(
                event_type=f"interactive.{kind}",
                delivery_id=_interaction_id(payload, request.body),
                payload=payload,
                reply=Reply(200, None),
                account=str_field(payload, "team", "id"),
            )
        if "command" in fields:
            fields.pop(_VERIFICATION_TOKEN, None)
            return ParsedWebhook(
                event_type="slash_command",
                delivery_id=_single(fields, "trigger_id") or derived_delivery_id(request.body),
                payload=fields,
                reply=Reply(200, None),
                account=_single(fields, "team_id"),
            )
        raise MalformedWebhook("form body is neither a slash command nor an interaction")


def _single(fields: Mapping[str, str | list[str]], name: str) -> str | None:
    value = fields.get(name)
    return value if isinstance(value, str) and value else None


def _interaction_id(payload: dict[str, Any], body: bytes) -> str:
    trigger_id = str_field(payload, "trigger_id")
    if trigger_id is not None:
        return trigger_id
    actions = field_at(payload, "actions")
    first_action = actions[0] if isinstance(actions, list) and actions else None
    action_ts = str_field(payload, "action_ts") or str_field(first_action, "action_ts")
    if action_ts is not None:
        # action_ts alone is shared by every user acting in the same microsecond; the message
        # and user narrow it to one click. A message timestamp alone would merge distinct
        # clicks on the same message, so it is never used without action_ts.
        message_ts = str_field(payload, "container", "message_ts") or ""
        user_id = str_field(payload, "user", "id") or ""
        return f"action:{action_ts}:{message_ts}:{user_id}"
    return derived_delivery_id(body)


WEBHOOKS = SlackWebhooks()
