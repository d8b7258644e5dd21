"""Envelope consumers on a real broker and database: once per id, dead letters, retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from shared.kernel import consumers
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.idempotency import ClaimBusy, Outcome, ProcessedLedger
from shared.kernel.ids import new_id, utcnow
from shared.kernel.kafka import DEAD_LETTER_TOPIC, subscribers_joined
from shared.kernel.runtime import Runtime
from shared.kernel.settings import ServiceSettings
from tests.infra import Infra
from tests.support import KafkaTap, make_settings, new_namespace


@pytest.fixture
async def runtime(infra: Infra, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    made = Runtime(settings=settings, service="probe")
    yield made
    await made.stop()


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _until_claimed(ledger: ProcessedLedger, envelope_id: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert await ledger.claim(envelope_id) is True
            return
        except ClaimBusy:
            assert time.monotonic() < deadline, "the claim was never taken over"
            await asyncio.sleep(0.05)


def _event(event_id: str, channel: str = "ch_1") -> ChatEvent:
    return ChatEvent(
        id=event_id,
        type="message.created",
        workspace_id="ws_1",
        occurred_at=utcnow(),
        data={"channel_id": channel, "text": "hi"},
    )


async def test_a_redelivered_envelope_has_one_effect_and_invalid_ones_are_dead_lettered(
    runtime: Runtime,
) -> None:
    effects: list[str] = []
    fail_once = {"evt_flaky"}

    async def handler(event: ChatEvent) -> None:
        if event.id in fail_once:
            fail_once.discard(event.id)
            raise RuntimeError("transient")
        effects.append(event.id)

    runtime.consume(Topic.CHAT_EVENTS, "probe", ChatEvent, handler)
    await runtime.start([], [])
    await _until(lambda: runtime.kafka_started and runtime.indexes_ready)
    await _until(lambda: subscribers_joined(runtime.broker)[0])

    first, second = _event(new_id("evt")), _event(new_id("evt"))
    for envelope in (first, first, second, _event("evt_flaky"), first):
        await runtime.publisher.publish(Topic.CHAT_EVENTS, envelope)
    await runtime.broker.publish(
        b'{"id": "evt_bad", "type": "NOT A TYPE"}', runtime.settings.topic(Topic.CHAT_EVENTS)
    )

    # A marker behind them in their partition: once it is handled, so is every copy of them.
    marker = _event(new_id("evt"))
    await runtime.publisher.publish(Topic.CHAT_EVENTS, marker)
    await _until(lambda: marker.id in effects)
    assert sorted(effects) == sorted([first.id, second.id, "evt_flaky", marker.id])

    async with KafkaTap.of(runtime.settings, DEAD_LETTER_TOPIC) as tap:
        await tap.wait_for(lambda _: True)
    [dead] = tap.records
    headers = {key: value.decode() for key, value in dead.headers}
    assert dead.value == b'{"id": "evt_bad", "type": "NOT A TYPE"}'
    assert "type" in headers["hookhub-reason"]
    assert headers["hookhub-source-topic"] == runtime.settings.topic(Topic.CHAT_EVENTS)
    assert headers["hookhub-consumer"] == "probe.probe"


async def test_ledger_takes_over_a_claim_whose_worker_died(runtime: Runtime) -> None:
    await _until(lambda: True)
    collection = runtime.db["processed_envelopes"]
    short = ProcessedLedger(collection, "c1", lease=timedelta(milliseconds=200))
    assert await short.claim("e1") is True
    with pytest.raises(ClaimBusy):
        await short.claim("e1")
    # The first worker "died" holding the lease: taken over once it ran out.
    await _until_claimed(short, "e1")
    await short.done("e1")
    assert await short.claim("e1") is False

    other_consumer = ProcessedLedger(collection, "c2")
    assert await other_consumer.claim("e1") is True, "ledgers are per consumer"

    ran: list[int] = []

    async def effect() -> None:
        ran.append(1)

    assert await other_consumer.once("e2", effect) is Outcome.PROCESSED
    assert await other_consumer.once("e2", effect) is Outcome.DUPLICATE
    assert ran == [1]


async def test_concurrent_publishes_keep_each_keys_order_and_kafkas_partitioning(
    runtime: Runtime,
) -> None:
    from aiokafka.partitioner import DefaultPartitioner

    await runtime.start([], [])
    await _until(lambda: runtime.kafka_started)
    channels = [f"ch_{n}" for n in range(8)]
    sent = [_event(new_id("evt"), channels[n % len(channels)]) for n in range(400)]
    # All at once: they share batches, and each channel's events must keep this order.
    await asyncio.gather(*(runtime.publisher.publish(Topic.CHAT_EVENTS, e) for e in sent))

    async with KafkaTap.of(runtime.settings, Topic.CHAT_EVENTS) as tap:
        await tap.wait_for(lambda _: True, count=len(sent))
    partitions = list(range(runtime.settings.kafka_partitions))
    for channel in channels:
        expected = [e.id for e in sent if e.data["channel_id"] == channel]
        records = [r for r in tap.records if r.key == channel.encode()]
        assert [dict(r.headers)["hookhub-id"].decode() for r in records] == expected
        # Where the Java client and FastStream's aiokafka producers put the same key.
        assert {r.partition for r in records} == {
            DefaultPartitioner()(channel.encode(), partitions, partitions)
        }


async def test_an_invalid_envelope_too_large_to_dead_letter_whole_does_not_stop_the_partition(
    infra: Infra, tmp_path: Path
) -> None:
    """Near the size limit, the reason headers push the dead letter over it: it goes without
    the value, and the partition moves on (before, the consumer retried it for ever)."""
    settings = make_settings(
        ServiceSettings, infra, new_namespace(), tmp_path, kafka_max_message_bytes=8 * 1024
    )
    runtime = Runtime(settings=settings, service="probe")
    effects: list[str] = []

    async def handler(event: ChatEvent) -> None:
        effects.append(event.id)

    runtime.consume(Topic.CHAT_EVENTS, "probe", ChatEvent, handler)
    try:
        await runtime.start([], [])
        await _until(lambda: runtime.kafka_started and runtime.indexes_ready)
        await _until(lambda: subscribers_joined(runtime.broker)[0])
        bad = b'{"id": "evt_big_bad", "type": "NOT A TYPE", "pad": "' + b"x" * 7000 + b'"}'
        await runtime.broker.publish(bad, settings.topic(Topic.CHAT_EVENTS), key=b"ch_1")
        after = _event(new_id("evt"))
        await runtime.publisher.publish(Topic.CHAT_EVENTS, after)
        await _until(lambda: after.id in effects)
        async with KafkaTap.of(settings, DEAD_LETTER_TOPIC) as tap:
            for _ in range(40):  # not tap.wait_for: it parses values, and this one is empty
                if await tap.poll():
                    break
        [record] = tap.records
        headers = {key: value.decode() for key, value in record.headers}
        assert record.value == b""
        assert headers["hookhub-value-omitted"].startswith(f"{len(bad)} bytes")
        assert "type" in headers["hookhub-reason"]
    finally:
        await runtime.stop()


# -- pipelined batches (shared.kernel.consumers.consume_pipelined) ---------------------------------


async def _committed(runtime: Runtime, purpose: str) -> int:
    """The group's committed offsets on the chat events topic, summed over partitions (read
    by a consumer of the group that subscribes to nothing, so it causes no rebalance)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    settings = runtime.settings
    topic = settings.topic(Topic.CHAT_EVENTS)
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group(runtime.service, purpose),
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        partitions = reader.partitions_for_topic(topic) or set()
        offsets = [await reader.committed(TopicPartition(topic, p)) for p in partitions]
    finally:
        await reader.stop()
    return sum(offset for offset in offsets if offset)


class _Gated:
    """A two-part handler: the first part notes the batch's ids, the second waits for
    `release(id)` of every id in it (and fails instead for ids in `fail`, noting them in
    `failed`)."""

    def __init__(self) -> None:
        self.handled: list[list[str]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()
        self.failed: list[str] = []

    def gate(self, event_id: str) -> asyncio.Event:
        return self.gates.setdefault(event_id, asyncio.Event())

    def release(self, *event_ids: str) -> None:
        for event_id in event_ids:
            self.gate(event_id).set()

    async def __call__(self, events: list[ChatEvent]) -> asyncio.Future[None]:
        ids = [event.id for event in events]
        self.handled.append(ids)

        async def rest() -> None:
            for event_id in ids:
                if event_id in self.fail:
                    self.fail.discard(event_id)
                    self.failed.append(event_id)
                    raise RuntimeError(f"the second part of {event_id} failed")
                await self.gate(event_id).wait()

        return asyncio.ensure_future(rest())

    def seen(self, event_id: str) -> int:
        return sum(batch.count(event_id) for batch in self.handled)


async def _piped(runtime: Runtime, max_pending: int = 5_000) -> _Gated:
    """Starts `runtime` with a pipelined consumer `piped` running a `_Gated` handler."""
    handler = _Gated()
    consumers.consume_pipelined(
        runtime, Topic.CHAT_EVENTS, "piped", ChatEvent, handler, max_pending=max_pending
    )
    await runtime.start([], [])
    await _until(lambda: runtime.kafka_started and subscribers_joined(runtime.broker)[0])
    return handler


async def test_pipelined_batches_go_on_while_earlier_ones_finish_and_commit_in_order(
    runtime: Runtime,
) -> None:
    handler = await _piped(runtime)

    first, second = _event(new_id("evt")), _event(new_id("evt"))  # one channel: one partition
    await runtime.publisher.publish(Topic.CHAT_EVENTS, first)
    await _until(lambda: handler.seen(first.id) == 1)
    await runtime.publisher.publish(Topic.CHAT_EVENTS, second)
    # The second batch is handled while the first's second part still waits.
    await _until(lambda: handler.seen(second.id) == 1)
    assert await _committed(runtime, "piped") == 0

    handler.release(second.id)  # the later batch done first: nothing may be committed yet
    # (An absence: no event says "the commit that must not happen did not"; time for it.)
    await asyncio.sleep(0.5)
    assert await _committed(runtime, "piped") == 0

    handler.release(first.id)  # now both, in order, with no further batch to prompt it
    await _until_async(lambda: _committed(runtime, "piped"), 2)
    assert handler.seen(first.id) == 1 and handler.seen(second.id) == 1


async def test_an_idle_batch_consumer_waits_for_records_instead_of_polling_for_them(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    getmany = AIOKafkaConsumer.getmany

    async def counted(self: AIOKafkaConsumer, *partitions: Any, **options: Any) -> Any:
        asked.append(options.get("timeout_ms", 0))
        return await getmany(self, *partitions, **options)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", counted)
    handler = await _piped(runtime)
    first = _event(new_id("evt"))
    await runtime.publisher.publish(Topic.CHAT_EVENTS, first)
    await _until(lambda: handler.seen(first.id) == 1)
    before = len(asked)
    # Idle for a while: FastStream's own loop asked every 10 ms (5 waiting, 5 asleep).
    await asyncio.sleep(1.5)
    assert len(asked) - before <= 3, f"{len(asked) - before} asks in 1.5 s of idleness"
    assert set(asked) == {consumers.IDLE_WAIT_MS}
    second = _event(new_id("evt"))
    await runtime.publisher.publish(Topic.CHAT_EVENTS, second)
    await _until(lambda: handler.seen(second.id) == 1)


async def test_pipelined_batches_wait_while_those_pending_hold_max_pending_records(
    runtime: Runtime,
) -> None:
    handler = await _piped(runtime, max_pending=2)
    events = [_event(new_id("evt")) for _ in range(3)]
    await runtime.publisher.publish(Topic.CHAT_EVENTS, events[0])  # one batch each
    await _until(lambda: handler.seen(events[0].id) == 1)
    await runtime.publisher.publish(Topic.CHAT_EVENTS, events[1])
    await _until(lambda: handler.seen(events[1].id) == 1)
    await runtime.publisher.publish(Topic.CHAT_EVENTS, events[2])
    await asyncio.sleep(0.5)  # an absence: time for a batch that must not come to come
    assert handler.seen(events[2].id) == 0  # two records pending: no room
    handler.release(events[0].id)
    await _until(lambda: handler.seen(events[2].id) == 1)
    handler.release(events[1].id, events[2].id)
    await _until_async(lambda: _committed(runtime, "piped"), 3)


async def test_a_failed_second_part_brings_its_batch_and_those_after_it_again_in_order(
    runtime: Runtime,
) -> None:
    handler = await _piped(runtime)

    first, second, third = (_event(new_id("evt")) for _ in range(3))
    handler.fail.add(first.id)
    handler.release(first.id, second.id, third.id)
    await runtime.publisher.publish(Topic.CHAT_EVENTS, first)
    await _until(lambda: first.id in handler.failed)  # its second part failed
    for event in (second, third):
        await runtime.publisher.publish(Topic.CHAT_EVENTS, event)

    await _until(lambda: handler.seen(third.id) >= 1 and handler.seen(first.id) >= 2)
    await _until_async(lambda: _committed(runtime, "piped"), 3)
    order = [event_id for batch in handler.handled for event_id in batch]
    # After the failure the first comes again before anything after it is handled.
    assert order[1] == first.id, order
    retried = order[1:]
    assert retried.index(first.id) < retried.index(second.id) < retried.index(third.id)


async def test_the_stop_waits_for_pipelined_batches_and_commits_them(
    infra: Infra, tmp_path: Path
) -> None:
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    runtime = Runtime(settings=settings, service="probe")
    handler = await _piped(runtime)
    event = _event(new_id("evt"))
    await runtime.publisher.publish(Topic.CHAT_EVENTS, event)
    await _until(lambda: handler.seen(event.id) == 1)

    asyncio.get_running_loop().call_later(0.3, handler.release, event.id)
    await runtime.stop()

    probe = Runtime(settings=settings, service="probe")  # to read the group's offsets
    try:
        assert await _committed(probe, "piped") == 1
    finally:
        await probe.stop()


async def _until_async(read: Callable[[], Any], wanted: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := await read()) != wanted:
        assert time.monotonic() < deadline, f"committed {got}, wanted {wanted}"
        await asyncio.sleep(0.1)


# -- envelopes that fail on their own (poison) ----------------------------------------------


async def _dead_letters(runtime: Runtime, count: int) -> list[Any]:
    async with KafkaTap.of(runtime.settings, DEAD_LETTER_TOPIC) as tap:
        await tap.wait_for(lambda _: len(tap.records) >= count)
    return tap.records


def _dead_lettered(runtime: Runtime, consumer: str) -> float:
    return (
        runtime.registry.get_sample_value(
            "hookhub_consumer_dead_letters_total", {"consumer": consumer, "reason": "failed"}
        )
        or 0.0
    )


async def _published_ahead(runtime: Runtime, events: list[ChatEvent]) -> None:
    """`events` on the chat events topic before `runtime` starts (so its consumer gets them
    in one batch)."""
    from aiokafka import AIOKafkaProducer

    from shared.kernel.kafka import ensure_topics

    settings = runtime.settings
    await ensure_topics(settings, [settings.topic(Topic.CHAT_EVENTS)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                settings.topic(Topic.CHAT_EVENTS), event.to_kafka(), key=event.partition_key()
            )
    finally:
        await producer.stop()


class _Poisoned:
    """A batch handler that fails, as a value MongoDB cannot hold would, on every batch
    holding an envelope whose data has `poison`, and notes what it handled."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.calls = 0

    async def __call__(self, events: list[ChatEvent]) -> None:
        self.calls += 1
        if any(event.data.get("poison") for event in events):
            raise OverflowError("MongoDB can only handle up to 8-byte ints")
        self.done.extend(event.id for event in events)


async def test_an_envelope_that_fails_alone_is_dead_lettered_and_the_rest_of_its_batch_goes_on(
    runtime: Runtime,
) -> None:
    handler = _Poisoned()
    runtime.consume_batch(Topic.CHAT_EVENTS, "fanout", ChatEvent, handler)
    # Published before the consumer starts: one batch, in one partition, poison in the middle.
    good = [_event(new_id("evt")) for _ in range(5)]
    poison = _event(new_id("evt"))
    poison.data["poison"] = True
    await _published_ahead(runtime, [*good[:2], poison, *good[2:]])
    await runtime.start([], [])

    await _until(lambda: len(handler.done) >= len(good))
    assert handler.done == [event.id for event in good]  # in their order, each once
    [dead] = await _dead_letters(runtime, 1)
    headers = {key: value.decode() for key, value in dead.headers}
    assert ChatEvent.model_validate_json(dead.value).id == poison.id
    assert headers["hookhub-reason"].startswith("OverflowError: MongoDB can only handle")
    assert headers["hookhub-consumer"] == "probe.fanout"
    await _until(lambda: _dead_lettered(runtime, "probe.fanout") == 1)

    later = _event(new_id("evt"))  # and the partition goes on
    await runtime.publisher.publish(Topic.CHAT_EVENTS, later)
    await _until(lambda: later.id in handler.done)


async def test_mongodb_or_kafka_away_is_waited_for_and_never_dead_letters_an_envelope(
    runtime: Runtime,
) -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    outages = consumers.POISON_TRIES + 2
    done: list[str] = []

    async def handler(events: list[ChatEvent]) -> None:
        nonlocal outages
        if outages:
            outages -= 1
            raise ServerSelectionTimeoutError("No servers found yet")
        done.extend(event.id for event in events)

    runtime.consume_batch(Topic.CHAT_EVENTS, "fanout", ChatEvent, handler)
    event = _event(new_id("evt"))
    await _published_ahead(runtime, [event])
    await runtime.start([], [])
    await _until(lambda: done == [event.id])
    assert _dead_lettered(runtime, "probe.fanout") == 0
    assert outages == 0


async def test_a_pipelined_envelope_whose_second_part_fails_alone_is_dead_lettered(
    runtime: Runtime,
) -> None:
    handler = await _piped(runtime)
    poison = _event(new_id("evt"))
    good = [_event(new_id("evt")) for _ in range(3)]
    # Its second part fails every time, as a map write MongoDB refuses would.
    failing = _Always({poison.id})
    handler.fail = failing
    handler.release(*(event.id for event in good))
    for envelope in (good[0], poison, *good[1:]):
        await runtime.publisher.publish(Topic.CHAT_EVENTS, envelope)
    await _until(lambda: failing.failures >= 1)
    # A failed second part is found when the consumer gets its next batch.
    later = _event(new_id("evt"))
    handler.release(later.id)
    await runtime.publisher.publish(Topic.CHAT_EVENTS, later)

    await _until_async(lambda: _committed(runtime, "piped"), 5)
    [dead] = await _dead_letters(runtime, 1)
    assert ChatEvent.model_validate_json(dead.value).id == poison.id
    assert _dead_lettered(runtime, "probe.piped") == 1
    # Its batch's tries, then its own (halving finds it), then given up: no more.
    tries = failing.failures
    assert tries > consumers.POISON_TRIES
    await runtime.publisher.publish(Topic.CHAT_EVENTS, _released(handler))
    await _until_async(lambda: _committed(runtime, "piped"), 6)
    assert failing.failures == tries


def _released(handler: _Gated) -> ChatEvent:
    event = _event(new_id("evt"))
    handler.release(event.id)
    return event


class _Always(set[str]):
    """A `fail` set whose members stay failing: `discard`, which the handler calls as a
    member fails, counts instead."""

    failures = 0

    def discard(self, value: object) -> None:
        self.failures += 1


async def test_records_a_consumer_does_not_want_are_passed_over_undecoded(
    runtime: Runtime,
) -> None:
    """A provider event carries its provider in a header; a consumer that wants only some
    providers never decodes the others (not even to dead-letter one that would not decode)
    and still commits past them."""
    from aiokafka import AIOKafkaProducer

    from shared.kernel.envelopes import PROVIDER_HEADER, ProviderEvent
    from shared.kernel.kafka import ensure_topics

    def event(provider: str) -> ProviderEvent:
        return ProviderEvent(
            id=new_id("pev"),
            provider=provider,
            integration_id="int_1",
            workspace_id="ws_1",
            event_type="push",
            delivery_id=new_id("dlv"),
            payload={"n": 1},
        )

    settings = runtime.settings
    topic = settings.topic(Topic.PROVIDER_EVENTS)
    await ensure_topics(settings, [topic])
    seen: list[str] = []

    async def handler(events: list[ProviderEvent]) -> None:
        seen.extend(e.provider for e in events)

    runtime.consume_batch(
        Topic.PROVIDER_EVENTS,
        "wanted",
        ProviderEvent,
        handler,
        wanted=consumers.header_in(PROVIDER_HEADER, ["github"]),
    )
    await runtime.start([], [Topic.PROVIDER_EVENTS])
    await _until(lambda: runtime.kafka_started)
    # What the gateway publishes carries the header...
    await runtime.publisher.publish(Topic.PROVIDER_EVENTS, event("slack"))
    # ...and a record of another provider that would not even decode is not looked at.
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, b"{not json", key=b"int_1", headers=[(PROVIDER_HEADER, b"discord")]
        )
    finally:
        await producer.stop()
    await runtime.publisher.publish(Topic.PROVIDER_EVENTS, event("github"))
    await _until(lambda: seen == ["github"])
    assert not runtime.registry.get_sample_value(
        "hookhub_consumer_dead_letters_total", {"consumer": "wanted", "reason": "undecodable"}
    )


async def test_a_pipelined_consumer_is_told_of_a_rebalance(runtime: Runtime) -> None:
    """A second member joining the group: the pipelined consumer's `on_revoked` is awaited
    before its partitions go, and `on_assigned` called once they are shared out again."""
    from aiokafka import AIOKafkaConsumer

    told: list[str] = []

    async def on_revoked() -> None:
        told.append("revoked")

    consumers.consume_pipelined(
        runtime,
        Topic.CHAT_EVENTS,
        "piped",
        ChatEvent,
        _Gated(),
        on_assigned=lambda: told.append("assigned"),
        on_revoked=on_revoked,
    )
    await runtime.start([], [])
    await _until(lambda: runtime.kafka_started and subscribers_joined(runtime.broker)[0])
    await _until(lambda: "assigned" in told)
    before = len(told)
    settings = runtime.settings
    other = AIOKafkaConsumer(
        settings.topic(Topic.CHAT_EVENTS),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group(runtime.service, "piped"),
        enable_auto_commit=False,
    )
    await other.start()
    try:
        await _until(lambda: told[before:] == ["revoked", "assigned"])
    finally:
        await other.stop()


async def test_a_handled_message_is_freed_without_the_garbage_collector() -> None:
    """FastStream keeps what the decoder returned in the message, and hookhub's decoder
    returns the message itself: unless the cache is emptied as the handler takes the
    records, every batch (500 records and their bodies) is a cycle only a collection frees."""
    import gc
    import weakref

    from faststream.kafka.message import KafkaAckableMessage

    message = KafkaAckableMessage((), [b"{}"] * 500, consumer=None)
    message.set_decoder(consumers._the_message)
    assert await message.decode() is message  # what FastStream hands the handler
    gone = weakref.ref(message)
    enabled = gc.isenabled()
    gc.disable()
    try:
        assert consumers._raw(message) == ()
        del message
        assert gone() is None, "the message outlived its last reference (a cycle)"
    finally:
        if enabled:
            gc.enable()
