"""Integration changes made through the oauth service, as the gateway applies them: a new
webhook secret at once (not at the next cache refresh), a disconnection named as such.

The gateway here refreshes its caches once a minute, so nothing in these tests can be the
periodic refresh."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.gateway.app import definition as gateway_definition
from services.oauth.app import definition as oauth_definition
from shared.domain.platform import create_app
from shared.kernel.settings import GatewaySettings, ServiceSettings
from tests.gateway import signing
from tests.infra import Infra
from tests.support import RunningService, admin_headers, make_settings, new_namespace, serve


@pytest.fixture(scope="module")
def settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> GatewaySettings:
    return make_settings(
        GatewaySettings,
        infra,
        new_namespace(),
        tmp_path_factory.mktemp("gateway"),
        cache_refresh_seconds=60,
    )


@pytest.fixture(scope="module")
async def services(
    settings: GatewaySettings,
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    oauth_settings = ServiceSettings.model_validate(settings.model_dump())
    async with (
        serve(create_app(gateway_definition(), settings)) as gateway,
        serve(create_app(oauth_definition(), oauth_settings)) as oauth,
    ):
        yield gateway, oauth


async def _github(oauth: RunningService, secret: str, **fields: Any) -> dict[str, Any]:
    answer = await oauth.client.post(
        "/api/integrations",
        json={
            "provider": "github",
            "workspace_id": "ws_" + uuid.uuid4().hex[:6],
            "settings": {"webhook_secret": secret},
            **fields,
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def _push(gateway: RunningService, doc: dict[str, Any] | None, secret: str) -> Any:
    """A push to the integration's URL, or (`doc` None) to the app-level URL."""
    signed = signing.github(secret, "push", json.dumps({"ref": "refs/heads/main"}).encode())
    path = "/api/webhooks/github" + (f"/{doc['id']}" if doc else "")
    return await gateway.client.post(path, content=signed.body, headers=signed.headers)


async def test_a_patched_webhook_secret_applies_at_once(
    services: tuple[RunningService, RunningService],
) -> None:
    gateway, oauth = services
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    doc = await _github(oauth, old)
    assert (await _push(gateway, doc, old)).status_code == 200  # cached by the gateway now

    patched = await oauth.client.patch(
        f"/api/integrations/{doc['id']}",
        json={"settings": {"webhook_secret": new}},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    answer = await _push(gateway, doc, new)
    assert answer.status_code == 200, answer.text
    refused = await _push(gateway, doc, old)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_signature"
    stored = await oauth.client.get(f"/api/integrations/{doc['id']}", headers=admin_headers())
    assert stored.json()["error_count"] <= 1  # the old secret's one refusal, nothing else


async def test_a_disconnected_integration_is_refused_as_disconnected(
    services: tuple[RunningService, RunningService],
) -> None:
    gateway, oauth = services
    secret = "s-" + uuid.uuid4().hex
    doc = await _github(oauth, secret)
    disconnected = await oauth.client.post(
        f"/api/integrations/{doc['id']}/disconnect", headers=admin_headers()
    )
    assert disconnected.status_code == 200, disconnected.text
    answer = await _push(gateway, doc, secret)
    assert answer.status_code == 403
    error = answer.json()["error"]
    assert error["code"] == "integration_disconnected"
    assert "disconnected" in error["message"] and "disabled" not in error["message"]


async def test_a_patched_secret_of_a_default_integration_applies_at_once_at_the_app_url(
    services: tuple[RunningService, RunningService],
) -> None:
    gateway, oauth = services
    old, new = "old-" + uuid.uuid4().hex, "new-" + uuid.uuid4().hex
    doc = await _github(oauth, old, is_default=True)
    assert (await _push(gateway, doc, old)).status_code == 200  # cached by the gateway now
    assert (await _push(gateway, None, old)).status_code == 200
    patched = await oauth.client.patch(
        f"/api/integrations/{doc['id']}",
        json={"settings": {"webhook_secret": new}},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    answer = await _push(gateway, None, new)
    assert answer.status_code == 200, answer.text
