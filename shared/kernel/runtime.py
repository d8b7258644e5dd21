"""One service process: its settings, MongoDB, Kafka broker and publisher, background tasks.

A service describes itself with a `ServiceDefinition`; `Runtime` wires it to the
infrastructure and reports readiness. Nothing here knows about any particular service, nor
about the domain: what every service has of it (the audit log's and usage's indexes, the
retention runner) is plugged in by shared.domain's platform through `declare`, `once_indexed`,
`report`, `provide` and the hooks below.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pymongo
import structlog
from prometheus_client import CollectorRegistry

from shared.kernel import consumers, idempotency, tracing
from shared.kernel.crypto import SecretBox
from shared.kernel.envelopes import Envelope
from shared.kernel.kafka import (
    ConsumerLagCollector,
    EventPublisher,
    bootstrap_reachable,
    ensure_topics,
    make_broker,
    subscribers_joined,
    topic_names,
)
from shared.kernel.metrics import EventLoopLag
from shared.kernel.mongo import Database, Index, connect, ensure_indexes, ping
from shared.kernel.process import Drains
from shared.kernel.settings import ServiceSettings
from shared.kernel.shutdown import StopBudget, StopHook, StopStep

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

    from shared.kernel.http.ingress import IngressRoute

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=Envelope)
P = TypeVar("P")
Hook = Callable[["Runtime"], Awaitable[None]]
ReadyCheck = Callable[[], Awaitable[tuple[bool, str]]]


@dataclass
class ServiceDefinition:
    """What a service is made of; its composition root builds one."""

    name: str
    routers: Sequence[APIRouter] = ()
    # Webhook receivers, served before the routers (see shared.kernel.http.ingress).
    ingress: Sequence[IngressRoute] = ()
    indexes: Sequence[Index] = ()
    internal_topics: Sequence[str] = ()
    # Called once the runtime exists and before Kafka starts: register subscribers, build
    # caches and repositories, put what routes need on `app.state`.
    setup: Callable[[FastAPI, Runtime], None] | None = None
    settings_class: type[ServiceSettings] = ServiceSettings
    description: str = ""


@dataclass
class Runtime:
    settings: ServiceSettings
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.mongo = connect(self.settings, appname=f"hookhub-{self.service}")
        self.db: Database = self.mongo[self.settings.mongo_db]
        self.broker = make_broker(self.settings, self.service, self.registry)
        self.registry.register(ConsumerLagCollector(self.broker))
        self.loop_lag = EventLoopLag(self.registry)
        self.publisher = EventPublisher(self.settings, self.service, self.registry)
        self.secrets = SecretBox(self.settings.encryption_key_list)
        self.kafka_started = False
        self.indexes_ready = False
        self._startup_hooks: list[Hook] = []
        self._shutdown_hooks: list[StopStep] = []
        self.stop_requested_at: float | None = None
        self._ready_checks: dict[str, ReadyCheck] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self.pipelines: list[Drains] = []  # shared.kernel.consumers.Pipeline
        # Every service keeps the processed-envelope ledger; what else every service has is
        # declared by what is plugged in (`declare`).
        self._indexes: list[Index] = [*idempotency.INDEXES]
        self._once_indexed: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        # Sections of /readyz besides the checks, each what its function says now.
        self.reports: dict[str, Callable[[], object]] = {}
        self._parts: dict[type, object] = {}
        self.dead_letters = consumers.DeadLetters(self, self.registry)

    # -- composition ---------------------------------------------------------------------

    def on_startup(self, hook: Hook) -> None:
        self._startup_hooks.append(hook)

    def on_shutdown(
        self, name: str, hook: StopHook, *, minimum: float = 0.1, cap: float = 1.0
    ) -> None:
        """A step of the stop, run after consumers and background tasks have stopped, in
        the order registered. It is given at least `minimum` and at most `cap` of the stop
        budget (fractions), as far as the steps before it left time."""
        self._shutdown_hooks.append(StopStep(name, hook, minimum, cap))

    def declare(self, *indexes: Index) -> None:
        """Indexes to make at the start besides the service's own (before `start`)."""
        self._indexes.extend(indexes)

    def once_indexed(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        """A background task started once the indexes are made (its queries read them)."""
        self._once_indexed.append((name, factory))

    def report(self, name: str, section: Callable[[], object]) -> None:
        """A section of /readyz besides the checks (not a readiness condition)."""
        self.reports[name] = section

    def provide(self, part: object) -> None:
        """Keep `part` for whatever the process hosts to find by its type (`part`): what a
        layer above plugs in and the services then use (shared.domain.retention.Retention)."""
        self._parts[type(part)] = part

    def part(self, kind: type[P]) -> P:
        found = self._parts.get(kind)
        if not isinstance(found, kind):
            raise LookupError(f"this process was given no {kind.__name__}")
        return found

    def ready_check(self, name: str, check: ReadyCheck) -> None:
        self._ready_checks[name] = check

    def ledger(self, purpose: str) -> idempotency.ProcessedLedger:
        return idempotency.ProcessedLedger(
            self.db[idempotency.COLLECTION], self.settings.consumer_group(self.service, purpose)
        )

    def consume(
        self,
        topic: str,
        purpose: str,
        model: type[E],
        handler: Callable[[E], Awaitable[object]],
    ) -> None:
        """Subscribe `handler` to `topic`, idempotent by envelope id (shared.kernel.consumers)."""
        consumers.consume(self, topic, purpose, model, handler)

    def consume_batch(
        self,
        topic: str,
        purpose: str,
        model: type[E],
        handler: Callable[[list[E]], Awaitable[object]],
        wanted: consumers.Wanted | None = None,
        on_assigned: Callable[[], object] | None = None,
        on_revoked: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Subscribe a batch handler (see shared.kernel.consumers.consume_batch)."""
        consumers.consume_batch(
            self,
            topic,
            purpose,
            model,
            handler,
            wanted=wanted,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
        )

    def consume_pipelined(
        self,
        topic: str,
        purpose: str,
        model: type[E],
        handler: Callable[[list[E]], Awaitable[Awaitable[object]]],
        wanted: consumers.Wanted | None = None,
        refuse: consumers.Refuse | None = None,
        on_drain: Callable[[], object] | None = None,
        on_assigned: Callable[[], object] | None = None,
        on_revoked: Callable[[], Awaitable[object]] | None = None,
        max_pending: int = 5_000,
    ) -> None:
        """Subscribe a two-part batch handler (see shared.kernel.consumers.consume_pipelined)."""
        consumers.consume_pipelined(
            self,
            topic,
            purpose,
            model,
            handler,
            max_pending=max_pending,
            wanted=wanted,
            refuse=refuse,
            on_drain=on_drain,
            on_assigned=on_assigned,
            on_revoked=on_revoked,
        )

    def background(self, name: str, factory: Callable[[], Awaitable[Any]]) -> None:
        self._tasks.append(asyncio.create_task(_log_crash(name, factory), name=name))

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, indexes: Sequence[Index], topics: Sequence[str]) -> None:
        all_indexes = [*self._indexes, *indexes]
        names = topic_names(self.settings, topics)
        self.background("mongo-indexes", lambda: self._make_indexes(all_indexes))
        self.background("event-loop-lag", self.loop_lag.run)
        self.background(
            "kafka-connect",
            lambda: self._retry("kafka_connect", lambda: self._start_kafka(names), "kafka_started"),
        )
        for hook in self._startup_hooks:
            await hook(self)

    async def _make_indexes(self, indexes: list[Index]) -> None:
        await self._retry(
            "mongo_indexes", lambda: ensure_indexes(self.db, indexes), "indexes_ready"
        )
        for name, factory in self._once_indexed:
            self.background(name, factory)

    async def _start_kafka(self, names: list[str]) -> None:
        try:
            await ensure_topics(self.settings, names)
            await self.publisher.start()
            await self._start_broker()
        except BaseException:
            with contextlib.suppress(Exception):  # so the next attempt starts clean
                await self.publisher.stop()
            with contextlib.suppress(Exception):
                await self.broker.stop()
            raise

    async def _start_broker(self) -> None:
        """`broker.start()`, but with every subscriber joining its group at once: a
        consumer's start waits for its group's join (half a session on tansu, the initial
        rebalance delay on Kafka), and FastStream starts them one after another, which made
        the delivery service's two groups 10 of the 14 seconds `make run` took to be ready."""
        await self.broker.connect()
        await asyncio.gather(*(subscriber.start() for subscriber in self.broker.subscribers))
        for publisher in self.broker.publishers:
            await publisher.start()
        self.broker.running = True

    async def _retry(self, what: str, action: Callable[[], Awaitable[None]], flag: str) -> None:
        delay = 0.5
        while True:
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(f"{what}_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            setattr(self, flag, True)
            log.info(f"{what}_done")
            return

    def request_stop(self) -> None:
        """The stop has begun (a signal arrived): its budget counts from now, and the
        service reports itself not ready so that no new traffic is routed to it."""
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()

    async def stop(self) -> None:
        """The bounded stop (shared.kernel.shutdown): take no new work, let the service finish or
        hand back what it holds, then close Kafka and MongoDB, all within
        `HOOKHUB_SHUTDOWN_SECONDS` of the stop request."""
        self.request_stop()
        budget = StopBudget(self.settings.shutdown_seconds, self.stop_requested_at)
        await budget.run(
            [
                # Consumers first: in-flight handlers get the broker's graceful timeout, the
                # group is left so that the partitions move at once, and nothing new
                # arrives for the steps below to deal with.
                # Pipelined batches finish and are committed while their consumers still
                # hold the partitions; what the budget cuts off, the next owner reads again.
                StopStep("kafka_pipelines", lambda _: self._drain_pipelines(), 0.0, 0.15),
                StopStep("kafka_consumers", lambda _: self.broker.stop(), 0.1, 0.35),
                StopStep("background_tasks", lambda _: self._cancel_tasks(), 0.05, 0.1),
                *self._shutdown_hooks,
                StopStep("kafka_publisher", self.publisher.stop, 0.05, 0.15),
                StopStep("mongo", lambda _: self.mongo.close(), 0.05),
            ]
        )
        # The last spans out to the collector, briefly: a collector away holds no stop.
        await asyncio.to_thread(tracing.flush, 1.0)

    async def _drain_pipelines(self) -> None:
        await asyncio.gather(*(pipeline.drain() for pipeline in self.pipelines))

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        if self.stop_requested_at is not None:
            return False, {"service": "stopping"}
        checks: dict[str, str] = {}

        async def mongo() -> tuple[bool, str]:
            try:
                # pymongo's own deadline, not a cancel from outside: cancelled while it waits
                # for a server, pymongo's topology lock could be left taken, and every later
                # operation of the client waited for it (seen after a MongoDB restart).
                with pymongo.timeout(self.settings.mongo_timeout_seconds):
                    await ping(self.db)
            except Exception as exc:
                return False, f"unreachable: {type(exc).__name__}"
            return self.indexes_ready, "ok" if self.indexes_ready else "indexes not created yet"

        async def kafka() -> tuple[bool, str]:
            if not await bootstrap_reachable(self.settings):
                return False, "unreachable"
            if not self.kafka_started:
                return False, "connecting"
            joined, waiting = subscribers_joined(self.broker)
            return joined, "ok" if joined else f"consumers not assigned: {', '.join(waiting)}"

        results = await asyncio.gather(
            mongo(), kafka(), *(check() for check in self._ready_checks.values())
        )
        names = ["mongo", "kafka", *self._ready_checks]
        for name, (ok, detail) in zip(names, results, strict=True):
            checks[name] = detail if not ok else "ok"
        return all(ok for ok, _ in results), checks


async def _log_crash(name: str, factory: Callable[[], Awaitable[Any]]) -> None:
    try:
        await factory()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background_task_crashed", task=name)
        raise
