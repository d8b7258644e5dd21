"""Envelope consumers: decode, act once per envelope id, dead-letter what cannot be handled.

`consume(runtime, Topic.CHAT_EVENTS, "fanout", ChatEvent, handler)` is how a service
subscribes. The handler sees a validated envelope; it runs at most once per envelope id
for that consumer (however often Kafka redelivers), and its offset is committed only after
it returned.

A failure is either the infrastructure's or the envelope's, and never stalls the partition
for an envelope's sake:
- MongoDB or Kafka away (`transient`): the message goes back to Kafka and comes again after
  a pause, for as long as it takes: no envelope is at fault, none is given up.
- anything else (a value MongoDB or JSON cannot hold, a bug met by one payload): the
  envelope is tried alone (a batch is halved until the failing envelopes stand alone),
  `POISON_TRIES` times in all, then dead-lettered on `hookhub.dead-letters` with the reason
  and counted (`hookhub_consumer_dead_letters_total`); the rest of the batch and the
  partition go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.structs import TopicPartition
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from shared.kernel import tracing
from shared.kernel.envelopes import Envelope
from shared.kernel.errors import Unavailable
from shared.kernel.idempotency import ClaimBusy
from shared.kernel.kafka import DEAD_LETTER_TOPIC
from shared.kernel.process import ServiceProcess

if TYPE_CHECKING:
    from shared.kernel.settings import Settings

log = structlog.get_logger("hookhub.consumer")

E = TypeVar("E", bound=Envelope)

_FAILURE_PAUSE_SECONDS = 1.0
# An envelope that fails on its own this many times is the envelope's problem: dead-lettered.
POISON_TRIES = 3
# Between its tries (times the try's number): a passing fault that is not on the list of
# `transient` ones still gets a second and a third chance.
POISON_PAUSE_SECONDS = 0.5
# How long a batch consumer waits for records before its loop turns (_WaitingBatches).
IDLE_WAIT_MS = 1_000
# How long an `on_revoked` handler waits for what it writes for the partitions' next owner
# (BatchedWriter.written_within): well within Kafka's rebalance timeout, so that a MongoDB
# outage does not hold the group for long.
REVOKE_WAIT_SECONDS = 10.0


def heartbeat_ms(settings: Settings) -> int:
    """Heartbeats well inside the session: a third of it, at most aiokafka's default 3 s."""
    return min(3_000, settings.kafka_session_timeout_ms // 3)


def transient(exc: BaseException) -> bool:
    """Whether `exc` says that something hookhub depends on is away (MongoDB, Kafka, a
    provider, a claim another replica holds): no envelope is at fault, and waiting is right
    however long it takes. A record too large for Kafka is the envelope's own problem."""
    if isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError | RecordListTooLargeError):
        return False
    if isinstance(exc, PyMongoError) and any(
        exc.has_error_label(label) for label in ("RetryableWriteError", "TransientTransactionError")
    ):
        return True
    return isinstance(
        exc,
        ClaimBusy
        | ConnectionFailure  # AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, ...
        | ExecutionTimeout
        | WTimeoutError
        | KafkaError
        # A provider unreachable too (shared.domain.oauth.provider.ProviderUnreachable).
        | Unavailable
        | httpx.TransportError
        | OSError
        | TimeoutError,
    )


@dataclass(frozen=True, slots=True)
class _Item:
    """A decoded record: what a handler gets, and what a dead letter is made of."""

    record: Any
    envelope: Any
    # Its CONSUMER span (shared.kernel.tracing), ended once its handler is done with it.
    span: Any = None


class DeadLetters:
    """A runtime's dead letters: `hookhub.dead-letters`, with the reason in the headers,
    counted by consumer and reason (`undecodable`, `failed`)."""

    def __init__(self, runtime: ServiceProcess, registry: CollectorRegistry) -> None:
        self._runtime = runtime
        self._count = Counter(
            "hookhub_consumer_dead_letters",
            "Envelopes a consumer gave up on and dead-lettered, by consumer and reason",
            ["consumer", "reason"],
            registry=registry,
        )

    async def send(self, record: Any, purpose: str, reason: str, detail: str) -> None:
        runtime = self._runtime
        value: bytes = record.value or b""
        headers = {
            "hookhub-reason": detail[:2000],
            "hookhub-source-topic": str(record.topic),
            "hookhub-source-partition": str(record.partition),
            "hookhub-source-offset": str(record.offset),
            "hookhub-consumer": f"{runtime.service}.{purpose}",
        }
        topic = runtime.settings.topic(DEAD_LETTER_TOPIC)
        try:
            await runtime.broker.publish(value, topic, key=record.key, headers=headers)
        except MessageSizeTooLargeError:
            # With the reason added it no longer fits, and never will: retrying would stop
            # the partition for good. The letter goes without the value; the source offset
            # says where it is for as long as the topic keeps it.
            omitted = {**headers, "hookhub-value-omitted": f"{len(value)} bytes, over the limit"}
            await runtime.broker.publish(b"", topic, key=record.key, headers=omitted)
        self._count.labels(f"{runtime.service}.{purpose}", reason).inc()


def _context(record: Any, purpose: str) -> dict[str, object]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "consumer": purpose,
    }


async def _given_up(runtime: ServiceProcess, purpose: str, item: _Item, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}"
    log.error(
        "envelope_dead_lettered",
        envelope_id=item.envelope.id,
        error=reason[:500],
        tries=POISON_TRIES,
        **_context(item.record, purpose),
    )
    await runtime.dead_letters.send(item.record, purpose, "failed", reason)


async def _one_by_one(
    runtime: ServiceProcess,
    purpose: str,
    items: Sequence[_Item],
    run: Callable[[list[Any]], Awaitable[object]],
    failure: BaseException,
) -> None:
    """`items` after `run(items)` failed with `failure`, not a transient one: halves until
    the failing envelopes stand alone, each tried `POISON_TRIES` times in all and then
    dead-lettered. In order, so a key's envelopes keep theirs. A transient failure on the
    way is raised: the whole batch comes again (its handler is idempotent)."""
    if len(items) > 1:
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            try:
                await run([item.envelope for item in half])
            except Exception as exc:
                if transient(exc):
                    raise
                await _one_by_one(runtime, purpose, half, run, exc)
        return
    [item] = items
    for tries in range(1, POISON_TRIES):
        log.warning(
            "envelope_failed_alone",
            envelope_id=item.envelope.id,
            error=repr(failure)[:500],
            tries=tries,
            **_context(item.record, purpose),
        )
        await asyncio.sleep(POISON_PAUSE_SECONDS * tries)
        try:
            await run([item.envelope])
            return
        except Exception as exc:
            if transient(exc):
                raise
            failure = exc
    await _given_up(runtime, purpose, item, failure)


async def _to_the_end(
    runtime: ServiceProcess,
    purpose: str,
    items: Sequence[_Item],
    run: Callable[[list[Any]], Awaitable[object]],
) -> None:
    """`run(items)`, and if that fails for a reason of theirs, `_one_by_one`: raises only
    transient failures."""
    try:
        await run([item.envelope for item in items])
    except Exception as exc:
        if transient(exc):
            raise
        await _one_by_one(runtime, purpose, items, run, exc)


def consume(
    runtime: ServiceProcess,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[E], Awaitable[object]],
) -> None:
    settings = runtime.settings
    topic_name = settings.topic(topic)
    group = settings.consumer_group(runtime.service, purpose)
    ledger = runtime.ledger(purpose)

    async def once(envelopes: list[E]) -> None:
        [envelope] = envelopes
        outcome = await ledger.once(envelope.id, lambda: handler(envelope))
        log.info("envelope_consumed", envelope_id=envelope.id, outcome=outcome.value)

    @runtime.broker.subscriber(
        topic_name,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        decoder=_the_message,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=heartbeat_ms(settings),
        title=f"{runtime.service}.{purpose}",
    )
    async def _consume(message: KafkaMessage) -> None:
        record = _raw(message)
        assert not isinstance(record, tuple)
        with structlog.contextvars.bound_contextvars(**_context(record, purpose)):
            items = await _decoded(runtime, purpose, model, [record])
            if not items:
                return
            try:
                with _handling(items), tracing.within(items[0].envelope.trace()):
                    await _to_the_end(runtime, purpose, items, once)
            except Exception:
                log.exception("envelope_failed", envelope_id=items[0].envelope.id)
                await asyncio.sleep(_FAILURE_PAUSE_SECONDS)  # no hot loop while MongoDB is down
                raise


Wanted = Callable[[Any], bool]
# Whether a decoded envelope (and its record) is refused by a rule of the service's (an
# event type's schema): the reason it is dead-lettered with (counted as `refused`), or None.
Refuse = Callable[[Any, Any], Awaitable[str | None]]


def header_in(name: str, values: Iterable[str]) -> Wanted:
    """For a consumer that wants the records whose header `name` is one of `values` (and
    those without it: written before the header was): the others are passed over without
    being decoded, and committed with their batch."""
    accepted = frozenset(value.encode() for value in values)

    def wanted(record: Any) -> bool:
        for key, value in record.headers or ():
            if key == name:
                return value in accepted
        return True

    return wanted


async def _decoded(
    runtime: ServiceProcess,
    purpose: str,
    model: type[E],
    records: Sequence[Any],
    wanted: Wanted | None = None,
    refuse: Refuse | None = None,
) -> list[_Item]:
    """The records' envelopes (those `wanted`); those that do not decode, or that `refuse`
    names a reason to refuse, are dead-lettered one by one."""
    group = runtime.settings.consumer_group(runtime.service, purpose)
    items: list[_Item] = []
    for record in records:
        if wanted is not None and not wanted(record):
            continue
        try:
            envelope = model.model_validate_json(record.value or b"")
            envelope._position = (record.partition, record.offset)
        except ValidationError as exc:
            await runtime.dead_letters.send(record, purpose, "undecodable", str(exc))
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            log.warning(
                "envelope_invalid", error=f"{where}: {first['msg']}", **_context(record, purpose)
            )
            continue
        refused = None if refuse is None else await refuse(record, envelope)
        if refused is not None:
            await runtime.dead_letters.send(record, purpose, "refused", refused)
            log.warning(
                "envelope_refused",
                envelope_id=envelope.id,
                error=refused[:500],
                **_context(record, purpose),
            )
            continue
        items.append(_Item(record, envelope, tracing.consumed(record, envelope, group)))
    return items


@contextlib.contextmanager
def _handling(items: Sequence[_Item]) -> Iterator[None]:
    """The items' spans (shared.kernel.tracing) ended as their handler is done, failed or not."""
    try:
        yield
    except BaseException as exc:
        tracing.ended([item.span for item in items], exc)
        raise
    tracing.ended([item.span for item in items])


async def _the_message(message: Any) -> Any:
    """FastStream's decoding of a record's body, skipped: the handlers read the records
    themselves (`raw_message`) and decode them into their envelope model once (FastStream
    would parse every body as JSON first, a second parse of each, for nothing). What a
    handler is called with is the message itself: the broker applies no types
    (shared.kernel.kafka.make_broker)."""
    return message


def _raw(message: KafkaMessage) -> Any:
    """The message's record (a batch's: its tuple of records), its decode cache emptied.
    FastStream keeps what the decoder returned in the message, here the message itself
    (`_the_message`): a cycle that left each batch, its records and their bodies, to the
    garbage collector instead of freeing it once handled (a sync process's collections
    found a batch's 500 records in the garbage after every batch)."""
    message.clear_cache()
    return message.raw_message


class _Rebalanced(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells a handler of its consumer's rebalances: `on_revoked` is awaited before the
    partitions go to another member, `on_assigned` called once they are (re)assigned."""

    def __init__(
        self,
        on_assigned: Callable[[], object] | None,
        on_revoked: Callable[[], Awaitable[object]] | None,
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: object) -> None:
        if self._on_revoked is not None:
            await self._on_revoked()

    async def on_partitions_assigned(self, assigned: object) -> None:
        if self._on_assigned is not None:
            self._on_assigned()


def _batch_subscriber(
    runtime: ServiceProcess,
    topic: str,
    purpose: str,
    ack_policy: AckPolicy,
    max_records: int,
    on_assigned: Callable[[], object] | None = None,
    on_revoked: Callable[[], Awaitable[object]] | None = None,
) -> Callable[[Callable[[KafkaMessage], Awaitable[None]]], Any]:
    """The broker's subscriber for a batch consumer of `topic` (group: the service's and
    `purpose`), batches of up to `max_records`: whatever has been fetched when it asks.
    `on_revoked` is awaited before its partitions are taken away in a rebalance (to write
    what another member will read), `on_assigned` called whenever they are (re)assigned
    (a handler's memory of what another member may have changed meanwhile is stale)."""
    settings = runtime.settings
    subscriber = runtime.broker.subscriber(
        settings.topic(topic),
        listener=(
            _Rebalanced(on_assigned, on_revoked)
            if on_assigned is not None or on_revoked is not None
            else None
        ),
        group_id=settings.consumer_group(runtime.service, purpose),
        auto_offset_reset="earliest",
        ack_policy=ack_policy,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        batch=True,
        max_records=max_records,
        decoder=_the_message,
        batch_timeout_ms=IDLE_WAIT_MS,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=heartbeat_ms(settings),
        title=f"{runtime.service}.{purpose}",
    )
    if type(subscriber) is not BatchSubscriber:  # a FastStream that builds batches otherwise
        raise TypeError(f"a batch subscriber is a {type(subscriber).__name__}")
    subscriber.__class__ = _WaitingBatches
    return subscriber


class _WaitingBatches(BatchSubscriber):
    """FastStream's batch subscriber, waiting for records instead of polling for them.

    FastStream's own asks aiokafka for what has been fetched, waiting `batch_timeout_ms`,
    and when nothing came, sleeps as long again: a short time is event latency when idle
    (records that arrive during the sleep wait for it), a long one more of it, and 5 ms
    was 200 turns of the loop a second for each consumer with nothing to do (an idle
    `hookhub run` spent a tenth of a core in each consuming service). aiokafka's `getmany`
    returns as soon as a fetch brings records, and at once when the consumer stops, so
    this one waits up to `batch_timeout_ms` (IDLE_WAIT_MS) and never sleeps: records are
    handed over when they are fetched, and an idle consumer turns once a second."""

    __slots__ = ()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        fetched = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms, max_records=self.max_records
        )
        return tuple(chain.from_iterable(fetched.values()))


def consume_batch(
    runtime: ServiceProcess,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[list[E]], Awaitable[object]],
    *,
    max_records: int = 500,
    wanted: Wanted | None = None,
    on_assigned: Callable[[], object] | None = None,
    on_revoked: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Like `consume`, for handlers that act on many envelopes at once (one bulk write per
    batch instead of a round trip per message). The handler must be idempotent by itself:
    a batch that failed for MongoDB's or Kafka's sake comes back whole. Undecodable messages
    are dead-lettered one by one, and so are those that fail alone (see the module's doc).
    `on_assigned`, `on_revoked`: see `_batch_subscriber`."""

    async def run(envelopes: list[E]) -> None:
        await handler(envelopes)

    @_batch_subscriber(
        runtime, topic, purpose, AckPolicy.NACK_ON_ERROR, max_records, on_assigned, on_revoked
    )
    async def _consume(message: KafkaMessage) -> None:
        records = _raw(message)
        assert isinstance(records, tuple)
        started = time.perf_counter()
        items = await _decoded(runtime, purpose, model, records, wanted)
        if not items:
            return
        try:
            with _handling(items):
                await _to_the_end(runtime, purpose, items, run)
        except Exception:
            log.exception("envelope_batch_failed", consumer=purpose, size=len(items))
            await asyncio.sleep(_FAILURE_PAUSE_SECONDS)
            raise
        log.info(
            "envelope_batch_consumed",
            consumer=purpose,
            topic=records[0].topic,
            size=len(items),
            first_envelope_id=items[0].envelope.id,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )


def consume_pipelined(
    runtime: ServiceProcess,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[list[E]], Awaitable[Awaitable[object]]],
    *,
    max_records: int = 500,
    max_pending: int = 5_000,
    wanted: Wanted | None = None,
    refuse: Refuse | None = None,
    on_drain: Callable[[], object] | None = None,
    on_assigned: Callable[[], object] | None = None,
    on_revoked: Callable[[], Awaitable[object]] | None = None,
) -> Pipeline:
    """Like `consume_batch`, for handlers whose work has two parts: what must be done before
    the next batch is handled (publishing, in order), and what must only be done before
    the batch's offsets are committed (a MongoDB write). The handler does the first part
    and returns an awaitable of the second. The second parts of batches holding up to
    `max_pending` records run while later batches are handled; offsets are committed in
    order, as each finishes, so a crash redelivers every batch whose second part had not
    finished (the handler must be idempotent, as for `consume_batch`). A failure in either
    part rewinds the partitions to the oldest batch not committed, which comes back after a
    pause. `on_drain` is called as the stop begins to drain the pipeline (`Pipeline.drain`):
    for second parts that would otherwise outlast the stop to give up (fail), leaving their
    batches to the partitions' next owner. `on_assigned`, `on_revoked`: see
    `_batch_subscriber` (the second parts still running when the partitions are revoked
    are not committed by this member: their batches are read again by the new owner).
    `refuse`: envelopes dead-lettered with its reason instead of handled (see `Refuse`)."""
    pipeline = Pipeline(purpose, max_pending, on_drain)
    runtime.pipelines.append(pipeline)

    async def run(envelopes: list[E]) -> None:
        await (await handler(envelopes))

    # Offsets are committed by the pipeline, batch by batch, as their work finishes.
    @_batch_subscriber(
        runtime, topic, purpose, AckPolicy.MANUAL, max_records, on_assigned, on_revoked
    )
    async def _consume(message: KafkaMessage) -> None:
        records = _raw(message)
        assert isinstance(records, tuple)
        started = time.perf_counter()
        batch = _Batch.of(records)
        if not await pipeline.room(message.consumer, batch):
            return  # rewound: these records come again
        items = await _decoded(runtime, purpose, model, records, wanted, refuse)
        envelopes = [item.envelope for item in items]
        rest: Awaitable[object] | None = None
        try:
            with _handling(items):
                if envelopes and pipeline.suspect(batch):
                    # A batch from here failed in its second part, not for MongoDB's or
                    # Kafka's sake: both parts now run to their end, halving as needed.
                    await _to_the_end(runtime, purpose, items, run)
                elif envelopes:
                    rest = await handler(envelopes)
        except Exception as exc:
            try:
                if transient(exc):
                    raise
                await _one_by_one(runtime, purpose, items, run, exc)
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

    def __init__(
        self, purpose: str, max_pending: int, on_drain: Callable[[], object] | None = None
    ) -> None:
        self.purpose = purpose
        self._on_drain = on_drain
        self._max_pending = max_pending
        self._batches: deque[_Batch] = deque()
        self._records = 0  # in the batches pending
        self._consumer: Any = None
        self._lock = asyncio.Lock()
        self._settling: set[asyncio.Task[bool]] = set()
        # After a second part failed, not for MongoDB's or Kafka's sake: up to where (per
        # partition) the records read again are suspect.
        self._suspect: dict[TopicPartition, int] = {}

    @property
    def pending(self) -> int:
        return len(self._batches)

    def suspect(self, batch: _Batch) -> bool:
        """Whether `batch` holds records of a batch whose second part failed on its own."""
        return any(offset < self._suspect.get(tp, -1) for tp, offset in batch.first.items())

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
        for tp, offset in batch.next.items():
            if offset >= self._suspect.get(tp, offset + 1):
                del self._suspect[tp]
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
                error = None if settled.cancelled() else settled.exception()
                if error is not None:
                    log.error(
                        "envelope_batch_failed",
                        consumer=self.purpose,
                        error=repr(error),
                        pending=len(self._batches),
                    )
                    if not transient(error):
                        # Read again, these batches are handled to their end one part
                        # after the other, and the envelopes at fault found.
                        for pending in self._batches:
                            for tp, offset in pending.next.items():
                                self._suspect[tp] = max(self._suspect.get(tp, 0), offset)
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
        if self._on_drain is not None:
            self._on_drain()
        running = [b.settled for b in self._batches if b.settled is not None]
        if running:
            await asyncio.wait(running)
        await self._settle()


def _finished() -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
