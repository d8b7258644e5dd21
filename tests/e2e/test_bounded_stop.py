"""SIGTERM → every service has exited within HOOKHUB_SHUTDOWN_SECONDS, whatever it was doing.

Each service runs as `hookhub serve` does in production. The hard cases: Kafka and MongoDB
both frozen (SIGSTOP: connections open, nothing answers) when the stop begins, and the
delivery service with 200 attempts in flight to an endpoint that never answers. What a stop
cuts off is left for a retry: never lost, never reported as delivered (for a delivery not
yet recorded, its event's uncommitted offset is the record).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from shared.kernel.embedded import free_port, start_broker, start_mongo
from shared.kernel.kafka import PUBLIC_TOPICS, ensure_topics
from shared.kernel.settings import SERVICE_PORTS, ServiceSettings
from tests.infra import Infra
from tests.support import (
    ServiceProcess,
    admin_headers,
    freeze,
    make_settings,
    new_namespace,
    produce_chat_events,
    serve,
)
from tests.webhook_sink import WebhookSink

pytestmark = pytest.mark.e2e

SHUTDOWN_SECONDS = 4
# A process that has finished its stop still has to leave: the interpreter's own exit.
EXIT_MARGIN = 2.0


@pytest.fixture(scope="module")
def own_infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Infra, list[int]]]:
    """A broker and a database of this module's own, so that freezing them stops no other
    test; with their pids, to freeze."""
    workdir = tmp_path_factory.mktemp("own-infra")
    kafka_port, mongo_port = free_port(), free_port()
    broker = start_broker(kafka_port, workdir / "logs")
    mongo = start_mongo(mongo_port, workdir / "mongo", workdir / "logs")
    try:
        infra = Infra("embedded", f"127.0.0.1:{kafka_port}", f"mongodb://127.0.0.1:{mongo_port}")
        yield infra, [broker.process.pid, mongo.process.pid]
    finally:
        mongo.stop()
        broker.stop()


def _clean_exit(service: ServiceProcess) -> bool:
    """Exited by itself: uvicorn re-raises the SIGTERM it handled once the stop is over, so
    the status says "terminated by SIGTERM" (not the watchdog's forced exit)."""
    return service.process.returncode in (0, -signal.SIGTERM)


def _stop_record(service: ServiceProcess) -> dict[str, object]:
    lines = service.log_lines()  # json.loads on each: a line that is not JSON fails here
    [record] = [line for line in lines if line.get("event") == "service_stop_took"]
    return record


@pytest.mark.parametrize("name", list(SERVICE_PORTS))
async def test_each_service_stops_in_time_with_kafka_and_mongodb_frozen(
    name: str, own_infra: tuple[Infra, list[int]], tmp_path: Path
) -> None:
    infra, pids = own_infra
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    service = ServiceProcess.start(
        name,
        settings,
        tmp_path / f"{name}.log",
        HOOKHUB_SHUTDOWN_SECONDS=str(SHUTDOWN_SECONDS),
        HOOKHUB_LOG_LEVEL="INFO",
    )
    try:
        await service.ready()
        for pid in pids:
            freeze(pid)  # open connections, no answers
        took = await service.stop()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert _clean_exit(service), f"not a clean exit; see {service.log_path}"
    assert took <= SHUTDOWN_SECONDS + EXIT_MARGIN, f"{name} took {took:.1f}s to stop"
    record = _stop_record(service)
    # The last step ends at the deadline, give or take the event loop's timer resolution.
    assert float(str(record["took_ms"])) <= SHUTDOWN_SECONDS * 1000 + 250


async def test_delivery_with_200_attempts_in_flight_stops_in_time_and_hands_them_back(
    infra: Infra, tmp_path: Path
) -> None:
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    await ensure_topics(settings, [settings.topic(t) for t in PUBLIC_TOPICS])
    env = {
        "HOOKHUB_SHUTDOWN_SECONDS": str(SHUTDOWN_SECONDS),
        "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        "HOOKHUB_SCHEDULER_POLL_SECONDS": "0.2",
        "HOOKHUB_LOG_LEVEL": "INFO",
        # 128 by default, a quarter of it for one endpoint: 200 for this one.
        "HOOKHUB_DELIVERY_MAX_IN_FLIGHT": "800",
    }
    sink = WebhookSink()
    sink.on("/hook", 200, delay=3600)  # never answers
    events = 300
    async with serve(sink.app(), probe="/healthz") as receiver:
        first = ServiceProcess.start("delivery", settings, tmp_path / "first.log", **env)
        try:
            await first.ready()
            created = await receiver.client.post(
                first.base_url + "/api/outgoing-webhooks",
                json={
                    "workspace_id": "ws_stop",
                    "url": receiver.base_url + "/hook",
                    "events": ["*"],
                    "max_concurrency": 200,
                    "timeout_seconds": 120,
                    "retry_schedule": [1],
                },
                headers=admin_headers(),
            )
            assert created.status_code == 201, created.text
            await produce_chat_events(settings, "ws_stop", ({"seq": seq} for seq in range(events)))
            hanging = await sink.wait_for("/hook", 200, timeout=60)
            assert len(hanging) >= 200, f"only {len(hanging)} attempts in flight"
            took = await first.stop()
        finally:
            if first.process.poll() is None:
                first.process.kill()
        assert _clean_exit(first), f"not a clean exit; see {first.log_path}"
        assert took <= SHUTDOWN_SECONDS + EXIT_MARGIN, f"delivery took {took:.1f}s to stop"
        assert _stop_record(first)["overran"] == []

        # Left for a retry: nothing recorded as an outcome. The attempts cut off were of
        # deliveries made from consumed batches and not yet recorded (written once, with
        # their outcome): not written at all, their batches' offsets not committed, so the
        # next process fans those events out again. What is written is open, handed over
        # and due: the deliveries beyond the endpoint's share of the room (pending, held by
        # nobody), and any held past HOOKHUB_DELIVERY_HOLD_SECONDS before the stop (held by
        # the stopped process).
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongo_uri)
        try:
            db = client[settings.mongo_db]
            deliveries = await db["deliveries"].find({}).to_list()
            assert len(deliveries) <= events
            assert {d["status"] for d in deliveries} <= {"pending", "active"}
            # Handed over: the worker said it stopped (one write, so the others take what
            # it held as a dead one's), and the owners it had time to clear are cleared
            # (due: whoever polls next takes them).
            owners = {d["lease_owner"] for d in deliveries} - {None}
            stopped = await db["delivery_workers"].distinct("_id", {"stopped": True})
            assert len(stopped) == 1 and owners <= set(stopped)
            assert all(d["next_attempt_at"] is not None for d in deliveries)
            assert await db["delivery_attempts"].count_documents({}) == 0
        finally:
            await client.close()

        # The next process delivers every one of them once the endpoint answers: those
        # written, and those it fans out again from the uncommitted offsets.
        sink.on("/hook", 200)
        before = len(sink.at("/hook"))
        second = ServiceProcess.start("delivery", settings, tmp_path / "second.log", **env)
        try:
            await second.ready()
            deadline = asyncio.get_running_loop().time() + 90
            while asyncio.get_running_loop().time() < deadline:
                delivered = {r.headers["webhook-id"] for r in sink.at("/hook")[before:]}
                if len(delivered) >= events:
                    break
                await asyncio.sleep(0.5)
        finally:
            await second.stop()
    assert len(delivered) == events, f"{events - len(delivered)} deliveries were lost"
