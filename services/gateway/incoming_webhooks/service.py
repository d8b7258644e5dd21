"""Incoming-webhook logic: parse a post, check it, and turn it into a `message.received`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from services.gateway.incoming_webhooks.schemas import IncomingPost
from shared import jsonlimits
from shared.envelopes import InboundMessage, MessageAuthor, MessageSource
from shared.errors import BadRequest, Invalid
from shared.ids import derived_id, new_id, utcnow

TOKEN_PREFIX = "hhwh_"  # noqa: S105 - a prefix, not a secret
SOURCE_PROVIDER = "incoming_webhook"


@dataclass(frozen=True)
class HookSnapshot:
    """What the ingress needs to know about a hook; cached per gateway replica."""

    id: str
    workspace_id: str
    target_channel_id: str
    name: str
    enabled: bool
    default_username: str | None = None
    default_icon_url: str | None = None
    # JavaScript rendering the posts (SPEC §16): services.gateway.incoming_webhooks.templates.
    template: str | None = None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def parse_post(body: bytes, content_type: str) -> IncomingPost:
    """Slack accepts JSON, or a form whose `payload` field holds the JSON; so do we."""
    data = parse_body(body, content_type)
    try:
        post = IncomingPost.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"{where}: {first['msg']}", code="invalid_payload") from exc
    if not (post.text and post.text.strip()) and not post.attachments and not post.blocks:
        raise Invalid("a message needs `text`, `attachments` or `blocks`", code="no_text")
    return post


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON object posted, as JSON or as a form's `payload` field."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    # `curl -d '{"text": ...}'` labels JSON as a form; Slack reads it as JSON, and so do we.
    looks_like_json = body.lstrip().startswith(b"{")
    if media_type == "application/x-www-form-urlencoded" and not looks_like_json:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("form body is malformed", code="malformed_form") from exc
        payloads = form.get("payload")
        if not payloads:
            raise BadRequest("form body has no `payload` field", code="malformed_form")
        raw: str | bytes = payloads[0]
    else:
        raw = body
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("body is not valid JSON", code="malformed_json") from exc
    except RecursionError as exc:  # nested past what the parser follows: too deep
        raise BadRequest(jsonlimits.nested_too_deep("body"), code="too_deep") from exc
    if jsonlimits.too_deep(raw.encode() if isinstance(raw, str) else raw):
        raise BadRequest(jsonlimits.nested_too_deep("body"), code="too_deep")
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object", code="malformed_json")
    return data


def render_text(post: IncomingPost) -> str:
    """Plain text for chat products that do not render attachments or blocks."""
    if post.text and post.text.strip():
        return post.text
    lines: list[str] = []
    for block in post.blocks or []:
        lines.extend(_block_text(block))
    for attachment in post.attachments or []:
        for key in ("fallback", "pretext", "title", "text"):
            value = attachment.get(key)
            if isinstance(value, str) and value.strip():
                lines.append(value)
                break
    return "\n".join(lines)


def _block_text(block: dict[str, Any]) -> list[str]:
    found: list[str] = []
    text = block.get("text")
    if isinstance(text, dict) and isinstance(text.get("text"), str):
        found.append(text["text"])
    elif isinstance(text, str):
        found.append(text)
    for key in ("fields", "elements"):
        for element in block.get(key) or []:
            if isinstance(element, dict):
                found.extend(_block_text(element))
    return found


def to_inbound_message(
    hook: HookSnapshot, post: IncomingPost, idempotency_key: str | None = None
) -> InboundMessage:
    # With an Idempotency-Key a retried post gets the same envelope id, so consumers see it
    # once; without one every post is a new message, as with Slack.
    message_id = (
        derived_id(SOURCE_PROVIDER, hook.id, idempotency_key) if idempotency_key else new_id("evt")
    )
    icon = str(post.icon_url) if post.icon_url else hook.default_icon_url
    return InboundMessage(
        id=message_id,
        type="message.received",
        workspace_id=hook.workspace_id,
        channel_id=hook.target_channel_id,
        source=MessageSource(
            provider=SOURCE_PROVIDER,
            integration_id=hook.id,
            external_channel_id=post.channel,
            external_message_id=message_id,
            external_thread_id=post.thread_ts,
        ),
        author=MessageAuthor.model_validate(
            {"name": post.username or hook.default_username or hook.name, "avatar_url": icon}
        ),
        text=render_text(post),
        attachments=post.attachments or [],
        blocks=post.blocks,
        occurred_at=utcnow(),
    )
