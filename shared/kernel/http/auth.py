"""Who calls the management API (SPEC §4, §13): the admin token, a workspace's API key
(`hhk_…`) or a portal session (`hhp_…`), all as `Authorization: Bearer …`.

`authenticate` is the one dependency every management router has (`Authenticated`): it
yields the `Caller`, refuses a `read` caller any change (403 `read_only`), and confines the
request to the caller's workspace (`Access.confine`: the domain's `shared.domain.tenancy.confine`),
which every repository query then honours. `AdminOnly` is for what belongs to no workspace
(provider apps, API keys): 403 to anyone but the admin.

The check runs twice for a route that reads a body: first in
`shared.kernel.http.limits.ManagementGuard`, before any of the body is read (FastAPI reads and
parses a body before it runs a route's dependencies, so a dependency alone would let an
unauthenticated client make the process hold whatever it sends), then as the route's
dependency, which is also what puts the bearer scheme in the OpenAPI document.

The kernel knows the admin token; every other token is the domain's `Credentials` (keys and
portal sessions, checked against a per-replica cache of their fingerprints:
`shared.domain.api_keys.Credentials`), plugged in by the service's platform
(shared.kernel.http.app).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.kernel.crypto import constant_time_equal
from shared.kernel.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(
    auto_error=False,
    description=(
        "The admin token (HOOKHUB_ADMIN_TOKEN), a workspace API key (hhk_…) or a portal "
        "session's token (hhp_…)"
    ),
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
READS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    """Who is calling: `kind` admin (id `admin`), key (the key's id) or portal (the
    session's id); `workspace_id` None for the admin, who acts in every workspace."""

    kind: Literal["admin", "key", "portal"]
    id: str
    workspace_id: str | None
    can_write: bool
    expires_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


ADMIN = Caller(kind="admin", id="admin", workspace_id=None, can_write=True)


class Credentials(Protocol):
    """The bearer tokens besides the admin token: who each names (the domain's API keys
    and portal sessions, shared.domain.api_keys.Credentials)."""

    def recognises(self, token: str) -> bool:
        """Whether `token` is one of these (by its form), rather than the admin token."""
        ...

    async def identify(self, token: str) -> Caller | None:
        """The caller `token` names; None: unknown, revoked or expired."""
        ...


# Confines the current request to what its caller may see (None: no caller yet; clears
# what a previous request left): the domain's workspaces, shared.domain.tenancy.confine.
Confine = Callable[[Caller | None], None]


class Access:
    """A service's means of knowing callers: the admin token, the other `credentials`, and
    what confines a request to its caller (`confine`), both plugged in by the service's
    platform (shared.kernel.http.app.Platform)."""

    def __init__(self, admin_token: str, credentials: Credentials, confine: Confine) -> None:
        self.admin_token = admin_token
        self.credentials = credentials
        self.confine = confine

    async def identify(self, scheme: str | None, token: str) -> Caller:
        """The caller `scheme token` names, or 401."""
        if scheme is None or scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token", code="missing_token", headers=_CHALLENGE)
        if self.credentials.recognises(token):
            caller = await self.credentials.identify(token)
            if caller is None:
                raise Unauthorized(
                    "unknown, revoked or expired key", code="invalid_token", headers=_CHALLENGE
                )
            return caller
        if not self.admin_token or not constant_time_equal(token, self.admin_token):
            raise Unauthorized("invalid admin token", code="invalid_token", headers=_CHALLENGE)
        return ADMIN

    async def identify_header(self, value: str | None) -> Caller:
        """`identify` on a raw `Authorization` header value, parsed as HTTPBearer does."""
        scheme, _, token = (value or "").partition(" ")
        token = token.strip()
        return await self.identify(scheme if scheme and token else None, token)


def permit(caller: Caller, method: str, *, admin_only: bool) -> None:
    """403 for what the caller may not do: change anything with a `read` key, or touch what
    belongs to no workspace without the admin token."""
    if admin_only and not caller.is_admin:
        raise Forbidden(
            "only the admin token can do this: it belongs to no workspace", code="admin_only"
        )
    if method not in READS and not caller.can_write:
        raise Forbidden(
            _PORTAL_READ_ONLY if caller.kind == "portal" else _KEY_READ_ONLY, code="read_only"
        )


# What a `read` caller is told of a change: what it is, and what would make the change.
_KEY_READ_ONLY = (
    'this key can only read (its scopes are ["read"]): a change needs a key with the write scope'
)
_PORTAL_READ_ONLY = (
    "this portal session can only read (it was opened read-only): a change needs a portal "
    "session opened without read_only"
)


def access_of(app: Any) -> Access:
    access: Access = app.state.access
    return access


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    access = access_of(request.app)
    if credentials is None:
        caller = await access.identify(None, "")
    else:
        caller = await access.identify(credentials.scheme, credentials.credentials)
    permit(caller, request.method, admin_only=False)
    request.state.caller = caller
    access.confine(caller)
    return caller


async def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    permit(caller, "GET", admin_only=True)
    return caller


Authenticated = Depends(authenticate)
AdminOnly = Depends(require_admin)
CallerDep = Annotated[Caller, Depends(authenticate)]
