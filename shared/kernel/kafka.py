"""Kafka wiring on FastStream: the broker, topic creation, acknowledged publishing, readiness."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from shared.kernel import tracing
from shared.kernel.envelopes import Encoded, Envelope, Topic
from shared.kernel.errors import KafkaUnavailable, PayloadTooLarge
from shared.kernel.metrics import LATENCY_BUCKETS, Labelled
from shared.kernel.produce import PartitionProducer, Stream
from shared.kernel.settings import Settings

log = structlog.get_logger(__name__)

_JSON = b"application/json"

# Internal topics (delivery queue, retry tiers) are added by their services.
PUBLIC_TOPICS: tuple[Topic, ...] = tuple(Topic)
# Where envelopes that fail validation go, with the reason in headers; never dropped.
DEAD_LETTER_TOPIC = "hookhub.dead-letters"


def make_broker(
    settings: Settings, service: str, registry: CollectorRegistry, middlewares: Iterable[Any] = ()
) -> KafkaBroker:
    """The broker for subscribers (and dead letters); envelopes go out via `EventPublisher`.
    Traced by FastStream's middleware (a span per batch consumed, linked to its records'
    producers; the dead letters' `traceparent`) unless tracing is off (shared.kernel.tracing)."""
    if tracing.mode() is not tracing.Mode.OFF:
        from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

        middlewares = [*middlewares, KafkaTelemetryMiddleware(tracer_provider=tracing.provider())]
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
        # A handler is called with its message as the decoder gives it (shared.kernel.consumers):
        # no dependency injection, whose `KafkaMessage` parameter FastDepends resolved in a
        # worker thread, a thread's round trip (and a wait for the GIL) before every batch.
        apply_types=False,
        # How long a stopping consumer waits for its in-flight handler before it leaves the
        # group; what is cut off is not committed and comes back (see shared.kernel.shutdown).
        graceful_timeout=settings.shutdown_seconds * 0.25,
    )


def topic_names(settings: Settings, internal: Iterable[str] = ()) -> list[str]:
    """Every topic a service uses, as named on the broker: the public topics, the dead
    letters and the service's `internal` ones (all services' for `hookhub topics ensure`)."""
    names = (*PUBLIC_TOPICS, DEAD_LETTER_TOPIC, *internal)
    return [settings.topic(name) for name in dict.fromkeys(names)]


async def ensure_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Create topics that do not exist yet; existing ones are left as they are. Returns
    the names it created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(settings.kafka_publish_timeout_seconds * 1000),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(name, settings.kafka_partitions, settings.kafka_replication_factor)
            for name in missing
        ]
        with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
            await admin.create_topics(new)
        log.info("kafka_topics_created", topics=missing)
        return missing
    finally:
        await admin.close()


@dataclass(frozen=True)
class TopicOffsets:
    """Where a topic's partitions begin and end, and where each consumer group that ever
    committed on it is (the next offset it will read)."""

    starts: dict[int, int]
    ends: dict[int, int]
    groups: dict[str, dict[int, int]]

    def past(self, ends: Mapping[int, int]) -> bool:
        """Whether every record below `ends` (an earlier look at the ends) has been read by
        every group, or has left the log."""
        for partition, end in ends.items():
            if self.starts.get(partition, 0) >= end:
                continue
            if any(committed.get(partition, -1) < end for committed in self.groups.values()):
                return False
        return True


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """`topic`'s partitions, its metadata asked for when the consumer has none yet."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer.topics()  # the metadata of every topic
        partitions = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(partitions or ())]


async def committed_offsets(
    admin: AIOKafkaAdminClient, partitions: Sequence[TopicPartition], prefix: str = ""
) -> dict[str, dict[TopicPartition, int]]:
    """Where each consumer group named `prefix...` that committed on `partitions` is (the
    next offset it will read), by partition; a partition it never committed on is absent."""
    groups: dict[str, dict[TopicPartition, int]] = {}
    for group, _ in await admin.list_consumer_groups():
        if not group.startswith(prefix):
            continue
        # With the partitions named: tansu refuses the all-partitions form.
        committed = await admin.list_consumer_group_offsets(group, partitions=list(partitions))
        mine = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
        if mine:
            groups[group] = mine
    return groups


async def topic_offsets(settings: Settings, topic: str) -> TopicOffsets:
    """One look at `topic` (as named on the broker) and its consumer groups."""
    timeout_ms = int(settings.kafka_publish_timeout_seconds * 1000)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=timeout_ms
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=timeout_ms,
    )
    await admin.start()
    try:
        await consumer.start()
        tps = await partitions_of(consumer, topic)
        starts = await consumer.beginning_offsets(tps) if tps else {}
        ends = await consumer.end_offsets(tps) if tps else {}
        # The namespace leaves out another run's groups (tests share a broker).
        groups = await committed_offsets(admin, tps, settings.topic_namespace)
        return TopicOffsets(
            {tp.partition: o for tp, o in starts.items()},
            {tp.partition: o for tp, o in ends.items()},
            {g: {tp.partition: o for tp, o in c.items()} for g, c in groups.items()},
        )
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await admin.close()


# Kafka's answers that no retry can change: the record (alone in its batch) is too large.
TOO_LARGE_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError)


class EventTooLarge(PayloadTooLarge):
    """An envelope Kafka will never take: 413, not the 503 that tells a client to retry."""


class EventPublisher:
    """Publishes envelopes and returns only once Kafka has acknowledged them (acks=all).

    Its own producer rather than the FastStream broker's (`shared.kernel.produce`): its request
    timeout must be short (a batch not acknowledged in time fails instead of being sent
    after we have answered 503) while consumers' group joins need the long default, and an
    acknowledgement must reach its publishers without waiting on a sender task.
    """

    def __init__(self, settings: Settings, service: str, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._client_id = f"hookhub-{service}-publisher"
        self._producer: PartitionProducer | None = None  # made in start(): it needs the loop
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
        producer = PartitionProducer(
            self._settings.kafka_bootstrap,
            self._client_id,
            timeout_seconds=self._settings.kafka_publish_timeout_seconds,
            # Concurrent requests' envelopes share a batch, up to one request's worth.
            max_batch_bytes=self._settings.kafka_max_message_bytes,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop(0)
            raise
        self._producer = producer
        self.started = True

    async def stop(self, seconds: float | None = None) -> None:
        """Wait up to `seconds` (default: the publish timeout) for what was sent."""
        self.started = False
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop(
                self._settings.kafka_publish_timeout_seconds if seconds is None else seconds
            )

    async def publish(
        self,
        topic: Topic | str,
        envelope: Envelope,
        key: bytes | None = None,
        value: bytes | None = None,
    ) -> None:
        """`value`, when given, is the envelope already encoded (see ProviderEvent)."""
        partition_key = key if key is not None else _partition_key(envelope)
        await self.publish_encoded(
            topic,
            [
                Encoded(
                    envelope.id,
                    partition_key,
                    value or envelope.to_kafka(),
                    envelope.kafka_headers(),
                )
            ],
        )

    async def publish_encoded(
        self,
        topic: Topic | str,
        envelopes: Sequence[Encoded],
        *,
        stream: Stream | None = None,
        handed: Callable[[], None] | None = None,
    ) -> None:
        """Envelopes already encoded, handed to the producer together and in order (one
        waiter per batch rather than one task per envelope); returns once Kafka has
        acknowledged all of them, or raises as `publish` does (some may have been written:
        a retry publishes the same ids, which consumers deduplicate). `handed` is called
        once they are in the producer's batches, `stream` orders them with the caller's
        other publishes (shared.kernel.produce.Stream)."""
        if not envelopes:
            if handed is not None:
                handed()
            return
        name = self._settings.topic(topic)
        started = time.perf_counter()
        count = len(envelopes)
        try:
            producer = self._producer
            if not self.started or producer is None:
                raise KafkaConnectionError("publisher not connected yet")
            with tracing.publishing(name, count, [e.trace for e in envelopes]) as under_it:
                records = [
                    (
                        e.key,
                        e.value,
                        [
                            ("content-type", _JSON),
                            ("hookhub-id", e.id.encode()),
                            *e.headers,
                            *tracing.kafka_headers(None if under_it else e.trace),
                        ],
                    )
                    for e in envelopes
                ]
                # No timeout of our own: the producer fails what the publish timeout leaves
                # unacknowledged, and never sends it afterwards.
                await producer.send_many(name, records, stream=stream, handed=handed)
        except asyncio.CancelledError:
            raise
        except TOO_LARGE_ERRORS as exc:  # permanent: a retry would be refused the same way
            self._published(str(topic), "too_large").inc(count)
            log.warning(
                "kafka_publish_too_large",
                topic=name,
                envelope_id=envelopes[0].id,
                count=count,
                error=repr(exc),
            )
            raise EventTooLarge(self._too_large_message(exc)) from exc
        except Exception as exc:  # any other failure means "not durably accepted"
            self._published(str(topic), "failed").inc(count)
            log.warning(
                "kafka_publish_failed",
                topic=name,
                envelope_id=envelopes[0].id,
                count=count,
                error=repr(exc),
            )
            raise KafkaUnavailable("the event could not be written to Kafka; retry later") from exc
        self._published(str(topic), "acknowledged").inc(count)
        self._latency(str(topic)).observe(time.perf_counter() - started)

    def _too_large_message(self, exc: Exception) -> str:
        limit = f"HOOKHUB_KAFKA_MAX_MESSAGE_BYTES={self._settings.kafka_max_message_bytes}"
        if exc.args:  # ours (shared.kernel.produce), checked before anything is sent
            return f"the event is too large for Kafka: {exc.args[0]} ({limit})"
        return (
            "the event is too large for Kafka: the broker refused it as over its "
            f"max.message.bytes, which is lower than {limit}"
        )


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
                    end, state = consumer.highwater(tp), assignment.state_value(tp)
                    # A partition just assigned has no position until its offset is fetched
                    # (aiokafka asserts on `position` then): nothing to say of it yet.
                    if end is not None and state is not None and state.has_valid_position:
                        lag[tp.topic] = lag.get(tp.topic, 0) + max(end - state.position, 0)
            except AttributeError:  # not joined yet: nothing to report
                continue
            group = str(getattr(consumer, "_group_id", ""))
            for topic, value in lag.items():
                family.add_metric([group, topic], value)
        yield family
