"""Incoming-webhook logic: read a post in Slack's, Discord's or Teams' format, check it,
and turn it into a `message.received`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
from pydantic import ValidationError

from services.gateway.incoming_webhooks.schemas import IncomingPost
from shared.kernel import jsonlimits
from shared.kernel.envelopes import Encoded, encode_inbound, http_url
from shared.kernel.errors import BadRequest, Invalid
from shared.kernel.ids import derived_id, new_id, utcnow
from shared.kernel.text import printable
from shared.providers.discord import incoming as discord
from shared.providers.incoming import Incoming
from shared.providers.microsoft import teams
from shared.providers.slack import incoming as slack

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


def read_json(body: bytes, content_type: str, *, form: bool = False) -> dict[str, Any]:
    """The body's JSON object; with `form`, also a form whose `payload` field holds it (as
    Slack accepts)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    # `curl -d '{"text": ...}'` labels JSON as a form; Slack reads it as JSON, and so do we.
    looks_like_json = body.lstrip().startswith(b"{")
    if form and media_type == "application/x-www-form-urlencoded" and not looks_like_json:
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("form body is malformed", code="malformed_form") from exc
        payloads = fields.get("payload")
        if not payloads:
            raise BadRequest("form body has no `payload` field", code="malformed_form")
        raw: str | bytes = payloads[0]
    else:
        raw = body
    try:
        # orjson takes what every consumer can write again (no lone surrogate, integers of
        # 64 bits, UTF-8); what it refuses is read as the standard library reads it, and
        # looked through.
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = _read_refused(raw)
    if jsonlimits.too_deep(raw.encode() if isinstance(raw, str) else raw):
        raise BadRequest(jsonlimits.nested_too_deep("body"), code="too_deep")
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object", code="malformed_json")
    return data


def _read_refused(raw: str | bytes) -> Any:
    """JSON orjson refused, as the standard library reads it (UTF-16 or UTF-32, an integer
    past 64 bits, nesting past 1,024), unless it is not JSON or holds a lone surrogate."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("body is not valid JSON", code="malformed_json") from exc
    except RecursionError as exc:  # nested past what the parser follows: too deep
        raise BadRequest(jsonlimits.nested_too_deep("body"), code="too_deep") from exc
    if jsonlimits.has_surrogate(data):  # taken by json.loads, written by no consumer
        raise BadRequest(jsonlimits.lone_surrogate("body"), code="malformed_json")
    return data


def parse_post(body: bytes, content_type: str) -> IncomingPost:
    """Slack accepts JSON, or a form whose `payload` field holds the JSON; so do we."""
    data = read_json(body, content_type, form=True)
    try:
        post = IncomingPost.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Invalid(f"{where}: {first['msg']}", code="invalid_payload") from exc
    if not (post.text and post.text.strip()) and not post.attachments and not post.blocks:
        raise Invalid("a message needs `text`, `attachments` or `blocks`", code="no_text")
    return post


@dataclass(frozen=True)
class Post:
    """A body read in one of the three formats: the message to show (`Incoming`, which a
    template's result may replace), and what the envelope carries beside it."""

    incoming: Incoming
    channel: str | None = None
    thread: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] | None = None


def read_slack(body: bytes, content_type: str) -> Post:
    """Slack's body; its `attachments` and `blocks` stay on the envelope as received, for
    chat products that render Slack's own."""
    post = parse_post(body, content_type)
    return Post(
        incoming=slack.convert(post.model_dump(mode="json")),
        channel=post.channel,
        thread=post.thread_ts,
        attachments=post.attachments or [],
        blocks=post.blocks,
    )


def read_discord(body: bytes, content_type: str) -> Post:
    return Post(incoming=discord.convert(read_json(body, content_type)))


def read_teams(body: bytes, content_type: str) -> Post:
    return Post(incoming=teams.convert(read_json(body, content_type)))


@dataclass(frozen=True)
class Accepted:
    """A post made into a `message.received`: its record (`encoded`), and what an answer
    shows of it."""

    encoded: Encoded
    channel_id: str
    integration_id: str
    shown: str  # the text as converted; the envelope's is `text`
    occurred_at: datetime

    @property
    def id(self) -> str:
        return self.encoded.id

    @property
    def text(self) -> str:
        """The message's text as the envelope has it (what Discord's `?wait=true` shows)."""
        return printable(self.shown)


def to_inbound_message(
    hook: HookSnapshot, post: Post, idempotency_key: str | None = None
) -> Accepted:
    """The `message.received` of `post`, encoded as `InboundMessage(...).to_kafka()` would
    (`encode_inbound`: a webhook's post is on the gateway's hottest path)."""
    # With an Idempotency-Key a retried post gets the same envelope id, so consumers see it
    # once; without one every post is a new message, as with Slack.
    message_id = (
        derived_id(SOURCE_PROVIDER, hook.id, idempotency_key) if idempotency_key else new_id("evt")
    )
    shown = post.incoming
    occurred_at = utcnow()
    encoded = encode_inbound(
        id=message_id,
        type="message.received",
        workspace_id=hook.workspace_id,
        channel_id=hook.target_channel_id,
        provider=SOURCE_PROVIDER,
        integration_id=hook.id,
        external_channel_id=post.channel,
        external_message_id=message_id,
        external_thread_id=post.thread,
        author_name=shown.username or hook.default_username or hook.name,
        # The avatar a post asked for, if the envelope takes it (Discord's `avatar_url` is
        # not checked before); an unusable one falls back to the hook's.
        avatar_url=(http_url(shown.avatar_url) if shown.avatar_url else None)
        or hook.default_icon_url,
        author_external_id=None,
        text=shown.text,
        attachments=post.attachments,
        blocks=post.blocks,
        card=shown.card.as_dict() if shown.card else None,
        thread_id=None,
        occurred_at=occurred_at,
    )
    return Accepted(encoded, hook.target_channel_id, hook.id, shown.text, occurred_at)
