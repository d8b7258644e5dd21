"""Kafka wiring on FastStream: the broker, topic creation, acknowledged publishing, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from shared.envelopes import Envelope, Topic
from shared.errors import KafkaUnavailable
from shared.metrics import LATENCY_BUCKETS, Labelled
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Internal topics (delivery queue, retry tiers) are added by their services.
PUBLIC_TOPICS: tuple[Topic, ...] = tuple(Topic)
# Where envelopes that fail validation go, with the reason in headers; never dropped.
DEAD_LETTER_TOPIC = "hookhub.dead-letters"


def make_broker(
    settings: Settings, service: str, registry: CollectorRegistry, middlewares: Iterable[Any] = ()
) -> KafkaBroker:
    """The broker for subscribers (and dead letters); envelopes go out via `EventPublisher`."""
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"hookhub-{service}",
        acks="all",
        max_request_size=settings.kafka_max_message_bytes,
        allow_auto_create_topics=False,
        middlewares=[
            *middlewares,
            KafkaPrometheusMiddleware(
                registry=registry, app_name=service, metrics_prefix="hookhub"
            ),
        ],
        logger=None,
        graceful_timeout=10.0,
    )


async def ensure_topics(settings: Settings, topics: Iterable[str]) -> None:
    """Create topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(settings.kafka_publish_timeout_seconds * 1000),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if not missing:
            return
        new = [
            NewTopic(name, settings.kafka_partitions, settings.kafka_replication_factor)
            for name in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
            await admin.create_topics(new)
        log.info("kafka_topics_created", topics=missing)
    finally:
        await admin.close()


class EventPublisher:
    """Publishes envelopes and returns only once Kafka has acknowledged them (acks=all).

    Its own producer rather than the FastStream broker's, because its request timeout must
    be short (a batch not acknowledged in time expires instead of being sent after we have
    answered 503) while consumers' group joins need the long default.
    """

    def __init__(self, settings: Settings, service: str, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._client_id = f"hookhub-{service}-publisher"
        self._producer: AIOKafkaProducer | None = None  # made in start(): it needs the loop
        self._batches: _Batches | None = None
        self._published = Labelled(
            Counter(
                "hookhub_kafka_published_total",
                "Envelopes published",
                ["topic", "outcome"],
                registry=registry,
            )
        )
        self._latency = Labelled(
            Histogram(
                "hookhub_kafka_publish_seconds",
                "Time until Kafka acknowledged a publish",
                ["topic"],
                registry=registry,
                buckets=LATENCY_BUCKETS,
            )
        )
        self.started = False

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            request_timeout_ms=int(self._settings.kafka_publish_timeout_seconds * 1000),
            max_request_size=self._settings.kafka_max_message_bytes,
            # Concurrent requests' envelopes share a batch; the 16 KiB default holds two
            # GitHub payloads and makes every further send wait for the batch to drain.
            max_batch_size=self._settings.kafka_max_message_bytes,
            linger_ms=0,
        )
        await self._producer.start()
        self._batches = _Batches(self._producer)
        self.started = True

    async def stop(self) -> None:
        self.started = False
        producer, self._producer = self._producer, None
        batches, self._batches = self._batches, None
        if batches is not None:
            await batches.drain(self._settings.kafka_publish_timeout_seconds)
        if producer is not None:
            await producer.stop()

    async def publish(
        self,
        topic: Topic | str,
        envelope: Envelope,
        key: bytes | None = None,
        value: bytes | None = None,
    ) -> None:
        """`value`, when given, is the envelope already encoded (see ProviderEvent)."""
        name = self._settings.topic(topic)
        partition_key = key if key is not None else _partition_key(envelope)
        headers = [("content-type", b"application/json"), ("hookhub-id", envelope.id.encode())]
        started = time.perf_counter()
        try:
            batches = self._batches
            if not self.started or batches is None:
                raise KafkaConnectionError("publisher not connected yet")
            # No timeout of our own: the producer's request timeout is the publish timeout,
            # and a batch not acknowledged within it fails (and is never sent later).
            await batches.send(name, partition_key, value or envelope.to_kafka(), headers)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means "not durably accepted"
            self._published(str(topic), "failed").inc()
            log.warning(
                "kafka_publish_failed", topic=name, envelope_id=envelope.id, error=repr(exc)
            )
            raise KafkaUnavailable("the event could not be written to Kafka; retry later") from exc
        self._published(str(topic), "acknowledged").inc()
        self._latency(str(topic)).observe(time.perf_counter() - started)


@dataclass(eq=False)
class _Batch:
    builder: BatchBuilder
    # One future per publisher: a cancelled publisher cancels its own, never the batch.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    settled: bool = False


class _Batches:
    """Envelopes appended by us to aiokafka record batches, one batch per partition.

    aiokafka's `send()` spends ~40 µs of Python per message (metadata wait, serializers,
    partitioner, accumulator, a future and a `RecordMetadata` each), which was a fifth of
    a GitHub webhook's CPU. Here a message costs an append to the partition's open batch
    and a wait on that batch's future. The batch is handed to aiokafka (`send_batch`) as
    soon as it is opened and filled until aiokafka's sender takes it, which closes it, as
    aiokafka's own accumulator does: one batch per partition is sent while the next one
    fills, so a key's envelopes stay in order. A batch not acknowledged within the request
    timeout fails and is never sent afterwards (aiokafka expires it).
    """

    _MAX_KEYS = 100_000

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._loop = asyncio.get_running_loop()
        self._open: dict[tuple[str, int], _Batch] = {}
        self._keys: dict[tuple[str, bytes, int], int] = {}
        self._default = DefaultPartitioner()
        self._submitting: set[asyncio.Task[None]] = set()

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        partition = await self._partition_for(topic, key)
        batch = self._open.get((topic, partition))
        if batch is None or batch.settled or not _append(batch, key, value, headers):
            batch = _Batch(self._producer.create_batch())
            if not _append(batch, key, value, headers):
                raise MessageSizeTooLargeError(f"an envelope of {len(value)} bytes")
            self._open[(topic, partition)] = batch
            task = self._loop.create_task(self._submit(topic, partition, batch))
            self._submitting.add(task)  # held until done, or the loop may collect it
            task.add_done_callback(self._submitting.discard)
        waiter: asyncio.Future[None] = self._loop.create_future()
        batch.waiters.append(waiter)
        await waiter

    async def _submit(self, topic: str, partition: int, batch: _Batch) -> None:
        try:
            delivered = await self._producer.send_batch(batch.builder, topic, partition=partition)
        except Exception as exc:
            _settle(batch, exc)
            return
        # A callback rather than an await: the publishers wake one loop iteration sooner.
        delivered.add_done_callback(partial(_acknowledged, batch))

    async def _partition_for(self, topic: str, key: bytes | None) -> int:
        """Kafka's default partitioning (murmur2 of the key, else random), remembered per
        key: envelopes of one integration or channel share one."""
        known = self._producer.client.cluster.partitions_for_topic(topic)
        if not known:
            known = await self._producer.partitions_for(topic)
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

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for the open batches to be acknowledged or to fail."""
        deadline = self._loop.time() + seconds
        while any(not batch.settled for batch in self._open.values()):
            if self._loop.time() >= deadline:
                return
            await asyncio.sleep(0.01)


def _append(
    batch: _Batch, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
) -> bool:
    return batch.builder.append(timestamp=None, key=key, value=value, headers=headers) is not None


def _acknowledged(batch: _Batch, delivered: asyncio.Future[Any]) -> None:
    if delivered.cancelled():
        _settle(batch, KafkaConnectionError("publisher stopped"))
    else:
        _settle(batch, delivered.exception())


def _settle(batch: _Batch, error: BaseException | None) -> None:
    batch.settled = True  # failed or acknowledged: its builder takes nothing more
    for waiter in batch.waiters:
        if waiter.done():  # its publisher was cancelled
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


def _partition_key(envelope: Envelope) -> bytes | None:
    keyer = getattr(envelope, "partition_key", None)
    return keyer() if callable(keyer) else None


async def bootstrap_reachable(settings: Settings, wait: float = 1.0) -> bool:
    """Whether any bootstrap server accepts a TCP connection (cheap readiness probe)."""
    for server in settings.kafka_bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]") or "localhost", int(port)), wait
            )
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


def subscribers_joined(broker: KafkaBroker) -> tuple[bool, list[str]]:
    """Whether every subscriber's consumer has joined its group and received an assignment.

    An empty assignment counts (more replicas than partitions is a valid deployment).
    """
    waiting = []
    for subscriber in broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        names = ",".join(getattr(subscriber, "topic_names_for_subscribe", []) or ["?"])
        if consumer is None:
            waiting.append(names)
            continue
        state = getattr(consumer, "_subscription", None)
        subscription = getattr(state, "subscription", None)
        if subscription is None or subscription.assignment is None:
            waiting.append(names)
    return not waiting, waiting


class ConsumerLagCollector:
    """`hookhub_kafka_consumer_lag{group,topic}`: messages behind the partition ends, per
    consumer group of this process, computed when Prometheus scrapes."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hookhub_kafka_consumer_lag",
            "Messages between this process's consumer positions and the partition ends",
            labels=["group", "topic"],
        )
        for subscriber in self._broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is None:
                continue
            lag: dict[str, int] = {}
            try:
                assignment = consumer._subscription.subscription.assignment
                for tp in consumer.assignment():
                    end = consumer.highwater(tp)
                    position = assignment.state_value(tp).position
                    if end is not None and position is not None:
                        lag[tp.topic] = lag.get(tp.topic, 0) + max(end - position, 0)
            except AttributeError:  # not joined yet: nothing to report
                continue
            group = str(getattr(consumer, "_group_id", ""))
            for topic, value in lag.items():
                family.add_metric([group, topic], value)
        yield family
