"""Mattermost's calls to hookhub: the clicks on our cards' buttons (interactive message
actions), POSTed by the Mattermost server to the URL each button names,
`{public_url}/api/webhooks/mattermost/{integration_id}` (its messages come by WebSocket,
not here: `gateway.py`).

The request is the server's `PostActionIntegrationRequest` (JSON: `user_id`, `user_name`,
`channel_id`, `channel_name`, `team_id`, `team_domain`, `post_id`, `trigger_id`, `type`,
`data_source`, `context`; mattermost-server model/integration_action.go). Mattermost signs
nothing; the button's context is the proof (`actions.py`): verified here against the
integration the URL names, with a key derived from its `bot_token`, in constant time; a
request without a good one is 401. The delivery id is the click's `trigger_id` (a new one
each click). The answer is `{}`, a `PostActionIntegrationResponse` with no `update` and
no `ephemeral_text`: the post stays as it is, and the click's outcome arrives as the
thread reply the click worker posts (developers.mattermost.com/integrate/plugins/
interactive-messages: "the integration can choose to update the original post, and/or
respond with an ephemeral message").

The same URL is the Request URL of the `/hookhub` custom slash command: a form POST
(`channel_id`, `text`, `user_id`, `user_name`, `response_url`, `trigger_id`, `token`, and
`Authorization: Token <token>`; developers.mattermost.com/integrate/slash-commands/). Its
token is the integration's `command_token` setting, compared in constant time ("your
integration should immediately confirm that the token provided in the request body matches
the one given to you after the slash command was created"); a request without it is 401.
The answer is an ephemeral response with no text, which Mattermost shows nothing of
(mattermost-server app/command.go: an ephemeral response without text posts nothing): the
command's answer comes at its `response_url`, or in the channel through the chat.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

from shared.kernel.crypto import constant_time_equal
from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import decode_form, decode_json_object, derived_delivery_id, is_form
from shared.providers.mattermost.actions import ACTION_EVENT, proven

BOT_TOKEN = "bot_token"  # noqa: S105 - the setting's name
COMMAND_TOKEN = "command_token"  # noqa: S105 - the setting's name
COMMAND_EVENT = "slash_command"


class MattermostWebhooks:
    name: str = "mattermost"
    max_body_bytes: int = 64 * 1024
    secret_fields: tuple[str, ...] = (BOT_TOKEN, COMMAND_TOKEN)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        """A slash command's token; else the context's proof, for the integration the URL
        names (its last segment)."""
        if is_form(request):
            _verify_command(request, secrets.get(COMMAND_TOKEN) or "")
            return
        integration_id = urlsplit(request.url).path.rstrip("/").rpartition("/")[2]
        try:
            body = decode_json_object(request.body)
        except MalformedWebhook:
            raise SignatureInvalid("not a Mattermost post action") from None
        context = body.get("context")
        token = secrets.get(BOT_TOKEN) or ""
        if not isinstance(context, Mapping) or not proven(token, integration_id, context):
            raise SignatureInvalid("the post action's context is not one hookhub wrote")

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        if is_form(request):
            fields = decode_form(request.body)
            fields.pop("token", None)  # the secret, verified: it travels no further
            trigger = fields.get("trigger_id")
            return ParsedWebhook(
                event_type=COMMAND_EVENT,
                delivery_id=trigger
                if isinstance(trigger, str) and trigger
                else derived_delivery_id(request.body),
                payload=fields,
                reply=Reply(200, {"response_type": "ephemeral", "text": ""}),
            )
        body = decode_json_object(request.body)
        trigger = body.get("trigger_id")
        delivery_id = (
            trigger if isinstance(trigger, str) and trigger else derived_delivery_id(request.body)
        )
        return ParsedWebhook(
            event_type=ACTION_EVENT, delivery_id=delivery_id, payload=body, reply=Reply(200, {})
        )


def _verify_command(request: InboundRequest, expected: str) -> None:
    """The slash command's token, in its `Authorization: Token` header and its form's
    `token` (both, when both are given, must be the integration's `command_token`)."""
    if not expected:
        raise SignatureInvalid("the integration has no command_token for slash commands")
    try:
        fields = decode_form(request.body)
    except MalformedWebhook:
        raise SignatureInvalid("not a Mattermost slash command") from None
    header = request.header("authorization") or ""
    scheme, _, given_header = header.partition(" ")
    given = [
        value
        for value in (
            given_header.strip() if scheme.lower() == "token" else None,
            fields.get("token"),
        )
        if value is not None
    ]
    if not given or not all(
        isinstance(value, str) and constant_time_equal(value, expected.strip()) for value in given
    ):
        raise SignatureInvalid("the slash command's token is not the integration's")


WEBHOOKS = MattermostWebhooks()
