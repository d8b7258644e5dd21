"""A delivery in its event's trace (SPEC §18): the `traceparent` an event came with is kept
on its deliveries (in MongoDB, for a retry), sent on to the endpoints that ask
(`propagate_trace`) and to no other; exported, each attempt is a CLIENT span under the
fan-out's consumer span of its event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.delivery.app import definition
from shared.domain.platform import create_app
from shared.kernel import tracing
from shared.kernel.ids import utcnow
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.test_deliveries import endpoint, path, publish
from tests.infra import Infra
from tests.support import RunningService, admin_headers, serve, until
from tests.webhook_sink import WebhookSink

Sink = tuple[WebhookSink, str]

# A caller's context, as W3C Trace Context writes it: version, trace id, parent id, flags.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACESTATE = "vendor=1"


def workspace() -> str:
    return "ws_trace_" + uuid.uuid4().hex[:6]


async def deliveries_of(
    delivery: RunningService, webhook_id: str, count: int = 1
) -> list[dict[str, Any]]:
    """The endpoint's deliveries, newest first, once `count` of them are written and ended
    (an outcome reaches MongoDB with the writer's next flush)."""

    async def ended() -> list[dict[str, Any]] | None:
        answer = await delivery.client.get(
            "/api/deliveries", params={"webhook_id": webhook_id}, headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        data: list[dict[str, Any]] = answer.json()["data"]
        done = len(data) == count and all(d["status"] == "completed" for d in data)
        return data if done else None

    found: list[dict[str, Any]] = await until(ended, what=f"{count} deliveries of {webhook_id}")
    return found


async def test_carried_the_events_traceparent_goes_to_the_endpoints_that_ask_retries_too(
    delivery: RunningService, sink: Sink
) -> None:
    assert tracing.mode() is tracing.Mode.CARRIED  # the suite sets no OTEL_* variable
    fake, _ = sink
    ws, asks, silent = workspace(), path(), path()
    fake.on(asks, 500, 200)  # its second attempt is read back from MongoDB
    asking = await endpoint(
        delivery, sink, asks, workspace_id=ws, propagate_trace=True, retry_schedule=[0]
    )
    assert asking["propagate_trace"] is True
    quiet = await endpoint(delivery, sink, silent, workspace_id=ws)
    assert quiet["propagate_trace"] is False

    await publish(
        delivery, "trace.step", ws, headers={"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    )
    first, second = await fake.wait_for(asks, 2)
    # No span made with no exporter: the caller's own context, as it came, on every attempt.
    for request in (first, second):
        assert request.headers["traceparent"] == TRACEPARENT
        assert request.headers["tracestate"] == TRACESTATE
    [plain] = await fake.wait_for(silent, 1)
    assert "traceparent" not in plain.headers and "tracestate" not in plain.headers

    # The deliveries name the trace: an operator goes from a delivery to its trace.
    [asked] = await deliveries_of(delivery, asking["id"])
    [told] = await deliveries_of(delivery, quiet["id"])
    assert asked["trace_id"] == told["trace_id"] == TRACE_ID

    # An event posted with no trace: in the one its request started (the context is
    # carried with no exporter all the same), sampled as the SDK's default sampler decides.
    await publish(delivery, "trace.step", ws)
    started = (await fake.wait_for(asks, 3))[2].headers["traceparent"]
    assert tracing.trace_id(started) not in (None, TRACE_ID)
    assert started.endswith("-01")
    latest = (await deliveries_of(delivery, asking["id"], 2))[0]
    assert latest["trace_id"] == tracing.trace_id(started)


async def test_propagate_trace_is_set_and_cleared_through_the_api(
    delivery: RunningService, sink: Sink
) -> None:
    created = await endpoint(delivery, sink, path(), workspace_id=workspace())
    url = f"/api/outgoing-webhooks/{created['id']}"
    patched = await delivery.client.patch(
        url, json={"propagate_trace": True}, headers=admin_headers()
    )
    assert patched.status_code == 200, patched.text
    fetched = await delivery.client.get(url, headers=admin_headers())
    assert fetched.json()["propagate_trace"] is True
    refused = await delivery.client.patch(
        url, json={"propagate_trace": None}, headers=admin_headers()
    )
    assert refused.status_code == 422, refused.text
    cleared = await delivery.client.patch(
        url, json={"propagate_trace": False}, headers=admin_headers()
    )
    assert cleared.json()["propagate_trace"] is False
    schema = (await delivery.client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["OutgoingWebhookCreate"]["properties"]["propagate_trace"]["default"] is False


async def test_a_replayed_delivery_goes_on_in_the_trace_its_record_carries(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    ws, p, marks = workspace(), path(), path()
    since = utcnow() - timedelta(seconds=5)
    missed = await endpoint(
        delivery,
        sink,
        p,
        workspace_id=ws,
        events=["trace.*"],
        enabled=False,
        propagate_trace=True,
    )
    url = f"/api/outgoing-webhooks/{missed['id']}"
    # One partition for the workspace's events (no channel): once the marker is delivered,
    # the event before it was fanned out, while the endpoint was disabled.
    await endpoint(delivery, sink, marks, workspace_id=ws, events=["marker.*"])
    await publish(delivery, "trace.step", ws, headers={"traceparent": TRACEPARENT})
    await publish(delivery, "marker.sent", ws)
    await fake.wait_for(marks, 1)
    assert not fake.at(p)
    enabled = await delivery.client.patch(url, json={"enabled": True}, headers=admin_headers())
    assert enabled.status_code == 200, enabled.text
    answer = await delivery.client.post(
        url + "/replay", json={"since": since.isoformat()}, headers=admin_headers()
    )
    assert answer.status_code == 202, answer.text
    [replayed] = await fake.wait_for(p, 1)
    assert replayed.headers["traceparent"] == TRACEPARENT
    [listed] = await deliveries_of(delivery, missed["id"])
    assert listed["replayed"] and listed["trace_id"] == TRACE_ID


@pytest.fixture
async def recorded(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[InMemorySpanExporter, RunningService]]:
    """A delivery service of its own whose spans go to an in-memory exporter, as they
    would go to a collector with an exporter configured."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings: DeliverySettings = settings_for(infra, tmp_path_factory)
    with tracing.recorded_by(provider):
        async with serve(create_app(definition(), settings)) as running:
            yield exporter, running


async def test_exported_each_attempt_is_a_client_span_under_the_fan_outs_consumer_span(
    recorded: tuple[InMemorySpanExporter, RunningService], sink: Sink
) -> None:
    exporter, delivery = recorded
    fake, base = sink
    ws, p = workspace(), path()
    fake.on(p, 500, 200)
    hook = await endpoint(
        delivery,
        sink,
        p + "?token=not-for-the-trace",
        workspace_id=ws,
        propagate_trace=True,
        retry_schedule=[0],
    )
    event_id = await publish(delivery, "trace.step", ws, headers={"traceparent": TRACEPARENT})
    first, second = await fake.wait_for(p, 2)

    def attempts() -> list[ReadableSpan]:
        return sorted(
            (
                s
                for s in exporter.get_finished_spans()
                if s.kind is SpanKind.CLIENT
                and dict(s.attributes or {}).get("hookhub.endpoint_id") == hook["id"]
            ),
            key=lambda s: s.start_time or 0,
        )

    failed, succeeded = await until(lambda: len(attempts()) == 2 and attempts(), what="2 spans")
    spans = exporter.get_finished_spans()
    assert all(s.context.trace_id == int(TRACE_ID, 16) for s in (failed, succeeded))

    # The request's span (FastAPI's) → the publish, a PRODUCER span as OpenTelemetry's
    # messaging conventions have it → the fan-out's consumer span → attempts.
    [server] = [
        s
        for s in spans
        if s.kind is SpanKind.SERVER and s.parent is not None
        if s.parent.span_id == int(CALLER_SPAN, 16)
    ]
    assert server.name == "POST /api/events"
    [producer] = _children(spans, server, SpanKind.PRODUCER)
    assert producer.name.endswith("hookhub.chat.events publish")
    produced = dict(producer.attributes or {})
    assert produced["messaging.system"] == "kafka"
    assert produced["messaging.operation.type"] == "send"
    assert str(produced["messaging.destination.name"]).endswith("hookhub.chat.events")
    [consumed] = [
        s
        for s in _children(spans, producer, SpanKind.CONSUMER)
        if str(dict(s.attributes or {})["messaging.consumer.group.name"]).endswith(".fanout")
    ]
    assert dict(consumed.attributes or {})["hookhub.envelope_id"] == event_id
    # Both attempts under that span: the second one's context read back from MongoDB.
    assert [s.parent.span_id for s in (failed, succeeded) if s.parent] == [
        consumed.context.span_id
    ] * 2

    attributes = dict(failed.attributes or {})
    assert failed.name == "POST"
    assert attributes["http.request.method"] == "POST"
    assert attributes["url.full"] == base + p  # no query string: secrets live there
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == int(base.rsplit(":", 1)[1])
    assert attributes["http.response.status_code"] == 500
    assert attributes["hookhub.workspace_id"] == ws
    assert attributes["hookhub.event_type"] == "trace.step"
    assert attributes["hookhub.envelope_id"] == event_id
    assert attributes["hookhub.attempt"] == 1
    delivery_id = attributes["hookhub.delivery_id"]
    assert failed.status.status_code is StatusCode.ERROR
    assert "500" in (failed.status.description or "")
    later = dict(succeeded.attributes or {})
    assert later["hookhub.attempt"] == 2 and later["hookhub.delivery_id"] == delivery_id
    assert later["http.response.status_code"] == 200
    assert succeeded.status.status_code is StatusCode.UNSET

    # What the endpoint was sent: each attempt's own span as the parent.
    assert first.headers["traceparent"] == f"00-{TRACE_ID}-{failed.context.span_id:016x}-01"
    assert second.headers["traceparent"] == f"00-{TRACE_ID}-{succeeded.context.span_id:016x}-01"
    shown = await delivery.client.get(f"/api/deliveries/{delivery_id}", headers=admin_headers())
    assert shown.json()["trace_id"] == TRACE_ID


async def test_exported_a_trace_sampled_out_upstream_stays_sampled_out_across_kafka(
    recorded: tuple[InMemorySpanExporter, RunningService], sink: Sink
) -> None:
    """The caller's sampling decision is honoured at every hop (parent-based sampling): an
    event whose `traceparent` says not sampled makes no span here, through Kafka and the
    attempt, and the endpoint is sent the same trace, not sampled."""
    exporter, delivery = recorded
    fake, _ = sink
    ws, p = workspace(), path()
    await endpoint(delivery, sink, p, workspace_id=ws, propagate_trace=True)
    sampled_out = f"00-{TRACE_ID}-{CALLER_SPAN}-00"
    await publish(delivery, "trace.step", ws, headers={"traceparent": sampled_out})
    [sent] = await fake.wait_for(p, 1)
    assert tracing.trace_id(sent.headers["traceparent"]) == TRACE_ID
    assert sent.headers["traceparent"].endswith("-00")
    assert sent.headers["traceparent"] != sampled_out  # a hop of its own, not sampled
    traced = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]
    assert traced == []


def _children(spans: Any, parent: ReadableSpan, kind: SpanKind) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.kind is kind and s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
