"""Claim-checked bodies are removed only once their retention passed and every consumer
group of the topic is past their records (worked out from committed offsets)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from bson import ObjectId

from shared.domain import claim_check
from shared.kernel.ids import utcnow
from shared.kernel.kafka import topic_offsets
from shared.kernel.mongo import Database
from shared.kernel.settings import GatewaySettings
from tests.infra import Infra
from tests.support import make_settings, new_namespace


async def _body(db: Database, age: timedelta) -> ObjectId:
    """A stored body, as GridFS lays it out, received `age` ago."""
    file_id = ObjectId()
    await db["payloads.chunks"].insert_one({"files_id": file_id, "n": 0, "data": b"{}"})
    await db["payloads.files"].insert_one(
        {"_id": file_id, "length": 2, "chunkSize": 261120, "uploadDate": utcnow() - age}
    )
    return file_id


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_a_body_stays_until_every_group_is_past_and_its_retention_passed(
    infra: Infra, db: Database, tmp_path: Path
) -> None:
    settings = make_settings(
        GatewaySettings, infra, new_namespace(), tmp_path, claim_check_retention="10m"
    )
    topic = settings.topic("bodies-" + uuid.uuid4().hex[:6])
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    for n in range(3):
        await producer.send_and_wait(topic, b"{}", partition=n % 2)
    await producer.stop()
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    fanout, notify = f"{topic}.fanout", f"{topic}.notify"
    await _commit(settings.kafka_bootstrap, fanout, {p0: 2, p1: 1})  # read everything
    await _commit(settings.kafka_bootstrap, notify, {p0: 1})  # one record behind on p0

    offsets = await topic_offsets(settings, topic)
    assert offsets.ends == {0: 2, 1: 1}
    assert offsets.groups == {fanout: {0: 2, 1: 1}, notify: {0: 1}}
    assert offsets.past({0: 1, 1: 0})
    assert not offsets.past({0: 2, 1: 1})

    old = await _body(db, timedelta(hours=1))  # its record is among those three
    recent = await _body(db, timedelta(minutes=1))  # within its retention
    sweep = claim_check.ReadBodies(db, settings, topic)
    # A group is behind the ends seen now: nothing goes, however old.
    assert (await sweep.remove(utcnow(), 100))[claim_check.BUCKET] == 0
    assert await db["payloads.files"].count_documents({}) == 2

    await _commit(settings.kafka_bootstrap, notify, {p0: 2, p1: 1})
    # Asked again once ASK_EVERY has passed (a pass asks once, not on every batch).
    assert (await sweep.remove(utcnow(), 100))[claim_check.BUCKET] == 0
    removed = await sweep.remove(utcnow() + sweep.ASK_EVERY * 1.1, 100)
    assert removed == {claim_check.BUCKET: 1, f"{claim_check.BUCKET}.chunks": 1}
    assert await db["payloads.files"].find_one({"_id": old}) is None
    assert await db["payloads.chunks"].find_one({"files_id": old}) is None
    assert await db["payloads.files"].find_one({"_id": recent}) is not None
    assert await db["payloads.chunks"].find_one({"files_id": recent}) is not None
    # Past its retention, and every group past what was there when it was stored.
    later = utcnow() + timedelta(minutes=15)
    assert (await sweep.remove(later, 100))[claim_check.BUCKET] == 1
    assert await db["payloads.files"].count_documents({}) == 0


async def test_bodies_stay_while_kafka_cannot_say_who_read_them(
    infra: Infra, db: Database, tmp_path: Path
) -> None:
    settings = make_settings(
        GatewaySettings,
        infra,
        new_namespace(),
        tmp_path,
        claim_check_retention="1m",
        kafka_bootstrap="127.0.0.1:1",
        kafka_publish_timeout_seconds=0.5,
    )
    await _body(db, timedelta(days=30))
    sweep = claim_check.ReadBodies(db, settings, settings.topic("hookhub.provider.events"))
    assert (await sweep.remove(utcnow(), 100))[claim_check.BUCKET] == 0
    assert await db["payloads.files"].count_documents({}) == 1
