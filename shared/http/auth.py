"""Admin bearer authentication for the management API (SPEC §4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.crypto import constant_time_equal
from shared.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="The admin token (HOOKHUB_ADMIN_TOKEN)")


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str = request.app.state.runtime.settings.admin_token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "missing bearer token", code="missing_token", headers={"WWW-Authenticate": "Bearer"}
        )
    if not expected or not constant_time_equal(credentials.credentials, expected):
        raise Unauthorized(
            "invalid admin token", code="invalid_token", headers={"WWW-Authenticate": "Bearer"}
        )


AdminDep = Depends(require_admin)
