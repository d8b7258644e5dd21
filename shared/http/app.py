"""Builds a service's FastAPI app: lifespan, health, metrics, request logging, error format."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services import __version__
from shared.http.errors import install_error_handlers
from shared.http.ingress import ROUTE_TEMPLATES, install_ingress_routes
from shared.runtime import Runtime, ServiceDefinition
from shared.settings import ServiceSettings

log = structlog.get_logger("hookhub.http")

T = TypeVar("T")

_UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(definition: ServiceDefinition, settings: ServiceSettings | None = None) -> FastAPI:
    settings = (settings or definition.settings_class()).resolve_dev_secrets()
    runtime = Runtime(settings=settings, service=definition.name)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start(definition.indexes, definition.internal_topics)
        log.info("service_started", port=settings.port_for(definition.name))
        try:
            yield
        finally:
            await runtime.stop()
            log.info("service_stopped")

    app = FastAPI(
        title=f"hookhub {definition.name}",
        version=__version__,
        description=definition.description,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for router in definition.routers:
        app.include_router(router)
    install_ingress_routes(app, definition.ingress)
    if definition.setup:
        definition.setup(app, runtime)
    _add_health_routes(app, runtime)
    app.add_middleware(RequestContextMiddleware, runtime=runtime)
    return app


def _add_health_routes(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready, checks = await runtime.readiness()
        return JSONResponse(
            {
                "status": "ready" if ready else "not_ready",
                "service": runtime.service,
                "checks": checks,
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """One canonical log line and the HTTP metrics per request, with a request id bound."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.requests = Counter(
            "hookhub_http_requests_total",
            "HTTP requests",
            ["route", "method", "status"],
            registry=runtime.registry,
        )
        self.latency = Histogram(
            "hookhub_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=runtime.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or ROUTE_TEMPLATES.get(
                scope.get("endpoint"), "unmatched"
            )
            self.requests.labels(route, scope["method"], str(status)).inc()
            self.latency.labels(route, scope["method"]).observe(elapsed)
            if scope["path"] not in _UNLOGGED_PATHS:
                log.info(
                    "http_request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            decoded: str = value.decode("latin-1")[:128]
            return decoded
    return None


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def from_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency returning `app.state.<name>`, set by the service's composition root.

    Async on purpose: FastAPI runs plain `def` dependencies in its thread pool, a hop per
    request that costs the ingress a third of its throughput.
    """

    async def dependency(request: Request) -> T:
        value = getattr(request.app.state, name)
        assert isinstance(value, kind)
        return value

    return dependency
