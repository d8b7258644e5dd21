"""The operator console (SPEC §11): static files the edge serves at `/` and `/console/*`.

Plain ES modules and one stylesheet, shipped as package data: nothing is built at install
time. Every page talks to the management API with the admin token the operator signs in
with, so the console can do nothing the API cannot. Its responses carry a strict
Content-Security-Policy (no inline script or style), and every value that came from
outside is put in the page as text (`textContent`), never as HTML.
"""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on every load (an ETag answers 304), so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


class _SecurityHeaders:
    """Adds the console's security headers to every answer of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k for k, _ in _RAW_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + _RAW_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def console_routes() -> list[BaseRoute]:
    """`/` (the page) and `/console/*` (its modules, stylesheet and icons)."""
    return [
        Route("/", _SecurityHeaders(_index_app), methods=["GET", "HEAD"]),
        Mount(
            "/console", app=_SecurityHeaders(StaticFiles(directory=STATIC, follow_symlink=False))
        ),
    ]


async def _index_app(scope: Scope, receive: Receive, send: Send) -> None:
    response = FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")
    await response(scope, receive, send)
