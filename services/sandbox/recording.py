"""What the stand-ins of the APIs acted on from the channel share (services/sandbox/
alertmanager.py, sentry.py, pagerduty.py, opsgenie.py): every request recorded as it came,
outages (a switch, or the next n requests), requests held unanswered until released (a
provider that is slow, by construction), and a bearer token checked where the API (or
the proxy in front of it) wants one. `routed` makes a stand-in's app of its routes, each
request recorded, answered by an outage first, then by `denied` (the API's check of its
credentials), then by the route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class Recorded:
    """One request as it came: `body` its JSON (the raw text where it was none), `query`
    its query's parameters."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, str] = field(default_factory=dict)


# A route's answer to a request, given the path's parameters.
Answer = Callable[[Recorded, Mapping[str, str]], Response]


@dataclass
class _Failing:
    times: int
    answer: Callable[[], Response]


def _outage() -> Response:
    return PlainTextResponse("503 Service Temporarily Unavailable", 503)


@dataclass
class RecordingApi:
    """`requests` every API request, in order; `unavailable` answers each with 503 (a
    proxy's page) until it is turned off, `fail` the next few; `hold` keeps every request
    unanswered (recorded) until `release`; `base_url` is where the test served it."""

    requests: list[Recorded] = field(default_factory=list)
    unavailable: bool = False
    base_url: str = ""
    _failing: list[_Failing] = field(default_factory=list, repr=False)
    _held: asyncio.Event | None = field(default=None, repr=False)

    def hold(self) -> None:
        self._held = asyncio.Event()

    def release(self) -> None:
        if self._held is not None:
            self._held.set()
            self._held = None

    def fail(self, times: int = 1, answer: Callable[[], Response] = _outage) -> None:
        """The next `times` requests are answered `answer()` (the outage's 503, else a
        provider's own: its rate limit), whatever they ask."""
        self._failing.append(_Failing(times, answer))

    async def take(self, request: Request) -> tuple[Recorded, Response | None]:
        """The request recorded, and the outage's answer if the API is down."""
        raw = (await request.body()).decode(errors="replace")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        recorded = Recorded(
            request.method,
            request.url.path,
            dict(request.headers),
            body,
            dict(request.query_params),
        )
        self.requests.append(recorded)
        if self._held is not None:
            await self._held.wait()
        if self.unavailable:
            return recorded, _outage()
        for failing in self._failing:
            if failing.times > 0:
                failing.times -= 1
                return recorded, failing.answer()
        return recorded, None

    def denied(self, recorded: Recorded) -> Response | None:
        """The API's answer to a request whose credentials it does not take, else None."""
        return None

    def routed(self, *routes: tuple[str, str, Answer]) -> Starlette:
        """An app of `routes` (method, path, answer), and `/healthz`."""

        def endpoint(answer: Answer) -> Callable[[Request], Awaitable[Response]]:
            async def answered(request: Request) -> Response:
                recorded, down = await self.take(request)
                refused = down or self.denied(recorded)
                return refused or answer(recorded, dict(request.path_params))

            return answered

        return Starlette(
            routes=[
                Route("/healthz", healthz),
                *(Route(path, endpoint(answer), methods=[m]) for m, path, answer in routes),
            ]
        )

    def forget(self) -> None:
        """Nothing recorded, nothing failing: for the next test on the same server."""
        self.requests.clear()
        self.unavailable = False
        self._failing.clear()

    @staticmethod
    def bearer(recorded: Recorded) -> str | None:
        scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None


async def healthz(_: Request) -> Response:
    return JSONResponse({"ok": True})
