"""The receiving end of the delivery benchmark: a cheap HTTP/1.1 server, run as its own process.

`python -m bench.sink --port P` answers every request `200 ok` on keep-alive connections and
counts it. It is one `asyncio.Protocol` per connection on uvloop that parses only the
request line, `Content-Length`, the `webhook-id` header (Standard Webhooks: the same on
every attempt of one event's delivery) and two numbers in the body: `"bench_seq":<int>`
(which event this is) and `"sent_at":<unix seconds>` (when it was published or sent). Each
request beyond the first of a `webhook-id` counts as a duplicate. Its cost per
request is a few tens of microseconds, so it is never what limits a run (the benchmark
prints its CPU to show it).

Requests under `/_bench/` control it (the benchmark's, never counted):

- `POST /_bench/reset?expect=N&open_after=K&by_path=1`: forget everything; the run is
  complete when N distinct events arrived, and its measured window opens when K distinct
  events did (default 1: at the first request). With `by_path=1`, an event is distinct per
  path (an event fanned out to several endpoints on one sink: N counts deliveries).
- `GET /_bench/wait?until=open|complete&timeout=S`: answers as soon as that point is
  reached, or after S seconds; `{"reached": bool}`.
- `GET /_bench/arrivals?path=P` (after a `by_path` reset): the `bench_seq` of each event
  first received on path P, in the order they arrived, and the `webhook-id`s received on
  it (which events of which run they were, whatever their `bench_seq`).
- `GET /_bench/stats?from_seq=Q`: counts (by event and by `webhook-id`; after a `by_path`
  reset also `paths`, each path's distinct events), the first 20 numbers below N not
  received (by event only), the receive times of the window's ends, and the
  publish-to-receive latency of events numbered Q and above (first receipt of each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

_SEQ = re.compile(rb'"bench_seq":(\d+)')
_SENT_AT = re.compile(rb'"sent_at":([0-9.eE+-]+)')
_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_WEBHOOK_ID = b"\r\nwebhook-id:"
_CONTROL = b"/_bench/"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class Sink:
    def __init__(self) -> None:
        self.reset(0, 1)
        # (point, transport, timer) of pending `wait` requests.
        self._waiters: list[tuple[str, asyncio.Transport, asyncio.TimerHandle]] = []

    def reset(self, expect: int, open_after: int, by_path: bool = False) -> None:
        self.expect = expect
        self.open_after = max(open_after, 1)
        self.by_path = by_path
        self.seen: set[int | tuple[bytes, int]] = set()
        self.arrivals: dict[bytes, list[int]] = {}  # by path, with `by_path`
        self.path_ids: dict[bytes, set[bytes]] = {}  # by path, with `by_path`: webhook-ids
        self.requests = 0
        self.duplicates = 0
        self.unnumbered = 0
        # Requests by `webhook-id`: those beyond the first of an id are its duplicates.
        self.webhook_ids: set[bytes] = set()
        self.webhook_id_duplicates = 0
        self.unidentified = 0  # requests without a `webhook-id`
        self.first_at: float | None = None
        self.open_at: float | None = None
        self.complete_at: float | None = None
        self.last_at: float | None = None
        # (seq, seconds from sent_at to receipt), first receipt of each event only.
        self.latencies: list[tuple[int, float]] = []

    # -- counted requests -------------------------------------------------------------------

    def record(self, body: bytes, webhook_id: bytes | None = None, path: bytes = b"") -> None:
        now = time.time()
        self.requests += 1
        self.last_at = now
        if self.first_at is None:
            self.first_at = now
        if webhook_id is None:
            self.unidentified += 1
        elif webhook_id in self.webhook_ids:
            self.webhook_id_duplicates += 1
        else:
            self.webhook_ids.add(webhook_id)
        if self.by_path and webhook_id is not None:
            self.path_ids.setdefault(path, set()).add(webhook_id)
        match = _SEQ.search(body)
        if match is None:
            self.unnumbered += 1
            return
        seq = int(match.group(1))
        key = (path, seq) if self.by_path else seq
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        if self.by_path:
            self.arrivals.setdefault(path, []).append(seq)
        sent = _SENT_AT.search(body)
        if sent is not None:
            self.latencies.append((seq, now - float(sent.group(1))))
        count = len(self.seen)
        if self.open_at is None and count >= self.open_after:
            self.open_at = now
            self._release("open")
        if self.complete_at is None and self.expect and count >= self.expect:
            self.complete_at = now
            self._release("complete")

    # -- control ----------------------------------------------------------------------------

    def reached(self, point: str) -> bool:
        return (self.open_at if point == "open" else self.complete_at) is not None

    def wait(self, point: str, transport: asyncio.Transport, timeout: float) -> None:
        if self.reached(point):
            _answer(transport, {"reached": True})
            return
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, self._expire, point, transport)
        self._waiters.append((point, transport, timer))

    def _expire(self, point: str, transport: asyncio.Transport) -> None:
        self._waiters = [w for w in self._waiters if w[1] is not transport]
        if not transport.is_closing():
            _answer(transport, {"reached": self.reached(point)})

    def _release(self, point: str) -> None:
        keep = []
        for waiter in self._waiters:
            if waiter[0] == point:
                waiter[2].cancel()
                if not waiter[1].is_closing():
                    _answer(waiter[1], {"reached": True})
            else:
                keep.append(waiter)
        self._waiters = keep

    def stats(self, from_seq: int) -> dict[str, Any]:
        ordered = sorted(latency for seq, latency in self.latencies if seq >= from_seq)
        return {
            "expect": self.expect,
            "open_after": self.open_after,
            "requests": self.requests,
            "distinct": len(self.seen),
            "duplicates": self.duplicates,
            "unnumbered": self.unnumbered,
            "webhook_ids": len(self.webhook_ids),
            "webhook_id_duplicates": self.webhook_id_duplicates,
            "unidentified": self.unidentified,
            "paths": {path.decode("latin-1"): len(seqs) for path, seqs in self.arrivals.items()},
            "missing": []
            if self.by_path
            else [seq for seq in range(self.expect) if seq not in self.seen][:20],
            "first_at": self.first_at,
            "open_at": self.open_at,
            "complete_at": self.complete_at,
            "last_at": self.last_at,
            "latency": {
                "from_seq": from_seq,
                "count": len(ordered),
                "p50_ms": _percentile_ms(ordered, 0.50),
                "p90_ms": _percentile_ms(ordered, 0.90),
                "p99_ms": _percentile_ms(ordered, 0.99),
                "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            },
        }

    def control(self, transport: asyncio.Transport, method: bytes, target: bytes) -> None:
        parts = urlsplit(target.decode("latin-1"))
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        if parts.path == "/_bench/reset" and method == b"POST":
            self.reset(
                int(query.get("expect", "0")),
                int(query.get("open_after", "1")),
                query.get("by_path") == "1",
            )
            _answer(transport, {"reset": True})
        elif parts.path == "/_bench/wait":
            point = query.get("until", "complete")
            self.wait(point, transport, float(query.get("timeout", "1")))
        elif parts.path == "/_bench/stats":
            _answer(transport, self.stats(int(query.get("from_seq", "0"))))
        elif parts.path == "/_bench/arrivals":
            path = query.get("path", "").encode()
            ids = sorted(webhook_id.decode("latin-1") for webhook_id in self.path_ids.get(path, ()))
            _answer(transport, {"seqs": self.arrivals.get(path, []), "webhook_ids": ids})
        elif parts.path == "/_bench/ready":
            _answer(transport, {"ready": True})
        else:
            _answer(transport, {"error": "unknown control request"}, status=b"404 Not Found")


def _answer(
    transport: asyncio.Transport, document: dict[str, Any], status: bytes = b"200 OK"
) -> None:
    body = json.dumps(document).encode()
    head = b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (
        status,
        len(body),
    )
    transport.write(head + body)


def webhook_id(head: bytes, raw: bytes) -> bytes | None:
    """The `webhook-id` header's value, as sent, from a request's head (`raw`) and the same
    lower-cased (`head`, where the name is looked for); None without one."""
    start = head.find(_WEBHOOK_ID)
    if start < 0:
        return None
    start += len(_WEBHOOK_ID)
    end = head.find(b"\r\n", start)
    return raw[start : end if end >= 0 else None].strip() or None


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


class Connection(asyncio.Protocol):
    """A minimal HTTP/1.1 server connection: each request's path and body go to `respond`,
    whose bytes are the whole answer; the sink's control paths are answered by the sink.
    Without `respond`, the sink's own: record the body and its `webhook-id`, answer 200."""

    def __init__(self, sink: Sink, respond: Callable[[bytes, bytes], bytes] | None = None) -> None:
        self.sink = sink
        self.respond = respond
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        buffer = self.buffer
        buffer += data
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            raw = bytes(buffer[:head_end])
            head = raw.lower()
            start = head.find(_CONTENT_LENGTH)
            length = 0
            if start >= 0:
                start += len(_CONTENT_LENGTH)
                end = head.find(b"\r\n", start)
                length = int(head[start : end if end >= 0 else None])
            elif b"\r\ntransfer-encoding:" in head:
                transport.write(_LENGTH_REQUIRED)
                transport.close()
                return
            total = head_end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[head_end + 4 : total])
            del buffer[:total]
            method, _, rest = head.partition(b" ")
            target = rest.partition(b" ")[0]
            if target.startswith(_CONTROL):
                self.sink.control(transport, method.upper(), target)
                continue
            if self.respond is None:
                self.sink.record(body, webhook_id(head, raw), target)
                transport.write(_OK)
            else:
                transport.write(self.respond(target, body))


async def serve(host: str, port: int) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(sink), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def run_server(
    serve_on: Callable[[str, int], Coroutine[Any, Any, None]],
    prog: str,
    description: str | None,
    argv: list[str] | None,
) -> int:
    """`--host`/`--port` from the command line, then `serve_on` on uvloop until Ctrl-C."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        runner: Callable[..., Any] = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve_on(args.host, args.port))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_server(serve, "python -m bench.sink", __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
