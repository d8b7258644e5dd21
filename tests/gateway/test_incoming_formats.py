"""Incoming webhooks in Slack's, Discord's and Teams' formats, end to end through a real
gateway: each route's answer as its chat answers, and the converted message on Kafka."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.test_incoming_webhooks import create_hook, in_channel, ingress_path
from tests.support import KafkaTap, RunningService, admin_headers

PAYLOADS = Path(__file__).parents[1] / "providers" / "incoming_payloads"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


async def post(
    gateway: RunningService, hook: dict[str, Any], suffix: str, body: bytes, **options: Any
) -> Any:
    return await gateway.client.post(
        ingress_path(hook) + suffix,
        content=body,
        headers={"content-type": "application/json", **options.pop("headers", {})},
        **options,
    )


async def test_slack_route_converts_mrkdwn_and_keeps_slacks_own_attachments(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway, name="Slack-shaped")
    body = payload("slack_attachments.json")
    answer = await post(gateway, hook, "/slack", body)
    assert (answer.status_code, answer.text) == (200, "ok")
    [message] = await inbound.wait_for(in_channel(hook))
    assert "**[title](<https://api.slack.com/>)**" in message["text"]
    assert "**A field's title:** This field's value" in message["text"]
    assert message["card"]["color"] == "#36a64f"
    assert message["card"]["url"] == "https://api.slack.com/"
    assert message["attachments"] == json.loads(body)["attachments"]
    assert message["author"]["name"] == "Slack-shaped"


async def test_discord_route_answers_204_and_publishes_the_embeds(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    answer = await post(gateway, hook, "/discord", payload("discord_grafana.json"))
    assert answer.status_code == 204
    assert answer.content == b""
    [message] = await inbound.wait_for(in_channel(hook))
    assert message["author"] == {"name": "Grafana"}
    assert message["text"].startswith("**Firing**")
    assert "[\\[FIRING:1\\] (val1)](<http://localhost/alerting/list>)" in message["text"]
    assert message["card"]["color"] == "#d63232"
    assert message["source"]["provider"] == "incoming_webhook"


async def test_discord_wait_true_answers_the_message_and_retries_share_an_id(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    body = json.dumps({"content": "deployed <@123> @everyone", "username": "ci"}).encode()
    answers = [
        await post(
            gateway,
            hook,
            "/discord",
            body,
            params={"wait": "true"},
            headers={"Idempotency-Key": "d-1"},
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    reply = answers[0].json()
    assert reply["channel_id"] == hook["target_channel_id"]
    assert reply["id"] == answers[1].json()["id"]
    messages = await inbound.wait_for(in_channel(hook), count=2)
    assert {m["id"] for m in messages} == {reply["id"]}
    assert reply["content"] == messages[0]["text"]
    assert "@\u200d123" in messages[0]["text"] and "@\u200deveryone" in messages[0]["text"]


@pytest.mark.parametrize(
    "avatar", ["https://[::1", "https://x.test:99999/", "ftp://x.test/a.png", 5]
)
async def test_discord_avatar_the_envelope_cannot_take_falls_back_to_the_hooks(
    gateway: RunningService, inbound: KafkaTap, avatar: Any
) -> None:
    hook = await create_hook(gateway, default_icon_url="https://x.test/hook.png")
    body = json.dumps({"content": "up", "avatar_url": avatar}).encode()
    assert (await post(gateway, hook, "/discord", body)).status_code == 204
    [message] = await inbound.wait_for(in_channel(hook))
    assert message["author"]["avatar_url"] == "https://x.test/hook.png"


async def test_teams_route_answers_202_for_a_message_card_and_a_workflows_card(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    for name in ("teams_message_card.json", "teams_activity_update.json"):
        answer = await post(gateway, hook, "/teams", payload(name))
        assert answer.status_code == 202, answer.text
    card_message, adaptive_message = await inbound.wait_for(in_channel(hook), count=2)
    assert "**Status:** Not started" in card_message["text"]
    assert card_message["card"]["color"] == "#0076d7"
    assert card_message["card"]["fields"][0] == {"name": "Assigned to", "value": "Unassigned"}
    assert adaptive_message["text"].startswith("### Publish Adaptive Card schema")
    assert adaptive_message["card"]["title"] == "Publish Adaptive Card schema"
    assert adaptive_message["author"]["name"] == "Incoming webhook"


@pytest.mark.parametrize(
    ("suffix", "content", "status", "code"),
    [
        ("/discord", b"{}", 422, "no_content"),
        ("/discord", b'{"embeds": "x", "content": "  "}', 422, "no_content"),
        ("/discord", b'{"content": ', 400, "malformed_json"),
        ("/teams", b'{"type": "message", "attachments": []}', 422, "no_card"),
        ("/teams", b'{"hello": "teams"}', 422, "no_card"),
        ("/teams", b"[1]", 400, "malformed_json"),
        ("/slack", b"{}", 422, "no_text"),
    ],
)
async def test_bad_bodies_in_each_format_get_the_users_words_and_publish_nothing(
    gateway: RunningService, inbound: KafkaTap, suffix: str, content: bytes, status: int, code: str
) -> None:
    hook = await create_hook(gateway)
    answer = await post(gateway, hook, suffix, content)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert await inbound.settled(in_channel(hook)) == []


async def test_format_routes_check_the_token_as_the_slack_route_does(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    body = json.dumps({"content": "x", "text": "x"}).encode()
    for suffix in ("/slack", "/discord", "/teams"):
        unknown = await gateway.client.post(
            f"/api/webhooks/incoming/hhwh_nope{suffix}", content=body
        )
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "unknown_token"
    hook = await create_hook(gateway)
    await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}", json={"enabled": False}, headers=admin_headers()
    )
    for suffix in ("/slack", "/discord", "/teams"):
        refused = await post(gateway, hook, suffix, body)
        assert refused.status_code == 403
    assert await inbound.settled(in_channel(hook)) == []
