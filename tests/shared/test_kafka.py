"""`EventPublisher` on the session's broker: what a publish that cannot succeed reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.envelopes import ChatEvent, Topic
from shared.errors import KafkaUnavailable
from shared.ids import utcnow
from shared.kafka import EventPublisher, EventTooLarge, ensure_topics
from shared.settings import ServiceSettings
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
