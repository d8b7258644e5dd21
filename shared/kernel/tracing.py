"""Traces (SPEC §18): one event followed across the bus, by OpenTelemetry.

Configured by the standard `OTEL_*` variables only, once per process (`configure`):

- `OTEL_SDK_DISABLED=true`: off. No spans, no `traceparent` carried anywhere.
- no exporter (no `OTEL_EXPORTER_OTLP_ENDPOINT` nor `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
  `OTEL_TRACES_EXPORTER=none`; an empty variable counts as unset): *carried*. Nothing is
  recorded, but the context is carried all the same (SPEC §18): the `traceparent` a webhook
  or `POST /api/events` brings goes on in the Kafka record headers, to the consumers, and
  to the subscribers that ask for it (`propagate_trace`); a request that brings none, and a
  record published outside any trace, starts one here (`_Carrying`: ids of its own, sampled
  as the SDK would decide, nothing recorded). Every record hookhub writes carries a
  `traceparent`, and log lines written under one carry its `trace_id`.
- an exporter: *exported*. The SDK's TracerProvider (its sampler from `OTEL_TRACES_SAMPLER`,
  default parent-based always-on; resource from `OTEL_RESOURCE_ATTRIBUTES`, `service.name`
  `hookhub-<service>` unless `OTEL_SERVICE_NAME` says otherwise), a BatchSpanProcessor
  (`OTEL_BSP_*`) and OTLP over HTTP (protobuf, the default) or gRPC
  (`OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc`); `console` writes each span to stdout as
  one JSON line. Client
  instrumentations are installed then: httpx (provider APIs) and PyMongo, whose spans are
  made only inside a trace (a cache's refresh every few seconds would otherwise be a trace
  of its own each time, thousands an hour).

The servers' side: FastAPI's instrumentation for the API routes; the webhook ingress, which
answers before any middleware (shared.kernel.http.ingress), and hookhub's own producer and batch
consumers have no instrumentation, so their spans are made here: `server_span`,
`kafka_headers`/`publishing` (a PRODUCER span per publish, a chat event's from `POST
/api/events` included, as OpenTelemetry's messaging conventions have it; only a webhook the
ingress publishes has its SERVER span as the publish, at half the spans; the record headers) and
`consumed` (a CONSUMER span per record, the child of the span that produced it and linked
to the batch's span that FastStream's middleware makes). What a consumer derives from an
envelope goes out under that envelope's span (`Encoded.trace`), so one trace runs from a
provider's webhook through the gateway, Kafka and sync to the chat. Work kept for later (a
delivery's attempts, an outbound sync job) keeps its `traceparent` (`kept`) and goes on in
it (`client_span`, `span`); a task that works for many (a lane, a shared writer) starts
outside any trace (`detached`).

The OTLP exporters write spans with shared.kernel.otlp_wire (the same bytes as their own encoder,
a third of its CPU).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from starlette.types import Scope

    from shared.kernel.envelopes import Envelope


class Mode(StrEnum):
    OFF = "off"
    CARRIED = "carried"
    EXPORTED = "exported"


class _State:
    mode = Mode.OFF
    configured = False
    provider: TracerProvider | None = None
    # The API's no-op tracer until a provider is installed: spans take their parent's
    # context and record nothing.
    tracer: trace.Tracer = trace.NoOpTracer()


class _Carrying(trace.NoOpTracer):
    """Carried mode's tracer: its spans record nothing. Under a caller's context a span is
    that context as it came (as the API's no-op tracer has it), so that what records
    downstream (a consumer, a subscriber) joins the caller's span, not one recorded
    nowhere; with none, it starts a trace: new ids, sampled as `OTEL_TRACES_SAMPLER` decides
    (by default, sampled), as the SDK with no exporter would have it. Ids are random bits,
    as the SDK's RandomIdGenerator makes them: the SDK itself (0.4 s of imports at a
    service's start) is not loaded for them, nor for the sampler unless
    `OTEL_TRACES_SAMPLER` names one."""

    sampler: Sampler | None = None  # None: every trace sampled (the SDK's default)

    def start_span(self, name: str, context: Context | None = None, *_: Any, **__: Any) -> _Carried:
        parent = trace.get_current_span(context).get_span_context()
        if parent.is_valid:
            return _Carried(parent)
        trace_id = _random_id(128)
        sampled = self.sampler is None or (
            self.sampler.should_sample(None, trace_id, name).decision.name == "RECORD_AND_SAMPLE"
        )
        return _Carried(
            SpanContext(
                trace_id,
                _random_id(64),
                is_remote=False,
                trace_flags=_FLAGS_SAMPLED if sampled else _FLAGS_NOT_SAMPLED,
            )
        )

    @contextlib.contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's agnostic manager
        self, name: str, context: Context | None = None, *_: Any, **given: Any
    ) -> Iterator[Span]:
        started = self.start_span(name, context)
        with trace.use_span(started, end_on_exit=given.get("end_on_exit", True)):
            yield started


class _Carried(NonRecordingSpan):
    """Carried mode's span: its context, and what every record and log line under it asks
    of it (its `traceparent`, written as the W3C propagator writes it, and its ids) written
    once, when first asked."""

    _written: tuple[dict[str, str], list[tuple[str, bytes]]] | None = None

    def written(self) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
        """Its trace context as `kept` gives it, and as record headers."""
        if self._written is None:
            found = self.get_span_context()
            header = {
                TRACEPARENT: (
                    f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"
                )
            }
            if found.trace_state:
                header["tracestate"] = found.trace_state.to_header()
            self._written = (header, [(name, value.encode()) for name, value in header.items()])
        return self._written


_FLAGS_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_FLAGS_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def _random_id(bits: int) -> int:
    """A trace (128 bits) or span (64) id: random, never 0 (the invalid one)."""
    while not (found := random.getrandbits(bits)):
        pass
    return found


class _CarryingProvider(trace.TracerProvider):
    """Carried mode's provider, for FastAPI's instrumentation: an API request that brings
    no context starts a trace, its log lines and what it publishes carry it."""

    def get_tracer(self, *_: Any, **__: Any) -> trace.Tracer:
        return _CARRYING


_CARRYING = _Carrying()
_TRACER_NAME = "hookhub"  # the instrumentation scope of hookhub's own spans
_state = _State()
TRACEPARENT = "traceparent"
_TRACE_HEADERS = (TRACEPARENT, "tracestate")
_BYTES_HEADERS = tuple(name.encode() for name in _TRACE_HEADERS)


def mode() -> Mode:
    return _state.mode


def provider() -> TracerProvider | None:
    """The provider spans are recorded by; None when they are not."""
    return _state.provider


def configure(service: str, environ: Mapping[str, str] | None = None) -> Mode:
    """Tracing for this process, from `environ` (default: the process's): the first call
    decides (a process runs one service; tests build many apps in one process)."""
    if _state.configured:
        return _state.mode
    env = os.environ if environ is None else environ
    _state.configured = True
    if _set(env, "OTEL_SDK_DISABLED").lower() == "true":
        _state.mode = Mode.OFF
        return _state.mode
    exporter = _exporter(env)
    if exporter is None:
        _carried(env)
        return _state.mode
    install(_provider(service, env, exporter))
    return _state.mode


def install(provider: TracerProvider) -> None:
    """`provider` as the process's, with the client instrumentations on it."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    PymongoInstrumentor().instrument(tracer_provider=_WithinATraceProvider(provider))
    _exported_by(provider)


def instrument_client(client: Any) -> None:
    """An httpx client on a transport of its own (not `httpx.AsyncHTTPTransport`, the
    class `install`'s httpx instrumentation patches): its calls' CLIENT spans, when spans
    are exported; nothing otherwise."""
    if _state.mode is not Mode.EXPORTED:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_state.provider)


def _carried(env: Mapping[str, str]) -> None:
    if _set(env, "OTEL_TRACES_SAMPLER"):
        from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

        _CARRYING.sampler = _get_from_env_or_default()
    _state.provider = None
    _state.tracer = _CARRYING
    _state.mode = Mode.CARRIED


def _exported_by(provider: TracerProvider) -> None:
    _state.provider = provider
    _state.tracer = provider.get_tracer(_TRACER_NAME)
    _state.mode = Mode.EXPORTED


@contextlib.contextmanager
def recorded_by(provider: TracerProvider) -> Iterator[None]:
    """Within the block, hookhub's own spans (and those of the apps and brokers built in
    it) go to `provider` rather than the process's: for a test that reads the spans of
    one process from an in-memory exporter. The client instrumentations stay as they are."""
    configure("test")  # as the process would be: what is restored afterwards
    saved = (_state.mode, _state.provider, _state.tracer)
    _exported_by(provider)
    try:
        yield
    finally:
        _state.mode, _state.provider, _state.tracer = saved


def flush(seconds: float) -> None:
    """Export what is still queued (a stopping service's last spans), for up to `seconds`."""
    if _state.provider is not None:
        _state.provider.force_flush(int(seconds * 1000))


def _set(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _exporter(env: Mapping[str, str]) -> SpanExporter | None:
    names = [n.strip() for n in (_set(env, "OTEL_TRACES_EXPORTER") or "otlp").split(",")]
    if "console" in names:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        # One JSON line per span on stdout (the SDK's own indents each over some thirty):
        # under `make run` stdout is the service's log, one JSON line per record.
        return ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
    if "otlp" not in names:
        return None
    traces_endpoint = _set(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not traces_endpoint and not _set(env, "OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    protocol = (
        _set(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or _set(env, "OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    # The exporters read their endpoint, headers, timeout and compression from the
    # environment themselves; an empty variable is taken out of their way.
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if name in os.environ and not os.environ[name].strip():
            del os.environ[name]
    _written_by_otlp_wire()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class _Written:
    """What the HTTP exporter asks of an encoded request: its bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def SerializePartialToString(self) -> bytes:
        return self._data


def _written_by_otlp_wire() -> None:
    """The OTLP exporters' `encode_spans` (a protobuf object built per attribute from
    Python: most of a span's export cost) replaced by shared.kernel.otlp_wire, which writes the
    same bytes. The exporters look it up by name in their modules, per export; the family
    is pinned (pyproject.toml), and tests/shared/test_otlp_wire.py holds the two equal."""
    from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc_exporter
    from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_exporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from shared.kernel import otlp_wire

    def written(spans: Sequence[ReadableSpan]) -> _Written:
        return _Written(otlp_wire.encode(spans))

    def parsed(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        # gRPC's stub takes the message: parsed back in C, a small part of building it.
        request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(
            otlp_wire.encode(spans)
        )
        return request

    http_exporter.encode_spans = written  # type: ignore[attr-defined,assignment]
    grpc_exporter.encode_spans = parsed  # type: ignore[attr-defined,assignment]


def _provider(service: str, env: Mapping[str, str], exporter: SpanExporter) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    named = _set(env, "OTEL_SERVICE_NAME") or "service.name=" in _set(
        env, "OTEL_RESOURCE_ATTRIBUTES"
    )
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; what is given
    # here wins over them, so the default name is given only when they name none.
    given = {} if named else {SERVICE_NAME: f"hookhub-{service}"}
    resource = Resource.create({"service.namespace": "hookhub", **given})
    provider = TracerProvider(resource=resource, sampler=_get_from_env_or_default())
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class _WithinATraceProvider(trace.TracerProvider):
    """A provider whose tracers make spans only under a valid current span: PyMongo's
    instrumentation traces every command, and most of a service's commands are its
    background work's (leases, caches, heartbeats), a one-span trace each."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _WithinATrace(self._provider.get_tracer(*args, **kwargs))


class _WithinATrace(trace.Tracer):
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    def start_as_current_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        # Not what PyMongo's instrumentation calls (start_span); there for the interface.
        return self._tracer.start_as_current_span(name, context, *args, **kwargs)


# --- HTTP ---------------------------------------------------------------------------------


def instrument_app(app: Any) -> None:
    """FastAPI's instrumentation on a service's app (its API routes; not the probes)."""
    if _state.mode is Mode.OFF:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_state.provider or _CarryingProvider(),
        excluded_urls="/healthz,/readyz,/metrics",
        # One span a request: the ASGI messages' own spans tell an operator nothing.
        exclude_spans=["receive", "send"],
    )


@contextlib.contextmanager
def server_span(scope: Scope, route: str) -> Iterator[Span | None]:
    """The SERVER span of a webhook the ingress answers (the caller's `traceparent`
    continued, else a trace started here), current while it is handled, and the publish of
    what it was made for (`publishing` knows it by its scope); None when off."""
    if _state.mode is Mode.OFF:
        yield None
        return
    carrier = _scope_headers(scope)
    if _state.mode is Mode.CARRIED:  # nothing recorded: no name, no attributes, no end
        context = propagate.extract(carrier) if carrier else None
        carried = _CARRYING.start_span("", context)
        token = otel_context.attach(trace.set_span_in_context(carried, context))
        try:
            yield carried
        finally:
            otel_context.detach(token)
        return
    parent = propagate.extract(carrier) if carrier else None
    method = scope["method"]
    span = _state.tracer.start_span(
        f"{method} {route}",
        context=parent,
        kind=SpanKind.SERVER,
        # What an operator searches by, no more: every attribute costs each span's export.
        attributes={"http.request.method": method, "http.route": route},
    )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    try:
        yield span
    finally:
        otel_context.detach(token)
        span.end()


def _scope_headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _BYTES_HEADERS:
            found[name.decode()] = value.decode("latin-1")
    return found


def answered(span: Span | None, status: int) -> None:
    if span is not None and span.is_recording():
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))


def describe(envelope: Envelope) -> None:
    """The envelope's attributes (`envelope_attributes`) on the current span, if recorded."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(envelope_attributes(envelope))


def annotate(**attributes: str | int | None) -> None:
    """`hookhub.<name>` attributes on the current span (an operator searches by them),
    when it is recorded; None values are left out."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"hookhub.{k}": v for k, v in attributes.items() if v is not None})


# --- Kafka --------------------------------------------------------------------------------


def kafka_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """`traceparent` (and `tracestate`) of `context` (default: the current one), as record
    headers; none when off. Carried, a record published outside any trace starts one of its
    own (exported, `publishing`'s span is its trace)."""
    if _state.mode is Mode.OFF:
        return []
    if _state.mode is Mode.CARRIED:
        span = trace.get_current_span(context)
        # A caller's context or none: its span, or a new trace's.
        carried = span if isinstance(span, _Carried) else _CARRYING.start_span("publish", context)
        if _W3C_ONLY:
            return list(carried.written()[1])
        context = trace.set_span_in_context(carried)
    kept_here = kept(otel_context.get_current() if context is None else context)
    return [(name, value.encode()) for name, value in kept_here.items()]


def record_context(headers: Sequence[tuple[str, bytes]] | None) -> Context | None:
    """The context a record's headers carry, if any."""
    carrier = {
        name: value.decode("latin-1")
        for name, value in headers or ()
        if name in _TRACE_HEADERS and value is not None
    }
    return propagate.extract(carrier) if carrier else None


@contextlib.contextmanager
def publishing(topic: str, count: int, contexts: Sequence[Context | None] = ()) -> Iterator[bool]:
    """The PRODUCER span of one publish of `count` envelopes to `topic`, current for the
    block. Yields whether the records go out under it; if not, those with a context of
    their own (`contexts`, one per record: an envelope a consumer derived from another)
    keep it, and the span links to them.

    - Every record derived from the one same envelope (a notification's root and its edit,
      a batch of one): the span is that envelope's span's child, and the records' parent,
      so the trace shows the hop onto `topic`.
    - Records from several envelopes: the span sits in the batch's trace (FastStream's span
      of it), linked to each; each record goes on in its own envelope's trace.
    - A webhook the ingress publishes (the one envelope it was made for) is its publish: its
      SERVER span names the topic and is the record's parent. A span of its own would say
      nothing more, at a fifth of a webhook's CPU (two spans a request instead of one;
      docs/benchmarks.md, `tracing`). Any other request's publish (a chat event's, `POST
      /api/events`) is a PRODUCER span, the child of the request's."""
    if _state.mode is not Mode.EXPORTED:
        yield False
        return
    current = trace.get_current_span()
    # The ingress's span (`server_span`, hookhub's own SERVER span), not FastAPI's.
    scope = getattr(current, "instrumentation_scope", None)
    served = (
        getattr(current, "kind", None) is SpanKind.SERVER
        and scope is not None
        and scope.name == _TRACER_NAME
    )
    # Under a span the sampler left out, a child would be left out too: none is made.
    unsampled = not current.is_recording() and current.get_span_context().is_valid
    if count == 1 and (served or unsampled) and not any(contexts):
        if current.is_recording():
            current.set_attribute("messaging.destination.name", topic)
        yield True
        return
    links = _links(contexts)
    one_source = len(links) == 1 and all(context is not None for context in contexts)
    with _state.tracer.start_as_current_span(
        f"{topic} publish",
        context=contexts[0] if one_source else None,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.batch.message_count": count,
        },
        links=None if one_source else links,
    ):
        yield one_source or not any(contexts)


def _links(contexts: Sequence[Context | None], limit: int = 128) -> list[Link]:
    seen: dict[int, Link] = {}
    for context in contexts:
        if context is None or len(seen) >= limit:
            continue
        span_context = trace.get_current_span(context).get_span_context()
        if span_context.is_valid and span_context.span_id not in seen:
            seen[span_context.span_id] = Link(span_context)
    return list(seen.values())


def consumed(record: Any, envelope: Envelope, consumer: str) -> Span | None:
    """The record's CONSUMER span, a child of the span that produced it (when it says) and
    linked to the batch's span (FastStream's, current): the envelope goes on under it
    (`Envelope.trace`). Carried: the producer's context only, no span. Ended by `ended`."""
    if _state.mode is Mode.OFF:
        return None
    parent = record_context(record.headers)
    if _state.mode is Mode.CARRIED:
        envelope._trace = _carried_context(parent)
        return None
    batch = trace.get_current_span().get_span_context()
    span = _state.tracer.start_span(
        f"{record.topic} process",
        context=parent or otel_context.Context(),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": consumer,
            **envelope_attributes(envelope),
        },
        links=[Link(batch)] if batch.is_valid else None,
    )
    envelope._trace = trace.set_span_in_context(span)
    return span


def _carried_context(parent: Context | None) -> Context | None:
    """A consumed record's context in carried mode, its producer's span made a `_Carried`:
    every record derived from the envelope (a notification's five posts and their roots'
    edits) writes the same `traceparent` (`kafka_headers`), formatted once rather than
    once a record (5% of py-spy's samples of sync in the alerts' notifications)."""
    if parent is None:
        return None
    found = trace.get_current_span(parent).get_span_context()
    if not found.is_valid:
        return parent
    return trace.set_span_in_context(_Carried(found), parent)


def ended(spans: Sequence[Span | None], error: BaseException | None = None) -> None:
    for span in spans:
        if span is None:
            continue
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
        span.end()


def envelope_attributes(envelope: Envelope) -> dict[str, str]:
    """What an operator searches an envelope's spans by."""
    attributes = {"hookhub.envelope_id": envelope.id}
    for name in ("workspace_id", "integration_id", "provider", "endpoint_id"):
        value = getattr(envelope, name, None)
        if isinstance(value, str):
            attributes[f"hookhub.{name}"] = value
    kind = getattr(envelope, "event_type", None) or getattr(envelope, "type", None)
    if isinstance(kind, str):
        attributes["hookhub.event_type"] = kind
    source = getattr(envelope, "source", None)
    if source is not None and isinstance(getattr(source, "provider", None), str):
        attributes["hookhub.provider"] = source.provider
        attributes["hookhub.integration_id"] = source.integration_id
    return attributes


@contextlib.contextmanager
def within(context: Context | None) -> Iterator[None]:
    """`context` current for the block (the envelope's, for work done on its behalf)."""
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """No trace current for the block: a task made in it (one that outlives the request or
    batch that happened to start it, and works for many) starts outside any trace rather
    than in that one's."""
    token = otel_context.attach(otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


# --- Logs ---------------------------------------------------------------------------------


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `trace_id` and `span_id` on a line written inside a span."""
    span = trace.get_current_span()
    if isinstance(span, _Carried):  # its ids written once, in its traceparent
        header = span.written()[0][TRACEPARENT]
        event["trace_id"], event["span_id"] = header[3:35], header[36:52]
        return event
    span_context = span.get_span_context()
    if span_context.is_valid:
        event["trace_id"] = format(span_context.trace_id, "032x")
        event["span_id"] = format(span_context.span_id, "016x")
    return event


# --- Work done later: a delivery's attempts -----------------------------------------------


def current() -> Context:
    return otel_context.get_current()


def kept(context: Context | None) -> dict[str, str]:
    """`traceparent`, and `tracestate` when there is one, of `context` (`current()` for the
    current one): kept with work done later, perhaps by another process (a delivery's
    attempts, `client_span`), or sent to a subscriber that asks. Nothing when off, or for
    no context or one outside any trace."""
    if _state.mode is Mode.OFF or context is None:
        return {}
    span = trace.get_current_span(context)
    found = span.get_span_context()
    if not found.is_valid:
        return {}
    if _state.mode is Mode.CARRIED and _W3C_ONLY:
        # What the W3C propagator writes, without its machinery (6 µs a call): every record
        # and every kept delivery asks for it.
        carried = span if isinstance(span, _Carried) else _Carried(found)
        return dict(carried.written()[0])
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context)
    return {name: carrier[name] for name in _TRACE_HEADERS if name in carrier}


# The propagators are the default ones (W3C trace context and baggage; hookhub keeps no
# baggage): `kept` may write the trace context itself.
_W3C_ONLY = os.environ.get("OTEL_PROPAGATORS", "").strip() in ("", "tracecontext,baggage")


def traceparent(context: Context | None) -> str | None:
    """The `traceparent` alone that `kept` gives."""
    return kept(context).get(TRACEPARENT)


def from_traceparent(value: str | None) -> Context | None:
    """The context a kept `traceparent` names; None for none."""
    return propagate.extract({TRACEPARENT: value}) if value else None


def trace_id(traceparent: str | None) -> str | None:
    """The trace id a kept `traceparent` names (what a trace viewer is searched by)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) >= 4 and len(parts[1]) == 32 else None


@contextlib.contextmanager
def client_span(
    name: str, traceparent: str | None, tracestate: str | None = None
) -> Iterator[Span | None]:
    """The CLIENT span of a request made for work kept for later (a delivery's attempt), in
    the trace `kept` gave it, else a trace of its own; current for the block (log lines
    carry its ids), ERROR if the block raises. Carried: no span made, the kept context
    current as it came. None when off, or carried and nothing was kept (the block then runs
    in no trace, whatever the task's context was)."""
    if _state.mode is Mode.OFF:
        yield None
        return
    carrier = {TRACEPARENT: traceparent} if traceparent else {}
    if carrier and tracestate:
        carrier["tracestate"] = tracestate
    parent = propagate.extract(carrier) if carrier else otel_context.Context()
    if _state.mode is Mode.CARRIED:
        found = trace.get_current_span(parent)
        with within(parent):
            yield found if found.get_span_context().is_valid else None
        return
    span = _state.tracer.start_span(name, context=parent, kind=SpanKind.CLIENT)
    try:
        with within(trace.set_span_in_context(span, parent)):
            yield span
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
        raise
    finally:
        span.end()


def requesting(span: Span | None, method: str, url: str) -> None:
    """The request a CLIENT span makes (HTTP client semantic conventions): named by its
    method; `url.full` without its user info and query string, where credentials live."""
    if span is None or not span.is_recording():
        return
    parts = urlsplit(url)
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.full": urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")),
        "server.address": parts.hostname or "",
    }
    with contextlib.suppress(ValueError):  # a port out of range: the request fails anyway
        attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    span.update_name(method)
    span.set_attributes(attributes)


def sending(span: Span | None, system: str, destination: str) -> None:
    """The message a CLIENT span sends to a queue, a topic or a bus (messaging semantic
    conventions, "send"): named `send <system>` (low in cardinality), the destination in
    `messaging.destination.name` (a queue URL, an exchange: no credentials)."""
    if span is None or not span.is_recording():
        return
    span.update_name(f"send {system}")
    span.set_attributes(
        {
            "messaging.system": system,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": destination,
        }
    )


def responded(
    span: Span | None, status_code: int | None, failure: str | None, error_type: str | None
) -> None:
    """How a CLIENT span's request ended: its status code, if answered, and ERROR with
    `failure` (and `error.type`) when it failed."""
    if span is None or not span.is_recording():
        return
    if status_code is not None:
        span.set_attribute("http.response.status_code", status_code)
    if failure is not None:
        if error_type is not None:
            span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, failure[:200]))


# --- Work of hookhub's own ----------------------------------------------------------------


@contextlib.contextmanager
def span(
    name: str,
    *,
    context: Context | None = None,
    root: bool = False,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
    **hookhub: str | int | None,
) -> Iterator[None]:
    """A span of work hookhub does on its own account (an outbound job's provider calls, a
    token refresh, an import job), current for the block: the child of `context` (an
    envelope's `trace()`; default: the current context), or the first of a trace of its
    own (`root`). `attributes` as they are, `hookhub` as `hookhub.<name>` (None left out).
    Only when exported; carried, `context` is made current (log lines), nothing more."""
    if _state.mode is not Mode.EXPORTED:
        with within(context):
            yield
        return
    given = {f"hookhub.{k}": v for k, v in hookhub.items() if v is not None}
    with _state.tracer.start_as_current_span(
        name,
        context=otel_context.Context() if root else context,
        kind=kind,
        attributes={**(attributes or {}), **given},
    ):
        yield


@contextlib.contextmanager
def request_span(method: str, url: str) -> Iterator[None]:
    """The CLIENT span of a provider call the httpx instrumentation does not see (Authlib's
    token requests go out through the httpx2 fork)."""
    with span(method, kind=SpanKind.CLIENT):
        requesting(trace.get_current_span(), method, url)
        yield


def exported() -> bool:
    """Whether spans are recorded: what only they use is worked out only then."""
    return _state.mode is Mode.EXPORTED


def calls_within(context: Context | None) -> contextlib.AbstractContextManager[None]:
    """`within(context)` for a block that may call a provider, on a hot path: when spans are
    exported, so that the calls' CLIENT spans are the context's children; else nothing, not
    even the context's attachment."""
    if _state.mode is Mode.EXPORTED and context is not None:
        return within(context)
    return contextlib.nullcontext()


def add_event(context: Context | None, name: str, attributes: Mapping[str, str]) -> None:
    """A span event on the span of `context` (an envelope's record span), if recorded."""
    recorded = trace.get_current_span(context)
    if recorded.is_recording():
        recorded.add_event(name, attributes)
