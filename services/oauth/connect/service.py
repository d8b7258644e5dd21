"""Connect and callback: state, PKCE, code exchange, the post-connect step, the integration.

`start` makes a random single-use state, bound to the workspace and provider and stored
server-side for 10 minutes with the PKCE verifier; `finish` takes it back (at most once),
exchanges the code, asks the provider which account was connected, stores the integration
`connected` with its tokens sealed, and publishes `integration.connected`.

`start_link` is the same flow for one chat user's own consent (SPEC §20, an account link):
its state is bound to the workspace, the provider and the chat user as well; `finish`
then asks the provider who the user is (`OAuthProvider.whoami`) and stores the link with
the user's tokens sealed in it (shared.domain.account_links), refreshed thereafter as an
integration's are (`LinkTokenKeeper`). A link replaced by a new consent has its old
tokens revoked.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import structlog

from services.oauth.connect.repository import StateRepository
from services.oauth.connect.schemas import ConnectRequest, ConnectStarted
from shared.domain import tenancy
from shared.domain.account_links import AccountLink, AccountLinks
from shared.domain.integrations.model import Provider, Status, integration_event, new_integration
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.client import OAuthClient
from shared.domain.oauth.provider import AppCredentials, OAuthProvider, ProviderApi, TokenSet
from shared.domain.oauth.tokens import token_state
from shared.kernel import tracing
from shared.kernel.crypto import SecretBox, fingerprint
from shared.kernel.envelopes import Topic
from shared.kernel.errors import BadRequest, HookhubError, Invalid, NotFound
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Document
from shared.kernel.settings import Settings
from shared.providers import OAUTH_PROVIDERS
from shared.providers.apps import AppDirectory

log = structlog.get_logger(__name__)

# Revokes tokens at their provider, or leaves them to the retry loop (services/oauth/
# revocations `Revoker.revoke`): given who held them (`_id`, `workspace_id`, `provider`).
Revoke = Callable[[Document, dict[str, str]], Awaitable[bool]]

STATE_TTL = timedelta(minutes=10)
CALLBACK_PATH = "/api/auth/oauth/callback"


class InvalidState(BadRequest):
    code = "invalid_state"


class AccessDenied(BadRequest):
    code = "access_denied"


@dataclass(frozen=True)
class Outcome:
    """How a callback ended: the integration, or the error to show; where to send the user."""

    return_to: str | None
    integration: Document | None = None
    # A chat user's account link, where the connect was one (`start_link`), and the chat
    # user's name as the chat said it (the callback's answer names whom it linked).
    link: AccountLink | None = None
    chat_user_name: str | None = None
    error: HookhubError | None = None
    # Who started the connect (`{kind, id}` of the caller of /connect), for the audit log.
    started_by: Mapping[str, str] | None = None


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


class ConnectService:
    def __init__(
        self,
        states: StateRepository,
        integrations: IntegrationRepository,
        apps: AppDirectory,
        box: SecretBox,
        settings: Settings,
        client: httpx.AsyncClient,
        publisher: EventPublisher,
        providers: Mapping[str, OAuthProvider] = OAUTH_PROVIDERS,
        *,
        links: AccountLinks | None = None,
        revoke: Revoke | None = None,
    ) -> None:
        self._states = states
        self._integrations = integrations
        self._apps = apps
        self._box = box
        self._settings = settings
        self._client = client
        self._publisher = publisher
        self._providers = providers
        self._links = links
        self._revoke = revoke

    async def _app(self, provider: OAuthProvider) -> AppCredentials:
        app = await self._apps.oauth_client(provider.name)
        if app is None:
            raise Invalid(provider.app_missing(), code="provider_app_missing")
        return app

    def _client_for(self, provider: OAuthProvider, app: AppCredentials) -> OAuthClient:
        return OAuthClient(
            provider, app, self._settings, redirect_uri=redirect_uri(self._settings.public_url)
        )

    async def start(self, body: ConnectRequest, started_by: Mapping[str, str]) -> ConnectStarted:
        tenancy.may_create_in(body.workspace_id)
        provider = self._providers[body.provider]
        app = await self._app(provider)
        if body.integration_id:
            existing = await self._integrations.get(body.integration_id)
            if existing is None:
                raise NotFound(f"integration {body.integration_id} not found")
            if (existing["provider"], existing["workspace_id"]) != (
                provider.name,
                body.workspace_id,
            ):
                raise Invalid(
                    f"integration {body.integration_id} is not a {provider.name} integration "
                    f"of workspace {body.workspace_id}",
                    code="integration_mismatch",
                )
        return await self._begin(
            provider,
            app,
            body.scopes or list(provider.scopes),
            str(body.return_to) if body.return_to else None,
            {
                "workspace_id": body.workspace_id,
                "integration_id": body.integration_id,
                "name": body.name,
                "started_by": dict(started_by),
            },
        )

    async def start_link(
        self,
        workspace_id: str,
        provider_name: str,
        chat_user_id: str,
        started_by: Mapping[str, str],
        return_to: str | None = None,
        chat_user_name: str | None = None,
    ) -> ConnectStarted:
        """A chat user's own consent at `provider`, for an account link (SPEC §20); the
        callback's answer names them (`chat_user_name`, as the chat said it)."""
        tenancy.may_create_in(workspace_id)
        provider = self._providers[provider_name]
        app = await self._app(provider)
        return await self._begin(
            provider,
            app,
            list(provider.scopes),
            return_to,
            {
                "workspace_id": workspace_id,
                "chat_user_id": chat_user_id,
                "chat_user_name": chat_user_name,
                "started_by": dict(started_by),
            },
        )

    def is_own_origin(self, origin: str | None) -> bool:
        """Whether a browser's `Origin` is hookhub's public one (`HOOKHUB_PUBLIC_URL`)."""
        parts = urlsplit(self._settings.public_url)
        return origin is not None and hmac.compare_digest(
            origin.rstrip("/").lower().encode(), f"{parts.scheme}://{parts.netloc}".lower().encode()
        )

    async def _begin(
        self,
        provider: OAuthProvider,
        app: AppCredentials,
        scopes: list[str],
        return_to: str | None,
        bound: Document,
    ) -> ConnectStarted:
        """A new state, bound to the provider and to `bound` (the workspace, and what the
        callback makes), and the authorization URL that carries it."""
        state = secrets.token_urlsafe(32)
        # RFC 7636 §4.1: 43-128 unreserved characters; 64 random bytes give 86.
        verifier = secrets.token_urlsafe(64) if provider.uses_pkce(self._settings) else None
        client = self._client_for(provider, app)
        url = await client.authorization_url(state, scopes, verifier)
        now = utcnow()
        await self._states.insert(
            {
                # Stored by fingerprint: a database dump holds no usable state.
                "_id": fingerprint(state),
                "provider": provider.name,
                **bound,
                "scopes": scopes,
                "return_to": return_to,
                "code_verifier": self._box.encrypt(verifier) if verifier else None,
                "created_at": now,
                "expires_at": now + STATE_TTL,
            }
        )
        return ConnectStarted(
            authorization_url=url,
            state=state,
            redirect_uri=redirect_uri(self._settings.public_url),
            expires_at=now + STATE_TTL,
        )

    async def finish(self, params: Mapping[str, str]) -> Outcome:
        """The callback. Raises InvalidState when there is nobody to report back to."""
        state = params.get("state") or ""
        if not state:
            raise InvalidState("the callback carries no state; start again with /connect")
        record = await self._states.take(fingerprint(state))
        if record is None:
            raise InvalidState(
                "unknown OAuth state: it was already used, never issued, or expired long ago; "
                "start again with POST /api/auth/oauth/connect"
            )
        if record["expires_at"] <= utcnow():
            raise InvalidState(
                "this OAuth state expired (a connect must finish within 10 minutes); start again",
                code="state_expired",
            )
        return_to = record.get("return_to")
        provider = self._providers[record["provider"]]
        started_by = record.get("started_by")
        try:
            if record.get("chat_user_id"):
                link = await self._link(provider, record, params)
                named = record.get("chat_user_name")
                return Outcome(return_to, link=link, chat_user_name=named, started_by=started_by)
            doc = await self._connect(provider, record, params)
        except HookhubError as exc:
            log.info("oauth_connect_failed", provider=provider.name, error=exc.code)
            return Outcome(return_to, error=exc)
        return Outcome(return_to, integration=doc, started_by=started_by)

    async def _granted(
        self, provider: OAuthProvider, record: Document, params: Mapping[str, str]
    ) -> TokenSet:
        """The tokens the callback's code is exchanged for, or what the provider said."""
        made = (
            "no account link was made"
            if record.get("chat_user_id")
            else "no integration was created"
        )
        if params.get("error"):
            error, description = params["error"], params.get("error_description") or ""
            if error == "access_denied":
                raise AccessDenied(
                    f"access was not granted at {provider.title}"
                    f"{f' ({description})' if description else ''}; {made}"
                )
            raise BadRequest(
                f"{provider.title} answered the authorization with {error}"
                f"{f': {description}' if description else ''}",
                code="authorization_failed",
            )
        code = params.get("code")
        if not code:
            raise BadRequest("the callback carries neither code nor error", code="missing_code")
        app = await self._app(provider)
        verifier = (
            self._box.decrypt(record["code_verifier"]) if record.get("code_verifier") else None
        )
        body = await self._client_for(provider, app).exchange(code, verifier)
        return provider.parse_token(body)

    async def _connect(
        self, provider: OAuthProvider, record: Document, params: Mapping[str, str]
    ) -> Document:
        tokens = await self._granted(provider, record, params)
        endpoints = provider.endpoints(self._settings)
        account = await provider.post_connect(
            ProviderApi(self._client, endpoints, provider.title), tokens, params
        )
        sealed, state = token_state(
            tokens.secrets(),
            tokens,
            self._box,
            utcnow(),
            self._settings.oauth_refresh_margin_seconds,
        )
        fields = {
            "status": Status.CONNECTED.value,
            "account": account.as_document(),
            "tokens": sealed,
            "oauth": {**state, "refreshed_at": None, "lease_owner": None, "lease_until": None},
            "last_error": None,
        }
        doc = await self._store(provider, record, account.id, account.name, fields)
        # On the callback's span, whose trace the event goes on in.
        tracing.annotate(
            provider=provider.name, integration_id=doc["_id"], workspace_id=doc.get("workspace_id")
        )
        await self._publisher.publish(
            Topic.INTEGRATION_EVENTS,
            integration_event(
                doc, "connected", account=account.as_document(), scopes=state["scopes"]
            ),
        )
        log.info("oauth_connected", provider=provider.name, integration_id=doc["_id"])
        return doc

    async def _link(
        self, provider: OAuthProvider, record: Document, params: Mapping[str, str]
    ) -> AccountLink:
        """The chat user's account link, made or replaced with the tokens they granted
        (sealed); the tokens it held before revoked."""
        assert self._links is not None, "account links are not wired in"
        tokens = await self._granted(provider, record, params)
        api = ProviderApi(self._client, provider.endpoints(self._settings), provider.title)
        user = await provider.whoami(api, tokens)
        sealed, state = token_state(
            tokens.secrets(),
            tokens,
            self._box,
            utcnow(),
            self._settings.oauth_refresh_margin_seconds,
        )
        workspace_id, chat_user_id = record["workspace_id"], record["chat_user_id"]
        link, replaced = await self._links.connect(
            workspace_id,
            provider.name,
            chat_user_id,
            provider_user=str(user.details.get("login") or user.id),
            name=user.name,
            external_id=user.id,
            account=dict(user.details),
            tokens=sealed,
            oauth=state,
            created_by=record.get("started_by") or {"kind": "chat_user", "id": chat_user_id},
        )
        await self._links.forget_tickets(workspace_id, provider.name, chat_user_id)
        if replaced:
            await self.forget_link(
                {
                    "_id": link.id,
                    "workspace_id": workspace_id,
                    "provider": provider.name,
                    "tokens": replaced,
                }
            )
        log.info("oauth_account_linked", provider=provider.name, link_id=link.id)
        return link

    async def forget_link(self, doc: Document) -> None:
        """A deleted oauth link's tokens revoked at the provider (or left to the retries)."""
        sealed = doc.get("tokens") or {}
        if not sealed or self._revoke is None:
            return
        opened = {name: self._box.decrypt(value) for name, value in sealed.items()}
        await self._revoke(
            {"_id": doc["_id"], "workspace_id": doc["workspace_id"], "provider": doc["provider"]},
            opened,
        )

    async def _store(
        self,
        provider: OAuthProvider,
        record: Document,
        account_id: str,
        account_name: str | None,
        fields: Document,
    ) -> Document:
        """Into the integration named at connect, else the one of this account in the
        workspace (a reconnect), else a new one."""
        target = record.get("integration_id")
        if not target:
            same = await self._integrations.find_account(
                record["workspace_id"], provider.name, account_id
            )
            target = same["_id"] if same else None
        if target:
            updated = await self._integrations.update(target, fields)
            if updated is None:
                raise NotFound(f"integration {target} was deleted while connecting")
            return updated
        doc = new_integration(
            Provider(provider.name),
            record["workspace_id"],
            name=record.get("name") or f"{provider.title} {account_name or account_id}",
            **fields,
        )
        await self._integrations.insert(doc)
        return doc
