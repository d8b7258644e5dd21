"""Discord: Ed25519-signed interactions endpoint requests and Webhook Events."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.freshness import check_fresh
from shared.providers.ids import (
    decode_json_object,
    derived_delivery_id,
    id_field,
    required_secret,
    str_field,
)

_PUBLIC_KEY = re.compile(r"[0-9a-fA-F]{64}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")

# Interaction type → (event type, what Discord needs back within 3 s). Deferring lets the
# real answer come later from whoever consumes the event. An application command (hookhub's
# `/hookhub`) is deferred ephemeral (flags 64, EPHEMERAL): "the first followup … to a
# deferred Interactions Response" takes its ephemerality from that ACK
# (docs.discord.com/developers/interactions/receiving-and-responding, "Create Followup
# Message"), and sync's answer edits it for the user alone (the channel's answer comes
# through the chat, as every message).
_INTERACTIONS: dict[int, tuple[str, dict[str, Any]]] = {
    2: (
        "application_command",
        {"type": 5, "data": {"flags": 64}},
    ),  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    3: ("message_component", {"type": 6}),  # DEFERRED_UPDATE_MESSAGE
    4: ("application_command_autocomplete", {"type": 8, "data": {"choices": []}}),
    5: ("modal_submit", {"type": 5}),
}
_INTERACTION_PING = 1
_EVENT_PING = 0
_EVENT = 1


class DiscordWebhooks:
    name: str = "discord"
    max_body_bytes: int = 1024 * 1024
    secret_fields: tuple[str, ...] = ("public_key",)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None  # the id is in the body

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        public_key = required_secret(secrets, "public_key").strip()
        if not _PUBLIC_KEY.fullmatch(public_key):
            raise SignatureInvalid("the integration setting 'public_key' is not 64 hex digits")
        signature = request.header("x-signature-ed25519")
        if signature is None or not _SIGNATURE.fullmatch(signature):
            raise SignatureInvalid("X-Signature-Ed25519 is missing or not 128 hex digits")
        # Discord documents no window, but without one a captured request replays for good
        # once the dedupe has forgotten its id (3 days): Slack's five minutes, as for Slack.
        timestamp = check_fresh(request, "X-Signature-Timestamp", now)
        try:
            key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
            key.verify(bytes.fromhex(signature), timestamp.encode() + request.body)
        except (InvalidSignature, ValueError) as exc:
            raise SignatureInvalid("X-Signature-Ed25519 does not match the request") from exc

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        body = decode_json_object(request.body)
        kind = body.get("type")
        if type(kind) is not int:
            raise MalformedWebhook("body has no integer `type`")
        application_id = id_field(body, "application_id")
        if application_id is None:
            raise MalformedWebhook("body has no `application_id`")
        interaction_id = id_field(body, "id")
        # Interactions carry their own id; Webhook Events (which also have `version`) do not.
        if interaction_id is not None and "event" not in body:
            return _interaction(body, kind, interaction_id, application_id)
        if "version" in body:
            return _webhook_event(request, body, kind, application_id)
        raise MalformedWebhook("body is neither an interaction nor a Webhook Event")


def _interaction(
    body: dict[str, Any], kind: int, interaction_id: str, application_id: str
) -> ParsedWebhook:
    if kind == _INTERACTION_PING:
        return ParsedWebhook(
            event_type="ping",
            delivery_id=interaction_id,
            payload=body,
            reply=Reply(200, {"type": 1}),
            publish=False,
            account=application_id,
        )
    known = _INTERACTIONS.get(kind)
    if known is None:
        raise MalformedWebhook(f"unknown interaction type {kind}")
    event_type, answer = known
    return ParsedWebhook(
        event_type=event_type,
        delivery_id=interaction_id,
        payload=body,
        reply=Reply(200, copy.deepcopy(answer)),
        account=application_id,
    )


def _webhook_event(
    request: InboundRequest, body: dict[str, Any], kind: int, application_id: str
) -> ParsedWebhook:
    if kind == _EVENT_PING:
        return ParsedWebhook(
            event_type="ping",
            delivery_id=derived_delivery_id(request.body),
            payload=body,
            reply=Reply(204, None),
            publish=False,
            account=application_id,
        )
    if kind == _EVENT:
        event_type = str_field(body, "event", "type")
        if event_type is None:
            raise MalformedWebhook("Webhook Event without event.type")
        return ParsedWebhook(
            event_type=f"event.{event_type}",
            # Webhook Events carry no id; a redelivery repeats the same bytes.
            delivery_id=derived_delivery_id(request.body),
            payload=body,
            reply=Reply(204, None),
            account=application_id,
        )
    raise MalformedWebhook(f"unknown Webhook Event type {kind}")


WEBHOOKS = DiscordWebhooks()
