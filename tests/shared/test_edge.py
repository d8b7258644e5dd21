"""The single origin's route table follows the ownership table of SPEC §1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast
from urllib.parse import unquote

import httpx
import orjson
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from services.edge import (
    BODY_TIMEOUT,
    HEADER_TIMEOUT,
    ROUTES,
    UPSTREAM_KEEP_ALIVE_SECONDS,
    edge_config,
    owner_of,
)
from shared.kernel.embedded import free_port
from shared.kernel.http.server import ServiceServer
from shared.kernel.http.tls import tls
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
        ("/api/operational-events", "delivery"),
        ("/api/integrations", "oauth"),
        ("/api/integrations/int_1/status", "oauth"),
        ("/api/integrations/int_1/mappings/m_1", "sync"),
        ("/api/integrations/int_1/subscriptions", "sync"),
        ("/api/integrations/int_1/subscriptions/sub_1", "sync"),
        ("/api/notification-events", "sync"),
        ("/api/integrations/int_1/actions/create-issue", "sync"),
        ("/api/messages/lookup", "sync"),
        ("/api/integrations/int_1/import", "importer"),
        ("/api/imports/job_1/cancel", "importer"),
        ("/api/auth/oauth/callback", "oauth"),
        ("/api/providers/slack", "oauth"),
        ("/api/provider-catalog/stripe", "oauth"),
        ("/api/workspaces/ws_1/api-keys", "oauth"),
        ("/api/workspaces/ws_1/api-keys/key_1", "oauth"),
        ("/api/audit-events", "oauth"),
        ("/api/usage", "oauth"),
        ("/api/webhooksx", None),
        ("/api/unknown", None),
    ],
)
def test_owner_of(path: str, service: str | None) -> None:
    assert owner_of(path) == service


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """An upstream that answers with the path it was asked for, and how its body came,
    once it has read the body; asked with `x-refuse`, it answers 413 without reading it (as
    the services do from a `Content-Length` over their limit)."""
    if scope["type"] != "http":
        return
    headers = dict(scope["headers"])
    if b"x-refuse" in headers:
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b"too large"})
        return
    while (await receive()).get("more_body"):
        pass
    body = orjson.dumps(
        {
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "framing": [
                headers.get(b"content-length", b"").decode(),
                headers.get(b"transfer-encoding", b"").decode(),
            ],
            "headers": {k.decode(): v.decode("latin-1") for k, v in scope["headers"]},
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


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the test runner owns the signals


@contextlib.asynccontextmanager
async def _serve_edge(
    upstreams: dict[str, str],
    header_timeout: float = HEADER_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
) -> AsyncIterator[RunningService]:
    """The edge as `hookhub edge` serves it (its own protocol and limits), on a real port."""
    port = free_port()
    config = edge_config(
        upstreams, "127.0.0.1", port, header_timeout=header_timeout, body_timeout=body_timeout
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    limits_ = httpx.Limits(keepalive_expiry=2.0)  # below uvicorn's 5 s keep-alive
    async with httpx.AsyncClient(
        verify=tls(), base_url=base_url, timeout=15.0, limits=limits_
    ) as client:
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            yield RunningService(cast(Any, server.config.app), base_url, client)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 15)


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[RunningService]:
    async with serve(_echo, probe="/anything") as running:
        yield running


@pytest.fixture(scope="module")
async def edge(upstream: RunningService) -> AsyncIterator[RunningService]:
    async with _serve_edge(dict.fromkeys({s for _, s in ROUTES}, upstream.base_url)) as running:
        yield running


@pytest.fixture
async def impatient_edge(upstream: RunningService) -> AsyncIterator[RunningService]:
    """An edge whose header and body timeouts are short enough to wait out in a test."""
    table = dict.fromkeys({s for _, s in ROUTES}, upstream.base_url)
    async with _serve_edge(table, header_timeout=0.3, body_timeout=0.3) as running:
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
        async with _serve_edge(table) as running:
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


async def _exchange(base_url: str, request: bytes) -> bytes:
    """Sends raw bytes to the edge and reads until it closes the connection."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        # Only a bound on a hang: the edge answers long before.
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()


def _status_and_body(answer: bytes) -> tuple[int, bytes, list[bytes]]:
    """The status, the body (chunks joined) and the header lines of one raw answer."""
    head, _, rest = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.split(b"\r\n")
    if b"transfer-encoding: chunked" not in [line.lower() for line in lines]:
        return int(status_line.split(b" ")[1]), rest, lines
    body = b""
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        body, rest = body + rest[: int(size, 16)], rest[int(size, 16) + 2 :]
    return int(status_line.split(b" ")[1]), body, lines


@pytest.mark.parametrize(
    "value",
    [b"value   ", b"value\t", b"  value", b"caf\xc3\xa9 "],
)
async def test_a_header_value_is_passed_on_without_its_surrounding_whitespace(
    edge: RunningService, value: bytes
) -> None:
    """Trailing whitespace once made every route answer 503 `upstream_unavailable`, and a
    non-ASCII value 500: the service itself answers 200 to the same request."""
    answer = await _exchange(
        edge.base_url,
        b"GET /api/events HTTP/1.1\r\nHost: x\r\nX-Thing: "
        + value
        + b"\r\nConnection: close\r\n\r\n",
    )
    status, body, _ = _status_and_body(answer)
    assert status == 200, answer
    seen = orjson.loads(body)
    assert seen["headers"]["x-thing"].encode("latin-1") == value.strip(b" \t")


async def test_a_header_value_that_is_not_utf8_is_left_out_and_named_to_the_service(
    edge: RunningService,
) -> None:
    """Legal in HTTP (obs-text), and once a 400 for every route: now the service decides,
    refusing it only if it reads that header (shared.kernel.http.headers). A client's own
    `hookhub-undecodable-headers` is not passed on: only the edge says which it left out."""
    answer = await _exchange(
        edge.base_url,
        b"GET /api/events HTTP/1.1\r\nHost: x\r\nX-Thing: caf\xe9\r\nX-Other: \xff\xfe\r\n"
        b"X-Fine: caf\xc3\xa9\r\nHookhub-Undecodable-Headers: authorization\r\n"
        b"Connection: close\r\n\r\n",
    )
    status, body, _ = _status_and_body(answer)
    assert status == 200, answer
    seen = orjson.loads(body)["headers"]
    assert "x-thing" not in seen and "x-other" not in seen
    assert seen["hookhub-undecodable-headers"] == "x-thing, x-other"
    assert seen["x-fine"].encode("latin-1") == b"caf\xc3\xa9"
    plain = await _exchange(
        edge.base_url,
        b"GET /api/events HTTP/1.1\r\nHost: x\r\nHookhub-Undecodable-Headers: authorization\r\n"
        b"Connection: close\r\n\r\n",
    )
    status, body, _ = _status_and_body(plain)
    assert status == 200 and "hookhub-undecodable-headers" not in orjson.loads(body)["headers"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/webhooks/../../metrics",
        "/api/integrations/../../docs",
        "/api/providers/../../readyz",
        "/api/providers/%2e%2e/%2E%2E/readyz",
        "/api/webhooks/.%2e/..%2Fmetrics",
        "/api/deliveries/./x",
        "/api/webhooks//../metrics",
        "/api/events//x",
    ],
)
async def test_a_path_with_dot_or_empty_segments_is_refused_before_routing(
    edge: RunningService, path: str
) -> None:
    """`/api/webhooks/../../metrics` was routed to the gateway by its prefix, and reached the
    gateway as `/metrics`: every service's internal pages, without a token."""
    answer = await _exchange(
        edge.base_url, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    status, body, _ = _status_and_body(answer)
    assert status == 400, answer
    assert orjson.loads(body)["error"]["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/api/deliveries/a..b", "/api/deliveries/...", "/api/events/"])
async def test_dots_within_a_segment_and_a_trailing_slash_still_pass(
    edge: RunningService, path: str
) -> None:
    answer = await edge.client.get(httpx.URL(edge.base_url + path))
    assert answer.status_code == 200, answer.text
    assert answer.json()["raw_path"] == path


async def test_a_proxied_answer_has_one_date_and_one_server_header(edge: RunningService) -> None:
    answer = await edge.client.get("/api/events")
    assert answer.status_code == 200
    assert len(answer.headers.get_list("date")) == 1
    assert len(answer.headers.get_list("server")) == 1


@pytest.mark.parametrize("expect", [b"", b"Expect: 100-continue\r\n"])
async def test_the_services_early_answer_is_relayed_without_waiting_for_the_body(
    edge: RunningService, expect: bytes
) -> None:
    """A body announced at 99999999999 bytes and never sent got no answer through the edge
    (it waited for the whole body before reading the service's 413); the service itself
    answers at once. The connection is closed after it: the body that would follow is not
    read. A client waiting for `100 Continue` gets the 413 instead."""
    answer = await _exchange(
        edge.base_url,
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nX-Refuse: 1\r\n"
        + expect
        + b"Content-Length: 99999999999\r\n\r\n",
    )
    status, body, lines = _status_and_body(answer)
    assert status == 413, answer
    assert body == b"too large"
    assert b"connection: close" in [line.lower() for line in lines]


async def test_a_body_that_stops_coming_is_answered_408_and_closed(
    impatient_edge: RunningService,
) -> None:
    answer = await _exchange(
        impatient_edge.base_url,
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nx",
    )
    status, body, _ = _status_and_body(answer)
    assert status == 408, answer
    assert orjson.loads(body)["error"]["code"] == "request_timeout"


async def test_a_request_head_that_stops_coming_is_answered_408_and_closed(
    impatient_edge: RunningService,
) -> None:
    answer = await _exchange(impatient_edge.base_url, b"GET /api/events HTTP/1.1\r\nHost: x\r\n")
    status, body, _ = _status_and_body(answer)
    assert status == 408, answer
    assert orjson.loads(body)["error"]["code"] == "request_timeout"


async def test_a_connection_that_sends_nothing_is_closed(impatient_edge: RunningService) -> None:
    assert await _exchange(impatient_edge.base_url, b"") == b""


async def test_a_head_dribbled_a_byte_at_a_time_is_cut_off(impatient_edge: RunningService) -> None:
    """Every byte restarts uvicorn's keep-alive timer: a head sent a byte at a time held the
    connection for as long as the client cared to send."""
    host, port = impatient_edge.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    answer = asyncio.ensure_future(reader.read())
    try:
        # At 10 ms a byte, a minute's worth: the edge closes long before the last.
        with contextlib.suppress(ConnectionError):
            for byte in b"GET /api/events HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 6000:
                if answer.done():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.01)
        assert answer.done()
        status, _, _ = _status_and_body(await answer)
        assert status == 408
    finally:
        writer.close()


def test_the_edge_lets_an_idle_connection_to_a_service_go_before_the_service_does() -> None:
    """A service closes a keep-alive connection idle for its `timeout_keep_alive`; the
    edge must drop its pooled ones sooner, or a request sent as the service closes one
    fails and is answered 503 (in one CI run, the portal's stack answered a subscription
    "sync is not reachable" while sync was up and had logged no request)."""
    service = ServiceServer.make_config(object(), "127.0.0.1", 0, shutdown_seconds=10)
    assert 0 < UPSTREAM_KEEP_ALIVE_SECONDS <= service.timeout_keep_alive - 1
