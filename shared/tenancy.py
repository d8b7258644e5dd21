"""Which workspace the current request acts in (SPEC §13), and the narrowing every
request-facing repository query goes through.

The management API's authentication (`shared.http.auth.authenticate`) puts the caller's
workspace here: none for the admin token, the key's or the portal session's workspace for
the others. The repositories then narrow what a request reads and writes to it, in one
place each (`narrow` in their query methods, `TombstoneCollection` for the CRUD every
resource shares), so a route added later is scoped without anyone remembering to. The
walk in `tests/access/test_cross_tenant.py` holds every operation of the API to it.

What is narrowed is what a request asks for: `get`, `page`, `update`, deletes, the lookups
nested routes make of their integration. What feeds the per-replica caches
(`find_any`, `changed_since`) is not, on purpose: a cache is every workspace's, and a
refresh a request happens to start must not fill it with one workspace only. Consumers
and background tasks run outside any request, hence unscoped.

The value lives in a context variable: set by the authentication dependency in the
request's task, cleared around every request by `shared.http.limits.ManagementGuard`.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from shared.errors import Forbidden, NotFound

_workspace: ContextVar[str | None] = ContextVar("hookhub_tenancy_workspace", default=None)


class OtherWorkspace(Forbidden):
    code = "other_workspace"


def current() -> str | None:
    """The workspace the request is confined to; None: every workspace (the admin token,
    or no request at all)."""
    return _workspace.get()


def enter(workspace_id: str | None) -> None:
    _workspace.set(workspace_id)


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


def may_create_in(workspace_id: object) -> None:
    """403 when the request is confined to another workspace than `workspace_id`."""
    if not visible(workspace_id):
        raise OtherWorkspace(
            f"this key acts in workspace {_workspace.get()} only, not in {workspace_id}"
        )
