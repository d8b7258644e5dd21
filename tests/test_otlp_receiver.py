"""The loopback OTLP collector (tests/otlp_receiver.py) against the SDK's own exporters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from shared.kernel.http.tls import tls
from tests.otlp_receiver import PROTOBUF, OtlpReceiver, Span


def _make_spans(exporter: SpanExporter) -> tuple[str, str, str]:
    """A server span with a child producer span, and a consumer span of another trace
    linked to the producer; their (trace id, server span id, producer span id) in hex.
    Runs in a thread: the SDK's exporters block."""
    provider = TracerProvider(resource=Resource.create({"service.name": "hookhub-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otlp")
    try:
        with tracer.start_as_current_span("POST /api/events", kind=SpanKind.SERVER) as server:
            server.set_attribute("hookhub.workspace_id", "ws_1")
            with tracer.start_as_current_span(
                "hookhub.chat.events publish",
                kind=SpanKind.PRODUCER,
                attributes={"messaging.kafka.offset": 42, "tags": ["a", "b"], "ratio": 0.5},
            ) as producer:
                pass
        link = Link(producer.get_span_context())
        with tracer.start_as_current_span(
            "hookhub.chat.events process", kind=SpanKind.CONSUMER, links=[link]
        ) as consumer:
            consumer.set_status(Status(StatusCode.ERROR, "boom"))
    finally:
        provider.shutdown()
    context = server.get_span_context()
    return (
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        f"{producer.get_span_context().span_id:016x}",
    )


async def _exported(
    receiver: OtlpReceiver, exporter: Callable[[], SpanExporter]
) -> tuple[dict[str, Span], tuple[str, str, str]]:
    ids = await asyncio.to_thread(lambda: _make_spans(exporter()))
    spans = await receiver.wait_for(lambda spans: len(spans) >= 3, timeout=10)
    assert spans
    return {span.name: span for span in receiver.spans}, ids


def _check(by_name: dict[str, Span], ids: tuple[str, str, str]) -> None:
    trace_id, server_id, producer_id = ids
    server = by_name["POST /api/events"]
    producer = by_name["hookhub.chat.events publish"]
    consumer = by_name["hookhub.chat.events process"]
    assert (server.trace_id, server.span_id, server.parent_span_id) == (trace_id, server_id, None)
    assert server.kind == "SERVER"
    assert server.attributes == {"hookhub.workspace_id": "ws_1"}
    assert (producer.trace_id, producer.span_id, producer.parent_span_id) == (
        trace_id,
        producer_id,
        server_id,
    )
    assert producer.kind == "PRODUCER"
    assert producer.attributes == {"messaging.kafka.offset": 42, "tags": ["a", "b"], "ratio": 0.5}
    assert consumer.trace_id != trace_id and consumer.parent_span_id is None
    assert consumer.links == [(trace_id, producer_id)]
    assert consumer.kind == "CONSUMER" and consumer.status == "ERROR"
    assert {span.service for span in by_name.values()} == {"hookhub-test"}
    assert {span.scope for span in by_name.values()} == {"tests.otlp"}
    assert all(0 < span.start_ns <= span.end_ns for span in by_name.values())


async def test_spans_exported_over_http_come_back_with_parents_links_and_attributes() -> None:
    async with OtlpReceiver(grpc=False) as receiver:
        by_name, ids = await _exported(
            receiver, lambda: HttpSpanExporter(endpoint=receiver.traces_url, timeout=5)
        )
        _check(by_name, ids)
        assert receiver.requests == 3 and receiver.span_count == 3
        assert receiver.by_service == {"hookhub-test": 3}


async def test_spans_exported_over_grpc_come_back_the_same() -> None:
    async with OtlpReceiver() as receiver:
        assert receiver.grpc_endpoint is not None
        endpoint = receiver.grpc_endpoint
        by_name, ids = await _exported(
            receiver, lambda: GrpcSpanExporter(endpoint=endpoint, insecure=True, timeout=5)
        )
        _check(by_name, ids)


async def test_otlp_json_is_read_with_hex_ids_and_counting_mode_keeps_nothing() -> None:
    trace_id, span_id, parent_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "aa" * 8
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc-json"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "json"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "parentSpanId": parent_id,
                                "name": "from json",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                                "links": [{"traceId": trace_id, "spanId": parent_id}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    async with (
        OtlpReceiver(grpc=False) as keeping,
        OtlpReceiver(grpc=False, keep=False) as counting,
        httpx.AsyncClient(verify=tls(), trust_env=False) as client,
    ):
        for receiver in (keeping, counting):
            answer = await client.post(receiver.traces_url, json=body)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("application/json")
        counts = (await client.get(counting.http_endpoint + "/counts")).json()
    [span] = keeping.spans
    assert (span.trace_id, span.span_id, span.parent_span_id) == (trace_id, span_id, parent_id)
    assert (span.name, span.kind, span.service) == ("from json", "CLIENT", "svc-json")
    assert span.attributes == {"n": 7} and span.links == [(trace_id, parent_id)]
    assert span.end_ns - span.start_ns == 1_000_000_000
    assert counting.spans == []
    assert counts == {"spans": 1, "requests": 1, "services": {"svc-json": 1}}


async def test_a_malformed_export_is_a_400_and_the_receiver_goes_on() -> None:
    bad_id = {"scopeSpans": [{"spans": [{"traceId": "zz", "name": "x"}]}]}
    malformed = [
        (b"\x0a\xff\x01", PROTOBUF),  # a field longer than the body
        (b"{nope", "application/json"),
        (json.dumps({"resourceSpans": "x"}).encode(), "application/json"),
        (b"[1]", "application/json"),
        (json.dumps({"resourceSpans": [bad_id]}).encode(), "application/json"),
    ]
    async with (
        OtlpReceiver(grpc=False) as receiver,
        httpx.AsyncClient(verify=tls(), trust_env=False) as client,
    ):

        async def post(body: bytes, content_type: str) -> httpx.Response:
            headers = {"Content-Type": content_type}
            return await client.post(receiver.traces_url, content=body, headers=headers)

        answers = [await post(body, content_type) for body, content_type in malformed]
        other = await post(b"x", "text/plain")
        empty = await post(b"", PROTOBUF)
    assert [answer.status_code for answer in answers] == [400] * len(malformed)
    assert all("not an OTLP trace export" in answer.text for answer in answers)
    assert other.status_code == 415
    # An empty protobuf message is a valid, empty export: answered in kind.
    assert empty.status_code == 200 and empty.headers["content-type"] == PROTOBUF
    assert receiver.span_count == 0 and receiver.requests == 1


async def test_wait_for_says_what_arrived_when_the_condition_never_holds() -> None:
    async with OtlpReceiver(grpc=False) as receiver:
        try:
            await receiver.wait_for(lambda spans: json.dumps(len(spans)) == "1", timeout=0.2)
        except TimeoutError as exc:
            assert "0 arrived" in str(exc)
        else:
            raise AssertionError("wait_for returned without spans")
