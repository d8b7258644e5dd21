"""`destinations`: events per second to SQS (moto's server) and RabbitMQ through hookhub's
delivery, each beside a bare loop of the same client (aiobotocore, aio-pika with publisher
confirms) sending the same signed envelopes, in the same run (SPEC §21, issue #63); and
`hookhub listen`'s round trip beside a bare WebSocket echo (bench/listen.py).

For each: one delivery process is started on a backlog of BENCH_DESTINATION_EVENTS chat
events (published before it starts) with one endpoint whose destination is a fresh queue;
then the bare loop sends as many envelopes, built as delivery builds them, to another fresh
queue, with as many in flight as the endpoint's `max_concurrency`. Both are timed by the
destination's acknowledgements, first to last: hookhub's deliveries' `completed_at` (the
moment each answer came), the loop's own clock at each answer. Nothing polls the
destinations meanwhile (moto's SQS answers more slowly the more its queue holds, and a
poll of its depth costs it as much as a send).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bench.harness import BenchError, BenchmarkResult, CpuWindow, Harness, Measurement
from bench.listen import listen_round_trip
from bench.sender import EVENT_TYPE, message_data, webhook_request
from services.delivery.deliveries.repository import DELIVERIES
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.ids import utcnow
from tests.emulators import AWS_CREDENTIALS, Emulators, provide_emulators

EVENTS = {"sqs": 600, "rabbitmq": 5000}
EMULATOR = {"sqs": "moto's server", "rabbitmq": "rabbitmq-server"}
CONCURRENCY = int(os.environ.get("BENCH_DESTINATION_CONCURRENCY", "32"))  # both sides
TARGET = 0.7
ACTOR = {"type": "user", "id": "usr_01jcz8w3m5q7r9t2v4x6y8"}


def rate(label: str, count: int, first: float, last: float) -> Measurement:
    """`count` acknowledgements from `first` to `last` (seconds), as a table's row."""
    window = last - first
    per_second = (count - 1) / window if window > 0 else 0.0
    return Measurement(label, per_second, None, None, None, None, count, 0, {}, window, {})


class Queue:
    """A destination's fresh queue: its config for an endpoint and a bare sender to it."""

    kind: str

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    async def bare(self, bodies: list[tuple[bytes, dict[str, str]]]) -> list[float]:
        """Sends every body as a lane would; when each was acknowledged (time.monotonic())."""
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

    async def bare(self, bodies: list[tuple[bytes, dict[str, str]]]) -> list[float]:
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

            return await _in_flight(bodies, send)


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

    async def bare(self, bodies: list[tuple[bytes, dict[str, str]]]) -> list[float]:
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

            return await _in_flight(bodies, send)


async def _in_flight(
    bodies: list[tuple[bytes, dict[str, str]]],
    send: Callable[[bytes, dict[str, str]], Awaitable[None]],
) -> list[float]:
    """Every body sent, CONCURRENCY at a time, as a lane's workers send; when each send was
    answered."""
    pending = iter(bodies)
    answered: list[float] = []

    async def worker() -> None:
        for body, headers in pending:
            await send(body, headers)
            answered.append(time.monotonic())

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return answered


class Destinations:
    name = "destinations"
    title = (
        "events per second to SQS (moto) and RabbitMQ, against a bare loop of their clients; "
        "hookhub listen's round trip, against a bare WebSocket echo"
    )

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        infrastructure = harness.infrastructure()
        topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_EVENTS}"
        results = []
        # "rabbitmq": that table only; "listen": hookhub listen's alone (no emulators).
        wanted = [k for k in os.environ.get("BENCH_DESTINATIONS", "").split(",") if k]
        if not wanted or {"sqs", "rabbitmq"} & set(wanted):
            with provide_emulators(pubsub=False) as emulators:
                env = {
                    "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
                    "HOOKHUB_AWS_ENDPOINT_URL": emulators.aws_endpoint_url,
                }
                kinds: list[Callable[[Emulators], Queue]] = [SqsQueue]
                if emulators.amqp_url is not None:
                    kinds.append(RabbitQueue)
                if wanted:
                    kinds = [k for k in kinds if getattr(k, "kind", "") in wanted]
                for queue_of in kinds:
                    results.append(self._one(harness, emulators, queue_of, env, topic))
                if emulators.amqp_url is None and results:  # why RabbitMQ's table is missing
                    results[0].notes.append(f"no RabbitMQ table: {emulators.skipped}")
        if not wanted or "listen" in wanted:
            results.append(listen_round_trip(harness))
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
        endpoint_id = created.json()["id"]
        _completed(infrastructure, endpoint_id, 1, delivery.child.log_path, timeout=60)
        delivery.stop()

        events = [_event(workspace, run, "burst", seq) for seq in range(count)]
        _publish(infrastructure.kafka_bootstrap, topic, events)
        delivery = harness.start_service("delivery", env=env, name=f"delivery-{kind}")
        process = "moto" if kind == "sqs" else kind  # tests/emulators.py's names
        pids = {**infrastructure.pids(), process: emulators.pids[process]}
        # The processes' CPU from the first delivery of the burst to the last (about).
        window = CpuWindow({**pids, "delivery": delivery.child.process.pid})
        log = delivery.child.log_path
        _completed(infrastructure, endpoint_id, 2, log, timeout=120, every=0.05)
        window.open()
        times = _completed(infrastructure, endpoint_id, count + 1, log, max(180.0, count / 10))
        window.close()
        delivery.stop()
        ours = rate(f"hookhub delivery → {kind}", count, times[1], times[-1])
        window.apply(ours)

        bodies = [
            webhook_request(run, "bare", seq, time.time(), secret, utcnow()) for seq in range(count)
        ]
        with CpuWindow(pids) as window:
            answered = asyncio.run(bare_queue.bare(bodies))
        base = rate(
            f"bare {_client(kind)} loop, {CONCURRENCY} in flight", count, answered[0], answered[-1]
        )
        window.apply(base)
        ratio = ours.rps / base.rps if base.rps else 0.0
        return BenchmarkResult(
            f"destinations-{kind}",
            f"events per second to {kind} ({EMULATOR[kind]})",
            ours,
            base,
            notes=[
                f"{count:,} message.created events ({len(bodies[0][0]):,}-byte envelopes), "
                f"published before the delivery process was started; {CONCURRENCY} in flight "
                "both sides; timed by the destination's acknowledgements, first → last "
                "(hookhub: its deliveries' completed_at; the loop: its clock at each answer)",
                f"ratio {ratio:.2f} (target ≥ {TARGET})",
            ],
            setup=f"{count:,} pre-published events, {CONCURRENCY} in flight",
            unit="events/s",
        )


def _completed(
    infrastructure: Any, endpoint_id: str, count: int, log: Any, timeout: float, every: float = 1.0
) -> list[float]:
    """Once the endpoint has `count` completed deliveries (looked for `every` seconds):
    their `completed_at`, oldest first, as seconds."""
    deadline = time.monotonic() + timeout
    query = {"endpoint_id": endpoint_id, "status": "completed"}
    with infrastructure.database() as db:
        while db[DELIVERIES].count_documents(query) < count:
            if time.monotonic() > deadline:
                raise BenchError(f"{count} deliveries not completed in {timeout:g} s; see {log}")
            time.sleep(every)
        found = db[DELIVERIES].find(query, {"completed_at": 1})
        return sorted(doc["completed_at"].timestamp() for doc in found)


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
