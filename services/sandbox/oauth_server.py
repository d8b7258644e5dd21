"""A strict OAuth 2.0 authorization server on loopback, on Authlib's server classes.

Strict where it matters to a client: PKCE S256 required of every client when `pkce` is on
(Authlib's `CodeChallenge(required=True)` insists on it for public clients only), redirect
URIs compared exactly, codes single-use and short-lived, refresh tokens rotated, and a
rotated refresh token that comes back revokes the whole grant (OAuth 2.0 Security BCP:
reuse means two parties hold it). It counts what it sees, so tests can assert on it.

The providers' stand-ins (services/sandbox/, whose `FAKES` names them all) subclass it to
answer in each provider's own shapes and to serve the API calls hookhub makes after connecting.
"""

from __future__ import annotations

import asyncio
import base64
import html
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeGrant,
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

REDIRECT_URI = "http://hookhub.test/api/auth/oauth/callback"
CODE_LIFETIME = 600.0


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uri: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Grant:
    """One authorisation by the user: every token issued from one code shares it."""

    user: str
    client_id: str
    scope: str
    revoked: bool = False


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float = field(default_factory=time.monotonic)
    used: bool = False

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class RefreshToken:
    token: str
    grant: Grant
    used: bool = False

    def check_client(self, client: Client) -> bool:
        return self.grant.client_id == client.client_id

    def get_scope(self) -> str:
        return self.grant.scope


@dataclass
class AccessToken:
    grant: Grant
    expires_at: float
    # Refused alone (`revoke_access`), its grant's refresh token still good.
    revoked: bool = False


class _Payload(OAuth2Payload):
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._data = dict(items)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in items:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):
    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._args = dict(request.query_params)
        self._form = dict(form)
        self.payload = _Payload([*request.query_params.multi_items(), *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _StrictCodeChallenge(CodeChallenge):
    """PKCE required of every client, S256 only."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "a code_challenge with code_challenge_method=S256 is required"
            )
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


class FakeAuthorizationServer:
    """Generic RFC 6749 shapes. Subclasses change paths, answers and add API routes."""

    provider: ClassVar[str] = ""
    authorize_path: ClassVar[str] = "/oauth/authorize"
    token_path: ClassVar[str] = "/oauth/token"
    api_path: ClassVar[str] = ""  # where the provider's REST API is served
    revoke_path: ClassVar[str | None] = None
    pkce: ClassVar[bool] = True
    rotate: ClassVar[bool] = True
    token_prefix: ClassVar[str] = ""

    def __init__(
        self,
        *,
        access_token_lifetime: int = 3600,
        client: Client | None = None,
        consent: bool = False,
    ) -> None:
        """`client`: the one registered client (hookhub's app); `consent`: the authorize
        endpoint shows a consent page the user answers (the sandbox, in a browser) instead of
        granting at once (the tests' requests)."""
        self.client = client or Client(
            "hookhub-" + secrets.token_hex(4), secrets.token_urlsafe(24), REDIRECT_URI
        )
        self.consent = consent
        self.access_token_lifetime = access_token_lifetime
        self.user = "user-1"
        self.deny = False
        self.codes: dict[str, Code] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        # What happened, for assertions.
        self.code_exchanges = 0
        self.refresh_grants = 0
        self.code_reuse = 0
        self.refresh_reuse = 0
        # Answer 503 to this many token requests (a provider having a bad minute).
        self.unavailable = 0
        # Answer 503 to this many revocation requests.
        self.revocation_unavailable = 0
        # Seconds each token request takes: widens the window in which refreshes race.
        self.delay = 0.0
        self.base_url = ""  # set once served
        self._server = self._build_server()

    # -- Authlib wiring -----------------------------------------------------------------

    def _build_server(self) -> AuthorizationServer:
        fake = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> Client | None:
                return fake.client if client_id == fake.client.client_id else None

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                fake._save_token(token, request)

            def create_oauth2_request(self, request: Any) -> Any:
                return request

            def create_json_request(self, request: Any) -> Any:
                raise NotImplementedError

            def handle_response(self, status: int, body: Any, headers: Any) -> Any:
                return status, body, headers

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                return None

        methods = ["client_secret_basic", "client_secret_post"]

        class CodeGrant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = methods

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                fake.codes[code] = Code(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=request.payload.redirect_uri,
                    scope=request.scope,
                    user=request.user,
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                item = fake.codes.get(code)
                if item is None or item.client_id != client.client_id:
                    return None
                if item.used:
                    fake.code_reuse += 1
                    return None
                if time.monotonic() - item.issued_at > CODE_LIFETIME:
                    return None
                return item

            def delete_authorization_code(self, authorization_code: Code) -> None:
                authorization_code.used = True

            def authenticate_user(self, authorization_code: Code) -> str:
                return authorization_code.user

        class RefreshGrant(RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = methods
            INCLUDE_NEW_REFRESH_TOKEN = fake.rotate

            def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
                item = fake.refresh_tokens.get(refresh_token)
                if item is None:
                    return None
                if item.used:
                    # A rotated token came back: someone else holds the grant too. Kill it.
                    fake.refresh_reuse += 1
                    item.grant.revoked = True
                    return None
                return None if item.grant.revoked else item

            def authenticate_user(self, refresh_token: RefreshToken) -> str:
                return refresh_token.grant.user

            def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
                if fake.rotate:
                    refresh_token.used = True

        server = Server()
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: self.token_prefix + "at-" + secrets.token_urlsafe(16),
                lambda **_: self.token_prefix + "rt-" + secrets.token_urlsafe(16),
                lambda client, grant_type: self.access_token_lifetime,
            ),
        )
        server.register_grant(CodeGrant, [_StrictCodeChallenge()] if self.pkce else None)
        server.register_grant(RefreshGrant)
        return server

    def _save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if request.payload.grant_type == "refresh_token":
            grant = request.refresh_token.grant
            self.refresh_grants += 1
        else:
            grant = Grant(request.user, request.client.client_id, token.get("scope", ""))
            self.code_exchanges += 1
        self.access_tokens[token["access_token"]] = AccessToken(
            grant, time.time() + float(token["expires_in"])
        )
        if token.get("refresh_token"):
            self.refresh_tokens[token["refresh_token"]] = RefreshToken(
                token["refresh_token"], grant
            )

    # -- what tests and API routes ask ----------------------------------------------------

    def issue_token(self, user: str, lifetime: float = 3600.0) -> str:
        """An access token of a grant `user` made (as if they had consented): for tests
        of the calls made with a user's token, without the flow."""
        token = self.token_prefix + "at-" + secrets.token_urlsafe(16)
        grant = Grant(user, self.client.client_id, "")
        self.access_tokens[token] = AccessToken(grant, time.time() + lifetime)
        return token

    def valid(self, access_token: str) -> bool:
        item = self.access_tokens.get(access_token)
        return (
            item is not None
            and not item.revoked
            and not item.grant.revoked
            and item.expires_at > time.time()
        )

    def revoke_access(self, access_token: str) -> bool:
        """This access token refused from now on (401), its grant and refresh token kept:
        a provider that stopped taking one token (a user's password changed, a token
        found leaked) while the grant goes on, so a refresh gets a working one."""
        item = self.access_tokens.get(access_token)
        if item is None or item.revoked:
            return False
        item.revoked = True
        return True

    def bearer(self, request: Request) -> str | None:
        """The user of the request's valid bearer token, else None."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not self.valid(token):
            return None
        return self.access_tokens[token].grant.user

    def client_authenticated(self, request: Request) -> bool:
        """HTTP Basic with this client's id and secret (revocation endpoints)."""
        encoded = request.headers.get("authorization", "").partition(" ")[2]
        client_id, _, secret = base64.b64decode(encoded or b"").decode().partition(":")
        return client_id == self.client.client_id and self.client.check_client_secret(secret)

    def revoke(self, token: str) -> bool:
        """Revoke the grant an access or refresh token belongs to."""
        item = self.access_tokens.get(token) or self.refresh_tokens.get(token)
        if item is None or item.grant.revoked:
            return False
        item.grant.revoked = True
        return True

    def live_grants(self) -> int:
        return len({id(a.grant) for a in self.access_tokens.values() if not a.grant.revoked})

    def hookhub_settings(self, base_url: str) -> dict[str, Any]:
        """The settings that point hookhub's provider at this fake."""
        name = self.provider
        return {
            f"{name}_client_id": self.client.client_id,
            f"{name}_client_secret": self.client.client_secret,
            f"{name}_authorize_url": base_url + self.authorize_path,
            f"{name}_token_url": base_url + self.token_path,
            f"{name}_api_base": base_url + self.api_path,
            **({f"{name}_revoke_url": base_url + self.revoke_path} if self.revoke_path else {}),
        }

    # -- HTTP -----------------------------------------------------------------------------

    async def _authorize(self, request: Request) -> Response:
        self.authorize_requests.append(dict(request.query_params))
        oauth_request = _Request(request, [])
        try:
            grant = self._server.get_consent_grant(oauth_request, end_user=self.user)
        except OAuth2Error as error:
            return answer(*self._server.handle_error_response(oauth_request, error))
        decision = "allow"
        if self.consent:
            if request.method != "POST":
                return consent_page(self.provider, request)
            decision = str((await request.form()).get("decision", ""))
        if self.deny or decision != "allow":
            denied = AccessDeniedError(redirect_uri=grant.redirect_uri)
            denied.state = oauth_request.payload.state
            return answer(*denied())
        status, body, headers = self._server.create_authorization_response(
            oauth_request, grant_user=self.user, grant=grant
        )
        return answer(status, body, [*headers], extra_query=self.callback_extras())

    def callback_extras(self) -> dict[str, str]:
        """Parameters the provider adds to the callback besides code and state."""
        return {}

    async def _token(self, request: Request) -> Response:
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        if self.delay:
            await asyncio.sleep(self.delay)
        self.token_requests.append({k: v for k, v in form if k != "client_secret"})
        if self.unavailable:
            self.unavailable -= 1
            return JSONResponse({"error": "temporarily_unavailable"}, 503)
        oauth_request = _Request(request, form)
        status, body, headers = self._server.create_token_response(oauth_request)
        return self.token_answer(oauth_request.payload.grant_type or "", status, body, headers)

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        """The provider's shape of a token answer (RFC 6749 §5 here)."""
        return answer(status, body, headers)

    def routes(self) -> list[Route]:
        async def healthz(_: Request) -> Response:
            return JSONResponse({"ok": True})

        return [
            Route("/healthz", healthz),
            Route(self.authorize_path, self._authorize, methods=["GET", "POST"]),
            Route(self.token_path, self._token, methods=["POST"]),
        ]

    def app(self) -> Starlette:
        return Starlette(routes=self.routes())


PROVIDER_NAMES = {
    "slack": "Slack",
    "discord": "Discord",
    "github": "GitHub",
    "jira": "Atlassian",
    "google": "Google",
    "gitlab": "GitLab",
}
CONSENT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def consent_page(provider: str, request: Request) -> Response:
    """The provider's "allow this app?" page: what is asked, Allow and Cancel. Its form posts
    back to the same URL (the request's parameters in its query), as providers' pages do;
    Cancel denies (`error=access_denied` to the redirect URI)."""
    asked = request.query_params
    scope = asked.get("scope") or asked.get("user_scope") or "(none)"
    name = html.escape(PROVIDER_NAMES.get(provider, provider))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} (sandbox): authorize hookhub</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<main>
<h1>{name} (sandbox)</h1>
<p>The app <strong>{html.escape(asked.get("client_id", ""))}</strong> asks to connect to your
{name} account with these permissions:</p>
<p><code>{html.escape(scope)}</code></p>
<p>It will be sent back to <code>{html.escape(asked.get("redirect_uri", ""))}</code>.</p>
<form method="post" action="?{html.escape(request.url.query)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Cancel</button>
</form>
<p><small>A stand-in of {name} run by hookhub's sandbox: no real account is involved.</small></p>
</main>
</body></html>
"""
    return HTMLResponse(page, headers=CONSENT_HEADERS)


def form_token(form: Any) -> str:
    """The `token` field of a revocation request's form."""
    return str(form.get("token") or "")


def answer(
    status: int, body: Any, headers: Any, extra_query: dict[str, str] | None = None
) -> Response:
    header_map = dict(headers or [])
    if extra_query and "Location" in header_map:
        header_map["Location"] += "&" + urlencode(extra_query)
    if isinstance(body, dict):
        return JSONResponse(
            body,
            status,
            headers={k: v for k, v in header_map.items() if k.lower() != "content-type"},
        )
    return Response(body or b"", status, headers=header_map)
