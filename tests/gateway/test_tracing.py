"""Traces through the gateway (SPEC §18): a webhook's caller's context goes on to its
record, carried with no exporter, and under the ingress's span when exported."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from services.gateway.app import definition
from shared.domain.platform import create_app
from shared.kernel import tracing
from shared.kernel.envelopes import Topic
from shared.kernel.settings import GatewaySettings
from tests.gateway.test_incoming_webhooks import create_hook, in_channel, ingress_path
from tests.support import KafkaTap, RunningService, serve

# A caller's context, as W3C Trace Context writes it: version, trace id, parent id, flags.
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return str(value.decode())
    return None


async def _record_of(inbound: KafkaTap, hook: dict[str, Any]) -> Any:
    [message] = await inbound.wait_for(in_channel(hook))
    return next(r for r in inbound.records if json.loads(r.value)["id"] == message["id"])


async def test_with_no_exporter_the_callers_traceparent_goes_on_to_the_record(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    assert tracing.mode() is tracing.Mode.CARRIED  # the suite sets no OTEL_* variable
    hook = await create_hook(gateway)
    answer = await gateway.client.post(
        ingress_path(hook),
        json={"text": "deploy started"},
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
    )
    assert answer.status_code == 200, answer.text
    record = await _record_of(inbound, hook)
    # No span made here: the caller's own context, as it came.
    assert _header(record, "traceparent") == TRACEPARENT
    assert _header(record, "tracestate") == "vendor=1"


async def test_with_no_exporter_and_no_caller_context_a_trace_is_started_here(
    gateway: RunningService, inbound: KafkaTap
) -> None:
    """SPEC §18: the gateway starts a trace when the caller brings none, and the context is
    carried with no exporter all the same: a trace id of its own per webhook, sampled as
    the SDK's default sampler decides (nothing of it is recorded here, but a consumer or
    subscriber that records goes on in it)."""
    hook = await create_hook(gateway)
    carried = []
    for text in ("no trace", "another"):
        answer = await gateway.client.post(ingress_path(hook), json={"text": text})
        assert answer.status_code == 200, answer.text
        record = await _record_of(inbound, hook)
        inbound.records.clear()
        carried.append(_header(record, "traceparent"))
        assert _header(record, "tracestate") is None
        assert _header(record, "hookhub-id") is not None  # the other headers are there
    contexts = [propagate.extract({"traceparent": value}) for value in carried]
    spans = [trace.get_current_span(c).get_span_context() for c in contexts]
    assert all(span.is_valid and span.trace_flags.sampled for span in spans), carried
    assert spans[0].trace_id != spans[1].trace_id


def test_with_no_exporter_every_record_carries_a_context() -> None:
    """What hookhub publishes outside any trace (a consumer's work on a record that came
    without one, a background task's) starts a trace of its own per record; under one,
    the record goes on in it as it came."""
    assert tracing.mode() is tracing.Mode.CARRIED
    outside = [dict(tracing.kafka_headers())["traceparent"].decode() for _ in range(2)]
    ids = {tracing.trace_id(value) for value in outside}
    assert len(ids) == 2 and None not in ids
    assert all(value.endswith("-01") for value in outside)
    with tracing.within(tracing.from_traceparent(TRACEPARENT)):
        assert dict(tracing.kafka_headers())["traceparent"] == TRACEPARENT.encode()


def test_with_no_exporter_a_trace_started_here_is_sampled_as_the_sampler_decides() -> None:
    """`OTEL_TRACES_SAMPLER` decides a trace started with no exporter (as the SDK would);
    a trace that came in keeps its caller's decision."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    carrying = tracing._Carrying()
    carrying.sampler = ParentBased(ALWAYS_OFF)
    root = carrying.start_span("publish").get_span_context()
    assert root.is_valid and not root.trace_flags.sampled
    # Under a caller's context, that context as it came: what records downstream joins the
    # caller's span, not one recorded nowhere.
    caller = tracing.from_traceparent(TRACEPARENT)
    child = carrying.start_span("publish", caller).get_span_context()
    assert child.trace_flags.sampled and child.trace_id == int(TRACE_ID, 16)
    assert child.span_id == int(CALLER_SPAN, 16)


@pytest.fixture
async def recorded(gateway_settings: GatewaySettings) -> AsyncIterator[InMemorySpanExporter]:
    """A gateway of its own whose spans go to an in-memory exporter, as they would go to a
    collector with an exporter configured."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracing.recorded_by(provider):
        yield exporter


async def test_exported_the_ingress_is_a_span_of_the_callers_trace_and_its_records_parent(
    recorded: InMemorySpanExporter, gateway_settings: GatewaySettings
) -> None:
    async with serve(create_app(definition(), gateway_settings)) as gateway:
        hook = await create_hook(gateway)
        async with KafkaTap.of(gateway_settings, Topic.CHAT_INBOUND) as inbound:
            answer = await gateway.client.post(
                ingress_path(hook), json={"text": "traced"}, headers={"traceparent": TRACEPARENT}
            )
            assert answer.status_code == 200, answer.text
            record = await _record_of(inbound, hook)
            missing = await gateway.client.post(
                "/api/webhooks/incoming/hhwh_" + "x" * 40, json={"text": "lost"}
            )
            assert missing.status_code == 404

    spans = recorded.get_finished_spans()
    [created] = _named(spans, "POST /api/incoming-webhooks")  # FastAPI's instrumentation
    assert created.kind is SpanKind.SERVER
    ingress = [s for s in _named(spans, "POST /api/webhooks/incoming/{token}") if _ours(s)]
    [server] = [s for s in ingress if s.context.trace_id == int(TRACE_ID, 16)]
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None and server.parent.span_id == int(CALLER_SPAN, 16)
    attributes = dict(server.attributes or {})
    assert attributes["http.response.status_code"] == 200
    assert attributes["hookhub.integration_id"] == hook["id"]
    assert attributes["hookhub.workspace_id"] == "ws_1"
    assert attributes["hookhub.event_type"] == "message.received"

    # The request published the one envelope it was made for: its span is the publish,
    # and the record names it as its parent (the consumer's span goes on from it).
    assert str(attributes["messaging.destination.name"]).endswith(".chat.inbound")
    assert not [s for s in spans if s.kind is SpanKind.PRODUCER and _ours(s)]
    assert _header(record, "traceparent") == f"00-{TRACE_ID}-{server.context.span_id:016x}-01"
    # A request that failed is a span too, with its status; a 4xx is not the server's error.
    [lost] = [s for s in ingress if s.context.trace_id != int(TRACE_ID, 16)]
    assert dict(lost.attributes or {})["http.response.status_code"] == 404
    assert lost.parent is None and lost.status.status_code is not StatusCode.ERROR


def _named(spans: Any, name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _ours(span: ReadableSpan) -> bool:
    return span.instrumentation_scope is not None and span.instrumentation_scope.name == "hookhub"


def test_the_exporter_is_chosen_by_the_standard_variables() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert tracing._exporter({}) is None  # nothing exported: carried
    assert tracing._exporter({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}) is None  # empty is unset
    assert isinstance(tracing._exporter(endpoint), OTLPSpanExporter)
    grpc = {**endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert isinstance(tracing._exporter(grpc), GrpcExporter)
    traces_only = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}
    assert isinstance(tracing._exporter(traces_only), OTLPSpanExporter)
    assert tracing._exporter({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) is None
    assert isinstance(tracing._exporter({"OTEL_TRACES_EXPORTER": "console"}), ConsoleSpanExporter)


def test_the_console_exporter_writes_one_json_line_per_span() -> None:
    """Under `make run` stdout is the service's log, one JSON line per record: the SDK's
    own console exporter wrote each span as indented JSON over some thirty lines."""
    exporter = tracing._exporter({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(exporter, ConsoleSpanExporter)
    exporter.out = out = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("hookhub")
    with (
        tracer.start_as_current_span("outer", attributes={"hookhub.topic": "a\nb"}),
        tracer.start_as_current_span("inner"),
    ):
        pass
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["inner", "outer"]
    assert json.loads(lines[1])["attributes"] == {"hookhub.topic": "a\nb"}


def test_service_name_is_the_services_unless_the_environment_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging")
    named = tracing._provider("gateway", {}, exporter).resource.attributes
    assert named["service.name"] == "hookhub-gateway"
    assert named["service.namespace"] == "hookhub"
    assert named["deployment.environment"] == "staging"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-gateway-eu")
    renamed = tracing._provider("gateway", {"OTEL_SERVICE_NAME": "edge-gateway-eu"}, exporter)
    assert renamed.resource.attributes["service.name"] == "edge-gateway-eu"


def test_log_lines_inside_a_span_carry_its_ids() -> None:
    outside = tracing.add_trace_ids(None, "info", {"event": "x"})
    assert "trace_id" not in outside
    with tracing.within(propagate.extract({"traceparent": TRACEPARENT})):
        inside = tracing.add_trace_ids(None, "info", {"event": "x"})
    assert inside["trace_id"] == TRACE_ID and inside["span_id"] == CALLER_SPAN
