"""Calls to a provider on behalf of one integration: the token from TokenKeeper (refreshed
once when the provider rejects it), who our bot is there (cached), and the provider's users
(cached), so that nothing above this module handles tokens or caches provider answers.

It joins the domain's integrations and tokens to the chat providers' calls, hence its place
among the providers, above the domain (docs/development.md, Layers)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import structlog
from fastapi import Depends, Request

from shared.domain import tenancy
from shared.domain.integrations.model import IntegrationSnapshot, Status, integration_event
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.tokens import NotConnected, TokenKeeper
from shared.domain.operational import publish_integration_event
from shared.kernel.cache import Kept, RefreshingCache
from shared.kernel.errors import HookhubError, Invalid, NotFound
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.providers.chat import Author, BotIdentity, ChatProvider, TokenRejected

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Display names and avatars change rarely; an hour-old one is good enough for a message.
AUTHOR_TTL_SECONDS = 3600.0
AUTHORS_KEPT = 50_000
TOKEN_KEPT_SECONDS = 60.0


class NotAChatIntegration(Invalid):
    code = "not_a_chat_integration"


class Connections:
    def __init__(
        self,
        providers: Mapping[str, ChatProvider],
        tokens: TokenKeeper,
        integrations: RefreshingCache[str, IntegrationSnapshot],
        repository: IntegrationRepository,
        publisher: EventPublisher,
        credential: Callable[[IntegrationSnapshot], str | None] = lambda integration: None,
    ) -> None:
        """`credential`: what an integration's network builds as its token from its settings
        (`shared.providers.chats.network_credential`), else None: TokenKeeper's token."""
        self.providers = providers
        self._credential = credential
        self._tokens = tokens
        self._integrations = integrations
        self._repository = repository
        self._publisher = publisher
        self._identities: dict[str, BotIdentity] = {}
        self._tokens_kept: dict[str, tuple[str, float]] = {}
        self._authors: Kept[tuple[str, str], Author | None] = Kept(AUTHORS_KEPT)

    async def integration(self, integration_id: str) -> IntegrationSnapshot:
        found = await self._integrations.lookup(integration_id)
        if found is None or self._integrations.gone(integration_id):
            raise NotFound(f"integration {integration_id} not found")
        tenancy.require_visible(found.workspace_id, f"integration {integration_id}")
        return found

    async def integration_for_account(
        self, workspace_id: str, provider: str, account_id: str
    ) -> IntegrationSnapshot | None:
        """The workspace's integration with this provider account (a Slack team), if any."""
        doc = await self._repository.find_account(workspace_id, provider, account_id)
        return None if doc is None else await self._integrations.lookup(str(doc["_id"]))

    async def integrations_of(self, workspace_id: str, provider: str) -> list[IntegrationSnapshot]:
        """The workspace's integrations of this provider."""
        found = []
        for integration_id in await self._repository.of_provider(workspace_id, provider):
            snapshot = await self._integrations.lookup(integration_id)
            if snapshot is not None:
                found.append(snapshot)
        return found

    def provider(self, integration: IntegrationSnapshot) -> ChatProvider:
        provider = self.providers.get(integration.provider)
        if provider is None:
            raise NotAChatIntegration(
                f"{integration.provider} integrations cannot be mapped to chat channels; "
                f"these can: {', '.join(sorted(self.providers))}"
            )
        return provider

    def connected(self, integration: IntegrationSnapshot) -> bool:
        return integration.enabled and integration.status == Status.CONNECTED

    async def token(self, integration_id: str, rejected: str | None = None) -> str:
        """The integration's token from TokenKeeper, kept here for up to a minute (and never
        past its expiry): reading and decrypting it per message was a MongoDB round trip on
        every post. A token the provider rejects is dropped and asked for again."""
        now = time.monotonic()
        kept = self._tokens_kept.get(integration_id)
        if rejected is None and kept is not None and kept[1] > now:
            return kept[0]
        integration = await self._integrations.lookup(integration_id)
        own = None if integration is None else self._credential(integration)
        if integration is not None and own is not None:
            if own == rejected:
                await self.refused(
                    integration_id,
                    "credentials_rejected",
                    f"{integration.provider} refused the integration's credentials: "
                    "PATCH its settings with working ones",
                    whole=True,
                )
                raise NotConnected(f"integration {integration_id}'s credentials were refused")
            self._tokens_kept[integration_id] = (own, now + TOKEN_KEPT_SECONDS)
            return own
        token, until = await self._tokens.access_token_until(integration_id, rejected=rejected)
        keep = TOKEN_KEPT_SECONDS
        if until is not None:
            keep = min(keep, (until - utcnow()).total_seconds())
        self._tokens_kept[integration_id] = (token, now + keep)
        return token

    async def call(self, integration_id: str, action: Callable[[str], Awaitable[T]]) -> T:
        """`action(token)`; when the provider rejects the token, once more with a token
        TokenKeeper refreshed (or its NotConnected when it cannot be)."""
        token = await self.token(integration_id)
        try:
            return await action(token)
        except TokenRejected:
            fresh = await self.token(integration_id, rejected=token)
            if fresh == token:
                raise
            return await action(fresh)

    async def refused(self, integration_id: str, code: str, message: str, *, whole: bool) -> None:
        """A permanent refusal, recorded on the integration (`last_error`, `error_count`);
        `whole`: it concerns the connection itself (account deactivated, scope missing),
        which goes to status `error` with `integration.error` published."""
        status = Status.ERROR if whole else None
        doc = await self._repository.record_error(
            integration_id, f"{code}: {message}", status=status
        )
        if doc is None:
            return
        self._integrations.apply(doc)
        self._identities.pop(integration_id, None)
        self._tokens_kept.pop(integration_id, None)
        if whole and doc.get("status") == Status.ERROR.value:
            try:
                await publish_integration_event(
                    self._publisher, integration_event(doc, "error", reason=code, message=message)
                )
            except HookhubError as exc:  # the stored status is what counts
                log.warning("integration_event_not_published", error=exc.message)

    async def identity(self, integration: IntegrationSnapshot) -> BotIdentity:
        """Who we post as on this integration, asked of the provider once per process."""
        known = self._identities.get(integration.id)
        if known is None:
            provider = self.provider(integration)
            known = await self.call(integration.id, provider.identity)
            self._identities[integration.id] = known
        return known

    async def author(self, integration: IntegrationSnapshot, user_id: str) -> Author | None:
        key = (integration.id, user_id)
        cached = self._authors.entry(key)
        if cached is not None and cached[1]:
            return cached[0]
        provider = self.provider(integration)
        try:
            found = await self.call(integration.id, lambda token: provider.user(token, user_id))
        except Exception as exc:  # a name is nice to have; the message goes on without it
            log.info("author_lookup_failed", user_id=user_id, error=repr(exc))
            return cached[0] if cached else None
        self._authors.put(key, found, AUTHOR_TTL_SECONDS)
        return found


async def integration_in_scope(request: Request, integration_id: str) -> None:
    """A router dependency of the routes nested under an integration: 404 when there is no
    such integration, or when the request is confined to a workspace the integration is not
    of (the same answer: another workspace's key learns nothing of it). A list of its
    mappings would otherwise answer an empty page, as if the integration were there."""
    connections: Connections = request.app.state.connections
    await connections.integration(integration_id)


InScope = Depends(integration_in_scope)
