"""The management API's front door: the caller checked, and the body bounded, before any
of the body is read.

FastAPI reads and parses a route's whole body before it runs the route's dependencies, the
authentication among them: without this, a client with no token could make a service hold
whatever it sends (a 200 MB POST took the gateway from 88 to 633 MiB to be told
`malformed_json`). Here, in front of the app:

1. if the route requires a caller (its dependencies include `authenticate`), the caller is
   identified and a 401 or 403 (shared.kernel.http.auth.permit) answered before anything is read;
2. a `Content-Length` over the route's limit is answered 413 without reading a byte;
3. the body is counted as it arrives, and refused with 413 as soon as it passes the limit
   (a chunked body, or a length that lied): the app never holds more than the limit;
4. a JSON body holding a lone UTF-16 surrogate (`"\\ud800"`) is refused with 400
   `malformed_json` once it is all in: FastAPI's parser (the standard library's) takes it,
   and no consumer could write it again (MongoDB, orjson, Kafka's: shared.kernel.jsonlimits).

The limit is `HOOKHUB_API_MAX_BODY_BYTES` unless a route names a larger setting of its own
with `dependencies=[max_body("<settings field>")]` (an upload route). The webhook ingress is
answered before this runs (`ServiceApp`) and has its own per-route limits.

What is left of a refused body is not read by the app; uvicorn discards it as it arrives
(a client that sent `Expect: 100-continue`, as curl does for large bodies, is answered
before it sends any). Authentication must be required by the route or its APIRouter
(`dependencies=[Authenticated]` or `[AdminOnly]`), as every service does, for the guard to
see it.

It also clears the request's workspace scope (`Access.confine`, the domain's shared.domain.tenancy)
around every request, so that nothing of one request's caller outlives it in the task that
served it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel import jsonlimits
from shared.kernel.errors import BadRequest, HookhubError, PayloadTooLarge
from shared.kernel.http.auth import access_of, authenticate, permit, require_admin
from shared.kernel.http.errors import response_for
from shared.kernel.http.headers import check_read

DEFAULT_SETTING = "api_max_body_bytes"
# The request headers the management API reads (besides Content-Length, a number): one that
# is not UTF-8 is refused naming it, before anything else (shared.kernel.http.headers).
READ_HEADERS = ("authorization", "content-type", "idempotency-key")


class _BodyLimit:
    """The marker `max_body()` puts among a route's dependencies; it does nothing per request."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    async def __call__(self) -> None:
        return None


def max_body(setting: str) -> Any:
    """A route dependency giving the route the body limit held by settings field `setting`
    (e.g. `"import_max_upload_bytes"`) instead of `HOOKHUB_API_MAX_BODY_BYTES`."""
    return Depends(_BodyLimit(setting))


class Refused(HTTPException):
    """A refusal raised from `receive`, before a byte of the body is pulled. An HTTPException,
    because FastAPI passes those on from its body reading (it turns other errors into a
    400); answered in the SPEC §4 format by the handler `install` registers."""

    def __init__(self, error: HookhubError) -> None:
        super().__init__(error.status, error.message, error.headers)
        self.error = error


def too_large_message(limit: int, setting: str) -> str:
    return f"the request body is over the {limit}-byte limit (HOOKHUB_{setting.upper()})"


@dataclass(frozen=True)
class _Policy:
    authenticated: bool
    admin_only: bool
    setting: str


_OPEN = _Policy(authenticated=False, admin_only=False, setting=DEFAULT_SETTING)


def install(app: FastAPI) -> None:
    """Put the guard in front of `app`'s routes and answer its refusals."""

    async def refused(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return response_for(exc.error)

    app.add_exception_handler(Refused, refused)
    app.add_middleware(ManagementGuard)


class ManagementGuard:
    """ASGI middleware bounding what the app reads of a request body, and checking the
    caller first for the routes that require one.

    It acts when the app first asks for the body, that is once the router has chosen the
    route (`scope["route"]`) and before FastAPI reads and parses the body for it: the
    route's own dependencies (`authenticate`, `require_admin`, `max_body`) say what to
    check. A route that reads no body needs nothing here: its dependencies run as they
    always did.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._policies: dict[int, _Policy] = {}  # by id(route): routes are not hashable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        confine = access_of(scope["app"]).confine
        confine(None)
        try:
            check_read(scope, READ_HEADERS)
        except BadRequest as exc:
            await response_for(exc)(scope, receive, send)
            return
        settings = scope["app"].state.runtime.settings
        limit = 0
        setting = DEFAULT_SETTING
        received: int | None = None  # None until the app first asks for the body
        started = False
        # A JSON body's chunks, looked through for lone surrogates once the last is in.
        chunks: list[bytes] | None = [] if _is_json(scope) else None

        async def bounded_receive() -> Message:
            nonlocal limit, setting, received
            if received is None:
                policy = self._policy(scope.get("route"))
                if policy.authenticated:
                    try:
                        caller = await access_of(scope["app"]).identify_header(
                            _header(scope, b"authorization")
                        )
                        permit(caller, scope["method"], admin_only=policy.admin_only)
                    except HookhubError as exc:
                        raise Refused(exc) from None
                setting, limit = policy.setting, getattr(settings, policy.setting)
                declared = _declared_length(scope)
                if declared is not None and declared > limit:
                    raise Refused(PayloadTooLarge(too_large_message(limit, setting)))
                received = 0
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise Refused(PayloadTooLarge(too_large_message(limit, setting)))
                if chunks is not None:
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        _refuse_lone_surrogates(b"".join(chunks))
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except Refused as exc:  # raised where no handler of the app saw it
            if started:
                raise
            await response_for(exc.error)(scope, receive, send)
        finally:
            confine(None)

    def _policy(self, route: object) -> _Policy:
        dependant: Dependant | None = getattr(route, "dependant", None)
        if dependant is None:
            return _OPEN
        policy = self._policies.get(id(route))
        if policy is None:
            calls = list(_calls(dependant))
            settings = [call.setting for call in calls if isinstance(call, _BodyLimit)]
            policy = self._policies[id(route)] = _Policy(
                authenticated=authenticate in calls,
                admin_only=require_admin in calls,
                setting=settings[-1] if settings else DEFAULT_SETTING,
            )
        return policy


def _calls(dependant: Dependant) -> Any:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def _is_json(scope: Scope) -> bool:
    """Whether FastAPI would parse the body as JSON (`application/json`, `*/*+json`)."""
    media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _refuse_lone_surrogates(body: bytes) -> None:
    if jsonlimits.holds_lone_surrogate(body):
        raise Refused(BadRequest(jsonlimits.lone_surrogate("the body"), code="malformed_json"))


def _declared_length(scope: Scope) -> int | None:
    declared = _header(scope, b"content-length")
    if declared is None:
        return None
    try:
        length = int(declared)
    except ValueError:
        length = -1
    if length < 0:
        raise Refused(BadRequest("content-length is not a number", code="bad_content_length"))
    return length
