"""`destinations` (listen): the round trip of `hookhub listen` at RATE deliveries a second,
beside a bare WebSocket echo of the same frames, in the same run (SPEC §21, issue #63).

hookhub: a delivery process, one listening endpoint made with `POST /api/listen/endpoints`,
and `hookhub listen` in a process of its own, forwarding each delivery to a local server
(bench.sink, a third process) that answers 200, as on a developer's machine. RATE chat
events a second are published (acks=all) for the run's warm-up, then for its duration; the
round trip of each measured one is its attempt's `duration_ms` in the attempt log: from
the delivery's frame handed to the socket to its answer taken off it, the listener's POST
to the local URL included. The baseline: a bare `websockets` server sending the same
frames (one of hookhub's, its id changed) at the same rate to a bare `websockets` client
that answers each at once, timed from the send to the answer.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets.asyncio.client
import websockets.asyncio.server

from bench.delivery import publish_paced, start_sink
from bench.harness import BenchError, BenchmarkResult, Harness, Measurement
from services.delivery.deliveries.repository import DELIVERIES, FIRST_ATTEMPT
from services.delivery.listen import protocol
from shared.kernel.embedded import free_port
from shared.kernel.envelopes import Topic

RATE = 100.0
_LOCAL_MS = re.compile(r"→ 200  (\d+) ms$", re.M)
TARGET_P99_MS = 20.0
WORKSPACE = "ws_bench_listen"  # its own: no other benchmark's endpoint takes its events
PHASE = "listen"


def listen_round_trip(harness: Harness) -> BenchmarkResult:
    options = harness.options
    warm, total = int(RATE * options.warmup), int(RATE * options.duration)
    delivery = harness.start_service("delivery", name="delivery-listen")
    try:
        ours, frame, local_ms = asyncio.run(_ours(harness, delivery.url, warm, total))
    finally:
        delivery.stop()
    local_ms.sort()
    base = asyncio.run(_echo(frame, warm, total))
    verdict = "met" if ours.p99_ms is not None and ours.p99_ms <= TARGET_P99_MS else "NOT MET"
    return BenchmarkResult(
        "destinations-listen",
        f"`hookhub listen` round trip at {RATE:g} deliveries/s",
        ours,
        base,
        notes=[
            f"target: p99 ≤ {TARGET_P99_MS:g} ms ({_ms(ours.p99_ms)} ms, {verdict})",
            "hookhub: each attempt's duration_ms (the frame handed to the socket → its answer "
            "taken off it), through `hookhub listen` in a process of its own forwarding to a "
            "local server in another (bench.sink); baseline: a bare websockets server → "
            "client echo of the same frames, send → answer",
            f"of which the local server's answer, by the listener's lines: p50 "
            f"{_ms(_at(local_ms, 0.5))} ms, p99 {_ms(_at(local_ms, 0.99))} ms (whole ms)",
            f"{total:,} message.created events measured after {warm:,} of warm-up, "
            f"{len(frame):,}-byte delivery frames; straight to the delivery process (no edge)",
        ],
        setup=f"{RATE:g} events/s, {options.duration:g} s measured after {options.warmup:g} s",
        unit="deliveries/s",
        compare="latency",
    )


async def _ours(
    harness: Harness, delivery_url: str, warm: int, total: int
) -> tuple[Measurement, str, list[float]]:
    infrastructure = harness.infrastructure()
    run = harness.run_id + "l"
    async with httpx.AsyncClient(timeout=10) as client:
        made = await client.post(
            delivery_url + "/api/listen/endpoints",
            headers={"Authorization": f"Bearer {infrastructure.admin_token}"},
            json={"workspace_id": WORKSPACE, "events": ["message.created"], "name": run},
        )
    if made.status_code != 201:
        raise BenchError(f"making the listening endpoint: {made.status_code} {made.text}")
    endpoint_id = made.json()["id"]
    # The developer's machine, as it runs them: the local server and `hookhub listen`,
    # each a process of its own.
    local = start_sink(harness, name="listen-local")
    argv = [sys.executable, "-m", "services.cli", "listen", "--endpoint", endpoint_id]
    argv += ["--forward-to", local.url + "/hooks", "--url", delivery_url]
    listener = harness.start_process(
        "listen", argv, env={"HOOKHUB_API_KEY": infrastructure.admin_token}
    )
    try:
        deadline = time.monotonic() + 30
        while "Ready:" not in _text(listener.log_path):
            if not listener.alive() or time.monotonic() > deadline:
                raise BenchError(f"the listener did not connect; see {listener.log_path}")
            await asyncio.sleep(0.05)
        topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_EVENTS}"
        bootstrap = infrastructure.kafka_bootstrap
        await publish_paced(bootstrap, topic, run, "warm", RATE, warm, WORKSPACE)
        started = time.monotonic()
        late = await publish_paced(bootstrap, topic, run, PHASE, RATE, total, WORKSPACE)
        window = time.monotonic() - started
        durations, frame = await _logged(infrastructure, endpoint_id, run, warm + total)
    finally:
        listener.stop()
        local.child.stop()
    ours = _measured(
        "hookhub listen (delivery → socket → local URL → answer)", durations, window, total
    )
    if late:
        ours.error_kinds["published late (>5 ms)"] = late
    # What the listener's lines say the local URL took (whole ms), the measured ones last.
    local_ms = [float(ms) for ms in _LOCAL_MS.findall(_text(listener.log_path))][-total:]
    return ours, frame, local_ms


def _text(path: Path | None) -> str:
    return path.read_text(errors="replace") if path is not None and path.exists() else ""


async def _logged(
    infrastructure: Any, endpoint_id: str, run: str, count: int
) -> tuple[list[float], str]:
    """Once the endpoint's `count` deliveries are completed: the measured ones' first
    attempt's duration_ms, and one delivery frame as the socket carried it."""
    query = {"endpoint_id": endpoint_id, "status": "completed"}
    deadline = time.monotonic() + 120
    with infrastructure.database() as db:
        while db[DELIVERIES].count_documents(query) < count:
            if time.monotonic() > deadline:
                done = db[DELIVERIES].count_documents(query)
                raise BenchError(f"{done} of {count} listen deliveries completed in 120 s")
            await asyncio.sleep(0.2)
        measured = {**query, "event_id": {"$regex": f"_{run}_{PHASE}_"}}
        docs = list(db[DELIVERIES].find(measured, {FIRST_ATTEMPT: 1, "body": 1, "msg_id": 1}))
    durations = [float(doc[FIRST_ATTEMPT]["duration_ms"]) for doc in docs]
    sample = docs[0]
    headers = dict(sample[FIRST_ATTEMPT]["request"]["headers"])
    frame = orjson.dumps(
        {
            "type": "delivery",
            "id": uuid.uuid4().hex,
            "msg_id": sample["msg_id"],
            "event_type": "message.created",
            "event_id": "evt",
            "headers": {**headers, "content-type": "application/json"},
            "body": bytes(sample["body"]).decode(),
            "timeout_seconds": 30.0,
        }
    ).decode()
    return durations, frame


async def _echo(frame: str, warm: int, total: int) -> Measurement:
    """The same frames at the same rate, over a bare socket answered at once."""
    template = orjson.loads(frame)
    sent: dict[str, float] = {}
    round_trips: list[float] = []
    done = asyncio.Event()
    measured_from: list[float] = []  # when the first measured frame went

    async def server(socket: Any) -> None:
        async def answers() -> None:
            async for text in socket:
                answered = orjson.loads(text)
                at = sent.pop(answered["id"])
                if answered["id"].startswith("m"):
                    round_trips.append((time.perf_counter() - at) * 1000)
                if len(round_trips) == total:
                    done.set()

        reading = asyncio.create_task(answers())
        loop = asyncio.get_running_loop()
        started = loop.time()
        for seq in range(warm + total):
            delay = started + seq / RATE - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if seq == warm:
                measured_from.append(time.monotonic())
            frame_id = f"{'w' if seq < warm else 'm'}{seq}"
            text = orjson.dumps({**template, "id": frame_id}).decode()
            sent[frame_id] = time.perf_counter()
            await socket.send(text)
        await done.wait()
        reading.cancel()

    async def client(url: str) -> None:
        async with websockets.asyncio.client.connect(url) as socket:
            async for text in socket:
                await socket.send(protocol.answer(orjson.loads(text)["id"], 200, {}, "ok"))

    port = free_port()
    async with websockets.asyncio.server.serve(server, "127.0.0.1", port):
        echo = asyncio.create_task(client(f"ws://127.0.0.1:{port}"))
        await asyncio.wait_for(done.wait(), (warm + total) / RATE + 60)
        window = time.monotonic() - measured_from[0]
        echo.cancel()
    return _measured("bare websockets echo of the same frames", round_trips, window, total)


def _measured(label: str, round_trips: list[float], window: float, total: int) -> Measurement:
    """`round_trips` (ms) of `total` expected, over `window` seconds, as a table's row."""
    ordered = sorted(round_trips)
    return Measurement(
        label,
        len(ordered) / window,
        _at(ordered, 0.50),
        _at(ordered, 0.90),
        _at(ordered, 0.99),
        ordered[-1] if ordered else None,
        len(ordered),
        total - len(ordered),
        {},
        window,
        {},
    )


def _at(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
