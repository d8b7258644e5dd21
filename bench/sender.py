"""The delivery benchmark's events, and its baseline: a bare httpx loop, run as its own process.

`message_data(seq, sent_at)` is the `data` of the `message.created` chat events the
benchmark publishes (about 1 KB once wrapped as a webhook body); `webhook_request()` is the
request the delivery service makes of such an event (same body, same signed headers).

`python -m bench.sender --url URL --concurrency C --result-file F` then either

- `--count N`: POSTs N such requests, built before the first goes out, as fast as C
  coroutines sharing one `httpx.AsyncClient` (`max_connections=C`) can, one request in flight
  each: what the delivery service's endpoint lane does with its C workers, minus everything
  else it does; or
- `--rate R --warmup W --duration D`: one request every 1/R s (at most C in flight), each
  stamped with `sent_at` as it is built, for the publish-to-receive latency at that rate.

With `--endpoints K` (burst only; default 1) each of the N events is sent to K endpoints,
`URL/0` … `URL/<K-1>`, each with a signing secret of its own (and, logged, an endpoint id
`whk_bench_loop_<i>`): NxK requests, each event's K one after another (as fan-out makes
them), the C in flight shared by all.

Three clients (`--client`, burst only; the paced loop is httpx): `httpx` (the baseline),
`aiohttp` (the client the delivery service sends with) and `raw`: bare keep-alive sockets
(asyncio streams, one connection per request in flight, each request's bytes written by
hand, the answer read as its status line, header lines and `Content-Length` body), the least
any client can do over HTTP/1.1 on this machine.

With `--log-uri URI --log-db DB --log-collection NAME` a burst also keeps a record, as the
delivery service does: one attempt document per request (`attempt_doc()`, the fields of the
service's `delivery_attempts`), handed without waiting to a background writer that
`insert_many`s up to 500 of them at a time, at least every 100 ms. The run is then timed
from the first request to the last document written: "logged/s".

It writes `{"ok", "errors", "error_kinds", "p50_ms", ...}` (request latency as this client
saw it; with a log also `logged`, `logged_s`, `logged_per_s` and `cpu_s`, this process's
CPU over that time) to the result file and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from bench.loadgen import Target, cpu_seconds
from services import __version__
from services.delivery.deliveries.dispatcher import RESPONSE_BODY_LIMIT
from shared.kernel.egress import header_fields
from shared.kernel.ids import derived_id, derived_timed_id, isoformat, utcnow
from shared.kernel.signing import delivery_headers, new_secret, webhook_body

EVENT_TYPE = "message.created"
WORKSPACE = "ws_bench_delivery"  # not the other benchmarks': their provider events would match
# The endpoint the logging loops' attempts are written for (they have no endpoint document).
LOOP_ENDPOINT = "whk_bench_loop"
LOG_BATCH = 500  # attempt documents per insert_many, at most
LOG_INTERVAL = 0.1  # seconds: what is handed to the log is written at least this often
USER_AGENT = f"hookhub/{__version__}"
CHANNELS = 24
_TEXT = (
    "Heads-up: the *api-server* deploy to production is paused while we look at the p99 "
    "latency regression on `/v2/messages` since 14:02 UTC. Rollback plan is in the incident "
    "doc; @bob is on the database side and @carol is checking the CDN. No customer impact "
    "reported yet, status page not updated. Next update in 30 minutes or sooner if anything "
    "moves. :eyes:"
)


def message_data(seq: int, sent_at: float) -> dict[str, Any]:
    """The `data` of a realistic `message.created` event, numbered and timestamped for the sink.

    `bench_seq` and `sent_at` come first: the sink finds them with a regex on the raw body.
    """
    channel = f"ch_{seq % CHANNELS:02d}bench7q3k9m"
    created = datetime(2026, 11, 21, 9, 30, tzinfo=UTC) + timedelta(milliseconds=seq)
    return {
        "bench_seq": seq,
        "sent_at": sent_at,
        "channel_id": channel,
        "message": {
            "id": f"msg_01jd{seq:010d}x4v8r2",
            "channel_id": channel,
            "thread_id": None,
            "author": {
                "id": "usr_01jcz8w3m5q7r9t2v4x6y8",
                "name": "Alice Martin",
                "handle": "alice",
                "avatar_url": "https://cdn.example.com/avatars/usr_01jcz8w3/128.png",
                "bot": False,
            },
            "text": _TEXT,
            "mentions": [
                {"type": "user", "id": "usr_01jcz8x1b2c3d4e5f6g7h8", "handle": "bob"},
                {"type": "user", "id": "usr_01jcz8y9k8j7h6g5f4e3d2", "handle": "carol"},
            ],
            "attachments": [
                {
                    "type": "link",
                    "url": "https://status.example.com/incidents/4417",
                    "title": "Incident 4417: elevated latency on messages API",
                }
            ],
            "created_at": isoformat(created),
            "edited_at": None,
        },
    }


def event_id(run: str, phase: str, seq: int) -> str:
    return f"evt_bench_{run}_{phase}_{seq:07d}"


def webhook_request(
    run: str, phase: str, seq: int, sent_at: float, secret: str, occurred_at: datetime
) -> tuple[bytes, dict[str, str]]:
    """The body and headers the delivery service sends for this event (SPEC §7)."""
    body = webhook_body(EVENT_TYPE, isoformat(occurred_at), message_data(seq, sent_at))
    headers = delivery_headers(
        msg_id=derived_id(event_id(run, phase, seq), prefix="msg"),
        timestamp=int(time.time()),
        body=body,
        secrets=[secret],
        event_type=EVENT_TYPE,
        user_agent=USER_AGENT,
    )
    return body, headers


class Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.late = 0  # paced sends that went out more than 5 ms after their time

    def result(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "ok": len(ordered),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "elapsed_s": round(elapsed, 3),
            "late_sends": self.late,
            "p50_ms": _percentile_ms(ordered, 0.50),
            "p90_ms": _percentile_ms(ordered, 0.90),
            "p99_ms": _percentile_ms(ordered, 0.99),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
        }


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


@dataclass(frozen=True)
class Reply:
    """What an attempt's log keeps of an answer (as the delivery service keeps it)."""

    status: int
    headers: dict[str, str]
    body: str


def _text(body: bytes) -> str:
    return body[:RESPONSE_BODY_LIMIT].decode("utf-8", "replace")


class _HttpxPoster:
    def __init__(self, concurrency: int, timeout: float) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        response = await self._client.post(url, content=body, headers=headers)
        return Reply(
            response.status_code, header_fields(response.headers.items()), _text(response.content)
        )

    async def close(self) -> None:
        await self._client.aclose()


class _AiohttpPoster:
    """The client the delivery service sends with, bare: the comparison for its own overhead."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        async with self._session.post(url, data=body, headers=headers) as response:
            return Reply(
                response.status,
                header_fields(response.headers.items()),
                _text(await response.read()),
            )

    async def close(self) -> None:
        await self._session.close()


class BadResponse(Exception):
    """An answer the raw client does not read: not HTTP/1.x, or not framed by Content-Length."""


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and header fields of a response's head (status line and header lines, up
    to and with the blank line)."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
        raise BadResponse(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    pairs = []
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise BadResponse(f"not a header line: {line[:80]!r}")
        pairs.append((name.strip(), value.strip()))
    return int(code), header_fields(pairs)


async def read_response(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
    """The next response on a connection, and whether the connection stays open after it."""
    status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
    if "transfer-encoding" in headers:
        raise BadResponse("a chunked answer: the raw client reads Content-Length bodies only")
    length_field = headers.get("content-length", "0")
    if not length_field.isdigit():
        raise BadResponse(f"Content-Length {length_field[:40]!r}")
    length = int(length_field)
    body = await reader.readexactly(length) if length else b""
    return Reply(status, headers, _text(body)), headers.get("connection", "").lower() != "close"


class _RawPoster:
    """Bare keep-alive sockets: an asyncio stream per request in flight, kept open between
    requests, the request written as bytes (`bench.loadgen.Target`) and the answer read by
    `read_response`: what is left of a client once everything optional is taken away."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self._timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._open: set[asyncio.StreamWriter] = set()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Reply:
        target = Target(url, body, headers)
        request = target.request_bytes()
        async with asyncio.timeout(self._timeout):
            if self._idle:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection(target.host, target.port)
                self._open.add(writer)
            try:
                writer.write(request)
                reply, keep = await read_response(reader)
            except BaseException:
                self._drop(writer)
                raise
        if keep:
            self._idle.append((reader, writer))
        else:
            self._drop(writer)
        return reply

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        self._open.discard(writer)
        writer.close()

    async def close(self) -> None:
        for writer in list(self._open):
            self._drop(writer)
        self._idle.clear()


_Poster = _HttpxPoster | _AiohttpPoster | _RawPoster
CLIENTS: dict[str, type[_Poster]] = {
    "httpx": _HttpxPoster,
    "aiohttp": _AiohttpPoster,
    "raw": _RawPoster,
}


@contextlib.asynccontextmanager
async def _client(kind: str, concurrency: int, seconds: float) -> AsyncIterator[_Poster]:
    poster = CLIENTS[kind](concurrency, seconds)
    try:
        yield poster
    finally:
        await poster.close()


# -- the attempt log ------------------------------------------------------------------------


def delivery_id(run: str, phase: str, seq: int, endpoint: str = LOOP_ENDPOINT) -> str:
    """The id the delivery service would give this request's delivery (`delivery_doc`)."""
    return derived_timed_id("dlv", utcnow(), event_id(run, phase, seq), endpoint)


def loop_endpoints(endpoints: int) -> list[str]:
    """The endpoint ids a burst's attempts are logged for: LOOP_ENDPOINT for one, else
    `LOOP_ENDPOINT_<i>` for each of `endpoints`."""
    if endpoints == 1:
        return [LOOP_ENDPOINT]
    return [f"{LOOP_ENDPOINT}_{i}" for i in range(endpoints)]


def endpoint_targets(url: str, endpoints: int) -> list[tuple[str, str]]:
    """(URL, endpoint id) of each endpoint a burst sends to: `url` itself for one, else
    `url/<i>` for each of `endpoints`."""
    ids = loop_endpoints(endpoints)
    if endpoints == 1:
        return [(url, ids[0])]
    return [(f"{url}/{i}", endpoint) for i, endpoint in enumerate(ids)]


def attempt_doc(
    delivery: str,
    at: datetime,
    reply: Reply | None,
    duration: float,
    error: str | None,
    endpoint: str = LOOP_ENDPOINT,
) -> dict[str, Any]:
    """A first attempt's document, field for field what the delivery service writes to
    `delivery_attempts` (its dispatcher's `attempt`), `_id` `<delivery id>:<attempt>`."""
    return {
        "_id": f"{delivery}:1",
        "delivery_id": delivery,
        "endpoint_id": endpoint,
        "workspace_id": WORKSPACE,
        "attempt": 1,
        "at": at,
        "status_code": reply.status if reply else None,
        "response_headers": reply.headers if reply else {},
        "response_body": reply.body if reply else "",
        "duration_ms": round(duration * 1000, 2),
        "error": error,
        "next_attempt_at": None,  # a 2xx: no retry
    }


class AttemptWriter:
    """One attempt document per request, handed over without waiting and written in the
    background: `insert_many` of up to LOG_BATCH documents, one batch at a time, at least
    every LOG_INTERVAL s (at once when a batch is full)."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._collection = collection
        self._pending: list[dict[str, Any]] = []
        self._full = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failed = 0
        self.last_written_at = 0.0  # time.perf_counter()

    def add(self, doc: dict[str, Any]) -> None:
        self._pending.append(doc)
        if len(self._pending) >= LOG_BATCH:
            self._full.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="attempt-writer")

    async def close(self) -> None:
        """Returns once everything handed over is written (or failed)."""
        self._closing = True
        self._full.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            if len(self._pending) < LOG_BATCH and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), LOG_INTERVAL)
                self._full.clear()
            docs, self._pending = self._pending[:LOG_BATCH], self._pending[LOG_BATCH:]
            if not docs:
                if self._closing:
                    return
                continue
            try:
                await self._collection.insert_many(docs, ordered=False)
            except PyMongoError as exc:
                print(f"bench.sender: writing attempts: {exc!r}"[:2000], file=sys.stderr)
                self.failed += len(docs)
            else:
                self.written += len(docs)
                self.last_written_at = time.perf_counter()


async def _post(
    client: _Poster,
    url: str,
    body: bytes,
    headers: dict[str, str],
    recorder: Recorder,
    log: tuple[AttemptWriter, str, str] | None = None,
) -> None:
    """One request; with `log` (the writer, the delivery's id, its endpoint's), its attempt
    handed to the log."""
    at = utcnow() if log is not None else None
    started = time.perf_counter()
    reply: Reply | None = None
    error: str | None = None
    try:
        reply = await client.post(url, body, headers)
    except (httpx.TimeoutException, TimeoutError):
        recorder.errors["timeout"] += 1
        error = "timeout"
    except (
        httpx.HTTPError,
        aiohttp.ClientError,
        OSError,
        EOFError,  # asyncio.IncompleteReadError: the connection closed mid-answer
        asyncio.LimitOverrunError,
        BadResponse,
    ) as exc:
        recorder.errors[type(exc).__name__] += 1
        error = f"{type(exc).__name__}: {exc}"[:1000]
    duration = time.perf_counter() - started
    if reply is not None:
        if 200 <= reply.status < 300:
            recorder.latencies.append(duration)
        else:
            recorder.errors[f"http_{reply.status}"] += 1
    if log is not None and at is not None:
        writer, delivery, endpoint = log
        writer.add(attempt_doc(delivery, at, reply, duration, error, endpoint))


@dataclass(frozen=True)
class LogTo:
    """Where a burst's attempt log goes."""

    uri: str
    database: str
    collection: str


async def burst(
    url: str,
    count: int,
    concurrency: int,
    request_timeout: float,
    run: str,
    phase: str,
    kind: str = "httpx",
    log_to: LogTo | None = None,
    endpoints: int = 1,
) -> dict[str, Any]:
    """`count` events, each to `endpoints` endpoints (`endpoint_targets`): the requests are
    built (signed, and their delivery ids made) before the first goes out."""
    targets = [(url, endpoint, new_secret()) for url, endpoint in endpoint_targets(url, endpoints)]
    now = datetime.now(UTC)
    requests = [
        (
            target,
            *webhook_request(run, phase, seq, time.time(), secret, now),
            delivery_id(run, phase, seq, endpoint) if log_to else "",
            endpoint,
        )
        for seq in range(count)
        for target, endpoint, secret in targets
    ]
    recorder = Recorder()
    mongo: AsyncMongoClient[dict[str, Any]] | None = None
    writer: AttemptWriter | None = None
    if log_to is not None:
        mongo = AsyncMongoClient(log_to.uri, tz_aware=True)
        writer = AttemptWriter(mongo[log_to.database][log_to.collection])
        await mongo.admin.command("ping")  # connected before the clock starts
    try:
        async with _client(kind, concurrency, request_timeout) as client:
            pending = iter(requests)

            async def worker() -> None:
                for target, body, headers, delivery, endpoint in pending:
                    log = (writer, delivery, endpoint) if writer is not None else None
                    await _post(client, target, body, headers, recorder, log)

            if writer is not None:
                writer.start()
            started, cpu_started = time.perf_counter(), cpu_seconds()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            result = recorder.result(time.perf_counter() - started)
        if writer is not None:
            await writer.close()
            logged_s = max(writer.last_written_at - started, 0.0)
            result.update(
                logged=writer.written,
                log_failed=writer.failed,
                logged_s=round(logged_s, 3),
                logged_per_s=round(writer.written / logged_s, 1) if logged_s else 0.0,
                cpu_s=round(cpu_seconds() - cpu_started, 3),
            )
            if writer.failed:
                result["errors"] += writer.failed
                result["error_kinds"]["attempt_not_logged"] = writer.failed
        return result
    finally:
        if mongo is not None:
            await mongo.close()


async def paced(
    url: str,
    rate: float,
    seconds: float,
    concurrency: int,
    request_timeout: float,
    run: str,
    phase: str,
) -> dict[str, Any]:
    secret = new_secret()
    recorder = Recorder()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    async with _client("httpx", concurrency, request_timeout) as client:

        async def send(seq: int) -> None:
            try:
                body, headers = webhook_request(
                    run, phase, seq, time.time(), secret, datetime.now(UTC)
                )
                await _post(client, url, body, headers, recorder)
            finally:
                slots.release()

        started = loop.time()
        for seq in range(round(rate * seconds)):
            due = started + seq / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            if loop.time() - due > 0.005:
                recorder.late += 1
            task = asyncio.create_task(send(seq))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks), request_timeout + 1)
        return recorder.result(loop.time() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sender", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--result-file", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--run", default="baseline")
    parser.add_argument("--phase", default="sender")
    parser.add_argument("--count", type=int, help="burst: this many events, as fast as it can")
    parser.add_argument(
        "--endpoints",
        type=int,
        default=1,
        help="burst only: each event to this many endpoints, URL/0 … URL/<K-1> (1: URL)",
    )
    parser.add_argument("--rate", type=float, help="paced: requests per second")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="httpx",
        help="burst only; the baseline's is httpx",
    )
    parser.add_argument("--log-uri", help="burst only: MongoDB to write an attempt log to")
    parser.add_argument("--log-db", default="hookhub_bench")
    parser.add_argument("--log-collection", default="bench_attempts")
    args = parser.parse_args(argv)
    if (args.count is None) == (args.rate is None):
        parser.error("give exactly one of --count and --rate")
    if args.log_uri and args.count is None:
        parser.error("--log-uri goes with --count")
    if args.endpoints < 1 or (args.endpoints > 1 and args.count is None):
        parser.error("--endpoints: at least 1, more only with --count")
    log_to = LogTo(args.log_uri, args.log_db, args.log_collection) if args.log_uri else None
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        runner: Callable[..., Any] = asyncio.run
    else:
        runner = uvloop.run
    if args.count is not None:
        result = runner(
            burst(
                args.url,
                args.count,
                args.concurrency,
                args.timeout,
                args.run,
                args.phase,
                args.client,
                log_to,
                args.endpoints,
            )
        )
    else:
        result = runner(
            paced(
                args.url,
                args.rate,
                args.warmup + args.duration,
                args.concurrency,
                args.timeout,
                args.run,
                args.phase,
            )
        )
    args.result_file.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
