"""Test infrastructure per SPEC §2: a real Kafka-protocol broker and MongoDB-protocol server.

HOOKHUB_TEST_INFRA chooses: `external` (HOOKHUB_KAFKA_BOOTSTRAP, HOOKHUB_MONGO_URI), `docker`
(testcontainers: Apache Kafka in KRaft mode and MongoDB images), `embedded` (tansu and
SecantusDB, as `make run` uses), `auto` (docker when an engine answers, else embedded).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.kernel.embedded import free_port, start_broker, start_mongo


@dataclass(frozen=True)
class Infra:
    kind: str
    kafka_bootstrap: str
    mongo_uri: str


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def chosen_kind() -> str:
    kind = os.environ.get("HOOKHUB_TEST_INFRA", "auto")
    if kind not in {"auto", "docker", "embedded", "external"}:
        raise RuntimeError(f"HOOKHUB_TEST_INFRA={kind!r}: use auto, docker, embedded or external")
    if kind == "auto":
        return "docker" if docker_engine_answers() else "embedded"
    return kind


@contextmanager
def provide_infra(kind: str | None = None) -> Iterator[Infra]:
    kind = kind or chosen_kind()
    if kind == "external":
        yield Infra(
            "external",
            os.environ["HOOKHUB_KAFKA_BOOTSTRAP"],
            os.environ["HOOKHUB_MONGO_URI"],
        )
    elif kind == "docker":
        with _docker() as infra:
            yield infra
    else:
        with _embedded() as infra:
            yield infra


@contextmanager
def _embedded() -> Iterator[Infra]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hookhub-test-")))
        kafka_port, mongo_port = free_port(), free_port()
        broker = start_broker(kafka_port, workdir / "logs")
        stack.callback(broker.stop)
        mongo = start_mongo(mongo_port, workdir / "mongo", workdir / "logs")
        stack.callback(mongo.stop)
        yield Infra("embedded", f"127.0.0.1:{kafka_port}", f"mongodb://127.0.0.1:{mongo_port}")


@contextmanager
def _docker() -> Iterator[Infra]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.mongodb import MongoDbContainer

    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    mongo = MongoDbContainer("mongo:7")
    with kafka, mongo:
        yield Infra("docker", kafka.get_bootstrap_server(), mongo.get_connection_url())
