"""Renders every failure as `{"error": {"code", "message"}}` with the right status (SPEC §4)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import HookhubError
from shared.mongo import UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def response_for(exc: Exception) -> JSONResponse:
    """The SPEC §4 answer to an exception raised while handling a request."""
    if isinstance(exc, HookhubError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, UNAVAILABLE_ERRORS):
        log.warning("database_unavailable", error=str(exc))
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry later",
            {"Retry-After": "5"},
        )
    log.error("unhandled_error", error=repr(exc), exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return error_response(400, "malformed_json", "request body is not valid JSON")
        details = [
            {"loc": [str(part) for part in err.get("loc", ())], "message": err.get("msg", "")}
            for err in errors
        ]
        return error_response(422, "invalid", "request does not match the schema", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(
            exc.status_code, code, str(exc.detail), dict(exc.headers) if exc.headers else None
        )

    async def _other(_: Request, exc: Exception) -> JSONResponse:
        return response_for(exc)

    handled: tuple[type[Exception], ...] = (HookhubError, *UNAVAILABLE_ERRORS, Exception)
    for error in handled:
        app.add_exception_handler(error, _other)
