"""`EventPublisher` on the session's broker: what a publish that cannot succeed reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.errors import KafkaUnavailable
from shared.kernel.ids import utcnow
from shared.kernel.kafka import ConsumerLagCollector, EventPublisher, EventTooLarge, ensure_topics
from shared.kernel.settings import ServiceSettings
from tests.infra import Infra
from tests.support import KafkaTap, make_settings, new_namespace

LIMIT = 64 * 1024


@pytest.fixture
async def publisher(infra: Infra, tmp_path: Path) -> AsyncIterator[EventPublisher]:
    settings = make_settings(
        ServiceSettings, infra, new_namespace(), tmp_path, kafka_max_message_bytes=LIMIT
    )
    await ensure_topics(settings, [settings.topic(Topic.CHAT_EVENTS)])
    made = EventPublisher(settings, "test", CollectorRegistry())
    await made.start()
    yield made
    await made.stop()


def _event(size: int) -> ChatEvent:
    return ChatEvent(
        id=new_namespace(),
        type="message.created",
        workspace_id="ws_limits",
        occurred_at=utcnow(),
        data={"text": "x" * size},
    )


async def test_an_event_over_the_limit_is_a_413_naming_the_limit_not_a_retry(
    publisher: EventPublisher,
) -> None:
    with pytest.raises(EventTooLarge) as refused:
        await publisher.publish(Topic.CHAT_EVENTS, _event(LIMIT + 10))
    error = refused.value
    assert not isinstance(error, KafkaUnavailable)
    assert (error.status, error.code) == (413, "payload_too_large")
    assert "Retry-After" not in error.headers
    assert f"HOOKHUB_KAFKA_MAX_MESSAGE_BYTES={LIMIT}" in error.message
    assert "bytes is over the" in error.message  # the record's own size is given


async def test_events_under_the_limit_are_published_beside_a_refused_one(
    publisher: EventPublisher, infra: Infra, tmp_path: Path
) -> None:
    fits = _event(LIMIT // 2)
    await publisher.publish(Topic.CHAT_EVENTS, fits)
    with pytest.raises(EventTooLarge):
        await publisher.publish(Topic.CHAT_EVENTS, _event(LIMIT * 2))
    settings = publisher._settings
    assert isinstance(settings, ServiceSettings)
    async with KafkaTap.of(settings, Topic.CHAT_EVENTS) as tap:
        found = await tap.wait_for(lambda value: value["id"] == fits.id)
    assert len(found) == 1


async def test_consumer_lag_leaves_out_a_partition_whose_position_is_being_reset(
    infra: Infra, tmp_path: Path
) -> None:
    """A partition just assigned (or being reset) has no position until its offset is
    fetched, while its end is known: /readyz and /metrics once answered 500 then (aiokafka
    asserts on the position)."""
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    topic = settings.topic(Topic.CHAT_EVENTS)
    await ensure_topics(settings, [topic])
    publisher = EventPublisher(settings, "test", CollectorRegistry())
    await publisher.start()
    try:
        await publisher.publish(Topic.CHAT_EVENTS, _event(10))
    finally:
        await publisher.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
        await consumer.seek_to_beginning()
        while not await consumer.getmany(timeout_ms=500):
            pass
        broker = SimpleNamespace(subscribers=[SimpleNamespace(consumer=consumer)])
        [family] = ConsumerLagCollector(broker).collect()  # type: ignore[arg-type]
        assert [sample.value for sample in family.samples] == [0]
        assignment = consumer._subscription.subscription.assignment
        for tp in consumer.assignment():  # as a rebalance or a seek leaves them
            assignment.state_value(tp).await_reset(OffsetResetStrategy.EARLIEST)
        [family] = ConsumerLagCollector(broker).collect()  # type: ignore[arg-type]
        assert family.samples == []
    finally:
        await consumer.stop()
