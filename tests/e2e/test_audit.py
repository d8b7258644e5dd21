"""The audit log (SPEC §13) across the five services behind the single origin: an entry for
each kind of change, whoever made it, attributed to its workspace, holding no secret;
listed with filters and cursors, a workspace's key seeing its own workspace only; written
by each service's batched writer after the answer, never in the request.

The services run in-process on the session's broker and database (tests/e2e/origin.py),
so that the tests can wait for their writers by construction.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.delivery.deliveries.repository import DELIVERIES
from services.sandbox.telegram import FakeTelegram
from shared.domain import audit
from shared.kernel.ids import isoformat, utcnow
from shared.kernel.mongo import BatchedWriter, Database, Document
from tests.delivery.test_list import made
from tests.e2e.origin import running_origin
from tests.infra import Infra
from tests.oauth.flow import consent
from tests.slack_export import generate
from tests.support import admin_headers, until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TELEGRAM_TOKEN = "777001:AAaudit-bot-token-never-logged"
TELEGRAM_CHAT = -100777001


@dataclass
class Hub:
    api: httpx.AsyncClient  # the single origin
    apps: dict[str, FastAPI]
    db: Database

    async def written(self) -> None:
        """Every service's audit entries so far are in MongoDB: their writers flushed."""
        await asyncio.gather(*(writer_of(app).written() for app in self.apps.values()))

    async def entries(self, **query: Any) -> list[Document]:
        await self.written()
        return await self.db[audit.COLLECTION].find(query).sort("_id", 1).to_list()


def writer_of(app: FastAPI) -> BatchedWriter:
    writer: BatchedWriter = app.state.audit.writer
    return writer


@pytest.fixture(scope="module")
async def hub(
    infra: Infra,
    tmp_path_factory: pytest.TempPathFactory,
    telegram_api: tuple[FakeTelegram, str],
) -> AsyncIterator[Hub]:
    telegram_api[0].add_bot(TELEGRAM_TOKEN, 777001, "audit_bot")
    telegram_api[0].add_chat(TELEGRAM_CHAT, "supergroup", "audit")
    overrides: dict[str, dict[str, Any]] = {
        "sync": {"cache_refresh_seconds": 0.2},
        # Jobs stay queued: cancelled at once, resumed to queued again.
        "importer": {"import_poll_seconds": 3600},
    }
    async with running_origin(
        infra, tmp_path_factory.mktemp("audit"), telegram_api[1], overrides=overrides
    ) as origin:
        apps = origin.apps
        yield Hub(origin.edge.client, apps, apps["oauth"].state.runtime.db)


def _workspace() -> str:
    return f"ws_audit_{uuid.uuid4().hex[:8]}"


async def _ok(answer: Any, status: int = 200) -> Any:
    response = await answer
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_every_kind_of_change_is_recorded_and_no_secret_reaches_the_log(
    hub: Hub, tmp_path: Path
) -> None:
    api, admin = hub.api, admin_headers()
    ws = _workspace()
    secrets = ["github-webhook-secret-0123456789", TELEGRAM_TOKEN, "header-value-secret-42"]

    # Integrations: a webhook secret, a bot token; renamed, disconnected, deleted.
    github = await _ok(
        api.post(
            "/api/integrations",
            json={
                "provider": "github",
                "workspace_id": ws,
                "settings": {"webhook_secret": secrets[0]},
            },
            headers=admin,
        ),
        201,
    )
    telegram = await _ok(
        api.post(
            "/api/integrations",
            json={
                "provider": "telegram",
                "workspace_id": ws,
                "settings": {"bot_token": TELEGRAM_TOKEN},
            },
            headers=admin,
        ),
        201,
    )
    await _ok(api.patch(f"/api/integrations/{github['id']}", json={"name": "repos"}, headers=admin))

    # A connect through OAuth, started and finished.
    started = await _ok(
        api.post(
            "/api/auth/oauth/connect",
            json={"provider": "github", "workspace_id": ws},
            headers=admin,
        )
    )
    connected = await _ok(
        api.get("/api/auth/oauth/callback", params=await consent(started["authorization_url"]))
    )

    # Outgoing webhook: a secret and a header; disabled, enabled, rotated, tested,
    # recovered; a failed delivery retried; deleted.
    endpoint = await _ok(
        api.post(
            "/api/outgoing-webhooks",
            json={
                "workspace_id": ws,
                "url": "http://127.0.0.1:9/hook",
                "events": ["message.*"],
                "headers": {"X-Api-Key": secrets[2]},
            },
            headers=admin,
        ),
        201,
    )
    secrets.append(endpoint["secret"])
    path = f"/api/outgoing-webhooks/{endpoint['id']}"
    await _ok(api.patch(path, json={"enabled": False}, headers=admin))
    await _ok(api.patch(path, json={"enabled": True}, headers=admin))
    secrets.append((await _ok(api.post(f"{path}/rotate-secret", headers=admin)))["secret"])
    await _ok(api.post(f"{path}/test", headers=admin), 202)
    since = isoformat(utcnow() - timedelta(hours=1))
    await _ok(api.post(f"{path}/recover", json={"since": since}, headers=admin), 202)
    failed = made(1, endpoint["id"])
    failed["workspace_id"] = ws
    await hub.db[DELIVERIES].insert_one(failed)
    await _ok(api.post(f"/api/deliveries/{failed['_id']}/retry", headers=admin), 202)

    # Incoming webhook: rotated, disabled, deleted.
    hook = await _ok(
        api.post(
            "/api/incoming-webhooks",
            json={"workspace_id": ws, "target_channel_id": "ch_a"},
            headers=admin,
        ),
        201,
    )
    await _ok(api.post(f"/api/incoming-webhooks/{hook['id']}/rotate-token", headers=admin))
    await _ok(
        api.patch(f"/api/incoming-webhooks/{hook['id']}", json={"enabled": False}, headers=admin)
    )

    # Mappings and subscriptions (sync learns of the integrations from its cache).
    mappings = f"/api/integrations/{telegram['id']}/mappings"
    mapping = await until(
        lambda: _created(
            api.post(
                mappings,
                json={"external_channel_id": str(TELEGRAM_CHAT), "channel_id": "ch_m"},
                headers=admin,
            )
        ),
        what="the mapping's creation",
    )
    await _ok(api.delete(f"{mappings}/{mapping['id']}", headers=admin), 204)
    await _ok(api.post(f"/api/integrations/{telegram['id']}/disconnect", headers=admin))
    subscriptions = f"/api/integrations/{github['id']}/subscriptions"
    subscription = await until(
        lambda: _created(api.post(subscriptions, json={"channel_id": "ch_s"}, headers=admin)),
        what="the subscription's creation",
    )
    await _ok(
        api.patch(f"{subscriptions}/{subscription['id']}", json={"threads": "off"}, headers=admin)
    )

    # An import uploaded, cancelled while queued, resumed.
    export = tmp_path / "export.zip"
    generate(export, messages=3, channels=1)
    job = await _ok(
        api.post(
            "/api/imports",
            data={"workspace_id": ws, "dry_run": "true"},
            files={"file": ("export.zip", export.read_bytes(), "application/zip")},
            headers=admin,
        ),
        202,
    )
    await _ok(api.post(f"/api/imports/{job['id']}/cancel", headers=admin), 202)
    await _ok(api.post(f"/api/imports/{job['id']}/resume", headers=admin), 202)

    # Keys and portal sessions.
    keys = f"/api/workspaces/{ws}/api-keys"
    key = await _ok(api.post(keys, json={"name": "ci", "scopes": ["read"]}, headers=admin), 201)
    secrets.append(key["key"])
    await _ok(api.delete(f"{keys}/{key['id']}", headers=admin), 204)
    session = await _ok(
        api.post(f"/api/workspaces/{ws}/portal-sessions", json={}, headers=admin), 201
    )
    secrets.append(session["token"])
    await _ok(api.post(f"/api/workspaces/{ws}/portal-sessions/expire-all", headers=admin))

    # Deletions by the admin: 204, no body, still the workspace's.
    await _ok(api.delete(f"/api/incoming-webhooks/{hook['id']}", headers=admin), 204)
    await _ok(api.delete(path, headers=admin), 204)
    await _ok(api.delete(f"/api/integrations/{github['id']}", headers=admin), 204)

    entries = await hub.entries(workspace_id=ws)
    done = [(e["resource_type"], e["action"], e["resource_id"]) for e in entries]
    assert done == [
        ("integration", "create", github["id"]),
        ("integration", "create", telegram["id"]),
        ("integration", "update", github["id"]),
        ("integration", "connect", None),
        ("integration", "connected", connected["integration_id"]),
        ("outgoing_webhook", "create", endpoint["id"]),
        ("outgoing_webhook", "disable", endpoint["id"]),
        ("outgoing_webhook", "enable", endpoint["id"]),
        ("outgoing_webhook", "rotate", endpoint["id"]),
        ("outgoing_webhook", "test", endpoint["id"]),
        ("outgoing_webhook", "recover", endpoint["id"]),
        ("delivery", "retry", failed["_id"]),
        ("incoming_webhook", "create", hook["id"]),
        ("incoming_webhook", "rotate", hook["id"]),
        ("incoming_webhook", "disable", hook["id"]),
        ("mapping", "create", mapping["id"]),
        ("mapping", "delete", mapping["id"]),
        ("integration", "disconnect", telegram["id"]),
        ("subscription", "create", subscription["id"]),
        ("subscription", "update", subscription["id"]),
        ("import", "import", job["id"]),
        ("import", "cancel", job["id"]),
        ("import", "resume", job["id"]),
        ("api_key", "create", key["id"]),
        ("api_key", "delete", key["id"]),
        ("portal_session", "create", session["id"]),
        ("portal_session", "expire-all", None),
        ("incoming_webhook", "delete", hook["id"]),
        ("outgoing_webhook", "delete", endpoint["id"]),
        ("integration", "delete", github["id"]),
    ]
    assert all(e["actor"] == {"kind": "admin", "id": "admin"} for e in entries)
    by_action = {(e["resource_type"], e["action"]): e for e in entries}  # the last of each
    assert entries[0]["fields"] == [
        "provider",
        "settings",
        "settings.webhook_secret",
        "workspace_id",
    ]
    assert by_action[("integration", "create")]["fields"] == [
        "provider",
        "settings",
        "settings.bot_token",
        "workspace_id",
    ]
    assert by_action[("outgoing_webhook", "create")]["fields"] == [
        "events",
        "headers",
        "url",
        "workspace_id",
    ]
    assert by_action[("import", "import")]["fields"] == []  # a multipart upload
    deleted = by_action[("integration", "delete")]
    assert deleted["method"] == "DELETE" and deleted["status"] == 204
    assert deleted["route"] == "/api/integrations/{integration_id}"

    dump = json.dumps(await hub.db[audit.COLLECTION].find().to_list(), default=str)
    leaked = [secret for secret in secrets if secret in dump]
    assert leaked == [], "a secret reached the audit log"


async def _created(answer: Any) -> Any:
    response = await answer
    if response.status_code == 404:  # sync has not seen the integration yet
        return None
    assert response.status_code == 201, response.text
    return response.json()


async def _key(hub: Hub, workspace: str, *scopes: str) -> dict[str, Any]:
    key: dict[str, Any] = await _ok(
        hub.api.post(
            f"/api/workspaces/{workspace}/api-keys",
            json={"name": "audit", "scopes": list(scopes or ["read", "write"])},
            headers=admin_headers(),
        ),
        201,
    )
    return key


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _hook(hub: Hub, workspace: str, headers: dict[str, str]) -> dict[str, Any]:
    hook: dict[str, Any] = await _ok(
        hub.api.post(
            "/api/incoming-webhooks",
            json={"workspace_id": workspace, "target_channel_id": "ch_k"},
            headers=headers,
        ),
        201,
    )
    return hook


async def _listed(hub: Hub, headers: dict[str, str] | None = None, **params: Any) -> Any:
    """The list, once every change made before the call is written."""
    await hub.written()
    return await _read(hub, headers, **params)


async def _read(hub: Hub, headers: dict[str, str] | None = None, **params: Any) -> Any:
    """The list as it is (no change made since the last `_listed`)."""
    return await _ok(
        hub.api.get("/api/audit-events", params=params, headers=headers or admin_headers())
    )


async def test_who_made_a_change_and_what_a_workspace_key_sees(hub: Hub) -> None:
    mine, theirs = _workspace(), _workspace()
    key = await _key(hub, mine)
    session = await _ok(
        hub.api.post(
            f"/api/workspaces/{mine}/portal-sessions", json={}, headers=_bearer(key["key"])
        ),
        201,
    )
    by_key = await _hook(hub, mine, _bearer(key["key"]))
    by_portal = await _hook(hub, mine, _bearer(session["token"]))
    by_admin = await _hook(hub, theirs, admin_headers())
    await _ok(
        hub.api.put(
            "/api/providers/google",
            json={"client_id": "audit-client", "client_secret": "google-secret-not-logged"},
            headers=admin_headers(),
        )
    )

    listed = await _listed(hub, _bearer(key["key"]))
    assert {e["workspace_id"] for e in listed["data"]} == {mine}
    actors = {e["resource_id"]: e["actor"] for e in listed["data"]}
    assert actors[key["id"]] == {"kind": "admin", "id": "admin"}
    assert actors[session["id"]] == {"kind": "key", "id": key["id"]}
    assert actors[by_key["id"]] == {"kind": "key", "id": key["id"]}
    assert actors[by_portal["id"]] == {"kind": "portal", "id": session["id"]}
    # Whatever it asks for: another workspace's log is 403, its own is listed.
    refused = await hub.api.get(
        "/api/audit-events", params={"workspace_id": theirs}, headers=_bearer(key["key"])
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "other_workspace"
    own = await _read(hub, _bearer(key["key"]), workspace_id=mine)
    assert own["data"] == listed["data"]
    assert (await _read(hub, _bearer(key["key"]), resource_id=by_admin["id"]))["data"] == []

    # The admin sees every workspace, and what belongs to none (provider apps).
    theirs_listed = await _read(hub, workspace_id=theirs)
    assert [e["resource_id"] for e in theirs_listed["data"]] == [by_admin["id"]]
    apps = await _read(hub, resource_type="provider_app")
    assert apps["data"][0]["workspace_id"] is None
    assert apps["data"][0]["resource_id"] == "google"
    assert apps["data"][0]["fields"] == ["client_id", "client_secret"]
    assert "google" not in {e["resource_id"] for e in listed["data"]}


async def test_filters_cursor_and_the_request_id(hub: Hub) -> None:
    ws = _workspace()
    hooks = [await _hook(hub, ws, admin_headers()) for _ in range(5)]
    before_renames = utcnow()
    answers = []
    for hook in hooks[:3]:
        answers.append(
            await hub.api.patch(
                f"/api/incoming-webhooks/{hook['id']}",
                json={"name": "renamed"},
                headers={**admin_headers(), "X-Request-ID": f"audit-{hook['id']}"},
            )
        )

    await hub.written()
    # Newest first, two at a time, to the end.
    walked: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        page = await _read(hub, workspace_id=ws, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= 2
        walked += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(walked) == 8
    assert [e["id"] for e in walked] == sorted((e["id"] for e in walked), reverse=True)

    updates = await _read(hub, workspace_id=ws, action="update")
    assert [e["resource_id"] for e in updates["data"]] == [h["id"] for h in reversed(hooks[:3])]
    for entry, answer in zip(reversed(updates["data"]), answers, strict=True):
        assert entry["request_id"] == answer.headers["x-request-id"]
        assert entry["request_id"] == f"audit-{entry['resource_id']}"
        assert entry["fields"] == ["name"]
    one = await _read(hub, resource_id=hooks[4]["id"])
    assert [(e["action"], e["resource_type"]) for e in one["data"]] == [
        ("create", "incoming_webhook")
    ]
    since = await _read(hub, workspace_id=ws, since=isoformat(before_renames))
    assert {e["action"] for e in since["data"]} == {"update"}
    by_actor = await _read(hub, workspace_id=ws, actor="admin", resource_type="incoming_webhook")
    assert len(by_actor["data"]) == 8
    assert (await _read(hub, workspace_id=ws, actor="key_nobody"))["data"] == []
    bad = await hub.api.get(
        "/api/audit-events", params={"cursor": "not-a-cursor"}, headers=admin_headers()
    )
    assert bad.status_code == 400


async def test_the_request_does_not_wait_for_its_entry(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's writer is held: the change is answered all the same, and its entry
    is stored once the writer flushes."""
    writer = writer_of(hub.apps["gateway"])
    held, flush = asyncio.Event(), writer.flush

    async def held_flush(*, spread: bool = False) -> None:
        await held.wait()
        await flush(spread=spread)

    monkeypatch.setattr(writer, "flush", held_flush)
    ws = _workspace()
    hook = await _hook(hub, ws, admin_headers())
    stored = hub.db[audit.COLLECTION]
    assert await stored.find_one({"resource_id": hook["id"]}) is None
    held.set()
    await writer.written()
    entry = await stored.find_one({"resource_id": hook["id"]})
    assert entry is not None and entry["action"] == "create" and entry["workspace_id"] == ws
