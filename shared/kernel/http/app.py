"""Builds a service's FastAPI app: lifespan, health, metrics, request logging, error format.

The kernel's app knows no caller but the admin, keeps no record of changes and scopes no
request: a `Platform` plugs those in (shared.domain.platform.DOMAIN, through the domain's own
`create_app`), once the runtime exists and before the service's setup.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel import tracing
from shared.kernel.http import limits
from shared.kernel.http.auth import Access, Confine, Credentials
from shared.kernel.http.errors import SERVER_ERRORS, document_json_bodies, install_error_handlers
from shared.kernel.http.ingress import Ingress, document_ingress_routes
from shared.kernel.http.server import no_websocket
from shared.kernel.http.telemetry import RequestTelemetry
from shared.kernel.http.trail import ChangeRecorder, ChangeTrail
from shared.kernel.kafka import ConsumerLagCollector
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.kernel.settings import ServiceSettings
from shared.kernel.version import __version__

log = structlog.get_logger("hookhub.http")

T = TypeVar("T")


class ServiceApp(FastAPI):
    """A service's FastAPI app with its webhook ingress answered before any middleware."""

    def __init__(self, ingress: Ingress, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingress = ingress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            matched = self.ingress.match(scope["path"])
            if matched is not None:
                await self.ingress.serve(self, *matched, scope, receive, send)
                return
        elif scope["type"] == "websocket" and not self._speaks_websocket(scope):
            # Starlette's answer to a handshake no route takes was a 403.
            await no_websocket(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def _speaks_websocket(self, scope: Scope) -> bool:
        """Whether one of the service's WebSocket routes takes this handshake's path (an
        HTTP route never matches a WebSocket's scope)."""
        return any(route.matches(scope)[0] is Match.FULL for route in self.router.routes)


@dataclass(frozen=True)
class Plugs:
    """What a platform gives every service's app: the callers besides the admin
    (`credentials`), what confines a request to its caller (`confine`), and where the
    changes the API answered go (`changes`)."""

    credentials: Credentials
    confine: Confine
    changes: ChangeRecorder


class Platform(Protocol):
    """What the layers above the kernel plug into every service (shared.domain.platform.DOMAIN)."""

    def install(self, app: ServiceApp, runtime: Runtime) -> Plugs:
        """Called once the app and its runtime exist, before the service's own setup: it may
        declare indexes, hooks, background tasks and readiness reports on `runtime`, and put
        what it serves on `app.state`."""
        ...


def create_app(
    definition: ServiceDefinition, settings: ServiceSettings | None = None, *, platform: Platform
) -> ServiceApp:
    settings = (settings or definition.settings_class()).resolve_dev_secrets()
    # Before the runtime: its broker is traced by it.
    log.info("tracing", mode=tracing.configure(definition.name).value)
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

    telemetry = RequestTelemetry(runtime.registry)
    app = ServiceApp(
        Ingress(definition.ingress, telemetry),
        title=f"hookhub {definition.name}",
        version=__version__,
        description=definition.description,
        lifespan=lifespan,
        responses=SERVER_ERRORS,
    )
    app.state.runtime = runtime
    plugs = platform.install(app, runtime)
    app.state.access = Access(settings.admin_token, plugs.credentials, plugs.confine)
    install_error_handlers(app)
    for router in definition.routers:
        document_json_bodies(router)
        app.include_router(router)
    document_ingress_routes(app, definition.ingress)
    if definition.setup:
        definition.setup(app, runtime)
    _add_health_routes(app, runtime)
    # Inside the guard: sees only what it let through.
    app.add_middleware(ChangeTrail, recorder=plugs.changes)
    limits.install(app)  # inside the request context: its answers are logged
    app.add_middleware(RequestContextMiddleware, telemetry=telemetry)
    tracing.instrument_app(app)  # outermost: the request's log line is written in its span
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
                # Messages behind per consumer group and topic (the operator console's
                # overview); the same figures as hookhub_kafka_consumer_lag.
                "consumer_lag": _consumer_lag(runtime),
                # What was plugged in reports (not readiness conditions): the domain's
                # `retention`, what removal did on its last pass, per collection.
                **{name: section() for name, section in runtime.reports.items()},
            },
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)


def _consumer_lag(runtime: Runtime) -> dict[str, dict[str, int]]:
    lag: dict[str, dict[str, int]] = {}
    for family in ConsumerLagCollector(runtime.broker).collect():
        for sample in family.samples:
            lag.setdefault(sample.labels["group"], {})[sample.labels["topic"]] = int(sample.value)
    return lag


class RequestContextMiddleware:
    """The request id, metrics and log line of every request the FastAPI app serves."""

    def __init__(self, app: ASGIApp, telemetry: RequestTelemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = self.telemetry.begin(scope)
        scope.setdefault("state", {})["request_id"] = request_id  # for the audit trail
        header = request_id.encode()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", header)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.telemetry.finish(scope, route, status, started)


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
