"""The OAuth 2.0 flow on Authlib's httpx client: authorization URL (with PKCE), code exchange
and refresh, configured from a provider definition. One client per exchange: the app's
credentials can change at runtime (`PUT /api/providers/...`), and exchanges are rare."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns once when it falls back to httpx, which
    # is what hookhub uses; the API is the same.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, oauth2_client

from shared.domain.oauth.provider import (
    AppCredentials,
    OAuthProvider,
    ProviderRefused,
    ProviderUnreachable,
)
from shared.kernel import tracing
from shared.kernel.settings import Settings

# The HTTP module Authlib's client is built on (httpx, or httpx2 where installed).
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, oauth2_client.httpx2.HTTPError)
_STATUS_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPStatusError,
    oauth2_client.httpx2.HTTPStatusError,
)
# Whether the httpx instrumentation sees the token requests (shared.kernel.tracing): not when
# Authlib's client is httpx2's, whose calls get a CLIENT span of their own here.
_TRACED_BY_HTTPX = issubclass(AsyncOAuth2Client, httpx.AsyncClient)


class OAuthClient:
    def __init__(
        self,
        provider: OAuthProvider,
        app: AppCredentials,
        settings: Settings,
        *,
        redirect_uri: str | None = None,
    ) -> None:
        provider.check_app(app)  # before anything is sent, with the setting to fix named
        self._provider = provider
        self._endpoints = provider.endpoints(settings)
        self._app = app
        self._timeout = settings.provider_timeout_seconds
        self._pkce = provider.uses_pkce(settings)
        self._redirect_uri = redirect_uri

    def _client(self) -> Any:
        client = AsyncOAuth2Client(
            client_id=self._app.client_id,
            client_secret=self._app.client_secret,
            token_endpoint_auth_method=self._provider.token_endpoint_auth_method,
            redirect_uri=self._redirect_uri,
            code_challenge_method="S256" if self._pkce else None,
            timeout=self._timeout,
            # Provider URLs come from configuration, never from users; still, a token
            # endpoint that redirects is not one we should follow with credentials.
            follow_redirects=False,
            trust_env=False,
        )
        for hook in ("access_token_response", "refresh_token_response"):
            client.register_compliance_hook(hook, self._provider.fix_token_response)
        return client

    async def authorization_url(
        self, state: str, scopes: Sequence[str], code_verifier: str | None
    ) -> str:
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                self._endpoints.authorize_url,
                state=state,
                code_verifier=code_verifier if self._pkce else None,
                scope=self._provider.scope_separator.join(scopes),
                **dict(self._provider.authorize_params),
            )
        return str(url)

    async def exchange(self, code: str, code_verifier: str | None) -> dict[str, Any]:
        """The token endpoint's answer to the authorization code (raw, provider-shaped)."""
        params: dict[str, Any] = {"code": code, "grant_type": "authorization_code"}
        if self._pkce and code_verifier:
            params["code_verifier"] = code_verifier
        async with self._client() as client:
            return await self._call(client.fetch_token(self._endpoints.token_url, **params))

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        async with self._client() as client:
            return await self._call(
                client.refresh_token(self._endpoints.token_url, refresh_token=refresh_token)
            )

    async def _call(self, call: Any) -> dict[str, Any]:
        """The token endpoint's answer (its CLIENT span made here where the httpx
        instrumentation does not see the call)."""
        title = self._provider.title
        span = (
            contextlib.nullcontext()
            if _TRACED_BY_HTTPX
            else tracing.request_span("POST", self._endpoints.token_url)
        )
        try:
            with span:
                token = await call
        except OAuthError as exc:
            error = str(exc.error or "")
            detail = f": {exc.description}" if exc.description else ""
            raise ProviderRefused(
                f"{title} refused the token request ({error}){detail}", error=error
            ) from exc
        except _STATUS_ERRORS as exc:
            status = exc.response.status_code  # type: ignore[attr-defined]
            if status == 429 or status >= 500:
                raise ProviderUnreachable(f"{title}'s token endpoint answered {status}") from exc
            raise ProviderRefused(
                f"{title}'s token endpoint answered {status}", error=f"http_{status}"
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            raise ProviderUnreachable(
                f"{title}'s token endpoint is unreachable: {type(exc).__name__}"
            ) from exc
        except ValueError as exc:  # Authlib: the answer is not a JSON object
            raise ProviderRefused(
                f"{title}'s token endpoint answered something other than a token",
                error="invalid_response",
            ) from exc
        return dict(token)
