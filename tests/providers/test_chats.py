"""The chat networks' HTTP client (`shared.providers.chats.provider_client`): httpx's
interface on aiohttp's pool, against a server the test starts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from opentelemetry.trace import SpanKind

from shared.kernel.embedded import free_port
from shared.providers.chats import provider_client
from tests.spans import recorded


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A network's API: `/ok` answers JSON (and sets a cookie, as Slack's and Cloudflare's
    fronts do), `/cut` closes the connection mid-answer."""

    async def ok(request: web.Request) -> web.Response:
        answer = web.json_response(
            {"ok": True, "got": await request.text(), "cookie": request.headers.get("Cookie")}
        )
        answer.set_cookie("workspace", "T_FIRST")
        return answer

    async def cut(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"ok": tr')
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_get("/cut", cut)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_call_made_while_spans_are_exported_has_its_client_span(server: str) -> None:
    """The httpx instrumentation patches httpx's own transport class, not this one: the
    client made while spans are exported is instrumented by itself."""
    with recorded() as spans:
        client = provider_client(4, 5.0)
        try:
            answer = await client.post(f"{server}/ok", content=b"hello")
        finally:
            await client.aclose()
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "got": "hello", "cookie": None}
    [span] = [s for s in spans.exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    attributes = dict(span.attributes or {})
    url = attributes.get("url.full") or attributes.get("http.url")
    assert url == f"{server}/ok"


async def test_a_call_made_otherwise_is_not_traced(server: str) -> None:
    client = provider_client(4, 5.0)
    try:
        assert (await client.post(f"{server}/ok", content=b"x")).status_code == 200
        assert not getattr(client, "_is_instrumented_by_opentelemetry", False)
    finally:
        await client.aclose()


async def test_a_cookie_one_answer_set_is_not_sent_with_the_next_request(server: str) -> None:
    """One client calls a network for every workspace: what an answer for one sets must not
    travel with another's request."""
    client = provider_client(4, 5.0)
    try:
        first = await client.post(f"{server}/ok", content=b"one")
        assert first.headers.get("Set-Cookie", "").startswith("workspace=T_FIRST")
        second = await client.post(f"{server}/ok", content=b"two")
        assert second.json()["cookie"] is None
        assert not client.cookies
    finally:
        await client.aclose()


async def test_a_network_away_or_cut_off_is_httpxs_transport_error(server: str) -> None:
    """What the providers take for "unreachable, try again" (`httpx.TransportError`): a
    refused connection, and a connection closed mid-answer."""
    client = provider_client(4, 5.0)
    try:
        with pytest.raises(httpx.TransportError):
            await client.post(f"http://127.0.0.1:{free_port()}/ok", content=b"x")
        with pytest.raises(httpx.TransportError):
            await client.get(f"{server}/cut")
    finally:
        await client.aclose()
