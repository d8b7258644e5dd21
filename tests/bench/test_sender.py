"""The delivery benchmark's loops (bench/sender.py): the bare-socket client reads the sink's
answers on kept-alive connections, and a burst with an attempt log writes one attempt per
request, shaped as the delivery service's, into a real MongoDB server."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bench.sender import (
    LOOP_ENDPOINT,
    BadResponse,
    LogTo,
    Reply,
    _RawPoster,
    burst,
    parse_head,
    read_response,
    webhook_request,
)
from bench.sink import Connection, Sink
from services.delivery.deliveries.endpoints import Attempt
from shared.kernel.embedded import free_port
from shared.kernel.mongo import Database
from tests.infra import Infra

SINK_OK = Reply(200, {"content-type": "text/plain", "content-length": "2"}, "ok")


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, str]]:
    """bench.sink's server on loopback, in this process."""
    state = Sink()
    port = free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(state), "127.0.0.1", port
    )
    try:
        yield state, f"http://127.0.0.1:{port}/hooks/bench"
    finally:
        server.close()
        await server.wait_closed()


async def test_the_raw_client_reads_the_sinks_answers_on_one_kept_alive_connection(
    sink: tuple[Sink, str],
) -> None:
    state, url = sink
    poster = _RawPoster(concurrency=1, timeout=5)
    try:
        replies = []
        for seq in range(3):
            body, headers = webhook_request("t", "raw", seq, 0.0, "whsec_" + "A" * 32, _NOW)
            replies.append(await poster.post(url, body, headers))
        assert len(poster._open) == 1  # the three went over one connection
    finally:
        await poster.close()
    assert replies == [SINK_OK] * 3
    assert state.seen == {0, 1, 2} and state.requests == 3


def test_a_head_gives_its_status_and_fields_by_lower_case_name_repeats_joined() -> None:
    head = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
    assert parse_head(head) == (429, {"retry-after": "5", "x-a": "1, 2"})
    for bad in (
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200\r\nX\r\n\r\n",
    ):
        with pytest.raises(BadResponse):
            parse_head(bad)


async def test_a_closing_answer_is_read_whole_and_a_chunked_one_refused() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"HTTP/1.1 410 Gone\r\nConnection: close\r\nContent-Length: 4\r\n\r\ngone")
    reply, keep = await read_response(reader)
    assert reply == Reply(410, {"connection": "close", "content-length": "4"}, "gone")
    assert keep is False
    reader = asyncio.StreamReader()
    reader.feed_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    with pytest.raises(BadResponse):
        await read_response(reader)


@pytest.mark.parametrize("client", ["raw", "httpx"])
async def test_a_logged_burst_writes_one_attempt_per_request_as_the_service_does(
    sink: tuple[Sink, str], db: Database, infra: Infra, client: str
) -> None:
    state, url = sink
    log_to = LogTo(infra.mongo_uri, db.name, "bench_attempts")
    result = await burst(url, 40, 4, 10.0, "t", "logged", client, log_to)
    assert result["logged"] == 40 and result["errors"] == 0
    assert result["logged_per_s"] > 0 and result["cpu_s"] > 0
    docs = await db["bench_attempts"].find().to_list()
    assert len(state.seen) == 40 and len(docs) == 40
    assert len({doc["delivery_id"] for doc in docs}) == 40
    for doc in docs:
        assert doc["_id"] == f"{doc['delivery_id']}:1"
        assert doc["endpoint_id"] == LOOP_ENDPOINT
        # What GET /api/deliveries/{id} makes of an attempt document reads it whole.
        attempt = Attempt.model_validate(doc)
        assert (attempt.status_code, attempt.response_body, attempt.error) == (200, "ok", None)
        assert attempt.response_headers == SINK_OK.headers


_NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


async def test_a_burst_to_many_endpoints_sends_each_event_to_each_path_and_logs_it_for_its_own(
    sink: tuple[Sink, str], db: Database, infra: Infra
) -> None:
    state, url = sink
    state.reset(expect=30, open_after=1, by_path=True)
    log_to = LogTo(infra.mongo_uri, db.name, "bench_attempts")
    result = await burst(url, 10, 4, 10.0, "t", "many", "raw", log_to, endpoints=3)
    assert result["logged"] == 30 and result["errors"] == 0
    paths = [b"/hooks/bench/0", b"/hooks/bench/1", b"/hooks/bench/2"]
    assert sorted(state.arrivals) == paths
    assert all(sorted(state.arrivals[path]) == list(range(10)) for path in paths)
    # One webhook-id an event, whichever endpoint it went to; a secret (a signature) a path.
    assert len(state.webhook_ids) == 10
    assert state.stats(0)["paths"] == {path.decode(): 10 for path in paths}
    assert all(len(state.path_ids[path]) == 10 for path in paths)
    docs = await db["bench_attempts"].find().to_list()
    by_endpoint = Counter(doc["endpoint_id"] for doc in docs)
    assert by_endpoint == {f"{LOOP_ENDPOINT}_{i}": 10 for i in range(3)}
    assert len({doc["_id"] for doc in docs}) == 30
