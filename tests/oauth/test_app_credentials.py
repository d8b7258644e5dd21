"""hookhub's own app at a provider, configured with a client id OAuth cannot carry: a 422
naming the setting, and nothing sent to the provider (it answered `provider_refused`
"answered something other than a token", though no request had left)."""

from __future__ import annotations

import pytest

from services.sandbox.oauth_server import FakeAuthorizationServer
from shared.kernel.settings import ServiceSettings
from tests.oauth.flow import consent
from tests.support import RunningService, admin_headers

BAD_ID = "Iv1.caf\u00e9\u4e2d"


@pytest.fixture(scope="module")
def oauth_settings(oauth_settings: ServiceSettings) -> ServiceSettings:
    """The conftest's settings with a GitHub client id holding a non-ASCII character."""
    return oauth_settings.model_copy(update={"github_client_id": BAD_ID})


async def _consented_with_a_good_app(
    oauth: RunningService, server: FakeAuthorizationServer
) -> dict[str, str]:
    """A connect started with a good app set through the API (it wins over the
    environment's bad one) and consented to: the callback's query."""
    put = await oauth.client.put(
        "/api/providers/github",
        json={"client_id": server.client.client_id, "client_secret": server.client.client_secret},
        headers=admin_headers(),
    )
    assert put.status_code == 200, put.text
    started = await oauth.client.post(
        "/api/auth/oauth/connect",
        json={"provider": "github", "workspace_id": "ws_bad_app"},
        headers=admin_headers(),
    )
    assert started.status_code == 200, started.text
    return await consent(started.json()["authorization_url"])


async def test_connect_is_refused_with_the_setting_named(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    answer = await oauth.client.post(
        "/api/auth/oauth/connect",
        json={"provider": "github", "workspace_id": "ws_bad_app"},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "provider_app_invalid"
    assert "HOOKHUB_GITHUB_CLIENT_ID" in error["message"]
    assert "U+00E9" in error["message"]
    assert providers["github"].token_requests == []


async def test_a_callback_sends_nothing_and_says_why(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    server = providers["github"]
    # Started with a good app (the API's wins over the environment) ...
    query = await _consented_with_a_good_app(oauth, server)
    # ... finished with the environment's, once the API's is removed.
    removed = await oauth.client.delete("/api/providers/github", headers=admin_headers())
    assert removed.status_code == 204, removed.text
    sent_before = len(server.token_requests)
    answer = await oauth.client.get("/api/auth/oauth/callback", params=query)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "provider_app_invalid"
    assert "HOOKHUB_GITHUB_CLIENT_ID" in error["message"]
    assert len(server.token_requests) == sent_before


async def test_disconnecting_with_such_an_app_answers_and_leaves_the_tokens_unsent(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    query = await _consented_with_a_good_app(oauth, providers["github"])
    connected = await oauth.client.get("/api/auth/oauth/callback", params=query)
    assert connected.status_code == 200, connected.text
    integration_id = connected.json()["integration_id"]
    await oauth.client.delete("/api/providers/github", headers=admin_headers())

    # Before, the revocation went out with that id (in its URL and HTTP Basic header), the
    # provider answered 404 for an app it does not know, and that counted as "revoked".
    answer = await oauth.client.post(
        f"/api/integrations/{integration_id}/disconnect", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "disconnected"
    assert answer.json()["revocation"] != "revoked"
