"""What the stand-ins of the APIs acted on from the channel share (services/sandbox/
alertmanager.py, sentry.py): every request recorded as it came, an outage switch, and a
bearer token checked where the API (or the proxy in front of it) wants one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response


@dataclass(frozen=True)
class Recorded:
    """One request as it came: `body` its JSON (the raw text where it was none)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordingApi:
    """`requests` every API request, in order; `unavailable` answers each with 503 (a
    proxy's page) until it is turned off; `base_url` is where the test served it."""

    requests: list[Recorded] = field(default_factory=list)
    unavailable: bool = False
    base_url: str = ""

    async def take(self, request: Request) -> tuple[Recorded, Response | None]:
        """The request recorded, and the outage's answer if the API is down."""
        raw = (await request.body()).decode(errors="replace")
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        recorded = Recorded(request.method, request.url.path, dict(request.headers), body)
        self.requests.append(recorded)
        if self.unavailable:
            return recorded, PlainTextResponse("503 Service Temporarily Unavailable", 503)
        return recorded, None

    @staticmethod
    def bearer(recorded: Recorded) -> str | None:
        scheme, _, token = recorded.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" and token else None


async def healthz(_: Request) -> Response:
    return JSONResponse({"ok": True})
