"""GitHub's stand-in."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.oauth_server import FakeAuthorizationServer


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
        # Issues: the repositories the account can create issues in, with their labels.
        self.repos: dict[str, set[str]] = {"octocat/hello-world": {"bug", "enhancement"}}
        self.issues: list[dict[str, Any]] = []  # created, with the request's headers
        self.issue_requests = 0
        self.issue_delay = 0.0  # seconds each create takes (widens races)
        # Switches: answer every create with a secondary rate limit (403 retry-after: 60);
        # with 401 Bad credentials whatever the token (the app's access was revoked); with
        # 503 this many times.
        self.secondary_rate_limit = False
        self.reject_tokens = False
        self.issue_outage = 0
        self._numbers = itertools.count(1)

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
            Route("/api/repos/{owner}/{repo}/issues", self._create_issue, methods=["POST"]),
        ]

    async def _create_issue(self, request: Request) -> Response:
        """`POST /repos/{owner}/{repo}/issues` as docs.github.com describes it."""
        self.issue_requests += 1
        if self.issue_delay:
            await asyncio.sleep(self.issue_delay)
        if self.issue_outage:
            self.issue_outage -= 1
            return JSONResponse({"message": "Service Unavailable"}, 503)
        if self.reject_tokens or self.bearer(request) is None:
            return JSONResponse(
                {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "status": "401",
                },
                401,
            )
        if self.secondary_rate_limit:
            return JSONResponse(
                {
                    "message": "You have exceeded a secondary rate limit. Please wait a few "
                    "minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                },
                403,
                headers={"retry-after": "60"},
            )
        accept = request.headers.get("accept", "")
        if accept not in ("", "*/*", "application/json") and "github" not in accept:
            return JSONResponse({"message": f"Unsupported media type {accept}"}, 415)
        repo = f"{request.path_params['owner']}/{request.path_params['repo']}"
        labels = self.repos.get(repo)
        if labels is None:
            return JSONResponse(
                {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404
            )
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"message": "Problems parsing JSON"}, 400)
        title = body.get("title") if isinstance(body, dict) else None
        if not isinstance(title, str) or not title.strip():
            return self._validation_failed(
                {"resource": "Issue", "code": "missing_field", "field": "title"}
            )
        wanted = body.get("labels") or []
        if any(label not in labels for label in wanted):
            return self._validation_failed(
                {"resource": "Label", "code": "invalid", "field": "labels"}
            )
        number = next(self._numbers)
        issue = {
            "id": 1_000_000 + number,
            "node_id": f"I_kwDO{number:06d}",
            "number": number,
            "url": f"https://api.github.com/repos/{repo}/issues/{number}",
            "html_url": f"https://github.com/{repo}/issues/{number}",
            "title": title,
            "body": body.get("body"),
            "state": "open",
            "labels": [{"name": name} for name in wanted],
        }
        self.issues.append(
            {
                **issue,
                "repo": repo,
                "accept": accept,
                "api_version": request.headers.get("x-github-api-version"),
            }
        )
        return JSONResponse(issue, 201)

    @staticmethod
    def _validation_failed(error: dict[str, str]) -> Response:
        return JSONResponse(
            {
                "message": "Validation Failed",
                "errors": [error],
                "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                "status": "422",
            },
            422,
        )
