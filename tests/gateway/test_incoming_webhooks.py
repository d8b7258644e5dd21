"""Incoming webhooks end to end through a real gateway: management API, ingress, Kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.support import KafkaTap, RunningService, admin_headers, until


async def create_hook(gateway: RunningService, **fields: Any) -> dict[str, Any]:
    body = {"workspace_id": "ws_1", "target_channel_id": f"ch_{uuid.uuid4().hex[:8]}", **fields}
    answer = await gateway.client.post("/api/incoming-webhooks", json=body, headers=admin_headers())
    assert answer.status_code == 201, answer.text
    hook: dict[str, Any] = answer.json()
    return hook


def ingress_path(hook: dict[str, Any]) -> str:
    url = httpx.URL(hook["url"])
    assert url.path.startswith("/api/webhooks/incoming/hhwh_")
    return url.path


def in_channel(hook: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda value: value["channel_id"] == hook["target_channel_id"]


async def test_json_post_becomes_message_received_on_kafka(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway, name="CI bot")
    answer = await gateway.client.post(
        ingress_path(hook),
        json={"text": "build #42 passed", "username": "ci", "icon_url": "https://x.test/ci.png"},
    )
    assert answer.status_code == 200
    assert answer.text == "ok"

    [message] = await inbound.wait_for(in_channel(hook))
    assert message["type"] == "message.received"
    assert message["workspace_id"] == "ws_1"
    assert message["text"] == "build #42 passed"
    assert message["author"] == {"name": "ci", "avatar_url": "https://x.test/ci.png"}
    assert message["source"]["provider"] == "incoming_webhook"
    assert message["source"]["integration_id"] == hook["id"]
    assert message["imported"] is False
    record = next(r for r in inbound.records if json.loads(r.value)["id"] == message["id"])
    assert record.key == hook["target_channel_id"].encode(), "keyed by channel for order"


async def test_form_payload_and_hook_defaults(gateway: RunningService, inbound: KafkaTap) -> None:
    hook = await create_hook(
        gateway,
        name="Deploys",
        default_username="deploy-bot",
        default_icon_url="https://x.test/d.png",
    )
    answer = await gateway.client.post(
        ingress_path(hook), data={"payload": json.dumps({"text": "deployed v2", "channel": "#ops"})}
    )
    assert answer.status_code == 200, answer.text
    [message] = await inbound.wait_for(in_channel(hook))
    assert message["text"] == "deployed v2"
    assert message["author"] == {"name": "deploy-bot", "avatar_url": "https://x.test/d.png"}
    assert message["source"]["external_channel_id"] == "#ops"


async def test_curl_style_json_labelled_as_form_is_read_as_json(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    answer = await gateway.client.post(
        ingress_path(hook),
        content=b'{"text": "from curl -d"}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    [message] = await inbound.wait_for(in_channel(hook))
    assert message["text"] == "from curl -d"
    assert message["author"]["name"] == "Incoming webhook"


async def test_blocks_and_attachments_only_are_rendered_as_commonmark(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Incident"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*sev2*"}]},
    ]
    attachments = [{"fallback": "db latency high", "color": "#f00"}]
    answer = await gateway.client.post(
        ingress_path(hook), json={"blocks": blocks, "attachments": attachments}
    )
    assert answer.status_code == 200, answer.text
    [message] = await inbound.wait_for(in_channel(hook))
    # The header a heading, Slack's *bold* CommonMark's, the attachment its fallback.
    assert message["text"] == "### Incident\n\n**sev2**\n\ndb latency high"
    assert message["card"]["title"] == "Incident"
    assert message["blocks"] == blocks
    assert message["attachments"] == attachments


async def test_idempotency_key_gives_a_retried_post_the_same_id(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    for _ in range(2):
        answer = await gateway.client.post(
            ingress_path(hook), json={"text": "once"}, headers={"Idempotency-Key": "k-1"}
        )
        assert answer.status_code == 200
    await gateway.client.post(ingress_path(hook), json={"text": "other"})
    messages = await inbound.wait_for(in_channel(hook), count=3)
    assert len(messages) == 3
    assert messages[0]["id"] == messages[1]["id"]
    assert messages[2]["id"] != messages[0]["id"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"text": ', "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 400, "malformed_json"),
        (b"\xff\xfe", "application/json", 400, "malformed_json"),
        (b"payload=%7Bnot-json", "application/x-www-form-urlencoded", 400, "malformed_json"),
        (b"text=hello", "application/x-www-form-urlencoded", 400, "malformed_form"),
        (b"{}", "application/json", 422, "no_text"),
        (b'{"text": "   "}', "application/json", 422, "no_text"),
        (b'{"text": 5}', "application/json", 422, "invalid_payload"),
        (b'{"text": "x", "icon_url": "not a url"}', "application/json", 422, "invalid_payload"),
        # Deeper than the standard library parses (a RecursionError: once a 500, then
        # "not valid JSON"): too deep, as one that parses.
        (b"[" * 10_000 + b"]" * 10_000, "application/json", 400, "too_deep"),
        (
            b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "application/json",
            400,
            "too_deep",
        ),
        # Parsed, but past what hookhub carries (once a 500 while publishing it).
        (
            b'{"text": "x", "blocks": [' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"]}",
            "application/json",
            400,
            "too_deep",
        ),
        # A lone UTF-16 surrogate: the standard library's parser takes it, no consumer can
        # write it again (once accepted, then dead-lettered as undecodable).
        (b'{"text": "\\ud800"}', "application/json", 400, "malformed_json"),
        (
            b"payload=%7B%22text%22%3A%22%5Cudc00%22%7D",
            "application/x-www-form-urlencoded",
            400,
            "malformed_json",
        ),
    ],
)
async def test_bad_bodies_get_a_clear_error_and_publish_nothing(
    gateway: RunningService,
    inbound: KafkaTap,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    hook = await create_hook(gateway)
    answer = await gateway.client.post(
        ingress_path(hook), content=content, headers={"content-type": content_type}
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    if code == "too_deep":
        assert answer.json()["error"]["message"] == "body is nested deeper than 64 levels"
    assert await inbound.settled(in_channel(hook)) == []


async def test_body_over_one_mebibyte_is_refused_with_or_without_length(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway)
    big = json.dumps({"text": "x" * (1024 * 1024)}).encode()
    declared = await gateway.client.post(ingress_path(hook), content=big)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: chunked encoding
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await gateway.client.post(ingress_path(hook), content=chunks())
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert await inbound.settled(in_channel(hook)) == []


async def test_unknown_deleted_rotated_and_disabled_tokens(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    unknown = await gateway.client.post("/api/webhooks/incoming/hhwh_nope", json={"text": "x"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_token"

    hook = await create_hook(gateway)
    rotated = await gateway.client.post(
        f"/api/incoming-webhooks/{hook['id']}/rotate-token", headers=admin_headers()
    )
    assert rotated.status_code == 200
    assert rotated.json()["url"] != hook["url"]
    assert (await gateway.client.post(ingress_path(hook), json={"text": "x"})).status_code == 404
    new_path = ingress_path(rotated.json())
    assert (await gateway.client.post(new_path, json={"text": "x"})).status_code == 200

    disabled = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}", json={"enabled": False}, headers=admin_headers()
    )
    assert disabled.json()["enabled"] is False
    refused = await gateway.client.post(new_path, json={"text": "x"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "webhook_disabled"

    deleted = await gateway.client.delete(
        f"/api/incoming-webhooks/{hook['id']}", headers=admin_headers()
    )
    assert deleted.status_code == 204
    assert (await gateway.client.post(new_path, json={"text": "x"})).status_code == 404
    assert len(await inbound.settled(in_channel(hook))) == 1


async def test_management_crud_and_cursor_pagination(gateway: RunningService) -> None:
    workspace = "ws_" + uuid.uuid4().hex[:8]
    created = [await create_hook(gateway, workspace_id=workspace, name=f"h{i}") for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {
            "workspace_id": workspace,
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = (
            await gateway.client.get(
                "/api/incoming-webhooks", params=params, headers=admin_headers()
            )
        ).json()
        seen += [item["id"] for item in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [hook["id"] for hook in reversed(created)], "newest first, each once"

    one = await gateway.client.get(
        f"/api/incoming-webhooks/{created[0]['id']}", headers=admin_headers()
    )
    assert one.status_code == 200
    for field in ("id", "workspace_id", "created_at", "updated_at", "url", "target_channel_id"):
        assert field in one.json()
    assert "token_hash" not in one.json() and "token_enc" not in one.json()

    patched = await gateway.client.patch(
        f"/api/incoming-webhooks/{created[0]['id']}",
        json={"target_channel_id": "ch_moved"},
        headers=admin_headers(),
    )
    assert patched.json()["target_channel_id"] == "ch_moved"
    assert patched.json()["updated_at"] > created[0]["updated_at"]

    missing = await gateway.client.get(
        "/api/incoming-webhooks/iwh_missing", headers=admin_headers()
    )
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": "incoming webhook iwh_missing not found"}
    }
    bad_cursor = await gateway.client.get(
        "/api/incoming-webhooks", params={"cursor": "%%%"}, headers=admin_headers()
    )
    assert bad_cursor.status_code == 400


async def test_management_validation_errors(gateway: RunningService) -> None:
    missing_field = await gateway.client.post(
        "/api/incoming-webhooks", json={"workspace_id": "ws_1"}, headers=admin_headers()
    )
    assert missing_field.status_code == 422
    assert missing_field.json()["error"]["code"] == "invalid"
    malformed = await gateway.client.post(
        "/api/incoming-webhooks",
        content=b"{nope",
        headers={**admin_headers(), "content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ],
)
async def test_management_api_needs_the_admin_token(
    gateway: RunningService, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/api/incoming-webhooks"),
        ("POST", "/api/incoming-webhooks"),
        ("GET", "/api/incoming-webhooks/iwh_x"),
        ("DELETE", "/api/incoming-webhooks/iwh_x"),
        ("POST", "/api/incoming-webhooks/iwh_x/rotate-token"),
    ]:
        answer = await gateway.client.request(method, path, headers=headers, json={})
        assert answer.status_code == 401, (method, path)
        assert answer.json()["error"]["code"] in {"missing_token", "invalid_token"}


async def test_message_counts_are_written_off_the_request_path(gateway: RunningService) -> None:
    hook = await create_hook(gateway)
    for _ in range(3):
        assert (
            await gateway.client.post(ingress_path(hook), json={"text": "x"})
        ).status_code == 200
    for _ in range(50):
        current = (
            await gateway.client.get(
                f"/api/incoming-webhooks/{hook['id']}", headers=admin_headers()
            )
        ).json()
        if current["message_count"] == 3:
            break
        await asyncio.sleep(0.1)
    assert current["message_count"] == 3
    assert current["last_message_at"] is not None


# Templates (SPEC §16): the hook's JavaScript renders any JSON posted to it.

ALERT = """function handler(event) {
  const alerts = event.payload.alerts || [];
  if (event.payload.status === "test") return {skip: true};
  return {
    text: `**${alerts.length} alerts ${event.payload.status}** via ${event.headers["user-agent"]}`,
    title: event.payload.groupLabels.alertname,
    color: event.payload.status === "firing" ? "#d00000" : "#2ea44f",
    fields: alerts.map((a) => ({name: a.labels.instance, value: a.annotations.summary})),
    item: event.payload.groupKey,
    state: Object.keys(event.headers).filter((h) => h.includes("token")).join() || "clean",
  };
}
"""
GROUP = {
    "status": "firing",
    "groupKey": '{}:{alertname="HighLatency"}',
    "groupLabels": {"alertname": "HighLatency"},
    "alerts": [
        {"labels": {"instance": "api-1"}, "annotations": {"summary": "p99 over 2 s"}},
        {"labels": {"instance": "api-2"}, "annotations": {"summary": "p99 over 3 s"}},
    ],
}


async def hook_when(gateway: RunningService, hook: dict[str, Any], check: Any) -> dict[str, Any]:
    async def read() -> dict[str, Any] | None:
        answer = await gateway.client.get(
            f"/api/incoming-webhooks/{hook['id']}", headers=admin_headers()
        )
        current: dict[str, Any] = answer.json()
        return current if check(current) else None

    found: dict[str, Any] = await until(read, what="the hook's state")
    return found


async def test_a_template_renders_any_json(gateway: RunningService, inbound: KafkaTap) -> None:
    hook = await create_hook(gateway, template=ALERT)
    assert hook["template"] == ALERT and hook["last_error"] is None
    answer = await gateway.client.post(
        ingress_path(hook),
        json={**GROUP, "status": "test"},
        headers={"user-agent": "Alertmanager/0.27", "x-gitlab-token": "secret"},
    )
    assert answer.status_code == 200 and answer.text == "ok"  # skipped: accepted, not shown
    answer = await gateway.client.post(
        ingress_path(hook),
        json=GROUP,
        headers={"user-agent": "Alertmanager/0.27", "x-gitlab-token": "secret"},
    )
    assert answer.status_code == 200, answer.text
    [message] = await inbound.wait_for(in_channel(hook))
    assert message["text"] == "**2 alerts firing** via Alertmanager/0.27"
    assert message["card"] == {
        "title": "HighLatency",
        "url": None,
        "state": "clean",  # the token header was not shown to the template
        "color": "#d00000",
        "fields": [
            {"name": "api-1", "value": "p99 over 2 s"},
            {"name": "api-2", "value": "p99 over 3 s"},
        ],
    }
    assert message["source"]["external_thread_id"] == GROUP["groupKey"]
    assert message["attachments"] == [] and message.get("blocks") is None


async def test_a_failing_template_falls_back_and_is_kept(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    hook = await create_hook(gateway, template="function handler(event) {\n  while (true) {}\n}")
    slack = await gateway.client.post(ingress_path(hook), json={"text": "as Slack's"})
    assert slack.status_code == 200
    other = await gateway.client.post(ingress_path(hook), json={"build": 7, "ok": False})
    assert other.status_code == 200, other.text
    first, second = await inbound.wait_for(in_channel(hook), count=2)
    assert first["text"] == "as Slack's"
    assert second["text"] == '```\n{\n  "build": 7,\n  "ok": false\n}\n```'
    current = await hook_when(gateway, hook, lambda h: h["last_error"] is not None)
    assert current["last_error"]["code"] == "template_timeout"
    throwing = "function handler(event) {\n  return event.payload.nope.x;\n}"
    answer = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}", json={"template": throwing}, headers=admin_headers()
    )
    assert answer.status_code == 200 and answer.json()["template"] == throwing
    again = await gateway.client.post(ingress_path(hook), json={"text": "again"})
    assert again.status_code == 200
    await inbound.wait_for(lambda v: in_channel(hook)(v) and v["text"] == "again")
    current = await hook_when(
        gateway, hook, lambda h: (h["last_error"] or {}).get("code") == "template_error"
    )
    assert (current["last_error"]["line"], current["last_error"]["column"]) == (2, 29)


async def test_a_template_is_checked_at_save(gateway: RunningService) -> None:
    body = {
        "workspace_id": "ws_1",
        "target_channel_id": "ch_t",
        "template": "function handler(e) {\n  return {text: };\n}",
    }
    answer = await gateway.client.post("/api/incoming-webhooks", json=body, headers=admin_headers())
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["line"], error["column"]) == ("invalid_template", 2, 17)
    hook = await create_hook(gateway, template=ALERT)
    path = f"/api/incoming-webhooks/{hook['id']}"
    answer = await gateway.client.patch(path, json={"template": "1 +"}, headers=admin_headers())
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_template"
    answer = await gateway.client.patch(path, json={"template": None}, headers=admin_headers())
    assert answer.status_code == 200 and answer.json()["template"] is None
