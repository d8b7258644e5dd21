"""Revocation at the provider: tried at once on disconnect, retried while unreachable.

The tokens are written to `pending_revocations` (sealed) before the integration forgets
them, so a crash or an unreachable provider leaves them to the retry loop instead of
leaving a live grant behind. A provider that refuses (bad app credentials, ...) is not
retried; the record stays, without its tokens, with the reason, for operators.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta

import httpx
import structlog

from services.oauth.revocations.repository import RevocationRepository
from shared.domain.integrations.model import Provider
from shared.domain.oauth.provider import OAuthProvider, ProviderApi, ProviderRefused
from shared.domain.oauth.tokens import backoff
from shared.kernel.crypto import SecretBox
from shared.kernel.errors import HookhubError, Unavailable
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import Document
from shared.kernel.settings import Settings
from shared.providers import OAUTH_PROVIDERS
from shared.providers.apps import AppDirectory
from shared.providers.telegram.api import TelegramApi, TelegramRefused

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 12  # 30 s, 1 min, 2 min, ... then hourly: about seven hours in all
# How long an attempt holds its record before another loop may take it.
HOLD = timedelta(seconds=60)


class Revoker:
    def __init__(
        self,
        repository: RevocationRepository,
        apps: AppDirectory,
        box: SecretBox,
        settings: Settings,
        client: httpx.AsyncClient,
        telegram: TelegramApi,
        providers: Mapping[str, OAuthProvider] = OAUTH_PROVIDERS,
    ) -> None:
        self._repository = repository
        self._apps = apps
        self._box = box
        self._settings = settings
        self._client = client
        self._telegram = telegram
        self._providers = providers

    def offered(self, provider: str) -> bool:
        """Whether disconnecting from this provider revokes anything there."""
        if provider == Provider.TELEGRAM:
            return True  # deleteWebhook: the bot stops sending us updates
        return provider in self._providers and self._providers[provider].revocable

    async def revoke_if_offered(self, holder: Document, tokens: dict[str, str]) -> bool:
        """`revoke` where the provider offers revocation (Atlassian does not: the user
        removes the app from their account); False where it does not."""
        if not self.offered(holder["provider"]):
            return False
        return await self.revoke(holder, tokens)

    async def revoke(self, integration: Document, tokens: dict[str, str]) -> bool:
        """Revoke now; True when done, False when left to the retry loop."""
        now = utcnow()
        doc = {
            "_id": new_id("rvk"),
            "integration_id": integration["_id"],
            "workspace_id": integration["workspace_id"],
            "provider": integration["provider"],
            "tokens": {name: self._box.encrypt(value) for name, value in tokens.items()},
            "status": "pending",
            "attempts": 0,
            "last_error": None,
            "created_at": now,
            "next_attempt_at": now + HOLD,  # held by this attempt
        }
        await self._repository.insert(doc)
        return await self._attempt(doc, tokens)

    async def retry_due(self, limit: int = 50) -> int:
        """One pass of the loop; returns how many were revoked."""
        done = 0
        for doc in await self._repository.claim_due(utcnow(), HOLD, limit):
            tokens = {k: self._box.decrypt(v) for k, v in (doc.get("tokens") or {}).items()}
            done += await self._attempt(doc, tokens)
        return done

    async def _attempt(self, doc: Document, tokens: dict[str, str]) -> bool:
        attempts = int(doc.get("attempts") or 0) + 1
        try:
            await self._at_provider(doc["provider"], tokens)
        except Unavailable as exc:
            failed = attempts >= MAX_ATTEMPTS
            log.warning(
                "revocation_failed",
                provider=doc["provider"],
                integration_id=doc["integration_id"],
                attempts=attempts,
                error=exc.message,
                given_up=failed,
            )
            fields = {"attempts": attempts, "last_error": exc.message}
            if failed:
                fields.update(status="failed", tokens={})
            else:
                fields["next_attempt_at"] = utcnow() + backoff(attempts)
            await self._repository.update(doc["_id"], fields)
            return False
        except HookhubError as exc:
            log.warning(
                "revocation_refused",
                provider=doc["provider"],
                integration_id=doc["integration_id"],
                error=exc.message,
            )
            await self._repository.update(
                doc["_id"],
                {"attempts": attempts, "last_error": exc.message, "status": "failed", "tokens": {}},
            )
            return False
        await self._repository.delete(doc["_id"])
        log.info("revoked", provider=doc["provider"], integration_id=doc["integration_id"])
        return True

    async def _at_provider(self, name: str, tokens: dict[str, str]) -> None:
        if name == Provider.TELEGRAM:
            # A token that no longer works has no webhook left to delete.
            with contextlib.suppress(TelegramRefused):
                await self._telegram.delete_webhook(tokens["bot_token"])
            return
        provider = self._providers[name]
        app = await self._apps.oauth_client(name)
        if app is None:
            raise ProviderRefused(provider.app_missing())
        provider.check_app(app)  # credentials HTTP Basic cannot carry: refused, nothing sent
        api = ProviderApi(self._client, provider.endpoints(self._settings), provider.title)
        await provider.revoke(api, app, tokens)
