"""Operational events (SPEC §17, services/delivery/operational/): each from what causes it,
delivered signed to the endpoints that name them and to no other, never about an endpoint to
itself, and two operational endpoints that are down do not feed each other."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import standardwebhooks.webhooks
from prometheus_client import CollectorRegistry

from services.delivery.deliveries.circuit import FAILURES_TO_OPEN, Circuit, State
from services.delivery.deliveries.dispatcher import Attempted
from services.delivery.deliveries.job import Job
from services.delivery.deliveries.policy import Verdict
from services.delivery.operational.watch import FAILURES_TO_WARN, WARN_EVERY, EndpointWatch
from services.delivery.outgoing_webhooks.matching import about_itself, matches
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.domain.operational import (
    Announcer,
    mirror,
    operational_event,
    publish_integration_event,
)
from shared.kernel.envelopes import IntegrationEvent, OperationalEvent, Topic
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.test_deliveries import endpoint, publish
from tests.infra import Infra
from tests.support import KafkaTap, RunningService, admin_headers, until
from tests.webhook_sink import Received, WebhookSink

Sink = tuple[WebhookSink, str]
COOL_DOWN = 0.3

# -- which endpoints take them ---------------------------------------------------------------


def test_star_alone_does_not_take_operational_events_a_name_or_prefix_does() -> None:
    failing = "operational.delivery.failing"
    assert matches(["*"], "message.created")
    assert not matches(["*"], failing)
    assert matches(["*", "operational.*"], failing)
    assert matches(["operational.delivery.*"], failing)
    assert matches([failing], failing)
    assert not matches(["operational.endpoint.*"], failing)
    assert about_itself("ep_1", failing, {"endpoint_id": "ep_1"})
    assert not about_itself("ep_2", failing, {"endpoint_id": "ep_1"})
    assert not about_itself("ep_1", "message.created", {"endpoint_id": "ep_1"})


def test_integration_troubles_are_operational_events_too() -> None:
    def integration(type: str, **data: Any) -> IntegrationEvent:
        return IntegrationEvent.model_validate(
            {
                "id": "evt_" + uuid.uuid4().hex,
                "type": type,
                "workspace_id": "ws_i",
                "integration_id": "int_1",
                "provider": "slack",
                "data": data,
            }
        )

    error = mirror(integration("integration.error", reason="account_inactive", message="gone"))
    assert error is not None and error.type == "operational.integration.error"
    assert error.data == {
        "integration_id": "int_1",
        "provider": "slack",
        "reason": "account_inactive",
        "message": "gone",
    }
    assert error.partition_key() == b"int_1"
    failed = mirror(integration("import.failed", job_id="imp_1", error="the export is broken"))
    assert failed is not None and failed.type == "operational.import.failed"
    assert failed.data["import_id"] == "imp_1" and failed.data["error"] == "the export is broken"
    assert failed.data["reason"] == "failed"
    assert failed.partition_key() == b"imp_1"  # the import is the resource
    assert mirror(integration("integration.connected")) is None


# -- an endpoint's troubles, on a clock the test moves -------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


ENDPOINT = EndpointSnapshot(
    id="ep_w",
    workspace_id="ws_w",
    url="https://example.com/h",
    events=("*",),
    enabled=True,
    retry_schedule=(5,),
    timeout_seconds=30,
    rate_limit_per_second=None,
    max_concurrency=1,
)


def attempt(verdict: Verdict, status: int | None = 500, event_type: str = "m.x") -> Attempted:
    job = Job(
        id="dlv_" + uuid.uuid4().hex,
        endpoint_id=ENDPOINT.id,
        workspace_id=ENDPOINT.workspace_id,
        event_id="evt_1",
        event_type=event_type,
        msg_id="msg_1",
        body=b"{}",
        attempts=1,
        tries=1,
        manual=False,
    )
    error = None if status else "timeout after 30s"
    return Attempted(ENDPOINT, job, 2, verdict, status, error)


def test_failing_on_the_fifth_failure_in_a_row_then_hourly_and_recovered_after() -> None:
    clock, emitted = Clock(), list[OperationalEvent]()
    watch = EndpointWatch(emitted.append, clock=clock)
    types: Callable[[], list[str]] = lambda: [e.type for e in emitted]  # noqa: E731
    for _ in range(FAILURES_TO_WARN - 1):
        watch.attempted(attempt(Verdict.RETRY))
    watch.attempted(attempt(Verdict.COMPLETED, 200))  # a success ends the streak, unannounced
    for _ in range(FAILURES_TO_WARN - 1):
        watch.attempted(attempt(Verdict.RETRY))
    assert emitted == []
    watch.attempted(attempt(Verdict.RETRY, 503))
    [failing] = emitted
    assert failing.type == "operational.delivery.failing"
    assert failing.data["endpoint_id"] == ENDPOINT.id
    assert failing.data["failures"] == FAILURES_TO_WARN
    assert failing.data["last_status_code"] == 503
    clock.now += WARN_EVERY - timedelta(seconds=1)
    for _ in range(20):
        watch.attempted(attempt(Verdict.RETRY))
    assert types() == ["operational.delivery.failing"]  # once an hour at most
    clock.now += timedelta(seconds=1)
    watch.attempted(attempt(Verdict.RETRY, None))
    assert types() == ["operational.delivery.failing"] * 2
    assert emitted[-1].data["last_error"] == "timeout after 30s"
    watch.attempted(attempt(Verdict.COMPLETED, 204))
    assert types()[-1] == "operational.delivery.recovered"
    assert emitted[-1].data["last_status_code"] == 204
    watch.attempted(attempt(Verdict.COMPLETED, 200))
    assert len(emitted) == 3  # recovered once


def test_exhausted_for_each_delivery_dead_lettered_but_not_an_operational_ones() -> None:
    emitted: list[OperationalEvent] = []
    watch = EndpointWatch(emitted.append)
    dead = attempt(Verdict.FAILED, 500)
    watch.attempted(dead)
    watch.attempted(attempt(Verdict.GONE, 410))
    watch.attempted(attempt(Verdict.FAILED, 500, event_type="operational.delivery.failing"))
    assert [e.type for e in emitted] == ["operational.delivery.exhausted"] * 2
    assert emitted[0].data == {
        "endpoint_id": ENDPOINT.id,
        "delivery_id": dead.job.id,
        "event_id": "evt_1",
        "event_type": "m.x",
        "attempts": 2,
        "reason": "no success in 2 attempts",
        "last_status_code": 500,
    }
    assert emitted[1].data["reason"] == "the endpoint answered 410 Gone"


def test_circuit_opened_once_per_opening_and_closed() -> None:
    clock, emitted = Clock(), list[OperationalEvent]()
    watch = EndpointWatch(emitted.append, clock=clock)
    watch.attempted(attempt(Verdict.RETRY, 502))
    now = clock.now
    opened = Circuit(State.OPEN, opened_at=now, failure_rate=0.5, changed_at=now)
    watch.circuit(ENDPOINT, opened)
    later = now + timedelta(seconds=30)
    watch.circuit(ENDPOINT, Circuit(State.HALF_OPEN, opened_at=now, changed_at=later))
    watch.circuit(ENDPOINT, Circuit(State.OPEN, opened_at=now, changed_at=later))  # reopened
    watch.circuit(ENDPOINT, Circuit(State.CLOSED, changed_at=later))
    assert [e.type for e in emitted] == [
        "operational.endpoint.circuit_opened",
        "operational.endpoint.circuit_closed",
    ]
    assert emitted[0].data["reason"] == "50% of the last attempts failed"
    assert emitted[0].data["last_status_code"] == 502


# -- in a delivery service -------------------------------------------------------------------


@pytest.fixture(scope="module")
def delivery_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> DeliverySettings:
    return settings_for(
        infra,
        tmp_path_factory,
        circuit_cool_down_seconds=COOL_DOWN,
        circuit_max_cool_down_seconds=10 * COOL_DOWN,
    )


def path() -> str:
    return "/op/" + uuid.uuid4().hex[:8]


def bodies(fake: WebhookSink, at: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.at(at)]


def about(fake: WebhookSink, at: str, endpoint_id: str, type: str) -> list[Received]:
    return [
        r
        for r in fake.at(at)
        if json.loads(r.body)["type"] == type
        and json.loads(r.body)["data"].get("endpoint_id") == endpoint_id
    ]


async def received(fake: WebhookSink, at: str, endpoint_id: str, type: str) -> Received:
    found = await until(
        lambda: about(fake, at, endpoint_id, type), what=f"{type} about {endpoint_id} at {at}"
    )
    first: Received = found[0]
    return first


async def test_endpoint_changes_and_troubles_reach_the_endpoints_that_name_them(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    ws = "ws_op_" + uuid.uuid4().hex[:6]
    ops_path, star_path, flaky_path = path(), path(), path()
    ops = await endpoint(delivery, sink, ops_path, workspace_id=ws, events=["operational.*"])
    star = await endpoint(delivery, sink, star_path, workspace_id=ws)  # events ["*"]
    fake.on(flaky_path, 500)  # down until the test says
    flaky = await endpoint(
        delivery, sink, flaky_path, workspace_id=ws, events=["flaky.test"], retry_schedule=[]
    )
    url = f"/api/outgoing-webhooks/{flaky['id']}"

    created = await received(fake, ops_path, flaky["id"], "operational.endpoint.created")
    # Signed as any delivery, with the endpoint's own secret.
    standardwebhooks.webhooks.Webhook(ops["secret"]).verify(created.body, created.headers)
    assert created.headers["x-webhook-event"] == "operational.endpoint.created"
    data = json.loads(created.body)["data"]
    assert data == {"endpoint_id": flaky["id"], "name": flaky["name"], "enabled": True}
    assert flaky["url"] not in created.body.decode()  # nor its secret

    answer = await delivery.client.patch(url, json={"name": "flaky"}, headers=admin_headers())
    assert answer.status_code == 200, answer.text
    updated = await received(fake, ops_path, flaky["id"], "operational.endpoint.updated")
    assert json.loads(updated.body)["data"]["changed"] == ["name"]

    # Ten failures in a row: `failing` at the fifth, the circuit open at the tenth, and
    # each delivery dead-lettered (no retries) `exhausted`.
    events = [await publish(delivery, "flaky.test", ws) for _ in range(FAILURES_TO_OPEN)]
    failing = await received(fake, ops_path, flaky["id"], "operational.delivery.failing")
    failing_data = json.loads(failing.body)["data"]
    assert failing_data["failures"] == 5 and failing_data["last_status_code"] == 500
    opened = await received(fake, ops_path, flaky["id"], "operational.endpoint.circuit_opened")
    assert json.loads(opened.body)["data"]["reason"] == "100% of the last attempts failed"
    exhausted = await until(
        lambda: (
            found
            if len(found := about(fake, ops_path, flaky["id"], "operational.delivery.exhausted"))
            >= len(events)
            else None
        ),
        what="every delivery exhausted",
    )
    exhausted_data = [json.loads(r.body)["data"] for r in exhausted]
    assert {d["event_id"] for d in exhausted_data} == set(events)
    assert all(d["last_status_code"] == 500 and d["attempts"] == 1 for d in exhausted_data)

    # Back: the probe closes the circuit, and the first success says it recovered.
    fake.on(flaky_path, 200)
    await publish(delivery, "flaky.test", ws)
    await received(fake, ops_path, flaky["id"], "operational.endpoint.circuit_closed")
    recovered = await received(fake, ops_path, flaky["id"], "operational.delivery.recovered")
    assert json.loads(recovered.body)["data"]["last_status_code"] == 200

    # Disabled and enabled through the API; disabled by a 410; deleted.
    for enabled, kind in ((False, "disabled"), (True, "enabled")):
        answer = await delivery.client.patch(
            url, json={"enabled": enabled}, headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        event = await received(fake, ops_path, flaky["id"], f"operational.endpoint.{kind}")
        assert json.loads(event.body)["data"]["reason"] == f"{kind} through the API"
    fake.on(flaky_path, 410)
    await publish(delivery, "flaky.test", ws)
    await until(
        lambda: len(about(fake, ops_path, flaky["id"], "operational.endpoint.disabled")) == 2,
        what="disabled by a 410",
    )
    gone = about(fake, ops_path, flaky["id"], "operational.endpoint.disabled")[-1]
    assert json.loads(gone.body)["data"]["reason"] == "the endpoint answered 410 Gone"
    answer = await delivery.client.delete(url, headers=admin_headers())
    assert answer.status_code == 204
    await received(fake, ops_path, flaky["id"], "operational.endpoint.deleted")

    # `*` took the flaky events and none of the operational ones; the operational endpoint
    # heard of the others' creation and never of its own.
    star_types = {b["type"] for b in bodies(fake, star_path)}
    assert star_types == {"flaky.test"}
    ops_bodies = bodies(fake, ops_path)
    assert all(b["type"].startswith("operational.") for b in ops_bodies)
    assert not [b for b in ops_bodies if b["data"].get("endpoint_id") == ops["id"]]
    await received(fake, ops_path, star["id"], "operational.endpoint.created")

    # The console's timeline: the endpoint's events, newest first, in its workspace only.
    async def timeline() -> list[dict[str, Any]] | None:
        answer = await delivery.client.get(
            "/api/operational-events", params={"resource_id": flaky["id"]}, headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()["data"]
        return found if found and found[0]["type"] == "operational.endpoint.deleted" else None

    kept = await until(timeline, what="the deletion on the timeline")
    assert kept[-1]["type"] == "operational.endpoint.created"
    assert {e["resource_id"] for e in kept} == {flaky["id"]}
    assert all(e["workspace_id"] == ws for e in kept)
    other = await delivery.client.get(
        "/api/operational-events",
        params={"resource_id": flaky["id"], "workspace_id": "ws_other"},
        headers=admin_headers(),
    )
    assert other.json()["data"] == []
    assert (await delivery.client.get("/api/operational-events")).status_code == 401

    # Nobody else speaks for hookhub: a chat event may not take an operational type.
    forged = {
        "id": "evt_" + uuid.uuid4().hex,
        "type": "operational.endpoint.deleted",
        "workspace_id": ws,
        "occurred_at": utcnow().isoformat(),
        "data": {"endpoint_id": ops["id"]},
    }
    answer = await delivery.client.post("/api/events", json=forged, headers=admin_headers())
    assert answer.status_code == 422, answer.text
    assert "hookhub's own operational events" in answer.text


async def test_two_operational_endpoints_that_are_down_do_not_feed_each_other(
    delivery: RunningService, sink: Sink, delivery_settings: DeliverySettings
) -> None:
    """Both take every operational event and fail every one (no retries): each hears once
    that the other is failing, and nothing more comes of their failures (no `exhausted`
    about a lost operational event, no second `failing` within the hour)."""
    fake, _ = sink
    ws = "ws_loop_" + uuid.uuid4().hex[:6]
    down = {}
    for _ in range(2):
        at = path()
        fake.on(at, 503)
        hook = await endpoint(
            delivery, sink, at, workspace_id=ws, events=["operational.*"], retry_schedule=[]
        )
        down[hook["id"]] = at
    first, second = list(down)
    other = await endpoint(delivery, sink, path(), workspace_id=ws, events=["other.test"])
    url = f"/api/outgoing-webhooks/{other['id']}"
    for n in range(FAILURES_TO_WARN):  # with its creation: six events each fails
        answer = await delivery.client.patch(url, json={"name": f"n{n}"}, headers=admin_headers())
        assert answer.status_code == 200
    await received(fake, down[second], first, "operational.delivery.failing")
    await received(fake, down[first], second, "operational.delivery.failing")

    async def ended() -> bool:
        """Nothing open at either, and the failing events taken (and failed)."""
        for endpoint_id in down:
            answer = await delivery.client.get(
                "/api/webhooks/stats", params={"webhook_id": endpoint_id}, headers=admin_headers()
            )
            stats = answer.json()
            if stats["pending"] + stats["active"] + stats["delayed"] or stats["failed"] < 7:
                return False
        return True

    await until(ended, what="every delivery to both ended")
    # One more event after their last attempts: the announcer publishes in order, so once
    # it is on the topic, whatever those attempts made is too.
    answer = await delivery.client.patch(url, json={"name": "last"}, headers=admin_headers())
    assert answer.status_code == 200
    async with KafkaTap.of(delivery_settings, Topic.OPERATIONAL_EVENTS) as tap:
        await tap.wait_for(
            lambda v: (
                v["type"] == "operational.endpoint.updated" and v["data"].get("name") == "last"
            )
        )
        while await tap.poll():
            pass
        mine = [v for v in tap.values() if v["workspace_id"] == ws]
    troubles = sorted(
        (v["type"], v["data"]["endpoint_id"])
        for v in mine
        if v["type"].startswith("operational.delivery")
    )
    assert troubles == sorted(
        [("operational.delivery.failing", first), ("operational.delivery.failing", second)]
    )
    for endpoint_id, at in down.items():
        assert not [b for b in bodies(fake, at) if b["data"].get("endpoint_id") == endpoint_id]


async def test_an_import_failed_and_an_integration_error_are_delivered_as_operational_events(
    delivery: RunningService, sink: Sink, delivery_settings: DeliverySettings
) -> None:
    """Where the importer, oauth and sync publish an integration event that is an operational
    one too (`publish_integration_event`): both topics get it, and the delivery service
    delivers the operational one to the endpoints that name it."""
    fake, _ = sink
    ws = "ws_int_" + uuid.uuid4().hex[:6]
    at = path()
    await endpoint(
        delivery,
        sink,
        at,
        workspace_id=ws,
        events=["operational.import.failed", "operational.integration.*"],
    )
    runtime = delivery.app.state.runtime  # type: ignore[attr-defined]
    for type, data in (
        ("import.failed", {"job_id": "imp_1", "source": "slack_export", "error": "bad zip"}),
        ("integration.error", {"reason": "token_revoked", "message": "revoked in Slack"}),
        ("integration.connected", {}),  # not an operational event
    ):
        event = IntegrationEvent.model_validate(
            {
                "id": "evt_" + uuid.uuid4().hex,
                "type": type,
                "workspace_id": ws,
                "integration_id": "int_" + ws,
                "provider": "slack",
                "data": data,
            }
        )
        await publish_integration_event(runtime.publisher, event)
    delivered = await until(
        lambda: bodies(fake, at) if len(bodies(fake, at)) >= 2 else None,
        what="both delivered",
    )
    by_type = {b["type"]: b for b in delivered}
    failed, error = by_type["operational.import.failed"], by_type["operational.integration.error"]
    assert failed["type"] == "operational.import.failed"
    assert failed["data"]["import_id"] == "imp_1" and failed["data"]["error"] == "bad zip"
    assert error["type"] == "operational.integration.error"
    assert error["data"]["integration_id"] == f"int_{ws}"
    assert error["data"]["reason"] == "token_revoked"
    async with KafkaTap.of(delivery_settings, Topic.INTEGRATION_EVENTS) as tap:
        published = await tap.wait_for(lambda v: v["workspace_id"] == ws, count=3)
    assert [v["type"] for v in published] == [
        "import.failed",
        "integration.error",
        "integration.connected",
    ]


async def test_the_announcer_keeps_what_kafka_did_not_take_and_counts_what_it_let_go(
    delivery: RunningService, delivery_settings: DeliverySettings
) -> None:
    """Emitted while its publisher cannot reach Kafka: kept (the oldest let go of past its
    limit, counted), published once it can; what the stop could not publish is counted."""
    registry = CollectorRegistry()
    publisher = EventPublisher(delivery_settings, "test-announcer", registry)
    announcer = Announcer(publisher, registry, limit=2, pause=0.05)
    ws = "ws_ann_" + uuid.uuid4().hex[:6]
    events = [
        operational_event(ws, "operational.endpoint.created", endpoint_id=f"ep_{n}")
        for n in range(3)
    ]
    for event in events:
        announcer.emit(event)
    assert registry.get_sample_value("hookhub_operational_events_dropped_total") == 1
    running = asyncio.create_task(announcer.run())
    try:
        async with KafkaTap.of(delivery_settings, Topic.OPERATIONAL_EVENTS) as tap:
            await until(
                lambda: registry.get_sample_value(
                    "hookhub_kafka_published_total",
                    {"topic": str(Topic.OPERATIONAL_EVENTS), "outcome": "failed"},
                ),
                what="a publish refused while not connected",
            )
            await publisher.start()
            published = await tap.wait_for(lambda v: v["workspace_id"] == ws, count=2)
        assert sorted(v["id"] for v in published) == sorted(e.id for e in events[1:])
        assert registry.get_sample_value("hookhub_operational_events_waiting") == 0
    finally:
        running.cancel()
        await publisher.stop(1)
    announcer.emit(events[0])
    await announcer.stop(0.5)  # its publisher stopped: not published, counted
    assert registry.get_sample_value("hookhub_operational_events_dropped_total") == 2
