"""A delivery made from a consumed batch is written once, with its first outcome, and the
batch's offsets are committed only once it is: Kafka's uncommitted offset is the record that
it is owed until then.

The endpoint holds each request until the test lets it go, so "sent and not yet recorded"
is a state the test holds, not one it races for."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient

from services.delivery.app import definition
from services.delivery.deliveries.repository import ATTEMPTS
from shared.domain.platform import create_app
from shared.kernel.embedded import free_port, start_broker
from shared.kernel.envelopes import Topic
from shared.kernel.mongo import Collection
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.test_deliveries import publish
from tests.infra import Infra
from tests.support import RunningService, admin_headers, counted, freeze, serve, until
from tests.webhook_sink import WebhookSink

Sink = tuple[WebhookSink, str]


@pytest.fixture(scope="module")
def delivery_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> DeliverySettings:
    # Held as long as the endpoint holds it: the bound is tested on its own below.
    return settings_for(infra, tmp_path_factory, delivery_hold_seconds=3600)


def _state(delivery: RunningService) -> Any:
    return cast(Any, delivery.app).state


async def _offsets(settings: DeliverySettings) -> tuple[int, int]:
    """The fan-out group's committed offsets on the chat events topic and the topic's end,
    each summed over its partitions (read by a member that subscribes to nothing: no
    rebalance)."""
    topic = settings.topic(Topic.CHAT_EVENTS)
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group("delivery", "fanout"),
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        committed = [await reader.committed(tp) for tp in partitions]
        ends = await reader.end_offsets(partitions) if partitions else {}
    finally:
        await reader.stop()
    return sum(offset or 0 for offset in committed), sum(ends.values())


async def _committed(settings: DeliverySettings) -> int:
    return (await _offsets(settings))[0]


async def _all_committed(settings: DeliverySettings) -> int | None:
    """The committed offsets' sum once every event published is committed, else None."""
    committed, end = await _offsets(settings)
    return committed if committed == end else None


async def _endpoint(
    delivery: RunningService, url: str, workspace: str, max_concurrency: int = 10
) -> str:
    body = {
        "workspace_id": workspace,
        "url": url,
        "events": ["*"],
        "max_concurrency": max_concurrency,
    }
    answer = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert answer.status_code == 201, answer.text
    endpoint_id: str = answer.json()["id"]
    await until(lambda: _state(delivery).endpoint_cache.get(endpoint_id), what="cached")
    return endpoint_id


def _path(sink: Sink, gate: asyncio.Event | None = None) -> tuple[str, str]:
    """A path on the sink (answering 200, once `gate` is set if given) and its URL."""
    fake, base_url = sink
    path = "/recorded/" + uuid.uuid4().hex[:8]
    fake.on(path, 200, gate=gate)
    return path, base_url + path


async def _completed_once(deliveries: Collection, endpoint_id: str) -> dict[str, Any]:
    query = {"endpoint_id": endpoint_id, "status": "completed"}
    await until(lambda: deliveries.find_one(query), what="the delivery completed")
    [doc] = await deliveries.find({"endpoint_id": endpoint_id}).to_list()
    return doc


async def test_a_delivery_is_written_once_with_its_first_outcome(
    delivery: RunningService, sink: Sink
) -> None:
    """While its first attempt is out, the delivery is nowhere in MongoDB (no `pending` or
    `active` to update); it appears once, completed, with its attempt in its document (one
    insert, nothing in `delivery_attempts`). A later attempt is logged there, and the API
    shows both in order."""
    gate = asyncio.Event()
    path, url = _path(sink, gate)
    endpoint_id = await _endpoint(delivery, url, "ws_recorded_once")
    deliveries: Collection = _state(delivery).delivery_repository.deliveries
    try:
        await publish(delivery, "message.created", "ws_recorded_once")
        [request] = await sink[0].wait_for(path, 1)
        assert await deliveries.count_documents({"endpoint_id": endpoint_id}) == 0
    finally:
        gate.set()
    doc = await _completed_once(deliveries, endpoint_id)
    assert doc["attempts"] == 1 and doc["tries"] == 1
    assert doc["last_status_code"] == 200 and doc["lease_owner"] is None
    assert doc["msg_id"] == request.headers["webhook-id"]
    assert doc["ended_at"] is not None and doc["next_attempt_at"] is None
    assert doc["first_attempt"]["attempt"] == 1
    assert doc["first_attempt"]["status_code"] == 200
    attempts: Collection = deliveries.database[ATTEMPTS]
    assert await attempts.count_documents({"delivery_id": doc["_id"]}) == 0
    answer = await delivery.client.get(f"/api/deliveries/{doc['_id']}", headers=admin_headers())
    assert answer.status_code == 200, answer.text
    assert [a["status_code"] for a in answer.json()["attempt_log"]] == [200]

    retried = await delivery.client.post(
        f"/api/deliveries/{doc['_id']}/retry", params={"force": "true"}, headers=admin_headers()
    )
    assert retried.status_code == 202, retried.text
    await sink[0].wait_for(path, 2)
    await until(lambda: attempts.find_one({"_id": f"{doc['_id']}:2"}), what="attempt 2 logged")

    async def both() -> list[Any] | None:
        answer = await delivery.client.get(f"/api/deliveries/{doc['_id']}", headers=admin_headers())
        log = answer.json()["attempt_log"]
        return log if len(log) == 2 else None

    log = await until(both, what="both attempts in the API's log")
    assert [(a["attempt"], a["status_code"]) for a in log] == [(1, 200), (2, 200)]

    # The timeline counts them (deliveries/timeline.py), not the log.
    async def two_successes() -> list[Any] | None:
        answer = await delivery.client.get(
            "/api/webhooks/stats/timeline",
            params={"webhook_id": endpoint_id, "minutes": 5},
            headers=admin_headers(),
        )
        minutes = answer.json()["minutes"]
        return minutes if sum(m["success"] for m in minutes) == 2 else None

    minutes = await until(two_successes, what="the timeline's two successes")
    assert sum(m["http_error"] + m["network_error"] for m in minutes) == 0


async def test_a_batch_is_committed_only_once_its_deliveries_are_recorded(
    delivery: RunningService, delivery_settings: DeliverySettings, sink: Sink
) -> None:
    """The first event's request held: its offset is not committed, nor is a later event's
    whose delivery completed meanwhile (offsets commit in order). Let go, both are."""
    gate = asyncio.Event()
    held_path, held_url = _path(sink, gate)
    quick_path, quick_url = _path(sink)
    await _endpoint(delivery, held_url, "ws_recorded_held")
    quick = await _endpoint(delivery, quick_url, "ws_recorded_quick")
    deliveries: Collection = _state(delivery).delivery_repository.deliveries
    # Earlier tests' batches committed (each once its deliveries are recorded).
    before = await until(
        lambda: _all_committed(delivery_settings), what="earlier batches committed"
    )
    assert before is not None
    try:
        await publish(delivery, "message.created", "ws_recorded_held")
        await sink[0].wait_for(held_path, 1)
        await publish(delivery, "message.created", "ws_recorded_quick")
        await _completed_once(deliveries, quick)
        assert len(sink[0].at(quick_path)) == 1
        assert await _committed(delivery_settings) == before
    finally:
        gate.set()
    await until(lambda: _has_committed(delivery_settings, before + 2), what="both events committed")


async def _has_committed(settings: DeliverySettings, offset: int) -> bool:
    return await _committed(settings) == offset


async def test_a_process_stopped_between_send_and_record_is_replayed_by_the_next(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, sink: Sink
) -> None:
    """Stopped with a request out (cut off: never answered), its delivery unrecorded: its
    event's offset is not committed, so the next process fans it out again and sends it
    with the same `webhook-id`, recorded once. A later event's delivery, recorded before
    the stop but not committed (offsets commit in order), is found written and not sent
    again."""
    settings = settings_for(infra, tmp_path_factory, shutdown_seconds=2)
    gate = asyncio.Event()
    held_path, held_url = _path(sink, gate)
    quick_path, quick_url = _path(sink)
    try:
        async with serve(create_app(definition(), settings)) as first:
            held = await _endpoint(first, held_url, "ws_replay_held")
            quick = await _endpoint(first, quick_url, "ws_replay_quick")
            deliveries: Collection = _state(first).delivery_repository.deliveries
            await publish(first, "message.created", "ws_replay_held")
            await sink[0].wait_for(held_path, 1)
            await publish(first, "message.created", "ws_replay_quick")
            await _completed_once(deliveries, quick)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongo_uri)
        try:
            written = client[settings.mongo_db]["deliveries"]
            assert await written.count_documents({"endpoint_id": held}) == 0
        finally:
            await client.close()
        assert await _committed(settings) == 0
        gate.set()  # the next attempt is answered
        async with serve(create_app(definition(), settings)) as second:
            deliveries = _state(second).delivery_repository.deliveries
            doc = await _completed_once(deliveries, held)
            await until(lambda: _has_committed(settings, 2), what="both events committed")
            sent = sink[0].at(held_path)
            assert len(sent) == 2
            assert {r.headers["webhook-id"] for r in sent} == {doc["msg_id"]}
            assert doc["attempts"] == 1
            assert len(sink[0].at(quick_path)) == 1
            attempts = _state(second).delivery_repository.attempts
            assert [a["status_code"] for a in await attempts(doc)] == [200]
    finally:
        gate.set()


async def test_a_broker_away_mid_batch_loses_nothing_and_sends_nothing_twice(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, sink: Sink
) -> None:
    """The broker stops answering (SIGSTOP, a broker of the test's own) while a batch's
    delivery is out. Its outcome is recorded in MongoDB meanwhile, which needs no broker;
    its offset is not committed until the broker answers again. Then the process goes on
    without a restart: the event is not sent again (a replay of its batch finds its
    delivery written), and an event published after it is delivered, once."""
    port = free_port()
    broker = start_broker(port, tmp_path_factory.mktemp("broker"))
    own = Infra("embedded", f"127.0.0.1:{port}", infra.mongo_uri)
    settings = settings_for(own, tmp_path_factory, delivery_hold_seconds=3600)
    gate = asyncio.Event()
    path, url = _path(sink, gate)
    try:
        async with serve(create_app(definition(), settings)) as running:
            endpoint = await _endpoint(running, url, "ws_broker_away")
            deliveries: Collection = _state(running).delivery_repository.deliveries
            await publish(running, "message.created", "ws_broker_away")
            await sink[0].wait_for(path, 1)  # out, unrecorded, its batch uncommitted
            freeze(broker.process.pid)
            try:
                gate.set()
                await _completed_once(deliveries, endpoint)
                assert await deliveries.count_documents({"endpoint_id": endpoint}) == 1
            finally:
                broker.process.send_signal(signal.SIGCONT)
            await until(lambda: _all_committed(settings), what="the held event committed")
            await publish(running, "message.created", "ws_broker_away")
            done = {"endpoint_id": endpoint, "status": "completed"}
            await until(
                lambda: counted(deliveries, done, 2), timeout=30, what="the second delivered"
            )
            await until(lambda: _all_committed(settings), what="both events committed")
            sent = sink[0].at(path)
            assert len(sent) == 2
            assert len({request.headers["webhook-id"] for request in sent}) == 2
    finally:
        gate.set()
        broker.process.send_signal(signal.SIGCONT)
        broker.stop()


@pytest.fixture
async def briefly_held(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningService, DeliverySettings]]:
    settings = settings_for(infra, tmp_path_factory, delivery_hold_seconds=0.2)
    async with serve(create_app(definition(), settings)) as running:
        yield running, settings


async def test_a_slow_endpoint_past_the_hold_bound_does_not_hold_the_commit(
    briefly_held: tuple[RunningService, DeliverySettings], sink: Sink
) -> None:
    """A request held past HOOKHUB_DELIVERY_HOLD_SECONDS: its delivery is written `active`,
    held by this process, and the partition commits; another endpoint's deliveries go on
    meanwhile. Let go, its outcome is recorded on that document."""
    delivery, settings = briefly_held
    gate = asyncio.Event()
    slow_path, slow_url = _path(sink, gate)
    quick_path, quick_url = _path(sink)
    slow = await _endpoint(delivery, slow_url, "ws_hold")
    quick = await _endpoint(delivery, quick_url, "ws_hold")
    state = _state(delivery)
    deliveries: Collection = state.delivery_repository.deliveries
    mine = {"endpoint_id": slow, "status": "active", "lease_owner": state.ownership.id}
    try:
        await publish(delivery, "message.created", "ws_hold")
        await sink[0].wait_for(slow_path, 1)
        await until(lambda: deliveries.find_one(mine), what="the slow delivery written held")
        await until(lambda: _has_committed(settings, 1), what="the event committed")
        await publish(delivery, "message.created", "ws_hold")
        await sink[0].wait_for(slow_path, 2)
        await until(lambda: counted(deliveries, mine, 2), what="the second written held")
        await until(lambda: _has_committed(settings, 2), what="the second event committed")
        await until(lambda: len(sink[0].at(quick_path)) == 2, what="the quick endpoint's")
        written_held = state.runtime.registry.get_sample_value(
            "hookhub_delivery_written_held_total"
        )
        # Both slow ones (held, above, by the document); a quick one may pass the brief bound
        # too on a loaded machine (one CI run counted 3).
        assert written_held is not None and written_held >= 2
        assert len(sink[0].at(slow_path)) == 2
    finally:
        gate.set()
    done = {"endpoint_id": slow, "status": "completed", "attempts": 1}
    await until(lambda: counted(deliveries, done, 2), what="the slow endpoint's completed")
    assert len(sink[0].at(slow_path)) == 2
    quick_done = {"endpoint_id": quick, "status": "completed"}
    await until(lambda: counted(deliveries, quick_done, 2), what="the quick endpoint's completed")


def _unwritten(delivery: RunningService) -> float | None:
    registry: CollectorRegistry = _state(delivery).runtime.registry
    return registry.get_sample_value("hookhub_delivery_outcomes_unwritten")


async def test_no_more_is_sent_than_the_writer_has_room_for(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MongoDB writes nothing (the writer's flushes held): once HOOKHUB_DELIVERY_MAX_UNWRITTEN
    outcomes wait for it, the lane sends no more — what a kill -9 could send twice stays
    that bound (and the attempts out), however large the room — and the time it waits is
    not the endpoint's (`Dispatcher.behind`). Let go, every delivery is sent once and
    recorded."""
    state = _state(delivery)
    dispatcher = state.dispatcher
    writer = state.delivery_writer
    deliveries: Collection = state.delivery_repository.deliveries
    await until(lambda: _unwritten(delivery) == 0, what="earlier outcomes written")
    path, url = _path(sink)
    # One connection: the lane sends one delivery at a time, so each attempt begins after
    # the outcome before it is with the writer.
    endpoint_id = await _endpoint(delivery, url, "ws_unwritten", max_concurrency=1)
    writing = asyncio.Event()
    flush_once = writer._flush_once

    async def held() -> None:
        await writing.wait()
        await flush_once()

    # Held where a flush takes its batch: a flush already past that point took none of
    # what follows, and one waiting for it (for the lock) is held with the rest.
    monkeypatch.setattr(writer, "_flush_once", held)
    monkeypatch.setattr(dispatcher, "max_unwritten", 3)
    try:
        for _ in range(6):
            await publish(delivery, "message.created", "ws_unwritten")
        await sink[0].wait_for(path, 3)
        lane = dispatcher._lanes[endpoint_id]
        # The fourth taken off the queue and waiting for the writer, two behind it, none out.
        # (The sink has the third before its outcome reaches the writer: both awaited.)
        await until(
            lambda: lane.queue.qsize() == 2 and _unwritten(delivery) == 3,
            what="three outcomes with the writer, the fourth taken and waiting",
        )
        assert not dispatcher._busy
        assert len(sink[0].at(path)) == 3
        assert await deliveries.count_documents({"endpoint_id": endpoint_id}) == 0
        # Its oldest delivery handed over two hold bounds ago: its lane is behind (a slow
        # endpoint: fan-out writes the rest of its backlog for the scheduler at once) ...
        assert dispatcher._stalled_since is not None
        dispatcher._ages[endpoint_id][0].since -= 2 * dispatcher.hold_seconds
        assert dispatcher.behind(endpoint_id)
        # ... unless the lanes waited for MongoDB all that time: then it is MongoDB that
        # cannot keep up, and more written into it would slow it further.
        dispatcher._stalled_since -= 2 * dispatcher.hold_seconds
        assert not dispatcher.behind(endpoint_id)
    finally:
        writing.set()
    done = {"endpoint_id": endpoint_id, "status": "completed", "attempts": 1}
    await until(lambda: counted(deliveries, done, 6), what="all six recorded")
    assert len(sink[0].at(path)) == 6
