"""The operator console (SPEC §11): static files the edge serves at `/` and `/console/*`,
and the same page at `/portal`, the console in one workspace (SPEC §13).

Plain ES modules and one stylesheet, shipped as package data: nothing is built at install
time. Every page talks to the management API with the admin token the operator signs in
with (at `/portal`, a portal session's token), so the console can do nothing the API cannot.
Its responses carry a strict Content-Security-Policy (no inline script or style), and every
value that came from outside is put in the page as text (`textContent`), never as HTML.
The portal's policy differs in two points only: the sites that may frame it
(HOOKHUB_PORTAL_FRAME_ANCESTORS; none by default) and its logo's origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel.http import origins

STATIC = Path(__file__).parent / "static"


def content_security_policy(frame_ancestors: str = "'none'", image_origin: str = "") -> str:
    images = f"'self' data: {image_origin}".strip()
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
        f"connect-src 'self'; frame-ancestors {frame_ancestors}; base-uri 'none'; "
        "form-action 'self'"
    )


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidated on every load (an ETag answers 304), so an upgrade is seen at once.
    "Cache-Control": "no-cache",
}
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def portal_headers(frame_ancestors: str, logo: str | None) -> dict[str, str]:
    """The portal page's headers: the console's, but framable by `frame_ancestors` (origins
    already validated: HOOKHUB_PORTAL_FRAME_ANCESTORS) and showing images from the origin of
    its `logo` query parameter, that one alone, when it is an origin a policy may name."""
    image_origin = origins.origin_of_url(logo) if logo else None
    headers = SECURITY_HEADERS | {
        "Content-Security-Policy": content_security_policy(
            frame_ancestors or "'none'", image_origin or ""
        )
    }
    if frame_ancestors:
        # It names one origin or none: the CSP's list is the browsers' rule instead.
        del headers["X-Frame-Options"]
    return headers


class SecurityHeaders:
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


def console_routes(portal_frame_ancestors: str = "") -> list[BaseRoute]:
    """`/` (the page), `/portal` (the same page, in one workspace: SPEC §13) and
    `/console/*` (its modules, stylesheet and icons)."""

    async def portal(request: Request) -> Response:
        headers = portal_headers(portal_frame_ancestors, request.query_params.get("logo"))
        return _index(headers)

    return [
        Route("/", SecurityHeaders(_index_app), methods=["GET", "HEAD"]),
        Route("/portal", portal, methods=["GET", "HEAD"]),
        Mount("/console", app=SecurityHeaders(StaticFiles(directory=STATIC, follow_symlink=False))),
    ]


def _index(headers: dict[str, str] | None = None) -> FileResponse:
    return FileResponse(
        STATIC / "index.html", media_type="text/html; charset=utf-8", headers=headers
    )


async def _index_app(scope: Scope, receive: Receive, send: Send) -> None:
    await _index()(scope, receive, send)
