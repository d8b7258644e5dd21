"""Jira's (Atlassian's) stand-in."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.oauth_server import FakeAuthorizationServer, answer


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
