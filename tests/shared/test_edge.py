"""The single origin's route table follows the ownership table of SPEC §1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import unquote

import httpx
import orjson
import pytest
from starlette.types import Receive, Scope, Send

from services.edge import ROUTES, create_edge_app, owner_of
from tests.support import RunningService, serve


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/webhooks/incoming/hhwh_x", "gateway"),
        ("/api/webhooks/github/int_1", "gateway"),
        ("/api/webhooks/stats", "delivery"),
        ("/api/incoming-webhooks", "gateway"),
        ("/api/incoming-webhooks/iwh_1/rotate-token", "gateway"),
        ("/api/outgoing-webhooks/ow_1/test", "delivery"),
        ("/api/deliveries", "delivery"),
        ("/api/events", "delivery"),
        ("/api/integrations", "oauth"),
        ("/api/integrations/int_1/status", "oauth"),
        ("/api/integrations/int_1/mappings/m_1", "sync"),
        ("/api/integrations/int_1/actions/create-issue", "sync"),
        ("/api/messages/lookup", "sync"),
        ("/api/integrations/int_1/import", "importer"),
        ("/api/imports/job_1/cancel", "importer"),
        ("/api/auth/oauth/callback", "oauth"),
        ("/api/providers/slack", "oauth"),
        ("/api/webhooksx", None),
        ("/api/unknown", None),
    ],
)
def test_owner_of(path: str, service: str | None) -> None:
    assert owner_of(path) == service


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that answers with the path it was asked for, and how its body came."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    body = orjson.dumps(
        {
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "framing": [
                headers.get(b"content-length", b"").decode(),
                headers.get(b"transfer-encoding", b"").decode(),
            ],
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
async def edge() -> AsyncIterator[RunningService]:
    async with serve(_echo, probe="/anything") as upstream:
        table = dict.fromkeys({s for _, s in ROUTES}, upstream.base_url)
        async with serve(create_edge_app(table), probe="/healthz") as running:
            yield running


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("/api/providers/%11", "/api/providers/\x11"),
        ("/api/integrations/a%0Ab/disconnect", "/api/integrations/a\nb/disconnect"),
        (
            "/api/outgoing-webhooks/%C2%AB%F4%89%B4%81%15",
            unquote("/api/outgoing-webhooks/%C2%AB%F4%89%B4%81%15"),
        ),
        ("/api/webhooks/%02%10je/int_1", "/api/webhooks/\x02\x10je/int_1"),
        ("/api/deliveries/a%2Fb/retry", "/api/deliveries/a/b/retry"),
    ],
)
async def test_odd_paths_reach_the_service_as_the_client_sent_them(
    edge: RunningService, raw: str, decoded: str
) -> None:
    """Control and non-ASCII characters in a path once made the edge answer 500 (it rebuilt
    the URL from the decoded path) or a plain-text 404 (a line feed)."""
    answer = await edge.client.get(httpx.URL(edge.base_url + raw))
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == decoded
    assert answer.json()["raw_path"] == raw


async def test_a_body_keeps_its_length_so_the_service_can_refuse_it_unread(
    edge: RunningService,
) -> None:
    """Without its Content-Length a 200 MB body crossed the edge whole before the service
    could answer 413 (or 401: the token is checked before the body is read)."""
    sized = await edge.client.post("/api/events", content=b"x" * 5000)
    assert sized.json()["framing"] == ["5000", ""]

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * 100

    chunked = await edge.client.post("/api/events", content=chunks())
    assert chunked.json()["framing"] == ["", "chunked"]


async def test_the_edge_answers_its_own_errors_in_the_error_format(edge: RunningService) -> None:
    unknown = await edge.client.get("/api/nothing%0Ahere")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    wrong_method = await edge.client.post("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


class _Dropping:
    """An upstream on a raw socket that closes the connection without an answer for the
    first `drop` requests it reads (as a server closing a pooled connection as a request
    arrives), then answers 200. Counts the requests by method."""

    def __init__(self, drop: int) -> None:
        self.drop = drop
        self.seen: list[str] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.seen.append(head.split(b" ", 1)[0].decode())
            if self.drop > 0:
                self.drop -= 1
                return
            body = b'{"ok": true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def dropping() -> AsyncIterator[tuple[_Dropping, RunningService]]:
    upstream = _Dropping(drop=0)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    table = dict.fromkeys({s for _, s in ROUTES}, f"http://127.0.0.1:{port}")
    try:
        async with serve(create_edge_app(table), probe="/healthz") as running:
            yield upstream, running
    finally:
        server.close()
        await server.wait_closed()


async def test_a_dropped_connection_is_tried_again_once_for_a_repeatable_bodiless_request(
    dropping: tuple[_Dropping, RunningService],
) -> None:
    upstream, edge = dropping
    upstream.drop = 1
    again = await edge.client.get("/api/deliveries")
    assert again.status_code == 200, again.text
    assert upstream.seen == ["GET", "GET"]

    upstream.seen.clear()
    upstream.drop = 2  # dropped twice: the service is not there
    gone = await edge.client.delete("/api/integrations/int_1")
    assert gone.status_code == 503
    assert gone.json()["error"]["code"] == "upstream_unavailable"
    assert upstream.seen == ["DELETE", "DELETE"]


async def test_a_request_with_a_body_is_never_sent_twice(
    dropping: tuple[_Dropping, RunningService],
) -> None:
    upstream, edge = dropping
    upstream.drop = 1
    answer = await edge.client.post("/api/events", content=b'{"type": "x"}')
    assert answer.status_code == 503
    assert upstream.seen == ["POST"]
