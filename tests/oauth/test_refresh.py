"""Refresh: race-free across processes, ahead of expiry by the loop, backing off when the
provider is away, and the margin capped to half a token's lifetime."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind

from services.oauth.app import definition
from services.sandbox.oauth_server import FakeAuthorizationServer
from shared.domain.oauth.provider import ProviderUnreachable, TokenSet
from shared.domain.oauth.tokens import token_state
from shared.domain.platform import create_app
from shared.kernel.crypto import SecretBox
from shared.kernel.ids import utcnow
from shared.kernel.settings import ServiceSettings
from tests.oauth.flow import connect, expire_soon, keeper, stored, tokens
from tests.spans import hex_ids, ids, recorded, traceparent_of
from tests.support import KafkaTap, RunningService, serve

ROOT = Path(__file__).parents[2]


def _environment(settings: ServiceSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        env[f"HOOKHUB_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


async def test_twenty_concurrent_requests_from_two_processes_refresh_once(
    oauth: RunningService,
    oauth_settings: ServiceSettings,
    providers: dict[str, FakeAuthorizationServer],
    integration_events: KafkaTap,
) -> None:
    server = providers["discord"]  # refresh tokens rotate; a reused one kills the grant
    integration = await connect(oauth, "discord", workspace_id="ws_race")
    before = await tokens(oauth, integration["id"])
    await expire_soon(oauth, integration["id"], seconds_left=20)
    grants_before, reuse_before = server.refresh_grants, server.refresh_reuse
    server.delay = 0.5  # every caller arrives while the one refresh is in flight

    env = _environment(oauth_settings)
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.oauth.refresher",
            integration["id"],
            "10",
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line.strip() == b"ready", line
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        outputs = [await asyncio.wait_for(p.communicate(), 60) for p in processes]
    finally:
        server.delay = 0.0
        for process in processes:
            if process.returncode is None:
                process.kill()
    assert [p.returncode for p in processes] == [0, 0]
    answers = [token for out, _ in outputs for token in json.loads(out.decode().splitlines()[-1])]

    assert len(answers) == 20
    assert server.refresh_grants - grants_before == 1, "exactly one refresh"
    assert server.refresh_reuse == reuse_before, "no refresh token spent twice"
    after = await tokens(oauth, integration["id"])
    assert set(answers) == {after["access_token"]}, answers
    assert after["access_token"] != before["access_token"] and server.valid(after["access_token"])
    assert after["refresh_token"] != before["refresh_token"]
    doc = await stored(oauth, integration["id"])
    assert doc["status"] == "connected" and doc["oauth"]["lease_owner"] is None
    refreshed = await integration_events.wait_for(
        lambda v: v["type"] == "integration.refreshed" and v["integration_id"] == integration["id"],
        count=2,
        timeout=2,
    )
    assert len(refreshed) == 1


async def test_the_loop_refreshes_ahead_of_expiry(
    oauth_settings: ServiceSettings,
    providers: dict[str, FakeAuthorizationServer],
    oauth: RunningService,
    integration_events: KafkaTap,
) -> None:
    integration = await connect(oauth, "jira", workspace_id="ws_loop")
    before = await tokens(oauth, integration["id"])
    # Still valid for five minutes, but inside the ten-minute margin: due.
    await expire_soon(oauth, integration["id"], seconds_left=300)
    assert await keeper(oauth).access_token(integration["id"]) == before["access_token"]
    fast = oauth_settings.model_copy(update={"oauth_poll_seconds": 0.2})
    async with serve(create_app(definition(), fast)):
        refreshed = await integration_events.wait_for(
            lambda v: (
                v["type"] == "integration.refreshed" and v["integration_id"] == integration["id"]
            )
        )
    assert refreshed
    after = await tokens(oauth, integration["id"])
    assert after["access_token"] != before["access_token"]
    assert providers["jira"].valid(after["access_token"])


async def test_a_provider_away_backs_off_and_keeps_the_current_token(
    oauth: RunningService, providers: dict[str, FakeAuthorizationServer]
) -> None:
    server = providers["github"]
    integration = await connect(oauth, "github", workspace_id="ws_backoff")
    before = await tokens(oauth, integration["id"])

    # 30 s left, within a minute of expiry: callers want a refresh, the provider is away.
    await expire_soon(oauth, integration["id"], seconds_left=30)
    server.unavailable = 1
    assert await keeper(oauth).access_token(integration["id"]) == before["access_token"]
    doc = await stored(oauth, integration["id"])
    assert doc["status"] == "connected"
    assert doc["oauth"]["refresh_failures"] == 1
    assert "503" in doc["oauth"]["last_refresh_error"]
    assert doc["oauth"]["refresh_at"] > utcnow() + timedelta(seconds=20)  # backing off
    assert server.unavailable == 0

    # Expired and backing off: no new attempt, a clear 503.
    await stored(oauth, integration["id"])
    await oauth.app.state.runtime.db.integrations.update_one(  # type: ignore[attr-defined]
        {"_id": integration["id"]}, {"$set": {"oauth.expires_at": utcnow() - timedelta(seconds=1)}}
    )
    requests = len(server.token_requests)
    with pytest.raises(ProviderUnreachable, match="could not be refreshed"):
        await keeper(oauth).access_token(integration["id"])
    assert len(server.token_requests) == requests

    # Once due again, the refresh goes through and the failures are forgotten.
    await expire_soon(oauth, integration["id"], seconds_left=30)
    fresh = await keeper(oauth).access_token(integration["id"])
    assert fresh != before["access_token"] and server.valid(fresh)
    doc = await stored(oauth, integration["id"])
    assert doc["oauth"]["refresh_failures"] == 0 and doc["oauth"]["last_refresh_error"] is None


def test_margin_is_ten_minutes_capped_to_half_the_lifetime() -> None:
    box = SecretBox([__import__("cryptography.fernet").fernet.Fernet.generate_key().decode()])
    now = utcnow()
    secrets = {"access_token": "a", "refresh_token": "r"}
    sealed, hour = token_state(secrets, TokenSet("a", "r", expires_in=3600), box, now, 600)
    assert hour["expires_at"] - hour["refresh_at"] == timedelta(seconds=600)
    assert "a" not in sealed.values() and box.decrypt(sealed["refresh_token"]) == "r"
    _, short = token_state(secrets, TokenSet("a", "r", expires_in=300), box, now, 600)
    assert short["expires_at"] - short["refresh_at"] == timedelta(seconds=150)
    _, no_refresh = token_state({"access_token": "a"}, TokenSet("a", expires_in=300), box, now, 600)
    assert no_refresh["refresh_at"] is None and no_refresh["expires_at"] is not None
    _, forever = token_state(secrets, TokenSet("a", "r"), box, now, 600)
    assert forever["expires_at"] is None and forever["refresh_at"] is None


async def test_a_refresh_by_the_loop_is_a_trace_of_its_own(
    oauth: RunningService,
    providers: dict[str, FakeAuthorizationServer],
    integration_events: KafkaTap,
) -> None:
    """Spans exported (recorded here): a refresh ahead of expiry is a trace of its own, the
    token endpoint's call (Authlib's client, which the httpx instrumentation does not see)
    and the `integration.refreshed` event under its span."""
    integration = await connect(oauth, "jira", workspace_id="ws_traced")
    await expire_soon(oauth, integration["id"], seconds_left=300)
    with recorded() as spans:
        await keeper(oauth).refresh_if_due(integration["id"])
        [refresh] = [s for s in spans.exporter.get_finished_spans() if s.name == "oauth refresh"]
        trace_id, span_id, parent_id = hex_ids(refresh)
        found = spans.of_trace(trace_id)
    assert parent_id is None
    assert dict(refresh.attributes or {}) == {
        "hookhub.provider": "jira",
        "hookhub.integration_id": integration["id"],
        "hookhub.workspace_id": "ws_traced",
    }
    [call] = [s for s in found if s.kind is SpanKind.CLIENT]
    assert hex_ids(call)[2] == span_id and call.name == "POST"
    token_url = providers["jira"].base_url + providers["jira"].token_path
    assert (call.attributes or {})["url.full"] == token_url
    [event] = await integration_events.wait_for(
        lambda v: v["type"] == "integration.refreshed" and v["integration_id"] == integration["id"]
    )
    [record] = [r for r in integration_events.records if json.loads(r.value)["id"] == event["id"]]
    traceparent = traceparent_of(record)
    assert traceparent is not None and ids(traceparent)[0] == trace_id
