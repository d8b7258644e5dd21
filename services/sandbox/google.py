"""Google's stand-in."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.oauth_server import FakeAuthorizationServer, form_token


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
            if not self.revoke(form_token(await request.form())):
                return JSONResponse(
                    {"error": "invalid_token", "error_description": "Token expired or revoked"}, 400
                )
            return JSONResponse({})

        return [
            *super().routes(),
            Route("/v1/userinfo", userinfo),
            Route("/revoke", revoke, methods=["POST"]),
        ]
