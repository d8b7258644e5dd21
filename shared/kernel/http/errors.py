"""Renders every failure as `{"error": {"code", "message"}}` with the right status (SPEC §4)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.kernel import jsonlimits
from shared.kernel.errors import HookhubError
from shared.kernel.mongo import UNAVAILABLE_ERRORS

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


# An endpoint's own checks of a body (a subscription's filters and template), heard beside
# the schema's errors: one 422 lists everything wrong with a form, not the schema's part
# first and the rest at the next try. `check(request, body)` is given the decoded body the
# schema refused and answers more details (`loc`, `message`); it runs after the route's
# dependencies (authentication, scope) passed, and whatever it cannot judge it leaves out.
BodyCheck = Callable[[Request, dict[str, Any]], Awaitable[list[dict[str, Any]]]]
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])
_ALSO_CHECKED = "__hookhub_also_checked__"


def also_checked(check: BodyCheck) -> Callable[[_Endpoint], _Endpoint]:
    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _ALSO_CHECKED, check)
        return endpoint

    return mark


async def _also_wrong(request: Request, body: object) -> list[dict[str, Any]]:
    check: BodyCheck | None = getattr(request.scope.get("endpoint"), _ALSO_CHECKED, None)
    if check is None or not isinstance(body, dict):
        return []
    try:
        return await check(request, body)
    except Exception:  # the schema's errors are the answer; these are a help
        log.info("also_checked_failed", path=request.url.path, exc_info=True)
        return []


class ErrorDetail(BaseModel):
    loc: list[str] = Field(description="where: `body`, `query`, `path` or `header`, then names")
    message: str


class ErrorInfo(BaseModel):
    # Some errors add fields of their own (e.g. `retry_after`), hence extra allowed.
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable and machine-readable: `not_found`, `invalid`, ...")
    message: str = Field(description="for people; may change")
    details: list[ErrorDetail] | None = Field(
        None, description="what failed validation (422 `invalid` only)"
    )


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer of the API (SPEC §4)."""

    error: ErrorInfo


_ERROR_DESCRIPTIONS = {
    400: "Malformed request: the body is not JSON or the URL is not valid",
    401: "Missing or invalid admin token",
    403: (
        "Not for this caller (a read key's change, another workspace, what only the admin "
        "token may do) or refused in the resource's present state (e.g. disabled)"
    ),
    404: "No such resource",
    409: "Conflicts with the resource's present state",
    413: "Body over the limit",
    415: "The body is not sent as `content-type: application/json`",
    422: "The request does not match the schema, or a value is refused",
    429: "Rate limited; see Retry-After",
    500: "Internal error (`internal_error`): a bug; the request id is in the logs",
    503: "Kafka or MongoDB unavailable: nothing was done; retry after Retry-After",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the given error statuses, each with the error body's schema.
    Routers take the statuses their routes share; a route adds the ones only it answers."""
    return {
        status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


# What any operation may answer, whatever it is: declared once, by `create_app` (routers)
# and `document_ingress_routes` (the webhook ingress).
SERVER_ERRORS = error_responses(500)

# What any management route may answer: a body not JSON, the token, an id that names
# nothing, the body limit, validation, and MongoDB or Kafka away.
MANAGEMENT_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 503)


ERROR_SCHEMA_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def error_component_schemas() -> dict[str, Any]:
    """`components.schemas` entries behind `ERROR_SCHEMA_REF`, for operations documented
    by hand (the webhook ingress)."""
    schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs"), "ErrorResponse": schema}


def document_json_bodies(router: APIRouter) -> None:
    """415 in the OpenAPI document of every route of `router` whose body is JSON (not a
    form): the answer `_not_json` gives them all, declared once here rather than route by
    route. Called before the router is included."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        if isinstance(route.body_field.field_info, params.Form):  # File is a Form too
            continue
        extra = route.openapi_extra = route.openapi_extra or {}
        extra.setdefault("responses", {})["415"] = {
            "description": _ERROR_DESCRIPTIONS[415],
            "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
        }


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def response_for(exc: Exception) -> JSONResponse:
    """The SPEC §4 answer to an exception raised while handling a request."""
    if isinstance(exc, HookhubError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, **exc.extra)
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


def _not_json(request: Request) -> JSONResponse:
    """A JSON route's body came as raw bytes: FastAPI decodes JSON only when the content
    type says so (a form route's body is a form, never bytes), and validating the bytes
    said "Input should be a valid dictionary" about a body that may be valid JSON."""
    given = request.headers.get("content-type")
    return error_response(
        415,
        "unsupported_media_type",
        "the body must be JSON sent with content-type: application/json"
        + (f" (not {given[:100]})" if given else " (no content-type was given)"),
    )


def _malformed_json(error: dict[str, Any], body: object) -> JSONResponse:
    """400 `malformed_json` saying where, as the parser does: FastAPI keeps the parser's
    reason and offset and the decoded body, and "not valid JSON" alone left a user to
    search a long body for the comma it lacked."""
    loc, ctx = error.get("loc", ()), error.get("ctx") or {}
    offset = loc[-1] if loc and isinstance(loc[-1], int) else None
    if not isinstance(body, str) or offset is None:
        return error_response(400, "malformed_json", "request body is not valid JSON")
    # The standard library's own arithmetic for lineno and colno (1-based, in characters).
    where = json.JSONDecodeError(str(ctx.get("error") or "JSON decode error"), body, offset)
    return error_response(
        400,
        "malformed_json",
        f"request body is not valid JSON: {where.msg} at line {where.lineno}, column {where.colno}",
        line=where.lineno,
        column=where.colno,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if isinstance(exc.body, bytes):
            return _not_json(request)
        errors = exc.errors()
        broken = next((err for err in errors if err.get("type") == "json_invalid"), None)
        if broken is not None:
            return _malformed_json(broken, exc.body)
        details = [
            {"loc": [str(part) for part in err.get("loc", ())], "message": err.get("msg", "")}
            for err in errors
        ]
        details += await _also_wrong(request, exc.body)
        return error_response(422, "invalid", "request does not match the schema", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, RecursionError):
            # FastAPI's "There was an error parsing the body", for a JSON body nested past
            # what the standard library's parser follows: it is too deep, and said so.
            return error_response(400, "too_deep", jsonlimits.nested_too_deep("the body"))
        code = _STATUS_CODES.get(exc.status_code, "error")
        return error_response(
            exc.status_code, code, str(exc.detail), dict(exc.headers) if exc.headers else None
        )

    async def _other(_: Request, exc: Exception) -> JSONResponse:
        return response_for(exc)

    handled: tuple[type[Exception], ...] = (HookhubError, *UNAVAILABLE_ERRORS, Exception)
    for error in handled:
        app.add_exception_handler(error, _other)
