"""Mattermost's post action requests at the gateway: the context's proof is checked for the
integration the URL names (Mattermost signs nothing), and a click names the chat message its
context was written for."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.chat import CardAction
from shared.providers.mattermost.actions import attachments
from shared.providers.mattermost.messages import MattermostChat
from shared.providers.mattermost.webhooks import WEBHOOKS

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URL = "https://hookhub.example/api/webhooks/mattermost/"
ACTIONS = (CardAction("silence:1h", "Silence 1 h", "primary"), CardAction("x", "X"))


def context(integration: str = "int_1", token: str = "t" * 26) -> dict[str, Any]:
    [attachment] = attachments(ACTIONS, URL + integration, integration, token, "m_card")
    found: dict[str, Any] = attachment["actions"][0]["integration"]["context"]
    return found


def request(integration: str, ctx: Any) -> InboundRequest:
    # mattermost-server model.PostActionIntegrationRequest.
    body = {
        "user_id": "us5qk4gpjb8hfxd3rh1q6stydr",
        "user_name": "grace",
        "channel_id": "ch7ubsjtjpr3zfuqqiyz3srgdc",
        "team_id": "tm4mj8w8xtbzbrkc1iogzbtwzo",
        "post_id": "po1234567890abcdefghijklmn",
        "trigger_id": "tr1",
        "type": "button",
        "context": ctx,
    }
    return InboundRequest(
        headers={}, body=json.dumps(body).encode(), received_at=NOW, url=URL + integration
    )


def test_a_context_hookhub_wrote_verifies_and_names_its_card() -> None:
    assert WEBHOOK_PROVIDERS["mattermost"] is WEBHOOKS
    inbound = request("int_1", context())
    WEBHOOKS.verify(inbound, {"bot_token": "t" * 26}, NOW)
    parsed = WEBHOOKS.parse(inbound)
    assert (parsed.delivery_id, parsed.reply.status, parsed.reply.body) == ("tr1", 200, {})
    [click] = MattermostChat(api=None).clicks(parsed.event_type, parsed.payload)  # type: ignore[arg-type]
    assert (click.action_id, click.chat_message_id, click.user_id) == (
        "silence:1h",
        "m_card",
        "us5qk4gpjb8hfxd3rh1q6stydr",
    )
    assert click.external_message_id == "po1234567890abcdefghijklmn"


@pytest.mark.parametrize(
    "why, integration, ctx, token",
    [
        ("another integration's URL", "int_2", context(), "t" * 26),
        ("another bot token", "int_1", context(), "u" * 26),
        ("another action", "int_1", {**context(), "action_id": "x"}, "t" * 26),
        ("another card", "int_1", {**context(), "tag": "m_other"}, "t" * 26),
        ("no proof", "int_1", {"action_id": "silence:1h", "tag": "m_card"}, "t" * 26),
        ("no context", "int_1", None, "t" * 26),
    ],
)
def test_any_other_context_is_refused(why: str, integration: str, ctx: Any, token: str) -> None:
    with pytest.raises(SignatureInvalid):
        WEBHOOKS.verify(request(integration, ctx), {"bot_token": token}, NOW)
