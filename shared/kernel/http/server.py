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

import orjson
import structlog
import uvicorn
from starlette.types import Receive, Scope, Send
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

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# A request's line and headers together, at most: nginx's default (four 8 KB buffers)
# ends at 32 KB too. httptools sets none: 300 KB of headers were read and held.
MAX_HEAD_BYTES = 32 * 1024


class HeadLimit(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on a request's head: past
    `MAX_HEAD_BYTES` of URL and headers, 431 and the connection closed, before the rest
    of the head is read or the app sees anything."""

    _head_bytes = 0
    _head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            # Raised in the parser's callback, it stops the parse; uvicorn then answers
            # its 400, which send_400_response turns into the 431.
            self._head_too_large = True
            raise HeadTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        self.answer_and_end(
            b"431 Request Header Fields Too Large",
            "headers_too_large",
            f"the request's line and headers are over {MAX_HEAD_BYTES} bytes",
        )

    def answer_and_end(self, status: bytes, code: str, message: str) -> None:
        """An error answered outside any request's cycle (its head is not, or not all, in),
        in the SPEC §4 format, then the connection ended (`end_refused`)."""
        body = orjson.dumps({"error": {"code": code, "message": message}})
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.end_refused()

    def data_received(self, data: bytes) -> None:
        if not self._head_too_large:  # what follows a refused head is dropped unread
            super().data_received(data)

    def end_refused(self) -> None:
        """Our side ended, then what the client still sends drained for a while before the
        socket closes: closed at once, the kernel answers the rest of a large head with a
        reset, which can destroy the 431 before the client reads it."""
        transport = self.transport
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, transport.close)


_LINGER_SECONDS = 2.0


async def no_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket handshake, which nothing of hookhub's API speaks: 404 in the SPEC §4
    format, as uvicorn lets an app deny a handshake with an HTTP answer (its
    `websocket.http.response` extension); closed (a 403) where the server cannot."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1000})
        return
    body = orjson.dumps(
        {"error": {"code": "not_found", "message": "nothing here answers a WebSocket handshake"}}
    )
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


class HeadTooLarge(Exception):
    """A request's head passed `MAX_HEAD_BYTES`."""


class CoalescingHttpToolsProtocol(HeadLimit):
    """uvicorn's httptools protocol, writing each response with one system call (and
    bounding a request's head: HeadLimit)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = _CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)


# How long a service keeps an idle keep-alive connection open (uvicorn's default, said
# here): whatever pools connections to it must let them go sooner (services/edge.py).
KEEP_ALIVE_SECONDS = 5


class ServiceServer(uvicorn.Server):
    """uvicorn serving one service, whose stop is the service's bounded stop.

    A stop request (SIGTERM, SIGINT, or `begin_stop()` from a test) starts the budget of
    `HOOKHUB_SHUTDOWN_SECONDS` (shared.kernel.shutdown): uvicorn stops accepting, gives requests in
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
            log_config=None,  # our own logging (shared.kernel.logging) renders uvicorn's lines
            proxy_headers=True,
            timeout_graceful_shutdown=max(1, round(shutdown_seconds * 0.2)),
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
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
