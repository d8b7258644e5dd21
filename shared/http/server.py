"""How `hookhub serve` serves a service: uvicorn with httptools, and its bounded stop.

Stock uvicorn writes a response's status line and headers as soon as the app starts the
response, and the body in a second write: two `send()` calls and, on a connection with
Nagle off, two TCP segments for every webhook answered. On loopback each of those system
calls also runs the receiving side's TCP stack, so the second one costs as much as
verifying a GitHub signature. Here the writes a connection makes within one event-loop
step are joined into one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import structlog
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = structlog.get_logger("hookhub.shutdown")


class _CoalescingTransport:
    """A transport whose writes within one event-loop step go out as one write."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending:
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing each response with one system call."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = _CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)


class ServiceServer(uvicorn.Server):
    """uvicorn serving one service, whose stop is the service's bounded stop.

    A stop request (SIGTERM, SIGINT, or `begin_stop()` from a test) starts the budget of
    `HOOKHUB_SHUTDOWN_SECONDS` (shared.shutdown): uvicorn stops accepting, gives requests in
    flight a fifth of it, then the lifespan stops the service within what is left. In a
    process of its own, a watchdog ends the process a few seconds past the budget should
    anything still hold it (a thread stuck in a system call): it is then like a kill -9,
    which every consumer, lease and delivery already survives.
    """

    def __init__(self, config: uvicorn.Config, *, signals: bool = True) -> None:
        super().__init__(config)
        self._signals = signals
        self._watchdog: threading.Timer | None = None

    @staticmethod
    def make_config(app: Any, host: str, port: int, shutdown_seconds: float) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,
            log_level="warning",
            log_config=None,  # our own logging (shared.logging) renders uvicorn's lines
            proxy_headers=True,
            timeout_graceful_shutdown=max(1, round(shutdown_seconds * 0.2)),
            http=CoalescingHttpToolsProtocol,
            lifespan="on",
        )

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if self._signals:
            with super().capture_signals():
                yield
        else:  # a test runner owns the signals
            yield

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.begin_stop()
        super().handle_exit(sig, frame)

    def begin_stop(self) -> None:
        app = self.config.app
        runtime = getattr(getattr(app, "state", None), "runtime", None)
        seconds = 10.0
        if runtime is not None:
            runtime.request_stop()
            seconds = runtime.settings.shutdown_seconds
        self.should_exit = True
        if self._signals and self._watchdog is None:
            self._watchdog = threading.Timer(seconds + 5, _force_exit, args=(seconds + 5,))
            self._watchdog.daemon = True
            self._watchdog.start()


def _force_exit(after: float) -> None:
    log.error("shutdown_forced", after_s=after)
    os._exit(70)
