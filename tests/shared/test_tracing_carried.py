"""Carried mode (no exporter) in one process: every record's headers carry a trace, however
the propagators are configured."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.kernel import tracing

TRACEPARENT = re.compile(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


@pytest.mark.parametrize("w3c_only", [True, False])
def test_a_record_published_outside_any_trace_starts_one(
    monkeypatch: pytest.MonkeyPatch, w3c_only: bool
) -> None:
    """`w3c_only`: the propagators are the default ones, written by hookhub itself; else
    (`OTEL_PROPAGATORS` set) OpenTelemetry's propagators write them."""
    state = tracing._State()
    state.mode = tracing.Mode.CARRIED
    monkeypatch.setattr(tracing, "_state", state)
    monkeypatch.setattr(tracing, "_W3C_ONLY", w3c_only)
    first, second = tracing.kafka_headers(), tracing.kafka_headers()
    assert [name for name, _ in first] == ["traceparent"]
    assert TRACEPARENT.fullmatch(first[0][1]), first
    assert first != second, "each record outside a trace starts its own"
    with tracing.server_span({"method": "POST", "headers": []}, "/r"):
        under = tracing.kafka_headers(), tracing.kafka_headers()
    assert under[0] == under[1], "records under one request carry its trace"


@pytest.mark.parametrize("w3c_only", [True, False])
def test_records_derived_from_a_consumed_one_carry_its_traceparent_and_tracestate(
    monkeypatch: pytest.MonkeyPatch, w3c_only: bool
) -> None:
    """What a consumer publishes from an envelope (a notification's posts and its root's
    edits) goes on in the trace its record came with, its `tracestate` kept, and a record
    with a header that is not a trace context starts a trace of its own."""
    from types import SimpleNamespace

    from shared.kernel.envelopes import ProviderEvent

    state = tracing._State()
    state.mode = tracing.Mode.CARRIED
    monkeypatch.setattr(tracing, "_state", state)
    monkeypatch.setattr(tracing, "_W3C_ONLY", w3c_only)
    # W3C Trace Context's own example (https://www.w3.org/TR/trace-context/#examples-of-http-traceparent-headers).
    parent = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    state_header = b"congo=t61rcWkgMzE"

    def consumed(headers: list[tuple[str, bytes]]) -> Any:
        event = ProviderEvent.model_validate(
            {
                "id": "evt_1",
                "provider": "github",
                "integration_id": "int_1",
                "workspace_id": "ws_1",
                "event_type": "push",
                "delivery_id": "d1",
                "payload": {},
            }
        )
        tracing.consumed(SimpleNamespace(headers=headers), event, "sync")
        return event.trace()

    context = consumed([("traceparent", parent), ("tracestate", state_header)])
    derived = [tracing.kafka_headers(context) for _ in range(3)]
    assert derived[0] == derived[1] == derived[2]
    assert dict(derived[0]) == {"traceparent": parent, "tracestate": state_header}
    broken = consumed([("traceparent", b"00-not-a-trace-01")])
    fresh = tracing.kafka_headers(broken)
    assert TRACEPARENT.fullmatch(dict(fresh)["traceparent"]) and fresh != derived[0]
