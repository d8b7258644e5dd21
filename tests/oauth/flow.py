"""The user's side of a connect: POST /connect, consent at the provider, the callback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from services.sandbox.oauth_server import REDIRECT_URI
from shared.domain.oauth.tokens import TokenKeeper
from shared.kernel.crypto import SecretBox
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, Document
from tests.support import RunningService, admin_headers


async def start(oauth: RunningService, provider: str, **fields: Any) -> dict[str, Any]:
    answer = await oauth.client.post(
        "/api/auth/oauth/connect",
        json={"provider": provider, "workspace_id": "ws_oauth", **fields},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    started: dict[str, Any] = answer.json()
    return started


async def consent(authorization_url: str) -> dict[str, str]:
    """The browser at the provider: the user consents, the provider redirects back."""
    async with httpx.AsyncClient(verify=tls()) as browser:
        answer = await browser.get(authorization_url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return dict(parse_qsl(urlsplit(location).query))


async def connect(oauth: RunningService, provider: str, **fields: Any) -> dict[str, Any]:
    """A whole connect; returns the integration as the API shows it."""
    started = await start(oauth, provider, **fields)
    answer = await oauth.client.get(
        "/api/auth/oauth/callback", params=await consent(started["authorization_url"])
    )
    assert answer.status_code == 200, answer.text
    integration = await oauth.client.get(
        f"/api/integrations/{answer.json()['integration_id']}", headers=admin_headers()
    )
    found: dict[str, Any] = integration.json()
    return found


def db_of(service: RunningService) -> Database:
    db: Database = service.app.state.runtime.db  # type: ignore[attr-defined]
    return db


def box_of(service: RunningService) -> SecretBox:
    box: SecretBox = service.app.state.runtime.secrets  # type: ignore[attr-defined]
    return box


def keeper(oauth: RunningService) -> TokenKeeper:
    found: TokenKeeper = oauth.app.state.token_keeper  # type: ignore[attr-defined]
    return found


async def stored(service: RunningService, integration_id: str) -> Document:
    doc = await db_of(service).integrations.find_one({"_id": integration_id})
    assert doc is not None
    return doc


async def tokens(service: RunningService, integration_id: str) -> dict[str, str]:
    """The integration's tokens, decrypted (what the database holds is sealed)."""
    doc = await stored(service, integration_id)
    box = box_of(service)
    return {name: box.decrypt(value) for name, value in (doc.get("tokens") or {}).items()}


async def expire_soon(service: RunningService, integration_id: str, seconds_left: float) -> None:
    """Age the token as if it had been issued an hour ago and had `seconds_left` to live."""
    now = utcnow()
    await db_of(service).integrations.update_one(
        {"_id": integration_id},
        {
            "$set": {
                "oauth.obtained_at": now - timedelta(hours=1),
                "oauth.expires_at": now + timedelta(seconds=seconds_left),
                "oauth.refresh_at": now - timedelta(seconds=1),
            }
        },
    )
