"""Each provider's OAuth: what hookhub asks for, the token answer's shape, the post-connect
step, the refresh's shape and revocation on disconnect, against fakes in their own shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from services.sandbox import FakeGitHub, FakeSlack
from services.sandbox.oauth_server import FakeAuthorizationServer
from shared.domain.oauth.provider import ProviderRefused
from shared.providers import OAUTH_PROVIDERS
from tests.oauth.flow import connect, expire_soon, keeper, start, stored, tokens
from tests.support import KafkaTap, RunningService, admin_headers


@dataclass(frozen=True)
class Expected:
    scope: str  # as it appears in the authorization URL
    pkce: bool
    params: dict[str, str]
    account: dict[str, Any]
    revocation: str


EXPECTED = {
    "slack": Expected(
        "channels:history,channels:read,chat:write,chat:write.customize,files:read,"
        "groups:history,groups:read,users:read,users:read.email",
        pkce=False,
        params={},
        account={
            "id": "T0TEAM",
            "name": "Acme",
            "url": "https://acme.slack.com/",
            "bot_user_id": "U0BOT",
        },
        revocation="revoked",
    ),
    "discord": Expected(
        "bot identify guilds",
        pkce=True,
        params={},
        account={"id": "G0GUILD", "name": "Guild of Tests", "user_id": "U0USER"},
        revocation="revoked",
    ),
    "github": Expected(
        "repo read:org read:user",
        pkce=True,
        params={},
        account={"id": "octocat", "name": "The Octocat", "github_id": 583231},
        revocation="revoked",
    ),
    "jira": Expected(
        "read:jira-work write:jira-work read:jira-user offline_access",
        pkce=False,
        params={"audience": "api.atlassian.com", "prompt": "consent"},
        account={
            "id": "1324a887-45db-1bf4-1e99-ef0ff456d421",
            "cloud_id": "1324a887-45db-1bf4-1e99-ef0ff456d421",
            "url": "https://acme.atlassian.net",
        },
        revocation="not_offered",
    ),
    "google": Expected(
        "openid email profile",
        pkce=True,
        params={"access_type": "offline", "prompt": "consent"},
        account={"id": "110248495921238986420", "name": "alice@example.com"},
        revocation="revoked",
    ),
}


@pytest.mark.parametrize("provider", sorted(EXPECTED))
async def test_connect_refresh_and_disconnect(
    provider: str,
    oauth: RunningService,
    providers: dict[str, FakeAuthorizationServer],
    integration_events: KafkaTap,
) -> None:
    server, expected = providers[provider], EXPECTED[provider]
    integration = await connect(oauth, provider, workspace_id=f"ws_{provider}")
    asked = server.authorize_requests[-1]
    assert asked["scope"] == expected.scope
    assert ("code_challenge" in asked) is expected.pkce
    assert {k: asked.get(k) for k in expected.params} == expected.params
    assert integration["status"] == "connected"
    assert {k: integration["account"].get(k) for k in expected.account} == expected.account
    first = await tokens(oauth, integration["id"])
    assert server.valid(first["access_token"]) and first["refresh_token"]

    # The refresh, in the provider's shape.
    await expire_soon(oauth, integration["id"], seconds_left=10)
    fresh = await keeper(oauth).access_token(integration["id"])
    assert fresh != first["access_token"] and server.valid(fresh)
    after = await tokens(oauth, integration["id"])
    if server.rotate:
        assert after["refresh_token"] not in (first["refresh_token"], "")
    else:  # Google answers a refresh without a refresh token: the old one is kept
        assert server.token_requests[-1]["grant_type"] == "refresh_token"
        assert after["refresh_token"] == first["refresh_token"]
    doc = await stored(oauth, integration["id"])
    lifetime = (doc["oauth"]["expires_at"] - doc["oauth"]["obtained_at"]).total_seconds()
    assert round(lifetime) == 3600
    assert round((doc["oauth"]["expires_at"] - doc["oauth"]["refresh_at"]).total_seconds()) == 600

    # Disconnect: revoked where the provider offers it, tokens forgotten, event published.
    answer = await oauth.client.post(
        f"/api/integrations/{integration['id']}/disconnect", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "disconnected"
    assert answer.json()["revocation"] == expected.revocation
    assert answer.json()["oauth"] is None
    assert await tokens(oauth, integration["id"]) == {}
    assert server.valid(fresh) is (expected.revocation == "not_offered")
    events = await integration_events.wait_for(
        lambda v: (
            v["type"] == "integration.disconnected" and v["integration_id"] == integration["id"]
        )
    )
    assert events and events[0]["data"]["revocation"] == expected.revocation


async def test_slack_user_token_is_kept_beside_the_bot_token(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    server = providers["slack"]
    assert isinstance(server, FakeSlack)
    server.user_token = "xoxp-user-token-for-tests"
    try:
        integration = await connect(oauth, "slack", workspace_id="ws_slack_user")
    finally:
        server.user_token = None
    assert integration["oauth"]["tokens_configured"] == [
        "access_token",
        "refresh_token",
        "user_access_token",
    ]
    held = await tokens(oauth, integration["id"])
    assert held["access_token"].startswith("xoxe.xoxb-")
    assert held["user_access_token"] == "xoxp-user-token-for-tests"
    await oauth.client.post(
        f"/api/integrations/{integration['id']}/disconnect", headers=admin_headers()
    )
    assert server.revoked[-2:] == [held["access_token"], "xoxp-user-token-for-tests"]


def test_slack_user_only_install_and_an_answer_without_a_token() -> None:
    slack = OAUTH_PROVIDERS["slack"]
    tokens = slack.parse_token(
        {
            "ok": True,
            "app_id": "A1",
            "team": {"id": "T1", "name": "Acme"},
            "authed_user": {
                "id": "U1",
                "scope": "search:read",
                "access_token": "xoxp-1",
                "token_type": "user",
                "refresh_token": "xoxe-1",
                "expires_in": 43200,
            },
        }
    )
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == (
        "xoxp-1",
        "xoxe-1",
        43200,
    )
    assert tokens.facts["team"] == {"id": "T1", "name": "Acme"}
    with pytest.raises(ProviderRefused):
        slack.parse_token({"ok": True, "authed_user": {"id": "U1"}})


async def test_github_form_encoded_token_answers(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    server = providers["github"]
    assert isinstance(server, FakeGitHub)
    server.always_form = True
    try:
        integration = await connect(oauth, "github", workspace_id="ws_github_form")
    finally:
        server.always_form = False
    assert integration["status"] == "connected"
    assert "application/json" in server.accept_headers[-1]  # asked for JSON all the same
    held = await tokens(oauth, integration["id"])
    assert held["access_token"].startswith("ghu_") and server.valid(held["access_token"])

    # And an error answered form-encoded is understood as the refusal it is.
    github = OAUTH_PROVIDERS["github"]
    request = httpx.Request("POST", "https://github.com/login/oauth/access_token")
    fixed = github.fix_token_response(
        httpx.Response(
            200,
            content=b"error=bad_verification_code&error_description=The+code+is+wrong",
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
            request=request,
        )
    )
    assert fixed.json() == {
        "error": "bad_verification_code",
        "error_description": "The code is wrong",
    }


async def test_authorization_urls_follow_the_overrides(oauth: RunningService) -> None:
    started = await start(oauth, "jira", scopes=["read:jira-work", "offline_access"])
    url = httpx.URL(started["authorization_url"])
    params = dict(parse_qsl(url.query.decode()))
    assert params["scope"] == "read:jira-work offline_access"
    assert params["response_type"] == "code" and params["client_id"].startswith("hookhub-")
    assert url.path == "/authorize" and url.host == "127.0.0.1"
