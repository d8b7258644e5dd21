"""Delivery composition root: endpoints, intake consumers, fan-out, dispatcher, scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson
import structlog
from fastapi import FastAPI
from prometheus_client import Counter

from services.delivery.deliveries import endpoints as delivery_routes
from services.delivery.deliveries import replay as replay_jobs
from services.delivery.deliveries import repository as delivery_repository
from services.delivery.deliveries import timeline
from services.delivery.deliveries.circuit import Circuit
from services.delivery.deliveries.dispatcher import DEAD_LETTER_TOPIC, Dispatcher
from services.delivery.deliveries.ordering import Ordering
from services.delivery.deliveries.retention import EndedDeliveries
from services.delivery.deliveries.service import Event, Fanned, FanOut, Scheduler, traced
from services.delivery.deliveries.timeline import AttemptMinutes
from services.delivery.destinations.base import Surroundings
from services.delivery.destinations.catalog import open_destination
from services.delivery.event_types import catalog as event_type_catalog
from services.delivery.event_types import endpoints as event_type_routes
from services.delivery.event_types import repository as event_type_repository
from services.delivery.event_types.service import EventTypeService
from services.delivery.listen import endpoints as listen_routes
from services.delivery.listen import repository as listen_repository
from services.delivery.listen.relay import Listeners
from services.delivery.operational import endpoints as operational_routes
from services.delivery.operational import repository as operational_repository
from services.delivery.operational.watch import EndpointWatch
from services.delivery.outgoing_webhooks import endpoints as endpoint_routes
from services.delivery.outgoing_webhooks import repository as endpoint_repository
from services.delivery.outgoing_webhooks.service import EndpointService, EndpointSnapshot, snapshot
from services.delivery.transformations import endpoints as transformation_routes
from services.delivery.transformations.service import TransformationMetrics, Transformer
from shared.domain import claim_check
from shared.domain.operational import Announcer
from shared.domain.retention import retain
from shared.domain.usage import OldDays, UsageCounters
from shared.kernel.cache import RefreshingCache
from shared.kernel.egress import EgressPolicy, GuardedClient
from shared.kernel.envelopes import ChatEvent, OperationalEvent, ProviderEvent, Topic
from shared.kernel.ids import utcnow
from shared.kernel.jsbox import Sandbox
from shared.kernel.mongo import BatchedWriter
from shared.kernel.ownership import Ownership
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.kernel.settings import DeliverySettings

log = structlog.get_logger(__name__)


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, DeliverySettings)
    policy = EgressPolicy.from_setting(settings.egress_allow_cidrs)
    endpoints_repo = endpoint_repository.EndpointRepository(runtime.db)
    # Operational events (SPEC §17) published off the paths that make them.
    announcer = Announcer(runtime.publisher, runtime.registry)
    watch = EndpointWatch(announcer.emit)
    # Endpoints' transformations (SPEC §17): user JavaScript, in a sandbox process of its
    # own for the lanes, and one for the API's checks and tests.
    transformation_metrics = TransformationMetrics(runtime.registry)
    sandbox, tried = Sandbox(), Sandbox(concurrency=1)
    transformer = Transformer(sandbox, policy, transformation_metrics)
    app.state.tried_transformer = tried_transformer = Transformer(
        tried, policy, transformation_metrics
    )
    endpoint_service = EndpointService(
        endpoints_repo,
        runtime.secrets,
        policy,
        check_code=tried_transformer.check,
        announce=announcer.emit,
    )
    cache: RefreshingCache[str, EndpointSnapshot] = RefreshingCache.by_id(
        endpoints_repo,
        lambda doc: snapshot(doc, runtime.secrets),
        refresh_seconds=1.0,
        name="endpoints",
    )
    deliveries = delivery_repository.DeliveryRepository(runtime.db)
    # An attempt's log entry is in MongoDB before the delivery that shows its outcome.
    writer = BatchedWriter(runtime.db, interval=0.5, first=(delivery_repository.ATTEMPTS,))
    # Deliveries and attempts made and kept (the retention job takes those it removes off).
    usage = UsageCounters(runtime.db)
    minutes = AttemptMinutes(runtime.db)  # the timeline's counts
    background: set[asyncio.Task[None]] = set()
    # The event type catalog (SPEC §17): every type's schema compiled once per replica.
    event_types = event_type_repository.EventTypeRepository(runtime.db)
    catalog = event_type_catalog.Catalog(
        RefreshingCache(
            changed_since=event_types.changed_since,
            find=lambda key: event_types.named(*key),
            key=event_type_catalog.key_of,
            snapshot=event_type_catalog.snapshot,
            refresh_seconds=1.0,
            name="event_types",
        ),
        strict=settings.event_types_strict,
        registry=runtime.registry,
    )

    def later(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    # Alerted on (deploy/monitoring): the reason is on the endpoint (disabled_reason).
    disabled = Counter(
        "hookhub_delivery_endpoints_disabled",
        "Outgoing webhooks this replica disabled on its own (410 Gone, or failing too long)",
        registry=runtime.registry,
    )

    async def disable(endpoint_id: str, reason: str) -> None:
        doc = await endpoint_service.disable(endpoint_id, reason)
        if doc is not None:
            disabled.inc()
            cache.apply(doc)

    async def failing(endpoint_id: str, since: datetime | None) -> None:
        doc = await endpoints_repo.update(endpoint_id, {"failing_since": since})
        if doc is not None:
            cache.apply(doc)

    # An endpoint's circuit changes, written on it where the API shows them and the other
    # replicas adopt them (deliveries/circuit.py): one write at a time per endpoint, the
    # latest change, so that a quick half-open → closed is not written in the other order.
    circuits: dict[str, Circuit] = {}
    writing: set[str] = set()

    async def write_circuits(endpoint_id: str) -> None:
        try:
            while endpoint_id in circuits:
                circuit = circuits.pop(endpoint_id)
                doc = await endpoints_repo.update(endpoint_id, {"circuit": circuit.doc()})
                if doc is not None:
                    cache.apply(doc)
        except Exception as exc:  # the next change writes its own; the state stays here
            log.warning("delivery_circuit_not_written", endpoint_id=endpoint_id, error=repr(exc))
        finally:
            writing.discard(endpoint_id)

    def circuit_changed(endpoint_id: str, circuit: Circuit) -> None:
        watch.circuit(cache.get(endpoint_id), circuit)
        circuits[endpoint_id] = circuit
        if endpoint_id not in writing:
            writing.add(endpoint_id)
            later(write_circuits(endpoint_id))

    ownership = Ownership(
        deliveries.workers, deliveries.deliveries, timedelta(seconds=settings.lease_seconds)
    )
    # FIFO endpoints' keys (deliveries/fifo.py).
    keys = delivery_repository.KeyRepository(runtime.db)

    async def wake(endpoint_id: str) -> int:
        """A listener connected: the endpoint's retries made due now, and the parked heads
        of its FIFO keys (their holders load them at their next sweep)."""
        now = utcnow()
        return await deliveries.wake(endpoint_id, now) + await keys.wake(endpoint_id, now)

    # `hookhub listen` (SPEC §21): the sockets of the laptops listening, held by whichever
    # replica each landed on, and the way to them from the others (delivery/listen).
    listeners = Listeners(
        listen_repository.SessionRepository(runtime.db),
        ownership=ownership,
        address=settings.internal_address("delivery"),
        admin_token=settings.admin_token,
        endpoints=cache,
        access=lambda: app.state.access,
        wake=wake,
        registry=runtime.registry,
    )
    dispatcher = Dispatcher(
        endpoints=cache,
        # One pool per endpoint, sized to its concurrency (see Lane).
        client_for=lambda connections: GuardedClient(policy, connections),
        writer=writer,
        publisher=runtime.publisher,
        on_gone=lambda endpoint_id, reason: later(disable(endpoint_id, reason)),
        on_failing=lambda endpoint_id, since: later(failing(endpoint_id, since)),
        registry=runtime.registry,
        failure_window=timedelta(seconds=settings.failure_window_seconds),
        usage=usage,
        minutes=minutes,
        max_held=settings.delivery_max_held,
        max_in_flight=settings.delivery_max_in_flight,
        hold_seconds=settings.delivery_hold_seconds,
        max_unwritten=settings.delivery_max_unwritten,
        on_circuit=circuit_changed,
        circuit_cool_down=timedelta(seconds=settings.circuit_cool_down_seconds),
        circuit_max_cool_down=timedelta(seconds=settings.circuit_max_cool_down_seconds),
        transformer=transformer,
        on_attempted=watch.attempted,
        # Queues, topics, buses, streams and buckets (SPEC §21), each through the same
        # egress policy, to the emulators the deployment names instead of the clouds; and
        # the laptops listening, through their sockets.
        destination_for=partial(
            open_destination,
            surroundings=Surroundings(
                policy, settings.aws_endpoint_url, settings.pubsub_endpoint_url, listeners
            ),
        ),
    )
    ordering = Ordering(
        keys,
        dispatcher,
        writer,
        owner=lambda: ownership.id,
        insert=deliveries.insert_new,
        count_made=lambda doc: usage.made(doc["workspace_id"], "deliveries"),
        wanted=lambda: any(endpoint.fifo for endpoint in cache.values()),
        registry=runtime.registry,
    )
    fan_out = FanOut(
        cache,
        deliveries,
        dispatcher,
        ownership,
        usage,
        registry=runtime.registry,
        room_wait=settings.delivery_fanout_wait_seconds,
        ordering=ordering,
    )
    # Replays of what an endpoint missed, read back from Kafka (deliveries/replay.py).
    replays = replay_jobs.Replays(
        runtime.db, settings, fan_out, cache, ownership, keep=settings.delivery_retention
    )
    scheduler = Scheduler(
        deliveries,
        dispatcher,
        ownership,
        poll_seconds=settings.scheduler_poll_seconds,
        registry=runtime.registry,
        ordering=ordering,
    )

    app.state.endpoint_service = endpoint_service
    app.state.endpoint_repository = endpoints_repo
    app.state.endpoint_cache = cache
    app.state.delivery_repository = deliveries
    app.state.key_repository = keys
    app.state.ordering = ordering
    app.state.fan_out = fan_out
    app.state.dispatcher = dispatcher
    app.state.delivery_writer = writer
    app.state.scheduler = scheduler
    app.state.usage = usage
    app.state.attempt_minutes = minutes
    app.state.ownership = ownership
    app.state.replays = replays
    app.state.listeners = listeners
    app.state.event_type_service = EventTypeService(event_types)
    app.state.event_type_catalog = catalog
    operational_events = operational_repository.OperationalEventRepository(runtime.db, writer)
    app.state.operational_events = operational_events

    # Pipelined: a batch's deliveries go to the lanes unrecorded, and its offsets are
    # committed once each is written with its first outcome (FanOut.recorded), while later
    # batches are fanned out. Fan-out is idempotent by itself (delivery ids derive from
    # event and endpoint, and a replayed batch skips those written), so these consumers
    # skip the envelope ledger.
    async def on_chat_events(events: list[ChatEvent]) -> Awaitable[None]:
        fanned = await fan_out.events([_event(e) for e in events])
        return fan_out.recorded(fanned)

    async def on_provider_events(events: list[ProviderEvent]) -> Awaitable[None]:
        fanned = Fanned()
        batch = []
        for event in events:
            kind = f"{event.provider}.{event.event_type}"
            position = event.position()
            sequence = position[1] if position is not None else None
            if not event.payload_ref:
                batch.append(
                    Event(
                        event.id,
                        event.workspace_id,
                        kind,
                        event.received_at,
                        event.payload,
                        sequence=sequence,
                        trace=traced(event),
                    )
                )
                continue
            # Too large for Kafka (megabytes): loaded and fanned out on its own, so that a
            # batch holds one such body in memory at a time, not hundreds.
            await fan_out.events(batch, fanned)
            batch = []
            payload = orjson.loads(await claim_check.load(runtime.db, event.payload_ref))
            await fan_out.events(
                [
                    Event(
                        event.id,
                        event.workspace_id,
                        kind,
                        event.received_at,
                        payload,
                        sequence=sequence,
                        trace=traced(event),
                    )
                ],
                fanned,
            )
        await fan_out.events(batch, fanned)
        return fan_out.recorded(fanned)

    # Kept for the console's timelines (written with the batch's deliveries), and delivered
    # to the endpoints that name them (services/delivery/outgoing_webhooks/matching.py).
    async def on_operational_events(events: list[OperationalEvent]) -> Awaitable[None]:
        for event in events:
            operational_events.record(event)
        fanned = await fan_out.events(
            [
                Event(e.id, e.workspace_id, e.type, e.occurred_at, e.data, trace=traced(e))
                for e in events
            ]
        )
        return recorded_and_kept(fanned)

    async def recorded_and_kept(fanned: Fanned) -> None:
        await fan_out.recorded(fanned)
        await writer.written()

    # At the stop, the batches whose deliveries are still unrecorded are left to the
    # partitions' next owner (Dispatcher.stop_owing), not waited for. At a rebalance they
    # are written, held by this process, before the partitions go (Dispatcher.revoked):
    # the new owner finds them and leaves them to this process.
    fan_out_consumers: list[tuple[Topic, str, Any, Any]] = [
        (Topic.CHAT_EVENTS, "fanout", ChatEvent, on_chat_events),
        (Topic.PROVIDER_EVENTS, "provider-fanout", ProviderEvent, on_provider_events),
        (Topic.OPERATIONAL_EVENTS, "operational-fanout", OperationalEvent, on_operational_events),
    ]
    for topic, purpose, model, handler in fan_out_consumers:
        runtime.consume_pipelined(
            topic,
            purpose,
            model,
            handler,
            # An event that fails its type's enforced schema is dead-lettered, not fanned out.
            refuse=catalog.refused_record if topic == Topic.CHAT_EVENTS else None,
            on_drain=dispatcher.stop_owing,
            on_assigned=partial(dispatcher.assigned, purpose),
            on_revoked=partial(dispatcher.revoked, purpose),
        )

    async def start(_: Runtime) -> None:
        writer.start()
        await cache.refresh()
        runtime.background("endpoint-cache", cache.run)
        await catalog.cache.refresh()
        runtime.background("event-type-cache", catalog.cache.run)
        runtime.background("delivery-scheduler", scheduler.run)
        runtime.background("delivery-heartbeat", ownership.keep_alive)
        runtime.background("delivery-hold", dispatcher.hold)
        runtime.background("delivery-replays", replays.run)
        runtime.background("operational-announcer", announcer.run)
        await listeners.cache.refresh()
        runtime.background("listen-session-cache", listeners.cache.run)
        runtime.background("listen-watch", listeners.watch)

    def removed(workspace_id: str, deliveries: int, attempts: int) -> None:
        usage.keep(workspace_id, "deliveries", -deliveries)
        usage.keep(workspace_id, "attempts", -attempts)

    retain(
        runtime,
        EndedDeliveries(runtime.db, settings.delivery_retention, removed),
        OldDays(runtime.db, settings.delivery_retention),
        replays.retention(),
        operational_events.retention(settings.delivery_retention),
    )
    runtime.on_startup(start)
    # First: a replay's positions stay those last written, for whoever takes it over.
    # Nothing reserved: a replay cut off is read on from its last positions.
    runtime.on_shutdown("delivery_replays", replays.stop, minimum=0.0, cap=0.1)
    runtime.on_shutdown("delivery_attempts", dispatcher.stop, cap=0.4)
    # After the attempts, whose outcomes may say something (failing, exhausted).
    runtime.on_shutdown("operational_events", announcer.stop, minimum=0.02, cap=0.1)
    # Outcomes before the release: what finished is not handed over to be sent again.
    runtime.on_shutdown("delivery_log", writer.stop)
    runtime.on_shutdown("delivery_release", ownership.release)
    runtime.on_shutdown(
        "transformation_sandboxes",
        lambda _: asyncio.gather(sandbox.close(), tried.close()),
        minimum=0.02,
    )
    # Nothing reserved: a FIFO key not let go of is taken over once the heartbeat is stale.
    runtime.on_shutdown("delivery_keys", ordering.stop, minimum=0.0, cap=0.1)
    # The sockets were closed by the server's stop (1012: the listeners reconnect, to
    # another replica where there is one); what is left is their hop client.
    runtime.on_shutdown("listen_relay", listeners.stop, minimum=0.0, cap=0.05)
    # After the attempts: those that end during the stop are counted.
    usage.register(runtime)
    minutes.register(runtime)
    runtime.ready_check("endpoint_cache", cache.ready)
    runtime.ready_check("event_type_cache", catalog.cache.ready)
    runtime.ready_check("listen_session_cache", listeners.cache.ready)


def _event(event: ChatEvent) -> Event:
    """What fan-out needs of a chat event, with its place in its key's order."""
    position = event.position()
    return Event.of(event, position[1] if position is not None else None)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="delivery",
        description=(
            "Sends the chat product's events to subscribers' URLs, signed, retried and logged."
        ),
        routers=[
            endpoint_routes.router,
            delivery_routes.router,
            event_type_routes.router,
            event_type_routes.catalog_router,
            transformation_routes.router,
            operational_routes.router,
            listen_routes.router,
            listen_routes.socket_router,
            listen_routes.hop_router,
        ],
        indexes=[
            *endpoint_repository.INDEXES,
            *delivery_repository.INDEXES,
            *delivery_repository.RETIRED_INDEXES,
            *timeline.INDEXES,
            *replay_jobs.INDEXES,
            *event_type_repository.INDEXES,
            *operational_repository.INDEXES,
            *listen_repository.INDEXES,
        ],
        internal_topics=[DEAD_LETTER_TOPIC],
        setup=setup,
        settings_class=DeliverySettings,
    )
