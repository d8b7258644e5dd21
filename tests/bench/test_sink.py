"""The delivery benchmark's sink (bench/sink.py) counts requests by `webhook-id`, and the kill
run (bench/delivery.py) judges lost events and duplicates from those counts."""

from __future__ import annotations

import asyncio

from bench.delivery import KillCount
from bench.sink import Connection, Sink
from shared.kernel.embedded import free_port


def _request(seq: int, webhook_id: str | None, name: str = "webhook-id") -> bytes:
    body = b'{"data":{"bench_seq":%d,"sent_at":0.0}}' % seq
    head = f"POST /hooks/bench HTTP/1.1\r\nhost: sink\r\ncontent-length: {len(body)}\r\n"
    if webhook_id is not None:
        head += f"{name}: {webhook_id}\r\n"
    return head.encode() + b"\r\n" + body


async def test_requests_are_counted_by_webhook_id_as_sent_beyond_the_first_as_duplicates() -> None:
    state = Sink()
    state.reset(expect=4, open_after=1)
    port = free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: Connection(state), "127.0.0.1", port
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        requests = [
            _request(0, "msg_Aa1", name="Webhook-Id"),
            _request(0, "msg_Aa1"),  # its retry: the same id
            _request(1, "msg_aa1"),  # another id (ids are compared as sent, not lower-cased)
            _request(2, None),
        ]
        writer.write(b"".join(requests))  # pipelined on one kept-alive connection
        await writer.drain()
        for _ in requests:
            await reader.readuntil(b"\r\n\r\nok")
        writer.close()
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    stats = state.stats(0)
    assert state.webhook_ids == {b"msg_Aa1", b"msg_aa1"}
    assert (stats["webhook_ids"], stats["webhook_id_duplicates"], stats["unidentified"]) == (
        2,
        1,
        1,
    )
    assert (stats["distinct"], stats["duplicates"], stats["missing"]) == (3, 1, [3])


def test_the_kill_run_counts_lost_events_and_judges_duplicates_against_one_percent() -> None:
    clean = KillCount.of(1000, {"webhook_ids": 1000, "webhook_id_duplicates": 10})
    assert (clean.lost, clean.share) == (0, 0.01)
    assert "nothing lost, met" in clean.verdict() and "(1.00%), met" in clean.verdict()
    lossy = KillCount.of(1000, {"webhook_ids": 997, "webhook_id_duplicates": 11})
    assert lossy.lost == 3
    assert "3 LOST, NOT MET" in lossy.verdict() and "(1.10%), NOT MET" in lossy.verdict()


def test_by_path_an_event_counts_once_per_path_and_arrivals_keep_their_order() -> None:
    state = Sink()
    state.reset(expect=4, open_after=1, by_path=True)
    for path, seq in ((b"/a", 1), (b"/a", 0), (b"/b", 0), (b"/a", 1), (b"/b", 1)):
        state.record(b'{"data":{"bench_seq":%d,"sent_at":0.0}}' % seq, b"msg_" + path, path)
    assert (len(state.seen), state.duplicates, state.complete_at is not None) == (4, 1, True)
    assert state.arrivals == {b"/a": [1, 0], b"/b": [0, 1]}
    state.reset(expect=2, open_after=1)  # by event again: a second path's copy is a duplicate
    for path in (b"/a", b"/b"):
        state.record(b'{"data":{"bench_seq":7,"sent_at":0.0}}', b"msg_7", path)
    assert (len(state.seen), state.duplicates, state.arrivals) == (1, 1, {})
