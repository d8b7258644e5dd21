"""The single origin: routes every public path to the service that owns it (SPEC §1, §2).

`make run` and docker compose put it on :8080; in Kubernetes an Ingress with the same table
(`deploy/`) can take its place. It adds no logic of its own: it forwards bytes, streams
both ways (a service's early answer is relayed while the body still comes), relays a
WebSocket to the service whose path it asks for (`hookhub listen`'s), and aggregates
`/readyz` and `/openapi.json` across the services. What it refuses itself: paths a hop
could resolve into another (dot and empty segments), and clients too slow to send their
request (docs/operations.md, "The single origin"). A header value that is not UTF-8 is
left out and named to the service, which refuses it only if it reads it
(shared.kernel.http.headers). It also serves the AsyncAPI document of the Kafka topics
(`/asyncapi.json`, and as a page at `/asyncapi`: services/asyncapi) and the operator
console's static files (`/`, `/portal`, `/console/*`: services/console).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import aiohttp
import orjson
import uvicorn
import websockets.asyncio.client
import websockets.exceptions
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from yarl import URL

from services.asyncapi import asyncapi_document, render_html, with_event_types
from services.console import SECURITY_HEADERS, console_routes
from shared.kernel.http.errors import ERROR_SCHEMA_REF
from shared.kernel.http.headers import UNDECODABLE_HEADERS
from shared.kernel.http.server import KEEP_ALIVE_SECONDS, HeadLimit, no_websocket

# First match wins. Mirrors the ownership table of SPEC §1.
ROUTES: tuple[tuple[str, str], ...] = (
    (r"^/api/webhooks/stats(/|$)", "delivery"),
    (r"^/api/webhooks(/|$)", "gateway"),
    (r"^/api/incoming-webhooks(/|$)", "gateway"),
    (r"^/api/outgoing-webhooks(/|$)", "delivery"),
    (r"^/api/transformations(/|$)", "delivery"),
    (r"^/api/deliveries(/|$)", "delivery"),
    (r"^/api/events(/|$)", "delivery"),
    (r"^/api/event-types(/|$)", "delivery"),
    (r"^/api/operational-events(/|$)", "delivery"),
    (r"^/api/listen(/|$)", "delivery"),
    (r"^/api/integrations/[^/]+/mappings(/|$)", "sync"),
    (r"^/api/integrations/[^/]+/subscriptions(/|$)", "sync"),
    (r"^/api/notification-events(/|$)", "sync"),
    (r"^/api/integrations/[^/]+/actions(/|$)", "sync"),
    (r"^/api/messages(/|$)", "sync"),
    (r"^/api/templates(/|$)", "sync"),
    (r"^/api/integrations/[^/]+/import(/|$)", "importer"),
    (r"^/api/imports(/|$)", "importer"),
    (r"^/api/integrations(/|$)", "oauth"),
    (r"^/api/auth/oauth(/|$)", "oauth"),
    (r"^/api/providers(/|$)", "oauth"),
    (r"^/api/provider-catalog(/|$)", "oauth"),
    (r"^/api/workspaces/[^/]+/api-keys(/|$)", "oauth"),
    (r"^/api/workspaces/[^/]+/portal-sessions(/|$)", "oauth"),
    (r"^/api/me(/|$)", "oauth"),
    (r"^/api/audit-events(/|$)", "oauth"),
    (r"^/api/usage(/|$)", "oauth"),
    (r"^/api/account-links(/|$)", "oauth"),
    # `hookhub run --sandbox` only: without a sandbox upstream, a 404 like any unknown path.
    (r"^/sandbox(/|$)", "sandbox"),
)
_COMPILED = [(re.compile(pattern), service) for pattern, service in ROUTES]
# Without `--sandbox`, answered 204 (no sandbox) rather than 404: console/static/sandbox.js.
SANDBOX_STATE = "/sandbox/api/state"

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
    }
)
_UNDECODABLE = UNDECODABLE_HEADERS.encode()
# The edge's own server writes one of each on every answer; the service's are left out.
_NOT_RELAYED = _HOP_BY_HOP | {b"date", b"server"}

# The request head must have arrived within this many seconds of the connection, or of the
# request's first byte; the body must keep coming at BODY_MIN_RATE (bytes a second) after
# a grace of `body_timeout` seconds. Only the time spent waiting for the client counts:
# not the time a service takes to read what was already received.
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 20.0
BODY_MIN_RATE = 500
# How long a connection ended early (408, or an answer before the body's end) keeps reading
# and dropping what the client still sends, after the answer, before it is closed.
LINGER_SECONDS = 2.0
# How long the edge keeps an idle connection to a service for the next request: under the
# service's own keep-alive, or a request sent on one the service has just closed fails
# (`ServerDisconnectedError`) and is answered 503 "not reachable" (aiohttp keeps them 15 s
# by default, uvicorn 5 s: a request ~5 s after the last one to a service failed so).
UPSTREAM_KEEP_ALIVE_SECONDS = KEEP_ALIVE_SECONDS - 1.0


class _Refused(Exception):
    """A request the edge answers itself, without a service: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _unreachable(service: str) -> Response:
    return _error(503, "upstream_unavailable", f"{service} is not reachable", retry=True)


def owner_of(path: str) -> str | None:
    for pattern, service in _COMPILED:
        if pattern.search(path):
            return service
    return None


def _ambiguous(path: str) -> bool:
    """Whether a path holds a `.` or `..` segment (percent-encoded or not, or made of `%2F`)
    or an empty one before its end (`//`): something a client or server on the way may
    resolve or merge, so that the service would see another path than the edge routed."""
    segments = unquote(path).split("/")
    return any(s in (".", "..") for s in segments) or "" in segments[1:-1]


def _upstream_headers(scope: Scope) -> list[tuple[str, str]]:
    """The headers the service is sent: the client's, less hop-by-hop ones. A value that is
    not UTF-8 (legal in HTTP, and which the client library can only write as UTF-8 text)
    is left out and its name put in `hookhub-undecodable-headers`, for the service to
    refuse if it reads it; the same header from a client is not passed on."""
    headers: list[tuple[str, str]] = []
    undecodable: list[str] = []
    for name, value in scope["headers"]:
        if name in _HOP_BY_HOP or name == _UNDECODABLE:
            continue
        # Names are tokens (httptools refuses others), hence ASCII.
        try:
            # Whitespace around a value is not part of it (RFC 9110 5.5); httptools keeps
            # what trails it, and the client library on the way to the service refuses it.
            headers.append((name.decode("ascii"), value.strip(b" \t").decode("utf-8")))
        except UnicodeDecodeError:
            undecodable.append(name.decode("ascii"))
    if undecodable:
        headers.append((UNDECODABLE_HEADERS, ", ".join(dict.fromkeys(undecodable))))
    return headers


class _Body:
    """The client's request body, as it arrives, to be streamed to the service.

    The wait for the next part of it is bounded: after `grace` seconds, the client must
    have sent BODY_MIN_RATE bytes for every further second spent waiting on it."""

    def __init__(self, receive: Receive, grace: float, min_rate: float) -> None:
        self.receive, self.grace, self.min_rate = receive, grace, min_rate
        self.complete = False  # the whole body was read
        self.timed_out = False  # the client stopped sending it

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        received, waited = 0, 0.0
        while True:
            started = loop.time()
            try:
                async with asyncio.timeout(self.grace + received / self.min_rate - waited):
                    message = await self.receive()
            except TimeoutError:
                self.timed_out = True
                raise
            waited += loop.time() - started
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("the client went away mid-body")
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.complete = True
                return


class _Streamed(aiohttp.payload.AsyncIterablePayload):
    """A body streamed to the service, whose request head goes out before the body's first
    part (aiohttp holds it back to send them together): the service may answer from the
    head alone, and the client may be slow to send the body, or never send it."""

    async def write_with_length(
        self, writer: aiohttp.abc.AbstractStreamWriter, content_length: int | None
    ) -> None:
        writer.send_headers()
        await super().write_with_length(writer, content_length)


def create_edge_app(
    upstreams: dict[str, str],
    request_timeout: float = 60.0,
    body_timeout: float = BODY_TIMEOUT,
    body_min_rate: float = BODY_MIN_RATE,
    portal_frame_ancestors: str = "",
) -> ASGIApp:
    # aiohttp, not httpx: it reads the service's answer while the body is still being
    # sent, so that an early answer (401, 413, 404) is relayed at once. Created in the
    # lifespan: a session belongs to the event loop it is made in.
    session: aiohttp.ClientSession | None = None

    async def forward(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await _forward(scope, receive, send)
        except _Refused as refused:
            response = _error(refused.status, refused.code, refused.message)
            await response(scope, receive, send)

    async def _forward(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        service = owner_of(request.url.path)
        if service == "sandbox" and service not in upstreams and request.url.path == SANDBOX_STATE:
            # The console asks on every load whether the sandbox runs; a 404 would be an
            # error in the browser's console of every stack without it.
            await Response(status_code=204)(scope, receive, send)
            return
        if service is None or service not in upstreams:
            raise _Refused(404, "not_found", f"no route for {request.url.path}")
        assert session is not None, "the edge's lifespan has not run"
        # The path as the client sent it (still percent-encoded): the decoded one may hold
        # control or non-ASCII characters no URL can carry, and the service decodes it anyway.
        raw_path: bytes | None = scope.get("raw_path")
        target = upstreams[service] + (raw_path.decode("latin-1") if raw_path else request.url.path)
        if request.url.query:
            target += "?" + request.url.query
        headers = _upstream_headers(scope)
        length = request.headers.get("content-length")
        if length is not None and "transfer-encoding" not in request.headers:
            # Passed on, so that the service can refuse an oversized body (413) from its
            # header before a byte of it crosses the edge; the body still streams.
            headers.append(("content-length", length))
        client_host = request.client.host if request.client else ""
        headers += [
            ("x-forwarded-for", client_host),
            ("x-forwarded-proto", request.url.scheme),
            ("x-forwarded-host", request.headers.get("host", "")),
        ]
        bodiless = length in (None, "0") and "transfer-encoding" not in request.headers
        body = None if bodiless else _Body(receive, body_timeout, body_min_rate)
        try:
            url = URL(target, encoded=True)
        except ValueError:
            raise _Refused(
                400, "bad_request", "the request's path or query is not a valid URL"
            ) from None
        try:
            # A GET, HEAD, OPTIONS, TRACE, PUT or DELETE (RFC 9110 9.2.2) is sent again once
            # by aiohttp when the service dropped the connection without answering: a pooled
            # connection it closed just as this request went out. Never one whose body has
            # begun to stream: it could not be sent twice.
            upstream = await session.request(
                request.method,
                url,
                headers=headers,
                data=None if body is None else _Streamed(body.chunks()),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            await _failure(exc, service, body)(scope, receive, send)
            return
        headers_out = [(k, v) for k, v in upstream.raw_headers if k.lower() not in _NOT_RELAYED]
        if body is not None and not body.complete:
            # The service answered before the whole body came: what would follow is not
            # read, and the connection cannot carry another request.
            headers_out.append((b"connection", b"close"))
        try:
            await send(
                {"type": "http.response.start", "status": upstream.status, "headers": headers_out}
            )
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            upstream.close()

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "edge"})

    async def readyz(_: Request) -> Response:
        async def one(name: str, base: str) -> tuple[str, Any]:
            assert session is not None
            try:
                async with session.get(base + "/readyz", timeout=_QUICK) as answer:
                    return name, await answer.json(content_type=None) | {
                        "http_status": answer.status
                    }
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return name, {"status": "unreachable", "error": type(exc).__name__}

        results = dict(await asyncio.gather(*(one(n, b) for n, b in upstreams.items())))
        ready = all(r.get("status") == "ready" for r in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "services": results},
            status_code=200 if ready else 503,
        )

    async def openapi(_: Request) -> Response:
        assert session is not None
        merged: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": "hookhub", "version": "1"},
            "paths": {},
            "components": {"schemas": {}, "securitySchemes": {}},
        }
        for name, base in upstreams.items():
            try:
                async with session.get(base + "/openapi.json", timeout=_QUICK) as answer:
                    spec = orjson.loads(await answer.read())
            except (aiohttp.ClientError, TimeoutError, ValueError):
                continue
            merged["info"]["version"] = spec.get("info", {}).get("version", "1")
            for path, item in spec.get("paths", {}).items():
                if owner_of(path) == name:
                    merged["paths"][path] = _with_edge_errors(item)
            components = spec.get("components", {})
            for section in ("schemas", "securitySchemes"):
                merged["components"][section].update(components.get(section, {}))
        return JSONResponse(merged)

    async def asyncapi() -> dict[str, Any]:
        """The document with delivery's global event type catalog; without it while
        delivery does not answer (the topics' document does not wait for it)."""
        base = upstreams.get("delivery")
        if base is None:
            return asyncapi_document()
        assert session is not None
        try:
            async with session.get(base + "/asyncapi/event-types", timeout=_QUICK) as answer:
                types = orjson.loads(await answer.read())["data"] if answer.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
            types = []
        return with_event_types(asyncapi_document(), types)

    async def asyncapi_json(_: Request) -> Response:
        return JSONResponse(await asyncapi())

    async def asyncapi_page(_: Request) -> Response:
        return HTMLResponse(render_html(await asyncapi()), headers=SECURITY_HEADERS)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal session
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=1000, limit_per_host=0, keepalive_timeout=UPSTREAM_KEEP_ALIVE_SECONDS
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=request_timeout, sock_connect=5.0, sock_read=request_timeout
            ),
            # The client's headers and body go on as they came: nothing added, nothing
            # decoded (a compressed answer stays compressed).
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        try:
            yield
        finally:
            await session.close()

    app = Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/openapi.json", openapi),
            Route("/asyncapi.json", asyncapi_json),
            Route("/asyncapi", asyncapi_page),
            # The operator console: `/`, `/portal` and `/console/*`.
            *console_routes(portal_frame_ancestors),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    # Every other path, whatever it holds, goes to the router's default: a `{path:path}`
    # route would not match a path with a line feed in it (its `.*` stops there) and the
    # client would get Starlette's plain-text 404 instead of the service's answer.
    app.router.default = forward

    async def edge(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # `hookhub listen`'s socket (delivery)
            await _forward_websocket(scope, receive, send, upstreams)
            return
        # Refused before routing, on every path: routing must be done on the path the
        # service will see, and a dot segment is resolved by whatever lies on the way.
        if scope["type"] == "http" and _ambiguous(scope.get("raw_path", b"").decode("latin-1")):
            response = _error(
                400, "bad_request", "the path holds a `.`, `..` or empty segment", close=True
            )
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return edge


_QUICK = aiohttp.ClientTimeout(total=5.0)
# The largest frame relayed from a service: a listen delivery (16 MiB) and its JSON.
WEBSOCKET_MAX_FRAME = 32 * 1024 * 1024
# Close codes that cannot be sent (RFC 6455 7.4.1), as the other side is told instead: no
# code given is a normal close; a connection lost, a server's error.
_UNSENDABLE_CLOSE = {1005: 1000, 1006: 1011, 1015: 1011}


async def _forward_websocket(
    scope: Scope, receive: Receive, send: Send, upstreams: dict[str, str]
) -> None:
    """A WebSocket handshake sent on to the service that owns its path, and once that
    service accepts it, its frames relayed both ways as they come, and the close as it was
    given. A handshake the service refuses is answered with the service's own answer
    (status, body); a path no service owns with 404, a service that does not answer with
    503. Nothing of the socket is read or changed on the way (SPEC §21's listener)."""
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw_path.decode("latin-1")
    service = owner_of(scope["path"])
    if service is None or service not in upstreams or _ambiguous(path):
        await no_websocket(scope, receive, send)
        return
    await receive()  # websocket.connect
    target = "ws" + upstreams[service].removeprefix("http") + path
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    client = scope.get("client") or ("", 0)
    headers = [
        (name, value)
        for name, value in _upstream_headers(scope)
        if not name.startswith("sec-websocket-")
    ] + [("x-forwarded-for", client[0]), ("x-forwarded-proto", scope.get("scheme", "ws"))]
    try:
        upstream = await websockets.asyncio.client.connect(
            target,
            additional_headers=headers,
            subprotocols=scope.get("subprotocols") or None,
            compression=None,  # loopback or the cluster's network: not worth the CPU
            proxy=None,
            user_agent_header=None,
            max_size=WEBSOCKET_MAX_FRAME,
            open_timeout=10,
        )
    except websockets.exceptions.InvalidStatus as refused:
        answer = refused.response
        kept = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in answer.headers.raw_items()
            if name.lower() in ("content-type", "www-authenticate", "retry-after")
        ]
        await _deny_websocket(scope, send, answer.status_code, kept, bytes(answer.body))
        return
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException):
        unreachable = _unreachable(service)
        kept = [h for h in unreachable.raw_headers if h[0] != b"content-length"]
        await _deny_websocket(scope, send, 503, kept, bytes(unreachable.body))
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

    async def from_client() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(1001 if code in _UNSENDABLE_CLOSE else code)
                return
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def from_service() -> None:
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for data in upstream:
                kind = "text" if isinstance(data, str) else "bytes"
                await send({"type": "websocket.send", kind: data})
        code = upstream.close_code or 1000
        await send(
            {
                "type": "websocket.close",
                "code": _UNSENDABLE_CLOSE.get(code, code),
                "reason": upstream.close_reason or "",
            }
        )

    relays = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_service())]
    try:
        await asyncio.wait(relays, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        await upstream.close()


async def _deny_websocket(
    scope: Scope, send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    """A handshake refused with an HTTP answer (uvicorn's denial extension), or closed."""
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


def _failure(exc: Exception, service: str, body: _Body | None) -> Response:
    """The edge's answer to a request its service did not answer."""
    if body is not None and body.timed_out:
        return _error(
            408, "request_timeout", "the request's body did not arrive in time", close=True
        )
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts among them
        return _error(504, "upstream_timeout", f"{service} did not answer in time")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return _unreachable(service)
    # aiohttp refuses what no request may carry (a line break in a header, a bad URL).
    return _error(400, "bad_request", "the request cannot be sent on as it is")


class _EdgeProtocol(HeadLimit):
    """uvicorn's HTTP protocol with the limits it lacks (its keep-alive timer restarts at
    every byte, so a head sent a byte at a time held a connection for good; a head's size
    is bounded as a service's is, HeadLimit):

    - a request head must be complete within `header_timeout` seconds of the connection
      or of its first byte; else 408 `request_timeout` (nothing if nothing came) and close;
    - an answer given before its request's body has fully arrived ends the connection:
      what is still coming is not read.

    Either way the connection ends with a lingering close, as nginx's: the answer, then
    the end of our side (FIN), then for up to `linger` seconds whatever the client still
    sends is read and dropped before the socket is closed. Closed at once, the kernel
    answers the client's next bytes with a reset, which can destroy the answer before the
    client has read it (it sees "connection reset" instead of its 408 or 413).
    """

    header_timeout = HEADER_TIMEOUT
    linger = LINGER_SECONDS
    _head_timer: asyncio.TimerHandle | None = None
    _head_started = False
    _lingering = False
    _raw: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._raw = transport
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._head_started = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self._linger_then_close()

    def data_received(self, data: bytes) -> None:
        if not self._lingering:
            super().data_received(data)

    def end_refused(self) -> None:
        self._linger_then_close()

    def _linger_then_close(self) -> None:
        """Our side ended, the client's drained and dropped for a while, then closed."""
        if self._lingering:
            return
        self._lingering = True
        self._stop_head_timer()
        if not self._raw.can_write_eof():
            self._raw.close()
            return
        self._raw.write_eof()
        self.loop.call_later(self.linger, self._raw.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        if self._head_started and idle:
            self.answer_and_end(
                b"408 Request Timeout",
                "request_timeout",
                "the request's head did not arrive in time",
            )
            return
        self.transport.close()


class _LingeringTransport:
    """The connection's transport as uvicorn sees it, except that closing it while the
    request's body is still coming lingers (uvicorn closes at once after an answer that
    says `connection: close`, which the edge gives an early answer so that the client does
    not send another request on it)."""

    def __init__(self, transport: asyncio.Transport, protocol: _EdgeProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        cycle = self._protocol.cycle
        if cycle is not None and cycle.more_body:
            self._protocol._linger_then_close()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def edge_protocol(header_timeout: float = HEADER_TIMEOUT) -> type[HttpToolsProtocol]:
    """The edge's HTTP protocol (its head timeout and lingering close)."""
    return type("EdgeProtocol", (_EdgeProtocol,), {"header_timeout": header_timeout})


def edge_config(
    upstreams: dict[str, str],
    host: str,
    port: int,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    portal_frame_ancestors: str = "",
    **options: Any,
) -> uvicorn.Config:
    """How `hookhub edge` and `hookhub run` serve the edge."""
    return uvicorn.Config(
        create_edge_app(
            upstreams, body_timeout=body_timeout, portal_frame_ancestors=portal_frame_ancestors
        ),
        host=host,
        port=port,
        http=edge_protocol(header_timeout),
        access_log=False,
        log_level="warning",
        lifespan="on",
        **options,
    )


# What the edge itself may answer on any forwarded route, besides the service's answers
# (its 503 `upstream_unavailable` is the services' 503, already listed).
_EDGE_ERRORS = {
    "504": {
        "description": "The service did not answer in time (`upstream_timeout`, the edge's)",
        "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
    }
}


def _with_edge_errors(item: dict[str, Any]) -> dict[str, Any]:
    return {
        method: operation | {"responses": operation.get("responses", {}) | _EDGE_ERRORS}
        if isinstance(operation, dict) and "responses" in operation
        else operation
        for method, operation in item.items()
    }


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    response = _error(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _internal_error(_: Request, exc: Exception) -> Response:
    return _error(500, "internal_error", "internal error")


def _error(
    status: int, code: str, message: str, retry: bool = False, close: bool = False
) -> JSONResponse:
    headers = {"Retry-After": "5"} if retry else {}
    if close:
        headers["Connection"] = "close"
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )
