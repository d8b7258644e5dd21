"""Per-request telemetry every HTTP path shares: request id, metrics, one canonical log line."""

from __future__ import annotations

import random
import time

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Scope

from shared.kernel.logging import request_line
from shared.kernel.metrics import LATENCY_BUCKETS, Labelled

_UNLOGGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_MAX_REQUEST_ID = 128


class RequestTelemetry:
    """`hookhub_http_requests_total`, `hookhub_http_request_duration_seconds` and the
    `http_request` log line, for the FastAPI routes and the webhook ingress alike."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Labelled(
            Counter(
                "hookhub_http_requests_total",
                "HTTP requests",
                ["route", "method", "status"],
                registry=registry,
            )
        )
        self._latency = Labelled(
            Histogram(
                "hookhub_http_request_duration_seconds",
                "HTTP request latency",
                ["route", "method"],
                registry=registry,
                buckets=LATENCY_BUCKETS,
            )
        )

    @staticmethod
    def begin(scope: Scope) -> str:
        """The request's id (the caller's `X-Request-ID`, else a new one), bound for logs."""
        # An id to find the request's lines by, not a secret: the Mersenne Twister's 128 bits
        # cost a tenth of what os.urandom's system call does on every request.
        request_id = _header(scope, b"x-request-id") or f"{random.getrandbits(128):032x}"
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return request_id

    def finish(self, scope: Scope, route: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        method: str = scope["method"]
        self._requests(route, method, str(status)).inc()
        self._latency(route, method).observe(elapsed)
        if scope["path"] not in _UNLOGGED_PATHS:
            request_line(
                {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                }
            )
        structlog.contextvars.unbind_contextvars("request_id")


def _header(scope: Scope, name: bytes) -> str | None:
    """The request id the caller sent; None (a new one is made) when it is not UTF-8: an id
    is for finding the request in the logs, and a value no one could type finds nothing."""
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                decoded: str = value.decode("utf-8")[:_MAX_REQUEST_ID]
            except UnicodeDecodeError:
                return None
            return decoded
    return None
