"""`destinations`: events per second to SQS (moto's server) and RabbitMQ through hookhub's
delivery, each beside a bare loop of the same client (aiobotocore, aio-pika with publisher
confirms) sending the same signed envelopes, in the same run (SPEC §21, issue #63).

For each: one delivery process is started on a backlog of BENCH_DESTINATION_EVENTS chat
events (published before it starts) with one endpoint whose destination is a fresh queue;
then the bare loop sends as many envelopes, built as delivery builds them, to another fresh
queue, with as many in flight as the endpoint's `max_concurrency`. Both are timed the same
way, at the queue: from its first message to its last (its depth, polled every 20 ms).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.harness import BenchError, BenchmarkResult, Harness, Measurement
from bench.sender import EVENT_TYPE, message_data, webhook_request
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.ids import utcnow
from tests.emulators import AWS_CREDENTIALS, Emulators, provide_emulators

EVENTS = {"sqs": 2000, "rabbitmq": 5000}
EMULATOR = {"sqs": "moto's server", "rabbitmq": "rabbitmq-server"}
CONCURRENCY = 32  # the endpoint's max_concurrency, and the bare loop's sends in flight
POLL = 0.02
TARGET = 0.7
ACTOR = {"type": "user", "id": "usr_01jcz8w3m5q7r9t2v4x6y8"}


class Arrivals(threading.Thread):
    """Polls a queue's depth: when its first message arrived and when its `count`th did."""

    def __init__(self, depth: Callable[[], int], count: int, timeout: float) -> None:
        super().__init__(daemon=True)
        self._depth, self.count, self._timeout = depth, count, timeout
        self.first: float | None = None
        self.last: float | None = None
        self.seen = 0

    def run(self) -> None:
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            self.seen = self._depth()
            now = time.monotonic()
            if self.seen and self.first is None:
                self.first = now
            if self.seen >= self.count:
                self.last = now
                return
            time.sleep(POLL)

    def measurement(self, label: str) -> Measurement:
        self.join()
        if self.first is None or self.last is None or self.last <= self.first:
            return Measurement(
                label,
                0.0,
                None,
                None,
                None,
                None,
                self.seen,
                self.count - self.seen,
                {"missing": self.count - self.seen},
                0.0,
                {},
            )
        window = self.last - self.first
        rate = (self.count - 1) / window
        return Measurement(label, rate, None, None, None, None, self.count, 0, {}, window, {})


class Queue:
    """A destination's fresh queue: its config for an endpoint, its depth, a bare sender."""

    kind: str

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def depth(self) -> int:
        raise NotImplementedError

    async def bare(self, bodies: list[tuple[bytes, dict[str, str]]]) -> None:
        raise NotImplementedError


class SqsQueue(Queue):
    kind = "sqs"

    def __init__(self, emulators: Emulators) -> None:
        import boto3

        self._endpoint = emulators.aws_endpoint_url
        self._sqs = boto3.client(
            "sqs",
            endpoint_url=self._endpoint,
            region_name=AWS_CREDENTIALS["region"],
            aws_access_key_id=AWS_CREDENTIALS["access_key_id"],
            aws_secret_access_key=AWS_CREDENTIALS["secret_access_key"],
        )
        self.url = self._sqs.create_queue(QueueName="bench-" + uuid.uuid4().hex[:10])["QueueUrl"]

    def config(self) -> dict[str, Any]:
        return {**AWS_CREDENTIALS, "queue_url": self.url}

    def depth(self) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    async def bare(self, bodies: list[tuple[bytes, dict[str, str]]]) -> None:
        from aiobotocore.session import get_session

        async with get_session().create_client(
            "sqs",
            endpoint_url=self._endpoint,
            region_name=AWS_CREDENTIALS["region"],
            aws_access_key_id=AWS_CREDENTIALS["access_key_id"],
            aws_secret_access_key=AWS_CREDENTIALS["secret_access_key"],
        ) as client:

            async def send(body: bytes, headers: dict[str, str]) -> None:
                await client.send_message(
                    QueueUrl=self.url,
                    MessageBody=body.decode(),
                    MessageAttributes={
                        name: {"DataType": "String", "StringValue": headers[name]}
                        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                    },
                )

            await _in_flight(bodies, send)


class RabbitQueue(Queue):
    kind = "rabbitmq"

    def __init__(self, emulators: Emulators) -> None:
        assert emulators.amqp_url is not None
        self.amqp_url = emulators.amqp_url
        self.exchange = "bench-" + uuid.uuid4().hex[:10]
        asyncio.run(self._declare())

    async def _declare(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC)
            queue = await channel.declare_queue(self.exchange, durable=True)
            await queue.bind(exchange, "#")

    def config(self) -> dict[str, Any]:
        return {"url": self.amqp_url, "exchange": self.exchange}

    def depth(self) -> int:
        return asyncio.run(self._depth())

    async def _depth(self) -> int:
        import aio_pika

        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(self.exchange, passive=True)
            return int(queue.declaration_result.message_count or 0)

    async def bare(self, bodies: list[tuple[bytes, dict[str, str]]]) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await channel.get_exchange(self.exchange, ensure=False)

            async def send(body: bytes, headers: dict[str, str]) -> None:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        headers={
                            name: headers[name]
                            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                        },
                        content_type="application/json",
                        message_id=headers["webhook-id"],
                        type=EVENT_TYPE,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=EVENT_TYPE,
                    mandatory=True,
                )

            await _in_flight(bodies, send)


async def _in_flight(
    bodies: list[tuple[bytes, dict[str, str]]],
    send: Callable[[bytes, dict[str, str]], Awaitable[None]],
) -> None:
    """Every body sent, CONCURRENCY at a time, as a lane's workers send."""
    pending = iter(bodies)

    async def worker() -> None:
        for body, headers in pending:
            await send(body, headers)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


class Destinations:
    name = "destinations"
    title = "events per second to SQS (moto) and RabbitMQ, against a bare loop of their clients"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        infrastructure = harness.infrastructure()
        topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_EVENTS}"
        results = []
        with provide_emulators(pubsub=False) as emulators:
            env = {
                "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
                "HOOKHUB_AWS_ENDPOINT_URL": emulators.aws_endpoint_url,
            }
            kinds: list[Callable[[Emulators], Queue]] = [SqsQueue]
            if emulators.amqp_url is not None:
                kinds.append(RabbitQueue)
            for queue_of in kinds:
                results.append(self._one(harness, emulators, queue_of, env, topic))
            if emulators.amqp_url is None:  # the SQS table says why RabbitMQ's is missing
                results[0].notes.append(f"no RabbitMQ table: {emulators.skipped}")
        return results

    def _one(
        self,
        harness: Harness,
        emulators: Emulators,
        queue_of: Callable[[Emulators], Queue],
        env: dict[str, str],
        topic: str,
    ) -> BenchmarkResult:
        infrastructure = harness.infrastructure()
        ours_queue, bare_queue = queue_of(emulators), queue_of(emulators)
        kind = ours_queue.kind
        count = int(os.environ.get("BENCH_DESTINATION_EVENTS", EVENTS[kind]))
        workspace = f"ws_bench_{kind}"
        run = harness.run_id + kind

        delivery = harness.start_service("delivery", env=env, name=f"delivery-{kind}")
        created = httpx.post(
            delivery.url + "/api/outgoing-webhooks",
            headers={"Authorization": f"Bearer {infrastructure.admin_token}"},
            json={
                "workspace_id": workspace,
                "events": ["*"],
                "max_concurrency": CONCURRENCY,
                "destination": {"type": kind, "config": ours_queue.config()},
            },
            timeout=10,
        )
        if created.status_code != 201:
            raise BenchError(f"creating the {kind} endpoint: {created.status_code} {created.text}")
        secret = created.json()["secret"]
        # One event end to end before anything is timed: the path works.
        _publish(infrastructure.kafka_bootstrap, topic, [_event(workspace, run, "check", 0)])
        check = Arrivals(ours_queue.depth, 1, 60)
        check.start()
        if check.measurement("check").ok != 1:
            raise BenchError(f"a first event did not reach {kind}; see {delivery.child.log_path}")
        delivery.stop()

        events = [_event(workspace, run, "burst", seq) for seq in range(count)]
        _publish(infrastructure.kafka_bootstrap, topic, events)
        arrivals = Arrivals(ours_queue.depth, count + 1, max(180.0, count / 20))
        arrivals.start()
        delivery = harness.start_service("delivery", env=env, name=f"delivery-{kind}")
        ours = arrivals.measurement(f"hookhub delivery → {kind}")
        delivery.stop()

        bodies = [
            webhook_request(run, "bare", seq, time.time(), secret, utcnow()) for seq in range(count)
        ]
        arrivals = Arrivals(bare_queue.depth, count, max(180.0, count / 20))
        arrivals.start()
        asyncio.run(bare_queue.bare(bodies))
        base = arrivals.measurement(f"bare {_client(kind)} loop, {CONCURRENCY} in flight")
        ratio = ours.rps / base.rps if base.rps else 0.0
        return BenchmarkResult(
            f"destinations-{kind}",
            f"events per second to {kind} ({EMULATOR[kind]})",
            ours,
            base,
            notes=[
                f"{count:,} message.created events ({len(bodies[0][0]):,}-byte envelopes), "
                f"published before the delivery process was started; {CONCURRENCY} in flight "
                "both sides; timed at the queue, first message → last",
                f"ratio {ratio:.2f} (target ≥ {TARGET})",
            ],
            setup=f"{count:,} pre-published events, {CONCURRENCY} in flight",
            unit="events/s",
        )


def _client(kind: str) -> str:
    return "aiobotocore send_message" if kind == "sqs" else "aio-pika publish (confirms)"


def _event(workspace: str, run: str, phase: str, seq: int) -> ChatEvent:
    return ChatEvent(
        id=f"evt_bench_{run}_{phase}_{seq:07d}",
        type=EVENT_TYPE,
        workspace_id=workspace,
        occurred_at=utcnow(),
        actor=ACTOR,
        data=message_data(seq, time.time()),
    )


def _publish(bootstrap: str, topic: str, events: list[ChatEvent]) -> None:
    from bench.delivery import publish_all

    asyncio.run(publish_all(bootstrap, topic, events))


BENCHMARK = Destinations()
