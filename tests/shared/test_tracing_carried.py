"""Carried mode (no exporter) in one process: every record's headers carry a trace, however
the propagators are configured."""

from __future__ import annotations

import re

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
