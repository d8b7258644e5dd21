"""Who calls the management API (SPEC §4, §13): the admin token, a workspace's API key
(`hhk_…`) or a portal session (`hhp_…`), all as `Authorization: Bearer …`.

`authenticate` is the one dependency every management router has (`Authenticated`): it
yields the `Caller`, refuses a `read` caller any change (403 `read_only`), and confines the
request to the caller's workspace (`shared.tenancy`), which every repository query then
honours. `AdminOnly` is for what belongs to no workspace (provider apps, API keys): 403 to
anyone but the admin.

The check runs twice for a route that reads a body: first in
`shared.http.limits.ManagementGuard`, before any of the body is read (FastAPI reads and
parses a body before it runs a route's dependencies, so a dependency alone would let an
unauthenticated client make the process hold whatever it sends), then as the route's
dependency, which is also what puts the bearer scheme in the OpenAPI document.

Keys and portal sessions are checked against a per-replica cache of their fingerprints
(`shared.api_keys.KeyChecker`): no MongoDB read per request (one for a key this replica
has not seen yet, issued a moment ago elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared import api_keys, tenancy
from shared.crypto import constant_time_equal
from shared.errors import Forbidden, Unauthorized
from shared.mongo import BatchedWriter
from shared.process import ServiceProcess

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
# How refusals name the caller (`this key …`, `this portal session …`).
_NAMED = {"admin": "admin token", "key": "key", "portal": "portal session"}


class Access:
    """A service's means of knowing callers: the key cache and the writer of `last_used_at`
    and of the audit log's entries (shared.audit), both started with the service, by
    `create_app`. The writer flushes every second, so that an entry is listed that soon
    after its change (a key's `last_used_at` is handed to it once a minute at most, and an
    idle flush costs nothing)."""

    def __init__(self, runtime: ServiceProcess) -> None:
        self.admin_token: str = runtime.settings.admin_token
        self.writer = BatchedWriter(runtime.db, interval=1.0)
        self.keys = api_keys.KeyChecker(
            api_keys.ApiKeyRepository(runtime.db),
            self.writer,
            refresh_seconds=runtime.settings.api_key_refresh_seconds,
        )

        async def start(_: ServiceProcess) -> None:
            self.writer.start()
            runtime.background("api-key-cache", self.keys.cache.run)

        runtime.on_startup(start)
        runtime.on_shutdown("access_writer", self.writer.stop, minimum=0.02)

    async def identify(self, scheme: str | None, token: str) -> Caller:
        """The caller `scheme token` names, or 401."""
        if scheme is None or scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token", code="missing_token", headers=_CHALLENGE)
        if token.startswith(api_keys.PREFIXES):
            found = await self.keys.check(token)
            if found is None:
                raise Unauthorized(
                    "unknown, revoked or expired key", code="invalid_token", headers=_CHALLENGE
                )
            return Caller(
                kind="portal" if found.kind == api_keys.PORTAL else "key",
                id=found.id,
                workspace_id=found.workspace_id,
                can_write="write" in found.scopes,
                expires_at=found.expires_at,
            )
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
    tenancy.enter(caller.workspace_id, acting_as=_NAMED[caller.kind])
    return caller


async def require_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    permit(caller, "GET", admin_only=True)
    return caller


Authenticated = Depends(authenticate)
AdminOnly = Depends(require_admin)
CallerDep = Annotated[Caller, Depends(authenticate)]
