"""Every operation of `/openapi.json`, walked with another workspace's key on this
workspace's resources (SPEC §13): no answer may be a 2xx that shows or changes them.

Workspace "mine" gets one of each resource through the admin token (integrations, incoming
and outgoing webhooks, a delivery, a mapping, a subscription, an import, a key, a portal
session); workspace "theirs" gets a `read`+`write` key. Then, for every authenticated
operation of the document, with every path parameter set to one of mine's resources:

- theirs' key: a change answers 403 or 404 (never 2xx, and never 422, which would mean
  the walk's request was wrong and proved nothing); a read answers 4xx, or a 2xx that
  holds none of mine's ids, names or workspace id (a list shows theirs only);
- mine's `read` key: every change is 403 `read_only`;
- mine's own `write` key, last: nothing is 401, 403 or 404 but what belongs to no
  workspace (403 `admin_only`), so the walk's requests do reach the resources: the
  refusals above are the scoping's, not the requests' fault.

An operation the walk has no request for fails it: a new route is scoped, or CI fails.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sandbox.slack import FakeSlack
from services.sandbox.telegram import FakeTelegram
from shared.kernel.ids import isoformat, utcnow
from tests.e2e.origin import Origin, running_origin
from tests.infra import Infra
from tests.slack_export import generate
from tests.support import admin_headers, until

pytestmark = pytest.mark.e2e

ADMIN_ONLY = {
    ("GET", "/api/providers"),
    ("GET", "/api/providers/{provider}"),
    ("PUT", "/api/providers/{provider}"),
    ("DELETE", "/api/providers/{provider}"),
    ("POST", "/api/workspaces/{workspace_id}/api-keys"),
    ("GET", "/api/workspaces/{workspace_id}/api-keys"),
    ("GET", "/api/workspaces/{workspace_id}/api-keys/{key_id}"),
    ("DELETE", "/api/workspaces/{workspace_id}/api-keys/{key_id}"),
}
# Reads that concern no workspace's data: the same answer for every caller.
# Reads of one network's integrations only, walked with the world's (GitHub) integration:
# mine's key reaches them (409, not the scoping's 403 or 404).
ONE_NETWORKS = {("GET", "/api/integrations/{integration_id}/registration")}
# `hookhub listen`'s socket, walked as a plain GET naming mine's (URL) endpoint: mine's key
# reaches it (409 `not_listening`, not the scoping's 403 or 404); theirs' does not (404).
LISTEN = {("GET", "/api/listen")}
GLOBAL_READS = {
    ("GET", "/api/notification-events"),
    ("GET", "/api/me"),
    ("GET", "/api/provider-catalog"),
    ("GET", "/api/provider-catalog/{provider}"),
}
# Run on what the request carries, for any key that may write: nobody's data is read or
# changed (a template tried on a sample in the console's editor).
GLOBAL_RUNS = {("POST", "/api/templates/test"), ("POST", "/api/transformations/test")}


@dataclass
class Mine:
    workspace: str
    ids: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    channel: str = ""

    def markers(self) -> list[str]:
        return [self.workspace, *self.ids.values(), *self.names]


@dataclass
class World:
    origin: Origin
    mine: Mine
    theirs_key: str
    read_key: str
    write_key: str
    export: Path

    @property
    def client(self) -> httpx.AsyncClient:
        return self.origin.edge.client


async def _admin(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    answer = await client.request(method, path, headers=admin_headers(), **kwargs)
    assert answer.status_code < 300, (method, path, answer.text)
    return answer.json()


async def _key(client: httpx.AsyncClient, workspace: str, scopes: list[str]) -> dict[str, Any]:
    created: dict[str, Any] = await _admin(
        client,
        "POST",
        f"/api/workspaces/{workspace}/api-keys",
        json={"name": f"key of {workspace}", "scopes": scopes},
    )
    return created


async def _furnish(client: httpx.AsyncClient, slack: FakeSlack, mine: Mine) -> None:
    """One of each resource in `mine.workspace`, through the admin token."""
    ws, tag = mine.workspace, mine.workspace[-6:]
    mine.names = [f"gh-{tag}", f"slack-{tag}", f"hook-{tag}", f"endpoint-{tag}"]
    github = await _admin(
        client,
        "POST",
        "/api/integrations",
        json={
            "workspace_id": ws,
            "provider": "github",
            "name": mine.names[0],
            "settings": {"webhook_secret": "w" * 24},
        },
    )
    mine.ids["github"] = github["id"]
    mine.channel = f"C{uuid.uuid4().hex[:9].upper()}"
    slack.add_channel(mine.channel, f"general-{tag}", member=True)
    integration = await _admin(
        client,
        "POST",
        "/api/integrations",
        json={
            "workspace_id": ws,
            "provider": "slack",
            "name": mine.names[1],
            "settings": {"bot_token": slack.add_bot_token(), "signing_secret": "s" * 32},
        },
    )
    mine.ids["slack"] = integration["id"]
    hook = await _admin(
        client,
        "POST",
        "/api/incoming-webhooks",
        json={"workspace_id": ws, "target_channel_id": "ch_mine", "name": mine.names[2]},
    )
    mine.ids["hook"] = hook["id"]
    endpoint = await _admin(
        client,
        "POST",
        "/api/outgoing-webhooks",
        json={
            "workspace_id": ws,
            "name": mine.names[3],
            "url": "http://127.0.0.1:9/hook",
            "events": ["message.created"],
        },
    )
    mine.ids["endpoint"] = endpoint["id"]
    # A replay of what it missed: another workspace neither follows nor cancels it.
    since = isoformat(utcnow() - timedelta(hours=1))
    replay = await _admin(
        client, "POST", f"/api/outgoing-webhooks/{endpoint['id']}/replay", json={"since": since}
    )
    mine.ids["replay"] = replay["id"]
    # The workspace's own event type: another workspace neither sees nor changes it.
    event_type = await _admin(
        client, "POST", "/api/event-types", json={"workspace_id": ws, "name": f"walk.t{tag}"}
    )
    mine.ids["event_type"] = event_type["id"]
    mine.names.append(event_type["name"])
    tested = await _admin(client, "POST", f"/api/outgoing-webhooks/{endpoint['id']}/test")
    mine.ids["delivery"] = tested["delivery_id"]
    mapping = await _admin(
        client,
        "POST",
        f"/api/integrations/{integration['id']}/mappings",
        json={"external_channel_id": mine.channel, "channel_id": "ch_mine"},
    )
    mine.ids["mapping"] = mapping["id"]
    # A message of mine synced to Slack, so that the message map holds a copy of it.
    await _admin(client, "POST", "/api/events", json=_message(ws, "m_walk"))

    async def copied() -> bool:
        answer = await client.get(
            "/api/messages/lookup",
            params={"channel_id": "ch_mine", "message_id": "m_walk"},
            headers=admin_headers(),
        )
        return answer.status_code == 200

    await until(copied, what="the message's copy in the map")
    subscription = await _admin(
        client,
        "POST",
        f"/api/integrations/{github['id']}/subscriptions",
        json={"channel_id": "ch_mine", "repositories": ["mine/repo"]},
    )
    mine.ids["subscription"] = subscription["id"]
    job = await _admin(
        client,
        "POST",
        f"/api/integrations/{integration['id']}/import",
        json={"channel_ids": [mine.channel], "dry_run": True},
    )
    mine.ids["job"] = job["id"]
    link = await _admin(
        client,
        "PUT",
        "/api/account-links/pagerduty/u_mine",
        params={"workspace_id": ws},
        json={"provider_user": f"mine-{tag}@example.com"},
    )
    mine.ids["link"] = link["id"]
    mine.names.append(link["provider_user"])
    key = await _key(client, ws, ["read"])
    mine.ids["key"] = key["id"]
    session = await _admin(client, "POST", f"/api/workspaces/{ws}/portal-sessions", json={})
    mine.ids["portal"] = session["id"]


@pytest.fixture(scope="module")
async def world(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, telegram_api: tuple[FakeTelegram, str]
) -> AsyncIterator[World]:
    data_dir = tmp_path_factory.mktemp("tenants")
    async with running_origin(infra, data_dir, telegram_api[1]) as origin:
        client = origin.edge.client
        slack = origin.fakes["slack"]
        assert isinstance(slack, FakeSlack)
        mine = Mine(f"ws_mine_{uuid.uuid4().hex[:6]}")
        theirs = f"ws_theirs_{uuid.uuid4().hex[:6]}"
        await _furnish(client, slack, mine)
        export = data_dir / "export.zip"
        generate(export, messages=3, channels=1)
        yield World(
            origin,
            mine,
            theirs_key=(await _key(client, theirs, ["read", "write"]))["key"],
            read_key=(await _key(client, mine.workspace, ["read"]))["key"],
            write_key=(await _key(client, mine.workspace, ["read", "write"]))["key"],
            export=export,
        )


def _message(workspace: str, message_id: str) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "message.created",
        "workspace_id": workspace,
        "occurred_at": isoformat(utcnow()),
        "actor": {"id": "u_mine", "name": "Mine"},
        "data": {"channel_id": "ch_mine", "message_id": message_id, "text": "hi"},
    }


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation that takes a caller (the webhook ingress and the OAuth callback take
    none: they are unchanged by keys, SPEC §13)."""
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]


def _path(template: str, mine: Mine) -> str:
    integration = mine.ids["github"]
    if "/mappings" in template or template.endswith("/import"):
        integration = mine.ids["slack"]
    values = {
        "integration_id": integration,
        "hook_id": mine.ids["hook"],
        "endpoint_id": mine.ids["endpoint"],
        "replay_id": mine.ids["replay"],
        "delivery_id": mine.ids["delivery"],
        "mapping_id": mine.ids["mapping"],
        "subscription_id": mine.ids["subscription"],
        "job_id": mine.ids["job"],
        "key_id": mine.ids["key"],
        "workspace_id": mine.workspace,
        "provider": "slack",
        "name": f"walk.t{mine.workspace[-6:]}",
        "chat_user_id": "u_mine",
    }
    if template.startswith("/api/account-links/"):
        values["provider"] = "pagerduty"  # a provider linked by a mapping
    if template == "/api/account-links/{provider}/connect":
        values["provider"] = "github"  # a provider linked by the user's consent
    return template.format(**values)


def _request(method: str, template: str, mine: Mine, export: Path) -> dict[str, Any]:
    """The request's query and body: valid, and naming mine's workspace wherever one is
    named, so that only the scoping can refuse it."""
    ws = mine.workspace
    query: dict[str, Any] = {"workspace_id": ws} if method == "GET" else {}
    if template.startswith("/api/account-links/"):
        query = {"workspace_id": ws}  # a link's address: its workspace, for every method
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/incoming-webhooks"): {"workspace_id": ws, "target_channel_id": "ch_x"},
        ("PATCH", "/api/incoming-webhooks/{hook_id}"): {"name": "renamed"},
        ("POST", "/api/outgoing-webhooks"): {
            "workspace_id": ws,
            "url": "http://127.0.0.1:9/other",
            "events": ["message.created"],
        },
        ("PATCH", "/api/outgoing-webhooks/{endpoint_id}"): {"name": "renamed"},
        ("POST", "/api/outgoing-webhooks/{endpoint_id}/rotate-secret"): {},
        ("POST", "/api/listen/endpoints"): {"workspace_id": ws, "events": ["message.created"]},
        ("POST", "/api/outgoing-webhooks/{endpoint_id}/recover"): {
            "since": isoformat(utcnow() - timedelta(hours=1))
        },
        ("POST", "/api/outgoing-webhooks/{endpoint_id}/replay"): {
            "since": isoformat(utcnow() - timedelta(hours=1))
        },
        ("POST", "/api/events"): _message(ws, f"m_{uuid.uuid4().hex[:8]}"),
        ("POST", "/api/event-types"): {"workspace_id": ws, "name": "walk.other"},
        ("PATCH", "/api/event-types/{name}"): {"description": "renamed"},
        ("POST", "/api/integrations"): {
            "workspace_id": ws,
            "provider": "github",
            "settings": {"webhook_secret": "v" * 24},
        },
        ("PATCH", "/api/integrations/{integration_id}"): {"name": "renamed"},
        ("PUT", "/api/providers/{provider}"): {"client_id": "c", "client_secret": "s"},
        ("POST", "/api/auth/oauth/connect"): {"provider": "github", "workspace_id": ws},
        ("POST", "/api/workspaces/{workspace_id}/api-keys"): {"name": "k", "scopes": ["read"]},
        ("POST", "/api/workspaces/{workspace_id}/portal-sessions"): {"read_only": True},
        ("POST", "/api/integrations/{integration_id}/mappings"): {
            "external_channel_id": mine.channel,
            "channel_id": "ch_other",
        },
        ("PATCH", "/api/integrations/{integration_id}/mappings/{mapping_id}"): {"enabled": False},
        ("POST", "/api/integrations/{integration_id}/subscriptions"): {"channel_id": "ch_y"},
        ("PATCH", "/api/integrations/{integration_id}/subscriptions/{subscription_id}"): {
            "enabled": False
        },
        ("POST", "/api/integrations/{integration_id}/actions/create-issue"): {
            "repo": "mine/repo",
            "title": "from the walk",
        },
        ("POST", "/api/templates/test"): {
            "template": "function handler(event) { return {text: event.payload.says}; }",
            "payload": {"says": "hello"},
        },
        ("POST", "/api/transformations/test"): {
            "code": "function handler(webhook) { webhook.payload.n += 1; return webhook; }",
            "payload": {"n": 1},
        },
        ("PUT", "/api/account-links/{provider}/{chat_user_id}"): {
            "provider_user": "other@example.com"
        },
        ("POST", "/api/account-links/{provider}/connect"): {"chat_user_id": "u_mine"},
        ("POST", "/api/integrations/{integration_id}/import"): {
            "channel_ids": [mine.channel],
            "dry_run": True,
        },
    }
    if (method, template) == ("GET", "/api/messages/lookup"):
        query = {"channel_id": "ch_mine", "message_id": "m_walk"}
    if (method, template) == ("GET", "/api/notification-events"):
        query = {"provider": "github"}
    if (method, template) in LISTEN:
        query = {"endpoint_id": mine.ids["endpoint"]}
    if (method, template) == ("POST", "/api/imports"):
        return {
            "data": {"workspace_id": ws, "dry_run": "true"},
            "files": {"file": ("export.zip", export.read_bytes(), "application/zip")},
        }
    if (method, template) in bodies:
        return {"params": query, "content": json.dumps(bodies[(method, template)])}
    return {"params": query}


async def _send(
    world: World, key: str, method: str, template: str, operation: dict[str, Any]
) -> httpx.Response:
    request = _request(method, template, world.mine, world.export)
    if "requestBody" in operation and "content" not in request and "files" not in request:
        # No request in the walk for this operation's body: one must be added above.
        pytest.fail(f"the walk has no body for {method} {template}")
    headers = {"Authorization": f"Bearer {key}"}
    if "content" in request:
        headers["Content-Type"] = "application/json"
    return await world.client.request(
        method, _path(template, world.mine), headers=headers, **request
    )


async def _document(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    document = (await world.client.get("/openapi.json")).json()
    operations = _operations(document)
    assert len(operations) >= 55, len(operations)
    return operations


async def test_another_workspaces_key_sees_and_changes_nothing_of_mine(world: World) -> None:
    leaks = []
    for method, template, operation in await _document(world):
        answer = await _send(world, world.theirs_key, method, template, operation)
        where = f"{method} {template} → {answer.status_code} {answer.text[:300]}"
        if method == "GET":
            if answer.status_code < 300:
                shown = [m for m in world.mine.markers() if m in answer.text]
                if shown:
                    leaks.append(f"{where}: shows {shown}")
                elif (method, template) in GLOBAL_READS:
                    pass  # the same for every caller: the catalog's entry of a provider
                elif "{integration_id}" in template or "{" in template.rsplit("/", 1)[-1]:
                    # A list nested under my integration, or my resource itself: they are
                    # not there for theirs (404), not empty.
                    leaks.append(f"{where}: mine's resource should be 404")
            elif answer.status_code not in (403, 404):
                leaks.append(f"{where}: a read should be 403, 404 or a 2xx of theirs only")
        elif (method, template) in GLOBAL_RUNS:
            if answer.status_code != 200 or any(m in answer.text for m in world.mine.markers()):
                leaks.append(f"{where}: a run on what it is given, the same for every caller")
        elif answer.status_code not in (403, 404):
            leaks.append(f"{where}: a change should be 403 or 404")
        if (method, template) in ADMIN_ONLY:
            assert answer.status_code == 403, where
    assert not leaks, "\n".join(leaks)
    # Nothing of mine changed meanwhile.
    client = world.client
    endpoint = await _admin(client, "GET", f"/api/outgoing-webhooks/{world.mine.ids['endpoint']}")
    assert endpoint["name"] == world.mine.names[3] and endpoint["enabled"] is True
    ours = await _admin(
        client, "GET", "/api/integrations", params={"workspace_id": world.mine.workspace}
    )
    assert sorted(i["name"] for i in ours["data"]) == sorted(world.mine.names[:2])


async def test_a_read_key_changes_nothing(world: World) -> None:
    for method, template, operation in await _document(world):
        if method == "GET":
            continue
        answer = await _send(world, world.read_key, method, template, operation)
        where = f"{method} {template} → {answer.status_code} {answer.text[:300]}"
        assert answer.status_code == 403, where
        code = answer.json()["error"]["code"]
        # What is the admin's is refused to any key, for either reason.
        allowed = {"admin_only", "read_only"} if (method, template) in ADMIN_ONLY else {"read_only"}
        assert code in allowed, where


async def test_the_walks_requests_reach_mine_with_mines_own_key(world: World) -> None:
    """The walk, with mine's write key: only what belongs to no workspace is refused, so
    every 403 and 404 theirs met was the scoping's. Reads first, then changes, deletes
    last (they take away what the others act on)."""
    operations = await _document(world)
    order = {"GET": 0, "PUT": 1, "PATCH": 1, "POST": 2, "DELETE": 3}
    # A nested resource is deleted before what it is under: a subscription's DELETE after its
    # integration's answered 404 once sync's cache had learnt of the integration's deletion.
    operations.sort(
        key=lambda op: (
            order[op[0]],
            "disconnect" in op[1],
            -op[1].count("/") if op[0] == "DELETE" else 0,
        )
    )
    for method, template, operation in operations:
        answer = await _send(world, world.write_key, method, template, operation)
        where = f"{method} {template} → {answer.status_code} {answer.text[:300]}"
        if (method, template) in ADMIN_ONLY:
            assert answer.status_code == 403, where
            assert answer.json()["error"]["code"] == "admin_only", where
        else:
            assert answer.status_code not in (401, 403, 404), where
        if (method, template) in ONE_NETWORKS | LISTEN:
            assert answer.status_code == 409, where
        elif method == "GET" and (method, template) not in GLOBAL_READS | ADMIN_ONLY:
            assert answer.status_code == 200, where
