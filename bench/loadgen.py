"""The load generator: a closed loop of keep-alive HTTP/1.1 connections, run as its own process.

`python -m bench.loadgen --url URL --body-file F --concurrency N --duration S --warmup W`
(`--method GET` for reads, POST by default) opens N connections and keeps exactly one request
in flight on each: when a response completes, the next request goes out on the same
connection at once. Responses completing during the warm-up are discarded; those completing
inside the measured window are counted.

Two clients, chosen with `--client`:

- `raw` (default): one `asyncio.Protocol` per connection on uvloop, writing the same
  pre-built request bytes every time and parsing only the status line, `Content-Length` and
  chunked framing. No coroutine, task or future per request: a response arriving in
  `data_received` directly writes the next request. Several times cheaper in CPU per request
  than httpx, which matters when the client shares two cores with what it measures.
- `httpx`: N coroutines sharing one `httpx.AsyncClient` sized to N connections; kept to
  cross-check the raw client's figures.

It prints JSON lines on stdout: `{"event": "measure-start"}` and `{"event": "measure-end"}`
as the window opens and closes (so the harness can sample the CPU time of the processes under
test), then `{"event": "result", ...}` with the counts and latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

WARMUP, MEASURE, DRAIN = "warmup", "measure", "drain"


@dataclass
class Recorder:
    """Outcomes of responses completed inside the measured window."""

    phase: str = WARMUP
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    window_started: float = 0.0
    window_ended: float = 0.0
    cpu_started: float = 0.0
    cpu_ended: float = 0.0

    def response(self, status: int, latency: float) -> None:
        if self.phase != MEASURE:
            return
        if 200 <= status < 300:  # 202: accepted (POST /api/events)
            self.ok += 1
            self.latencies.append(latency)
        else:
            self.errors[f"http_{status}"] += 1

    def failure(self, kind: str) -> None:
        if self.phase == MEASURE:
            self.errors[kind] += 1

    def open_window(self) -> None:
        self.phase = MEASURE
        self.window_started = time.perf_counter()
        self.cpu_started = cpu_seconds()
        _emit({"event": "measure-start"})

    def close_window(self) -> None:
        self.phase = DRAIN
        self.window_ended = time.perf_counter()
        self.cpu_ended = cpu_seconds()
        _emit({"event": "measure-end"})

    def result(self, client: str, concurrency: int) -> dict[str, Any]:
        window = max(self.window_ended - self.window_started, 1e-9)
        ordered = sorted(self.latencies)
        error_count = sum(self.errors.values())
        return {
            "event": "result",
            "client": client,
            "concurrency": concurrency,
            "window_s": round(window, 3),
            "ok": self.ok,
            "errors": error_count,
            "error_kinds": dict(self.errors),
            "rps": round(self.ok / window, 1),
            "p50_ms": _percentile_ms(ordered, 0.50),
            "p90_ms": _percentile_ms(ordered, 0.90),
            "p99_ms": _percentile_ms(ordered, 0.99),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "client_cpu_cores": round((self.cpu_ended - self.cpu_started) / window, 3),
        }


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


SEQ = b"{seq}"


def stripe_signer(secret: str) -> Callable[[bytes], dict[str, str]]:
    """Stripe's `Stripe-Signature` of each body as Stripe makes it (stripe-python's
    `WebhookSignature`): a body with its own event id is signed anew, now."""
    key = secret.encode()

    def sign(body: bytes) -> dict[str, str]:
        stamp = b"%d" % time.time()
        digest = hmac.new(key, stamp + b"." + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={stamp.decode()},v1={digest}"}

    return sign


# `--signer NAME:SECRET`: the requests whose body changes (its `{seq}`), signed each time.
SIGNERS: dict[str, Callable[[str], Callable[[bytes], dict[str, str]]]] = {
    "stripe": stripe_signer,
}


@dataclass(frozen=True)
class Target:
    url: str
    body: bytes
    headers: dict[str, str]
    method: str = "POST"
    # `NAME:SECRET` of SIGNERS: `{seq}` is in the body, and each body is signed anew.
    signer: str | None = None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def requests(self) -> Callable[[], bytes]:
        """The request to send next. `{seq}` in a header becomes a value unique to each
        request (36 characters, like the GUIDs in GitHub's X-GitHub-Delivery)."""
        if self.signer is not None:
            return self._signed_requests()
        template = self.request_bytes()
        if SEQ not in template:
            return lambda: template
        head, tail = template.split(SEQ, 1)
        prefix = uuid.uuid4().hex[:24].encode()
        counter = itertools.count()

        def unique() -> bytes:
            return b"%s%s%012x%s" % (head, prefix, next(counter), tail)

        return unique

    def _signed_requests(self) -> Callable[[], bytes]:
        assert self.signer is not None
        name, _, secret = self.signer.partition(":")
        sign = SIGNERS[name](secret)
        head, tail = self.body.split(SEQ, 1)
        prefix = uuid.uuid4().hex[:24].encode()
        counter = itertools.count()

        def signed() -> bytes:
            body = b"%s%s%012x%s" % (head, prefix, next(counter), tail)
            target = Target(self.url, body, {**self.headers, **sign(body)}, self.method)
            return target.request_bytes()

        return signed

    def request_bytes(self) -> bytes:
        parts = urlsplit(self.url)
        if parts.scheme != "http":
            raise SystemExit("the raw client speaks plain http only")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # A GET without a body says nothing of one, as clients send it.
        framing = [] if self.method == "GET" and not self.body else [len(self.body)]
        lines = [
            f"{self.method} {path} HTTP/1.1",
            f"Host: {parts.netloc}",
            *(f"Content-Length: {length}" for length in framing),
            "Connection: keep-alive",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


# -- raw client ----------------------------------------------------------------------------


class _ResponseParser:
    """Incremental HTTP/1.1 response framing: status, Content-Length or chunked, close."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def next_response(self) -> tuple[int, bool] | None:
        """(status, connection closes) of the next complete response, removed from the buffer."""
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = bytes(self.buffer[:head_end]).decode("latin-1")
        status_line, _, header_block = head.partition("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length = 0
        chunked = False
        closes = False
        for line in header_block.split("\r\n"):
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                closes = value.strip().lower() == "close"
        start = head_end + 4
        if chunked:
            end = self._chunked_end(start)
            if end is None:
                return None
        else:
            end = start + length
            if len(self.buffer) < end:
                return None
        del self.buffer[:end]
        return status, closes

    def _chunked_end(self, position: int) -> int | None:
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(self.buffer[position:line_end]).split(b";")[0], 16)
            if size == 0:
                # "0\r\n", optional trailer lines, then an empty line.
                trailer_end = self.buffer.find(b"\r\n\r\n", line_end)
                return trailer_end + 4 if trailer_end >= 0 else None
            position = line_end + 2 + size + 2
            if len(self.buffer) < position:
                return None


class _Connection(asyncio.Protocol):
    def __init__(
        self, request: Callable[[], bytes], recorder: Recorder, keep_going: Callable[[], bool]
    ) -> None:
        self.request = request
        self.recorder = recorder
        self.keep_going = keep_going
        self.parser = _ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.in_flight = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if not self.keep_going():
            self.transport.close()
            return
        self.in_flight = True
        self.sent_at = time.perf_counter()
        self.transport.write(self.request())

    def data_received(self, data: bytes) -> None:
        self.parser.buffer += data
        while True:
            try:
                parsed = self.parser.next_response()
            except (ValueError, IndexError):
                self.recorder.failure("bad_response")
                self.abort()
                return
            if parsed is None:
                return
            status, closes = parsed
            self.in_flight = False
            self.recorder.response(status, time.perf_counter() - self.sent_at)
            if closes:
                assert self.transport is not None
                self.transport.close()
                return
            self._send()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            self.recorder.failure("connection_lost")
        self.in_flight = False
        if not self.closed.done():
            self.closed.set_result(None)


async def _raw_worker(
    target: Target, recorder: Recorder, keep_going: Callable[[], bool], request_timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    request = target.requests()
    while keep_going():
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(request, recorder, keep_going), target.host, target.port
            )
        except OSError:
            recorder.failure("connect_failed")
            await asyncio.sleep(0.1)
            continue
        while not connection.closed.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(connection.closed), 0.5)
            late = time.perf_counter() - connection.sent_at > request_timeout
            if connection.in_flight and late:
                recorder.failure("timeout")
                connection.in_flight = False
                connection.abort()


# -- httpx client --------------------------------------------------------------------------


async def _httpx_workers(
    target: Target,
    recorder: Recorder,
    keep_going: Callable[[], bool],
    request_timeout: float,
    concurrency: int,
) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=request_timeout) as client:

        async def worker() -> None:
            while keep_going():
                started = time.perf_counter()
                try:
                    response = await client.request(
                        target.method, target.url, content=target.body, headers=target.headers
                    )
                except httpx.TimeoutException:
                    recorder.failure("timeout")
                    continue
                except httpx.HTTPError:
                    recorder.failure("connection_lost")
                    await asyncio.sleep(0.01)
                    continue
                recorder.response(response.status_code, time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


# -- driver --------------------------------------------------------------------------------


async def drive(
    target: Target,
    *,
    client: str,
    concurrency: int,
    duration: float,
    warmup: float,
    request_timeout: float,
) -> dict[str, Any]:
    recorder = Recorder()
    running = True
    window_closed = asyncio.Event()

    def keep_going() -> bool:
        return running

    def close_window() -> None:
        recorder.close_window()
        window_closed.set()

    loop = asyncio.get_running_loop()
    loop.call_later(warmup, recorder.open_window)
    loop.call_later(warmup + duration, close_window)
    load: asyncio.Future[Any]
    if client == "raw":
        load = asyncio.gather(
            *(
                _raw_worker(target, recorder, keep_going, request_timeout)
                for _ in range(concurrency)
            )
        )
    else:
        load = asyncio.ensure_future(
            _httpx_workers(target, recorder, keep_going, request_timeout, concurrency)
        )
    await window_closed.wait()
    running = False  # connections stop after their in-flight request; none is cut short
    try:
        await asyncio.wait_for(load, request_timeout + 1)
    except TimeoutError:
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
    return recorder.result(client, concurrency)


def _parse_header(item: str) -> tuple[str, str]:
    name, sep, value = item.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"header must be NAME:VALUE, got {item!r}")
    return name.strip(), value.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", type=Path, required=True)
    parser.add_argument("--method", choices=("POST", "GET"), default="POST")
    parser.add_argument("--header", action="append", type=_parse_header, default=[])
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--signer", choices=None, default=None, help="NAME:SECRET of SIGNERS")
    args = parser.parse_args(argv)
    target = Target(
        args.url, args.body_file.read_bytes(), dict(args.header), args.method, args.signer
    )
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        runner: Callable[..., Any] = asyncio.run
    else:
        runner = uvloop.run
    result = runner(
        drive(
            target,
            client=args.client,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
            request_timeout=args.timeout,
        )
    )
    _emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
