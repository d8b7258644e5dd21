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
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from urllib.parse import urlsplit

from shared.providers.base import (
    InboundRequest,
    MalformedWebhook,
    ParsedWebhook,
    Reply,
    SignatureInvalid,
)
from shared.providers.ids import decode_json_object, derived_delivery_id
from shared.providers.mattermost.actions import ACTION_EVENT, proven

BOT_TOKEN = "bot_token"  # noqa: S105 - the setting's name


class MattermostWebhooks:
    name: str = "mattermost"
    max_body_bytes: int = 64 * 1024
    secret_fields: tuple[str, ...] = (BOT_TOKEN,)
    handshake_methods: tuple[str, ...] = ()
    delivery_id_header: str | None = None

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        """The context's proof, for the integration the URL names (its last segment)."""
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
        body = decode_json_object(request.body)
        trigger = body.get("trigger_id")
        delivery_id = (
            trigger if isinstance(trigger, str) and trigger else derived_delivery_id(request.body)
        )
        return ParsedWebhook(
            event_type=ACTION_EVENT, delivery_id=delivery_id, payload=body, reply=Reply(200, {})
        )


WEBHOOKS = MattermostWebhooks()
