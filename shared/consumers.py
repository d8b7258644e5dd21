"""Envelope consumers: decode, dead-letter what cannot be decoded, act once per envelope id.

`consume(runtime, Topic.CHAT_EVENTS, "fanout", ChatEvent, handler)` is how a service
subscribes. The handler sees a validated envelope; it runs at most once per envelope id
for that consumer (however often Kafka redelivers), its offset is committed only after it
returned, and an exception hands the message back to Kafka after a pause.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import TopicPartition
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.envelopes import Envelope
from shared.idempotency import ClaimBusy
from shared.kafka import DEAD_LETTER_TOPIC

if TYPE_CHECKING:
    from shared.runtime import Runtime
    from shared.settings import Settings

log = structlog.get_logger("hookhub.consumer")

E = TypeVar("E", bound=Envelope)

_FAILURE_PAUSE_SECONDS = 1.0
# A broker may hold a fetch this long waiting for more data; some (tansu) do not answer as
# soon as records arrive, so the 500 ms default becomes event latency.
FETCH_MAX_WAIT_MS = 50
BATCH_POLL_MS = 5


def heartbeat_ms(settings: Settings) -> int:
    """Heartbeats well inside the session: a third of it, at most aiokafka's default 3 s."""
    return min(3_000, settings.kafka_session_timeout_ms // 3)


def consume(
    runtime: Runtime,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[E], Awaitable[object]],
) -> None:
    settings = runtime.settings
    topic_name = settings.topic(topic)
    group = settings.consumer_group(runtime.service, purpose)
    ledger = runtime.ledger(purpose)

    @runtime.broker.subscriber(
        topic_name,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=heartbeat_ms(settings),
        title=f"{runtime.service}.{purpose}",
    )
    async def _consume(message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)
        started = time.perf_counter()
        context = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "consumer": purpose,
        }
        with structlog.contextvars.bound_contextvars(**context):
            try:
                envelope = model.model_validate_json(record.value or b"")
            except ValidationError as exc:
                await _dead_letter(runtime, record.value or b"", record.key, context, str(exc))
                log.warning("envelope_invalid", error=exc.errors()[0]["msg"])
                return
            structlog.contextvars.bind_contextvars(envelope_id=envelope.id)
            try:
                outcome = await ledger.once(envelope.id, lambda: handler(envelope))
            except ClaimBusy:
                await asyncio.sleep(_FAILURE_PAUSE_SECONDS)
                raise
            except Exception:
                log.exception("envelope_failed")
                await asyncio.sleep(_FAILURE_PAUSE_SECONDS)  # no hot loop while MongoDB is down
                raise
            finally:
                structlog.contextvars.unbind_contextvars("envelope_id")
            log.info(
                "envelope_consumed",
                envelope_id=envelope.id,
                outcome=outcome.value,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )


def _decoded(
    runtime: Runtime, purpose: str, model: type[E], records: Sequence[Any]
) -> Awaitable[list[E]]:
    """The records' envelopes; those that do not decode are dead-lettered one by one."""

    async def decode() -> list[E]:
        envelopes: list[E] = []
        for record in records:
            try:
                envelopes.append(model.model_validate_json(record.value or b""))
            except ValidationError as exc:
                context = {
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "consumer": purpose,
                }
                await _dead_letter(runtime, record.value or b"", record.key, context, str(exc))
                log.warning("envelope_invalid", error=exc.errors()[0]["msg"], **context)
        return envelopes

    return decode()


def _batch_subscriber(
    runtime: Runtime, topic: str, purpose: str, ack_policy: AckPolicy, max_records: int
) -> Callable[[Callable[[KafkaMessage], Awaitable[None]]], Any]:
    """The broker's subscriber for a batch consumer of `topic` (group: the service's and
    `purpose`), batches of up to `max_records`: whatever has been fetched when it asks."""
    settings = runtime.settings
    return runtime.broker.subscriber(
        settings.topic(topic),
        group_id=settings.consumer_group(runtime.service, purpose),
        auto_offset_reset="earliest",
        ack_policy=ack_policy,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        batch=True,
        max_records=max_records,
        # Not a time to gather a batch (what is fetched is handed over at once): how long
        # FastStream waits for records, and then sleeps, when there are none. Records that
        # arrive during the sleep wait for it, so it is event latency when idle (20 ms
        # before: 5 ms more on average, 20 at worst), for ~100 empty polls a second.
        batch_timeout_ms=BATCH_POLL_MS,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=heartbeat_ms(settings),
        title=f"{runtime.service}.{purpose}",
    )


def consume_batch(
    runtime: Runtime,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[list[E]], Awaitable[object]],
    *,
    max_records: int = 500,
) -> None:
    """Like `consume`, for handlers that act on many envelopes at once (one bulk write per
    batch instead of a round trip per message). The handler must be idempotent by itself:
    a failed batch comes back whole. Undecodable messages are dead-lettered one by one."""

    @_batch_subscriber(runtime, topic, purpose, AckPolicy.NACK_ON_ERROR, max_records)
    async def _consume(message: KafkaMessage) -> None:
        records = message.raw_message
        assert isinstance(records, tuple)
        started = time.perf_counter()
        envelopes = await _decoded(runtime, purpose, model, records)
        if not envelopes:
            return
        try:
            await handler(envelopes)
        except Exception:
            log.exception("envelope_batch_failed", consumer=purpose, size=len(envelopes))
            await asyncio.sleep(_FAILURE_PAUSE_SECONDS)
            raise
        log.info(
            "envelope_batch_consumed",
            consumer=purpose,
            topic=records[0].topic,
            size=len(envelopes),
            first_envelope_id=envelopes[0].id,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


def consume_pipelined(
    runtime: Runtime,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[list[E]], Awaitable[Awaitable[object]]],
    *,
    max_records: int = 500,
    max_pending: int = 5_000,
) -> Pipeline:
    """Like `consume_batch`, for handlers whose work has two parts: what must be done before
    the next batch is handled (publishing, in order), and what must only be done before
    the batch's offsets are committed (a MongoDB write). The handler does the first part
    and returns an awaitable of the second. The second parts of batches holding up to
    `max_pending` records run while later batches are handled; offsets are committed in
    order, as each finishes, so a crash redelivers every batch whose second part had not
    finished (the handler must be idempotent, as for `consume_batch`). A failure in either
    part rewinds the partitions to the oldest batch not committed, which comes back after a
    pause."""
    pipeline = Pipeline(purpose, max_pending)
    runtime.pipelines.append(pipeline)

    # Offsets are committed by the pipeline, batch by batch, as their work finishes.
    @_batch_subscriber(runtime, topic, purpose, AckPolicy.MANUAL, max_records)
    async def _consume(message: KafkaMessage) -> None:
        records = message.raw_message
        assert isinstance(records, tuple)
        started = time.perf_counter()
        batch = _Batch.of(records)
        if not await pipeline.room(message.consumer, batch):
            return  # rewound: these records come again
        envelopes = await _decoded(runtime, purpose, model, records)
        try:
            rest = await handler(envelopes) if envelopes else None
        except Exception:
            log.exception("envelope_batch_failed", consumer=purpose, size=len(envelopes))
            await pipeline.rewind(batch)
            return
        pipeline.add(batch, rest)
        log.info(
            "envelope_batch_consumed",
            consumer=purpose,
            topic=records[0].topic,
            size=len(envelopes),
            first_envelope_id=envelopes[0].id if envelopes else None,
            pending=pipeline.pending,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    return pipeline


@dataclass
class _Batch:
    first: dict[TopicPartition, int]  # where to seek to read it again
    next: dict[TopicPartition, int]  # what to commit once it is done
    size: int
    settled: asyncio.Future[object] | None = None

    @classmethod
    def of(cls, records: Sequence[Any]) -> _Batch:
        first: dict[TopicPartition, int] = {}
        after: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
            after[tp] = max(after.get(tp, 0), record.offset + 1)
        return cls(first, after, len(records))

    def failed(self) -> bool:
        settled = self.settled
        return (
            settled is not None
            and settled.done()
            and (settled.cancelled() or settled.exception() is not None)
        )


class Pipeline:
    """A pipelined consumer's batches whose second part is still running, oldest first.

    Bounded by records, not batches: under a light load a batch holds a record or two, and
    a bound of a few batches made the consumer wait for one slow MongoDB write every time
    it was reached. Commits happen beside the consumer (as batches settle), never on its
    way to the next batch."""

    def __init__(self, purpose: str, max_pending: int) -> None:
        self.purpose = purpose
        self._max_pending = max_pending
        self._batches: deque[_Batch] = deque()
        self._records = 0  # in the batches pending
        self._consumer: Any = None
        self._lock = asyncio.Lock()
        self._settling: set[asyncio.Task[bool]] = set()

    @property
    def pending(self) -> int:
        return len(self._batches)

    async def room(self, consumer: Any, batch: _Batch) -> bool:
        """Waits while the batches pending hold `max_pending` records; False when a failed
        batch rewound the partitions (`batch` is read again, so not handled now)."""
        self._consumer = consumer
        while True:
            if self._failed():
                await self.rewind(batch)
                return False
            if self._records < self._max_pending:
                return True
            running = [b.settled for b in self._batches if b.settled and not b.settled.done()]
            if running:
                await asyncio.wait({running[0]})
            else:
                await self._settle()  # all done, not yet committed: committed now

    def _failed(self) -> bool:
        """Whether the oldest batch not yet committed failed (a later one failing waits for
        those before it: they may still rewind it all)."""
        for pending in self._batches:
            if pending.failed():
                return True
            if pending.settled is None or not pending.settled.done():
                return False
        return False

    def add(self, batch: _Batch, rest: Awaitable[object] | None) -> None:
        settled: asyncio.Future[object] = (
            asyncio.ensure_future(rest) if rest is not None else _finished()
        )
        batch.settled = settled
        self._batches.append(batch)
        self._records += batch.size
        # Committed as soon as it (and every batch before it) is done, also when no
        # further batch comes to do it.
        settled.add_done_callback(self._settle_soon)

    def _settle_soon(self, settled: asyncio.Future[object]) -> None:
        if not settled.cancelled():
            # Retrieved here: one that fails after a rewind dropped it is not "never retrieved".
            settled.exception()
        task = asyncio.ensure_future(self._settle())
        self._settling.add(task)  # held until done, or the loop may collect it
        task.add_done_callback(self._settling.discard)

    async def _settle(self) -> bool:
        """Commits the offsets of the batches done, oldest first, up to the first still
        running; False if the oldest failed (nothing from it on is committed: the
        consumer rewinds when it next gets a batch, `room`)."""
        async with self._lock:
            offsets: dict[TopicPartition, int] = {}
            failed = False
            while self._batches:
                head = self._batches[0]
                if head.failed():
                    failed = True
                    break
                if head.settled is None or not head.settled.done():
                    break
                done = self._batches.popleft()
                self._records -= done.size
                offsets.update(done.next)
            await self._commit(offsets)
            return not failed

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        if not offsets or consumer is None:
            return
        # A partition taken away by a rebalance is not ours to commit: its new owner
        # reads those records again (the handler is idempotent).
        owned = consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("kafka_commit_failed", consumer=self.purpose, error=repr(exc))

    async def rewind(self, batch: _Batch) -> None:
        """Every partition back to its oldest record not committed (of the batches
        pending, and `batch`, the one in hand), and a pause: those records come again.
        Only the consumer's own calls rewind, so no batch fetched before a rewind is
        handled after it."""
        async with self._lock:
            oldest: dict[TopicPartition, int] = {}
            for pending in [*self._batches, batch]:
                for tp, offset in pending.first.items():
                    oldest[tp] = min(oldest.get(tp, offset), offset)
            failed = [
                b.settled for b in self._batches if b.settled is not None and b.settled.done()
            ]
            for settled in failed:
                if not settled.cancelled() and settled.exception() is not None:
                    log.error(
                        "envelope_batch_failed",
                        consumer=self.purpose,
                        error=repr(settled.exception()),
                        pending=len(self._batches),
                    )
                    break
            self._batches.clear()  # what still runs is not committed; it comes again
            self._records = 0
            consumer = self._consumer
            if consumer is not None:
                owned = consumer.assignment()
                for tp, offset in oldest.items():
                    if tp in owned:
                        consumer.seek(tp, offset)
        await asyncio.sleep(_FAILURE_PAUSE_SECONDS)  # no hot loop while MongoDB is down

    async def drain(self) -> None:
        """At the stop, before the consumers leave: what runs is waited for and committed."""
        running = [b.settled for b in self._batches if b.settled is not None]
        if running:
            await asyncio.wait(running)
        await self._settle()


def _finished() -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def _dead_letter(
    runtime: Runtime, value: bytes, key: bytes | None, context: dict[str, object], reason: str
) -> None:
    headers = {
        "hookhub-reason": reason[:2000],
        "hookhub-source-topic": str(context["topic"]),
        "hookhub-source-partition": str(context["partition"]),
        "hookhub-source-offset": str(context["offset"]),
        "hookhub-consumer": f"{runtime.service}.{context['consumer']}",
    }
    topic = runtime.settings.topic(DEAD_LETTER_TOPIC)
    try:
        await runtime.broker.publish(value, topic, key=key, headers=headers)
    except MessageSizeTooLargeError:
        # With the reason added it no longer fits, and never will: retrying would stop the
        # partition for good. The letter goes without the value; the source offset says
        # where it is for as long as the topic keeps it.
        omitted = {**headers, "hookhub-value-omitted": f"{len(value)} bytes, over the limit"}
        await runtime.broker.publish(b"", topic, key=key, headers=omitted)
