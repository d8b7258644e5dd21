"""Envelope consumers: decode, dead-letter what cannot be decoded, act once per envelope id.

`consume(runtime, Topic.CHAT_EVENTS, "fanout", ChatEvent, handler)` is how a service
subscribes. The handler sees a validated envelope; it runs at most once per envelope id
for that consumer (however often Kafka redelivers), its offset is committed only after it
returned, and an exception hands the message back to Kafka after a pause.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import structlog
from aiokafka.errors import MessageSizeTooLargeError
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
    settings = runtime.settings

    @runtime.broker.subscriber(
        settings.topic(topic),
        group_id=settings.consumer_group(runtime.service, purpose),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=20,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=heartbeat_ms(settings),
        title=f"{runtime.service}.{purpose}",
    )
    async def _consume(message: KafkaMessage) -> None:
        records = message.raw_message
        assert isinstance(records, tuple)
        started = time.perf_counter()
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
