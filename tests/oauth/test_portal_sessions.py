"""Portal sessions (SPEC §13) and the end of keys across replicas.

A session's token is a workspace key of its own (`hhp_…`), read-only when asked, that ends
at its expiry or with expire-all; a key revoked or a session ended through one replica is
refused by another after that replica's next cache refresh, which comes every
`HOOKHUB_API_KEY_REFRESH_SECONDS` (1 s; at most 4): within SPEC's 5 s. The tests wait for a
refresh begun after the change, by construction, not for a time."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from pymongo import AsyncMongoClient

from services.delivery.app import definition as delivery_definition
from shared.domain import api_keys
from shared.domain.platform import create_app
from shared.kernel.crypto import fingerprint
from shared.kernel.ids import new_id, utcnow
from shared.kernel.settings import DeliverySettings, ServiceSettings
from tests.infra import Infra
from tests.oauth.test_api_keys import bearer, create_github
from tests.support import RunningService, admin_headers, make_settings, refreshed, serve


def _workspace() -> str:
    return f"ws_{uuid.uuid4().hex[:8]}"


async def _session(oauth: RunningService, workspace: str, **body: Any) -> Any:
    answer = await oauth.client.post(
        f"/api/workspaces/{workspace}/portal-sessions", json=body, headers=admin_headers()
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_session_opens_the_console_in_its_workspace_through_the_fragment(
    oauth: RunningService,
) -> None:
    workspace = _workspace()
    before = utcnow()
    session = await _session(oauth, workspace)
    token: str = session["token"]
    assert token.startswith("hhp_") and session["id"].startswith("pts_")
    url = urlsplit(session["url"])
    # The token in the fragment only: never sent to a server by a browser, never logged.
    assert url.path == "/portal" and url.query == "" and url.fragment == f"token={token}"
    expires = session["expires_at"]
    assert session["read_only"] is False
    assert timedelta(seconds=3590) < _time(expires) - before < timedelta(seconds=3610)
    me = (await oauth.client.get("/api/me", headers=bearer(token))).json()
    assert me == {
        "kind": "portal",
        "id": session["id"],
        "workspace_id": workspace,
        "can_write": True,
        "expires_at": expires,
    }
    # It acts in its workspace: it may create there, not elsewhere, and nothing global.
    made = await create_github(oauth, workspace, bearer(token))
    assert made.status_code == 201, made.text
    elsewhere = await create_github(oauth, _workspace(), bearer(token))
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error"]["message"].startswith(
        f"this portal session acts in workspace {workspace} only"
    )
    providers = await oauth.client.get("/api/providers", headers=bearer(token))
    assert providers.status_code == 403
    # A session cannot open another (it would outlive itself).
    again = await oauth.client.post(
        f"/api/workspaces/{workspace}/portal-sessions", json={}, headers=bearer(token)
    )
    assert again.status_code == 403 and again.json()["error"]["code"] == "not_a_key"


async def test_a_read_only_session_changes_nothing_and_lengths_are_bounded(
    oauth: RunningService,
) -> None:
    workspace = _workspace()
    session = await _session(oauth, workspace, read_only=True, expires_in=600)
    assert session["read_only"] is True
    token = session["token"]
    assert (await oauth.client.get("/api/integrations", headers=bearer(token))).status_code == 200
    refused = await create_github(oauth, workspace, bearer(token))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "read_only"
    # A session is not a key, and is told what it is and what would make the change.
    assert refused.json()["error"]["message"] == (
        "this portal session can only read (it was opened read-only): a change needs a "
        "portal session opened without read_only"
    )
    for expires_in in (0, 59, 604801, "soon"):
        answer = await oauth.client.post(
            f"/api/workspaces/{workspace}/portal-sessions",
            json={"expires_in": expires_in},
            headers=admin_headers(),
        )
        assert answer.status_code == 422, (expires_in, answer.text)
    longest = await _session(oauth, workspace, expires_in=604800)
    assert _time(longest["expires_at"]) - utcnow() > timedelta(days=6, hours=23)


async def test_a_write_key_opens_sessions_of_its_own_workspace_only(
    oauth: RunningService,
) -> None:
    workspace = _workspace()
    write = (
        await oauth.client.post(
            f"/api/workspaces/{workspace}/api-keys",
            json={"name": "chat product", "scopes": ["read", "write"]},
            headers=admin_headers(),
        )
    ).json()["key"]
    read = (
        await oauth.client.post(
            f"/api/workspaces/{workspace}/api-keys",
            json={"name": "viewer", "scopes": ["read"]},
            headers=admin_headers(),
        )
    ).json()["key"]
    own = await oauth.client.post(
        f"/api/workspaces/{workspace}/portal-sessions", json={}, headers=bearer(write)
    )
    assert own.status_code == 201
    other = await oauth.client.post(
        f"/api/workspaces/{_workspace()}/portal-sessions", json={}, headers=bearer(write)
    )
    assert other.status_code == 403 and other.json()["error"]["code"] == "other_workspace"
    by_read = await oauth.client.post(
        f"/api/workspaces/{workspace}/portal-sessions", json={}, headers=bearer(read)
    )
    assert by_read.status_code == 403 and by_read.json()["error"]["code"] == "read_only"
    # Sessions are not keys: the workspace's key list does not show them.
    keys = (
        await oauth.client.get(f"/api/workspaces/{workspace}/api-keys", headers=admin_headers())
    ).json()["data"]
    assert sorted(k["name"] for k in keys) == ["chat product", "viewer"]


async def test_an_expired_session_is_refused_at_once(
    oauth: RunningService, oauth_settings: ServiceSettings
) -> None:
    workspace = _workspace()
    token = api_keys.new_key(api_keys.PORTAL_PREFIX)
    now = utcnow()
    client: AsyncMongoClient[Any] = AsyncMongoClient(oauth_settings.mongo_uri)
    try:
        await client[oauth_settings.mongo_db][api_keys.COLLECTION].insert_one(
            {
                "_id": new_id("pts"),
                "kind": api_keys.PORTAL,
                "workspace_id": workspace,
                "key_hash": fingerprint(token),
                "scopes": ["read"],
                "expires_at": now - timedelta(seconds=1),
                "created_at": now - timedelta(hours=1),
                "updated_at": now - timedelta(hours=1),
                "deleted_at": None,
            }
        )
    finally:
        await client.close()
    answer = await oauth.client.get("/api/integrations", headers=bearer(token))
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_token"


@contextlib.asynccontextmanager
async def _delivery_replica(
    infra: Infra, oauth_settings: ServiceSettings, data_dir: Any
) -> AsyncIterator[RunningService]:
    """A delivery service on oauth's database: another replica's view of the keys."""
    settings = make_settings(
        DeliverySettings,
        infra,
        oauth_settings.topic_namespace,
        data_dir,
        mongo_db=oauth_settings.mongo_db,
        encryption_keys=oauth_settings.encryption_keys,
    )
    async with serve(create_app(delivery_definition(), settings)) as running:
        yield running


async def test_keys_revoked_and_sessions_ended_are_refused_by_every_replica(
    oauth: RunningService,
    oauth_settings: ServiceSettings,
    infra: Infra,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    assert oauth_settings.api_key_refresh_seconds <= 4  # plus a request: within SPEC's 5 s
    workspace = _workspace()
    async with contextlib.AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                _delivery_replica(infra, oauth_settings, tmp_path_factory.mktemp("replica"))
            )
            for _ in range(2)
        ]
        key = (
            await oauth.client.post(
                f"/api/workspaces/{workspace}/api-keys",
                json={"name": "bot", "scopes": ["read"]},
                headers=admin_headers(),
            )
        ).json()
        sessions = [await _session(oauth, workspace) for _ in range(2)]
        other = await _session(oauth, _workspace())
        tokens = [key["key"], *(s["token"] for s in sessions), other["token"]]
        for replica in replicas:  # each learns of them (a miss is looked up once)
            for token in tokens:
                answer = await replica.client.get("/api/outgoing-webhooks", headers=bearer(token))
                assert answer.status_code == 200, answer.text

        revoked = await oauth.client.delete(
            f"/api/workspaces/{workspace}/api-keys/{key['id']}", headers=admin_headers()
        )
        assert revoked.status_code == 204
        ended = await oauth.client.post(
            f"/api/workspaces/{workspace}/portal-sessions/expire-all", headers=admin_headers()
        )
        assert ended.json() == {"expired": 2}
        await refreshed(*(r.app.state.credentials.keys.cache for r in replicas))  # type: ignore[attr-defined]
        for replica in replicas:
            for token in tokens[:3]:
                answer = await replica.client.get("/api/outgoing-webhooks", headers=bearer(token))
                assert answer.status_code == 401, answer.text
            # Another workspace's session is untouched.
            kept = await replica.client.get("/api/outgoing-webhooks", headers=bearer(tokens[3]))
            assert kept.status_code == 200


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
