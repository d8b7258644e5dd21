"""Google Chat's two kinds of credentials, both through google-auth: the bearer token Chat
sends with each interaction event to the app's endpoint (verified), and the service
account's access tokens for the Chat REST API (fetched, kept until they expire).

Inbound (developers.google.com/workspace/chat/verify-requests-from-chat): what the
`Authorization: Bearer …` header holds depends on the Chat app's *Authentication
Audience* (Chat API → Configuration → Connection settings):

- **HTTP endpoint URL**: a Google-signed OIDC ID token; `iss` is Google's
  (`https://accounts.google.com` or `accounts.google.com`), `aud` the endpoint URL as
  configured, `email` `chat@system.gserviceaccount.com`; Google's OAuth2 certificates
  (https://www.googleapis.com/oauth2/v1/certs) sign it. Google's Python sample
  (googleworkspace/google-chat-samples, python/user-auth-app/request_verifier.py):
  `id_token.verify_oauth2_token(token, request, audience)`, then `token["email"] ==
  CHAT_ISSUER`; verify_oauth2_token is verify_token with those certificates, and `iss`
  compared with Google's two spellings.
- **Project Number**: a JWT signed by `chat@system.gserviceaccount.com` itself; `iss` is that
  address, `aud` the Cloud project's number; its certificates are at
  https://www.googleapis.com/service_accounts/v1/metadata/x509/chat@system.gserviceaccount.com.
  The page's sample: `id_token.verify_token(token, request, audience=AUDIENCE,
  certs_url=PUBLIC_CERT_URL_PREFIX + CHAT_ISSUER)`, then `iss` compared.

The audience setting says which: all digits is a project number, else a URL. Both verify
with `google.oauth2.id_token.verify_token` (signature against the certificate of the
token's `kid`, `aud`, `iat`/`exp` with google-auth's clock), the certificates URL
configurable so the sandbox serves its own.

`ProviderWebhooks.verify` is synchronous and runs on the gateway's event loop: the
certificates are kept here (for their `Cache-Control: max-age`, Google's are hours), loaded
with `Certs.load` (async) by the webhooks' `prepare` before `verify`, which fetches
nothing; certificates Google cannot serve are `Unavailable` (503: Chat sends again).

Outbound (developers.google.com/identity/protocols/oauth2/service-account and
developers.google.com/workspace/chat/authenticate-authorize-chat-app): the app's service
account signs a JWT bearer grant for `https://www.googleapis.com/auth/chat.bot` and
exchanges it at the token URL; `google.oauth2.service_account.Credentials` does both, and
says when its token is no longer `valid` (google-auth refreshes 3 min 45 s before expiry).

Delegated (imports): listing a space's messages needs user authentication
(developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/list). A
Workspace administrator may grant the service account domain-wide delegation of
`https://www.googleapis.com/auth/chat.messages.readonly`
(developers.google.com/workspace/chat/authenticate-authorize-chat-user, "Authenticate and
authorize using domain-wide delegation"); the service account then signs the same grant with
`sub` = the user's email and acts as that user
(developers.google.com/identity/protocols/oauth2/service-account#delegatingauthority).
google-auth makes that grant: `Credentials.with_subject(email).with_scopes([...])`. Without
the delegation Google's token endpoint answers 401 `{"error": "unauthorized_client",
"error_description": "Client is unauthorized to retrieve access tokens using this method, or
client not authorized for any of the scopes requested."}` (the shape reported in
googleapis/google-api-python-client#792 and google-api-php-client#2214): a
`DelegationRefused` naming what to configure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from google.auth import exceptions as google_errors
from google.auth import transport
from google.oauth2 import id_token, service_account

from shared.domain.oauth.provider import ProviderUnreachable
from shared.kernel.errors import Unavailable
from shared.providers.base import SignatureInvalid
from shared.providers.chat import PermanentError, TokenRejected

CHAT_ISSUER = "chat@system.gserviceaccount.com"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
OAUTH2_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
CHAT_CERTS_URL = "https://www.googleapis.com/service_accounts/v1/metadata/x509/" + CHAT_ISSUER
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
API_BASE = "https://chat.googleapis.com"
CHAT_BOT_SCOPE = "https://www.googleapis.com/auth/chat.bot"
# What an import's delegated token is granted: reading the messages of the user's spaces.
CHAT_MESSAGES_READONLY = "https://www.googleapis.com/auth/chat.messages.readonly"
# Leeway for `iat`/`exp` between Google's clock and ours.
CLOCK_SKEW_SECONDS = 30
# Without a `Cache-Control: max-age`, certificates are kept this long.
DEFAULT_CERTS_SECONDS = 300.0
# A token naming a key the kept certificates lack refetches them at most this often.
REFETCH_SECONDS = 60.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


@dataclass(frozen=True)
class Endpoints:
    """Where Google is: its own URLs, or the sandbox's."""

    api_base: str = API_BASE
    token_url: str = TOKEN_URL
    oauth2_certs_url: str = OAUTH2_CERTS_URL
    chat_certs_url: str = CHAT_CERTS_URL

    def certs_url(self, audience: str) -> str:
        return self.chat_certs_url if is_project_number(audience) else self.oauth2_certs_url


def is_project_number(audience: str) -> bool:
    return audience.isascii() and audience.isdigit()


# -- google-auth's HTTP calls ----------------------------------------------------------------


class _Answer(transport.Response):
    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, dict(headers), data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


class _Served(transport.Request):
    """google-auth's certificate GET answered from what `Certs` keeps."""

    def __init__(self, documents: Mapping[str, bytes]) -> None:
        self._documents = documents

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> transport.Response:
        data = self._documents.get(url)
        if data is None:
            raise google_errors.TransportError(f"no certificates loaded from {url}")
        return _Answer(200, {"content-type": "application/json"}, data)


class _OnLoop(transport.Request):
    """google-auth's token POST, sent from a worker thread by the process's async client on
    its event loop (google-auth's own transports are synchronous clients of their own)."""

    def __init__(
        self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        self._client, self._loop, self._timeout = client, loop, timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> transport.Response:
        async def send() -> httpx.Response:
            return await self._client.request(method, url, content=body, headers=headers)

        try:
            answer = asyncio.run_coroutine_threadsafe(send(), self._loop).result(self._timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise google_errors.TransportError(f"{url}: {type(exc).__name__}") from exc
        return _Answer(answer.status_code, answer.headers, answer.content)


# -- inbound: the bearer token of an interaction event ----------------------------------------


class Certs:
    """The certificate documents (`{kid: PEM certificate}`) by URL, each kept for its
    `Cache-Control: max-age`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._documents: dict[str, bytes] = {}
        self._expires: dict[str, float] = {}
        self._fetched: dict[str, float] = {}
        self._keys: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self.fetches = 0

    def fresh(self, url: str) -> bool:
        return url in self._documents and self._clock() < self._expires[url]

    def _keep(self, url: str, answer: httpx.Response) -> None:
        if answer.status_code != 200:
            raise Unavailable(
                f"Google's certificates could not be fetched from {url}: HTTP {answer.status_code}",
                code="provider_keys_unavailable",
            )
        try:
            document = answer.json()
        except ValueError:
            document = None
        if not isinstance(document, dict) or not document:
            raise Unavailable(
                f"Google's certificates at {url} are not a set of keys",
                code="provider_keys_unavailable",
            )
        found = _MAX_AGE.search(answer.headers.get("cache-control", ""))
        seconds = float(found.group(1)) if found else DEFAULT_CERTS_SECONDS
        now = self._clock()
        with self._lock:
            self._documents[url] = answer.content
            self._keys[url] = frozenset(str(k) for k in document)
            self._expires[url] = now + seconds
            self._fetched[url] = now
            self.fetches += 1

    async def load(self, client: httpx.AsyncClient, url: str, *, force: bool = False) -> None:
        """Fetch the document unless a fresh one is kept (or `force`); `Unavailable` (the
        sender tries again) when Google cannot be reached."""
        if self.fresh(url) and not force:
            return
        try:
            answer = await client.get(url)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"Google's certificates could not be fetched from {url}: {type(exc).__name__}",
                code="provider_keys_unavailable",
            ) from exc
        self._keep(url, answer)

    def has_key(self, url: str, key_id: str) -> bool:
        return key_id in self._keys.get(url, frozenset())

    def may_refetch(self, url: str) -> bool:
        """A key unknown to the kept document: Google rotated its keys, or the token is
        forged; refetched at most once a `REFETCH_SECONDS`."""
        return self._clock() - self._fetched.get(url, -REFETCH_SECONDS) >= REFETCH_SECONDS

    def request(self) -> transport.Request:
        return _Served(dict(self._documents))


def bearer_names(authorization: str | None) -> tuple[str | None, str | None]:
    """The issuer and key id a bearer token names, unverified: which certificates to have
    at hand before it is verified. (None, None) when the header holds no JWT."""
    if not authorization:
        return None, None
    scheme, _, token = authorization.strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3:
        return None, None
    try:
        header, claims = (
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        )
    except (ValueError, binascii.Error):
        return None, None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None, None
    issuer, key_id = claims.get("iss"), header.get("kid")
    return (
        issuer if isinstance(issuer, str) else None,
        key_id if isinstance(key_id, str) else None,
    )


class UnknownKey(SignatureInvalid):
    """The token names a key the kept certificates lack."""


def verify_bearer(
    authorization: str | None, audience: str, certs: Certs, endpoints: Endpoints
) -> Mapping[str, Any]:
    """The claims of a Chat event's bearer token, or SignatureInvalid saying why not.

    `audience`: the Cloud project's number, or the endpoint URL, as the Chat app's
    connection settings name it. The certificates must be loaded (`Certs.load`)."""
    if not audience:
        raise SignatureInvalid("no audience to check Google Chat's token against")
    if authorization is None or not authorization.strip():
        raise SignatureInvalid("Authorization header is missing: Google Chat sends a Bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise SignatureInvalid("Authorization header is not `Bearer <token>`")
    project = is_project_number(audience)
    url = endpoints.certs_url(audience)
    try:
        claims = id_token.verify_token(
            token,
            certs.request(),
            audience=audience,
            certs_url=url,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except (ValueError, google_errors.GoogleAuthError) as exc:
        said = str(exc)
        refused = UnknownKey if "Certificate for key id" in said else SignatureInvalid
        raise refused(f"Google Chat's bearer token is not valid: {said}") from exc
    issuer = claims.get("iss")
    if project:
        if issuer != CHAT_ISSUER:
            raise SignatureInvalid(
                f"Google Chat's token has issuer {issuer!r}, not {CHAT_ISSUER} (project number "
                "audience)"
            )
        return claims
    if issuer not in GOOGLE_ISSUERS:
        raise SignatureInvalid(
            f"Google Chat's ID token has issuer {issuer!r}, not Google's (accounts.google.com)"
        )
    if claims.get("email") != CHAT_ISSUER or claims.get("email_verified") is False:
        raise SignatureInvalid(
            f"Google Chat's ID token is for {claims.get('email')!r}, not {CHAT_ISSUER}"
        )
    return claims


# -- outbound: the service account's access tokens ---------------------------------------------


def service_account_info(text: str) -> dict[str, Any]:
    """The service account key file's JSON, checked for what the grant needs (a copy: the
    caller may change it)."""
    return dict(_service_account_info(text))


def service_account_email(text: str) -> str:
    """The service account's address (`client_email`), as `service_account_info` reads it."""
    return str(_service_account_info(text)["client_email"])


@functools.lru_cache(maxsize=256)
def _service_account_info(text: str) -> dict[str, Any]:
    # Parsed once per key: a post asks for the key's address (sync, per message).
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise PermanentError(
            "the Google Chat service account key is not JSON",
            "service_account_invalid",
            "integration",
        ) from exc
    missing = [
        k for k in ("client_email", "private_key") if not isinstance(info, dict) or not info.get(k)
    ]
    if missing:
        raise PermanentError(
            f"the Google Chat service account key lacks {', '.join(missing)}",
            "service_account_invalid",
            "integration",
        )
    assert isinstance(info, dict)
    return info


@functools.lru_cache(maxsize=256)
def _key_digest(text: str) -> str:
    # Hashed once per key, as it is parsed once: a post asks for the key's token.
    return hashlib.sha256(text.encode()).hexdigest()


class DelegationRefused(PermanentError):
    """Google would not let the service account act as the user: the domain-wide
    delegation is missing (or lacks the scope), or the user is not the Workspace's."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "delegation_refused", "integration")


class AccessTokens:
    """Access tokens for the Chat API, kept until google-auth says they are no longer
    valid: one per service account key, scopes and the user it acts as (`subject`, None for
    the app itself). `requests` counts the token requests made."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str = TOKEN_URL,
        scopes: tuple[str, ...] = (CHAT_BOT_SCOPE,),
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._scopes = scopes
        self._timeout = timeout
        self._credentials: dict[_Kept, service_account.Credentials] = {}
        self._locks: dict[_Kept, asyncio.Lock] = {}
        self.requests = 0

    def _kept(self, key_json: str, subject: str | None, scopes: tuple[str, ...] | None) -> _Kept:
        return _key_digest(key_json), subject, scopes or self._scopes

    def credentials(
        self, key_json: str, subject: str | None = None, scopes: tuple[str, ...] | None = None
    ) -> service_account.Credentials:
        kept = self._kept(key_json, subject, scopes)
        found = self._credentials.get(kept)
        if found is None and subject is not None:
            # google-auth's own delegation: the same key's grant, with `sub` and the scopes.
            found = self.credentials(key_json).with_subject(subject).with_scopes(list(kept[2]))
            self._credentials[kept] = found
        elif found is None:
            # The key file names Google's token URL; the configured one (the sandbox's) wins.
            info = {**service_account_info(key_json), "token_uri": self._token_url}
            try:
                found = service_account.Credentials.from_service_account_info(
                    info, scopes=list(kept[2])
                )
            except (ValueError, google_errors.GoogleAuthError) as exc:
                raise PermanentError(
                    f"the Google Chat service account key is not usable: {exc}",
                    "service_account_invalid",
                    "integration",
                ) from exc
            self._credentials[kept] = found
        return found

    async def token(
        self, key_json: str, subject: str | None = None, scopes: tuple[str, ...] | None = None
    ) -> str:
        """An access token of the key for `scopes` (the app's, else), acting as `subject`
        when given (domain-wide delegation)."""
        credentials = self.credentials(key_json, subject, scopes)
        if credentials.valid:  # the common case: kept, no lock to take
            return str(credentials.token)
        lock = self._locks.setdefault(self._kept(key_json, subject, scopes), asyncio.Lock())
        async with lock:
            if not credentials.valid:
                # Who the administrator delegates to: the key's client ID (its OAuth 2 client).
                client = service_account_info(key_json).get("client_id") if subject else None
                await self._refresh(credentials, subject, str(client or credentials.signer_email))
        return str(credentials.token)

    def forget(
        self, key_json: str, subject: str | None = None, scopes: tuple[str, ...] | None = None
    ) -> None:
        """After the API refused the token (401): the next call asks for a new one."""
        self._credentials.pop(self._kept(key_json, subject, scopes), None)

    async def _refresh(
        self, credentials: service_account.Credentials, subject: str | None, client_id: str
    ) -> None:
        request = _OnLoop(self._client, asyncio.get_running_loop(), self._timeout)
        self.requests += 1
        try:
            await asyncio.to_thread(credentials.refresh, request)
        except google_errors.RefreshError as exc:
            if getattr(exc, "retryable", False):
                raise ProviderUnreachable(f"Google's token endpoint failed: {exc}") from exc
            if subject is not None:
                raise DelegationRefused(_delegation_refused(client_id, subject, exc)) from exc
            raise TokenRejected(
                f"Google refused the service account's token request: {exc}", "invalid_grant"
            ) from exc
        except google_errors.TransportError as exc:
            raise ProviderUnreachable(f"Google's token endpoint is unreachable: {exc}") from exc


# (key digest, subject, scopes): what one kept credential is for.
_Kept = tuple[str, str | None, tuple[str, ...]]


def _delegation_refused(client_id: str, subject: str, exc: google_errors.RefreshError) -> str:
    """What a refused delegated grant tells the user to configure. `unauthorized_client`:
    the delegation (or its scope) is missing (the answer Google's client libraries' issues
    show); for a `sub` that is no user of the Workspace Google is said to answer
    `invalid_grant` ("Invalid email or User ID"), which this page did not confirm: any
    refusal of a delegated grant is told the same way."""
    said = exc.args[0] if exc.args else exc  # google-auth's "error: error_description"
    return (
        f"Google refused to let the service account act as {subject} ({said}). "
        "A Workspace administrator must grant it domain-wide delegation (Admin console → "
        f"Security → API controls → Domain-wide delegation: client ID {client_id}, scope "
        f"{CHAT_MESSAGES_READONLY}), and the integration's import_as must be a user of that "
        "Workspace who is a member of the spaces to import"
    )
