"""What the incoming-webhook API and the webhook ingress refuse: 4xx, never a 500.

A PATCH with `null` for a field that cannot be empty was stored, and from then on every read
of that hook, and every list of its workspace, answered 500.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import pytest

from tests.gateway.test_incoming_webhooks import create_hook, in_channel, ingress_path
from tests.support import KafkaTap, RunningService, admin_headers


@pytest.mark.parametrize(
    "patch",
    [
        {"enabled": None},
        {"name": None},
        {"target_channel_id": None},
        {"name": ""},
        {"target_channel_id": ""},
        {"enabled": None, "name": "0", "description": ""},
    ],
)
async def test_a_patch_with_null_or_empty_required_fields_is_refused(
    gateway: RunningService, patch: dict[str, Any]
) -> None:
    hook = await create_hook(gateway, workspace_id="ws_patch")
    answer = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}", json=patch, headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid"
    fetched = await gateway.client.get(
        f"/api/incoming-webhooks/{hook['id']}", headers=admin_headers()
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["enabled"] is True
    listed = await gateway.client.get(
        "/api/incoming-webhooks", params={"workspace_id": "ws_patch"}, headers=admin_headers()
    )
    assert listed.status_code == 200, listed.text


async def test_null_clears_the_optional_fields(gateway: RunningService) -> None:
    hook = await create_hook(
        gateway,
        description="d",
        default_username="bot",
        default_icon_url="https://example.com/i.png",
    )
    answer = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}",
        json={"description": None, "default_username": None, "default_icon_url": None},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    cleared = answer.json()
    assert (cleared["description"], cleared["default_username"], cleared["default_icon_url"]) == (
        None,
        None,
        None,
    )


@pytest.mark.parametrize("odd_id", ["%01%C3%98%5D", "%11", "a%0Ab", "%C2%AB%F4%89%B4%81%15"])
async def test_ids_with_control_or_non_ascii_characters_are_not_found(
    gateway: RunningService, odd_id: str
) -> None:
    for method, route in (
        ("GET", "/api/incoming-webhooks/{}"),
        ("PATCH", "/api/incoming-webhooks/{}"),
        ("DELETE", "/api/incoming-webhooks/{}"),
        ("POST", "/api/incoming-webhooks/{}/rotate-token"),
        ("POST", "/api/webhooks/incoming/{}"),
        ("POST", "/api/webhooks/{}"),
        ("POST", "/api/webhooks/{}/int_1"),
        ("POST", "/api/webhooks/github/{}"),
    ):
        answer = await gateway.client.request(
            method, route.format(odd_id), json={"name": "n"}, headers=admin_headers()
        )
        assert answer.status_code == 404, (method, route, answer.text)
        assert "code" in answer.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_a_json_body_under_another_content_type_gets_415_saying_so(
    gateway: RunningService, content_type: str | None
) -> None:
    workspace = "ws_media_" + uuid.uuid4().hex[:8]
    hook = await create_hook(gateway, workspace_id=workspace)
    headers = admin_headers() | ({"content-type": content_type} if content_type else {})
    body = b'{"workspace_id": "%s", "target_channel_id": "ch_media"}' % workspace.encode()
    created = await gateway.client.post("/api/incoming-webhooks", content=body, headers=headers)
    patched = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}", content=b'{"name": "renamed"}', headers=headers
    )
    for answer in (created, patched):
        assert answer.status_code == 415, answer.text
        error = answer.json()["error"]
        assert error["code"] == "unsupported_media_type"
        assert "content-type: application/json" in error["message"]
        assert (content_type or "no content-type") in error["message"]
    listed = await gateway.client.get(
        "/api/incoming-webhooks", params={"workspace_id": workspace}, headers=admin_headers()
    )
    assert [h["id"] for h in listed.json()["data"]] == [hook["id"]]
    assert listed.json()["data"][0]["name"] == hook["name"]

    # The webhook ingress takes curl's default form body as ever (a Slack-style `payload=`).
    sent = await gateway.client.post(
        ingress_path(hook),
        content=b"payload=%7B%22text%22%3A%20%22from%20a%20form%22%7D",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert sent.status_code == 200, sent.text


@pytest.mark.parametrize("field", ["workspace_id", "target_channel_id"])
async def test_ids_with_unseen_characters_are_refused_naming_the_field(
    gateway: RunningService, field: str
) -> None:
    """Once stored (201): the chat channel every post of the hook then went to."""
    body = {"workspace_id": "ws_ids", "target_channel_id": "ch_ids", field: "ch\u202e\x00"}
    answer = await gateway.client.post("/api/incoming-webhooks", json=body, headers=admin_headers())
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["error"]["details"]
    assert detail["loc"] == ["body", field]
    assert "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 2" in detail["message"]


async def test_only_the_headers_hookhub_reads_must_be_utf8_at_the_gateway_and_the_origin(
    gateway: RunningService, edge: RunningService, inbound: KafkaTap
) -> None:
    """An incoming-webhook post and a management request with `X-Foo: caf\\xe9` (legal HTTP)
    are answered as without it (through the origin, once a 400); an `Idempotency-Key` or
    `Authorization` that is not UTF-8 is a 400 naming it, at the service and through the
    origin alike (which leaves the value out and names it to the service)."""
    hook = await create_hook(gateway, workspace_id="ws_headers")
    admin = {b"authorization": admin_headers()["Authorization"].encode()}
    odd = {b"x-foo": b"caf\xe9"}
    for via in (gateway, edge):
        posted = await via.client.post(ingress_path(hook), json={"text": "hi"}, headers=odd)
        assert posted.status_code == 200, (via.base_url, posted.text)
        listed = await via.client.get("/api/incoming-webhooks", headers={**admin, **odd})
        assert listed.status_code == 200, (via.base_url, listed.text)
    assert len(await inbound.wait_for(in_channel(hook), count=2)) == 2
    # A request id that is not UTF-8 could find nothing in the logs: a new one is made.
    named = await gateway.client.get(
        "/api/incoming-webhooks", headers={**admin, b"x-request-id": b"r\xe9"}
    )
    assert named.status_code == 200 and re.fullmatch("[0-9a-f]{32}", named.headers["x-request-id"])
    for via in (gateway, edge):
        keyed = await via.client.post(
            ingress_path(hook), json={"text": "hi"}, headers={b"idempotency-key": b"k\xe9"}
        )
        assert keyed.status_code == 400, (via.base_url, keyed.text)
        assert keyed.json()["error"]["code"] == "bad_header"
        assert "idempotency-key header is not UTF-8" in keyed.json()["error"]["message"]
        token = admin[b"authorization"] + b"\xe9"
        refused = await via.client.get("/api/incoming-webhooks", headers={b"authorization": token})
        assert refused.status_code == 400, (via.base_url, refused.text)
        assert refused.json()["error"]["code"] == "bad_header"
        assert "authorization header is not UTF-8" in refused.json()["error"]["message"]


async def test_a_lone_surrogate_in_a_management_body_is_a_400_and_stores_nothing(
    gateway: RunningService,
) -> None:
    """Taken by FastAPI's parser, `"\\ud800"` reached MongoDB's encoder: a 500."""
    workspace = "ws_lone_" + uuid.uuid4().hex[:8]
    hook = await create_hook(gateway, workspace_id=workspace)
    headers = admin_headers() | {"content-type": "application/json"}
    created = await gateway.client.post(
        "/api/incoming-webhooks",
        content=b'{"workspace_id": "%s", "target_channel_id": "c", "name": "\\ud800"}'
        % workspace.encode(),
        headers=headers,
    )
    patched = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}",
        content=b'{"description": "a \\udc00 b"}',
        headers=headers,
    )
    for answer in (created, patched):
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "malformed_json"
        assert "lone UTF-16 surrogate" in answer.json()["error"]["message"]
    listed = await gateway.client.get(
        "/api/incoming-webhooks", params={"workspace_id": workspace}, headers=admin_headers()
    )
    assert [(h["id"], h["name"], h["description"]) for h in listed.json()["data"]] == [
        (hook["id"], hook["name"], None)
    ]
    # A pair is one character: taken.
    paired = await gateway.client.patch(
        f"/api/incoming-webhooks/{hook['id']}",
        content=b'{"description": "\\ud83d\\ude00"}',
        headers=headers,
    )
    assert paired.status_code == 200, paired.text
    assert paired.json()["description"] == "\U0001f600"


async def test_headers_over_the_limit_are_a_431_at_the_gateway_and_the_origin(
    gateway: RunningService, edge: RunningService
) -> None:
    """300 KB of headers were read, held and answered as any request. A head within the
    limit is served as ever."""
    hook = await create_hook(gateway, workspace_id="ws_big_head")
    for via in (gateway, edge):
        for path in ("/api/incoming-webhooks", ingress_path(hook)):
            big = await via.client.post(
                path, json={"text": "hi"}, headers={**admin_headers(), "x-big": "a" * 300_000}
            )
            assert big.status_code == 431, (via.base_url, path, big.text)
            assert big.json()["error"]["code"] == "headers_too_large"
            assert "32768 bytes" in big.json()["error"]["message"]
        served = await via.client.get(
            "/api/incoming-webhooks", headers={**admin_headers(), "x-fair": "a" * 20_000}
        )
        assert served.status_code == 200, (via.base_url, served.text)


async def handshake_status(service: RunningService, path: str) -> int:
    """The status a WebSocket handshake to `path` is answered with, as a browser sends it."""
    host, port = service.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_a_websocket_handshake_to_a_path_nothing_serves_is_a_404(
    gateway: RunningService, edge: RunningService
) -> None:
    """It was a 500: nothing of hookhub's public API speaks WebSocket."""
    for via in (gateway, edge):
        for path in ("/nowhere", "/api/incoming-webhooks", "/api/webhooks/github/int_1"):
            assert await handshake_status(via, path) == 404, (via.base_url, path)


async def test_the_openapi_document_tells_the_incoming_url_from_a_providers(
    gateway: RunningService,
) -> None:
    """`/api/webhooks/incoming/{token}` and `/api/webhooks/{provider}/{integration_id}`
    overlapped (a provider named `incoming`); the incoming URL is matched first, so the
    provider is documented as one of the catalog's, whose names do not include it."""
    document = (await gateway.client.get("/openapi.json")).json()
    for path in ("/api/webhooks/{provider}/{integration_id}", "/api/webhooks/{provider}"):
        for method, operation in document["paths"][path].items():
            [provider] = [p for p in operation["parameters"] if p["name"] == "provider"]
            names = provider["schema"]["enum"]
            assert "incoming" not in names and {"github", "stripe", "twilio"} <= set(names), (
                path,
                method,
            )
    answer = await gateway.client.post("/api/webhooks/incoming/hhwh_unknown", json={"text": "hi"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] != "unknown_provider"
