"""`hookhub topics ensure` (the chart's topics Job) against the session's broker: it creates
every topic the services use with the configured partitions, says what it did, and a second
run changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from services.cli import SERVICES, load_definition
from shared.kernel.envelopes import Topic
from shared.kernel.kafka import DEAD_LETTER_TOPIC
from tests.infra import Infra
from tests.support import new_namespace


def run_ensure(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "topics", "ensure"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )


async def partitions(bootstrap: str, names: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return {item["topic"]: len(item["partitions"]) for item in described}


async def test_topics_ensure_creates_every_topic_once_with_the_configured_partitions(
    infra: Infra,
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

    first = run_ensure(env)
    assert first.returncode == 0, first.stderr
    for name in expected:
        assert f"created {name} (2 partitions, replication factor 1)" in first.stdout
    assert f"done: {len(expected)} created, 0 already there" in first.stdout
    assert await partitions(infra.kafka_bootstrap, expected) == dict.fromkeys(expected, 2)

    again = run_ensure({**env, "HOOKHUB_KAFKA_PARTITIONS": "4"})
    assert again.returncode == 0, again.stderr
    assert "\ncreated " not in "\n" + again.stdout
    assert f"done: 0 created, {len(expected)} already there" in again.stdout
    for name in expected:
        assert f"exists  {name} (left as it is)" in again.stdout
    # Existing topics are never changed.
    assert await partitions(infra.kafka_bootstrap, expected) == dict.fromkeys(expected, 2)


def test_topics_ensure_without_a_broker_fails_naming_it() -> None:
    result = run_ensure(
        {
            "HOOKHUB_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            "HOOKHUB_KAFKA_PUBLISH_TIMEOUT_SECONDS": "2",
        }
    )
    assert result.returncode == 1
    assert "hookhub topics ensure: 127.0.0.1:9" in result.stderr
    assert "created " not in result.stdout
