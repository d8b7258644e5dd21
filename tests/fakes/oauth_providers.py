"""Fake GitHub, Atlassian and Google: their OAuth endpoints in their own shapes (on the strict
server of tests/fakes/oauth_server.py), the API calls hookhub makes after connecting, and their
revocation endpoints. Real HTTP on loopback. FakeSlack and FakeDiscord, which also fake the
rest of their provider (Slack's Web and Events APIs; Discord's REST API and Gateway), live in
tests/fakes/slack.py and tests/fakes/discord.py and are re-exported here: `FAKES` is every
provider's one fake, by provider name."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.discord import FakeDiscord
from tests.fakes.oauth_server import FakeAuthorizationServer, answer
from tests.fakes.slack import FakeSlack

__all__ = ["FAKES", "FakeAtlassian", "FakeDiscord", "FakeGitHub", "FakeGoogle", "FakeSlack"]


def _form_token(form: Any) -> str:
    return str(form.get("token") or "")


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


class FakeAtlassian(FakeAuthorizationServer):
    """No PKCE, rotating refresh tokens, `403 unauthorized_client` for a dead refresh token."""

    provider = "jira"
    authorize_path = "/authorize"
    token_path = "/oauth/token"
    pkce = False
    cloud_id = "1324a887-45db-1bf4-1e99-ef0ff456d421"
    site_url = "https://acme.atlassian.net"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Issues: the site's projects and the issue types of each.
        self.projects: dict[str, set[str]] = {"PROJ": {"Task", "Bug", "Story"}}
        self.issues: list[dict[str, Any]] = []  # created: {key, id, fields}
        self.issue_requests = 0
        self.issue_delay = 0.0
        self._ids = itertools.count(10_000)
        self._keys: dict[str, itertools.count[int]] = {}

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
                        "id": self.cloud_id,
                        "url": self.site_url,
                        "name": "acme",
                        "scopes": ["read:jira-work", "write:jira-work"],
                        "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png",
                    }
                ]
            )

        return [
            *super().routes(),
            Route("/oauth/token/accessible-resources", resources),
            Route("/ex/jira/{cloud_id}/rest/api/3/issue", self._create_issue, methods=["POST"]),
        ]

    async def _create_issue(self, request: Request) -> Response:
        """Jira Cloud REST v3 `POST /rest/api/3/issue` through api.atlassian.com."""
        self.issue_requests += 1
        if self.issue_delay:
            await asyncio.sleep(self.issue_delay)
        if self.bearer(request) is None:
            return JSONResponse({"code": 401, "message": "Unauthorized"}, 401)
        if request.path_params["cloud_id"] != self.cloud_id:
            return JSONResponse(
                {"errorMessages": ["Site temporarily unavailable or not found"]}, 404
            )
        try:
            body = await request.json()
        except ValueError:
            return _jira_errors(["Unexpected character in the JSON body"], {})
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return _jira_errors(["Issue must have fields"], {})
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        types = self.projects.get(project) if isinstance(project, str) else None
        if types is None:
            errors["project"] = "Specify a valid project ID or key"
        elif (fields.get("issuetype") or {}).get("name") not in types:
            errors["issuetype"] = "Specify a valid issue type"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        if "description" in fields:
            problem = adf_problem(fields["description"])
            if problem:
                errors["description"] = problem
        if errors:
            return _jira_errors([], errors)
        assert isinstance(project, str)
        number = next(self._keys.setdefault(project, itertools.count(1)))
        issue_id = str(next(self._ids))
        key = f"{project}-{number}"
        self.issues.append({"id": issue_id, "key": key, "fields": fields})
        return JSONResponse(
            {"id": issue_id, "key": key, "self": f"{self.base_url}/rest/api/3/issue/{issue_id}"},
            201,
        )


def _jira_errors(messages: list[str], errors: dict[str, str]) -> Response:
    return JSONResponse({"errorMessages": messages, "errors": errors}, 400)


_ADF_MARKS = {"link", "code", "strong", "em"}


def adf_problem(node: Any) -> str | None:
    """Why `node` is not an Atlassian Document of the kinds hookhub writes (doc, paragraph,
    blockquote, text, hardBreak; marks link, code, strong, em), or None."""
    if not isinstance(node, dict) or node.get("type") != "doc":
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    if node.get("version") != 1 or not isinstance(node.get("content"), list):
        return "Atlassian Document must have version 1 and a content list"
    return _adf_children(node["content"], {"paragraph", "blockquote"})


def _adf_children(content: Any, allowed: set[str]) -> str | None:
    if not isinstance(content, list):
        return "content must be a list"
    for child in content:
        if not isinstance(child, dict) or child.get("type") not in allowed:
            kind = child.get("type") if isinstance(child, dict) else type(child).__name__
            return f"node {kind} is not allowed here"
        kind = child["type"]
        if kind == "blockquote":
            problem = _adf_children(child.get("content"), {"paragraph"})
        elif kind == "paragraph":
            problem = _adf_children(child.get("content", []), {"text", "hardBreak"})
        elif kind == "hardBreak":
            problem = None if set(child) <= {"type", "attrs"} else "hardBreak takes no content"
        else:
            problem = _adf_text(child)
        if problem:
            return problem
    return None


def _adf_text(node: dict[str, Any]) -> str | None:
    if not isinstance(node.get("text"), str) or not node["text"]:
        return "text nodes must have non-empty text"
    if set(node) - {"type", "text", "marks"}:
        return "text nodes take type, text and marks only"
    for mark in node.get("marks", []):
        if not isinstance(mark, dict) or mark.get("type") not in _ADF_MARKS:
            return f"mark {mark!r} is not allowed"
        if mark["type"] == "link" and not isinstance((mark.get("attrs") or {}).get("href"), str):
            return "link marks need attrs.href"
    return None


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
