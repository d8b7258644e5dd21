"""The acknowledged producer (`shared.kernel.produce`) on a real broker: order, acks, limits, outages.

The outage tests start their own embedded broker, to stop it without touching the session's.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnknownTopicOrPartitionError,
)
from aiokafka.protocol.produce import ProduceRequest

from shared.kernel.embedded import free_port, start_broker
from shared.kernel.kafka import ensure_topics
from shared.kernel.produce import HandOver, PartitionProducer, Stream, _Batch, _for_each_record
from shared.kernel.settings import ServiceSettings
from tests.infra import Infra
from tests.support import KafkaTap, freeze, make_settings, new_namespace, until


async def _topic(bootstrap: str, tmp_path: Path, partitions: int = 3, name: str = "") -> str:
    """A new topic (or `name` again, on a broker that lost it), with `partitions`."""
    infra = Infra("embedded", bootstrap, "mongodb://unused")
    settings = make_settings(
        ServiceSettings, infra, new_namespace(), tmp_path, kafka_partitions=partitions
    )
    name = name or settings.topic("produce-test")
    await ensure_topics(settings, [name])
    return name


class _OwnBroker:
    """An embedded broker of the test's own, to kill or freeze, with a producer on it and a
    one-partition topic."""

    def __init__(self, tmp_path: Path, timeout_seconds: float) -> None:
        self._logs = tmp_path
        self._port = free_port()
        self.bootstrap = f"127.0.0.1:{self._port}"
        self.broker = start_broker(self._port, tmp_path / "logs")
        self.producer = PartitionProducer(
            self.bootstrap, "test-producer", timeout_seconds=timeout_seconds, max_batch_bytes=65536
        )
        self.topic = ""

    async def __aenter__(self) -> _OwnBroker:
        self.topic = await _topic(self.bootstrap, self._logs, partitions=1)
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.broker.process.send_signal(signal.SIGCONT)  # if a test froze it
        await self.producer.stop(0)
        self.broker.stop()

    async def restart(self) -> None:
        """A new broker on the same port, with the same topic (the old one kept it in memory)."""
        self.broker = start_broker(self._port, self._logs / "logs")
        await _topic(self.bootstrap, self._logs, partitions=1, name=self.topic)

    async def send_once_it_answers(self, value: bytes) -> None:
        for _ in range(50):
            try:
                await self.producer.send(self.topic, b"k", value, [])
                return
            except KafkaError:  # tansu answers some produce requests while it starts up
                await asyncio.sleep(0.2)
        pytest.fail("the producer did not recover once the broker answered again")

    async def values_through(self, last: bytes) -> list[bytes]:
        """What the topic holds once it holds `last` (an acknowledged send: it is there to
        read, however long the read takes), and a moment later, any more."""
        records = await _records(
            self.bootstrap, self.topic, lambda held: last in (r.value for r in held)
        )
        return [record.value for record in records]


async def _records(
    bootstrap: str, topic: str, count: int | Callable[[list[Any]], bool]
) -> list[Any]:
    """What the topic holds once it holds `count` records, or once `count(records)` holds
    (and a moment later, any more)."""
    enough = count if callable(count) else (lambda held: len(held) >= count)
    async with KafkaTap(bootstrap, topic) as tap:
        deadline = time.monotonic() + 30
        while not enough(tap.records) and time.monotonic() < deadline:
            await tap.poll()
        await tap.poll(0.5)
    return tap.records


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[PartitionProducer]:
    made = PartitionProducer(
        infra.kafka_bootstrap, "test-producer", timeout_seconds=5.0, max_batch_bytes=64 * 1024
    )
    await made.start()
    yield made
    await made.stop(5.0)


async def test_concurrent_sends_are_all_acknowledged_and_keep_each_keys_order(
    infra: Infra, producer: PartitionProducer, tmp_path: Path
) -> None:
    topic = await _topic(infra.kafka_bootstrap, tmp_path)
    keys = [b"integration-a", b"integration-b", b"integration-c", b"integration-d"]
    await producer.send(topic, b"warm-up", b"metadata known from here on", [])
    # 2,000 records of 1 KiB, interleaved across keys and sent at once: they fill many
    # batches per partition while earlier ones are in flight.
    sends = [
        producer.send(topic, key, b"%s:%05d:" % (key, n) + b"x" * 1000, [("hookhub-id", b"%d" % n)])
        for n in range(500)
        for key in keys
    ]
    await asyncio.gather(*sends)

    records = await _records(infra.kafka_bootstrap, topic, 2001)
    assert len(records) == 2001
    for key in keys:
        mine = [record for record in records if record.key == key]
        assert [int(record.value.split(b":")[1]) for record in mine] == list(range(500))
        assert len({record.partition for record in mine}) == 1
        assert [dict(record.headers)["hookhub-id"] for record in mine] == [
            b"%d" % n for n in range(500)
        ]


async def test_send_many_hands_records_on_in_order_and_returns_once_all_are_acknowledged(
    infra: Infra, producer: PartitionProducer, tmp_path: Path
) -> None:
    """An import's batch: 1,500 records of 1 KiB over three keys in one call fill many
    batches per partition; each key's order is the list's."""
    topic = await _topic(infra.kafka_bootstrap, tmp_path)
    keys = [b"channel-a", b"channel-b", b"channel-c"]
    records = [
        (key, b"%s:%05d:" % (key, n) + b"x" * 1000, [("hookhub-id", b"%s-%d" % (key, n))])
        for n in range(500)
        for key in keys
    ]
    await producer.send_many(topic, records)

    written = await _records(infra.kafka_bootstrap, topic, 1500)
    assert len(written) == 1500
    for key in keys:
        mine = [record for record in written if record.key == key]
        assert [int(record.value.split(b":")[1]) for record in mine] == list(range(500))


async def test_batches_of_several_partitions_ready_together_go_out_in_one_request(
    infra: Infra, producer: PartitionProducer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As aiokafka's sender does: one produce request per broker for what is ready at once,
    not one per partition (a burst over six partitions cost six writes and six requests)."""
    topic = await _topic(infra.kafka_bootstrap, tmp_path, partitions=6)
    await producer.send(topic, b"warm-up", b"metadata known from here on", [])
    requests: list[list[tuple[str, list[int]]]] = []
    client = producer._client
    send = client.send

    async def counted(node_id: int, request: Any, **kwargs: Any) -> Any:
        if isinstance(request, ProduceRequest):
            requests.append(
                [
                    (name, sorted(partition for partition, _ in data))
                    for name, data in request._topics
                ]
            )
        return await send(node_id, request, **kwargs)

    monkeypatch.setattr(client, "send", counted)
    keys = [b"channel-%d" % n for n in range(60)]
    await producer.send_many(topic, [(key, b"hello " + key, []) for key in keys])

    partitions = {producer._partition_for(topic, key, set(range(6))) for key in keys}
    assert len(partitions) == 6
    assert requests == [[(topic, sorted(partitions))]]
    written = await _records(infra.kafka_bootstrap, topic, 61)
    assert sorted(record.value for record in written if record.key != b"warm-up") == sorted(
        b"hello " + key for key in keys
    )


async def test_send_many_refuses_a_record_over_the_limit_after_sending_those_before_it(
    infra: Infra, producer: PartitionProducer, tmp_path: Path
) -> None:
    topic = await _topic(infra.kafka_bootstrap, tmp_path, partitions=1)
    records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
        (b"k", b"before-%d" % n, []) for n in range(3)
    ]
    with pytest.raises(MessageSizeTooLargeError):
        await producer.send_many(topic, [*records, (b"k", b"y" * 70_000, []), (b"k", b"after", [])])
    await producer.send_many(topic, [(b"k", b"next", [])])  # the producer goes on

    written = await _records(infra.kafka_bootstrap, topic, 4)
    assert [record.value for record in written] == [b"before-0", b"before-1", b"before-2", b"next"]


async def test_a_record_larger_than_a_request_is_refused_alone(
    infra: Infra, producer: PartitionProducer, tmp_path: Path
) -> None:
    topic = await _topic(infra.kafka_bootstrap, tmp_path, partitions=1)
    small = [producer.send(topic, b"k", b"small-%d" % n, []) for n in range(5)]
    results = await asyncio.gather(
        *small[:2],
        producer.send(topic, b"k", b"y" * 70_000, []),
        *small[2:],
        return_exceptions=True,
    )
    assert isinstance(results[2], MessageSizeTooLargeError)
    assert [r for n, r in enumerate(results) if n != 2] == [None] * 5

    records = await _records(infra.kafka_bootstrap, topic, 5)
    assert [record.value for record in records] == [b"small-%d" % n for n in range(5)]


async def test_a_topic_that_does_not_exist_is_not_created_and_fails_in_time(
    infra: Infra,
) -> None:
    made = PartitionProducer(
        infra.kafka_bootstrap, "test-producer", timeout_seconds=1.0, max_batch_bytes=65536
    )
    topic = f"never-created-{new_namespace()}"
    await made.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await made.send(topic, b"k", b"v", [])
    finally:
        await made.stop(1.0)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_while_kafka_is_away_sends_fail_and_are_never_sent_later(tmp_path: Path) -> None:
    async with _OwnBroker(tmp_path, timeout_seconds=1.5) as kafka:
        await kafka.producer.send(kafka.topic, b"k", b"before", [])

        kafka.broker.kill()
        results = await asyncio.gather(
            *(kafka.producer.send(kafka.topic, b"k", b"while-away-%d" % n, []) for n in range(20)),
            return_exceptions=True,
        )
        assert all(isinstance(r, KafkaTimeoutError) for r in results), results
        # Failed by the publish timeout, not left to the client's own retries.
        assert {str(r) for r in results} == {"KafkaTimeoutError: not acknowledged within 1.5 s"}

        await kafka.restart()  # the same topic, empty
        await kafka.send_once_it_answers(b"after")
        # An absence: room for a late send of a failed batch, were there one.
        await asyncio.sleep(2)
        values = await kafka.values_through(b"after")
        assert b"after" in values
        assert not [value for value in values if value.startswith(b"while-away")]


async def test_a_frozen_broker_fails_sends_in_time_and_nothing_is_sent_twice(
    tmp_path: Path,
) -> None:
    """The broker stops answering (SIGSTOP) with the connection open: a request in flight
    and the batch filling behind it both fail by the publish timeout, not later, and the
    producer recovers once the broker runs again. Requests that went out before their
    deadline may still be appended then (no Kafka producer can know); none is sent twice."""
    async with _OwnBroker(tmp_path, timeout_seconds=1.5) as kafka:
        await kafka.producer.send(kafka.topic, b"k", b"before", [])

        freeze(kafka.broker.process.pid)
        stuck = asyncio.ensure_future(kafka.producer.send(kafka.topic, b"k", b"stuck", []))
        await until(lambda: kafka.producer.requests_out, what="stuck on the wire")
        behind = [
            asyncio.ensure_future(kafka.producer.send(kafka.topic, b"k", b"behind-%d" % n, []))
            for n in range(3)
        ]
        results = await asyncio.gather(stuck, *behind, return_exceptions=True)
        assert all(isinstance(r, KafkaTimeoutError) for r in results), results
        assert {str(r) for r in results} == {"KafkaTimeoutError: not acknowledged within 1.5 s"}
        kafka.broker.process.send_signal(signal.SIGCONT)

        await kafka.send_once_it_answers(b"after")
        values = await kafka.values_through(b"after")
        # "stuck" may land once the broker runs again (it was on the wire), and whether
        # before or after "after" is the broker's business: two connections.
        assert values[0] == b"before" and b"after" in values
        assert len(values) == len(set(values)), values


async def test_an_ordered_stream_sends_nothing_after_one_of_its_sends_failed(
    tmp_path: Path,
) -> None:
    """A caller that does not wait for each acknowledgement (the Discord Gateway): once one
    of its sends fails, its send queued behind fails with it (at that moment, not at its own
    deadline), and its next send raises at once, even with the broker back: neither is
    ever sent, so the caller's retry of the failed one cannot come after them."""
    async with _OwnBroker(tmp_path, timeout_seconds=1.5) as kafka:
        await kafka.producer.send(kafka.topic, b"k", b"before", [])
        stream = Stream()

        freeze(kafka.broker.process.pid)
        first = asyncio.ensure_future(
            kafka.producer.send_many(kafka.topic, [(b"k", b"first", [])], stream=stream)
        )
        await until(lambda: kafka.producer.requests_out, what="first on the wire")
        handed: list[float] = []
        behind = asyncio.ensure_future(
            kafka.producer.send_many(
                kafka.topic,
                [(b"k", b"behind", [])],
                stream=stream,
                handed=lambda: handed.append(time.monotonic()),
            )
        )
        with pytest.raises(KafkaTimeoutError) as first_failed:
            await first
        with pytest.raises(KafkaTimeoutError) as behind_failed:
            await behind
        # It failed with the first (its error), not by a timeout of its own.
        assert behind_failed.value is first_failed.value
        assert handed and stream.failed is first_failed.value
        kafka.broker.process.send_signal(signal.SIGCONT)

        with pytest.raises(KafkaTimeoutError):
            await kafka.producer.send_many(kafka.topic, [(b"k", b"later", [])], stream=stream)
        await kafka.send_once_it_answers(b"after")
        await asyncio.sleep(1)  # an absence: room for "behind" or "later" to land after all
        values = await kafka.values_through(b"after")
        assert values[0] == b"before" and b"after" in values
        assert b"behind" not in values and b"later" not in values, values


async def test_a_hand_over_ends_before_the_acknowledgement_and_a_failure_starts_a_new_stream(
    tmp_path: Path,
) -> None:
    """A pipelined consumer's publishes (HandOver): each returns once its records are handed
    to the producer, its acknowledgement still to come (none can: the broker is frozen);
    once the first fails, the one behind it fails with it, the failure is told once, and
    the next publish goes out on a new stream."""
    told: list[int] = []
    hand_over = HandOver(lambda: told.append(1))

    def send(value: bytes) -> Any:
        return lambda stream, handed: kafka.producer.send_many(
            kafka.topic, [(b"k", value, [])], stream=stream, handed=handed
        )

    async with _OwnBroker(tmp_path, timeout_seconds=3.0) as kafka:
        await kafka.producer.send(kafka.topic, b"k", b"before", [])
        old = hand_over.stream
        freeze(kafka.broker.process.pid)
        first = await hand_over(send(b"first"))
        behind = await hand_over(send(b"behind"))
        assert not first.done() and not behind.done()
        with pytest.raises(KafkaTimeoutError):
            await first
        with pytest.raises(KafkaTimeoutError):
            await behind
        assert told == [1] and old.failed is not None and hand_over.stream is not old
        kafka.broker.process.send_signal(signal.SIGCONT)

        await kafka.send_once_it_answers(b"after")
        await (await hand_over(send(b"again")))
        values = await kafka.values_through(b"again")
        assert b"behind" not in values and told == [1], values


async def test_stopping_fails_the_sends_still_waiting(tmp_path: Path) -> None:
    async with _OwnBroker(tmp_path, timeout_seconds=30) as kafka:
        kafka.broker.kill()
        handed: list[int] = []
        waiting = [
            asyncio.ensure_future(
                kafka.producer.send_many(
                    kafka.topic, [(b"k", b"v", [])], handed=lambda: handed.append(1)
                )
            )
            for _ in range(3)
        ]
        await until(lambda: len(handed) == 3, what="the sends in their batch")
        # Held by the dead broker, with 30 s to go before their deadline.
        assert not any(task.done() for task in waiting)
        await kafka.producer.stop(0.2)
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, KafkaConnectionError) for r in results), results
        with pytest.raises(KafkaConnectionError):
            await kafka.producer.send(kafka.topic, b"k", b"v", [])


def test_a_size_refusal_of_a_batch_of_several_records_is_not_pinned_on_each() -> None:
    """Kafka refusing a batch as too large (its limit below ours) says nothing about any one
    record of several: their publishers must not be told "too large, never retry"."""
    alone = _Batch(records=None, deadline=0.0, count=1)
    several = _Batch(records=None, deadline=0.0, count=3)
    for refusal in (MessageSizeTooLargeError(), RecordListTooLargeError()):
        assert _for_each_record(refusal, alone) is refusal
        passed_on = _for_each_record(refusal, several)
        assert isinstance(passed_on, KafkaError)
        assert not isinstance(passed_on, (MessageSizeTooLargeError, RecordListTooLargeError))
    timeout = KafkaTimeoutError("late")
    assert _for_each_record(timeout, several) is timeout
    assert _for_each_record(None, several) is None
