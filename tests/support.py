"""Helpers the tests share: settings for an isolated run, a service on a real port, Kafka reads."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import os
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from cryptography.fernet import Fernet
from fastapi import FastAPI
from starlette.types import ASGIApp

from services.cli import load_definition
from services.stack import ENTRY, PRELOAD
from shared.domain.platform import create_app
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS, Process, free_port
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.http.server import ServiceServer
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from shared.kernel.settings import ServiceSettings
from shared.kernel.zygote import Zygote
from tests.infra import Infra

S = TypeVar("S", bound=ServiceSettings)

# The corpus of real payloads kept in the repository (tests/corpus, see its README);
# HOOKHUB_CORPUS_DIR points the tests at another copy laid out the same way.
CORPUS_DIR = Path(os.environ.get("HOOKHUB_CORPUS_DIR", Path(__file__).parent / "corpus"))


def github_corpus() -> list[Path]:
    """Every real GitHub payload; a missing corpus fails the test rather than skipping it."""
    files = sorted((CORPUS_DIR / "github").glob("*/*.json"))
    assert len(files) == 273, (
        f"expected the 273 GitHub payloads under {CORPUS_DIR}, found {len(files)}"
    )
    return files


ADMIN_TOKEN = "hh_admin_test_" + uuid.uuid4().hex


def new_namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


def make_settings(
    cls: type[S], infra: Infra, namespace: str, data_dir: Path, **overrides: Any
) -> S:
    values: dict[str, Any] = {
        "env": "dev",
        "kafka_bootstrap": infra.kafka_bootstrap,
        "mongo_uri": infra.mongo_uri,
        "mongo_db": f"hookhub_{namespace}",
        "topic_namespace": namespace,
        "admin_token": ADMIN_TOKEN,
        "encryption_keys": Fernet.generate_key().decode(),
        "data_dir": data_dir,
        "kafka_partitions": 3,
        # Kafka's lowest allowed session (its brokers refuse less); tansu takes less, and
        # answers a consumer's JoinGroup after half a session rounded up to a second (3 s
        # at 6 s, 1 s at 2 s: every consumer a test starts waits it) and makes a restarted
        # consumer wait out the member it replaces, ~1.8 sessions.
        "kafka_session_timeout_ms": 2_000 if infra.kind == "embedded" else 6_000,
        # Three partitions a topic: on tansu a fetch of several is answered at its wait's
        # end, not when records arrive (shared.kernel.embedded).
        "kafka_fetch_max_wait_ms": EMBEDDED_FETCH_MAX_WAIT_MS,
        "public_url": "http://hookhub.test",
        **overrides,
    }
    return cls.model_validate(values)


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class RunningService:
    app: ASGIApp
    base_url: str
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp,
    *,
    wait_ready: bool = True,
    probe: str | None = None,
    http: Any = None,
    port: int | None = None,
) -> AsyncIterator[RunningService]:
    """The app on a real loopback port with its lifespan, as `hookhub serve` runs it.

    `probe` is the path polled until it answers 200 (default `/readyz`); fakes of
    third-party APIs pass one of their own. `http`: another uvicorn protocol (the edge's).
    `port`: one chosen beforehand (a service that must know its own address), else free."""
    port = port or free_port()
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    shutdown_seconds = runtime.settings.shutdown_seconds if runtime is not None else 10.0
    # The same server and bounded stop as `hookhub serve`, without its signal handlers.
    config = ServiceServer.make_config(app, "127.0.0.1", port, shutdown_seconds)
    if http is not None:
        config.http = http
    server = ServiceServer(config, signals=False)
    task = asyncio.create_task(server.serve())
    base_url = f"http://127.0.0.1:{port}"
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them: at
    # httpx's default, also 5 s, a request could go out on a connection the server was
    # closing at that moment (an httpx.ReadError in a test that did nothing wrong).
    limits = httpx.Limits(keepalive_expiry=2.0)
    async with httpx.AsyncClient(
        verify=tls(), base_url=base_url, timeout=15.0, limits=limits
    ) as client:
        try:
            await _until_up(client, probe or ("/readyz" if wait_ready else "/healthz"), task)
            yield RunningService(app, base_url, client)
        finally:
            server.begin_stop()
            # The stop is bounded by the service itself; a few seconds more for the loop.
            await asyncio.wait_for(task, shutdown_seconds + 5)


class StandIn(Protocol):
    """A provider's stand-in (services/sandbox): its app, answering `/healthz`, and where
    it is served."""

    base_url: str

    def app(self) -> ASGIApp: ...


F = TypeVar("F", bound=StandIn)


@contextlib.asynccontextmanager
async def served(fake: F) -> AsyncIterator[F]:
    """`fake` on a real loopback port, its `base_url` set to where."""
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        yield fake


async def _until_up(client: httpx.AsyncClient, path: str, task: asyncio.Task[Any]) -> None:
    deadline = time.monotonic() + 60
    last = ""
    while time.monotonic() < deadline:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start")
        with contextlib.suppress(httpx.HTTPError):
            answer = await client.get(path)
            if answer.status_code == 200:
                return
            last = answer.text
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{path} not OK within 60s: {last}")


async def until(
    check: Callable[[], Any], timeout: float = 20.0, what: str = "the condition"
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy: how a test waits for
    something to happen, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


async def counted(collection: Any, query: dict[str, Any], count: int) -> bool:
    """Whether `collection` holds exactly `count` documents matching `query` (for `until`)."""
    return bool(await collection.count_documents(query) == count)


async def refreshed(*caches: Any) -> None:
    """Returns once each `RefreshingCache` has finished a refresh begun after the call:
    what was written to MongoDB before it is in them."""
    since = time.monotonic()
    await until(
        lambda: all(cache.last_refresh_began > since for cache in caches),
        timeout=30,
        what="a refresh of the caches",
    )


class KafkaTap:
    """Reads a topic from its beginning, without a consumer group, to see what was published."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
        )
        self.records: list[Any] = []

    @classmethod
    def of(cls, settings: ServiceSettings, topic: Topic | str) -> KafkaTap:
        """The tap on `topic` as the services configured by `settings` name it."""
        return cls(settings.kafka_bootstrap, settings.topic(topic))

    async def __aenter__(self) -> KafkaTap:
        await self._consumer.start()
        partitions = await self._wait_partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        return self

    async def _wait_partitions(self) -> list[TopicPartition]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = self._consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            await self._consumer._client.force_metadata_update()
            await asyncio.sleep(0.2)
        raise TimeoutError(f"topic {self.topic} does not exist")

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self, timeout: float = 0.5) -> list[Any]:
        batch = await self._consumer.getmany(timeout_ms=int(timeout * 1000))
        new = [record for records in batch.values() for record in records]
        self.records.extend(new)
        return new

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        count: int = 1,
        timeout: float = 15.0,
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            matching = [v for v in self.values() if predicate(v)]
            if len(matching) >= count or time.monotonic() > deadline:
                return matching
            await self.poll()

    async def settled(
        self, predicate: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """The values (those `predicate` takes) once every record on the topic at the call is
        read: what a service answered 2xx for was published before its answer, so an absence
        (a redelivery published once, a refusal never) is known at once, never waited for."""
        ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
        while True:
            positions = [await self._consumer.position(tp) for tp in ends]
            if all(at >= end for at, end in zip(positions, ends.values(), strict=True)):
                break
            await self.poll(0.2)
        return [v for v in self.values() if predicate is None or predicate(v)]

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(record.value) for record in self.records]

    async def holding(self, marker: bytes, count: int, polls: int = 40) -> list[Any]:
        """The records whose value holds `marker`, once there are `count` of them (or after
        `polls` polls: a bound on a hang, for records known to be written already)."""
        for _ in range(polls):
            ours = [record for record in self.records if marker in record.value]
            if len(ours) >= count:
                break
            await self.poll()
        return [record for record in self.records if marker in record.value]


@functools.cache
def _zygote() -> Zygote:
    """The worker's zygote, which forks every ServiceProcess (as `hookhub run` forks its
    services): each start then costs no import. Started from the main thread, as the
    zygote dies with the thread that started it."""
    assert threading.current_thread() is threading.main_thread()
    zygote = Zygote(PRELOAD)
    atexit.register(zygote.close)
    return zygote


@dataclass
class Ran:
    returncode: int
    output: str  # its standard output and error together


def run_command(argv: list[str], env: dict[str, str], log_path: Path, timeout: float = 60) -> Ran:
    """`hookhub <argv>` with `env` (whole), as `python -m services.cli` runs it but forked
    from the worker's zygote: a command that ends in a moment does not first spend seconds
    importing the services."""
    process = _zygote().fork(ENTRY, argv, env, log_path)
    return Ran(process.wait(timeout), log_path.read_text())


@dataclass
class ServiceProcess:
    """`hookhub serve <name>` in a process of its own, as production runs it (forked from
    the worker's zygote: shared/kernel/zygote.py)."""

    name: str
    process: Process
    base_url: str
    log_path: Path

    @classmethod
    def start(
        cls, name: str, settings: ServiceSettings, log_path: Path, **env: str
    ) -> ServiceProcess:
        port = free_port()
        environment = {
            **os.environ,
            "HOOKHUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "HOOKHUB_MONGO_URI": settings.mongo_uri,
            "HOOKHUB_MONGO_DB": settings.mongo_db,
            "HOOKHUB_TOPIC_NAMESPACE": settings.topic_namespace,
            "HOOKHUB_ADMIN_TOKEN": ADMIN_TOKEN,
            "HOOKHUB_ENCRYPTION_KEYS": settings.encryption_keys,
            "HOOKHUB_DATA_DIR": str(settings.data_dir),
            "HOOKHUB_KAFKA_PARTITIONS": str(settings.kafka_partitions),
            "HOOKHUB_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
            "HOOKHUB_KAFKA_FETCH_MAX_WAIT_MS": str(settings.kafka_fetch_max_wait_ms),
            "HOOKHUB_LOG_FORMAT": "json",
            **env,
        }
        argv = ["serve", name, "--host", "127.0.0.1", "--port", str(port)]
        process = _zygote().fork(ENTRY, argv, environment, log_path)
        return cls(name, process, f"http://127.0.0.1:{port}", log_path)

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(verify=tls(), timeout=5) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, f"{self.name} exited; see {self.log_path}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.base_url + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} did not become ready; see {self.log_path}")

    async def stop(self, timeout: float = 30) -> float:
        """SIGTERM, as Kubernetes sends it; the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        while self.process.poll() is None and time.monotonic() - started < timeout:
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        return took

    def log_lines(self) -> list[dict[str, Any]]:
        """Every line it logged, each of which must be a JSON object."""
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def freeze(pid: int) -> None:
    """SIGSTOP `pid` and return once it is stopped: the signal is delivered asynchronously,
    and a multi-threaded server (tansu) may still answer a request sent right after it."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while _state(pid) not in ("T", "t") and time.monotonic() < deadline:
        time.sleep(0.005)


def _state(pid: int) -> str:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return ""


async def produce_chat_events(
    settings: ServiceSettings, workspace_id: str, datas: Iterable[dict[str, Any]]
) -> None:
    """One `message.created` per item of `datas` on `hookhub.chat.events`, straight to
    Kafka as the chat product publishes them, keyed as the services key them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for data in datas:
            event = ChatEvent(
                id=f"evt_{uuid.uuid4().hex}",
                type="message.created",
                workspace_id=workspace_id,
                occurred_at=utcnow(),
                data=data,
            )
            await producer.send(
                settings.topic(Topic.CHAT_EVENTS), event.to_kafka(), key=event.partition_key()
            )
        await producer.flush()
    finally:
        await producer.stop()


@functools.cache
def service_app(service: str) -> FastAPI:
    """The service's app as `hookhub run` builds it, not started (no Kafka, no MongoDB)."""
    definition = load_definition(service)
    with tempfile.TemporaryDirectory() as data_dir:
        settings = definition.settings_class(data_dir=Path(data_dir))
        return create_app(definition, settings)


@functools.cache
def consumed(service: str) -> frozenset[tuple[str, str]]:
    """(consumer group, topic) of every Kafka subscriber the service's code registers."""
    pairs = set()
    for subscriber in service_app(service).state.runtime.broker.subscribers:
        for topic in subscriber.topic_names_for_subscribe:
            pairs.add((str(subscriber.group_id), str(topic)))
    return frozenset(pairs)


class FakeClock:
    """Time that passes only when someone sleeps: shared by the fake Slack's limits and the
    reader's pacing, so a minute of pacing takes no time and is still measured."""

    def __init__(self) -> None:
        self.now = 10_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
