"""The delivery benchmark's sink (bench/sink.py) counts requests by `webhook-id`, and the kill
run (bench/delivery.py) judges lost events and duplicates from those counts."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from bench.delivery import FanoutTally, KillCount
from bench.sender import event_id
from bench.sink import Connection, Sink
from shared.kernel.embedded import free_port
from shared.kernel.ids import derived_id


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


class _Counted:
    """What bench.delivery's Sink client reads of a sink, from one in this process."""

    def __init__(self, state: Sink) -> None:
        self.state = state

    def stats(self, from_seq: int = 0) -> dict[str, Any]:
        return self.state.stats(from_seq)

    def webhook_ids(self, path: str) -> set[str]:
        return {i.decode() for i in self.state.path_ids.get(path.encode(), set())}


def _id(seq: int, phase: str = "p") -> bytes:
    """The webhook-id of the run's event `seq` of `phase`, as hookhub and the loops send it."""
    return derived_id(event_id("t", phase, seq), prefix="msg").encode()


def _tally(requests: list[tuple[bytes, int, bytes]], events: int = 2) -> FanoutTally:
    state = Sink()
    state.reset(expect=2 * events, open_after=1, by_path=True)
    for path, seq, webhook_id in requests:
        state.record(b'{"data":{"bench_seq":%d,"sent_at":0.0}}' % seq, webhook_id, path)
    return FanoutTally.at_sink(cast(Any, _Counted(state)), ["/e/0", "/e/1"], "t", "p", events)


def test_many_endpoints_count_a_delivery_only_at_its_own_path_and_once() -> None:
    whole = [(b"/e/0", 0, _id(0)), (b"/e/1", 0, _id(0)), (b"/e/0", 1, _id(1)), (b"/e/1", 1, _id(1))]
    clean = _tally([*whole, (b"/e/1", 1, _id(1))])  # a repeat: a duplicate, not a loss
    assert (clean.delivered, clean.expected, clean.error_kinds()) == (4, 4, {})
    assert "4/4 deliveries" in clean.verdict() and "nothing lost" in clean.verdict()
    # As many requests as deliveries, but one at another path and one an earlier phase's
    # event numbered as one of the run's: each an error, neither a delivery.
    wrong = _tally(
        [(b"/e/0", 0, _id(0)), (b"/e/9", 1, _id(1)), (b"/e/1", 0, _id(0, "check")), *whole[2:3]]
    )
    assert wrong.delivered == 2
    assert wrong.error_kinds() == {"missing": 2, "to_another_path": 1, "not_an_event_of_the_run": 1}
    assert "2/4 deliveries" in wrong.verdict() and "NOT CLEAN" in wrong.verdict()
    # Logged counts as well (hookhub): a delivery at its path but not logged is not one.
    clean.log = {"/e/0": {0, 1}, "/e/1": {0}}
    assert clean.delivered == 3
