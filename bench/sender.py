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

It writes `{"ok", "errors", "error_kinds", "p50_ms", ...}` (request latency as this client
saw it) to the result file and exits.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from services import __version__
from shared.ids import derived_id, isoformat
from shared.signing import delivery_headers, new_secret, webhook_body

EVENT_TYPE = "message.created"
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


class _HttpxPoster:
    def __init__(self, concurrency: int, timeout: float) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        return (await self._client.post(url, content=body, headers=headers)).status_code

    async def close(self) -> None:
        await self._client.aclose()


class _AiohttpPoster:
    """The client the delivery service sends with, bare: the comparison for its own overhead."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        async with self._session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    async def close(self) -> None:
        await self._session.close()


_Poster = _HttpxPoster | _AiohttpPoster
CLIENTS: dict[str, type[_Poster]] = {"httpx": _HttpxPoster, "aiohttp": _AiohttpPoster}


@contextlib.asynccontextmanager
async def _client(kind: str, concurrency: int, seconds: float) -> AsyncIterator[_Poster]:
    poster = CLIENTS[kind](concurrency, seconds)
    try:
        yield poster
    finally:
        await poster.close()


async def _post(
    client: _Poster, url: str, body: bytes, headers: dict[str, str], recorder: Recorder
) -> None:
    started = time.perf_counter()
    try:
        status = await client.post(url, body, headers)
    except (httpx.TimeoutException, TimeoutError):
        recorder.errors["timeout"] += 1
        return
    except (httpx.HTTPError, aiohttp.ClientError) as exc:
        recorder.errors[type(exc).__name__] += 1
        return
    if 200 <= status < 300:
        recorder.latencies.append(time.perf_counter() - started)
    else:
        recorder.errors[f"http_{status}"] += 1


async def burst(
    url: str,
    count: int,
    concurrency: int,
    request_timeout: float,
    run: str,
    phase: str,
    kind: str = "httpx",
) -> dict[str, Any]:
    secret = new_secret()
    now = datetime.now(UTC)
    requests = [webhook_request(run, phase, seq, time.time(), secret, now) for seq in range(count)]
    recorder = Recorder()
    async with _client(kind, concurrency, request_timeout) as client:
        pending = iter(requests)

        async def worker() -> None:
            for body, headers in pending:
                await _post(client, url, body, headers, recorder)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return recorder.result(time.perf_counter() - started)


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
    parser.add_argument("--count", type=int, help="burst: this many requests, as fast as it can")
    parser.add_argument("--rate", type=float, help="paced: requests per second")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="httpx",
        help="burst only; the baseline's is httpx",
    )
    args = parser.parse_args(argv)
    if (args.count is None) == (args.rate is None):
        parser.error("give exactly one of --count and --rate")
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
