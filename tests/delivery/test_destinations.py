"""Destinations (SPEC §21) against their real implementations: moto's server (SQS, SNS,
EventBridge, Kinesis, S3), a RabbitMQ node, the suite's Kafka broker and the Pub/Sub
emulator (tests/emulators.py). Each event arrives once, signed so that `standardwebhooks`
verifies it from the message's attributes; a missing queue fails with its reason, is
retried and dead-lettered; FIFO keeps each key's order; a kill -9 loses nothing.

What a consumer reads is read with the services' own clients (boto3, aio-pika, aiokafka,
Pub/Sub's REST API), as a subscriber would."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import aio_pika
import boto3
import httpx
import pytest
import standardwebhooks.webhooks
import trustme
from aiohttp import ClientSession, web
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.helpers import create_ssl_context
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from bench.tcp_proxy import Proxy
from services.delivery.app import definition
from services.delivery.destinations.base import Surroundings
from services.delivery.destinations.pubsub import PubSub
from services.delivery.destinations.schemas import PubSubConfig
from services.delivery.outgoing_webhooks.repository import COLLECTION as ENDPOINTS
from services.sandbox.pubsub import FakePubSub
from shared.domain.platform import create_app
from shared.kernel.egress import EgressPolicy
from shared.kernel.embedded import free_port, start_broker
from shared.kernel.ids import utcnow
from shared.kernel.kafka import ensure_topics
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.killing import kill_mid_stream
from tests.emulators import AWS_CREDENTIALS, Emulators, provide_emulators
from tests.infra import Infra
from tests.spans import recorded
from tests.support import (
    KafkaTap,
    RunningService,
    admin_headers,
    serve,
    served,
    until,
)

WORKSPACE = "ws_dest"
ACCOUNT = "123456789012"  # moto's


@dataclass
class Got:
    """A message as its consumer read it: the body and the attributes it came with."""

    body: bytes
    headers: dict[str, str]
    key: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)["data"]
        return data


Reader = Callable[[], Awaitable[list[Got]]]


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    with provide_emulators() as started:
        if started.skipped:  # the RabbitMQ parts are left out; the run's summary says why
            warnings.warn(f"RabbitMQ destinations not tested: {started.skipped}", stacklevel=1)
        yield started


@pytest.fixture(scope="module")
async def pubsub_url(emulators: Emulators) -> AsyncIterator[str]:
    """The gcloud emulator, else hookhub's stand-in of Pub/Sub's REST API."""
    if emulators.pubsub_endpoint_url is not None:
        yield emulators.pubsub_endpoint_url
        return
    async with served(FakePubSub()) as fake:
        yield fake.base_url


@pytest.fixture(scope="module")
def destination_settings(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, emulators: Emulators, pubsub_url: str
) -> DeliverySettings:
    return settings_for(
        infra,
        tmp_path_factory,
        aws_endpoint_url=emulators.aws_endpoint_url,
        pubsub_endpoint_url=pubsub_url,
    )


@pytest.fixture(scope="module")
async def delivery(destination_settings: DeliverySettings) -> AsyncIterator[RunningService]:
    async with serve(create_app(definition(), destination_settings)) as running:
        yield running


def aws(emulators: Emulators, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=emulators.aws_endpoint_url,
        region_name=AWS_CREDENTIALS["region"],
        aws_access_key_id=AWS_CREDENTIALS["access_key_id"],
        aws_secret_access_key=AWS_CREDENTIALS["secret_access_key"],
    )


def name() -> str:
    return "hookhub-" + uuid.uuid4().hex[:10]


async def create(
    delivery: RunningService, kind: str, config: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    body = {
        "workspace_id": WORKSPACE,
        "destination": {"type": kind, "config": config},
        "events": ["*"],
        **fields,
    }
    answer = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def publish(
    delivery: RunningService,
    event_type: str,
    workspace: str = WORKSPACE,
    key: str | None = None,
    **data: Any,
) -> str:
    event_id = "evt_" + uuid.uuid4().hex
    event: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "workspace_id": workspace,
        "occurred_at": utcnow().isoformat(),
        "data": data,
    }
    if key is not None:
        event["ordering_key"] = key
    answer = await delivery.client.post("/api/events", json=event, headers=admin_headers())
    assert answer.status_code == 202, answer.text
    return event_id


async def deliveries(
    delivery: RunningService, endpoint_id: str, status: str
) -> list[dict[str, Any]]:
    answer = await delivery.client.get(
        "/api/deliveries",
        params={"webhook_id": endpoint_id, "status": status, "limit": 100},
        headers=admin_headers(),
    )
    listed: list[dict[str, Any]] = answer.json()["data"]
    return listed


async def gathered(
    read: Reader, count: int, got: list[Got] | None = None, timeout: float = 90
) -> list[Got]:
    got = [] if got is None else got
    deadline = time.monotonic() + timeout
    while len(got) < count:
        got.extend(await read())
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(got)} of {count} messages arrived within {timeout} s")
        await asyncio.sleep(0.05)
    return got


# --- what each destination's consumer reads ---------------------------------------------


def sqs_queue(emulators: Emulators, fifo: bool = False) -> tuple[str, str]:
    """A new queue: (its URL, its ARN)."""
    sqs = aws(emulators, "sqs")
    attributes = {"FifoQueue": "true"} if fifo else {}
    url = sqs.create_queue(QueueName=name() + (".fifo" if fifo else ""), Attributes=attributes)[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def sqs_reader(
    emulators: Emulators, url: str, unwrap: Callable[[dict[str, Any]], Got] | None = None
) -> Reader:
    sqs = aws(emulators, "sqs")

    def receive() -> list[Got]:
        """What the queue holds now, read ten at a time and deleted."""
        got: list[Got] = []
        while messages := sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["MessageGroupId"],
            WaitTimeSeconds=0,
        ).get("Messages", []):
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            for message in messages:
                if unwrap is not None:
                    got.append(unwrap(message))
                    continue
                attributes = {
                    k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()
                }
                group = message.get("Attributes", {}).get("MessageGroupId")
                got.append(Got(message["Body"].encode(), attributes, group))
        return got

    return lambda: asyncio.to_thread(receive)


def from_detail(message: dict[str, Any]) -> Got:
    """An EventBridge event on the rule's queue: the signing headers beside the body, in
    its detail (SPEC §21)."""
    detail = json.loads(message["Body"])["detail"]
    return Got(detail.pop("body").encode(), detail)


def sns_reader(emulators: Emulators) -> tuple[str, Reader]:
    topic = aws(emulators, "sns").create_topic(Name=name())["TopicArn"]
    url, arn = sqs_queue(emulators)
    aws(emulators, "sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"}
    )
    return topic, sqs_reader(emulators, url)


def eventbridge_reader(emulators: Emulators) -> tuple[str, Reader]:
    events = aws(emulators, "events")
    bus = name()
    events.create_event_bus(Name=bus)
    events.put_rule(Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["hookhub"]}))
    url, arn = sqs_queue(emulators)
    events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return bus, sqs_reader(emulators, url, from_detail)


def kinesis_reader(emulators: Emulators) -> tuple[str, Reader]:
    kinesis = aws(emulators, "kinesis")
    stream = name()
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = [
        kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    ]

    def records() -> list[Got]:
        answer = kinesis.get_records(ShardIterator=iterator[0])
        iterator[0] = answer["NextShardIterator"]
        got = []
        for record in answer["Records"]:
            carried = json.loads(record["Data"])
            got.append(Got(carried.pop("body").encode(), carried, record["PartitionKey"]))
        return got

    return stream, lambda: asyncio.to_thread(records)


def s3_reader(emulators: Emulators) -> tuple[str, Reader]:
    s3 = aws(emulators, "s3")
    bucket = name()
    s3.create_bucket(Bucket=bucket)
    seen: set[str] = set()

    def objects() -> list[Got]:
        got = []
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            if item["Key"] in seen:
                continue
            seen.add(item["Key"])
            stored = s3.get_object(Bucket=bucket, Key=item["Key"])
            got.append(Got(stored["Body"].read(), stored["Metadata"], item["Key"]))
        return got

    return bucket, lambda: asyncio.to_thread(objects)


async def pubsub_reader(url: str, project: str = "hookhub-test") -> tuple[str, Reader]:
    topic = name()
    base = f"{url}/v1/projects/{project}"
    # Generous: the emulator is a JVM, slow to answer its first calls on a busy machine.
    async with httpx.AsyncClient(timeout=60) as client:
        assert (await client.put(f"{base}/topics/{topic}")).status_code == 200
        subscription = {
            "topic": f"projects/{project}/topics/{topic}",
            "enableMessageOrdering": True,
        }
        answer = await client.put(f"{base}/subscriptions/{topic}", json=subscription)
        assert answer.status_code == 200, answer.text

    async def pull() -> list[Got]:
        # A pull waits for messages; none within its time is an empty answer.
        async with httpx.AsyncClient() as client:
            try:
                answer = await client.post(
                    f"{base}/subscriptions/{topic}:pull",
                    json={"maxMessages": 100, "returnImmediately": True},
                    timeout=10,
                )
            except httpx.ReadTimeout:
                return []
            received = answer.json().get("receivedMessages", [])
            if received:
                ack = {"ackIds": [m["ackId"] for m in received]}
                await client.post(f"{base}/subscriptions/{topic}:acknowledge", json=ack)
        return [
            Got(
                base64.b64decode(m["message"]["data"]),
                m["message"].get("attributes", {}),
                m["message"].get("orderingKey") or None,
            )
            for m in received
        ]

    return topic, pull


async def rabbitmq_reader(amqp_url: str) -> tuple[str, Reader, Callable[[], Awaitable[None]]]:
    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    exchange_name = name()
    exchange = await channel.declare_exchange(
        exchange_name, aio_pika.ExchangeType.TOPIC, auto_delete=False
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")

    async def get() -> list[Got]:
        got = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            headers = {
                k: v.decode() if isinstance(v, bytes) else str(v)
                for k, v in message.headers.items()
            }
            got.append(Got(message.body, headers, message.routing_key))
        return got

    return exchange_name, get, connection.close


async def kafka_reader(
    settings: DeliverySettings,
) -> tuple[str, Reader, Callable[[], Awaitable[None]]]:
    topic = name()
    await ensure_topics(settings, [topic])
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()

    async def read() -> list[Got]:
        batch = await consumer.getmany(timeout_ms=200)
        return [
            Got(r.value, {k: v.decode() for k, v in r.headers}, r.key.decode() if r.key else None)
            for records in batch.values()
            for r in records
        ]

    return topic, read, consumer.stop


def verified(secret: str, got: Got) -> dict[str, Any]:
    """The envelope, once `standardwebhooks` (not hookhub) has verified it as a webhook."""
    payload: dict[str, Any] = standardwebhooks.webhooks.Webhook(secret).verify(
        got.body, got.headers
    )
    return payload


# --- the tests ------------------------------------------------------------------------------


async def test_every_destination_gets_each_event_once_signed_verifiably(
    delivery: RunningService,
    emulators: Emulators,
    pubsub_url: str,
    destination_settings: DeliverySettings,
) -> None:
    aws_config = dict(AWS_CREDENTIALS)
    closers: list[Callable[[], Awaitable[None]]] = []
    queue_url, _ = await asyncio.to_thread(sqs_queue, emulators)
    topic_arn, sns_read = await asyncio.to_thread(sns_reader, emulators)
    bus, eventbridge_read = await asyncio.to_thread(eventbridge_reader, emulators)
    stream, kinesis_read = await asyncio.to_thread(kinesis_reader, emulators)
    bucket, s3_read = await asyncio.to_thread(s3_reader, emulators)
    pubsub_topic, pubsub_read = await pubsub_reader(pubsub_url)
    kafka_topic, kafka_read, stop = await kafka_reader(destination_settings)
    closers.append(stop)
    wanted: dict[str, tuple[dict[str, Any], Reader]] = {
        "sqs": ({**aws_config, "queue_url": queue_url}, sqs_reader(emulators, queue_url)),
        "sns": ({**aws_config, "topic_arn": topic_arn}, sns_read),
        "eventbridge": ({**aws_config, "event_bus_name": bus}, eventbridge_read),
        "kinesis": ({**aws_config, "stream_name": stream}, kinesis_read),
        "s3": ({**aws_config, "bucket": bucket}, s3_read),
        "pubsub": ({"project": "hookhub-test", "topic": pubsub_topic}, pubsub_read),
        "kafka": (
            {"brokers": [destination_settings.kafka_bootstrap], "topic": kafka_topic},
            kafka_read,
        ),
    }
    # Kafka's endpoint transforms: what it sends, and what is signed, is the transformed body.
    transformed = "function handler(w) {\n  w.payload.data.transformed = true;\n  return w;\n}"
    if emulators.amqp_url is not None:
        exchange, rabbit_read, close = await rabbitmq_reader(emulators.amqp_url)
        closers.append(close)
        wanted["rabbitmq"] = ({"url": emulators.amqp_url, "exchange": exchange}, rabbit_read)
    try:
        workspace = "ws_" + uuid.uuid4().hex[:8]
        endpoints = {
            kind: await create(
                delivery,
                kind,
                config,
                workspace_id=workspace,
                **({"transformation": {"code": transformed}} if kind == "kafka" else {}),
            )
            for kind, (config, _) in wanted.items()
        }
        sent = [
            await publish(delivery, "message.created", workspace, channel_id="ch_1", n=0),
            await publish(delivery, "message.updated", workspace, channel_id="ch_2", n=1),
            await publish(delivery, "channel.created", workspace, channel_id="ch_3", n=2),
        ]
        for kind, (_, read) in wanted.items():
            got = await gathered(read, len(sent))
            secret = endpoints[kind]["secret"]
            envelopes = [verified(secret, message) for message in got]
            assert sorted(e["data"]["n"] for e in envelopes) == [0, 1, 2], kind
            assert all(e["data"].get("transformed") is (kind == "kafka" or None) for e in envelopes)
            assert len({message.headers["webhook-id"] for message in got}) == 3, kind
            # Every delivery ended at its first attempt: nothing more is on its way, and
            # nothing more has arrived.
            done = await _completed(delivery, endpoints[kind]["id"], 3)
            assert all(d["attempts"] == 1 for d in done), (kind, done)
            assert await read() == [], f"{kind}: a message arrived twice"
            if kind == "rabbitmq":
                assert {m.key for m in got} == {
                    "message.created",
                    "message.updated",
                    "channel.created",
                }
            if kind == "s3":
                day = utcnow().date().isoformat()
                assert all(m.key and m.key.startswith(f"{workspace}/{day}/evt_") for m in got)

        # The attempt log holds the destination's answer and what was sent.
        [one] = [
            d
            for d in await deliveries(delivery, endpoints["sqs"]["id"], "completed")
            if d["event_id"] == sent[0]
        ]
        detail = (
            await delivery.client.get(f"/api/deliveries/{one['id']}", headers=admin_headers())
        ).json()
        [attempt] = detail["attempt_log"]
        assert attempt["status_code"] == 200 and attempt["error"] is None
        assert "MessageId" in attempt["response_body"]
        assert attempt["request"]["method"] == "SQS" and attempt["request"]["url"] == queue_url
        assert set(attempt["request"]["headers"]) == {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
    finally:
        for close in closers:
            await close()


async def _completed(
    delivery: RunningService, endpoint_id: str, count: int
) -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]] | None:
        return await _all_completed(delivery, endpoint_id, count)

    done: list[dict[str, Any]] = await until(
        listed, timeout=60, what=f"{endpoint_id}'s deliveries completed"
    )
    return done


async def _all_completed(
    delivery: RunningService, endpoint_id: str, count: int
) -> list[dict[str, Any]] | None:
    done = await deliveries(delivery, endpoint_id, "completed")
    return done if len(done) == count else None


async def test_a_missing_queue_fails_with_its_reason_is_retried_and_dead_lettered(
    delivery: RunningService, emulators: Emulators, destination_settings: DeliverySettings
) -> None:
    missing = f"{emulators.aws_endpoint_url}/{ACCOUNT}/{name()}"
    queue = await create(
        delivery,
        "sqs",
        {**AWS_CREDENTIALS, "queue_url": missing},
        retry_schedule=[0, 0],
        workspace_id="ws_missing",
    )
    endpoints = [queue]
    if emulators.amqp_url is not None:
        # An exchange with no queue bound: the broker returns the message (mandatory).
        exchange, _, close = await rabbitmq_reader(emulators.amqp_url)
        await close()
        endpoints.append(
            await create(
                delivery,
                "rabbitmq",
                {"url": emulators.amqp_url, "exchange": exchange},
                retry_schedule=[0, 0],
                workspace_id="ws_missing",
            )
        )
    with recorded() as spans:
        await publish(delivery, "message.created", "ws_missing", channel_id="ch_1")
        for endpoint in endpoints:
            await _failed(delivery, endpoint["id"])
    # Each attempt a CLIENT span of the messaging conventions, not an HTTP POST.
    sent = [s for s in spans.exporter.get_finished_spans() if s.name == "send aws_sqs"]
    assert len(sent) == 3, [s.name for s in spans.exporter.get_finished_spans()]
    assert {(s.attributes or {}).get("messaging.destination.name") for s in sent} == {missing}
    assert not any("http.request.method" in (s.attributes or {}) for s in sent)
    for endpoint in endpoints:
        [failed] = await _failed(delivery, endpoint["id"])
        detail = (
            await delivery.client.get(f"/api/deliveries/{failed['id']}", headers=admin_headers())
        ).json()
        log = detail["attempt_log"]
        assert len(log) == 3, log
        if endpoint is queue:
            assert all(a["status_code"] == 400 and "NonExistentQueue" in a["error"] for a in log), (
                log
            )
        else:
            assert all(a["status_code"] is None and "unroutable" in a["error"] for a in log), log
    async with KafkaTap.of(destination_settings, "hookhub.delivery.dead-letters") as tap:
        letters = await tap.wait_for(
            lambda v: v["endpoint_id"] in {e["id"] for e in endpoints}, len(endpoints)
        )
    assert len(letters) == len(endpoints)
    assert (
        "NonExistentQueue"
        in next(v for v in letters if v["endpoint_id"] == queue["id"])["last_error"]
    )


async def _failed(delivery: RunningService, endpoint_id: str) -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]]:
        return await deliveries(delivery, endpoint_id, "failed")

    failed: list[dict[str, Any]] = await until(listed, timeout=60, what="dead-lettered")
    return failed


async def test_rabbitmq_over_tls_trusts_the_private_ca_its_url_gives(
    delivery: RunningService, emulators: Emulators
) -> None:
    """An `amqps://` broker whose certificate a private CA signed: delivered to with that
    CA given in the URL as `cadata` (data, not a file of hookhub's), and refused without
    it, the certificate check's reason in the attempt log."""
    if emulators.amqps_url is None or emulators.amqp_url is None:
        pytest.skip(emulators.skipped)
    exchange, read, close = await rabbitmq_reader(emulators.amqp_url)
    workspace = "ws_" + uuid.uuid4().hex[:8]
    try:
        cadata = quote(cast(str, emulators.amqp_ca), safe="")
        trusted = await create(
            delivery,
            "rabbitmq",
            {"url": f"{emulators.amqps_url}?cadata={cadata}", "exchange": exchange},
            workspace_id=workspace,
        )
        untrusted = await create(
            delivery,
            "rabbitmq",
            {"url": emulators.amqps_url, "exchange": exchange},
            retry_schedule=[0],
            workspace_id=workspace,
        )
        await publish(delivery, "message.created", workspace, channel_id="ch_1", n=7)
        [got] = await gathered(read, 1)
        assert verified(trusted["secret"], got)["data"]["n"] == 7
        [failed] = await _failed(delivery, untrusted["id"])
        answer = await delivery.client.get(
            f"/api/deliveries/{failed['id']}", headers=admin_headers()
        )
        log = answer.json()["attempt_log"]
        assert log and all("CERTIFICATE_VERIFY_FAILED" in a["error"] for a in log), log
        assert await read() == []  # the one the trusting endpoint sent, nothing more
    finally:
        await close()


@contextlib.asynccontextmanager
async def tls_broker(log_dir: Path) -> AsyncIterator[tuple[str, str]]:
    """A Kafka broker over TLS whose certificate a private CA (trustme's) signed: a broker of
    its own (tansu speaks no TLS) advertising the port of a TLS front that relays to it.
    Yields its address and the CA's PEM."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    broker_port, front_port = free_port(), free_port()
    broker = start_broker(broker_port, log_dir, advertised_port=front_port, name="kafka-tls")
    front = Proxy(front_port, broker_port, ssl=server)
    try:
        await front.listen()
        yield f"127.0.0.1:{front_port}", ca.cert_pem.bytes().decode()
    finally:
        front.cut()
        broker.stop()


async def test_kafka_over_tls_trusts_the_private_ca_its_config_gives(
    delivery: RunningService, tmp_path: Path
) -> None:
    """A Kafka cluster whose certificate a private CA signed (Strimzi's cluster CA, say):
    delivered to with that CA's PEM as `ca_certificate`, and refused without it, the
    certificate check's reason in the attempt log (not only aiokafka's "Unable to
    bootstrap")."""
    async with tls_broker(tmp_path) as (address, ca):
        context = create_ssl_context(cadata=ca)
        topic = name()
        admin = AIOKafkaAdminClient(
            bootstrap_servers=address, security_protocol="SSL", ssl_context=context
        )
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        workspace = "ws_" + uuid.uuid4().hex[:8]
        config = {"brokers": [address], "topic": topic, "security_protocol": "SSL"}
        trusted = await create(
            delivery, "kafka", {**config, "ca_certificate": ca}, workspace_id=workspace
        )
        untrusted = await create(
            delivery, "kafka", config, retry_schedule=[0], workspace_id=workspace
        )
        await publish(delivery, "message.created", workspace, channel_id="ch_1", n=7)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=address,
            security_protocol="SSL",
            ssl_context=context,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 30)
        finally:
            await consumer.stop()
        headers = {k: v.decode() for k, v in record.headers}
        assert verified(trusted["secret"], Got(record.value, headers, None))["data"]["n"] == 7
        [failed] = await _failed(delivery, untrusted["id"])
        answer = await delivery.client.get(
            f"/api/deliveries/{failed['id']}", headers=admin_headers()
        )
        log = answer.json()["attempt_log"]
        assert log and all("CERTIFICATE_VERIFY_FAILED" in a["error"] for a in log), log


async def test_fifo_keeps_each_keys_order_with_the_destinations_own_keys(
    delivery: RunningService,
    emulators: Emulators,
    pubsub_url: str,
    destination_settings: DeliverySettings,
) -> None:
    workspace = "ws_fifo_" + uuid.uuid4().hex[:6]
    queue_url, _ = await asyncio.to_thread(sqs_queue, emulators, True)
    pubsub_topic, pubsub_read = await pubsub_reader(pubsub_url)
    kafka_topic, kafka_read, stop = await kafka_reader(destination_settings)
    readers = {
        "sqs": sqs_reader(emulators, queue_url),
        "pubsub": pubsub_read,
        "kafka": kafka_read,
    }
    configs: dict[str, dict[str, Any]] = {
        "sqs": {**AWS_CREDENTIALS, "queue_url": queue_url},
        "pubsub": {"project": "hookhub-test", "topic": pubsub_topic},
        "kafka": {"brokers": [destination_settings.kafka_bootstrap], "topic": kafka_topic},
    }
    try:
        for kind, config in configs.items():
            await create(delivery, kind, config, workspace_id=workspace, ordering="fifo")
        count = 6
        for n in range(count):
            for key in ("a", "b"):
                await publish(delivery, "message.created", workspace, key=key, key_seen=key, n=n)
        for kind, read in readers.items():
            got = await gathered(read, 2 * count)
            by_key: dict[str, list[int]] = defaultdict(list)
            for message in got:
                # The destination's own key is the ordering key: SQS's MessageGroupId,
                # Pub/Sub's orderingKey, the Kafka record's key.
                assert message.key == message.data["key_seen"], (kind, message)
                by_key[message.data["key_seen"]].append(message.data["n"])
            assert by_key == {"a": list(range(count)), "b": list(range(count))}, (kind, by_key)
    finally:
        await stop()


async def test_the_pubsub_stand_in_answers_as_the_emulator(emulators: Emulators) -> None:
    """The same calls to gcloud's emulator and to the stand-in the tests use without it:
    the same statuses and the same shapes."""
    if emulators.pubsub_endpoint_url is None:
        pytest.skip("gcloud's Pub/Sub emulator is not installed: nothing to compare with")

    async def conversation(base_url: str) -> list[tuple[int, Any]]:
        base = f"{base_url}/v1/projects/hookhub-test"
        topic = name()
        message = {"data": base64.b64encode(b"{}").decode(), "attributes": {"webhook-id": "msg_1"}}
        calls: list[tuple[str, str, Any]] = [
            ("PUT", f"/topics/{topic}", None),
            ("PUT", f"/topics/{topic}", None),
            ("PUT", "/topics/9bad", None),
            (
                "PUT",
                f"/subscriptions/{topic}",
                {"topic": f"projects/hookhub-test/topics/{topic}", "enableMessageOrdering": True},
            ),
            (
                "POST",
                f"/topics/{topic}:publish",
                {"messages": [{**message, "orderingKey": "k"}, message]},
            ),
            ("POST", f"/topics/{name()}:publish", {"messages": [message]}),
            (
                "POST",
                f"/subscriptions/{topic}:pull",
                {"maxMessages": 10, "returnImmediately": True},
            ),
        ]
        answers = []
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            for method, path, body in calls:
                answer = await client.request(method, path, json=body)
                answers.append((answer.status_code, answer.json()))
        return answers

    real = await conversation(emulators.pubsub_endpoint_url)
    async with served(FakePubSub()) as fake:
        ours = await conversation(fake.base_url)
    assert [status for status, _ in ours] == [status for status, _ in real], (ours, real)
    for (_, mine), (_, theirs) in zip(ours, real, strict=True):
        if "error" in theirs:
            assert mine["error"]["status"] == theirs["error"]["status"], (mine, theirs)
        else:
            assert set(mine) <= set(theirs) | {"enableMessageOrdering"}, (mine, theirs)
    pulled = [m["message"] for m in ours[-1][1]["receivedMessages"]]
    expected = [m["message"] for m in real[-1][1]["receivedMessages"]]
    assert [(m["attributes"], m.get("orderingKey")) for m in pulled][:1] == [
        (m["attributes"], m.get("orderingKey")) for m in expected
    ][:1]


async def test_config_errors_name_the_field_and_secrets_are_never_returned(
    delivery: RunningService, emulators: Emulators
) -> None:
    async def refused(destination: Any, **fields: Any) -> str:
        body = {"workspace_id": WORKSPACE, "events": ["*"], "destination": destination, **fields}
        answer = await delivery.client.post(
            "/api/outgoing-webhooks", json=body, headers=admin_headers()
        )
        assert answer.status_code == 422, (destination, answer.text)
        return answer.text

    assert "queue_url" in await refused({"type": "sqs", "config": {"region": "us-east-1"}})
    assert "topic_arn" in await refused({"type": "sns", "config": {"topic_arn": "not-an-arn"}})
    assert "nats" in await refused({"type": "nats", "config": {}})
    assert "secret_access_key" in await refused(
        {
            "type": "sqs",
            "config": {
                "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q",
                "access_key_id": "AKIA",
            },
        }
    )
    assert "destination.config.url" in await refused(
        {"type": "rabbitmq", "config": {"url": "amqp://u:p@10.1.2.3:5672/", "exchange": "x"}}
    )
    # aiormq reads files named in an AMQP URL's query: a workspace's URL names none.
    for query in ("cafile=/etc/passwd", "%63ertfile=/x.pem&keyfile=/x.key", "no_verify_ssl=1"):
        url = f"amqps://u:p@rabbit.example.com:5671/?heartbeat=30&{query}"
        assert "is not taken" in await refused({"type": "rabbitmq", "config": {"url": url}})
    assert "cadata" in await refused(
        {"type": "rabbitmq", "config": {"url": "amqps://rabbit.example.com/?cadata=%%%"}}
    )
    assert "brokers" in await refused(
        {"type": "kafka", "config": {"brokers": ["nohost"], "topic": "t"}}
    )
    kafka = {"brokers": ["kafka.example.com:9093"], "topic": "t"}
    pem = trustme.CA().cert_pem.bytes().decode()
    for config, said in (
        ({**kafka, "ca_certificate": pem}, "only with security_protocol SSL"),
        ({**kafka, "security_protocol": "SSL", "ca_certificate": "/etc/ssl/ca.pem"}, "in PEM"),
        ({**kafka, "security_protocol": "SSL", "ca_certificate": pem[:60] + pem[-30:]}, "PEM"),
    ):
        text = await refused({"type": "kafka", "config": config})
        assert "ca_certificate" in text and said in text, text
    assert "service_account" in await refused(
        {
            "type": "pubsub",
            "config": {"project": "my-project", "topic": "events", "service_account": "{}"},
        }
    )
    assert "one of the two" in await refused(
        {"type": "s3", "config": {"bucket": "hookhub-bucket"}}, url="https://example.com/hook"
    )

    amqp = "amqp://hookhub:rabbit-password@127.0.0.1:5672/"
    created = await create(
        delivery,
        "sqs",
        {
            "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q",
            "region": "us-east-1",
            "access_key_id": "AKIAEXAMPLE",
            "secret_access_key": "aws-secret-value",
        },
    )
    assert created["url"] is None
    assert created["destination"]["config"]["secret_access_key"] == "********"
    url = f"/api/outgoing-webhooks/{created['id']}"
    # A PATCH that leaves the secret out keeps it; another type's replaces it all.
    kept = await delivery.client.patch(
        url,
        json={
            "destination": {
                "type": "sqs",
                "config": {
                    "queue_url": "https://sqs.us-east-1.amazonaws.com/1/other",
                    "access_key_id": "AKIAEXAMPLE",
                },
            }
        },
        headers=admin_headers(),
    )
    assert kept.status_code == 200, kept.text
    assert kept.json()["destination"]["config"]["secret_access_key"] == "********"
    rabbit = await delivery.client.patch(
        url,
        json={"destination": {"type": "rabbitmq", "config": {"url": amqp}}},
        headers=admin_headers(),
    )
    assert rabbit.status_code == 200, rabbit.text
    assert (
        rabbit.json()["destination"]["config"]["url"] == "amqp://hookhub:********@127.0.0.1:5672/"
    )
    listed = await delivery.client.get(
        "/api/outgoing-webhooks", params={"workspace_id": WORKSPACE}, headers=admin_headers()
    )
    for answer in (json.dumps(created), kept.text, rabbit.text, listed.text):
        assert "aws-secret-value" not in answer and "rabbit-password" not in answer
    runtime = cast(Any, delivery.app).state.runtime
    stored = await runtime.db[ENDPOINTS].find_one({"_id": created["id"]})
    assert stored["destination"]["secrets"]["url"], stored  # sealed at rest
    assert "rabbit-password" not in json.dumps(stored, default=str)
    back = await delivery.client.patch(
        url, json={"url": "https://example.com/hook"}, headers=admin_headers()
    )
    assert back.json()["destination"] is None and back.json()["url"] == "https://example.com/hook"


EVENTS = 120
HELD_FROM = 40  # SQS calls from this one on wait for the kill


@pytest.mark.timeout(240)
async def test_kill_9_mid_stream_to_sqs_loses_nothing(
    infra: Infra, tmp_path: Path, emulators: Emulators
) -> None:
    """moto's server behind a pass-through proxy that answers the first HELD_FROM calls and
    holds every later one until the kill: killed mid-stream by construction."""
    queue_url, _ = await asyncio.to_thread(sqs_queue, emulators)
    killed = asyncio.Event()
    calls = 0

    async def forward(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls > HELD_FROM:
            await killed.wait()
        async with (
            ClientSession() as session,
            session.request(
                request.method,
                emulators.aws_endpoint_url + request.path_qs,
                headers=request.headers,
                data=await request.read(),
            ) as answer,
        ):
            kind = answer.headers.get("content-type", "")
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                content_type=None,
                headers={"content-type": kind},
            )

    proxy = web.Application()
    proxy.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(proxy)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    read = sqs_reader(emulators, queue_url)
    got: list[Got] = []

    async def arrived() -> int:
        got.extend(await read())
        return len({m.data["seq"] for m in got})

    try:
        log = await kill_mid_stream(
            infra,
            tmp_path,
            {"destination": {"type": "sqs", "config": {**AWS_CREDENTIALS, "queue_url": queue_url}}},
            events=EVENTS,
            held=lambda: calls > HELD_FROM,
            killed=killed,
            arrived=arrived,
            env={"HOOKHUB_AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"},
        )
    finally:
        killed.set()
        await runner.cleanup()
    ids_by_seq: dict[int, set[str]] = defaultdict(set)
    for message in got:
        ids_by_seq[message.data["seq"]].add(message.headers["webhook-id"])
    missing = sorted(set(range(EVENTS)) - set(ids_by_seq))
    assert not missing, f"{len(missing)} events never arrived (first: {missing[:5]}); see {log}"
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), (
        "a duplicate must share its webhook-id"
    )


def test_a_pubsub_service_account_signs_its_own_token_for_pubsub() -> None:
    """No token exchange: the key signs a JWT for Pub/Sub's audience, which Google checks
    with the key's public half (verified here with google-auth's own decoder)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {"client_email": "hookhub@my-project.iam.gserviceaccount.com", "private_key": pem}
    config = PubSubConfig(project="my-project", topic="events", service_account=json.dumps(account))
    publisher = PubSub(config, Surroundings(EgressPolicy()))
    assert (
        publisher.address
        == "https://pubsub.googleapis.com/v1/projects/my-project/topics/events:publish"
    )
    scheme, token = publisher._authorization()["authorization"].split()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = jwt.decode(token, certs=public, audience="https://pubsub.googleapis.com/")
    assert scheme == "Bearer" and claims["iss"] == claims["sub"] == account["client_email"]
