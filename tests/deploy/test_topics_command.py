"""`hookhub topics ensure` (the chart's topics Job) against the session's broker: it creates
every topic the services use with the configured partitions, says what it did, and a second
run changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from services.cli import SERVICES, load_definition
from shared.kernel.envelopes import Topic
from shared.kernel.kafka import DEAD_LETTER_TOPIC
from tests.infra import Infra
from tests.support import Ran, new_namespace, run_command


def run_ensure(env: dict[str, str], log_path: Path) -> Ran:
    return run_command(["topics", "ensure"], {**os.environ, **env}, log_path)


async def partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {item["topic"]: len(item["partitions"]) for item in described}


async def test_topics_ensure_creates_every_topic_once_with_the_configured_partitions(
    infra: Infra, tmp_path: Path
) -> None:
    namespace = new_namespace()
    env = {
        "HOOKHUB_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HOOKHUB_TOPIC_NAMESPACE": namespace,
        "HOOKHUB_KAFKA_PARTITIONS": "2",
        "HOOKHUB_KAFKA_REPLICATION_FACTOR": "1",
    }
    internal = [t for name in SERVICES for t in load_definition(name).internal_topics]
    expected = [f"{namespace}.{t}" for t in dict.fromkeys([*Topic, DEAD_LETTER_TOPIC, *internal])]

    first = run_ensure(env, tmp_path / "first.log")
    assert first.returncode == 0, first.output
    for name in expected:
        assert f"created {name} (2 partitions, replication factor 1)" in first.output
    assert f"done: {len(expected)} created, 0 already there" in first.output
    assert await partitions(infra.kafka_bootstrap, expected) == dict.fromkeys(expected, 2)

    again = run_ensure({**env, "HOOKHUB_KAFKA_PARTITIONS": "4"}, tmp_path / "again.log")
    assert again.returncode == 0, again.output
    assert "\ncreated " not in "\n" + again.output
    assert f"done: 0 created, {len(expected)} already there" in again.output
    for name in expected:
        assert f"exists  {name} (left as it is)" in again.output
    # Existing topics are never changed.
    assert await partitions(infra.kafka_bootstrap, expected) == dict.fromkeys(expected, 2)


def test_topics_ensure_without_a_broker_fails_naming_it(tmp_path: Path) -> None:
    result = run_ensure(
        {
            "HOOKHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "HOOKHUB_KAFKA_PUBLISH_TIMEOUT_SECONDS": "2",
        },
        tmp_path / "ensure.log",
    )
    assert result.returncode == 1, result.output
    assert "hookhub topics ensure: 127.0.0.1:9" in result.output
    assert "created " not in result.output
