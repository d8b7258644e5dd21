"""Fake Discord, GitHub, Atlassian and Google: their OAuth endpoints in their own shapes (on
the strict server of tests/fakes/oauth_server.py), the API calls hookhub makes after
connecting, and their revocation endpoints. Real HTTP on loopback. FakeSlack, which also
fakes the Web and Events APIs, lives in tests/fakes/slack.py and is re-exported here."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.oauth_server import FakeAuthorizationServer, answer
from tests.fakes.slack import FakeSlack

__all__ = ["FAKES", "FakeAtlassian", "FakeDiscord", "FakeGitHub", "FakeGoogle", "FakeSlack"]


def _form_token(form: Any) -> str:
    return str(form.get("token") or "")


class FakeDiscord(FakeAuthorizationServer):
    """Bot authorisation: the token answer names the guild, the callback adds guild_id."""

    provider = "discord"
    authorize_path = "/oauth2/authorize"
    token_path = "/api/oauth2/token"
    api_path = "/api/v10"
    revoke_path = "/api/oauth2/token/revoke"
    guild: ClassVar[dict[str, str]] = {"id": "G0GUILD", "name": "Guild of Tests"}

    def callback_extras(self) -> dict[str, str]:
        return {"guild_id": self.guild["id"], "permissions": "0"}

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status == 200 and grant_type == "authorization_code" and "bot" in body.get("scope", ""):
            body = {**body, "guild": {**self.guild, "owner_id": "U0OWNER", "features": []}}
        return answer(status, body, headers)

    def routes(self) -> list[Route]:
        async def me(request: Request) -> Response:
            if self.bearer(request) is None:
                return JSONResponse({"message": "401: Unauthorized", "code": 0}, 401)
            return JSONResponse({"id": "U0USER", "username": "alice", "global_name": "Alice"})

        async def revoke(request: Request) -> Response:
            if not self.client_authenticated(request):
                return JSONResponse({"error": "invalid_client"}, 401)
            self.revoke(_form_token(await request.form()))
            return JSONResponse({})

        return [
            *super().routes(),
            Route("/api/v10/users/@me", me),
            Route("/api/oauth2/token/revoke", revoke, methods=["POST"]),
        ]


class FakeGitHub(FakeAuthorizationServer):
    """Form-encoded answers unless JSON is asked for; errors with status 200."""

    provider = "github"
    authorize_path = "/login/oauth/authorize"
    token_path = "/login/oauth/access_token"
    api_path = "/api"  # revocation: DELETE {api}/applications/{client_id}/token
    token_prefix = "ghu_"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.always_form = False  # answer form-encoded even when JSON is asked for
        self.accept_headers: list[str] = []
        self.deleted: list[str] = []

    async def _token(self, request: Request) -> Response:
        self.accept_headers.append(request.headers.get("accept", ""))
        answer = await super()._token(request)
        if self.always_form or "json" not in request.headers.get("accept", ""):
            data = json.loads(bytes(answer.body))
            return Response(urlencode(data), 200, media_type="application/x-www-form-urlencoded")
        return answer

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status != 200:
            error = body.get("error", "")
            if error == "invalid_grant":
                error = (
                    "bad_refresh_token"
                    if grant_type == "refresh_token"
                    else "bad_verification_code"
                )
            return JSONResponse(
                {"error": error, "error_description": body.get("error_description", "")}
            )
        return JSONResponse(body)

    def routes(self) -> list[Route]:
        async def user(request: Request) -> Response:
            if self.bearer(request) is None:
                return JSONResponse({"message": "Bad credentials"}, 401)
            return JSONResponse(
                {
                    "login": "octocat",
                    "id": 583231,
                    "name": "The Octocat",
                    "html_url": "https://github.com/octocat",
                }
            )

        async def delete_token(request: Request) -> Response:
            if (
                not self.client_authenticated(request)
                or request.path_params["client_id"] != self.client.client_id
            ):
                return JSONResponse({"message": "Not Found"}, 404)
            token = (await request.json()).get("access_token", "")
            if not self.revoke(token):
                return JSONResponse({"message": "Not Found"}, 404)
            self.deleted.append(token)
            return Response(status_code=204)

        return [
            *super().routes(),
            Route("/api/user", user),
            Route("/api/applications/{client_id}/token", delete_token, methods=["DELETE"]),
        ]


class FakeAtlassian(FakeAuthorizationServer):
    """No PKCE, rotating refresh tokens, `403 unauthorized_client` for a dead refresh token."""

    provider = "jira"
    authorize_path = "/authorize"
    token_path = "/oauth/token"
    pkce = False

    def token_answer(
        self, grant_type: str, status: int, body: dict[str, Any], headers: Any
    ) -> Response:
        if status != 200 and grant_type == "refresh_token" and body.get("error") == "invalid_grant":
            return JSONResponse(
                {"error": "unauthorized_client", "error_description": "refresh_token is invalid"},
                403,
            )
        return answer(status, body, headers)

    def routes(self) -> list[Route]:
        async def resources(request: Request) -> Response:
            if self.bearer(request) is None:
                return JSONResponse({"code": 401, "message": "Unauthorized"}, 401)
            return JSONResponse(
                [
                    {
                        "id": "1324a887-45db-1bf4-1e99-ef0ff456d421",
                        "url": "https://acme.atlassian.net",
                        "name": "acme",
                        "scopes": ["read:jira-work", "write:jira-work"],
                        "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png",
                    }
                ]
            )

        return [*super().routes(), Route("/oauth/token/accessible-resources", resources)]


class FakeGoogle(FakeAuthorizationServer):
    """Refresh answers carry no refresh token (it never rotates); `/revoke` takes the token."""

    provider = "google"
    authorize_path = "/o/oauth2/v2/auth"
    token_path = "/token"
    revoke_path = "/revoke"
    rotate = False
    token_prefix = "ya29."

    def routes(self) -> list[Route]:
        async def userinfo(request: Request) -> Response:
            if self.bearer(request) is None:
                return JSONResponse({"error": "invalid_token"}, 401)
            return JSONResponse(
                {
                    "sub": "110248495921238986420",
                    "email": "alice@example.com",
                    "name": "Alice",
                    "email_verified": True,
                }
            )

        async def revoke(request: Request) -> Response:
            if self.revocation_unavailable:
                self.revocation_unavailable -= 1
                return JSONResponse({"error": "backend_error"}, 503)
            if not self.revoke(_form_token(await request.form())):
                return JSONResponse(
                    {"error": "invalid_token", "error_description": "Token expired or revoked"}, 400
                )
            return JSONResponse({})

        return [
            *super().routes(),
            Route("/v1/userinfo", userinfo),
            Route("/revoke", revoke, methods=["POST"]),
        ]


FAKES: dict[str, type[FakeAuthorizationServer]] = {
    fake.provider: fake for fake in (FakeSlack, FakeDiscord, FakeGitHub, FakeAtlassian, FakeGoogle)
}
