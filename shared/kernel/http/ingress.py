"""Webhook ingress: receivers served straight from ASGI, in front of the FastAPI app.

Providers hit these at their own rate, so they skip what the management API needs and a
webhook does not: Starlette's middleware stack and routing, FastAPI's dependency solving,
and the request objects both build. Together these cost more CPU than verifying, parsing
and publishing a webhook (docs/benchmarks.md). What a request still gets here is what the
rest of the API gives: the request id, the HTTP metrics and log line, and the SPEC §4 error
format; the OpenAPI document describes the routes from the same declaration.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shared.kernel import tracing
from shared.kernel.errors import BadRequest, PayloadTooLarge
from shared.kernel.http.errors import (
    ERROR_SCHEMA_REF,
    SERVER_ERRORS,
    error_component_schemas,
    error_response,
    response_for,
)
from shared.kernel.http.headers import RequestHeaders
from shared.kernel.http.telemetry import RequestTelemetry

if TYPE_CHECKING:
    from opentelemetry.trace import Span

_PARAM = re.compile(r"{(\w+)}")


class ClientDisconnected(Exception):
    """The client went away before sending its whole body: there is no one to answer."""


class IngressRequest:
    """The parts of a request a webhook receiver reads, taken straight from the ASGI scope.

    `headers` has lower-case names (ASGI guarantees it); a repeated header keeps its first
    value, as Starlette's `Headers.get` does; a value is decoded from UTF-8 when it is read,
    and one that is not UTF-8 is a 400 only then (shared.kernel.http.headers).
    """

    __slots__ = ("_query", "_receive", "_scope", "app", "headers", "path_params")

    def __init__(
        self, app: FastAPI, scope: Scope, receive: Receive, path_params: dict[str, str]
    ) -> None:
        self.app = app
        self.path_params = path_params
        self.headers = RequestHeaders(scope["headers"])
        self._scope = scope
        self._receive = receive
        self._query: dict[str, str] | None = None

    @property
    def method(self) -> str:
        return str(self._scope["method"])

    @property
    def path_and_query(self) -> str:
        """The path and query string as the client sent them (what a provider signs)."""
        raw = self._scope.get("raw_path") or self._scope["path"].encode()
        query: bytes = self._scope.get("query_string", b"")
        path = raw.decode("latin-1")
        return f"{path}?{query.decode('latin-1')}" if query else path

    @property
    def query_params(self) -> dict[str, str]:
        if self._query is None:
            raw: bytes = self._scope.get("query_string", b"")
            self._query = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
        return self._query

    async def body(self, limit: int) -> bytes:
        """The whole body, refused (413) as soon as it is known to exceed `limit` bytes:
        from Content-Length before reading, else while reading, never holding more."""
        declared = self.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError as exc:
                raise BadRequest(
                    "content-length is not a number", code="bad_content_length"
                ) from exc
            if length > limit:
                raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body exceeds the {limit}-byte limit", code="payload_too_large")


class RawResponse:
    """An answer as bytes: what the ingress sends, without building a Starlette `Response`
    (its header handling and JSON encoding cost a tenth of a webhook's CPU)."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, status_code: int, body: bytes = b"", media_type: str | None = None):
        self.status_code = status_code
        self.body = body
        self.raw_headers: list[tuple[bytes, bytes]] = []
        if status_code >= 200 and status_code not in (204, 304):  # as Starlette does
            self.raw_headers.append((b"content-length", str(len(body)).encode()))
        if media_type is not None:
            self.raw_headers.append((b"content-type", _content_type(media_type)))

    @classmethod
    def json(cls, content: Any, status_code: int = 200) -> RawResponse:
        return cls(status_code, orjson.dumps(content), "application/json")


def _content_type(media_type: str) -> bytes:
    if media_type.startswith("text/") and "charset=" not in media_type:
        media_type += "; charset=utf-8"
    return media_type.encode("latin-1")


@dataclass(frozen=True)
class IngressRoute:
    path: str
    endpoint: Callable[[IngressRequest], Awaitable[Response | RawResponse]]
    summary: str
    responses: Mapping[int, str]
    request_media_types: tuple[str, ...] = ("application/json",)
    headers: Mapping[str, str] = field(default_factory=dict)  # documented request headers
    # Methods besides POST the endpoint answers itself (a provider's GET or HEAD handshake);
    # any other method is 405 before it is called.
    other_methods: tuple[str, ...] = ()
    # JSON Schemas of path parameters that take less than any string (the providers), so
    # that paths whose templates overlap are told apart in the OpenAPI document.
    parameter_schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class Ingress:
    """Matches requests against the routes (first match wins) and serves them: `POST`, and
    the route's `other_methods`."""

    def __init__(self, routes: Sequence[IngressRoute], telemetry: RequestTelemetry) -> None:
        self._routes = [(_compile(route.path), route) for route in routes]
        self._telemetry = telemetry
        # Every ingress path starts with this, so other requests cost one startswith().
        self.prefix = _common_prefix([route.path.split("{", 1)[0] for route in routes])

    def match(self, path: str) -> tuple[IngressRoute, dict[str, str]] | None:
        if not path.startswith(self.prefix):
            return None
        for pattern, route in self._routes:
            found = pattern.fullmatch(path)
            if found is not None:
                return route, found.groupdict()
        return None

    async def serve(
        self,
        app: FastAPI,
        route: IngressRoute,
        path_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        with tracing.server_span(scope, route.path) as span:
            await self._serve(app, route, path_params, scope, receive, send, span)

    async def _serve(
        self,
        app: FastAPI,
        route: IngressRoute,
        path_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
        span: Span | None,
    ) -> None:
        started = time.perf_counter()
        request_id = self._telemetry.begin(scope)
        response: Response | RawResponse
        try:
            if scope["method"] != "POST" and scope["method"] not in route.other_methods:
                allow = ", ".join(("POST", *route.other_methods))
                response = error_response(
                    405, "method_not_allowed", "Method Not Allowed", {"Allow": allow}
                )
            else:
                response = await route.endpoint(IngressRequest(app, scope, receive, path_params))
        except ClientDisconnected:
            tracing.answered(span, 499)
            self._telemetry.finish(scope, route.path, 499, started)
            return
        except Exception as exc:
            response = response_for(exc)
        tracing.answered(span, response.status_code)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [*response.raw_headers, (b"x-request-id", request_id.encode())],
                }
            )
            # A HEAD is answered with the headers a GET would get, and no body.
            body = b"" if scope["method"] == "HEAD" else response.body
            await send({"type": "http.response.body", "body": body})
        finally:
            self._telemetry.finish(scope, route.path, response.status_code, started)


def _compile(template: str) -> re.Pattern[str]:
    """`/a/{b}` → `/a/(?P<b>[^/]+)`, as Starlette matches a path parameter."""
    pattern, position = "", 0
    for found in _PARAM.finditer(template):
        pattern += re.escape(template[position : found.start()]) + f"(?P<{found[1]}>[^/]+)"
        position = found.end()
    return re.compile(pattern + re.escape(template[position:]))


def _common_prefix(paths: list[str]) -> str:
    if not paths:
        return "\0"  # matches no path
    shortest, longest = min(paths), max(paths)
    for index, char in enumerate(shortest):
        if char != longest[index]:
            return shortest[:index]
    return shortest


def document_ingress_routes(app: FastAPI, routes: Sequence[IngressRoute]) -> None:
    """Add the ingress routes to the app's OpenAPI document."""
    if not routes:
        return
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build_schema()
        for route in routes:
            path = schema.setdefault("paths", {}).setdefault(route.path, {})
            path["post"] = _operation(route)
            for method in route.other_methods:
                path[method.lower()] = _operation(route, method)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(error_component_schemas())
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operation(route: IngressRoute, method: str = "POST") -> dict[str, Any]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict(route.parameter_schemas.get(name, {"type": "string"})),
        }
        for name in _PARAM.findall(route.path)
    ] + [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in route.headers.items()
    ]
    operation: dict[str, Any] = {
        "tags": ["webhook ingress"],
        "summary": route.summary if method == "POST" else f"{route.summary}: {method} handshake",
        "operationId": route.endpoint.__name__ + ("" if method == "POST" else f"_{method.lower()}"),
        "parameters": parameters,
        "responses": {
            str(code): {"description": text}
            | (
                {"content": {"application/json": {"schema": ERROR_SCHEMA_REF}}}
                if code >= 400
                else {}
            )
            for code, text in {
                **route.responses,
                **{int(code): r["description"] for code, r in SERVER_ERRORS.items()},
            }.items()
        },
    }
    if method == "POST":
        operation["requestBody"] = {"content": {media: {} for media in route.request_media_types}}
    return operation
