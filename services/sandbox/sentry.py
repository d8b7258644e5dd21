"""Sentry's issue API on loopback, for the actions hookhub takes on an issue from the channel
(shared.providers.sentry.acting): `GET`/`PUT /api/0/organizations/{org}/issues/{issue_id}/`
("Update an Issue", https://docs.sentry.io/api/events/update-an-issue/) and the same
endpoint without the organization, `/api/0/issues/{issue_id}/`.

A `PUT` takes `status` (`resolved`, `resolvedInNextRelease`, `unresolved`, `ignored`) and
`assignedTo` (a member's id, `user:<id>`, user name or email, as getsentry/sentry
`Actor.from_identifier` reads it) and answers 200 with the whole issue, as Sentry does.
Refusals in Sentry's (Django REST framework's) shapes: 401 `{"detail": "Authentication
credentials were not provided."}` without a token and `{"detail": "Invalid token"}` with an
unknown one; 403 `{"detail": "You do not have permission to perform this action."}` for a
token without `event:write`; 404 `{"detail": "The requested resource does not exist"}` for
an issue not in that organization; 400 `{"status": ["\"x\" is not a valid choice."]}`,
`{"assignedTo": ["Unable to resolve actor identifier"]}` for nobody it knows, and
`{"assignedTo": ["Cannot assign to non-team member"]}` for a user outside the project.
`unavailable` answers 503.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.sandbox.recording import Recorded, RecordingApi, healthz

STATUSES = frozenset({"resolved", "resolvedInNextRelease", "unresolved", "ignored"})
NOT_FOUND = {"detail": "The requested resource does not exist"}


def _refuse(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status)


@dataclass
class FakeSentry(RecordingApi):
    """`tokens`: each token and its scopes; `issues` by id (`organization` and `project`
    say where each is); `users` by id, each with `email`, `username`, `name`, and the
    `projects` it is a member of."""

    tokens: dict[str, set[str]] = field(default_factory=dict)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_issue(self, issue_id: str, organization: str, project: str, **fields: Any) -> None:
        self.issues[issue_id] = {
            "id": issue_id,
            "organization": organization,
            "project": {"slug": project},
            "status": "unresolved",
            "assignedTo": None,
            **fields,
        }

    def add_user(self, user_id: str, email: str, projects: set[str], name: str = "") -> None:
        self.users[user_id] = {
            "id": user_id,
            "email": email,
            "username": email,
            "name": name or email,
            "projects": projects,
        }

    def _actor(self, identifier: str) -> dict[str, Any] | None:
        """A user as `Actor.from_identifier` finds one (teams are not kept here)."""
        wanted = identifier.removeprefix("user:")
        for user in self.users.values():
            if wanted in (user["id"], user["username"], user["email"]):
                return user
        return None

    def _denied(self, recorded: Recorded) -> Response | None:
        token = self.bearer(recorded)
        if token is None:
            return _refuse(401, {"detail": "Authentication credentials were not provided."})
        if token not in self.tokens:
            return _refuse(401, {"detail": "Invalid token"})
        if recorded.method == "PUT" and "event:write" not in self.tokens[token]:
            return _refuse(403, {"detail": "You do not have permission to perform this action."})
        return None

    def _update(self, issue: dict[str, Any], body: Any) -> Response:
        if not isinstance(body, dict):
            return _refuse(400, {"detail": "Invalid request body"})
        status = body.get("status")
        if status is not None and status not in STATUSES:
            return _refuse(400, {"status": [f'"{status}" is not a valid choice.']})
        assignee = None
        if "assignedTo" in body:
            assignee = self._actor(str(body["assignedTo"]))
            if assignee is None:
                return _refuse(400, {"assignedTo": ["Unable to resolve actor identifier"]})
            if issue["project"]["slug"] not in assignee["projects"]:
                return _refuse(400, {"assignedTo": ["Cannot assign to non-team member"]})
        if status is not None:
            issue["status"] = "resolved" if status == "resolvedInNextRelease" else status
        if assignee is not None:
            issue["assignedTo"] = {
                "type": "user",
                **{k: assignee[k] for k in ("id", "name", "email")},
            }
        return JSONResponse(issue)

    def app(self) -> Starlette:
        async def issue(request: Request) -> Response:
            recorded, down = await self.take(request)
            refused = down or self._denied(recorded)
            if refused is not None:
                return refused
            org = request.path_params.get("org")
            found = self.issues.get(request.path_params["issue_id"])
            if found is None or (org is not None and found["organization"] != org):
                return _refuse(404, NOT_FOUND)
            if request.method == "GET":
                return JSONResponse(found)
            return self._update(found, recorded.body)

        methods = ["GET", "PUT"]
        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/api/0/organizations/{org}/issues/{issue_id}/", issue, methods=methods),
                Route("/api/0/issues/{issue_id}/", issue, methods=methods),
            ]
        )
