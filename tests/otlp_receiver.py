"""An OpenTelemetry collector on loopback: receives OTLP traces (HTTP and gRPC), keeps spans.

The services' exporters send to it as to a real collector: OTLP/HTTP `POST /v1/traces`
(protobuf, or OTLP JSON) and OTLP/gRPC `TraceService/Export`. Each span is kept as a plain
`Span` record, or only counted (`keep=False`: the benchmark's local collector, which
`python -m tests.otlp_receiver --port N` runs as its own process, its counts at
`GET /counts`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import json
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from grpc.aio import Server as GrpcServer
from grpc.aio import server as grpc_server
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

PROTOBUF = "application/x-protobuf"
TRACES_PATH = "/v1/traces"
# OTLP JSON writes these as hex; the protobuf JSON mapping reads bytes as base64.
_HEX_IDS = ("traceId", "spanId", "parentSpanId")

T = TypeVar("T")


@dataclass(frozen=True)
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    name: str
    kind: str  # "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "INTERNAL" (as SpanKind's names)
    service: str | None  # the resource's service.name
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace_id, span_id)
    status: str  # "UNSET", "OK", "ERROR"
    start_ns: int
    end_ns: int
    scope: str = ""  # the instrumentation scope's name
    resource: dict[str, Any] = field(default_factory=dict)


def plain(value: AnyValue) -> Any:
    """An OTLP attribute value as the Python value it was set as."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return None if kind is None else getattr(value, kind)


def attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: plain(pair.value) for pair in pairs}


def _span(proto: ProtoSpan, resource: dict[str, Any], scope: str) -> Span:
    service = resource.get("service.name")
    return Span(
        trace_id=proto.trace_id.hex(),
        span_id=proto.span_id.hex(),
        parent_span_id=proto.parent_span_id.hex() or None,
        name=proto.name,
        kind=ProtoSpan.SpanKind.Name(proto.kind).removeprefix("SPAN_KIND_"),
        service=service if isinstance(service, str) else None,
        attributes=attributes(proto.attributes),
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in proto.links],
        status=Status.StatusCode.Name(proto.status.code).removeprefix("STATUS_CODE_"),
        start_ns=proto.start_time_unix_nano,
        end_ns=proto.end_time_unix_nano,
        scope=scope,
        resource=resource,
    )


def _service_name(pairs: Any) -> str:
    for pair in pairs:
        if pair.key == "service.name":
            return str(plain(pair.value))
    return "(none)"


def from_json(body: bytes) -> ExportTraceServiceRequest:
    """An OTLP JSON body (ids in hex, as the OTLP spec writes them) as the request;
    ValueError or ParseError if it is not one."""
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    for resource_spans in _objects(document, "resourceSpans"):
        for scope_spans in _objects(resource_spans, "scopeSpans"):
            for span in _objects(scope_spans, "spans"):
                for item in (span, *_objects(span, "links")):
                    for key in _HEX_IDS:
                        if isinstance(item.get(key), str):
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    request = ExportTraceServiceRequest()
    json_format.ParseDict(document, request, ignore_unknown_fields=True)
    return request


def _objects(parent: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The objects of the list at `key` (a shape that is not that is left to the parser)."""
    value = parent.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


class OtlpReceiver:
    """`async with OtlpReceiver() as receiver:` an OTLP/HTTP endpoint (`http_endpoint`, what
    `OTEL_EXPORTER_OTLP_ENDPOINT` takes) and, unless `grpc=False`, an OTLP/gRPC one
    (`grpc_endpoint`), on free loopback ports unless given. `spans` holds what arrived
    (nothing with `keep=False`); `span_count`, `requests` and `by_service` count it."""

    def __init__(
        self,
        *,
        keep: bool = True,
        grpc: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        grpc_port: int = 0,
    ) -> None:
        self.keep = keep
        self.host = host
        self.spans: list[Span] = []
        self.span_count = 0
        self.requests = 0
        self.by_service: Counter[str] = Counter()
        self.http_endpoint = ""
        self.grpc_endpoint: str | None = None
        self._port, self._grpc_port, self._with_grpc = port, grpc_port, grpc
        self._runner: web.AppRunner | None = None
        self._grpc_server: GrpcServer | None = None
        self._arrived = asyncio.Event()

    @property
    def traces_url(self) -> str:
        """The full URL an exporter given its endpoint explicitly posts to."""
        return self.http_endpoint + TRACES_PATH

    async def __aenter__(self) -> OtlpReceiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(TRACES_PATH, self._http_export)
        app.router.add_get("/counts", self._counts)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._port).start()
        port = self._runner.addresses[0][1]
        self.http_endpoint = f"http://{self.host}:{port}"
        if self._with_grpc:
            self._grpc_server = grpc_server()
            # The generated module is untyped.
            add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
                _Servicer(self), self._grpc_server
            )
            bound = self._grpc_server.add_insecure_port(f"{self.host}:{self._grpc_port}")
            await self._grpc_server.start()
            self.grpc_endpoint = f"http://{self.host}:{bound}"

    async def stop(self) -> None:
        if self._grpc_server is not None:
            await self._grpc_server.stop(grace=None)
            self._grpc_server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def take(self, request: ExportTraceServiceRequest) -> None:
        """Counts (and keeps, with `keep`) the request's spans."""
        self.requests += 1
        for resource_spans in request.resource_spans:
            if self.keep:
                resource = attributes(resource_spans.resource.attributes)
                service = str(resource.get("service.name", "(none)"))
            else:
                service = _service_name(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                self.span_count += len(scope_spans.spans)
                self.by_service[service] += len(scope_spans.spans)
                if self.keep:
                    scope = scope_spans.scope.name
                    self.spans.extend(_span(s, resource, scope) for s in scope_spans.spans)
        self._arrived.set()

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]

    def clear(self) -> None:
        self.spans.clear()

    async def wait_for(self, condition: Callable[[list[Span]], T], timeout: float = 15.0) -> T:
        """`condition(spans)` once it is truthy, checked as each export arrives;
        TimeoutError (saying what did arrive) after `timeout` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := condition(self.spans)):
            self._arrived.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                names = sorted({f"{span.service}:{span.name}" for span in self.spans})
                raise TimeoutError(
                    f"no such spans within {timeout:g} s; {len(self.spans)} arrived: {names}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return result

    def counts(self) -> dict[str, Any]:
        return {
            "spans": self.span_count,
            "requests": self.requests,
            "services": dict(self.by_service),
        }

    async def _http_export(self, request: web.Request) -> web.Response:
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "").lower()
        content_type = request.content_type
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                return web.Response(status=415, text=f"unsupported Content-Encoding {encoding}")
            if content_type == PROTOBUF:
                self.take(ExportTraceServiceRequest.FromString(body))
            elif content_type == "application/json":
                self.take(from_json(body))
            else:
                return web.Response(status=415, text=f"unsupported Content-Type {content_type}")
        except (DecodeError, json_format.ParseError, ValueError, OSError, zlib.error) as exc:
            return web.Response(status=400, text=f"not an OTLP trace export: {exc}")
        if content_type == PROTOBUF:
            answer = ExportTraceServiceResponse().SerializeToString()
            return web.Response(body=answer, content_type=PROTOBUF)
        return web.json_response({})

    async def _counts(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts())


class _Servicer(TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver

    async def Export(
        self, request: ExportTraceServiceRequest, context: Any
    ) -> ExportTraceServiceResponse:
        self.receiver.take(request)
        return ExportTraceServiceResponse()


async def serve(port: int, grpc_port: int | None) -> None:
    """Counts spans until stopped (SIGTERM, Ctrl-C)."""
    receiver = OtlpReceiver(
        keep=False, grpc=grpc_port is not None, port=port, grpc_port=grpc_port or 0
    )
    async with receiver:
        print(f"otlp receiver: {receiver.http_endpoint}, gRPC {receiver.grpc_endpoint}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.otlp_receiver",
        description="A local OTLP collector that counts the spans it receives (GET /counts).",
    )
    parser.add_argument("--port", type=int, required=True, help="OTLP/HTTP port")
    parser.add_argument("--grpc-port", type=int, help="OTLP/gRPC port too (none by default)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.grpc_port))


if __name__ == "__main__":
    main()
