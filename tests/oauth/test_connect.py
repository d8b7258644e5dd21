"""Connect and callback against a strict authorization server: PKCE, single-use state and
codes, rotating refresh tokens that die on reuse, and what the user is told when it fails."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from services.sandbox.oauth_server import REDIRECT_URI, FakeAuthorizationServer
from shared.domain.oauth.tokens import NotConnected
from shared.kernel.crypto import fingerprint
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from tests.oauth.flow import connect, consent, db_of, expire_soon, keeper, start, stored, tokens
from tests.spans import Caller, ids, traceparent_of
from tests.support import KafkaTap, RunningService, admin_headers


def _event(tap: KafkaTap, kind: str, integration_id: str) -> Any:
    return lambda v: v["type"] == f"integration.{kind}" and v["integration_id"] == integration_id


async def test_the_whole_flow_against_a_strict_server(
    oauth: RunningService,
    providers: dict[str, FakeAuthorizationServer],
    integration_events: KafkaTap,
) -> None:
    server = providers["discord"]  # PKCE required, refresh tokens rotate
    started = await start(oauth, "discord")
    assert started["redirect_uri"] == "http://hookhub.test/api/auth/oauth/callback"
    query = await consent(started["authorization_url"])
    asked = server.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["redirect_uri"] == REDIRECT_URI and asked["state"] == started["state"]

    answer = await oauth.client.get("/api/auth/oauth/callback", params=query)  # no admin token
    assert answer.status_code == 200, answer.text
    integration_id = answer.json()["integration_id"]
    assert answer.json()["status"] == "connected"
    assert answer.json()["account"]["id"] == "G0GUILD"
    # The verifier went to the token endpoint (the server checked it against the challenge).
    assert server.token_requests[-1]["code_verifier"]
    assert server.code_exchanges >= 1

    # The same callback again: the state was single-use.
    replay = await oauth.client.get("/api/auth/oauth/callback", params=query)
    assert replay.status_code == 400
    assert replay.json()["error"]["code"] == "invalid_state"
    # And the code itself is single-use at the server: spending it again is refused.
    async with httpx.AsyncClient(verify=tls()) as client:
        again = await client.post(
            server.base_url + server.token_path,
            data={
                "grant_type": "authorization_code",
                "code": query["code"],
                "redirect_uri": REDIRECT_URI,
            },
            auth=(server.client.client_id, server.client.client_secret),
        )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert server.code_reuse == 1

    shown = (
        await oauth.client.get(f"/api/integrations/{integration_id}", headers=admin_headers())
    ).json()
    held = await tokens(oauth, integration_id)
    assert server.valid(held["access_token"])
    assert held["access_token"] not in str(shown) and held["refresh_token"] not in str(shown)
    assert shown["oauth"]["tokens_configured"] == ["access_token", "refresh_token"]
    assert shown["oauth"]["scopes"] == ["bot", "identify", "guilds"]
    connected = await integration_events.wait_for(
        _event(integration_events, "connected", integration_id)
    )
    assert connected and connected[0]["data"]["account"]["id"] == "G0GUILD"

    # Refresh: the token rotates, the old refresh token is spent.
    await expire_soon(oauth, integration_id, seconds_left=5)
    fresh = await keeper(oauth).access_token(integration_id)
    assert fresh != held["access_token"] and server.valid(fresh)
    rotated = await tokens(oauth, integration_id)
    assert rotated["refresh_token"] != held["refresh_token"]
    assert server.refresh_grants == 1 and server.refresh_reuse == 0
    assert await keeper(oauth).access_token(integration_id) == fresh  # still valid: no refresh
    assert server.refresh_grants == 1

    # Someone replays the spent refresh token: the server kills the whole grant...
    async with httpx.AsyncClient(verify=tls()) as client:
        stolen = await client.post(
            server.base_url + server.token_path,
            data={"grant_type": "refresh_token", "refresh_token": held["refresh_token"]},
            auth=(server.client.client_id, server.client.client_secret),
        )
    assert stolen.status_code == 400 and server.refresh_reuse == 1
    assert not server.valid(fresh)
    # ...so the next 401 makes hookhub refresh, which is refused for good: status error.
    try:
        await keeper(oauth).access_token(integration_id, rejected=fresh)
    except NotConnected as exc:
        assert "reconnect" in exc.message
    else:
        raise AssertionError("a dead grant must not yield a token")
    status = (
        await oauth.client.get(
            f"/api/integrations/{integration_id}/status", headers=admin_headers()
        )
    ).json()
    assert status["status"] == "error" and "invalid_grant" in status["last_error"]
    errors = await integration_events.wait_for(_event(integration_events, "error", integration_id))
    assert errors and errors[0]["data"]["reason"] == "invalid_grant"


async def test_forged_expired_and_missing_states_are_refused(oauth: RunningService) -> None:
    forged = await oauth.client.get(
        "/api/auth/oauth/callback", params={"code": "x", "state": "forged"}
    )
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "invalid_state"
    missing = await oauth.client.get("/api/auth/oauth/callback", params={"code": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_state"

    started = await start(oauth, "github")
    query = await consent(started["authorization_url"])
    await db_of(oauth).oauth_states.update_one(
        {"_id": fingerprint(started["state"])},
        {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}},
    )
    expired = await oauth.client.get("/api/auth/oauth/callback", params=query)
    assert expired.status_code == 400 and expired.json()["error"]["code"] == "state_expired"
    assert "10 minutes" in expired.json()["error"]["message"]
    # State is stored by fingerprint only, with a sealed PKCE verifier.
    started = await start(oauth, "github")
    record = await db_of(oauth).oauth_states.find_one({"_id": fingerprint(started["state"])})
    assert (
        record is not None
        and record["provider"] == "github"
        and record["workspace_id"] == "ws_oauth"
    )
    assert started["state"] not in str(record) and record["code_verifier"].startswith("gAAAA")
    assert record["expires_at"] - record["created_at"] == timedelta(minutes=10)


async def test_access_denied_creates_nothing_and_says_why(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    async def integrations() -> int:
        return await db_of(oauth).integrations.count_documents({"workspace_id": "ws_denied"})

    server = providers["github"]
    server.deny = True
    try:
        started = await start(oauth, "github", workspace_id="ws_denied")
        denied = await oauth.client.get(
            "/api/auth/oauth/callback", params=await consent(started["authorization_url"])
        )
        assert denied.status_code == 400
        assert denied.json()["error"]["code"] == "access_denied"
        assert "no integration was created" in denied.json()["error"]["message"]

        started = await start(
            oauth,
            "github",
            workspace_id="ws_denied",
            return_to="https://chat.example/settings?tab=apps",
        )
        redirected = await oauth.client.get(
            "/api/auth/oauth/callback", params=await consent(started["authorization_url"])
        )
    finally:
        server.deny = False
    assert redirected.status_code == 302
    target = urlsplit(redirected.headers["location"])
    assert (target.netloc, target.path) == ("chat.example", "/settings")
    assert dict(parse_qsl(target.query))["error"] == "access_denied"
    assert dict(parse_qsl(target.query))["tab"] == "apps"
    assert await integrations() == 0


async def test_return_to_reconnect_and_an_existing_integration(
    oauth: RunningService, integration_events: KafkaTap
) -> None:
    started = await start(oauth, "github", return_to="https://chat.example/done")
    redirected = await oauth.client.get(
        "/api/auth/oauth/callback", params=await consent(started["authorization_url"])
    )
    assert redirected.status_code == 302
    back = dict(parse_qsl(urlsplit(redirected.headers["location"]).query))
    assert back["status"] == "connected" and back["provider"] == "github"
    first = back["integration_id"]
    assert (await stored(oauth, first))["account"]["id"] == "octocat"

    # Connecting the same account again updates that integration instead of adding one.
    again = await connect(oauth, "github")
    assert again["id"] == first

    # An OAuth-only integration created pending is connected in place.
    pending = await oauth.client.post(
        "/api/integrations",
        json={"provider": "google", "workspace_id": "ws_oauth", "name": "Mail"},
        headers=admin_headers(),
    )
    assert pending.json()["status"] == "pending"
    joined = await connect(oauth, "google", integration_id=pending.json()["id"])
    assert joined["id"] == pending.json()["id"] and joined["status"] == "connected"
    assert joined["name"] == "Mail" and joined["account"]["id"] == "110248495921238986420"
    mismatch = await oauth.client.post(
        "/api/auth/oauth/connect",
        json={"provider": "slack", "workspace_id": "ws_oauth", "integration_id": first},
        headers=admin_headers(),
    )
    assert (
        mismatch.status_code == 422 and mismatch.json()["error"]["code"] == "integration_mismatch"
    )


async def test_connect_needs_the_admin_token_and_an_oauth_provider(oauth: RunningService) -> None:
    anonymous = await oauth.client.post(
        "/api/auth/oauth/connect", json={"provider": "github", "workspace_id": "ws"}
    )
    assert anonymous.status_code == 401
    telegram = await oauth.client.post(
        "/api/auth/oauth/connect",
        json={"provider": "telegram", "workspace_id": "ws"},
        headers=admin_headers(),
    )
    assert telegram.status_code == 422
    bad_scope = await oauth.client.post(
        "/api/auth/oauth/connect",
        json={"provider": "github", "workspace_id": "ws", "scopes": ["repo user"]},
        headers=admin_headers(),
    )
    assert bad_scope.status_code == 422


async def test_the_provider_app_names_the_scopes_a_connect_asks_for(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    """What the console shows as a provider's default scopes is what a connect without
    scopes asks the provider for."""
    listed = await oauth.client.get("/api/providers", headers=admin_headers())
    defaults = {app["provider"]: app["default_scopes"] for app in listed.json()["data"]}
    assert defaults["telegram"] == []
    for provider in ("discord", "github"):
        started = await start(oauth, provider)
        asked = dict(parse_qsl(urlsplit(started["authorization_url"]).query))
        assert asked["scope"].split() == defaults[provider], provider


async def test_the_connected_event_goes_on_in_the_callbacks_trace(
    oauth: RunningService, integration_events: KafkaTap
) -> None:
    """SPEC §18 with no exporter: `integration.connected` carries the trace of the
    callback's request."""
    started = await start(oauth, "github", workspace_id="ws_traced")
    caller = Caller.new()
    answer = await oauth.client.get(
        "/api/auth/oauth/callback",
        params=await consent(started["authorization_url"]),
        headers={"traceparent": caller.traceparent},
    )
    assert answer.status_code == 200, answer.text
    integration_id = answer.json()["integration_id"]
    [event] = await integration_events.wait_for(
        _event(integration_events, "connected", integration_id)
    )
    [record] = [r for r in integration_events.records if json.loads(r.value)["id"] == event["id"]]
    traceparent = traceparent_of(record)
    assert traceparent is not None and ids(traceparent)[0] == caller.trace_id
