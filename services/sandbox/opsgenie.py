"""A stand-in of Opsgenie's Alert API v2 on loopback: the actions acting on an alert from
the channel calls (shared/providers/opsgenie/acting.py), answering as Opsgenie documents
them (https://docs.opsgenie.com/docs/alert-api, https://docs.opsgenie.com/docs/response;
opsgenie/opsgenie-oas `paths/alert.yaml`), alerts kept in memory.

- `POST /v2/alerts/{identifier}/acknowledge` and `…/close` (`identifierType` `id`, the
  default, or `tiny`; an optional body `{"user", "source", "note"}`): 202 `{"result":
  "Request will be processed", "took", "requestId"}`, the action then processed as Opsgenie
  does, after the answer: its outcome is only the request's status. A body that is not a
  JSON object is 400 `Invalid JSON body`; an `identifierType` it does not know, 422.
- `GET /v2/alerts/requests/{requestId}`: `{"data": {"success", "action", "processedAt",
  "isSuccess", "status", "alertId"}, "took", "requestId"}`; an alert that does not exist is
  `"status": "Alert does not exist"` (the docs' example); an action on a closed alert fails
  with the stand-in's own words (the docs do not say Opsgenie's), as does an unknown
  request (404).

Every call needs `Authorization: GenieKey <a key it knows>`, else 401 `{"message": "Could not
authenticate", "took", "requestId"}` (as Opsgenie answers, streaak/keyhacks#124); a key
that is not an API integration's (`add_key(..., integration=False)`) may not act on alerts:
403 `{"code": 40301, "message": "To perform this action, use an API key from an API
integration."}` (K-Phoen/backstage-plugin-opsgenie#68). `fail(n)` makes the next n calls
answer 503, `rate_limit(n)` 429. Each request is recorded (`requests`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from services.sandbox.recording import Recorded, RecordingApi

# What each action does to an alert, and how a request's status says it went.
ACTIONS = {"acknowledge": ("Acknowledge", "Acknowledged alert"), "close": ("Close", "Closed alert")}


@dataclass
class OpsgenieAlert:
    id: str
    tiny_id: str
    message: str
    status: str = "open"  # open, closed
    acknowledged: bool = False
    # Who did each action, as its `user` named them.
    acknowledged_by: str | None = None
    closed_by: str | None = None


def _answer(status: int, headers: Mapping[str, str] | None = None, **body: Any) -> Response:
    request_id = str(uuid.uuid4())
    return JSONResponse(
        {**body, "took": 0.01, "requestId": request_id},
        status,
        {**(headers or {}), "X-Request-ID": request_id},
    )


@dataclass
class FakeOpsgenie(RecordingApi):
    """`keys`: the API keys it takes, each True when it is an API integration's (may act on
    alerts)."""

    keys: dict[str, bool] = field(default_factory=lambda: {"sandbox-opsgenie-key": True})
    alerts: dict[str, OpsgenieAlert] = field(default_factory=dict)
    # What `GET /v2/alerts/requests/{id}` says of each action request, by its id.
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_key(self, key: str, *, integration: bool = True) -> None:
        self.keys[key] = integration

    def add_alert(self, id: str, message: str = "The server is on fire") -> OpsgenieAlert:
        self.alerts[id] = OpsgenieAlert(id, str(len(self.alerts) + 1), message)
        return self.alerts[id]

    def rate_limit(self, times: int = 1) -> None:
        """The next `times` calls are throttled: 429 with Opsgenie's `X-RateLimit-*`
        headers (opsgenie-oas `responses/common.yaml`; the message is the stand-in's)."""
        headers = {"X-RateLimit-State": "THROTTLED", "X-RateLimit-Period-In-Sec": "60"}
        self.fail(times, lambda: _answer(429, message="Too many requests", headers=headers))

    def forget(self) -> None:
        super().forget()
        self.alerts.clear()
        self.statuses.clear()

    # -- the API -----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return self.routed(
            ("POST", "/v2/alerts/{identifier}/acknowledge", self._acknowledge),
            ("POST", "/v2/alerts/{identifier}/close", self._close),
            ("GET", "/v2/alerts/requests/{request}", self._request_status),
        )

    def denied(self, recorded: Recorded) -> Response | None:
        scheme, _, key = recorded.headers.get("authorization", "").partition(" ")
        if scheme != "GenieKey" or key not in self.keys:
            return _answer(401, message="Could not authenticate")
        return None

    def _acknowledge(self, recorded: Recorded, params: Mapping[str, str]) -> Response:
        return self._act(recorded, params["identifier"], "acknowledge")

    def _close(self, recorded: Recorded, params: Mapping[str, str]) -> Response:
        return self._act(recorded, params["identifier"], "close")

    def _act(self, recorded: Recorded, identifier: str, action: str) -> Response:
        if not self.keys[recorded.headers["authorization"].partition(" ")[2]]:
            return _answer(
                403,
                code=40301,
                message="To perform this action, use an API key from an API integration.",
            )
        if recorded.body is not None and not isinstance(recorded.body, dict):
            return _answer(400, message="Invalid JSON body")
        kind = recorded.query.get("identifierType", "id")
        if kind not in ("id", "tiny"):
            return _answer(422, message=f"Invalid identifierType: {kind}")
        alert = next(
            (
                a
                for a in self.alerts.values()
                if (a.id if kind == "id" else a.tiny_id) == identifier
            ),
            None,
        )
        answer = _answer(202, result="Request will be processed")
        request_id = answer.headers["X-Request-ID"]
        self.statuses[request_id] = self._process(alert, action, recorded.body or {})
        return answer

    def _process(
        self, alert: OpsgenieAlert | None, action: str, body: Mapping[str, Any]
    ) -> dict[str, Any]:
        name, done = ACTIONS[action]
        if alert is None:
            success, status = False, "Alert does not exist"
        elif alert.status == "closed":
            success, status = False, "Alert is already closed"
        else:
            success, status = True, done
            user = body.get("user") if isinstance(body.get("user"), str) else None
            if action == "acknowledge":
                alert.acknowledged, alert.acknowledged_by = True, user
            else:
                alert.status, alert.closed_by = "closed", user
        return {
            "success": success,
            "isSuccess": success,
            "action": name,
            "processedAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "status": status,
            "alertId": alert.id if alert is not None else "",
        }

    def _request_status(self, recorded: Recorded, params: Mapping[str, str]) -> Response:
        found = self.statuses.get(params["request"])
        if found is None:
            return _answer(404, message="Request not found")
        return _answer(200, data=found)
