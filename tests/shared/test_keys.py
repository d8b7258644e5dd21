"""Secrets at rest: no dump shows one in clear, and keys rotate without downtime.

Covered: incoming-webhook tokens, integration settings, OAuth access and refresh tokens,
provider app secrets, connects in progress (PKCE verifiers), revocations still pending,
outgoing-webhook secrets and headers; destinations' credentials and chat users' own OAuth
tokens are rotated too."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from services.delivery.app import definition as delivery_definition
from services.delivery.outgoing_webhooks.service import open_headers
from services.gateway.app import definition as gateway_definition
from services.oauth.app import definition as oauth_definition
from services.sandbox import FakeGitHub, FakeGoogle
from shared.domain.keys import rotate_all
from shared.domain.platform import create_app
from shared.kernel.crypto import SecretBox
from shared.kernel.mongo import Database, connect
from shared.kernel.settings import DeliverySettings, GatewaySettings, ServiceSettings
from tests.gateway import signing
from tests.infra import Infra
from tests.oauth import flow
from tests.support import RunningService, admin_headers, make_settings, new_namespace, serve


async def _dump(settings: ServiceSettings) -> str:
    client = connect(settings, "test")
    try:
        db = client[settings.mongo_db]
        docs: list[Any] = []
        for name in await db.list_collection_names():
            docs += await db[name].find({}).to_list()
        return json.dumps(docs, default=str)
    finally:
        await client.close()


async def _oauth_state(
    oauth: RunningService, github_app: FakeGitHub, google_app: FakeGoogle
) -> dict[str, Any]:
    """An OAuth-connected integration, a connect in progress, a revocation left pending."""
    stored_app = await oauth.client.put(
        "/api/providers/github",
        json={"client_secret": github_app.client.client_secret},
        headers=admin_headers(),
    )
    assert stored_app.status_code == 200, stored_app.text
    connected = await flow.connect(oauth, "github")
    in_progress = await flow.start(oauth, "github")
    leaving = await flow.connect(oauth, "google")
    leaving_tokens = await flow.tokens(oauth, leaving["id"])
    google_app.revocation_unavailable = 1
    disconnected = await oauth.client.post(
        f"/api/integrations/{leaving['id']}/disconnect", headers=admin_headers()
    )
    assert disconnected.json()["revocation"] == "pending"
    held = await flow.tokens(oauth, connected["id"])
    return {
        "connected": connected["id"],
        "pending": leaving_tokens["refresh_token"],
        "clear": [
            held["access_token"],
            held["refresh_token"],
            *leaving_tokens.values(),
            github_app.client.client_secret,
            in_progress["state"],
        ],
    }


@pytest.fixture
async def oauth_apps() -> AsyncIterator[tuple[FakeGitHub, FakeGoogle]]:
    """Fake GitHub and Google on loopback for the whole test (both key phases)."""
    github_app, google_app = FakeGitHub(), FakeGoogle()
    async with contextlib.AsyncExitStack() as stack:
        for fake in (github_app, google_app):
            running = await stack.enter_async_context(serve(fake.app(), probe="/healthz"))
            fake.base_url = running.base_url
        yield github_app, google_app


async def test_no_secret_in_clear_and_rotation_retires_the_old_key(
    infra: Infra, tmp_path: Path, oauth_apps: tuple[FakeGitHub, FakeGoogle]
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    namespace = new_namespace()

    def settings(cls: type[Any], keys: str) -> Any:
        return make_settings(
            cls, infra, namespace, tmp_path, encryption_keys=keys, egress_allow_cidrs="127.0.0.0/8"
        )

    github_secret = "gh-secret-" + os.urandom(8).hex()
    header_value = "Bearer receiver-token-" + os.urandom(8).hex()
    github_app, google_app = oauth_apps

    def oauth_settings(keys: str) -> ServiceSettings:
        overrides = {
            **github_app.hookhub_settings(github_app.base_url),
            **google_app.hookhub_settings(google_app.base_url),
            "github_client_secret": "",  # given through the API below, stored encrypted
        }
        result: ServiceSettings = settings(ServiceSettings, keys).model_copy(update=overrides)
        return result

    async with (
        serve(create_app(gateway_definition(), settings(GatewaySettings, old_key))) as gateway,
        serve(create_app(oauth_definition(), oauth_settings(old_key))) as oauth,
        serve(create_app(delivery_definition(), settings(DeliverySettings, old_key))) as delivery,
    ):
        oauth_secrets = await _oauth_state(oauth, github_app, google_app)
        hook = (
            await gateway.client.post(
                "/api/incoming-webhooks",
                json={"workspace_id": "ws", "target_channel_id": "ch"},
                headers=admin_headers(),
            )
        ).json()
        token = httpx.URL(hook["url"]).path.rsplit("/", 1)[1]
        integration = (
            await oauth.client.post(
                "/api/integrations",
                json={
                    "provider": "github",
                    "workspace_id": "ws",
                    "settings": {"webhook_secret": github_secret},
                },
                headers=admin_headers(),
            )
        ).json()
        endpoint = (
            await delivery.client.post(
                "/api/outgoing-webhooks",
                json={
                    "workspace_id": "ws",
                    "url": "http://127.0.0.1:9/x",
                    "events": ["*"],
                    "headers": {"Authorization": header_value},
                },
                headers=admin_headers(),
            )
        ).json()
        whsec = endpoint["secret"]
        await gateway.client.post(
            f"/api/webhooks/github/{integration['id']}",
            content=b"{}",
            headers=signing.github(github_secret, "ping", b"{}").headers,
        )

    dump = await _dump(settings(ServiceSettings, old_key))
    for secret in (
        token,
        github_secret,
        header_value,
        whsec,
        whsec.removeprefix("whsec_"),
        *oauth_secrets["clear"],
    ):
        assert secret not in dump, "a secret is stored in clear"

    env = {
        **os.environ,
        "HOOKHUB_MONGO_URI": infra.mongo_uri,
        "HOOKHUB_MONGO_DB": f"hookhub_{namespace}",
        "HOOKHUB_ENCRYPTION_KEYS": f"{new_key},{old_key}",
        "HOOKHUB_ADMIN_TOKEN": "x",
        "HOOKHUB_DATA_DIR": str(tmp_path),
    }
    rotated = subprocess.run(
        [sys.executable, "-m", "services.cli", "keys", "rotate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rotated.returncode == 0, rotated.stderr
    # The webhook-secret one and the OAuth-connected one (the disconnected one holds none).
    assert "integrations: 2 documents re-encrypted" in rotated.stdout
    assert "endpoints: 1 documents re-encrypted" in rotated.stdout
    assert "provider_apps: 1 documents re-encrypted" in rotated.stdout
    assert "oauth_states: 1 documents re-encrypted" in rotated.stdout
    assert "pending_revocations: 1 documents re-encrypted" in rotated.stdout

    # The old key is gone; everything still opens.
    async with (
        serve(create_app(gateway_definition(), settings(GatewaySettings, new_key))) as gateway,
        serve(create_app(delivery_definition(), settings(DeliverySettings, new_key))) as delivery,
        serve(create_app(oauth_definition(), oauth_settings(new_key))) as oauth,
    ):
        # Sealed under the new key: the refresh token opens, the pending revocation too.
        connected = oauth_secrets["connected"]
        await flow.expire_soon(oauth, connected, seconds_left=5)
        keeper = oauth.app.state.token_keeper  # type: ignore[attr-defined]
        fresh = await keeper.access_token(connected)
        assert fresh not in oauth_secrets["clear"] and github_app.valid(fresh)
        await flow.db_of(oauth).pending_revocations.update_many(
            {}, {"$set": {"next_attempt_at": datetime.now(UTC)}}
        )
        assert await oauth.app.state.maintenance.retry_revocations() == 1  # type: ignore[attr-defined]
        assert not google_app.valid(oauth_secrets["pending"])
        again = (
            await gateway.client.get(
                f"/api/incoming-webhooks/{hook['id']}", headers=admin_headers()
            )
        ).json()
        assert again["url"] == hook["url"]
        body = b'{"zen": "rotated"}'
        answer = await gateway.client.post(
            f"/api/webhooks/github/{integration['id']}",
            content=body,
            headers=signing.github(github_secret, "ping", body).headers,
        )
        assert answer.status_code == 200, answer.text
        # Header values are write-only in the API: opened as delivery opens them.
        stored = await flow.db_of(delivery).endpoints.find_one({"_id": endpoint["id"]})
        assert stored is not None
        assert open_headers(stored, flow.box_of(delivery)) == {"Authorization": header_value}
    assert token not in await _dump(settings(ServiceSettings, new_key))


async def test_rotation_rewrites_a_destination_s_credentials_and_users_own_tokens(
    db: Database,
) -> None:
    """A destination's credentials (`destination.secrets`, beside what is not sealed) and a
    chat user's own OAuth tokens (`account_links`) are rewritten under the new key too:
    were they not, removing the old key would leave the destination unable to send and
    the user's link unable to act."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = SecretBox([old])
    config = {"queue_url": "https://sqs.eu-west-1.amazonaws.com/1/q", "region": "eu-west-1"}
    await db["endpoints"].insert_one(
        {
            "_id": "ep_sqs",
            "destination": {
                "type": "sqs",
                "config": config,
                "secrets": {"secret_access_key": before.encrypt("aws-secret")},
            },
            "secrets": [{"secret": before.encrypt("whsec_1"), "expires_at": None}],
        }
    )
    await db["account_links"].insert_one(
        {
            "_id": "lnk_ada",
            "tokens": {
                "access_token": before.encrypt("gho_a"),
                "refresh_token": before.encrypt("ghr_b"),
            },
        }
    )
    counts = await rotate_all(db, SecretBox([new, old]))
    assert (counts["endpoints"], counts["account_links"]) == (1, 1)

    after = SecretBox([new])  # the old key removed
    endpoint = await db["endpoints"].find_one({"_id": "ep_sqs"})
    assert endpoint is not None
    destination = endpoint["destination"]
    assert after.decrypt(destination["secrets"]["secret_access_key"]) == "aws-secret"
    assert (destination["type"], destination["config"]) == ("sqs", config)
    assert after.decrypt(endpoint["secrets"][0]["secret"]) == "whsec_1"
    link = await db["account_links"].find_one({"_id": "lnk_ada"})
    assert link is not None
    assert {name: after.decrypt(v) for name, v in link["tokens"].items()} == {
        "access_token": "gho_a",
        "refresh_token": "ghr_b",
    }
