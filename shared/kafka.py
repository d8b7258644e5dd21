"""Kafka wiring on FastStream: the broker, topic creation, acknowledged publishing, readiness."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from shared.envelopes import Envelope, Topic
from shared.errors import KafkaUnavailable
from shared.settings import Settings

log = structlog.get_logger(__name__)

# Internal topics (delivery queue, retry tiers, dead letters) are added by their services.
PUBLIC_TOPICS: tuple[Topic, ...] = tuple(Topic)


def make_broker(
    settings: Settings, service: str, registry: CollectorRegistry, middlewares: Iterable[Any] = ()
) -> KafkaBroker:
    timeout_ms = int(settings.kafka_publish_timeout_seconds * 1000)
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=f"hookhub-{service}",
        # A publish is acknowledged only once every in-sync replica has it (SPEC §5), and a
        # batch not acknowledged within the timeout expires instead of lingering to be sent
        # after we have already answered 503.
        acks="all",
        request_timeout_ms=timeout_ms,
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
    """Publishes envelopes and returns only once Kafka has acknowledged them (acks=all)."""

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings

    async def publish(
        self, topic: Topic | str, envelope: Envelope, key: bytes | None = None
    ) -> None:
        name = self._settings.topic(topic)
        partition_key = key if key is not None else _partition_key(envelope)
        try:
            await asyncio.wait_for(
                self._broker.publish(
                    envelope.to_kafka(),
                    name,
                    key=partition_key,
                    headers={"content-type": "application/json", "hookhub-id": envelope.id},
                ),
                timeout=self._settings.kafka_publish_timeout_seconds + 1,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means "not durably accepted"
            log.warning(
                "kafka_publish_failed", topic=name, envelope_id=envelope.id, error=repr(exc)
            )
            raise KafkaUnavailable("the event could not be written to Kafka; retry later") from exc


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
