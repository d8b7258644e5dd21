"""Secrets at rest: no dump shows one in clear, and keys rotate without downtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from services.delivery.app import definition as delivery_definition
from services.gateway.app import definition as gateway_definition
from services.oauth.app import definition as oauth_definition
from shared.http.app import create_app
from shared.mongo import connect
from shared.settings import DeliverySettings, GatewaySettings, ServiceSettings
from tests.gateway import signing
from tests.infra import Infra
from tests.support import admin_headers, make_settings, new_namespace, serve


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


async def test_no_secret_in_clear_and_rotation_retires_the_old_key(
    infra: Infra, tmp_path: Path
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    namespace = new_namespace()

    def settings(cls: type[Any], keys: str) -> Any:
        return make_settings(
            cls, infra, namespace, tmp_path, encryption_keys=keys, egress_allow_cidrs="127.0.0.0/8"
        )

    github_secret = "gh-secret-" + os.urandom(8).hex()
    header_value = "Bearer receiver-token-" + os.urandom(8).hex()
    async with (
        serve(create_app(gateway_definition(), settings(GatewaySettings, old_key))) as gateway,
        serve(create_app(oauth_definition(), settings(ServiceSettings, old_key))) as oauth,
        serve(create_app(delivery_definition(), settings(DeliverySettings, old_key))) as delivery,
    ):
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
    for secret in (token, github_secret, header_value, whsec, whsec.removeprefix("whsec_")):
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
    assert "integrations: 1 documents re-encrypted" in rotated.stdout
    assert "endpoints: 1 documents re-encrypted" in rotated.stdout

    # The old key is gone; everything still opens.
    async with (
        serve(create_app(gateway_definition(), settings(GatewaySettings, new_key))) as gateway,
        serve(create_app(delivery_definition(), settings(DeliverySettings, new_key))) as delivery,
    ):
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
        fetched = (
            await delivery.client.get(
                f"/api/outgoing-webhooks/{endpoint['id']}", headers=admin_headers()
            )
        ).json()
        assert fetched["headers"] == {"Authorization": header_value}
    assert token not in await _dump(settings(ServiceSettings, new_key))
