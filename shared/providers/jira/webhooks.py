"""Jira: Atlassian webhooks signed with `X-Hub-Signature: sha256=<hex HMAC>`."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import (
    decode_json_object,
    derived_delivery_id,
    required_secret,
    str_field,
)

_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")


class JiraWebhooks:
    name: str = "jira"
    # Atlassian publishes no maximum. Issue and comment events embed the fields and
    # the comment text, typically a few to a few hundred KB; 1 MiB bounds memory per request
    # with room to spare, and fits one Kafka message with the envelope around it.
    max_body_bytes: int = 1024 * 1024
    secret_fields: tuple[str, ...] = ("webhook_secret",)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = "x-atlassian-webhook-identifier"

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, "webhook_secret")
        signature = request.header("x-hub-signature")
        if signature is None:
            raise SignatureInvalid("X-Hub-Signature header is missing")
        if not _SIGNATURE.fullmatch(signature):
            # Atlassian signs with HMAC-SHA256 only; any other method is not theirs.
            raise SignatureInvalid("X-Hub-Signature must be sha256=<64 hex digits>")
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not constant_time_equal(signature[len("sha256=") :].lower(), expected):
            raise SignatureInvalid("X-Hub-Signature does not match the body")

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        body = decode_json_object(request.body)
        event_type = str_field(body, "webhookEvent")
        if event_type is None:
            raise MalformedWebhook("body has no `webhookEvent`")
        # Jira repeats X-Atlassian-Webhook-Identifier on every retry of one delivery.
        identifier = (request.header("x-atlassian-webhook-identifier") or "").strip()
        return ParsedWebhook(
            event_type=event_type,
            delivery_id=identifier or derived_delivery_id(request.body),
            payload=body,
            reply=Reply(200, {"ok": True}),
        )


WEBHOOKS = JiraWebhooks()
