"""An incoming webhook's template (SPEC §16): the posted JSON rendered by the hook's own
JavaScript instead of being read as Slack's body.

With a template, any JSON object may be posted (an alert, a build's status: not only a
Slack-shaped message). The template runs in the gateway's sandbox (at most 50 ms, off the
event loop) with `event = {provider: "incoming_webhook", event_type: "message", headers
(without credentials), payload: the body}`; its `text` and card become the message, its
`item` the message's thread key, and `skip: true` accepts the post and publishes nothing.
A template that fails (an error, a time-out, memory, a bad result, suspended) is counted
and kept as the hook's `last_error`, and the post is read as it would be without one;
a body that is no Slack message either is shown as its JSON, in a code block, so that
nothing accepted is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

from services.gateway.incoming_webhooks.repository import COLLECTION
from services.gateway.incoming_webhooks.service import (
    SOURCE_PROVIDER,
    Accepted,
    HookSnapshot,
    Post,
    read_json,
    to_inbound_message,
)
from shared.domain.templates import TemplateFailure, Templates, event_of
from shared.kernel.errors import Invalid
from shared.kernel.mongo import BatchedWriter
from shared.providers.incoming import Incoming
from shared.providers.templated import card_of, text_of

EVENT_TYPE = "message"
# What of a body that neither the template nor Slack's reading could show is shown.
SHOWN_CHARS = 3000


async def templated_message(
    templates: Templates,
    counters: BatchedWriter,
    hook: HookSnapshot,
    body: bytes,
    headers: Mapping[str, str],
    idempotency_key: str | None,
    read: Callable[[bytes, str], Post],
) -> Accepted | None:
    """The message a post to a hook with a template makes; None when the template skips it.
    `read` is the route's own reading (Slack's, Discord's, Teams'), for a template that
    fails. Raises as read_json does for a body that is not a JSON object."""
    assert hook.template is not None
    content_type = headers.get("content-type", "application/json")
    payload = read_json(body, content_type, form=True)
    event = event_of(SOURCE_PROVIDER, EVENT_TYPE, payload, headers)
    outcome = await templates.render(
        hook.template, event, use="incoming_webhook", scope=hook.workspace_id
    )
    if isinstance(outcome, TemplateFailure):
        counters.set_fields(COLLECTION, hook.id, {"last_error": outcome.as_last_error()})
        try:
            post = read(body, content_type)
        except Invalid:
            raw = orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode()[:SHOWN_CHARS]
            post = Post(Incoming(text=f"```\n{raw.replace('```', '` ` `')}\n```"))
        return to_inbound_message(hook, post, idempotency_key)
    if outcome.skip:
        return None
    shown = Incoming(text=text_of(outcome), card=card_of(outcome))
    return to_inbound_message(hook, Post(shown, thread=outcome.item), idempotency_key)
