"""The Discord Gateway's publishing when Kafka stops answering mid-stream: batches are handed
to the producer without waiting for each acknowledgement, so a failed one must still reach
Kafka before anything dispatched after it, per channel, and the stored sequence must not
pass it before it is published. The real producer on a broker of the test's own (frozen
with SIGSTOP); the inbound pipeline's part (envelopes, the map) is played by `publish`."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any, cast

import orjson

from services.sync.gateway import Dispatch, Gateways, Held
from shared.kernel.envelopes import ProviderEvent
from shared.kernel.produce import Stream
from shared.providers.discord.gateway import DiscordGateway
from tests.shared.test_produce import _OwnBroker, _records
from tests.support import freeze

CHANNELS = ["c1", "c2", "c3"]


class _Pipeline:
    """Plays the inbound pipeline for the Gateway: each dispatch's `d` straight to the
    test's topic, keyed by channel, through the real producer. `fail_first_with` fails the
    first attempt of the batch holding that sequence number before anything is handed to
    the producer (as a MongoDB read of the pipeline failing would), after `fail_after` s."""

    def __init__(self, kafka: _OwnBroker, fail_first_with: int = 0, fail_after: float = 0) -> None:
        self.kafka = kafka
        self.attempts: list[tuple[list[int], bool]] = []  # (seqs, with a stream)
        self.streams: list[Stream] = []  # the streams handed in, in order
        self._fail = fail_first_with
        self._fail_after = fail_after

    async def publish(
        self,
        events: list[ProviderEvent],
        replayed: bool = False,
        *,
        stream: Stream | None = None,
        handed: Any = None,
    ) -> asyncio.Future[None]:
        seqs = [e.payload["seq"] for e in events]
        self.attempts.append((seqs, stream is not None))
        if stream is not None and stream not in self.streams:
            self.streams.append(stream)
        if self._fail in seqs:
            self._fail = 0
            await asyncio.sleep(self._fail_after)
            raise RuntimeError("the pipeline failed before publishing")
        records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
            (e.payload["channel_id"].encode(), orjson.dumps(e.payload), []) for e in events
        ]
        await self.kafka.producer.send_many(self.kafka.topic, records, stream=stream, handed=handed)
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        written.set_result(None)
        return written

    def gateways(self) -> Gateways:
        return Gateways(
            network="discord",
            gateway=DiscordGateway(cast(Any, None)),
            store=cast(Any, None),
            connections=cast(Any, None),
            mappings=cast(Any, None),
            publish=self.publish,
            catch_up=cast(Any, None),
            metrics=cast(Any, None),
            owner="test",
            poll_seconds=1.0,
        )


class _Dispatcher:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Dispatch] = asyncio.Queue()
        self.seq = 0

    def __call__(self, count: int) -> None:
        for _ in range(count):
            self.seq += 1
            channel = CHANNELS[self.seq % len(CHANNELS)]
            data = {"id": str(self.seq), "seq": self.seq, "channel_id": channel}
            self.queue.put_nowait(("MESSAGE_CREATE", data, self.seq, False))


async def _assert_in_order(kafka: _OwnBroker, count: int) -> None:
    """Every dispatch on the topic, and per channel the first of each in dispatch order."""
    values = [orjson.loads(r.value) for r in await _records(kafka.bootstrap, kafka.topic, count)]
    for channel in CHANNELS:
        first_seen: list[int] = []
        for value in values:
            if value["channel_id"] == channel and value["seq"] not in first_seen:
                first_seen.append(value["seq"])
        expected = [n for n in range(1, count + 1) if CHANNELS[n % len(CHANNELS)] == channel]
        assert first_seen == expected, (channel, first_seen)


async def test_a_failed_batch_is_published_before_any_later_one_and_the_sequence_waits(
    tmp_path: Path,
) -> None:
    async with _OwnBroker(tmp_path, timeout_seconds=1.5) as kafka:
        pipeline, dispatch = _Pipeline(kafka), _Dispatcher()
        held = Held("int_test")
        publishing = asyncio.create_task(
            pipeline.gateways()._publish(held, "ws_test", dispatch.queue)
        )
        try:
            dispatch(30)
            await _until(lambda: held.published_seq == 30)

            freeze(kafka.broker.process.pid)
            for _ in range(10):  # batches handed while Kafka does not answer
                dispatch(3)
                await asyncio.sleep(0.2)
            assert held.published_seq == 30, "the sequence passed an unacknowledged batch"
            # The first of them fails by the publish timeout, and its stream with it.
            await _until(lambda: any(s.failed for s in pipeline.streams), timeout=30)
            dispatch(6)  # after the failure: handed on only once the failed ones are out
            # An absence: time for them to be handed on wrongly (they must wait for the
            # failed ones, which cannot go out while Kafka is frozen; the order shows it).
            await asyncio.sleep(0.5)
            assert held.published_seq == 30
            kafka.broker.process.send_signal(signal.SIGCONT)

            await _until(lambda: held.published_seq == dispatch.seq, timeout=30)
            await asyncio.wait_for(dispatch.queue.join(), 5)
        finally:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)

        assert any(not streamed for _, streamed in pipeline.attempts), "nothing published again"
        await _assert_in_order(kafka, dispatch.seq)


async def test_a_batch_failing_before_the_producer_has_it_still_goes_out_first(
    tmp_path: Path,
) -> None:
    """The batch fails in the pipeline while later dispatches arrive: none of them is handed
    to the producer before the failed batch is published again."""
    async with _OwnBroker(tmp_path, timeout_seconds=1.5) as kafka:
        pipeline, dispatch = _Pipeline(kafka, fail_first_with=10, fail_after=0.2), _Dispatcher()
        held = Held("int_test")
        publishing = asyncio.create_task(
            pipeline.gateways()._publish(held, "ws_test", dispatch.queue)
        )
        try:
            for _ in range(20):
                dispatch(3)
                await asyncio.sleep(0.05)
            await _until(lambda: held.published_seq == dispatch.seq, timeout=30)
        finally:
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)

        assert [seqs for seqs, _ in pipeline.attempts].count(
            next(seqs for seqs, _ in pipeline.attempts if 10 in seqs)
        ) == 2, "the failed batch was not published again"
        await _assert_in_order(kafka, dispatch.seq)


async def _until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
