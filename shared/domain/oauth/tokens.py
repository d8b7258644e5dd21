"""Tokens at rest and fresh: sealed in the integration document, refreshed under a MongoDB
lease so that two processes never both spend a rotating refresh token.

`TokenKeeper.access_token(integration_id)` is what sync, the importer and actions call. It
returns a valid access token, refreshing first when the token has expired or is about to,
or when the caller says the provider rejected it (`rejected=`, after a 401).

In the `integrations` document:

- `tokens`: `{access_token, refresh_token?, ...}`, each sealed (shared.kernel.crypto.SecretBox);
  `hookhub keys rotate` re-encrypts them (shared.domain.keys.SEALED).
- `oauth`: `{token_type, scopes, obtained_at, expires_at, refresh_at, refreshed_at,
  refresh_failures, last_refresh_error, lease_owner, lease_until}` in the clear.

The refresh, wherever it starts (a caller, or the oauth service's loop ahead of expiry):

1. Take the lease: one conditional update that succeeds only if nobody holds an unexpired
   one, and returns the document as it is after taking it (the re-read).
2. If that document no longer needs a refresh, another process did it: use its token.
3. Spend the refresh token (bounded by half the lease, so the lease cannot run out first),
   then store the new tokens in the same write that releases the lease. The old refresh
   token is replaced only by that write; an answer without one keeps the old one.
4. Callers that found the lease taken wait for it to be released, then re-read.

Integrations without an OAuth access token use the bot token in their sealed settings
(`secrets.bot_token`: Telegram; Slack and Discord bots given one). It is handed out as it
is and cannot be refreshed: when the provider rejects it, the integration goes to `error`
(under the same lease, so that it happens once) and the caller gets NotConnected.

The providers are given, not imported (the domain is below them: docs/development.md,
Layers): their OAuth descriptions, their apps' credentials, and which take a bot token.
`shared.providers.apps.token_keeper` builds one with all of hookhub's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Container, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from shared.domain.integrations.model import Status, integration_event
from shared.domain.oauth.client import OAuthClient
from shared.domain.oauth.provider import (
    AppCredentials,
    AppMisconfigured,
    OAuthProvider,
    ProviderRefused,
    ProviderUnreachable,
    TokenSet,
)
from shared.domain.operational import publish_integration_event
from shared.kernel import tracing
from shared.kernel.crypto import SecretBox
from shared.kernel.errors import Conflict, HookhubError, NotFound
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.kernel.settings import Settings

log = structlog.get_logger(__name__)

# Callers treat a token this close to its expiry as expired (at most a tenth of its life).
EXPIRY_LEEWAY_SECONDS = 60.0
# After a refresh that failed for a passing reason: 30 s, 1 min, 2 min, ... up to an hour.
BACKOFF_FIRST_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0


class NotConnected(Conflict):
    """No usable token: never connected, disconnected, or the grant is gone (reconnect)."""

    code = "integration_not_connected"


def token_state(
    secrets: Mapping[str, str], tokens: TokenSet, box: SecretBox, now: datetime, margin: float
) -> tuple[dict[str, str], dict[str, Any]]:
    """(`tokens`, `oauth`) fields for a token set: the secrets sealed, the timing in clear.

    The token is due for refresh `margin` seconds before it expires, but never before half
    its lifetime, so a short-lived token is not refreshed again at once.
    """
    expires_at = refresh_at = None
    if tokens.expires_in:
        expires_at = now + timedelta(seconds=tokens.expires_in)
        if secrets.get("refresh_token"):
            refresh_at = expires_at - timedelta(seconds=min(margin, tokens.expires_in / 2))
    state = {
        "token_type": tokens.token_type,
        "scopes": list(tokens.scopes),
        "obtained_at": now,
        "expires_at": expires_at,
        "refresh_at": refresh_at,
        "refresh_failures": 0,
        "last_refresh_error": None,
    }
    return {name: box.encrypt(value) for name, value in secrets.items()}, state


def backoff(failures: int) -> timedelta:
    """How long to wait after the `failures`-th failure in a row (refreshes, revocations)."""
    return timedelta(seconds=min(BACKOFF_FIRST_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS))


def _oauth(doc: Document) -> dict[str, Any]:
    return doc.get("oauth") or {}


def _failures(doc: Document) -> int:
    return int(_oauth(doc).get("refresh_failures") or 0)


class OAuthApps(Protocol):
    """hookhub's own app at each provider (shared.providers.apps.AppDirectory)."""

    async def oauth_client(self, provider: str) -> AppCredentials | None:
        """The app's OAuth client credentials; None when none is configured."""
        ...


class TokenStore(Protocol):
    """Where tokens are kept, by document id: the integrations (IntegrationRepository),
    or chat users' oauth links (shared.domain.account_links.LinkTokens), in the same
    fields (`tokens`, `oauth`, `status`)."""

    async def get(self, doc_id: str) -> Document | None: ...

    async def update(self, doc_id: str, fields: dict[str, Any]) -> Document | None: ...

    async def take_refresh_lease(
        self, doc_id: str, owner: str, now: datetime, until: datetime
    ) -> Document | None: ...

    async def release_refresh_lease(self, doc_id: str, owner: str) -> None: ...

    async def write_under_lease(
        self, doc_id: str, owner: str, fields: dict[str, Any]
    ) -> Document | None: ...


class TokenKeeper:
    """`providers`: the providers connected through OAuth, by name; `bot_tokens`: the
    providers whose integrations take a bot token in their settings."""

    def __init__(
        self,
        repository: TokenStore,
        apps: OAuthApps,
        box: SecretBox,
        settings: Settings,
        publisher: EventPublisher,
        providers: Mapping[str, OAuthProvider],
        bot_tokens: Container[str],
    ) -> None:
        self._repository = repository
        self._apps = apps
        self._box = box
        self._settings = settings
        self._publisher = publisher
        self._providers = providers
        self._bot_tokens = bot_tokens

    # -- for callers ------------------------------------------------------------------------

    async def access_token(self, integration_id: str, *, rejected: str | None = None) -> str:
        """A valid access token for the integration, refreshed first if it must be; for an
        integration without one, its bot token.

        `rejected`: the token the provider just answered 401 to; it is refreshed unless
        another caller already replaced it (a rejected bot token puts the integration in
        error). Raises NotConnected (reconnect needed), ProviderUnreachable (the provider
        cannot refresh it now) or NotFound.
        """
        token, _ = await self.access_token_until(integration_id, rejected=rejected)
        return token

    async def access_token_until(
        self, integration_id: str, *, rejected: str | None = None
    ) -> tuple[str, datetime | None]:
        """`access_token`, with the moment until which a caller may keep using it without
        asking again (a little before it expires; None: it does not expire, as bot tokens).
        For callers that keep tokens in memory instead of reading MongoDB per call."""
        doc = self._connected(await self._repository.get(integration_id), integration_id)
        if not (doc.get("tokens") or {}).get("access_token"):
            return await self._bot_token(doc, rejected), None

        def stale(d: Document) -> bool:
            return self._expired(d) or (
                rejected is not None and self._open(d).get("access_token") == rejected
            )

        if stale(doc):
            doc = await self._refresh(doc, stale, on_demand=True, rejected=rejected)
        return self._open(doc)["access_token"], self._usable_until(doc)

    async def refresh_if_due(self, integration_id: str) -> None:
        """The loop's entry: refresh ahead of expiry; failures are recorded, not raised."""
        try:
            doc = self._connected(await self._repository.get(integration_id), integration_id)
            await self._refresh(doc, self._due, on_demand=False, rejected=None)
        except HookhubError as exc:
            log.info("token_refresh_skipped", integration_id=integration_id, reason=exc.message)

    async def _bot_token(self, doc: Document, rejected: str | None) -> str:
        def rejected_now(d: Document) -> bool:
            return rejected is not None and self._bot_token_of(d) == rejected

        if rejected_now(doc):
            # Through the refresh lease: one caller records it, the others then read the
            # integration in error (NotConnected), or the new bot token given meanwhile.
            doc = await self._refresh(doc, rejected_now, on_demand=True, rejected=rejected)
        token = self._bot_token_of(doc)
        if not token:
            raise NotConnected(f"integration {doc['_id']} has no token")
        return token

    # -- the refresh ------------------------------------------------------------------------

    async def _refresh(
        self,
        doc: Document,
        needed: Callable[[Document], bool],
        *,
        on_demand: bool,
        rejected: str | None,
    ) -> Document:
        """`doc`: the integration as just read; re-read after each wait for another's lease.
        A span of its own (the token endpoint's call under it): in the caller's trace on
        demand, else the first of a trace (the oauth service's loop)."""
        integration_id = str(doc["_id"])
        with tracing.span(
            "oauth refresh",
            root=not on_demand,
            provider=doc.get("provider"),
            integration_id=integration_id,
            workspace_id=doc.get("workspace_id"),
        ):
            lease = self._settings.oauth_lease_seconds
            deadline = time.monotonic() + 2 * lease
            failures_before: int | None = None
            pause = 0.02
            while True:
                if not needed(doc):
                    return doc
                if failures_before is None:
                    failures_before = _failures(doc)
                    if on_demand and self._backing_off(doc):
                        return self._after_failure(doc, on_demand, rejected)
                elif _failures(doc) > failures_before:
                    # The process that held the lease tried and failed; one attempt is enough.
                    return self._after_failure(doc, on_demand, rejected)
                owner = uuid.uuid4().hex
                now = utcnow()
                held = await self._repository.take_refresh_lease(
                    integration_id, owner, now, now + timedelta(seconds=lease)
                )
                if held is not None:
                    return await self._under_lease(
                        held, owner, needed, failures_before, on_demand, rejected
                    )
                if time.monotonic() > deadline:
                    raise ProviderUnreachable(
                        "the token refresh held by another process took too long"
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.25)
                doc = self._connected(await self._repository.get(integration_id), integration_id)

    async def _under_lease(
        self,
        held: Document,
        owner: str,
        needed: Callable[[Document], bool],
        failures_before: int,
        on_demand: bool,
        rejected: str | None,
    ) -> Document:
        """With the refresh lease (`held`: the integration as it took it): refreshed here,
        unless another process refreshed it, or tried and failed, since it was read; the
        lease released after."""
        try:
            if not needed(held):
                return held  # refreshed by another process since we read it
            if _failures(held) > failures_before:
                return self._after_failure(held, on_demand, rejected)
            return await self._refresh_held(held, owner, on_demand, rejected)
        finally:
            await self._repository.release_refresh_lease(str(held["_id"]), owner)

    async def _refresh_held(
        self, doc: Document, owner: str, on_demand: bool, rejected: str | None
    ) -> Document:
        integration_id = str(doc["_id"])
        provider = self._providers.get(doc["provider"])
        secrets = self._open(doc)
        if not secrets.get("access_token"):
            reason = (
                f"{doc['provider'].title()} rejected the bot token; give a new one in "
                f"settings.bot_token (PATCH /api/integrations/{doc['_id']})"
            )
            await self._fail(doc, owner, "bot_token_rejected", reason)
            raise NotConnected(reason)
        if provider is None or not secrets.get("refresh_token"):
            reason = (
                "the provider rejected the access token"
                if rejected is not None
                else "the access token expired"
            ) + " and there is no refresh token"
            await self._fail(doc, owner, "token_expired", reason)
            raise NotConnected(f"{reason}; reconnect the integration")
        app = await self._apps.oauth_client(provider.name)
        if app is None:
            return await self._postpone(doc, owner, provider.app_missing(), on_demand, rejected)
        try:
            client = OAuthClient(provider, app, self._settings)
        except AppMisconfigured as exc:  # as with no app: nothing sent, retried once fixed
            return await self._postpone(doc, owner, exc.message, on_demand, rejected)
        try:
            # Half the lease: the lease cannot expire while the refresh token is in flight.
            async with asyncio.timeout(self._settings.oauth_lease_seconds / 2):
                tokens = provider.parse_refreshed(await client.refresh(secrets["refresh_token"]))
        except ProviderRefused as exc:
            if exc.error in provider.permanent_errors:
                await self._fail(doc, owner, exc.error, exc.message)
                raise NotConnected(f"{exc.message}; reconnect the integration") from exc
            return await self._postpone(doc, owner, exc.message, on_demand, rejected)
        except (ProviderUnreachable, TimeoutError) as exc:
            message = getattr(exc, "message", "") or f"{provider.title} did not answer in time"
            return await self._postpone(doc, owner, message, on_demand, rejected)

        now = utcnow()
        # An answer without a refresh token keeps the old one (Google's never carry one).
        merged = {**secrets, **tokens.secrets()}
        sealed, state = token_state(
            merged, tokens, self._box, now, self._settings.oauth_refresh_margin_seconds
        )
        fields = {
            "tokens": sealed,
            **{f"oauth.{name}": value for name, value in state.items()},
            "oauth.refreshed_at": now,
        }
        stored = await self._repository.write_under_lease(integration_id, owner, fields)
        if stored is None:
            # Only if we overran the lease (which the timeout above prevents): the tokens we
            # hold are still the newest the provider issued, so they must not be lost.
            log.error("token_refresh_lease_lost", integration_id=integration_id)
            stored = await self._repository.update(integration_id, fields)
            if stored is None:
                raise NotFound(f"integration {integration_id} was deleted during the refresh")
        log.info("token_refreshed", integration_id=integration_id, expires_at=state["expires_at"])
        await self._announce(stored, "refreshed", expires_at=_iso(state["expires_at"]))
        return stored

    async def _postpone(
        self, doc: Document, owner: str, message: str, on_demand: bool, rejected: str | None
    ) -> Document:
        """A refresh that failed for a passing reason: back off, keep the current token."""
        failures = _failures(doc) + 1
        delay = backoff(failures)
        fields = {
            "oauth.refresh_failures": failures,
            "oauth.last_refresh_error": message,
            "oauth.refresh_at": utcnow() + delay,
        }
        log.warning(
            "token_refresh_failed",
            integration_id=str(doc["_id"]),
            error=message,
            failures=failures,
            retry_in=delay.total_seconds(),
        )
        stored = await self._repository.write_under_lease(str(doc["_id"]), owner, fields)
        return self._after_failure(stored or doc, on_demand, rejected)

    def _after_failure(self, doc: Document, on_demand: bool, rejected: str | None) -> Document:
        """After a failed refresh: the current token if it still works, else 503."""
        if not on_demand:
            return doc
        expires_at = _oauth(doc).get("expires_at")
        token = self._open(doc).get("access_token")
        if (expires_at is None or expires_at > utcnow()) and token != rejected:
            return doc
        raise ProviderUnreachable(
            "the token has expired and could not be refreshed: "
            f"{_oauth(doc).get('last_refresh_error') or 'the provider did not answer'}"
        )

    async def _fail(self, doc: Document, owner: str, error: str, message: str) -> None:
        """The grant is gone: status error, `integration.error` published."""
        fields = {
            "status": Status.ERROR.value,
            "last_error": message,
            "oauth.last_refresh_error": message,
            "oauth.refresh_at": None,
        }
        stored = await self._repository.write_under_lease(str(doc["_id"]), owner, fields)
        log.warning("token_refresh_refused", integration_id=str(doc["_id"]), error=error)
        if stored is not None:
            await self._announce(stored, "error", reason=error, message=message)

    async def _announce(self, doc: Document, kind: str, **data: Any) -> None:
        # The stored state is what counts; a lost event is logged, not retried.
        try:
            await publish_integration_event(self._publisher, integration_event(doc, kind, **data))
        except HookhubError as exc:
            log.warning("integration_event_not_published", kind=kind, error=exc.message)

    # -- reading the document ---------------------------------------------------------------

    def _connected(self, doc: Document | None, integration_id: str) -> Document:
        if doc is None:
            raise NotFound(f"integration {integration_id} not found")
        if doc.get("status") != Status.CONNECTED.value:
            detail = f": {doc['last_error']}" if doc.get("last_error") else ""
            raise NotConnected(f"integration {integration_id} is {doc.get('status')}{detail}")
        if not (doc.get("tokens") or {}).get("access_token") and not (
            (doc.get("secrets") or {}).get("bot_token")
        ):
            raise NotConnected(
                f"integration {integration_id} has no token; "
                + self._ways_in(str(doc.get("provider")), integration_id)
            )
        return doc

    def _ways_in(self, provider: str, integration_id: str) -> str:
        """How this provider's integration gets a token: only those that take a bot_token
        setting are told of it (a GitHub or Jira one would refuse it with 422)."""
        ways = []
        if provider in self._providers:
            ways.append("connect it through OAuth: POST /api/auth/oauth/connect")
        if provider in self._bot_tokens:
            ways.append(f"give it settings.bot_token with PATCH /api/integrations/{integration_id}")
        return " or ".join(ways) or f"{provider} integrations take no token"

    def _open(self, doc: Document) -> dict[str, str]:
        return {name: self._box.decrypt(value) for name, value in (doc.get("tokens") or {}).items()}

    def _bot_token_of(self, doc: Document) -> str | None:
        sealed = (doc.get("secrets") or {}).get("bot_token")
        return self._box.decrypt(sealed) if sealed else None

    def _usable_until(self, doc: Document) -> datetime | None:
        """When `_expired` will say so (the same leeway)."""
        oauth = _oauth(doc)
        expires_at, obtained_at = oauth.get("expires_at"), oauth.get("obtained_at")
        if expires_at is None:
            return None
        lifetime = (expires_at - obtained_at).total_seconds() if obtained_at else 0.0
        leeway = min(EXPIRY_LEEWAY_SECONDS, max(lifetime, 0.0) / 10)
        moment: datetime = expires_at - timedelta(seconds=leeway)
        return moment

    def _expired(self, doc: Document) -> bool:
        until = self._usable_until(doc)
        return until is not None and bool(utcnow() >= until)

    def _due(self, doc: Document) -> bool:
        refresh_at = _oauth(doc).get("refresh_at")
        return refresh_at is not None and bool(utcnow() >= refresh_at)

    def _backing_off(self, doc: Document) -> bool:
        refresh_at = _oauth(doc).get("refresh_at")
        return _failures(doc) > 0 and refresh_at is not None and refresh_at > utcnow()


class LinkTokenKeeper(TokenKeeper):
    """A chat user's own token (an oauth account link, SPEC §20), kept as an integration's
    is: sealed, refreshed ahead of expiry and on a 401 under the same lease; a grant the
    provider refused for good puts the link in `error` (the user is asked to link again).
    Nothing is announced on Kafka: a link is no integration. `access_token(link_id)`."""

    def __init__(
        self,
        links: TokenStore,
        apps: OAuthApps,
        box: SecretBox,
        settings: Settings,
        publisher: EventPublisher,
        providers: Mapping[str, OAuthProvider],
    ) -> None:
        super().__init__(links, apps, box, settings, publisher, providers, ())

    async def _announce(self, doc: Document, kind: str, **data: Any) -> None:
        log.info("link_token_" + kind, link_id=str(doc["_id"]), provider=doc.get("provider"))

    def _connected(self, doc: Document | None, integration_id: str) -> Document:
        if doc is None:
            raise NotFound(f"account link {integration_id} not found")
        if doc.get("status") != Status.CONNECTED.value or not (doc.get("tokens") or {}).get(
            "access_token"
        ):
            detail = f": {doc['last_error']}" if doc.get("last_error") else ""
            raise NotConnected(
                f"the {doc.get('provider')} account link of chat user {doc.get('chat_user_id')} "
                f"holds no usable token{detail}; link again"
            )
        return doc


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
