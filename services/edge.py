"""The single origin: routes every public path to the service that owns it (SPEC §1, §2).

`make run` and docker compose put it on :8080; in Kubernetes an Ingress with the same table
(`deploy/`) can take its place. It adds no logic of its own: it forwards bytes, streams
both ways, and aggregates `/readyz` and `/openapi.json` across the services. It also
serves the AsyncAPI document of the Kafka topics (`/asyncapi.json`, and as a page at
`/asyncapi`: services/asyncapi) and the operator console's static files (`/`,
`/console/*`: services/console).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.asyncapi import asyncapi_document, render_html
from services.console import SECURITY_HEADERS, console_routes
from shared.http.errors import ERROR_SCHEMA_REF

# First match wins. Mirrors the ownership table of SPEC §1.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"^/api/webhooks/stats(/|$)", "delivery"),
    (r"^/api/webhooks(/|$)", "gateway"),
    (r"^/api/incoming-webhooks(/|$)", "gateway"),
    (r"^/api/outgoing-webhooks(/|$)", "delivery"),
    (r"^/api/deliveries(/|$)", "delivery"),
    (r"^/api/events(/|$)", "delivery"),
    (r"^/api/integrations/[^/]+/mappings(/|$)", "sync"),
    (r"^/api/integrations/[^/]+/actions(/|$)", "sync"),
    (r"^/api/messages(/|$)", "sync"),
    (r"^/api/integrations/[^/]+/import(/|$)", "importer"),
    (r"^/api/imports(/|$)", "importer"),
    (r"^/api/integrations(/|$)", "oauth"),
    (r"^/api/auth/oauth(/|$)", "oauth"),
    (r"^/api/providers(/|$)", "oauth"),
)
_COMPILED = [(re.compile(pattern), service) for pattern, service in ROUTES]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


_REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def _unreachable(service: str) -> Response:
    return _error(503, "upstream_unavailable", f"{service} is not reachable", retry=True)


def owner_of(path: str) -> str | None:
    for pattern, service in _COMPILED:
        if pattern.search(path):
            return service
    return None


def create_edge_app(upstreams: dict[str, str], request_timeout: float = 60.0) -> Starlette:
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout, connect=5.0),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
        follow_redirects=False,
    )

    async def forward(request: Request) -> Response:
        service = owner_of(request.url.path)
        if service is None or service not in upstreams:
            return _error(404, "not_found", f"no route for {request.url.path}")
        # The path as the client sent it (still percent-encoded): the decoded one may hold
        # control or non-ASCII characters no URL can carry, and the service decodes it anyway.
        raw_path: bytes | None = request.scope.get("raw_path")
        target = upstreams[service] + (raw_path.decode("latin-1") if raw_path else request.url.path)
        if request.url.query:
            target += "?" + request.url.query
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        length = request.headers.get("content-length")
        if length is not None and "transfer-encoding" not in request.headers:
            # Passed on, so that the service can refuse an oversized body (413) from its
            # header before a byte of it crosses the edge; the body still streams.
            headers.append(("content-length", length))
        client_host = request.client.host if request.client else ""
        headers += [
            ("x-forwarded-for", client_host),
            ("x-forwarded-proto", request.url.scheme),
            ("x-forwarded-host", request.headers.get("host", "")),
        ]
        # A request without a body, of a method that may be repeated (RFC 9110 9.2.2), is sent
        # again once when the service dropped the connection without answering: a pooled
        # connection it closed just as this request went out (as a proxy's next-upstream
        # does; a body, already streamed, could not be sent twice).
        bodiless = length in (None, "0") and "transfer-encoding" not in request.headers
        tries = 2 if bodiless and request.method in _REPEATABLE else 1
        for attempt in range(1, tries + 1):
            try:
                upstream_request = client.build_request(
                    request.method,
                    target,
                    headers=headers,
                    content=b"" if bodiless else request.stream(),
                )
            except httpx.InvalidURL:
                return _error(400, "bad_request", "the request's path or query is not a valid URL")
            try:
                upstream = await client.send(upstream_request, stream=True)
                break
            except httpx.TimeoutException:
                return _error(504, "upstream_timeout", f"{service} did not answer in time")
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                if attempt < tries:
                    continue
                return _unreachable(service)
            except httpx.HTTPError:
                return _unreachable(service)
        response_headers = {
            k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
        }
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "edge"})

    async def readyz(_: Request) -> Response:
        async def one(name: str, base: str) -> tuple[str, Any]:
            try:
                answer = await client.get(base + "/readyz", timeout=5.0)
                return name, answer.json() | {"http_status": answer.status_code}
            except (httpx.HTTPError, ValueError) as exc:
                return name, {"status": "unreachable", "error": type(exc).__name__}

        results = dict(await asyncio.gather(*(one(n, b) for n, b in upstreams.items())))
        ready = all(r.get("status") == "ready" for r in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "services": results},
            status_code=200 if ready else 503,
        )

    async def openapi(_: Request) -> Response:
        merged: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": "hookhub", "version": "1"},
            "paths": {},
            "components": {"schemas": {}, "securitySchemes": {}},
        }
        for name, base in upstreams.items():
            try:
                spec = (await client.get(base + "/openapi.json", timeout=5.0)).json()
            except (httpx.HTTPError, ValueError):
                continue
            merged["info"]["version"] = spec.get("info", {}).get("version", "1")
            for path, item in spec.get("paths", {}).items():
                if owner_of(path) == name:
                    merged["paths"][path] = _with_edge_errors(item)
            components = spec.get("components", {})
            for section in ("schemas", "securitySchemes"):
                merged["components"][section].update(components.get(section, {}))
        return JSONResponse(merged)

    async def asyncapi_json(_: Request) -> Response:
        return JSONResponse(asyncapi_document())

    async def asyncapi_page(_: Request) -> Response:
        return HTMLResponse(render_html(asyncapi_document()), headers=SECURITY_HEADERS)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    async def forward_any(scope: Scope, receive: Receive, send: Send) -> None:
        response = await forward(Request(scope, receive))
        await response(scope, receive, send)

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/openapi.json", openapi),
            Route("/asyncapi.json", asyncapi_json),
            Route("/asyncapi", asyncapi_page),
            *console_routes(),  # the operator console: `/` and `/console/*`
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    # Every other path, whatever it holds, goes to the router's default: a `{path:path}`
    # route would not match a path with a line feed in it (its `.*` stops there) and the
    # client would get Starlette's plain-text 404 instead of the service's answer.
    app.router.default = forward_any
    return app


# What the edge itself may answer on any forwarded route, besides the service's answers
# (its 503 `upstream_unavailable` is the services' 503, already listed).
_EDGE_ERRORS = {
    "504": {
        "description": "The service did not answer in time (`upstream_timeout`, the edge's)",
        "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
    }
}


def _with_edge_errors(item: dict[str, Any]) -> dict[str, Any]:
    return {
        method: operation | {"responses": operation.get("responses", {}) | _EDGE_ERRORS}
        if isinstance(operation, dict) and "responses" in operation
        else operation
        for method, operation in item.items()
    }


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    response = _error(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _internal_error(_: Request, exc: Exception) -> Response:
    return _error(500, "internal_error", "internal error")


def _error(status: int, code: str, message: str, retry: bool = False) -> JSONResponse:
    headers = {"Retry-After": "5"} if retry else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )
