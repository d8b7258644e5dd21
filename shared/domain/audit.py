"""The audit log (SPEC §13): the `audit_events` collection, what an entry says, and what
each route of the management API changes.

An entry is derived from the route that answered, never written route by route: the
middleware every service has (the kernel's `shared.kernel.http.trail.ChangeTrail`) hands the
changes answered 2xx to this module's `AuditRecorder`, which asks `plan` what a route
changes, and `entry` builds the document from what the request sent and was answered.
What was sent is recorded by the NAMES of its fields only, never a value: no secret (a
bot token, an endpoint's secret, a header) can reach the log.

Entries go through the service's `BatchedWriter` (the request never waits for the write)
and are kept `HOOKHUB_AUDIT_RETENTION_DAYS` (a TTL index on `at`). Every service writes
them; the oauth service lists them (`GET /api/audit-events`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from starlette.types import Scope

from shared.domain import tenancy
from shared.kernel.http.trail import Change
from shared.kernel.ids import id_floor, new_id_at, utcnow
from shared.kernel.mongo import BatchedWriter, Database, Document, Index, paginate
from shared.kernel.settings import Settings

log = structlog.get_logger(__name__)

COLLECTION = "audit_events"
ID_PREFIX = "aud"

# The most field names an entry keeps (a body of thousands of names is refused by its
# route's model anyway; this bounds what a route that takes any keys costs the log).
MAX_FIELDS = 100
_MAX_NAME = 100


def indexes(settings: Settings) -> list[Index]:
    """The listing's filters (newest first within one workspace or one resource) and the
    retention, which depends on the settings."""
    return [
        Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
        Index(COLLECTION, [("resource_id", 1), ("_id", -1)]),
        Index(
            COLLECTION,
            [("at", 1)],
            {"expireAfterSeconds": settings.audit_retention_days * 24 * 3600},
        ),
    ]


# -- what a route changes ----------------------------------------------------------------

# A path segment naming a collection of resources, and the resource type it holds.
RESOURCE_TYPES = {
    "integrations": "integration",
    "incoming-webhooks": "incoming_webhook",
    "outgoing-webhooks": "outgoing_webhook",
    "event-types": "event_type",
    "deliveries": "delivery",
    "mappings": "mapping",
    "subscriptions": "subscription",
    "imports": "import",
    "providers": "provider_app",
    "api-keys": "api_key",
    "portal-sessions": "portal_session",
    "replays": "replay",
    "account-links": "account_link",
}

# A trailing verb (`POST …/{id}/<verb>`) and the action it records.
VERBS = {
    "rotate-secret": "rotate",
    "rotate-token": "rotate",
    "test": "test",
    "recover": "recover",
    "retry": "retry",
    "disconnect": "disconnect",
    "cancel": "cancel",
    "resume": "resume",
    "expire-all": "expire-all",
    "replay": "replay",
}

_METHOD_ACTIONS = {"PATCH": "update", "PUT": "update", "DELETE": "delete"}

IdSource = Literal["path", "body", "answer", "none"]


@dataclass(frozen=True)
class Plan:
    """What a route changes: the resource type, the action, and where the resource's id
    is: the path parameter `id_name` (`path`), the request body's field `id_name`
    (`body`), the answer's `id` (`answer`, a create), or nowhere (`none`)."""

    resource_type: str | None
    action: str
    id_from: IdSource = "none"
    id_name: str = "id"


class UnknownRoute(LookupError):
    """A route whose change `plan` cannot name: give it an entry in `ROUTES`."""


# The routes whose path does not say what they change. None: not audited, and why.
ROUTES: dict[tuple[str, str], Plan | None] = {
    # The resource is the import job the answer describes, not the integration in the path.
    ("POST", "/api/integrations/{integration_id}/import"): Plan("import", "import", "answer"),
    ("POST", "/api/imports"): Plan("import", "import", "answer"),
    # Starts a connect: of the integration named, or of one the callback creates.
    ("POST", "/api/auth/oauth/connect"): Plan("integration", "connect", "body", "integration_id"),
    # The provider's callback: no token, hence recorded by its route (services/oauth/connect),
    # as made by whoever started the connect. The integration created or reconnected.
    ("GET", "/api/auth/oauth/callback"): Plan("integration", "connected", "answer"),
    ("POST", "/api/integrations/{integration_id}/actions/create-issue"): Plan(
        "integration", "create-issue", "path", "integration_id"
    ),
    # A link is addressed by its provider and chat user: the entry's resource is the chat
    # user (the provider is not recorded). A PUT makes or replaces it, the same entry.
    ("PUT", "/api/account-links/{provider}/{chat_user_id}"): Plan(
        "account_link", "put", "path", "chat_user_id"
    ),
    ("DELETE", "/api/account-links/{provider}/{chat_user_id}"): Plan(
        "account_link", "delete", "path", "chat_user_id"
    ),
    # Starts the chat user's consent; the callback records the link it makes, as made by
    # whoever started it (the caller, or the chat user their link ticket names).
    ("POST", "/api/account-links/{provider}/connect"): Plan(
        "account_link", "connect", "body", "chat_user_id"
    ),
    # A link ticket spent on the consent it names (no token: the ticket is the proof); the
    # callback records the link it makes, as made by the chat user the ticket names.
    ("POST", "/api/auth/oauth/link/{ticket}"): None,
    # Data, not a change: the chat product's events, published over HTTP as on Kafka. An
    # entry each would make the log a second, year-long copy of the event stream.
    ("POST", "/api/events"): None,
    # Runs a template on a sample for the console's editor: nothing is kept or changed.
    ("POST", "/api/templates/test"): None,
    # The same for a transformation (SPEC §17): run on the sample given, nothing kept.
    ("POST", "/api/transformations/test"): None,
    # `hookhub listen`'s endpoint, made or found again: recorded by its route when it makes
    # one (services/delivery/listen/endpoints.py), as the create it is; a find changes nothing.
    ("POST", "/api/listen/endpoints"): None,
    # Replica to replica: a delivery handed to the replica holding its listener's socket.
    # Data, as /api/events is; and no caller (a token between replicas).
    ("POST", "/internal/listen/{endpoint_id}"): None,
}


def plan(method: str, template: str) -> Plan | None:
    """What `method template` (a route's path template, `/api/integrations/{integration_id}`)
    changes; None when it is not audited. UnknownRoute when its path does not say."""
    if (method, template) in ROUTES:
        return ROUTES[(method, template)]
    segments = template.removeprefix("/api/").split("/")
    last = segments[-1]
    if _is_param(last) and method in _METHOD_ACTIONS and len(segments) >= 2:
        return Plan(_resource(segments[-2], template), _METHOD_ACTIONS[method], "path", last[1:-1])
    if method == "POST" and last in VERBS and len(segments) >= 2:
        before = segments[-2]
        if _is_param(before) and len(segments) >= 3:
            return Plan(_resource(segments[-3], template), VERBS[last], "path", before[1:-1])
        return Plan(_resource(before, template), VERBS[last])
    if method == "POST" and not _is_param(last):
        return Plan(_resource(last, template), "create", "answer")
    raise UnknownRoute(f"{method} {template}: no action to record")


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _resource(segment: str, template: str) -> str:
    try:
        return RESOURCE_TYPES[segment]
    except KeyError:
        raise UnknownRoute(f"{template}: {segment!r} names no resource type") from None


# -- an entry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What the middleware saw of one change that was answered 2xx."""

    method: str
    route: str
    path_params: dict[str, Any]
    status: int
    request_id: str | None
    actor_kind: str
    actor_id: str
    actor_workspace: str | None
    body: Any  # the parsed JSON body; None when there was none or it was not JSON
    answer: Any  # the parsed JSON answer, likewise
    touched: list[str]  # the workspace of the first document it found (shared.domain.tenancy)


def entry(plan: Plan | None, request: Request, at: datetime) -> Document:
    """The audit document (with its `_id`) of one change. `plan` None: a route `plan`
    could not name (recorded all the same, with no resource type)."""
    changed = plan or Plan(None, request.method.lower())
    body = request.body if isinstance(request.body, dict) else {}
    answer = request.answer if isinstance(request.answer, dict) else {}
    action = changed.action
    if action == "update" and isinstance(body.get("enabled"), bool):
        action = "enable" if body["enabled"] else "disable"
    return {
        "_id": new_id_at(ID_PREFIX, at),
        "at": at,
        "workspace_id": _workspace(request, body, answer),
        "actor": {"kind": request.actor_kind, "id": request.actor_id},
        "resource_type": changed.resource_type,
        "resource_id": _resource_id(changed, request, body, answer),
        "action": action,
        "fields": field_names(body),
        "request_id": request.request_id,
        "method": request.method,
        "route": request.route,
        "status": request.status,
    }


def chat_user_entry(
    *,
    workspace_id: str,
    chat_user_id: str,
    resource_type: str,
    resource_id: str | None,
    action: str,
    fields: Sequence[str] = (),
    at: datetime | None = None,
    **about: Any,
) -> Document:
    """The audit document of a change a chat user made from a channel (SPEC §20: a card's
    action, a slash command): no request, method, route or status; `about` says more of it
    (`card_action`, `command`)."""
    at = at or utcnow()
    return {
        "_id": new_id_at(ID_PREFIX, at),
        "at": at,
        "workspace_id": workspace_id,
        "actor": {"kind": "chat_user", "id": chat_user_id},
        "resource_type": resource_type,
        "resource_id": resource_id,
        "action": action,
        "fields": list(fields),
        "request_id": None,
        "method": None,
        "route": None,
        "status": None,
        **about,
    }


def _workspace(request: Request, body: dict[str, Any], answer: dict[str, Any]) -> str | None:
    """The caller's; else the answer's, the body's, the path's; else that of the first
    document the request found (an admin's DELETE answers no body)."""
    for candidate in (
        request.actor_workspace,
        answer.get("workspace_id"),
        body.get("workspace_id"),
        request.path_params.get("workspace_id"),
        *request.touched[:1],
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _resource_id(
    plan: Plan, request: Request, body: dict[str, Any], answer: dict[str, Any]
) -> str | None:
    found: object = {
        "path": request.path_params.get(plan.id_name),
        "body": body.get(plan.id_name),
        "answer": answer.get("id"),
        "none": None,
    }[plan.id_from]
    return found if isinstance(found, str) and found else None


def field_names(body: dict[str, Any]) -> list[str]:
    """The names of the fields a body sets, and of those its `settings` set
    (`settings.bot_token`); never a value. Sorted, at most MAX_FIELDS."""
    names = [str(name)[:_MAX_NAME] for name in body]
    settings = body.get("settings")
    if isinstance(settings, dict):
        names += [f"settings.{name}"[:_MAX_NAME] for name in settings]
    return sorted(names)[:MAX_FIELDS]


# -- the collection ----------------------------------------------------------------------


class AuditLog:
    """Writes entries through a BatchedWriter (a dict update in the request; stored at the
    writer's next flush) and lists them, confined to the request's workspace."""

    def __init__(self, db: Database, writer: BatchedWriter) -> None:
        self.collection = db[COLLECTION]
        self.writer = writer

    def record(self, doc: Document) -> None:
        fields = dict(doc)
        self.writer.insert_once(COLLECTION, fields.pop("_id"), fields)

    async def page(
        self,
        *,
        limit: int,
        cursor: str | None,
        since: datetime | None = None,
        **filters: str | None,
    ) -> tuple[list[Document], str | None]:
        """Newest first. `filters` by field (`actor` is the actor's id); `since` by time,
        as a range of ids (they begin with their millisecond)."""
        query: Document = {}
        for name, value in filters.items():
            if value:
                query["actor.id" if name == "actor" else name] = value
        if since is not None:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            query["_id"] = {"$gte": id_floor(ID_PREFIX, moment.timestamp())}
        return await paginate(self.collection, tenancy.narrow(query), limit=limit, cursor=cursor)


# -- the trail's recorder ----------------------------------------------------------------


class AuditRecorder:
    """What the kernel's `ChangeTrail` hands every change to (shared.kernel.http.trail.
    ChangeRecorder): the routes `plan` names are recorded, with the workspace of the first
    document each request found (`tenancy.watch`), into the app's `AuditLog`."""

    def __init__(self) -> None:
        self._plans: dict[tuple[int, str], Plan | None] = {}

    def records(self, scope: Scope) -> bool:
        return self._plan(scope) is not None

    @contextmanager
    def watch(self) -> Iterator[Callable[[Change], None]]:
        touched, token = tenancy.watch()
        try:
            yield lambda change: self._record(change, touched)
        finally:
            tenancy.unwatch(token)

    def _plan(self, scope: Scope) -> Plan | None:
        """The route's plan; for a route this module cannot name, one with no resource
        type (recorded all the same, and logged: tests/shared/test_audit.py fails on it)."""
        route = scope.get("route")
        template = getattr(route, "path", None)
        if template is None:
            return None
        key = (id(route), scope["method"])
        if key not in self._plans:
            try:
                self._plans[key] = plan(scope["method"], template)
            except UnknownRoute as exc:
                log.warning("audit_route_unknown", error=str(exc))
                self._plans[key] = Plan(None, scope["method"].lower())
        return self._plans[key]

    def _record(self, change: Change, touched: list[str]) -> None:
        planned = self._plan(change.scope)
        if planned is not None:
            record(
                change.scope,
                planned,
                status=change.status,
                actor={"kind": change.caller.kind, "id": change.caller.id},
                actor_workspace=change.caller.workspace_id,
                body=change.body,
                answer=change.answer,
                touched=touched,
                at=change.at,
            )


def record(
    scope: Scope,
    plan: Plan,
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
        request = Request(
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
        audit_log_of(scope).record(entry(plan, request, at or utcnow()))
    except Exception:
        log.exception("audit_entry_failed", route=getattr(scope.get("route"), "path", None))


def audit_log_of(scope: Scope) -> AuditLog:
    found: AuditLog = scope["app"].state.audit
    return found
