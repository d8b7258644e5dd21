"""Spans written as OTLP's protobuf (`ExportTraceServiceRequest`) directly, byte by byte.

What the OTLP exporters' `encode_spans` does, for a fraction of its CPU: that builds a
protobuf message object per span, attribute and value from Python, 2-3 µs an attribute, and
in a service that makes a span or two per webhook that was a fifth of the webhook's cost
(docs/benchmarks.md, `tracing`). The exporters are OpenTelemetry's own; only their
encoding is replaced (shared.kernel.tracing), and tests/shared/test_otlp_wire.py holds this to the
same message as `encode_spans` makes, span for span, field for field.

The schema: opentelemetry-proto's trace/v1/trace.proto and common/v1/common.proto. Field
numbers are written below as (number << 3 | wire type) tags.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_FIXED64_FORMAT = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_FIXED32_FORMAT = struct.Struct("<I")
# Span.flags: the context says whether its parent is remote (SpanFlags in trace.proto).
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
# OTLP numbers span kinds from 1 (0 is "unspecified"); the SDK from 0.
_KINDS = {kind: kind.value + 1 for kind in SpanKind}


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


# Tags, by message: AnyValue, KeyValue, ArrayValue and KeyValueList.
_ANY_STRING, _ANY_BOOL, _ANY_INT = _tag(1, _LENGTH), _tag(2, _VARINT), _tag(3, _VARINT)
_ANY_DOUBLE, _ANY_ARRAY, _ANY_KVLIST = _tag(4, _FIXED64), _tag(5, _LENGTH), _tag(6, _LENGTH)
_ANY_BYTES = _tag(7, _LENGTH)
_KV_KEY, _KV_VALUE = _tag(1, _LENGTH), _tag(2, _LENGTH)
_LIST_ITEM = _tag(1, _LENGTH)
# Span.
_TRACE_ID, _SPAN_ID, _TRACE_STATE = _tag(1, _LENGTH), _tag(2, _LENGTH), _tag(3, _LENGTH)
_PARENT_ID, _NAME, _KIND = _tag(4, _LENGTH), _tag(5, _LENGTH), _tag(6, _VARINT)
_START, _END, _ATTRIBUTE = _tag(7, _FIXED64), _tag(8, _FIXED64), _tag(9, _LENGTH)
_DROPPED_ATTRIBUTES, _EVENT = _tag(10, _VARINT), _tag(11, _LENGTH)
_DROPPED_EVENTS, _LINK, _DROPPED_LINKS = _tag(12, _VARINT), _tag(13, _LENGTH), _tag(14, _VARINT)
_STATUS, _FLAGS = _tag(15, _LENGTH), _tag(16, _FIXED32)
# Span.Event, Span.Link, Status.
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE = _tag(1, _FIXED64), _tag(2, _LENGTH), _tag(3, _LENGTH)
_EVENT_DROPPED = _tag(4, _VARINT)
_LINK_TRACE_ID, _LINK_SPAN_ID, _LINK_TRACE_STATE = (
    _tag(1, _LENGTH),
    _tag(2, _LENGTH),
    _tag(3, _LENGTH),
)
_LINK_ATTRIBUTE, _LINK_DROPPED, _LINK_FLAGS = _tag(4, _LENGTH), _tag(5, _VARINT), _tag(6, _FIXED32)
_STATUS_MESSAGE, _STATUS_CODE = _tag(2, _LENGTH), _tag(3, _VARINT)
# Resource, InstrumentationScope, ScopeSpans, ResourceSpans, ExportTraceServiceRequest.
_RESOURCE_ATTRIBUTE, _RESOURCE_DROPPED = _tag(1, _LENGTH), _tag(2, _VARINT)
_SCOPE_NAME, _SCOPE_VERSION = _tag(1, _LENGTH), _tag(2, _LENGTH)
_SCOPE_SPANS_SCOPE, _SCOPE_SPANS_SPAN, _SCOPE_SPANS_SCHEMA = (
    _tag(1, _LENGTH),
    _tag(2, _LENGTH),
    _tag(3, _LENGTH),
)
_RESOURCE_SPANS_RESOURCE, _RESOURCE_SPANS_SCOPE, _RESOURCE_SPANS_SCHEMA = (
    _tag(1, _LENGTH),
    _tag(2, _LENGTH),
    _tag(3, _LENGTH),
)
_REQUEST_RESOURCE_SPANS = _tag(1, _LENGTH)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """The `ExportTraceServiceRequest` of `spans`, serialized: grouped by resource, then
    by instrumentation scope, in the order they first appear (as `encode_spans` does)."""
    # By identity: a Resource's hash is computed from its attributes on every call, and a
    # process's spans share one Resource object (and one scope per tracer).
    resources: dict[int, Resource] = {}
    grouped: dict[int, dict[InstrumentationScope | None, list[bytes]]] = {}
    for span in spans:
        resource = span.resource
        scopes = grouped.get(id(resource))
        if scopes is None:
            resources[id(resource)] = resource
            scopes = grouped[id(resource)] = {}
        scopes.setdefault(span.instrumentation_scope or None, []).append(_span(span))
    out = bytearray()
    for key, scopes in grouped.items():
        resource = resources[key]
        body = bytearray(_length(_RESOURCE_SPANS_RESOURCE, _resource(resource)))
        for scope, encoded in scopes.items():
            scope_spans = bytearray(_length(_SCOPE_SPANS_SCOPE, _scope(scope)))
            for one in encoded:
                scope_spans += _SCOPE_SPANS_SPAN
                scope_spans += _varint(len(one))
                scope_spans += one
            if scope is not None and scope.schema_url:
                scope_spans += _length(_SCOPE_SPANS_SCHEMA, scope.schema_url.encode())
            body += _length(_RESOURCE_SPANS_SCOPE, bytes(scope_spans))
        if resource.schema_url:
            body += _length(_RESOURCE_SPANS_SCHEMA, resource.schema_url.encode())
        out += _length(_REQUEST_RESOURCE_SPANS, bytes(body))
    return bytes(out)


# A process has one resource: written once (the Resource kept, so its id is not reused).
_resources: dict[int, tuple[Resource, bytes]] = {}


def _resource(resource: Resource) -> bytes:
    cached = _resources.get(id(resource))
    if cached is None:
        cached = (resource, _attributes(_RESOURCE_ATTRIBUTE, resource.attributes))
        if len(_resources) < 16:
            _resources[id(resource)] = cached
    return cached[1]


def _scope(scope: InstrumentationScope | None) -> bytes:
    if scope is None:
        return b""
    out = b""
    if scope.name:
        out += _length(_SCOPE_NAME, scope.name.encode())
    if scope.version:
        out += _length(_SCOPE_VERSION, scope.version.encode())
    # Scope attributes: none of the tracers hookhub uses has any (encode_spans writes them).
    if scope.attributes:
        out += _attributes(_tag(3, _LENGTH), scope.attributes)
    return out


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None
    out = bytearray(_TRACE_ID)
    out += b"\x10" + context.trace_id.to_bytes(16, "big")
    out += _SPAN_ID
    out += b"\x08" + context.span_id.to_bytes(8, "big")
    if context.trace_state:
        out += _length(_TRACE_STATE, _trace_state(context.trace_state))
    parent = span.parent
    if parent is not None:
        out += _PARENT_ID
        out += b"\x08" + parent.span_id.to_bytes(8, "big")
    if span.name:
        out += _length(_NAME, span.name.encode())
    out += _KIND
    out += _varint(_KINDS[span.kind])
    if span.start_time:
        out += _START + _FIXED64_FORMAT.pack(span.start_time)
    if span.end_time:
        out += _END + _FIXED64_FORMAT.pack(span.end_time)
    if span.attributes:
        out += _attributes(_ATTRIBUTE, span.attributes)
    if span.dropped_attributes:
        out += _DROPPED_ATTRIBUTES + _varint(span.dropped_attributes)
    for event in span.events:
        body = b""
        if event.timestamp:
            body += _EVENT_TIME + _FIXED64_FORMAT.pack(event.timestamp)
        if event.name:
            body += _length(_EVENT_NAME, event.name.encode())
        if event.attributes:
            body += _attributes(_EVENT_ATTRIBUTE, event.attributes)
        if event.dropped_attributes:
            body += _EVENT_DROPPED + _varint(event.dropped_attributes)
        out += _length(_EVENT, body)
    if span.dropped_events:
        out += _DROPPED_EVENTS + _varint(span.dropped_events)
    for link in span.links:
        linked = link.context
        body = _LINK_TRACE_ID + b"\x10" + linked.trace_id.to_bytes(16, "big")
        body += _LINK_SPAN_ID + b"\x08" + linked.span_id.to_bytes(8, "big")
        if link.attributes:
            body += _attributes(_LINK_ATTRIBUTE, link.attributes)
        if link.dropped_attributes:
            body += _LINK_DROPPED + _varint(link.dropped_attributes)
        body += _LINK_FLAGS + _FIXED32_FORMAT.pack(_flags(linked))
        out += _length(_LINK, body)
    if span.dropped_links:
        out += _DROPPED_LINKS + _varint(span.dropped_links)
    status = b""
    if span.status.description:
        status += _length(_STATUS_MESSAGE, span.status.description.encode())
    if span.status.status_code.value:
        status += _STATUS_CODE + _varint(span.status.status_code.value)
    out += _length(_STATUS, status)
    out += _FLAGS + _FIXED32_FORMAT.pack(_flags(parent))
    return bytes(out)


def _flags(parent: Any) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


def _trace_state(state: Any) -> bytes:
    return ",".join(f"{key}={value}" for key, value in state.items()).encode()


# Most attributes repeat (a route, a provider, a topic, a status code): each pair written
# once, then looked up. Keyed with the value's type: 1, 1.0 and True are equal keys.
_PAIRS_KEPT = 4096
_pairs: dict[tuple[Any, type, Any], bytes] = {}


def _attributes(tag: bytes, attributes: Mapping[Any, Any]) -> bytes:
    out = bytearray()
    for key, value in attributes.items():
        kind = type(value)
        cached = (key, kind, value) if kind in _SCALARS else None
        pair = _pairs.get(cached) if cached is not None else None
        if pair is None:
            try:
                body = _length(_KV_KEY, str(key).encode()) + _length(_KV_VALUE, _value(value))
            except TypeError:  # left out, as encode_spans leaves out what it cannot write
                continue
            pair = tag + _varint(len(body)) + body
            if cached is not None:
                if len(_pairs) >= _PAIRS_KEPT:
                    _pairs.clear()
                _pairs[cached] = pair
        out += pair
    return bytes(out)


_SCALARS = frozenset((str, int, bool, float))


def _value(value: Any) -> bytes:
    """An AnyValue. Its fields are a oneof: set, even to a default (an empty string, 0,
    False), each is written."""
    if isinstance(value, str):
        return _length(_ANY_STRING, value.encode())
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _ANY_INT + _varint(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _length(_ANY_BYTES, value)
    if isinstance(value, Mapping):
        return _length(_ANY_KVLIST, _attributes(_LIST_ITEM, value))
    if isinstance(value, Sequence):
        items = b"".join(_length(_LIST_ITEM, _value(item)) for item in value)
        return _length(_ANY_ARRAY, items)
    raise TypeError(f"an attribute value of type {type(value).__name__}")
