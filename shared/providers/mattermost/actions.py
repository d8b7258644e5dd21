"""A card's actions as Mattermost message buttons, and the proof their clicks carry back.

Buttons are interactive message actions in a message attachment (`props.attachments[].
actions[]`: `id`, `type` `button`, `name` the label, `style`, `integration` `{url,
context}`; developers.mattermost.com/integrate/plugins/interactive-messages, "Message
buttons", and mattermost-server's model.PostAction). A click makes the Mattermost server
POST to `integration.url` a `PostActionIntegrationRequest` (`user_id`, `user_name`,
`channel_id`, `team_id`, `post_id`, `trigger_id`, `type`, `context`: the button's own
context, as it was posted), and the answer may be `{}`, an `update` of the post or an
`ephemeral_text` (`PostActionIntegrationResponse`).

Mattermost does not sign that request: what proves it comes from the server is the context,
which the server keeps and never shows its clients (it strips `integration` from the posts
it sends them, and clients send back only an encrypted cookie). So each button's context
carries, besides the card action's id and the chat message it is on (`tag`), `proof`: a hex
HMAC-SHA256 of (integration id, chat message id, action id) under a key derived from the
integration's `bot_token` (a per-integration secret the gateway has; another integration
of the same server, the same bot even, has another id, so another proof). The gateway
compares it in constant time; a new `bot_token` makes the earlier buttons' proofs fail
until their card is edited again (each edit writes them anew).

A button's `id` is of letters and digits only: the server's route for a click is
`/api/v4/posts/{post_id}/actions/{action_id:[A-Za-z0-9]+}`; a card action's id
(`silence:1h`) travels in the context instead.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from shared.providers.chat import CardAction

ACTION_EVENT = "post_action"
CONTEXT_ACTION = "action_id"
CONTEXT_TAG = "tag"
CONTEXT_PROOF = "proof"
# The button styles Mattermost knows (interactive-messages, "Message buttons": `style`).
_STYLES = {"primary": "primary", "danger": "danger"}
_KEY_LABEL = b"hookhub mattermost post actions v1"


def _key(bot_token: str) -> bytes:
    return hmac.new(bot_token.strip().encode(), _KEY_LABEL, hashlib.sha256).digest()


def proof(bot_token: str, integration_id: str, tag: str, action_id: str) -> str:
    """What a button's context proves itself with (hex HMAC-SHA256)."""
    signed = "\x1f".join((integration_id, tag, action_id)).encode()
    return hmac.new(_key(bot_token), signed, hashlib.sha256).hexdigest()


def proven(bot_token: str, integration_id: str, context: Mapping[str, Any]) -> bool:
    """Whether a click's context is one hookhub wrote for this integration (constant-time)."""
    tag, action_id, given = (context.get(k) for k in (CONTEXT_TAG, CONTEXT_ACTION, CONTEXT_PROOF))
    if not all(isinstance(v, str) and v for v in (tag, action_id, given)) or not bot_token:
        return False
    expected = proof(bot_token, integration_id, str(tag), str(action_id))
    return hmac.compare_digest(expected.encode(), str(given).encode())


def button_id(action_id: str) -> str:
    """A button's `id`: letters and digits, one for each card action."""
    return "hh" + hashlib.sha256(action_id.encode()).hexdigest()[:24]


def attachments(
    actions: tuple[CardAction, ...], url: str, integration_id: str, bot_token: str, tag: str
) -> list[dict[str, Any]]:
    """The card's actions as one attachment of buttons ([] for none: an edit so removes
    them, the post's props being replaced whole). The labels are plain text."""
    buttons = [
        {
            "id": button_id(action.id),
            "type": "button",
            "name": action.label,
            "style": _STYLES.get(action.style, "default"),
            "integration": {
                "url": url,
                "context": {
                    CONTEXT_ACTION: action.id,
                    CONTEXT_TAG: tag,
                    CONTEXT_PROOF: proof(bot_token, integration_id, tag, action.id),
                },
            },
        }
        for action in actions
    ]
    return [{"actions": buttons}] if buttons else []
