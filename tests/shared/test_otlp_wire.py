"""shared.kernel.otlp_wire writes the message OpenTelemetry's own encoder makes, for every kind of
span hookhub (and its instrumentations) make."""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from shared.kernel import otlp_wire

REMOTE = SpanContext(
    0x4BF92F3577B34DA6A3CE929D0E0E4736,
    0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
)


def _spans() -> list[ReadableSpan]:
    """Spans of two resources and three scopes: every field and value type."""
    exporter = InMemorySpanExporter()
    for service in ("hookhub-gateway", "hookhub-sync"):
        provider = TracerProvider(
            resource=Resource.create({"service.name": service, "k8s.pod.name": "p-1"})
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("hookhub")
        other = provider.get_tracer("opentelemetry.instrumentation.httpx", "0.66b1")
        bare = provider.get_tracer("")
        parent = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
        with tracer.start_as_current_span(
            "POST /api/webhooks/{provider}/{integration_id}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": "POST",
                "http.response.status_code": 200,
                "negative": -5,
                "big": 2**62,
                "ratio": 0.25,
                "zero": 0,
                "empty": "",
                "flag": False,
                "names": ["a", "é", ""],
                "counts": [1, 2, 3],
                "bools": [True, False],
                "floats": [1.5],
                "unicode": "čšž 🎉",
            },
        ) as server:
            server.add_event("retry", {"attempt": 2})
            server.add_event("empty")
            with other.start_as_current_span(
                "POST", kind=SpanKind.CLIENT, links=[Link(REMOTE, {"why": "batch"}), Link(REMOTE)]
            ) as client:
                client.set_status(Status(StatusCode.ERROR, "timed out after 10 s"))
            bare.start_span("internal").end()
            for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
                span = tracer.start_span(f"k{kind.value}", kind=kind)
                span.set_status(Status(StatusCode.OK))
                span.end()
    return list(exporter.get_finished_spans())


def test_the_bytes_are_the_message_opentelemetrys_encoder_makes() -> None:
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(otlp_wire.encode(spans))
    theirs = encode_spans(spans)
    assert len(ours.resource_spans) == 2
    assert sum(len(s.spans) for r in ours.resource_spans for s in r.scope_spans) == len(spans)
    assert ours == theirs
    # The same order of fields too: the bytes are the same.
    assert otlp_wire.encode(spans) == theirs.SerializeToString()


def test_nothing_is_an_empty_request() -> None:
    assert otlp_wire.encode([]) == b"" == encode_spans([]).SerializeToString()


async def test_the_exporters_send_it_as_a_collector_reads_it() -> None:
    """With shared.kernel.tracing's encoding in place, OpenTelemetry's OTLP exporters (HTTP and
    gRPC) deliver every span to a collector as it was made."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from shared.kernel import tracing
    from tests.otlp_receiver import OtlpReceiver

    tracing._written_by_otlp_wire()
    spans = _spans()
    async with OtlpReceiver() as collector:
        assert collector.grpc_endpoint is not None
        exporters = [
            OTLPSpanExporter(endpoint=collector.traces_url),
            GrpcExporter(endpoint=collector.grpc_endpoint, insecure=True),
        ]
        for exporter in exporters:
            result = await asyncio.to_thread(exporter.export, spans)
            assert result is SpanExportResult.SUCCESS
            exporter.shutdown()
        await collector.wait_for(lambda got: len(got) == 2 * len(spans))
        received = collector.spans
    server = [s for s in received if s.name.startswith("POST /api/webhooks")]
    assert len(server) == 4  # two services, two exporters
    assert {s.service for s in server} == {"hookhub-gateway", "hookhub-sync"}
    assert all(s.attributes["names"] == ["a", "é", ""] for s in server)
    assert all(s.parent_span_id == f"{REMOTE.span_id:016x}" for s in server)
