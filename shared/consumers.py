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
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.envelopes import Envelope
from shared.idempotency import ClaimBusy, Outcome
from shared.kafka import DEAD_LETTER_TOPIC

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = structlog.get_logger("hookhub.consumer")

E = TypeVar("E", bound=Envelope)

_FAILURE_PAUSE_SECONDS = 1.0


def consume(
    runtime: Runtime,
    topic: str,
    purpose: str,
    model: type[E],
    handler: Callable[[E], Awaitable[object]],
    *,
    idempotent: bool = True,
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
                if idempotent:
                    outcome = await ledger.once(envelope.id, lambda: handler(envelope))
                else:
                    await handler(envelope)
                    outcome = Outcome.PROCESSED
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


async def _dead_letter(
    runtime: Runtime, value: bytes, key: bytes | None, context: dict[str, object], reason: str
) -> None:
    await runtime.broker.publish(
        value,
        runtime.settings.topic(DEAD_LETTER_TOPIC),
        key=key,
        headers={
            "hookhub-reason": reason[:2000],
            "hookhub-source-topic": str(context["topic"]),
            "hookhub-source-partition": str(context["partition"]),
            "hookhub-source-offset": str(context["offset"]),
            "hookhub-consumer": f"{runtime.service}.{context['consumer']}",
        },
    )
