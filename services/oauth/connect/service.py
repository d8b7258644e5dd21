"""Connect and callback: state, PKCE, code exchange, the post-connect step, the integration.

`start` makes a random single-use state, bound to the workspace and provider and stored
server-side for 10 minutes with the PKCE verifier; `finish` takes it back (at most once),
exchanges the code, asks the provider which account was connected, stores the integration
`connected` with its tokens sealed, and publishes `integration.connected`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx
import structlog

from services.oauth.connect.repository import StateRepository
from services.oauth.connect.schemas import ConnectRequest, ConnectStarted
from shared.domain import tenancy
from shared.domain.integrations.model import Provider, Status, integration_event, new_integration
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.client import OAuthClient
from shared.domain.oauth.provider import AppCredentials, OAuthProvider, ProviderApi
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
    ) -> None:
        self._states = states
        self._integrations = integrations
        self._apps = apps
        self._box = box
        self._settings = settings
        self._client = client
        self._publisher = publisher
        self._providers = providers

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
        state = secrets.token_urlsafe(32)
        # RFC 7636 §4.1: 43-128 unreserved characters; 64 random bytes give 86.
        verifier = secrets.token_urlsafe(64) if provider.uses_pkce(self._settings) else None
        scopes = body.scopes or list(provider.scopes)
        client = self._client_for(provider, app)
        url = await client.authorization_url(state, scopes, verifier)
        now = utcnow()
        await self._states.insert(
            {
                # Stored by fingerprint: a database dump holds no usable state.
                "_id": fingerprint(state),
                "provider": provider.name,
                "workspace_id": body.workspace_id,
                "integration_id": body.integration_id,
                "name": body.name,
                "scopes": scopes,
                "return_to": str(body.return_to) if body.return_to else None,
                "code_verifier": self._box.encrypt(verifier) if verifier else None,
                "created_at": now,
                "expires_at": now + STATE_TTL,
                "started_by": dict(started_by),
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
        try:
            doc = await self._connect(provider, record, params)
        except HookhubError as exc:
            log.info("oauth_connect_failed", provider=provider.name, error=exc.code)
            return Outcome(return_to, error=exc)
        return Outcome(return_to, integration=doc, started_by=record.get("started_by"))

    async def _connect(
        self, provider: OAuthProvider, record: Document, params: Mapping[str, str]
    ) -> Document:
        if params.get("error"):
            error, description = params["error"], params.get("error_description") or ""
            if error == "access_denied":
                raise AccessDenied(
                    f"access was not granted at {provider.title}"
                    f"{f' ({description})' if description else ''}; no integration was created"
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
        tokens = provider.parse_token(body)
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
