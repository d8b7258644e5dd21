"""Traces in one process's tests (SPEC §18): hookhub's spans recorded in memory, and a
caller's `traceparent` to follow through the services."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.kernel import tracing
from tests.support import until


@dataclass(frozen=True)
class Caller:
    """A caller's trace: the `traceparent` it sends, and its ids as hex."""

    trace_id: str
    span_id: str

    @classmethod
    def new(cls) -> Caller:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-01"


def traceparent_of(record: Any) -> str | None:
    """A Kafka record's `traceparent` header."""
    for name, value in record.headers or ():
        if name == "traceparent":
            return bytes(value).decode()
    return None


def ids(traceparent: str) -> tuple[str, str]:
    """(trace id, span id) of a `traceparent`."""
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) of a recorded span, as hex."""
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        format(parent.span_id, "016x") if parent is not None else None,
    )


class Recorded:
    """The spans hookhub made (`tracing.recorded_by`) while the block was open."""

    def __init__(self) -> None:
        self.provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def of_trace(self, trace_id: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if hex_ids(s)[0] == trace_id]

    async def finished(self, trace_id: str, check: Any, what: str) -> Sequence[ReadableSpan]:
        """The trace's finished spans once `check(spans)` holds of them."""
        return await until(  # type: ignore[no-any-return]
            lambda: (spans := self.of_trace(trace_id)) and check(spans) and spans, what=what
        )


@contextlib.contextmanager
def recorded() -> Iterator[Recorded]:
    """Spans recorded for the block (those begun in it and ended after it still are)."""
    spans = Recorded()
    with tracing.recorded_by(spans.provider):
        yield spans
