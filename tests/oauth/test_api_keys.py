"""Workspace API keys (SPEC §13): issued with the key shown once, listed and read without
it, revoked; stored as a fingerprint only (no document in MongoDB holds the key); admin
token only; bad scopes and expiries refused."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from shared.domain import api_keys
from shared.kernel.crypto import fingerprint
from shared.kernel.ids import isoformat, utcnow
from shared.kernel.settings import ServiceSettings
from tests.support import RunningService, admin_headers


def _workspace() -> str:
    return f"ws_{uuid.uuid4().hex[:8]}"


async def _create(oauth: RunningService, workspace: str, **body: Any) -> Any:
    return await oauth.client.post(
        f"/api/workspaces/{workspace}/api-keys",
        json={"name": "bot", "scopes": ["read"], **body},
        headers=admin_headers(),
    )


async def test_a_key_is_shown_once_listed_without_it_and_revoked(oauth: RunningService) -> None:
    workspace = _workspace()
    expires = isoformat(utcnow() + timedelta(days=7))
    created = await _create(oauth, workspace, scopes=["write", "read"], expires_at=expires)
    assert created.status_code == 201, created.text
    body = created.json()
    key: str = body["key"]
    assert key.startswith("hhk_") and len(key) == 4 + 43
    assert body["id"].startswith("key_") and body["workspace_id"] == workspace
    assert body["scopes"] == ["read", "write"] and body["prefix"] == key[:12]
    assert body["last_used_at"] is None and body["expires_at"].startswith(expires[:19])

    base = f"/api/workspaces/{workspace}/api-keys"
    listed = (await oauth.client.get(base, headers=admin_headers())).json()
    shown = {k: v for k, v in body.items() if k != "key"}
    assert listed == {"data": [shown], "next_cursor": None}
    got = await oauth.client.get(f"{base}/{body['id']}", headers=admin_headers())
    assert got.status_code == 200 and got.json() == shown and key not in got.text
    # Another workspace's path does not find it.
    other = await oauth.client.get(
        f"/api/workspaces/{_workspace()}/api-keys/{body['id']}", headers=admin_headers()
    )
    assert other.status_code == 404

    revoked = await oauth.client.delete(f"{base}/{body['id']}", headers=admin_headers())
    assert revoked.status_code == 204
    assert (
        await oauth.client.get(f"{base}/{body['id']}", headers=admin_headers())
    ).status_code == 404
    assert (await oauth.client.get(base, headers=admin_headers())).json()["data"] == []
    again = await oauth.client.delete(f"{base}/{body['id']}", headers=admin_headers())
    assert again.status_code == 404


async def test_no_document_holds_a_key(
    oauth: RunningService, oauth_settings: ServiceSettings
) -> None:
    workspace = _workspace()
    keys = [(await _create(oauth, workspace)).json()["key"] for _ in range(2)]
    session = await oauth.client.post(
        f"/api/workspaces/{workspace}/portal-sessions", json={}, headers=admin_headers()
    )
    keys.append(session.json()["token"])  # a portal session's token is a key too
    client: AsyncMongoClient[Any] = AsyncMongoClient(oauth_settings.mongo_uri)
    try:
        docs = (
            await client[oauth_settings.mongo_db][api_keys.COLLECTION]
            .find({"workspace_id": workspace})
            .to_list()
        )
    finally:
        await client.close()
    assert len(docs) == 3
    dumped = repr(docs)
    for key in keys:
        secret = key[4:]
        assert secret not in dumped and secret[8:16] not in dumped
        assert fingerprint(key) in {doc["key_hash"] for doc in docs}


async def test_refusals(oauth: RunningService) -> None:
    workspace = _workspace()
    body: dict[str, Any]
    for body in (
        {"scopes": ["write"]},
        {"scopes": []},
        {"scopes": ["admin"]},
        {"scopes": "read"},
        {"name": ""},
        {"expires_at": "2030-01-01T00:00:00"},
        {"extra": 1},
    ):
        answer = await _create(oauth, workspace, **body)
        assert answer.status_code == 422, (body, answer.text)
    past = await _create(oauth, workspace, expires_at=isoformat(utcnow() - timedelta(seconds=1)))
    assert past.status_code == 422 and past.json()["error"]["code"] == "invalid_expiry"
    unauthenticated = await oauth.client.post(
        f"/api/workspaces/{workspace}/api-keys", json={"name": "x", "scopes": ["read"]}
    )
    assert unauthenticated.status_code == 401
    forged = await oauth.client.get(
        f"/api/workspaces/{workspace}/api-keys", headers={"Authorization": "Bearer hhk_nope"}
    )
    assert forged.status_code == 401


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_github(
    oauth: RunningService, workspace: str, headers: dict[str, str], name: str = "github"
) -> Any:
    """`POST /api/integrations` of a GitHub integration in `workspace`: the answer."""
    return await oauth.client.post(
        "/api/integrations",
        json={
            "workspace_id": workspace,
            "provider": "github",
            "name": name,
            "settings": {"webhook_secret": "s" * 20},
        },
        headers=headers,
    )


async def _github(oauth: RunningService, workspace: str, name: str) -> Any:
    answer = await create_github(oauth, workspace, admin_headers(), name)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_key_acts_in_its_workspace_only(oauth: RunningService) -> None:
    mine, other = _workspace(), _workspace()
    key = (await _create(oauth, mine, scopes=["read", "write"])).json()["key"]
    own = await _github(oauth, mine, "mine")
    theirs = await _github(oauth, other, "theirs")

    # Lists show the key's workspace whatever workspace_id asks for.
    for query in ("", f"?workspace_id={other}", f"?workspace_id={mine}"):
        listed = await oauth.client.get(f"/api/integrations{query}", headers=bearer(key))
        assert listed.status_code == 200, listed.text
        assert [i["id"] for i in listed.json()["data"]] == [own["id"]], query
    # Another workspace's resource does not exist for it; its own does.
    for method, path in (
        ("GET", f"/api/integrations/{theirs['id']}"),
        ("GET", f"/api/integrations/{theirs['id']}/status"),
        ("PATCH", f"/api/integrations/{theirs['id']}"),
        ("DELETE", f"/api/integrations/{theirs['id']}"),
        ("POST", f"/api/integrations/{theirs['id']}/disconnect"),
    ):
        body = {"name": "taken"} if method == "PATCH" else None
        answer = await oauth.client.request(method, path, json=body, headers=bearer(key))
        assert answer.status_code == 404, (method, path, answer.text)
    assert (
        await oauth.client.get(f"/api/integrations/{theirs['id']}", headers=admin_headers())
    ).json()["name"] == "theirs"
    renamed = await oauth.client.patch(
        f"/api/integrations/{own['id']}", json={"name": "renamed"}, headers=bearer(key)
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    # Creating in another workspace is 403; in its own, 201.
    refused = await create_github(oauth, other, bearer(key))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "other_workspace"
    # What belongs to no workspace is the admin's.
    for method, path in (
        ("GET", "/api/providers"),
        ("GET", f"/api/workspaces/{mine}/api-keys"),
        ("POST", f"/api/workspaces/{mine}/api-keys"),
    ):
        sent = {"name": "x", "scopes": ["read"]} if method == "POST" else None
        answer = await oauth.client.request(method, path, json=sent, headers=bearer(key))
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "admin_only"
    me = (await oauth.client.get("/api/me", headers=bearer(key))).json()
    assert me["kind"] == "key" and me["workspace_id"] == mine and me["can_write"] is True


async def test_a_read_key_changes_nothing(oauth: RunningService) -> None:
    mine = _workspace()
    key = (await _create(oauth, mine)).json()["key"]
    own = await _github(oauth, mine, "mine")
    assert (
        await oauth.client.get(f"/api/integrations/{own['id']}", headers=bearer(key))
    ).status_code == 200
    for method, path in (
        ("PATCH", f"/api/integrations/{own['id']}"),
        ("DELETE", f"/api/integrations/{own['id']}"),
        ("POST", "/api/integrations"),
    ):
        answer = await oauth.client.request(method, path, json={"name": "x"}, headers=bearer(key))
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "read_only"
        assert answer.json()["error"]["message"].startswith("this key can only read")
    assert (
        await oauth.client.get(f"/api/integrations/{own['id']}", headers=admin_headers())
    ).json()["name"] == "mine"
