"""A subscriber's endpoint on loopback: records every request, answers as scripted per path."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"


@dataclass
class Script:
    """Answers for one path, used in order; the last one repeats."""

    statuses: list[int] = field(default_factory=lambda: [200])
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes | None = None  # instead of {"ok": ...}; send it with its content-type
    gate: asyncio.Event | None = None  # answer only once it is set (recorded at once)
    # Instead of `statuses`: the status for each request, given it (recorded already).
    answer: Callable[[Received], Awaitable[int]] | None = None


@dataclass
class WebhookSink:
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, Script] = field(default_factory=dict)
    _served: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def on(
        self,
        path: str,
        *statuses: int,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        gate: asyncio.Event | None = None,
        answer: Callable[[Received], Awaitable[int]] | None = None,
    ) -> None:
        self.scripts[path] = Script(
            list(statuses) or [200], dict(headers or {}), delay, body, gate, answer
        )

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def wait_for(self, path: str, count: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.at(path)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            path = request.url.path
            received = Received(
                path,
                {k.lower(): v for k, v in request.headers.items()},
                await request.body(),
                time.monotonic(),
                request.method,
            )
            self.received.append(received)
            script = self.scripts.get(path, Script())
            index = min(self._served[path], len(script.statuses) - 1)
            self._served[path] += 1
            if script.gate is not None:
                await script.gate.wait()
            if script.delay:
                await asyncio.sleep(script.delay)
            status = script.statuses[index]
            if script.answer is not None:
                status = await script.answer(received)
            if script.body is not None:
                return Response(script.body, status_code=status, headers=script.headers)
            body: Any = {"ok": 200 <= status < 300}
            return JSONResponse(body, status_code=status, headers=script.headers)

        async def healthz(_: Request) -> Response:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                Route("/{path:path}", receive, methods=["POST", "GET", "PUT", "PATCH"]),
            ]
        )
