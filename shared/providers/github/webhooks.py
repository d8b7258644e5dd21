"""GitHub webhooks: HMAC-SHA256 in `X-Hub-Signature-256`, event name in `X-GitHub-Event`."""

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
from shared.providers.ids import (
    JsonBody,
    check_json_object,
    decode_form,
    decode_json_object,
    id_field,
    is_form,
    required_secret,
    str_field,
)

_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")


class GitHubWebhooks:
    name: str = "github"
    # GitHub does not deliver payloads above 25 MB.
    max_body_bytes: int = 25 * 1024 * 1024
    secret_fields: tuple[str, ...] = ("webhook_secret",)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = "x-github-delivery"

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        secret = required_secret(secrets, "webhook_secret")
        signature = request.header("x-hub-signature-256")
        if signature is None:
            if request.header("x-hub-signature") is not None:
                # SHA-1 is what GitHub keeps only for legacy receivers; accepting it would
                # let the weaker scheme stand in for the one GitHub recommends.
                raise SignatureInvalid(
                    "X-Hub-Signature-256 is required: SHA-1 X-Hub-Signature is not accepted"
                )
            raise SignatureInvalid("X-Hub-Signature-256 header is missing")
        if not _SIGNATURE.fullmatch(signature):
            raise SignatureInvalid("X-Hub-Signature-256 is not sha256=<64 hex digits>")
        expected = hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not constant_time_equal(signature[len("sha256=") :].lower(), expected):
            raise SignatureInvalid("X-Hub-Signature-256 does not match the body")

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        event_type = (request.header("x-github-event") or "").strip()
        if not event_type:
            raise MalformedWebhook("X-GitHub-Event header is missing")
        delivery_id = (request.header("x-github-delivery") or "").strip()
        if not delivery_id:
            raise MalformedWebhook("X-GitHub-Delivery header is missing")
        payload = self._payload(request)
        return ParsedWebhook(
            # The header already names the event (`issues`); `action` stays in the payload
            # because subscribers match on `github.<event>`.
            event_type=event_type,
            delivery_id=delivery_id,
            payload=payload,
            reply=Reply(200, {"ok": True}),
            account=(
                (lambda: _account(payload.decode()))
                if isinstance(payload, JsonBody)
                else _account(payload)
            ),
        )

    @staticmethod
    def _payload(request: InboundRequest) -> JsonBody | dict[str, Any]:
        if not is_form(request):
            # Checked, not decoded: the envelope carries the body as it came, and only an
            # app-level request decodes it, for its account.
            return check_json_object(request.body)
        # A webhook configured with content type `application/x-www-form-urlencoded` sends the
        # JSON in the `payload` field; the signature still covers the raw form body.
        field = decode_form(request.body).get("payload")
        if not isinstance(field, str):
            raise MalformedWebhook("form body must carry exactly one `payload` field")
        return decode_json_object(field, "payload field")


def _account(payload: dict[str, Any]) -> str | None:
    """The installation (GitHub App webhooks), else the repository owner or the organization."""
    return (
        id_field(payload, "installation", "id")
        or str_field(payload, "repository", "owner", "login")
        or str_field(payload, "organization", "login")
    )


WEBHOOKS = GitHubWebhooks()
