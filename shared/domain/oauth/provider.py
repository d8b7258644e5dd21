"""The OAuth contract every provider fills in, and what a connection yields.

A provider's module (`shared/providers/<name>/oauth.py`) says only what differs: its URLs,
default scopes, whether it takes PKCE, extra authorize parameters, the quirks of its token
responses, the call that tells us which account was connected, and how to revoke. The flow
itself (shared.domain.oauth.client, services/oauth/connect) is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import httpx

from shared.kernel.errors import BadRequest, Invalid, Unavailable
from shared.kernel.settings import Settings


class ProviderRefused(BadRequest):
    """The provider answered, and said no (`invalid_grant`, `bad_verification_code`, ...)."""

    code = "provider_refused"

    def __init__(self, message: str, *, error: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.error = error


class AppMisconfigured(Invalid):
    """hookhub's own app at the provider is configured so that no request can be made."""


class ProviderUnreachable(Unavailable):
    """No usable answer: network failure, timeout, 429 or 5xx. Worth retrying later."""

    code = "provider_unavailable"


@dataclass(frozen=True)
class Endpoints:
    authorize_url: str
    token_url: str
    revoke_url: str | None
    api_base: str

    def api(self, path: str) -> str:
        return self.api_base.rstrip("/") + path


@dataclass(frozen=True)
class AppCredentials:
    """hookhub's OAuth client at a provider (PUT /api/providers/{provider}, or environment)."""

    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True)
class Account:
    """The provider account an integration is connected to (Slack team, GitHub login, ...)."""

    id: str
    name: str | None = None
    url: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_document(self) -> dict[str, Any]:
        return {**self.details, "id": self.id, "name": self.name, "url": self.url}


@dataclass(frozen=True)
class TokenSet:
    """A token response, normalised.

    `extra` holds further secrets kept sealed beside the tokens (Slack's user token);
    `facts` what the response says about the account (Slack's team, Discord's guild).
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    token_type: str = "Bearer"
    scopes: tuple[str, ...] = ()
    expires_in: float | None = None
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)
    facts: Mapping[str, Any] = field(default_factory=dict)

    def secrets(self) -> dict[str, str]:
        values = {"access_token": self.access_token, **self.extra}
        if self.refresh_token:
            values["refresh_token"] = self.refresh_token
        return values


def standard_token(body: Mapping[str, Any], what: str = "token response") -> TokenSet:
    """RFC 6749 §5.1: `access_token`, `token_type`, `expires_in`, `refresh_token`, `scope`."""
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderRefused(f"the {what} has no access_token", error="invalid_response")
    refresh_token = body.get("refresh_token")
    expires_in: float | None = None
    try:
        if body.get("expires_in") not in (None, ""):
            expires_in = float(body["expires_in"])
    except (TypeError, ValueError) as exc:
        raise ProviderRefused(f"the {what} has a malformed expires_in") from exc
    scope = body.get("scope") or ""
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        token_type=str(body.get("token_type") or "Bearer"),
        scopes=tuple(s for s in str(scope).replace(",", " ").split() if s),
        expires_in=expires_in if expires_in and expires_in > 0 else None,
    )


class ProviderApi:
    """Calls to one provider's endpoints; failures become ProviderUnreachable/Refused."""

    def __init__(self, client: httpx.AsyncClient, endpoints: Endpoints, title: str) -> None:
        self.client = client
        self.endpoints = endpoints
        self.title = title

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The answer, unless it says "try later" (network failure, 429, 5xx)."""
        try:
            answer = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"{self.title} is unreachable: {type(exc).__name__}") from exc
        if answer.status_code == 429 or answer.status_code >= 500:
            raise ProviderUnreachable(f"{self.title} answered {answer.status_code}")
        return answer

    def revoked(self, answer: httpx.Response, *, done: tuple[int, ...]) -> None:
        """A revocation's answer: `done` statuses mean revoked (or nothing left to revoke)."""
        if answer.status_code not in done:
            raise ProviderRefused(
                f"{self.title} refused the revocation: {answer.status_code}",
                error=str(answer.status_code),
            )

    async def get_json(
        self, path: str, token: str, headers: Mapping[str, str] | None = None
    ) -> Any:
        """GET `{api_base}{path}` with the bearer token; a JSON body or ProviderRefused."""
        answer = await self.send(
            "GET",
            self.endpoints.api(path),
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        )
        if answer.status_code >= 400:
            raise ProviderRefused(
                f"{self.title} refused {path}: {answer.status_code}", error=str(answer.status_code)
            )
        try:
            return answer.json()
        except ValueError as exc:
            raise ProviderRefused(f"{self.title} answered {path} without JSON") from exc


class OAuthProvider:
    """OAuth knowledge of one provider. Subclasses set the class attributes and override the
    steps that differ; the defaults are plain RFC 6749."""

    name: ClassVar[str]
    title: ClassVar[str]
    authorize_url: ClassVar[str]
    token_url: ClassVar[str]
    revoke_url: ClassVar[str | None] = None
    api_base: ClassVar[str]
    scopes: ClassVar[tuple[str, ...]]
    scope_separator: ClassVar[str] = " "
    pkce: ClassVar[bool] = True
    authorize_params: ClassVar[Mapping[str, str]] = MappingProxyType({})
    token_endpoint_auth_method: ClassVar[str] = "client_secret_basic"
    # Refresh errors meaning the grant is gone for good: the integration must be reconnected.
    # Anything else (network, 5xx, a misconfigured app) is retried with backoff.
    permanent_errors: ClassVar[frozenset[str]] = frozenset({"invalid_grant"})
    # Whether the provider offers revocation at all (Atlassian does not).
    revocable: ClassVar[bool] = True

    def endpoints(self, settings: Settings) -> Endpoints:
        """The provider's URLs, each overridable by `HOOKHUB_<PROVIDER>_<KIND>`."""

        def pick(kind: str, default: str | None) -> str | None:
            return str(getattr(settings, f"{self.name}_{kind}", "") or "") or default

        authorize_url = pick("authorize_url", self.authorize_url)
        token_url = pick("token_url", self.token_url)
        api_base = pick("api_base", self.api_base)
        assert authorize_url and token_url and api_base
        return Endpoints(authorize_url, token_url, pick("revoke_url", self.revoke_url), api_base)

    def uses_pkce(self, settings: Settings) -> bool:
        return self.pkce

    def app_missing(self) -> str:
        """What to tell when hookhub has no OAuth app (client id and secret) at the provider."""
        env = f"HOOKHUB_{self.name.upper()}"
        return (
            f"no {self.title} app is configured: set {env}_CLIENT_ID and {env}_CLIENT_SECRET, "
            f"or PUT /api/providers/{self.name}"
        )

    def check_app(self, app: AppCredentials) -> None:
        """Refuse (422, nothing sent) an app whose client id or secret OAuth cannot carry:
        RFC 6749 allows printable ASCII only (VSCHAR), and HTTP Basic authentication of the
        token request could not even encode other characters."""
        env = f"HOOKHUB_{self.name.upper()}"
        for what, field_name, value in (
            ("client id", "client_id", app.client_id),
            ("client secret", "client_secret", app.client_secret),
        ):
            bad = next((c for c in value if not " " <= c <= "~"), None)
            if bad is not None:
                shown = f" ({bad!r}, U+{ord(bad):04X})" if what == "client id" else ""
                raise AppMisconfigured(
                    f"the {self.title} {what} has a character OAuth does not allow{shown}: "
                    f"only printable ASCII; check {env}_{field_name.upper()}, or the "
                    f"{field_name} given to PUT /api/providers/{self.name} (which wins over it)",
                    code="provider_app_invalid",
                )

    def fix_token_response(self, response: httpx.Response) -> httpx.Response:
        """Make a token endpoint's answer a JSON object before Authlib reads it."""
        return response

    def parse_token(self, body: Mapping[str, Any]) -> TokenSet:
        """The code exchange's answer."""
        return standard_token(body)

    def parse_refreshed(self, body: Mapping[str, Any]) -> TokenSet:
        """A refresh's answer (Slack's is shaped differently from its code exchange)."""
        return self.parse_token(body)

    async def post_connect(
        self, api: ProviderApi, tokens: TokenSet, callback: Mapping[str, str]
    ) -> Account:
        """Which account was connected; `callback` holds the callback's query parameters."""
        raise NotImplementedError

    async def whoami(self, api: ProviderApi, tokens: TokenSet) -> Account:
        """The user a person's own token acts as (a chat user's account link, SPEC §20):
        `id` what the provider's API names them by when they act (GitHub's login,
        GitLab's user id, Jira's account id), `name` for people. By default the account
        the connect step finds, where that is the consenting user (GitHub's)."""
        return await self.post_connect(api, tokens, {})

    async def revoke(
        self, api: ProviderApi, app: AppCredentials, tokens: Mapping[str, str]
    ) -> None:
        """Revoke the grant at the provider. An already-invalid token counts as revoked;
        raise ProviderUnreachable to be retried, ProviderRefused to give up."""
        raise NotImplementedError
