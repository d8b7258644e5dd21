"""Acknowledged produce requests with no task hops between a response and its publishers.

aiokafka's producer passes every batch through its sender task: a produce response reaches
the publishers four to five event-loop iterations after it arrives, and the next batch
leaves as many iterations later. Under load one iteration serves many webhooks, so those
hops were time the gateway sat idle waiting for acknowledgements (it ran at 0.85 of a
core; docs/benchmarks.md).

Here each topic partition is a lane: the batch filling, full batches waiting their turn,
and at most one batch in flight, so a key's envelopes stay in the order they were published
(as with aiokafka, which also sends one batch per partition at a time). The lanes' batches
ready in one event-loop iteration for the same broker go out together, in one produce
request (a flight), as aiokafka's sender does: with a topic's partitions in one request, a
burst costs the broker one request and us one write per iteration, not one per partition.
A lane's task resumes once its partition's answer is read, settles the batch's publishers
and hands the batch that filled in the meantime to the next flight. aiokafka's client still
does everything else: bootstrap, metadata, connections, version negotiation, and a request
timeout per request.

A batch that is not acknowledged within the publish timeout fails, and is never sent after
that: the publishers have been told "not accepted" and their callers may have said so to
the sender (SPEC §5: a 2xx only for what Kafka acknowledged). Errors Kafka calls retriable
(leader moved, connection lost, request timed out) are retried until then, after a metadata
refresh where the error says the metadata is stale. A request already on the wire when the
timeout passes may still be appended by the broker; no producer can know. Its publishers
were answered "not accepted", the sender retries, and the retry's envelope carries the same
id (derived from the delivery id), which consumers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

log = structlog.get_logger(__name__)

_ACKS_ALL = -1
_RECORD_FORMAT = 2  # Kafka ≥ 0.11: record batches with headers
_NO_COMPRESSION = 0
_NO_PRODUCER_ID = -1  # not idempotent, not transactional


class Stream:
    """An ordered stream of sends by one caller that does not wait for each to be
    acknowledged before the next (the Discord Gateway). Once one of its sends fails,
    nothing later of it goes out: its records queued behind the failed batch fail with it,
    and its next sends raise at once, until the caller has sent the failed ones again and
    goes on with a new stream. So a retry never comes after something sent later."""

    __slots__ = ("failed",)

    def __init__(self) -> None:
        self.failed: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        if self.failed is None:
            self.failed = error


T = TypeVar("T")


class HandOver:
    """A pipelined consumer's publishes (shared.kernel.consumers.consume_pipelined) in one
    ordered `Stream`: a batch's first part ends once its records are handed to the
    producer, in order after the previous batch's, and the next batch is decided while
    Kafka acknowledges it; its second part awaits what `__call__` returns. A publish that
    fails fails those after it on the stream (their batches come again, as the pipeline
    rewinds), and the stream is replaced, once, for them: `on_failed` is called then."""

    def __init__(self, on_failed: Callable[[], None] = lambda: None) -> None:
        self.stream = Stream()
        self._on_failed = on_failed

    async def __call__(
        self, publish: Callable[[Stream, Callable[[], None]], Awaitable[T]]
    ) -> asyncio.Future[T]:
        """`publish(stream, handed)` started (EventPublisher.publish_encoded's `stream` and
        `handed`); returns once it has handed its records over (raising if it failed
        before), the whole publish still under way."""
        stream = self.stream
        handed = asyncio.get_running_loop().create_future()

        def given() -> None:
            if not handed.done():
                handed.set_result(None)

        whole = asyncio.ensure_future(publish(stream, given))
        await asyncio.wait({handed, whole}, return_when=asyncio.FIRST_COMPLETED)
        if whole.done() and (whole.cancelled() or whole.exception() is not None):
            self._failed(stream)
            await whole  # raises
        whole.add_done_callback(lambda done: self._settled(stream, done))
        return whole

    def _settled(self, stream: Stream, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            self._failed(stream)

    def _failed(self, stream: Stream) -> None:
        if stream is self.stream:
            self.stream = Stream()
            self._on_failed()


@dataclass(eq=False)
class _Batch:
    records: Any  # DefaultRecordBatchBuilder (the C one when aiokafka's extension is built)
    deadline: float  # loop time after which it is never sent
    count: int = 0
    # One future per publisher: a cancelled publisher cancels its own, never the batch.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    # The ordered streams with records in it (Stream).
    streams: set[Stream] = field(default_factory=set)

    def append(self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> bool:
        appended = self.records.append(self.count, None, key, value, headers)
        if appended is None:  # full
            return False
        self.count += 1
        return True

    def settle(self, error: BaseException | None) -> None:
        if error is not None:
            for stream in self.streams:
                stream.fail(error)
        for waiter in self.waiters:
            if waiter.done():  # its publisher was cancelled
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


class _Lane:
    """One partition's batches: the one filling, the full ones, and whether one is out."""

    __slots__ = ("filling", "full", "partition", "sending")

    def __init__(self, partition: TopicPartition) -> None:
        self.partition = partition
        self.filling: _Batch | None = None
        self.full: deque[_Batch] = deque()
        self.sending = False

    def next_batch(self) -> _Batch | None:
        if self.full:
            return self.full.popleft()
        batch, self.filling = self.filling, None
        return batch

    def fail_behind(self, failed: _Batch, error: BaseException) -> None:
        """The queued batches holding records of a stream that `failed` held fail too: sent,
        they would come before the failed records' retry."""
        broken = failed.streams
        if not broken:
            return
        kept: deque[_Batch] = deque()
        for batch in self.full:
            if batch.streams & broken:
                batch.settle(_for_each_record(error, batch))
            else:
                kept.append(batch)
        self.full = kept
        if self.filling is not None and self.filling.streams & broken:
            self.filling.settle(_for_each_record(error, self.filling))
            self.filling = None


# A batch boarded on a flight (the batches of one request to a broker): its partition, its
# records, and the future its lane awaits (None once acknowledged, else Kafka's error).
_Boarded = tuple[TopicPartition, bytes, "asyncio.Future[KafkaError | None]"]


class PartitionProducer:
    """Sends records in batches, one batch in flight per partition, a broker's ready batches
    in one produce request (acks=all).

    `send()` returns once Kafka has acknowledged the record, or raises: the record's own
    `MessageSizeTooLargeError`, Kafka's error for its batch, `KafkaTimeoutError` when the
    publish timeout passed first, or `KafkaConnectionError` when the producer stopped.
    A size error from the broker is passed on as it is only for a batch of one record: for
    a larger batch it says nothing about any one record, which may fit alone.
    """

    _MAX_KEYS = 100_000
    _BACKOFF_SECONDS = 0.1

    def __init__(
        self,
        bootstrap_servers: str,
        client_id: str,
        timeout_seconds: float,
        max_batch_bytes: int,
    ) -> None:
        self._timeout = timeout_seconds
        self._max_batch_bytes = max_batch_bytes
        self._client = AIOKafkaClient(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=int(timeout_seconds * 1000),
            retry_backoff_ms=int(self._BACKOFF_SECONDS * 1000),
        )
        self._loop = asyncio.get_running_loop()
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._keys: dict[tuple[str, bytes, int], int] = {}
        self._default = DefaultPartitioner()
        self._senders: set[asyncio.Task[None]] = set()
        self._boarding: dict[int, list[_Boarded]] = {}  # by broker: off in the next iteration
        self._flying: set[asyncio.Task[None]] = set()
        self._stopped = False

    async def start(self) -> None:
        await self._client.bootstrap()

    @property
    def requests_out(self) -> int:
        """Produce requests sent and not answered yet (tests wait for one on the wire)."""
        return len(self._flying)

    async def stop(self, seconds: float) -> None:
        """Wait up to `seconds` for what was sent to be answered, then fail the rest."""
        self._stopped = True
        if self._senders:
            await asyncio.wait(list(self._senders), timeout=seconds)
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        for flight in list(self._flying):  # nobody waits for their answers now
            flight.cancel()
        await asyncio.gather(*self._flying, return_exceptions=True)
        await self._client.close()

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        await self.send_many(topic, [(key, value, headers)])

    async def send_many(
        self,
        topic: str,
        records: Sequence[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
        *,
        stream: Stream | None = None,
        handed: Callable[[], None] | None = None,
    ) -> None:
        """Several records, in their order, in as few batches as fit; returns once Kafka
        has acknowledged every one, or raises the first batch's error. A record over the
        size limit raises before it is added, and after those before it were (they are sent).
        `handed` is called once every record is in its batch (later sends go after them);
        `stream`: see Stream (a failed stream raises its error here, nothing added)."""
        if self._stopped:
            raise KafkaConnectionError("the producer is stopped")
        known = self._client.cluster.partitions_for_topic(topic) or await self._partitions(topic)
        if stream is not None and stream.failed is not None:
            raise stream.failed
        waiters: list[asyncio.Future[None]] = []
        batch: _Batch | None = None
        try:
            for key, value, headers in records:
                lane, joined = self._append(topic, key, value, headers, known)
                if joined is not batch:  # one waiter per batch the records went into
                    batch = joined
                    waiter: asyncio.Future[None] = self._loop.create_future()
                    joined.waiters.append(waiter)
                    waiters.append(waiter)
                    if stream is not None:
                        joined.streams.add(stream)
                if not lane.sending:
                    # Started now, it runs in the next iteration: what this one appends joins.
                    lane.sending = True
                    task = self._loop.create_task(self._send_batches(lane))
                    self._senders.add(task)  # held until done, or the loop may collect it
                    task.add_done_callback(self._senders.discard)
        except BaseException as exc:
            for waiter in waiters:  # nobody will await them: as if their publisher had gone
                waiter.cancel()
            if stream is not None:  # those added go out: nothing later may overtake a retry
                stream.fail(exc)
            raise
        if handed is not None:
            handed()
        if len(waiters) == 1:
            await waiters[0]
            return
        # Every batch's outcome is awaited (a failed one must not leave the others' futures
        # unretrieved); the first error is raised.
        outcomes = await asyncio.gather(*waiters, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
        known: set[int],
    ) -> tuple[_Lane, _Batch]:
        """The record added to its partition's filling batch (a new one when that is full)."""
        partition = self._partition_for(topic, key, known)
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self._lanes[(topic, partition)] = _Lane(TopicPartition(topic, partition))
        batch = lane.filling
        if batch is None or not batch.append(key, value, headers):
            # A batch takes its first record whatever its size: the limit is checked here.
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
            if size > self._max_batch_bytes:
                raise MessageSizeTooLargeError(
                    f"a record of {size} bytes is over the {self._max_batch_bytes}-byte limit"
                )
            fresh = self._new_batch()
            fresh.append(key, value, headers)
            if batch is not None:
                lane.full.append(batch)
            lane.filling = batch = fresh
        return lane, batch

    def _new_batch(self) -> _Batch:
        records = DefaultRecordBatchBuilder(
            _RECORD_FORMAT,
            _NO_COMPRESSION,
            0,
            _NO_PRODUCER_ID,
            _NO_PRODUCER_ID,
            _NO_PRODUCER_ID,
            self._max_batch_bytes,
        )
        return _Batch(records, self._loop.time() + self._timeout)

    async def _send_batches(self, lane: _Lane) -> None:
        batch = None
        try:
            while (batch := lane.next_batch()) is not None:
                try:
                    error: BaseException | None = await self._acknowledge(lane.partition, batch)
                except Exception as exc:  # a fault of ours: fail its publishers, not the lane
                    log.exception("kafka_produce_failed", partition=str(lane.partition))
                    error = exc
                batch.settle(_for_each_record(error, batch))
                if error is not None:
                    lane.fail_behind(batch, error)
        except asyncio.CancelledError:
            stopped = KafkaConnectionError("the producer stopped before Kafka answered")
            for left in (batch, *lane.full, lane.filling):
                if left is not None:
                    left.settle(stopped)
            lane.full.clear()
            lane.filling = None
            raise
        finally:
            lane.sending = False

    async def _acknowledge(self, partition: TopicPartition, batch: _Batch) -> KafkaError | None:
        """Kafka's answer for the batch: None once acknowledged, else why not."""
        records = batch.records.build()
        try:
            async with asyncio.timeout_at(batch.deadline):
                retried = False
                # Checked before each attempt too: a boarded batch takes off before a timeout
                # that is due but not yet delivered, which would then come too late.
                while self._loop.time() < batch.deadline:
                    error = await self._produce(partition, records)
                    if error is None or not error.retriable:
                        return error
                    if not retried:  # once a batch: every 100 ms while Kafka is away is noise
                        retried = True
                        log.warning(
                            "kafka_produce_retrying", partition=str(partition), error=repr(error)
                        )
                    if getattr(error, "invalid_metadata", False):
                        self._client.force_metadata_update()
                    await asyncio.sleep(self._BACKOFF_SECONDS)
        except TimeoutError:
            pass
        return KafkaTimeoutError(f"not acknowledged within {self._timeout:g} s")

    async def _produce(self, partition: TopicPartition, records: bytes) -> KafkaError | None:
        """The batch boards its leader's next flight; Kafka's answer for its partition.
        Boarded, it is sent in the next iteration unless its lane stopped waiting first
        (its deadline passed): a batch is never sent after its publishers were answered."""
        leader = self._client.cluster.leader_for_partition(partition)
        if leader is None or leader < 0:
            return LeaderNotAvailableError(f"no leader known for {partition}")
        flight = self._boarding.get(leader)
        if flight is None:
            flight = self._boarding[leader] = []
            self._loop.call_soon(self._take_off, leader)
        answer: asyncio.Future[KafkaError | None] = self._loop.create_future()
        flight.append((partition, records, answer))
        return await answer

    def _take_off(self, leader: int) -> None:
        batches = [boarded for boarded in self._boarding.pop(leader) if not boarded[2].done()]
        if not batches:
            return
        by_topic: dict[str, list[tuple[int, bytes]]] = {}
        for partition, records, _ in batches:
            by_topic.setdefault(partition.topic, []).append((partition.partition, records))
        request = ProduceRequest(
            transactional_id=None,
            required_acks=_ACKS_ALL,
            timeout=int(self._timeout * 1000),
            topics=list(by_topic.items()),
        )
        task = self._loop.create_task(self._fly(leader, request, batches))
        self._flying.add(task)
        task.add_done_callback(self._flying.discard)

    async def _fly(
        self,
        leader: int,
        request: ProduceRequest,
        batches: list[_Boarded],
    ) -> None:
        """The request sent; each batch's lane told its partition's answer."""
        try:
            response = await self._client.send(leader, request)
        except Exception as exc:  # KafkaError: the answer; another is a fault of ours
            for _, _, answer in batches:
                if answer.done():  # its lane stopped waiting (deadline): already answered
                    continue
                if isinstance(exc, KafkaError):
                    answer.set_result(exc)
                else:  # each lane fails its batch's publishers
                    answer.set_exception(exc)
            return
        codes = {
            (topic, reply[0]): reply[1] for topic, replies in response.topics for reply in replies
        }
        for partition, _, answer in batches:
            if answer.done():
                continue
            code = codes.get((partition.topic, partition.partition))
            if code is None:
                answer.set_result(KafkaError(f"the produce response did not mention {partition}"))
            else:
                answer.set_result(None if code == 0 else for_code(code)())

    def _partition_for(self, topic: str, key: bytes | None, known: set[int]) -> int:
        """Kafka's default partitioning (murmur2 of the key, else random), remembered per
        key: envelopes of one integration or channel share one."""
        if key is None:
            partitions = sorted(known)
            chosen: int = self._default(key, partitions, partitions)
            return chosen
        cache_key = (topic, key, len(known))
        partition = self._keys.get(cache_key)
        if partition is None:  # sorted only on a miss: this runs for every publish
            if len(self._keys) >= self._MAX_KEYS:
                self._keys.clear()
            partitions = sorted(known)
            partition = self._keys[cache_key] = self._default(key, partitions, partitions)
        return partition

    async def _partitions(self, topic: str) -> set[int]:
        """A topic's partitions from fresh metadata, waiting at most the publish timeout.

        The client is never told the topic's name (`add_topic`): its metadata requests then
        ask for every topic rather than for named ones, which a broker may auto-create.
        A topic that does not exist stays an error, as the deployment docs promise.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                while True:
                    await self._client.force_metadata_update()
                    if known := self._client.cluster.partitions_for_topic(topic):
                        return set(known)
                    await asyncio.sleep(self._BACKOFF_SECONDS)
        raise UnknownTopicOrPartitionError(f"no topic {topic} in the cluster's metadata")


def _for_each_record(error: BaseException | None, batch: _Batch) -> BaseException | None:
    """The batch's error as each of its records' publishers should see it."""
    if isinstance(error, (MessageSizeTooLargeError, RecordListTooLargeError)) and batch.count > 1:
        # The broker's limit is below ours (HOOKHUB_KAFKA_MAX_MESSAGE_BYTES): the batch was
        # too large, not necessarily any record in it. Not permanent for the record.
        refused: BaseException = KafkaError(
            f"Kafka refused a batch of {batch.count} records as too large ({error!r}); "
            "HOOKHUB_KAFKA_MAX_MESSAGE_BYTES is above the broker's max.message.bytes"
        )
        return refused
    return error
