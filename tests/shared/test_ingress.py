"""The webhook ingress path (served before the FastAPI app) and the coalescing server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.responses import JSONResponse, PlainTextResponse, Response

from shared.kernel.errors import Forbidden
from shared.kernel.http.app import ServiceApp
from shared.kernel.http.errors import install_error_handlers
from shared.kernel.http.ingress import Ingress, IngressRequest, IngressRoute, RawResponse
from shared.kernel.http.telemetry import RequestTelemetry
from shared.kernel.http.tls import tls
from tests.support import serve

_LIMIT = 1_000


async def _echo(request: IngressRequest) -> Response:
    body = await request.body(_LIMIT)
    if request.path_params["name"] == "forbidden":
        raise Forbidden("not this one", code="nope")
    if request.path_params["name"] == "broken":
        raise RuntimeError("a bug")
    name, thing, query = (
        request.path_params["name"],
        request.headers.get("x-thing"),
        request.query_params.get("q"),
    )
    return PlainTextResponse(f"{name}|{thing}|{query}|{body.decode()}")


async def _special(request: IngressRequest) -> Response:
    return PlainTextResponse("special " + request.path_params["token"])


def _app() -> tuple[ServiceApp, CollectorRegistry]:
    registry = CollectorRegistry()
    routes = [
        IngressRoute("/api/hooks/special/{token}", _special, summary="first", responses={}),
        IngressRoute("/api/hooks/{name}", _echo, summary="echo", responses={200: "ok"}),
    ]
    app = ServiceApp(Ingress(routes, RequestTelemetry(registry)), title="probe")
    install_error_handlers(app)

    @app.get("/api/other")
    async def other() -> dict[str, str]:
        return {"served_by": "fastapi"}

    return app, registry


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, CollectorRegistry]]:
    app, registry = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        yield http, registry


async def test_matching_posts_are_answered_by_the_ingress_route(
    client: tuple[httpx.AsyncClient, CollectorRegistry],
) -> None:
    http, registry = client
    answer = await http.post(
        "/api/hooks/alpha?q=1", content=b"hello", headers={"X-Thing": "t", "X-Request-ID": "r1"}
    )
    assert answer.status_code == 200
    assert answer.text == "alpha|t|1|hello"
    assert answer.headers["x-request-id"] == "r1"
    assert (
        registry.get_sample_value(
            "hookhub_http_requests_total",
            {"route": "/api/hooks/{name}", "method": "POST", "status": "200"},
        )
        == 1
    )
    # A route listed earlier wins, and its parameters are its own.
    special = await http.post("/api/hooks/special/x", content=b"")
    assert special.text == "special x"
    generated = (await http.post("/api/hooks/beta", content=b"")).headers["x-request-id"]
    assert len(generated) == 32


async def test_other_paths_and_nested_paths_go_to_the_fastapi_app(
    client: tuple[httpx.AsyncClient, CollectorRegistry],
) -> None:
    http, _ = client
    assert (await http.get("/api/other")).json() == {"served_by": "fastapi"}
    nested = await http.post("/api/hooks/a/b/c", content=b"")
    assert nested.status_code == 404
    assert nested.json()["error"]["code"] == "not_found"


async def test_errors_keep_the_api_format(
    client: tuple[httpx.AsyncClient, CollectorRegistry],
) -> None:
    http, _ = client
    wrong_method = await http.get("/api/hooks/alpha")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    forbidden = await http.post("/api/hooks/forbidden", content=b"")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"error": {"code": "nope", "message": "not this one"}}
    broken = await http.post("/api/hooks/broken", content=b"")
    assert broken.status_code == 500
    assert broken.json()["error"]["code"] == "internal_error"
    assert "x-request-id" in broken.headers


async def test_bodies_over_the_limit_are_refused_declared_or_streamed(
    client: tuple[httpx.AsyncClient, CollectorRegistry],
) -> None:
    http, _ = client
    declared = await http.post("/api/hooks/alpha", content=b"x" * (_LIMIT + 1))
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"y" * 400

    streamed = await http.post("/api/hooks/alpha", content=chunks())
    assert streamed.status_code == 413
    bad_length = await http.post(
        "/api/hooks/alpha", content=b"", headers={"Content-Length": "many"}
    )
    assert bad_length.status_code == 400


async def test_the_coalescing_server_answers_keep_alive_and_closing_connections() -> None:
    app, _ = _app()
    async with serve(app, probe="/api/other") as running:
        url = running.base_url
        # One connection, many requests: every response complete and in order.
        async with httpx.AsyncClient(verify=tls(), base_url=url) as http:
            for n in range(20):
                answer = await http.post(f"/api/hooks/n{n}", content=b"x" * n)
                assert answer.text == f"n{n}|None|None|" + "x" * n
            assert (await http.get("/api/other")).json() == {"served_by": "fastapi"}
        # A client asking to close gets its whole response before the close.
        reader, writer = await asyncio.open_connection(*url.removeprefix("http://").split(":"))
        writer.write(
            b"POST /api/hooks/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert body == b"last|None|None|ok"


def test_raw_responses_carry_the_headers_starlette_would() -> None:
    pairs = [
        (RawResponse.json({"ok": True}), JSONResponse({"ok": True})),
        (RawResponse(200, b"ok", "text/plain"), PlainTextResponse("ok")),
        (RawResponse(204), Response(status_code=204)),
        (RawResponse(200), Response(status_code=200)),
    ]
    for raw, starlette in pairs:
        assert raw.status_code == starlette.status_code
        assert raw.body == starlette.body
        assert sorted(raw.raw_headers) == sorted(starlette.raw_headers)
