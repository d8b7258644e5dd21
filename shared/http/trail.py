"""The audit trail of every service's management API (SPEC §13): one entry per change.

One middleware in front of every service's routes, so that no route is audited by
remembering to: a request whose method changes something (not GET, HEAD, OPTIONS), made
by a caller the authentication identified (`request.state.caller`, set by
`shared.http.auth.authenticate`), and answered 2xx, is described by `shared.audit` from its
route's template, its path parameters, the names of its JSON body's fields, its answer's
`id` and `workspace_id`, and the workspaces of the documents it found (`shared.tenancy.note`).

The entry is built once the answer has been sent and handed to the service's batched
writer: the request waits neither for it nor for its write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import audit, tenancy
from shared.http.auth import READS, Caller
from shared.ids import utcnow

log = structlog.get_logger(__name__)

# The most of a JSON body or answer kept to read its names from (the guard refuses larger
# request bodies before this sees them; answers of changes are small).
_MAX_CAPTURE = 1024 * 1024


class _Capture:
    """A JSON body as it passes, up to _MAX_CAPTURE bytes."""

    def __init__(self) -> None:
        self.wanted: bool | None = None  # None until the first chunk: is it to be kept?
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if not self.wanted or not chunk:
            return
        self.size += len(chunk)
        if self.size > _MAX_CAPTURE:
            self.wanted, self.chunks = False, []
        else:
            self.chunks.append(chunk)

    def parsed(self) -> Any:
        if not self.wanted or not self.chunks:
            return None
        try:
            return orjson.loads(b"".join(self.chunks))
        except orjson.JSONDecodeError:
            return None


class AuditTrail:
    """ASGI middleware recording the changes the app's routes answered 2xx. It reads the
    route once the router chose it (`scope["route"]`), as `ManagementGuard` does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._plans: dict[tuple[int, str], audit.Plan | None] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        body, answer = _Capture(), _Capture()
        status = 0
        # The change's time is its request's: recorded later, an entry must not sort (or
        # match `since`) after a request that began once this one was answered.
        at = utcnow()
        touched, token = tenancy.watch()

        async def capturing_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                if body.wanted is None:
                    body.wanted = _is_json(scope["headers"]) and self._audited(scope)
                body.add(message.get("body", b""))
            return message

        async def capturing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answer.wanted = (
                    200 <= status < 300
                    and _is_json(message.get("headers", []))
                    and self._audited(scope)
                )
            elif message["type"] == "http.response.body":
                answer.add(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, capturing_receive, capturing_send)
        finally:
            tenancy.unwatch(token)
        if 200 <= status < 300:
            self._record(scope, status, body, answer, touched, at)

    def _audited(self, scope: Scope) -> bool:
        return self._plan(scope) is not None

    def _plan(self, scope: Scope) -> audit.Plan | None:
        """The route's plan; for a route `shared.audit` cannot name, one with no resource
        type (recorded all the same, and logged: tests/shared/test_audit.py fails on it)."""
        route = scope.get("route")
        template = getattr(route, "path", None)
        if template is None:
            return None
        key = (id(route), scope["method"])
        if key not in self._plans:
            try:
                self._plans[key] = audit.plan(scope["method"], template)
            except audit.UnknownRoute as exc:
                log.warning("audit_route_unknown", error=str(exc))
                self._plans[key] = audit.Plan(None, scope["method"].lower())
        return self._plans[key]

    def _record(
        self,
        scope: Scope,
        status: int,
        body: _Capture,
        answer: _Capture,
        touched: list[str],
        at: datetime,
    ) -> None:
        caller = (scope.get("state") or {}).get("caller")
        plan = self._plan(scope)
        if isinstance(caller, Caller) and plan is not None:
            record(
                scope,
                plan,
                status=status,
                actor={"kind": caller.kind, "id": caller.id},
                actor_workspace=caller.workspace_id,
                body=body.parsed(),
                answer=answer.parsed(),
                touched=touched,
                at=at,
            )


def record(
    scope: Scope,
    plan: audit.Plan,
    *,
    status: int,
    actor: Mapping[str, str],
    actor_workspace: str | None = None,
    body: Any = None,
    answer: Any = None,
    touched: Sequence[str] = (),
    at: datetime | None = None,
) -> None:
    """Hand the entry of one change the request made to the service's audit log. Never
    raises: the change is made and answered, a failure here is a log line, not a 500."""
    try:
        request = audit.Request(
            method=scope["method"],
            route=scope["route"].path,
            path_params=dict(scope.get("path_params") or {}),
            status=status,
            request_id=(scope.get("state") or {}).get("request_id"),
            actor_kind=actor["kind"],
            actor_id=actor["id"],
            actor_workspace=actor_workspace,
            body=body,
            answer=answer,
            touched=list(touched),
        )
        audit_log_of(scope).record(audit.entry(plan, request, at or utcnow()))
    except Exception:
        log.exception("audit_entry_failed", route=getattr(scope.get("route"), "path", None))


def audit_log_of(scope: Scope) -> audit.AuditLog:
    found: audit.AuditLog = scope["app"].state.audit
    return found


def _is_json(headers: Any) -> bool:
    for key, value in headers:
        if key.lower() == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False
