"""A stand-in of PagerDuty's REST API v2 on loopback: the operations acting on an incident
from the channel calls (shared/providers/pagerduty/acting.py), answering as PagerDuty
documents them (PagerDuty/api-schema `reference/REST/openapiv3.json`; errors
`{"error": {"message", "code", "errors"}}` with the codes of PagerDuty/developer-docs
`docs/REST-API/14-Errors.md`), incidents and users kept in memory.

- `GET /incidents/{id}`: `{"incident": …}`, or 404 `Not Found` (2100).
- `PUT /incidents/{id}` as the user whose email `From` names: `{"incident": {"type":
  "incident_reference", "status"?, "assignments"?}}` → `{"incident": …}`. Without `From`,
  400 (as PagerDuty answered in quintoandar/airflow-pagerduty-plugin#1); an email no user
  has, 400 `Requester User Not Found` (1008); a body that is not that, 400 `Invalid Input
  Provided` (2001); a status other than acknowledged, resolved or triggered, 400 `Invalid
  Status Provided` (1003); an assignee no user is, 400 `Assigned To User Not Found` (1007).
  Resolving a resolved incident, or reassigning one, is 400 `Incident Already Resolved`
  (1001): what PagerDuty answers there is not documented, the code is its list's.
  Acknowledging (or triggering) a resolved incident reopens it, acknowledged by and
  assigned to the requester (the `status` field's description, since 2025-09-18).
  Assignments replace the assignees, and leave the incident triggered for them (the stand-in's
  reading: the reassigned incident of PagerDuty's webhook samples is triggered).
- `GET /users?query=`: the users whose name or email contains the query, case aside, one
  page (`limit` 25, `more` false).

Every call needs `Authorization: Token token=<a key it knows>`, else 401 `Authentication
failed` (2006). `fail(n)` makes the next n calls answer 503; `rate_limit(n)` answer 429 as
docs/REST-API/04-Rate-Limits.md shows (`ratelimit-*` headers, `Rate Limit Exceeded`, 2020).
Each request is recorded (`requests`: method, path, headers, body, query).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from services.sandbox.recording import Recorded, RecordingApi

HTML = "https://sandbox.pagerduty.com"


@dataclass
class PagerDutyUser:
    id: str
    name: str
    email: str

    def reference(self) -> dict[str, Any]:
        return {"id": self.id, "type": "user_reference", "summary": self.name}

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "user",
            "summary": self.name,
            "name": self.name,
            "email": self.email,
            "html_url": f"{HTML}/users/{self.id}",
        }


@dataclass
class PagerDutyIncident:
    id: str
    title: str
    number: int
    status: str = "triggered"
    assignees: list[str] = field(default_factory=list)
    acknowledgers: list[str] = field(default_factory=list)
    resolved_by: str | None = None


def _error(status: int, message: str, code: int, *errors: str) -> Response:
    return JSONResponse(
        {"error": {"message": message, "code": code, "errors": list(errors)}}, status
    )


@dataclass
class FakePagerDuty(RecordingApi):
    """`tokens`: the REST API keys it takes."""

    tokens: set[str] = field(default_factory=lambda: {"sandbox-pagerduty-token"})
    users: dict[str, PagerDutyUser] = field(default_factory=dict)
    incidents: dict[str, PagerDutyIncident] = field(default_factory=dict)

    # -- set-up ------------------------------------------------------------------------------

    def add_user(self, id: str, name: str, email: str) -> PagerDutyUser:
        self.users[id] = PagerDutyUser(id, name, email)
        return self.users[id]

    def add_incident(
        self, id: str, title: str = "The server is on fire", status: str = "triggered"
    ) -> PagerDutyIncident:
        self.incidents[id] = PagerDutyIncident(id, title, len(self.incidents) + 1, status)
        return self.incidents[id]

    def rate_limit(self, times: int = 1, reset: int = 20) -> None:
        headers = {
            "ratelimit-limit": "960",
            "ratelimit-remaining": "0",
            "ratelimit-reset": f"{reset}",
        }
        self.fail(
            times,
            lambda: JSONResponse(
                {"error": {"message": "Rate Limit Exceeded", "code": 2020}}, 429, headers
            ),
        )

    def forget(self) -> None:
        super().forget()
        self.users.clear()
        self.incidents.clear()

    # -- the API -----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return self.routed(
            ("GET", "/incidents/{id}", self._get_incident),
            ("PUT", "/incidents/{id}", self._update_incident),
            ("GET", "/users", self._list_users),
        )

    def denied(self, recorded: Recorded) -> Response | None:
        scheme, _, token = recorded.headers.get("authorization", "").partition("token=")
        if scheme.strip() != "Token" or token not in self.tokens:
            return _error(401, "Authentication failed", 2006)
        return None

    def _as_json(self, incident: PagerDutyIncident) -> dict[str, Any]:
        return {
            "id": incident.id,
            "type": "incident",
            "summary": f"[#{incident.number}] {incident.title}",
            "title": incident.title,
            "incident_number": incident.number,
            "status": incident.status,
            "html_url": f"{HTML}/incidents/{incident.id}",
            "assignments": [{"assignee": self.users[a].reference()} for a in incident.assignees],
            "acknowledgements": [
                {"acknowledger": self.users[a].reference()} for a in incident.acknowledgers
            ],
        }

    def _get_incident(self, recorded: Recorded, params: Mapping[str, str]) -> Response:
        incident = self.incidents.get(params["id"])
        if incident is None:
            return _error(404, "Not Found", 2100)
        return JSONResponse({"incident": self._as_json(incident)})

    def _update_incident(self, recorded: Recorded, params: Mapping[str, str]) -> Response:
        incident = self.incidents.get(params["id"])
        if incident is None:
            return _error(404, "Not Found", 2100)
        sender = recorded.headers.get("from")
        if not sender:
            return _error(
                400,
                'You must specify a user\'s email address in the "From" header to perform '
                "this action",
                2016,
            )
        requester = self._by_email(sender)
        if requester is None:
            return _error(400, "Requester User Not Found", 1008)
        change = recorded.body.get("incident") if isinstance(recorded.body, dict) else None
        if not isinstance(change, dict) or change.get("type") not in (
            "incident",
            "incident_reference",
        ):
            return _error(400, "Invalid Input Provided", 2001, "Incident type is required")
        refused = self._assign(incident, change.get("assignments"))
        if refused is None and "status" in change:
            refused = self._set_status(incident, change["status"], requester)
        return refused or JSONResponse({"incident": self._as_json(incident)})

    def _assign(self, incident: PagerDutyIncident, assignments: Any) -> Response | None:
        if assignments is None:
            return None
        ids: list[str] = []
        for assignment in assignments if isinstance(assignments, list) else ():
            assignee = assignment.get("assignee") if isinstance(assignment, dict) else None
            if isinstance(assignee, dict) and isinstance(assignee.get("id"), str):
                ids.append(assignee["id"])
        if not ids or len(ids) != len(assignments):
            return _error(400, "Invalid Input Provided", 2001, "Assignments are invalid")
        if any(i not in self.users for i in ids):
            return _error(400, "Assigned To User Not Found", 1007)
        if incident.status == "resolved":
            return _error(400, "Incident Already Resolved", 1001)
        incident.assignees, incident.acknowledgers = ids, []
        incident.status = "triggered"
        return None

    def _set_status(
        self, incident: PagerDutyIncident, status: Any, requester: PagerDutyUser
    ) -> Response | None:
        if status not in ("acknowledged", "resolved", "triggered"):
            return _error(400, "Invalid Status Provided", 1003)
        if status == "resolved":
            if incident.status == "resolved":
                return _error(400, "Incident Already Resolved", 1001)
            incident.assignees, incident.resolved_by = [], requester.id
        elif incident.status == "resolved":  # reopened
            incident.assignees, incident.resolved_by = [requester.id], None
        if status == "acknowledged" and requester.id not in incident.acknowledgers:
            incident.acknowledgers.append(requester.id)
        incident.status = status
        return None

    def _list_users(self, recorded: Recorded, params: Mapping[str, str]) -> Response:
        query = recorded.query.get("query", "").lower()
        found = [
            u.as_json()
            for u in self.users.values()
            if query in u.name.lower() or query in u.email.lower()
        ]
        return JSONResponse(
            {"users": found[:25], "limit": 25, "offset": 0, "more": len(found) > 25, "total": None}
        )

    def _by_email(self, email: str) -> PagerDutyUser | None:
        return next((u for u in self.users.values() if u.email.lower() == email.lower()), None)
