"""How `hookhub serve` serves a service: uvicorn with httptools, one send per response.

Stock uvicorn writes a response's status line and headers as soon as the app starts the
response, and the body in a second write: two `send()` calls and, on a connection with
Nagle off, two TCP segments for every webhook answered. On loopback each of those system
calls also runs the receiving side's TCP stack, so the second one costs as much as
verifying a GitHub signature. Here the writes a connection makes within one event-loop
step are joined into one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
