"""Benchmark "discord": Discord Gateway dispatches → `hookhub.chat.inbound` through one sync
process, against a minimal WebSocket-reader → Kafka-producer loop on the same fake.

The set-up, once: `services.sandbox.discord.FakeDiscord` (REST + a real Gateway WebSocket) in a
process of its own (`python -m bench.discord fake --port P`, served by uvicorn as the
services are), with one bot, one guild, 200 text channels and 20 users, and a few control
routes under `/_bench/` (below); a Discord integration with the bot token created through
the oauth service (then stopped); 200 mappings created through sync's API, chat channel
`ch_discord<i>` ↔ Discord channel `<i>`. Sync then holds the bot's one Gateway connection.
Every dispatch is a user's MESSAGE_CREATE made by the fake (`user_sends`: stored, then sent
on the connection, with `member`, as Discord sends it), whose content starts with
`dbench=<phase> seq=<n> sent_at=<unix seconds>`, `sent_at` taken by the fake just before it
makes the message; the harness reads them back from the topic with a regex.

Two tables:

1. **Throughput** (`discord`). The fake sends N MESSAGE_CREATE round robin over the 200
   channels as fast as it can over the one connection (each send waits for the socket, so
   a slow reader slows it: backpressure); an aiokafka consumer in the harness reads
   `hookhub.chat.inbound`. events/s = N / (last envelope read - first dispatch sent).
   Baseline: `python -m bench.discord baseline`, a websockets client on the same fake's
   Gateway (Hello, heartbeats, Identify, READY) that, for each MESSAGE_CREATE, does one
   aiokafka produce (acks=all, keyed by channel) of the dispatch's `d` to a topic of its
   own; nothing else (no mapping lookup, no envelope, no message map), measured the same
   way.
2. **Latency** (`discord-latency`). 200 dispatches/s paced by the fake for `--warmup` +
   `--duration` s over the same channels; latency = envelope read by the harness - `sent_at`,
   after the warm-up. The same for the baseline loop.

Sync is stopped before the baseline starts (they never compete for CPU) and the fake then
forgets the sessions without a connection, so that each dispatch is made once for the one
session that reads it.

Control routes of the fake (JSON): `POST /_bench/send {"phase", "count", "rate", "channels"}`
starts sending (`rate` 0: as fast as possible), `GET /_bench/sent` says how far it is,
`GET /_bench/gateway` the connections and sessions, `POST /_bench/forget` ends the sessions
without a connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import (
    BenchError,
    BenchmarkResult,
    CpuWindow,
    Harness,
    Measurement,
    ratio_note,
)
from bench.sync import TEXT
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.embedded import ChildProcess, free_port
from shared.kernel.envelopes import Topic

WORKSPACE = "ws_bench_discord"
BOT_TOKEN = "MTMwMDAwMDAwMDAwMDAwMDAx.GbenchT.discord-bench-bot-token-0000000000"  # noqa: S105 (the fake's)
BOT_ID = "1300000000000000001"
APP_ID = "1300000000000000002"
GUILD_ID = "1300000000000000003"
CHANNELS = 200
USERS = 20
EVENTS = 10_000  # dispatches of the throughput part
RATE = 200.0  # dispatches per second of the latency part
MAPPINGS_IN_FLIGHT = 8
TARGET_RATIO = 0.7
TARGET_P99_MS = 50.0
_MARK = re.compile(rb"dbench=([\w-]+) seq=(\d+) sent_at=([0-9.]+)")


def discord_channel(index: int) -> str:
    return f"13000000000{index:08d}"


def chat_channel(index: int) -> str:
    return f"ch_discord{index:04d}"


def discord_user(index: int) -> str:
    return f"13100000000{index:08d}"


def content(phase: str, seq: int, sent_at: float) -> str:
    return f"dbench={phase} seq={seq} sent_at={sent_at:.6f} {TEXT}"


# -- the fake, in a process of its own ----------------------------------------------------------


@dataclass
class SendJob:
    phase: str
    count: int
    rate: float
    channels: int
    sent: int = 0
    late: int = 0  # paced dispatches made more than 5 ms after their time
    first_at: float | None = None
    last_at: float | None = None
    done: bool = False
    error: str | None = None

    def report(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "count": self.count,
            "sent": self.sent,
            "late": self.late,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "done": self.done,
            "error": self.error,
        }


@dataclass
class FakeControl:
    """The fake's world and its `/_bench/` routes."""

    fake: Any  # services.sandbox.discord.FakeDiscord (imported in the fake's process only)
    job: SendJob | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def send(self, job: SendJob) -> None:
        # What the earlier phases stored (messages, the sessions' replay buffers) is moved
        # out of the collector's reach: a full collection over it stalled the sends.
        gc.collect()
        gc.freeze()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            for seq in range(job.count):
                if job.rate > 0:
                    due = started + seq / job.rate
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if loop.time() - due > 0.005:
                        job.late += 1
                sent_at = time.time()
                if job.first_at is None:
                    job.first_at = sent_at
                await self.fake.user_sends(
                    discord_channel(seq % job.channels),
                    discord_user(seq % USERS),
                    content(job.phase, seq, sent_at),
                )
                job.sent += 1
                if job.rate <= 0:
                    # Back to the loop after each dispatch, so that it goes out as Discord's
                    # would: a write is flushed when the loop next runs, and a send loop that
                    # never waits had every reader get its first frame only once all 10,000
                    # were made (0.72 s in).
                    await asyncio.sleep(0)
        except Exception as exc:
            job.error = repr(exc)
        finally:
            job.last_at = time.time()
            job.done = True

    def app(self) -> Any:
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def start(request: Request) -> JSONResponse:
            body = await request.json()
            if self.job is not None and not self.job.done:
                return JSONResponse({"error": "a send is running"}, 409)
            job = SendJob(
                str(body["phase"]),
                int(body["count"]),
                float(body.get("rate", 0)),
                int(body.get("channels", CHANNELS)),
            )
            self.job = job
            task = asyncio.create_task(self.send(job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return JSONResponse(job.report(), 202)

        async def sent(request: Request) -> JSONResponse:
            return JSONResponse(self.job.report() if self.job else {})

        async def gateway(request: Request) -> JSONResponse:
            sessions = self.fake.sessions()
            return JSONResponse(
                {
                    "connections": self.fake.connections,
                    "identifies": self.fake.identifies,
                    "resumes": self.fake.resumes,
                    "sessions": sum(1 for s in sessions if s.valid),
                    "connected_sessions": sum(
                        1 for s in sessions if s.valid and s.connection is not None
                    ),
                }
            )

        async def forget(request: Request) -> JSONResponse:
            ended = 0
            for session in self.fake.sessions():
                if session.valid and session.connection is None:
                    session.valid = False
                    session.events.clear()
                    ended += 1
            return JSONResponse({"ended": ended})

        app = self.fake.app()
        app.router.routes[:0] = [
            Route("/_bench/send", start, methods=["POST"]),
            Route("/_bench/sent", sent),
            Route("/_bench/gateway", gateway),
            Route("/_bench/forget", forget, methods=["POST"]),
        ]
        return app


def build_fake() -> Any:
    from services.sandbox.discord import FakeDiscord

    fake = FakeDiscord()  # Discord's heartbeat interval (41.25 s)
    fake.add_bot(BOT_TOKEN, BOT_ID, "hookhub-bench", APP_ID)
    fake.add_guild(GUILD_ID, "hookhub bench")
    for index in range(CHANNELS):
        fake.add_channel(discord_channel(index), GUILD_ID, f"bench-{index:03d}")
    for index in range(USERS):
        fake.add_user(discord_user(index), f"user{index:02d}", global_name=f"Bench User {index}")
    return fake


def serve_fake(port: int) -> int:
    from shared.kernel.http.server import ServiceServer

    fake = build_fake()
    fake.base_url = f"http://127.0.0.1:{port}"
    control = FakeControl(fake)
    server = ServiceServer(ServiceServer.make_config(control.app(), "127.0.0.1", port, 5.0))
    server.run()
    return 0


# -- the baseline loop, in a process of its own ------------------------------------------------


async def baseline_loop(
    gateway_url: str, token: str, bootstrap: str, topic: str, ready: str
) -> None:
    """Identify on the Gateway, heartbeat, and produce each MESSAGE_CREATE's `d` to `topic`."""
    from aiokafka import AIOKafkaProducer
    from websockets.asyncio.client import connect

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, client_id="discord-baseline"
    )
    await producer.start()
    failed: Counter[str] = Counter()

    def settled(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            failed[type(future.exception()).__name__] += 1

    seq: int | None = None
    url = gateway_url.rstrip("/") + "?v=10&encoding=json"
    try:
        async with connect(url, ping_interval=None, compression=None, max_size=8 << 20) as ws:
            hello = orjson.loads(await ws.recv())
            interval = float(hello["d"]["heartbeat_interval"]) / 1000

            async def heartbeats() -> None:
                while True:
                    await asyncio.sleep(interval)
                    await ws.send(orjson.dumps({"op": 1, "d": seq}).decode())

            identify = {
                "op": 2,
                "d": {
                    "token": token,
                    "intents": (1 << 0) | (1 << 9) | (1 << 15),
                    "properties": {"os": "linux", "browser": "bench", "device": "bench"},
                },
            }
            await ws.send(orjson.dumps(identify).decode())
            beating = asyncio.create_task(heartbeats())
            try:
                async for raw in ws:
                    payload = orjson.loads(raw)
                    if payload.get("op") != 0:
                        continue
                    seq = payload["s"]
                    kind, data = payload["t"], payload["d"]
                    if kind == "MESSAGE_CREATE":
                        key = str(data["channel_id"]).encode()
                        future = await producer.send(topic, orjson.dumps(data), key=key)
                        future.add_done_callback(settled)
                    elif kind == "READY":
                        await asyncio.to_thread(Path(ready).write_text, "ready")
            finally:
                beating.cancel()
    finally:
        await producer.stop()
        if failed:
            print(f"discord-baseline: produce failures {dict(failed)}", file=sys.stderr)


def run_baseline(args: argparse.Namespace) -> int:
    import uvloop

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(baseline_loop(args.gateway, args.token, args.bootstrap, args.topic, args.ready))
    return 0


# -- the benchmark ---------------------------------------------------------------------------


@dataclass
class Phase:
    """What one measured send gave: when each dispatch's envelope was read, and how late."""

    label: str
    count: int
    received: dict[int, float]  # seq → read at (time.time())
    latencies: dict[int, float]  # seq → read at - sent_at
    sent: dict[str, Any]
    elapsed: float  # s, the harness's window (CPU sampling)
    cpu_cores: dict[str, float]
    host_cores: dict[str, float]

    def throughput(self) -> Measurement:
        first = self.sent.get("first_at")
        last = max(self.received.values()) if self.received else None
        window = (last - first) if first is not None and last is not None else 0.0
        missing = self.count - len(self.received)
        return Measurement(
            label=self.label,
            rps=round(len(self.received) / window, 1) if window > 0 else 0.0,
            p50_ms=_quantile(self.latencies.values(), 0.50),
            p90_ms=_quantile(self.latencies.values(), 0.90),
            p99_ms=_quantile(self.latencies.values(), 0.99),
            max_ms=_quantile(self.latencies.values(), 1.0),
            ok=len(self.received),
            errors=missing,
            error_kinds={"missing": missing} if missing else {},
            window_s=round(window, 3),
            cpu_cores=self.cpu_cores,
            host_cores=self.host_cores,
        )

    def latency(self, warm: int, rate: float) -> Measurement:
        measured = [seconds for seq, seconds in self.latencies.items() if seq >= warm]
        missing = self.count - len(self.received)
        window = (self.count - warm) / rate
        return Measurement(
            label=self.label,
            rps=round(len(measured) / window, 1) if window else 0.0,
            p50_ms=_quantile(measured, 0.50),
            p90_ms=_quantile(measured, 0.90),
            p99_ms=_quantile(measured, 0.99),
            max_ms=_quantile(measured, 1.0),
            ok=len(measured),
            errors=missing,
            error_kinds={"missing": missing} if missing else {},
            window_s=round(window, 3),
            cpu_cores=self.cpu_cores,
            host_cores=self.host_cores,
        )


def _quantile(values: Iterable[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return round(1000 * ordered[index], 2)


class Discord:
    name = "discord"
    title = "Discord Gateway dispatches → hookhub.chat.inbound"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        options = harness.options
        infrastructure = harness.infrastructure()
        bootstrap = infrastructure.kafka_bootstrap
        inbound = f"{infrastructure.topic_namespace}.{Topic.CHAT_INBOUND}"
        fake_port = free_port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        fake = harness.start_process(
            "discord-fake",
            [sys.executable, "-m", "bench.discord", "fake", "--port", str(fake_port)],
        )
        _wait_http(fake_url + "/healthz", fake)
        env = {"HOOKHUB_DISCORD_API_BASE": fake_url + "/api/v10"}

        oauth = harness.start_service("oauth", env=env)
        integration_id = _create_integration(oauth.url, infrastructure.admin_token)
        oauth.stop()
        sync = harness.start_service("sync", env=env)
        setup_started = time.perf_counter()
        asyncio.run(_create_mappings(sync.url, infrastructure.admin_token, integration_id))
        mappings_in = time.perf_counter() - setup_started
        _wait_connected(fake_url, fake, sync.child)
        pids = {
            "sync": sync.child.process.pid,
            "kafka": infrastructure.broker.process.pid,
            "mongo": infrastructure.mongo.process.pid,
            "discord-fake": fake.process.pid,
            "harness": os.getpid(),
        }
        # One dispatch end to end before anything is timed (and sync's catch-up of the 200
        # channels, which a new session starts, done).
        check = asyncio.run(measure("check", bootstrap, inbound, fake_url, "hookhub sync", 1))
        if not check.received:
            raise BenchError(
                f"a first dispatch did not reach {inbound}; sync log: {sync.child.log_path}"
            )
        time.sleep(2.0)

        # -- ours --------------------------------------------------------------------------
        burst = asyncio.run(
            measure("burst", bootstrap, inbound, fake_url, "hookhub sync", EVENTS, pids=pids)
        )
        warm = round(RATE * options.warmup)
        total = warm + round(RATE * options.duration)
        paced = asyncio.run(
            measure(
                "paced", bootstrap, inbound, fake_url, "hookhub sync", total, rate=RATE, pids=pids
            )
        )
        if not sync.child.alive():
            raise BenchError(f"the sync service exited; its log: {sync.child.log_path}")
        sync.stop()
        _post(fake_url + "/_bench/forget")

        # -- baseline ------------------------------------------------------------------------
        from bench.sync import _topic_like

        base_topic = asyncio.run(_topic_like(bootstrap, inbound, "discord-baseline"))
        ready = harness.root / f"discord-baseline-{time.monotonic_ns()}.ready"
        argv = [sys.executable, "-m", "bench.discord", "baseline", "--gateway"]
        argv += [f"ws://127.0.0.1:{fake_port}/gateway", "--token", BOT_TOKEN]
        argv += ["--bootstrap", bootstrap, "--topic", base_topic, "--ready", str(ready)]
        baseline = harness.start_process("discord-baseline", argv)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if not baseline.alive() or time.monotonic() > deadline:
                raise BenchError(f"the baseline did not start; its log: {baseline.log_path}")
            time.sleep(0.05)
        label = "baseline (websockets → aiokafka loop)"
        base_pids = {**pids, "baseline": baseline.process.pid}
        base_pids.pop("sync")
        check = asyncio.run(measure("base-check", bootstrap, base_topic, fake_url, label, 1))
        if not check.received:
            raise BenchError(f"a first dispatch did not reach {base_topic}: {baseline.log_path}")
        base_burst = asyncio.run(
            measure("base-burst", bootstrap, base_topic, fake_url, label, EVENTS, pids=base_pids)
        )
        base_paced = asyncio.run(
            measure(
                "base-paced",
                bootstrap,
                base_topic,
                fake_url,
                label,
                total,
                rate=RATE,
                pids=base_pids,
            )
        )
        baseline.stop()
        fake.stop()

        ours, base = burst.throughput(), base_burst.throughput()
        lat_ours, lat_base = paced.latency(warm, RATE), base_paced.latency(warm, RATE)
        throughput = BenchmarkResult(
            "discord",
            "Gateway dispatches → envelopes on hookhub.chat.inbound, one sync process",
            ours,
            base,
            notes=[
                f"{EVENTS:,} MESSAGE_CREATE over {CHANNELS} mapped channels and {USERS} users, "
                "sent by the fake as fast as the one Gateway connection takes them; timed from "
                "the first dispatch sent to the last envelope read by an aiokafka consumer in "
                f"the harness (fetch_max_wait_ms {FETCH_MAX_WAIT_MS}); the {CHANNELS} mappings "
                f"were created through the API in {mappings_in:.1f} s",
                f"the fake's sending: hookhub {_sending(burst)}; baseline {_sending(base_burst)}",
                "baseline: python -m bench.discord baseline, a websockets client (Identify, "
                "heartbeats) doing one aiokafka produce (acks=all, linger 0) of each "
                "MESSAGE_CREATE's d, keyed by channel, to a topic of its own",
                ratio_note(ours, base, TARGET_RATIO),
                "CPU per dispatch (process CPU over the window / dispatches): hookhub sync "
                f"{_cpu_ms(burst, 'sync')}, baseline loop {_cpu_ms(base_burst, 'baseline')}, "
                f"the fake {_cpu_ms(burst, 'discord-fake')} (with sync) and "
                f"{_cpu_ms(base_burst, 'discord-fake')} (with the baseline)",
                "the fake (services.sandbox.discord.FakeDiscord on uvicorn) runs in a process of "
                "its own; CPU from the send started to the last envelope read",
            ],
            setup=f"{EVENTS:,} dispatches, first sent → last envelope read",
            unit="events/s",
        )
        latency = BenchmarkResult(
            "discord-latency",
            "dispatch sent → envelope read from hookhub.chat.inbound",
            lat_ours,
            lat_base,
            notes=[
                _target_note(lat_ours),
                f"{RATE:g} dispatches/s paced by the fake over {CHANNELS} channels; sent_at is "
                "time.time() in the fake just before it makes the message, the harness takes "
                "the time it reads the envelope minus it",
                f"paced dispatches more than 5 ms late: hookhub {paced.sent.get('late')}, "
                f"baseline {base_paced.sent.get('late')}",
            ],
            setup=(
                f"{RATE:g} dispatches/s, {options.duration:g} s measured after "
                f"{options.warmup:g} s warm-up"
            ),
            unit="events/s",
            compare="latency",
        )
        return [throughput, latency]


async def measure(
    phase: str,
    bootstrap: str,
    topic: str,
    fake_url: str,
    label: str,
    count: int,
    *,
    rate: float = 0.0,
    pids: dict[str, int] | None = None,
) -> Phase:
    """Has the fake send `count` dispatches (at `rate`, 0: at once) and reads their records
    from `topic` until every one is there (or a timeout)."""
    from bench.sync import _assigned, _consumer

    consumer = _consumer(bootstrap, topic, f"{topic}.dbench-{phase}-{time.monotonic_ns()}")
    await consumer.start()
    received: dict[int, float] = {}
    latencies: dict[int, float] = {}
    wanted = phase.encode()
    try:
        await _assigned(consumer)  # at the end: earlier phases' records are not read at all

        async def read() -> None:
            while len(received) < count:
                batches = await consumer.getmany(timeout_ms=200)
                now = time.time()
                for records in batches.values():
                    for record in records:
                        mark = _MARK.search(record.value)
                        if mark is None or mark.group(1) != wanted:
                            continue
                        seq = int(mark.group(2))
                        if seq not in received:
                            received[seq] = now
                            latencies[seq] = now - float(mark.group(3))

        cpu = CpuWindow(pids or {})
        cpu.open()
        reading = asyncio.ensure_future(read())
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            answer = await client.post(
                fake_url + "/_bench/send",
                json={"phase": phase, "count": count, "rate": rate, "channels": CHANNELS},
            )
            if answer.status_code != 202:
                raise BenchError(f"the fake refused to send: {answer.status_code} {answer.text}")
            timeout = (count / rate if rate else count / 200) + 60
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reading, timeout)
            cpu.close()
            sent: dict[str, Any] = (await client.get(fake_url + "/_bench/sent")).json()
            if sent.get("error"):
                raise BenchError(f"the fake failed sending: {sent['error']}")
    finally:
        await consumer.stop()
    return Phase(
        label=label,
        count=count,
        received=received,
        latencies=latencies,
        sent=sent,
        elapsed=cpu.elapsed,
        cpu_cores=cpu.cpu_cores,
        host_cores=cpu.host_cores,
    )


def _sending(phase: Phase) -> str:
    first, last = phase.sent.get("first_at"), phase.sent.get("last_at")
    if first is None or last is None or last <= first:
        return "-"
    return f"{phase.sent.get('sent', 0):,} in {last - first:.2f} s"


def _cpu_ms(phase: Phase, process: str) -> str:
    cores = phase.cpu_cores.get(process)
    if cores is None or not phase.count:
        return "-"
    return f"{1000 * cores * phase.elapsed / phase.count:.3f} ms"


def _target_note(measurement: Measurement) -> str:
    value = measurement.p99_ms
    if value is None:
        return f"target p99 ≤ {TARGET_P99_MS:g} ms: not measured"
    verdict = "met" if value <= TARGET_P99_MS else "NOT MET"
    return f"target p99 ≤ {TARGET_P99_MS:g} ms at {RATE:g}/s: {value:.1f} ms, {verdict}"


# -- set-up --------------------------------------------------------------------------------------


def _wait_http(url: str, child: ChildProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(f"{child.name} exited; its log: {child.log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout:.0f} s")


def _post(url: str) -> dict[str, Any]:
    answer = httpx.post(url, timeout=10, trust_env=False)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def _wait_connected(fake_url: str, fake: ChildProcess, sync: ChildProcess) -> None:
    """Until sync holds a Gateway session (its mappings are seen and its lease taken)."""
    deadline = time.monotonic() + 90
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not sync.alive() or not fake.alive():
            raise BenchError(f"sync or the fake exited; logs: {sync.log_path}, {fake.log_path}")
        state = httpx.get(fake_url + "/_bench/gateway", timeout=5, trust_env=False).json()
        if state.get("connected_sessions"):
            return
        time.sleep(0.2)
    raise BenchError(f"sync did not connect to the Gateway within 90 s: {state}")


def _create_integration(oauth_url: str, admin_token: str) -> str:
    response = httpx.post(
        oauth_url + "/api/integrations",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={
            "provider": "discord",
            "workspace_id": WORKSPACE,
            "settings": {"bot_token": BOT_TOKEN},
        },
        timeout=30,
        trust_env=False,
    )
    if response.status_code != 201:
        raise BenchError(f"creating the integration: {response.status_code} {response.text}")
    integration_id: str = response.json()["id"]
    return integration_id


async def _create_mappings(sync_url: str, admin_token: str, integration_id: str) -> None:
    gate = asyncio.Semaphore(MAPPINGS_IN_FLIGHT)
    headers = {"Authorization": f"Bearer {admin_token}"}
    path = f"/api/integrations/{integration_id}/mappings"
    async with httpx.AsyncClient(base_url=sync_url, timeout=30, trust_env=False) as client:

        async def create(index: int) -> None:
            body = {
                "external_channel_id": discord_channel(index),
                "channel_id": chat_channel(index),
            }
            for _ in range(30):
                async with gate:
                    answer = await client.post(path, json=body, headers=headers)
                if answer.status_code != 429:
                    break
                # Each mapping reads the guild's roles: Discord's limit of that route is
                # met creating 200, as a user creating them would meet it.
                await asyncio.sleep(float(answer.headers.get("Retry-After") or 1))
            if answer.status_code != 201:
                raise BenchError(f"creating mapping {index}: {answer.status_code} {answer.text}")

        await asyncio.gather(*(create(index) for index in range(CHANNELS)))


BENCHMARK = Discord()


# -- the processes ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.discord", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fake = commands.add_parser("fake", help="serve the fake Discord with its /_bench/ routes")
    fake.add_argument("--port", type=int, required=True)
    base = commands.add_parser("baseline", help="the websockets → aiokafka loop")
    base.add_argument("--gateway", required=True, help="ws://host:port/gateway")
    base.add_argument("--token", required=True)
    base.add_argument("--bootstrap", required=True)
    base.add_argument("--topic", required=True)
    base.add_argument("--ready", required=True, help="a file written once READY arrived")
    args = parser.parse_args(argv)
    if args.command == "fake":
        return serve_fake(args.port)
    return run_baseline(args)


if __name__ == "__main__":
    sys.exit(main())
