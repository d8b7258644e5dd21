"""Which workspace the current request acts in (SPEC §13), and the narrowing every
request-facing repository query goes through.

The management API's authentication (`shared.kernel.http.auth.authenticate`) puts the caller's
workspace here (`confine`, the kernel's `Access.confine` in every service): none for the
admin token, the key's or the portal session's workspace for the others. The repositories
then narrow what a request reads and writes to it, in one place each (`narrow` in their
query methods, `WorkspaceCollection` for the CRUD every resource shares: the kernel's
`TombstoneCollection` narrowed by `WORKSPACES`), so a route added later is scoped without
anyone remembering to. The walk in `tests/access/test_cross_tenant.py` holds every
operation of the API to it.

What is narrowed is what a request asks for: `get`, `page`, `update`, deletes, the lookups
nested routes make of their integration. What feeds the per-replica caches
(`find_any`, `changed_since`) is not, on purpose: a cache is every workspace's, and a
refresh a request happens to start must not fill it with one workspace only. Consumers
and background tasks run outside any request, hence unscoped.

The value lives in a context variable: set by the authentication dependency in the
request's task, cleared around every request by `shared.kernel.http.limits.ManagementGuard`
(both through `confine`).

The same queries also `note` the workspace of what a request touched, for the audit log
(shared.kernel.http.trail): an admin's DELETE answers 204 with no body, and the entry must still
say whose resource it was.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, TypeVar

from shared.kernel.errors import Forbidden, NotFound
from shared.kernel.http.auth import Caller
from shared.kernel.mongo import Database, Document, TombstoneCollection

T = TypeVar("T")

_workspace: ContextVar[str | None] = ContextVar("hookhub_tenancy_workspace", default=None)
# What the confined caller is, as a refusal names it: a key, a portal session.
_acting_as: ContextVar[str] = ContextVar("hookhub_tenancy_acting_as", default="key")
# The workspace of the first document the current request found (a list of at most
# one, filled in place); None outside a request that is watched.
_touched: ContextVar[list[str] | None] = ContextVar("hookhub_tenancy_touched", default=None)


class OtherWorkspace(Forbidden):
    code = "other_workspace"


def current() -> str | None:
    """The workspace the request is confined to; None: every workspace (the admin token,
    or no request at all)."""
    return _workspace.get()


def acting_as() -> str:
    """What the confined caller is, for a refusal's words: `key` or `portal session`."""
    return _acting_as.get()


def enter(workspace_id: str | None, acting_as: str = "key") -> None:
    _workspace.set(workspace_id)
    _acting_as.set(acting_as)


# How refusals name the confined caller (`this key …`, `this portal session …`).
_NAMED = {"admin": "admin token", "key": "key", "portal": "portal session"}


def confine(caller: Caller | None) -> None:
    """The request confined to `caller`'s workspace (the admin: every one); None clears it
    (shared.kernel.http.auth.Confine)."""
    if caller is None:
        enter(None)
    else:
        enter(caller.workspace_id, acting_as=_NAMED[caller.kind])


def narrow(query: dict[str, Any]) -> dict[str, Any]:
    """`query` confined to the current workspace, whatever `workspace_id` it asked for."""
    workspace = _workspace.get()
    return query if workspace is None else {**query, "workspace_id": workspace}


def visible(workspace_id: object) -> bool:
    workspace = _workspace.get()
    return workspace is None or workspace_id == workspace


def require_visible(workspace_id: object, what: str) -> None:
    if not visible(workspace_id):
        raise NotFound(f"{what} not found")
    _remember(workspace_id)


def watch() -> tuple[list[str], Token[list[str] | None]]:
    """Start noting the workspace of what the current request touches first: the list
    `note` fills, and the token that `unwatch` takes at the end of the request."""
    touched: list[str] = []
    return touched, _touched.set(touched)


def unwatch(token: Token[list[str] | None]) -> None:
    _touched.reset(token)


def note(doc: T) -> T:
    """`doc` unchanged; its `workspace_id` noted for the watched request (if any)."""
    if doc is not None:
        _remember(doc.get("workspace_id") if isinstance(doc, dict) else None)
    return doc


def _remember(workspace_id: object) -> None:
    touched = _touched.get()
    if touched is not None and not touched and isinstance(workspace_id, str) and workspace_id:
        touched.append(workspace_id)


def may_create_in(workspace_id: object) -> None:
    """403 when the request is confined to another workspace than `workspace_id`."""
    if not visible(workspace_id):
        raise OtherWorkspace(
            f"this {_acting_as.get()} acts in workspace {_workspace.get()} only, "
            f"not in {workspace_id}"
        )


class _Workspaces:
    """The current request's workspace as the kernel's repositories ask for it
    (shared.kernel.mongo.Scope)."""

    def narrow(self, query: Document) -> Document:
        return narrow(query)

    def note(self, doc: T) -> T:
        return note(doc)

    def may_insert(self, doc: Document) -> None:
        may_create_in(doc.get("workspace_id"))


WORKSPACES = _Workspaces()


class WorkspaceCollection(TombstoneCollection):
    """A `TombstoneCollection` of documents that belong to a workspace (`workspace_id`):
    what a request asks is confined to its workspace. Every request-facing repository
    extends it."""

    def __init__(self, db: Database, name: str) -> None:
        super().__init__(db, name, WORKSPACES)
