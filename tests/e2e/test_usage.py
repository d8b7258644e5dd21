"""Usage per workspace (SPEC §14) counted against what was made: integrations and outgoing
webhooks created (and one of each deleted), GitHub webhooks accepted and delivered to two
endpoints, incoming-webhook posts, messages synced with Slack both ways, an export
imported (after a dry run, which counts nothing); then `GET /api/usage` says exactly
those numbers. And who may ask: the admin for any workspace and the ranking, a key for its
own workspace only.

The services run in-process behind the edge (tests/e2e/origin.py), so that the test can
make each one write its counts now (`UsageCounters.flush`) instead of waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sandbox.slack import FakeSlack
from services.sandbox.telegram import FakeTelegram
from shared.domain.usage import UsageCounters
from shared.kernel.ids import isoformat, utcnow
from tests.e2e.origin import Origin, running_origin
from tests.gateway import signing
from tests.infra import Infra
from tests.slack_export import ExportBuilder, message
from tests.support import admin_headers, serve, until
from tests.webhook_sink import WebhookSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

GITHUB_SECRET = "usage-github-webhook-secret"
GITHUB_EVENTS = 4  # each delivered to both endpoints
ENDPOINTS = 2
INCOMING_POSTS = 3
CHAT_MESSAGES = 3  # the chat's messages sync posts in Slack (each echoed back by Slack)
SLACK_MESSAGES = 2  # Slack users' messages sync brings into the chat
IMPORTED = 7


@dataclass
class Hub:
    origin: Origin
    sink: WebhookSink
    sink_url: str

    @property
    def api(self) -> httpx.AsyncClient:
        return self.origin.edge.client

    @property
    def slack(self) -> FakeSlack:
        slack = self.origin.fakes["slack"]
        assert isinstance(slack, FakeSlack)
        return slack

    async def flush(self) -> None:
        """Every service's counts so far are in MongoDB."""
        for app in self.origin.apps.values():
            counters = getattr(app.state, "usage", None)
            if isinstance(counters, UsageCounters):
                await counters.flush()


@pytest.fixture(scope="module")
async def hub(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, telegram_api: tuple[FakeTelegram, str]
) -> AsyncIterator[Hub]:
    sink = WebhookSink()
    overrides: dict[str, dict[str, Any]] = {
        "sync": {"cache_refresh_seconds": 0.2, "sync_pace_factor": 0.05},
    }
    async with (
        serve(sink.app(), probe="/healthz") as receiver,
        running_origin(
            infra, tmp_path_factory.mktemp("usage"), telegram_api[1], overrides=overrides
        ) as origin,
    ):
        yield Hub(origin, sink, receiver.base_url)


def _workspace() -> str:
    return f"ws_usage_{uuid.uuid4().hex[:8]}"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _ok(answer: Any, status: int = 200) -> Any:
    response = await answer
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def _usage(hub: Hub, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return await _ok(hub.api.get("/api/usage", params=params, headers=headers or admin_headers()))


async def _counted(hub: Hub, workspace: str, expected: dict[str, Any]) -> dict[str, Any]:
    """The workspace's usage once it says `expected` (every service's counts written each
    time it is asked): counts still on their way are waited for, up to a deadline, and
    a count that is wrong fails with what was said last."""
    deadline = time.monotonic() + 30
    while True:
        await hub.flush()
        answer = await _usage(hub, workspace_id=workspace)
        [found] = answer["data"]
        said = {name: found[name] for name in expected}
        if said == expected:
            return dict(answer)
        assert time.monotonic() < deadline, f"usage says {said}, not {expected}"
        await asyncio.sleep(0.2)


async def _integration(hub: Hub, workspace: str, provider: str, settings: dict[str, str]) -> Any:
    return await _ok(
        hub.api.post(
            "/api/integrations",
            json={"provider": provider, "workspace_id": workspace, "settings": settings},
            headers=admin_headers(),
        ),
        201,
    )


async def _endpoint(hub: Hub, workspace: str, path: str) -> Any:
    hub.sink.on(path, 200)
    return await _ok(
        hub.api.post(
            "/api/outgoing-webhooks",
            json={"workspace_id": workspace, "url": hub.sink_url + path, "events": ["github.*"]},
            headers=admin_headers(),
        ),
        201,
    )


async def _incoming_posts(hub: Hub, workspace: str, posts: int) -> None:
    """A new incoming webhook of the workspace, and `posts` messages posted to it."""
    hook = await _ok(
        hub.api.post(
            "/api/incoming-webhooks",
            json={"workspace_id": workspace, "target_channel_id": "ch_hooked"},
            headers=admin_headers(),
        ),
        201,
    )
    path = "/" + hook["url"].split("/", 3)[3]  # on the origin, not the public URL
    for n in range(posts):
        answer = await hub.api.post(path, json={"text": f"build {n} passed"})
        assert answer.status_code == 200, answer.text


def _chat_message(workspace: str, channel_id: str, n: int) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "message.created",
        "workspace_id": workspace,
        "occurred_at": isoformat(utcnow()),
        "actor": {"id": "u_ada", "name": "Ada"},
        "data": {"channel_id": channel_id, "message_id": f"m_usage_{n}", "text": f"chat {n}"},
    }


async def _import(hub: Hub, workspace: str, export: Path, *, dry_run: bool) -> None:
    job = await _ok(
        hub.api.post(
            "/api/imports",
            data={
                "workspace_id": workspace,
                "channel_map": json.dumps({"general": "ch_imported"}),
                "dry_run": "true" if dry_run else "false",
            },
            files={"file": ("export.zip", export.read_bytes(), "application/zip")},
            headers=admin_headers(),
        ),
        202,
    )

    async def finished() -> Any:
        found = await _ok(hub.api.get(f"/api/imports/{job['id']}", headers=admin_headers()))
        return found if found["status"] in ("completed", "failed") else None

    done = await until(finished, timeout=60, what="the import's end")
    assert done["status"] == "completed", done
    assert done["progress"]["messages_imported"] == IMPORTED


async def test_usage_counts_what_was_made(hub: Hub, tmp_path: Path) -> None:
    ws = _workspace()
    api, admin, slack = hub.api, admin_headers(), hub.slack

    # Integrations: GitHub and Slack kept, a Jira one deleted (not counted).
    github = await _integration(hub, ws, "github", {"webhook_secret": GITHUB_SECRET})
    slack_integration = await _integration(
        hub,
        ws,
        "slack",
        {"bot_token": slack.add_bot_token(), "signing_secret": slack.signing_secret},
    )
    jira = await _integration(hub, ws, "jira", {"webhook_secret": "usage-jira-secret"})
    await _ok(api.delete(f"/api/integrations/{jira['id']}", headers=admin), 204)

    # Two outgoing webhooks for GitHub's events, and a third deleted before any event.
    for n in range(ENDPOINTS):
        await _endpoint(hub, ws, f"/usage-{ws}-{n}")
    gone = await _endpoint(hub, ws, f"/usage-{ws}-gone")
    await _ok(api.delete(f"/api/outgoing-webhooks/{gone['id']}", headers=admin), 204)

    # GitHub's webhooks, each accepted, published and delivered to both endpoints; one
    # redelivered, which is acknowledged but neither published nor counted again.
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    path = f"/api/webhooks/github/{github['id']}"
    sent = [signing.github(GITHUB_SECRET, "ping", body) for _ in range(GITHUB_EVENTS)]
    for signed in [*sent, sent[0]]:
        answer = await api.post(path, content=signed.body, headers=signed.headers)
        assert answer.status_code == 200, answer.text

    # An incoming webhook's posts.
    await _incoming_posts(hub, ws, INCOMING_POSTS)

    # Sync with a Slack channel: the chat's messages posted there, Slack users' brought in.
    channel = f"C{uuid.uuid4().hex[:9].upper()}"
    slack.add_channel(channel, f"usage-{ws[-8:]}")
    slack.events_url = f"{hub.origin.edge.base_url}/api/webhooks/slack/{slack_integration['id']}"
    await _ok(
        api.post(
            f"/api/integrations/{slack_integration['id']}/mappings",
            json={"external_channel_id": channel, "channel_id": "ch_synced"},
            headers=admin,
        ),
        201,
    )
    for n in range(CHAT_MESSAGES):
        await _ok(
            api.post("/api/events", json=_chat_message(ws, "ch_synced", n), headers=admin), 202
        )
    for n in range(SLACK_MESSAGES):
        await slack.post_as_user(channel, "U0ALICE", f"from slack {n}")

    # An export, dry run first (nothing published, nothing counted), then for real.
    export = ExportBuilder()
    export.add_user("U0000000001", "ada")
    general = export.add_channel("general", members=["U0000000001"])
    for n in range(IMPORTED):
        export.add_message(general, "2024-03-01", message(f"17093000{n:02d}.000100", f"old {n}"))
    path_zip = export.write(tmp_path / "export.zip")
    await _import(hub, ws, path_zip, dry_run=True)
    await _import(hub, ws, path_zip, dry_run=False)

    # Everything done, as the outside world sees it.
    for n in range(ENDPOINTS):
        received = await hub.sink.wait_for(f"/usage-{ws}-{n}", GITHUB_EVENTS)
        assert len(received) == GITHUB_EVENTS
    await until(lambda: len(slack.posts(channel)) == CHAT_MESSAGES, what="sync's posts in Slack")
    await slack.settled()  # Slack's events of those posts (echoes) delivered
    accepted = [d for d in slack.deliveries if d.body["event"]["channel"] == channel]
    assert len(accepted) == SLACK_MESSAGES + CHAT_MESSAGES
    assert all(d.status == 200 for d in accepted)
    assert hub.sink.at(f"/usage-{ws}-gone") == []

    deliveries = GITHUB_EVENTS * ENDPOINTS
    counted = await _counted(
        hub,
        ws,
        {
            "integrations": {"total": 2, "by_provider": {"github": 1, "slack": 1}},
            "endpoints": ENDPOINTS,
            "events": {
                "total": GITHUB_EVENTS + INCOMING_POSTS + SLACK_MESSAGES + CHAT_MESSAGES,
                "by_provider": {
                    "github": GITHUB_EVENTS,
                    "incoming": INCOMING_POSTS,
                    # Slack sends an event for each message in the channel: its users' and
                    # the bot's (those are published too, and dropped by sync as echoes).
                    "slack": SLACK_MESSAGES + CHAT_MESSAGES,
                },
            },
            "messages_synced": CHAT_MESSAGES + SLACK_MESSAGES,
            "messages_imported": IMPORTED,
            "deliveries": deliveries,
            "attempts": deliveries,
            "deliveries_kept": deliveries,
            "attempts_kept": deliveries,
        },
    )
    [found] = counted["data"]
    assert found["workspace_id"] == ws
    assert found["activity"] == (
        found["events"]["total"] + CHAT_MESSAGES + SLACK_MESSAGES + IMPORTED + 2 * deliveries
    )
    window = counted["window"]
    assert window["days"] == 31  # HOOKHUB_DELIVERY_RETENTION's default, 30 days, and today
    assert window["since"].endswith("T00:00:00Z")

    # Nothing more arrives: the counts stay as they are.
    await asyncio.sleep(1.0)
    await hub.flush()
    assert (await _usage(hub, workspace_id=ws))["data"] == [found]

    # The admin's ranking holds it with the same counts.
    ranking = await _usage(hub, limit=100)
    assert ranking["window"]["since"] == window["since"]
    [ranked] = [row for row in ranking["data"] if row["workspace_id"] == ws]
    assert ranked == found
    activity = [row["activity"] for row in ranking["data"]]
    assert activity == sorted(activity, reverse=True) and all(activity)


async def test_the_busiest_workspaces_are_ranked_and_limited(hub: Hub) -> None:
    quiet, busy = _workspace(), _workspace()
    await _incoming_posts(hub, quiet, 1)
    await _incoming_posts(hub, busy, 4)
    await _counted(hub, busy, {"activity": 4})
    await _counted(hub, quiet, {"activity": 1})

    ranking = [row["workspace_id"] for row in (await _usage(hub, limit=100))["data"]]
    assert ranking.index(busy) < ranking.index(quiet)
    assert len((await _usage(hub, limit=1))["data"]) == 1
    assert len((await _usage(hub))["data"]) <= 10
    for limit in (0, 101, "many"):
        refused = await hub.api.get("/api/usage", params={"limit": limit}, headers=admin_headers())
        assert refused.status_code == 422, refused.text


async def test_a_workspace_key_sees_its_own_usage_only(hub: Hub) -> None:
    mine, theirs = _workspace(), _workspace()
    keys = {}
    for workspace in (mine, theirs):
        keys[workspace] = (
            await _ok(
                hub.api.post(
                    f"/api/workspaces/{workspace}/api-keys",
                    json={"name": "usage", "scopes": ["read"]},
                    headers=admin_headers(),
                ),
                201,
            )
        )["key"]
    await _integration(hub, mine, "github", {"webhook_secret": GITHUB_SECRET})
    mine_key, theirs_key = _bearer(keys[mine]), _bearer(keys[theirs])

    # Its own workspace, asked for or not (the ranking is the admin's).
    own = await _usage(hub, mine_key, workspace_id=mine)
    assert [row["workspace_id"] for row in own["data"]] == [mine]
    assert own["data"][0]["integrations"] == {"total": 1, "by_provider": {"github": 1}}
    assert (await _usage(hub, mine_key))["data"] == own["data"]
    assert (await _usage(hub, mine_key, limit=100))["data"] == own["data"]

    # Another workspace's: 403, whichever way it is asked.
    refused = await hub.api.get("/api/usage", params={"workspace_id": mine}, headers=theirs_key)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "other_workspace"
    theirs_own = await _usage(hub, theirs_key)
    assert [row["workspace_id"] for row in theirs_own["data"]] == [theirs]
    assert theirs_own["data"][0]["integrations"]["total"] == 0

    # No token, or a wrong one: 401.
    missing = await hub.api.get("/api/usage", params={"workspace_id": mine})
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"]["code"] == "missing_token"
    wrong = await hub.api.get("/api/usage", headers=_bearer("hhk_not_a_key"))
    assert wrong.status_code == 401, wrong.text
