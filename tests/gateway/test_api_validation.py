"""What the incoming-webhook API and the webhook ingress refuse: 4xx, never a 500.

A PATCH with `null` for a field that cannot be empty was stored, and from then on every read
of that hook, and every list of its workspace, answered 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.gateway.test_incoming_webhooks import create_hook
from tests.support import RunningService, admin_headers


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
