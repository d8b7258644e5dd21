"""Admin bearer authentication for the management API (SPEC §4).

The check runs twice for a management route: first in `shared.http.limits.ManagementGuard`,
before any of the request body is read (FastAPI reads and parses a body before it runs a
route's dependencies, so a dependency alone would let an unauthenticated client make the
process hold whatever it sends), then as the route's dependency, which is also what puts
the bearer scheme in the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.crypto import constant_time_equal
from shared.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="The admin token (HOOKHUB_ADMIN_TOKEN)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def check_admin(scheme: str | None, token: str, expected: str) -> None:
    """Raise 401 unless `scheme token` is `Bearer <expected>` (an empty `expected` admits none)."""
    if scheme is None or scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token", code="missing_token", headers=_CHALLENGE)
    if not expected or not constant_time_equal(token, expected):
        raise Unauthorized("invalid admin token", code="invalid_token", headers=_CHALLENGE)


def check_authorization_header(value: str | None, expected: str) -> None:
    """`check_admin` on a raw `Authorization` header value, parsed as HTTPBearer does."""
    scheme, _, token = (value or "").partition(" ")
    token = token.strip()
    check_admin(scheme if scheme and token else None, token, expected)


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str = request.app.state.runtime.settings.admin_token
    if credentials is None:
        check_admin(None, "", expected)
    else:
        check_admin(credentials.scheme, credentials.credentials, expected)


AdminDep = Depends(require_admin)
