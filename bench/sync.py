"""Benchmark "sync": chat messages posted to Slack through one sync process, and Slack
messages brought back to the chat, against minimal loops doing the same on the same machine.

The set-up, once: `bench.slack_standin` on loopback (a raw asyncio HTTP/1.1 server in its own
process answering `chat.postMessage`, `auth.test`, `bots.info`, `conversations.info` and
`users.info` the way Slack does, and noting when each post arrived); a Slack integration
with a bot token created through the oauth service (which calls `auth.test` and `bots.info`
on the stand-in; it is then stopped); 1,000 channel mappings created through sync's API
(each checked with `conversations.info`), chat channel `ch_sync<i>` ↔ Slack `C0BENCH<i>`.
Every chat event is a `message.created` (`shared.kernel.envelopes.ChatEvent`, keyed by channel,
`data = {message_id, channel_id, text}`, `actor = {id, name, avatar_url}`) whose text
starts with `bench_seq=<n> sent_at=<unix seconds>`, which the stand-in reads.

Three tables:

1. **Throughput** (`sync`). Sync stopped, 10,000 events are published to
   `<namespace>.hookhub.chat.events` (10 per channel, 1,000 channels), then one sync process
   is started on the backlog with `HOOKHUB_SYNC_PACE_FACTOR=0` (Slack's ~1 post/s per channel
   pacing off: the issue's "no rate limiting"). Timed by the stand-in, first post to the one
   completing the 10,000; then the harness waits until the message map holds every copy and
   the outbox every job as done, and says how long after the last post that was.
   Baseline: `bench.sync_baseline`, a minimal aiokafka consumer → httpx `chat.postMessage`
   loop (per batch, each channel's posts in order, all channels at once, 200 connections as
   sync has), on the same 10,000 events (a topic of its own), timed the same way. A note
   gives the same loop on aiohttp, for what the HTTP client alone accounts for.
2. **Outbound latency** (`sync-latency`). A sync process with the default pacing gets 100
   events/s, round robin over 200 channels (0.5 a second per channel, under the pace), for
   `--warmup` + at least 60 s (`--duration` if longer: see OUT_LATENCY_SECONDS); `sent_at`
   is taken just before the producer's send (acks=all), the stand-in takes receive time
   minus it. Baseline: the same loop, the same paced events.
3. **Inbound latency** (`sync-inbound`). Signed (v0) Slack `event_callback` `message` events
   POSTed to the gateway's `/api/webhooks/slack/<integration>` at 200/s over the same 200
   channels (20 users, looked up once with `users.info` and cached by sync) → gateway →
   `hookhub.provider.events` → sync → `message.received` on `hookhub.chat.inbound`, read by an
   aiokafka consumer in the harness. Latency: arrival there minus `sent_at` (taken as the
   request is built). Baseline: Kafka alone over the same two hops (publish → a relay
   consumer that publishes each record again → consumer), same rate, same fetch settings.

Service processes are stopped before each baseline runs, so they never compete for CPU.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import orjson

from bench.delivery import Sink, Window, publish_all, start_sink
from bench.harness import (
    BenchError,
    BenchmarkResult,
    CpuWindow,
    Harness,
    Infrastructure,
    Measurement,
    create_each,
    create_integration,
    ratio_note,
)
from shared.domain.message_map import COLLECTION as MAP
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.ids import utcnow

WORKSPACE = "ws_bench_sync"
CHANNELS = 1_000
EVENTS = 10_000  # pre-published for the throughput part
LATENCY_CHANNELS = 200
OUT_RATE = 100.0
IN_RATE = 200.0
USERS = 20
MAPPINGS_IN_FLIGHT = 8
MAP_WAIT = 180.0  # s after the last post for the map and the outbox to hold every message
TARGET_RATIO = 0.7
TARGET_OUT_P50_MS = 30.0
TARGET_OUT_P99_MS = 150.0
TARGET_IN_P99_MS = 100.0
# The outbound latency is measured for at least a minute: MongoDB's TTL monitor runs every
# 60 s, and the embedded server's holds its storage lock while it decodes every document of
# each TTL-indexed collection (~250 ms with the throughput part's 10,000 finished jobs),
# which stalls every write, the outbox's too. A 10 s window holds that pass 1 time in 6, or,
# with this benchmark's fixed timing, every time; a minute holds it as often as a day does.
OUT_LATENCY_SECONDS = 60.0
# A hand-installed app's bot token, new each run (the stand-in takes any).
BOT_TOKEN = "xoxb-" + secrets.token_hex(12)
OUTBOX = "sync_outbox"  # services.sync.outbound.repository.OUTBOX
ACTOR = {
    "id": "usr_01jcz8w3m5q7r9t2v4x6y8",
    "name": "Alice Martin",
    "avatar_url": "https://cdn.example.com/avatars/usr_01jcz8w3/128.png",
}
# The text of every benchmark message: a realistic length for a chat post.
TEXT = (
    "Heads-up: the api-server deploy to production is paused while we look at the p99 "
    "latency regression on /v2/messages since 14:02 UTC. Rollback plan is in the incident "
    "doc; Bob is on the database side and Carol is checking the CDN. Next update in 30 min."
)
_MARK = re.compile(rb"bench_seq=(\d+) sent_at=([0-9.]+)")


# -- the events ------------------------------------------------------------------------------


def chat_channel(index: int) -> str:
    return f"ch_sync{index:04d}"


def slack_channel(index: int) -> str:
    return f"C0BENCH{index:04d}"


def slack_of(chat_channel_id: str) -> str:
    """The Slack channel a chat channel is mapped to (what the baseline does for a lookup)."""
    return "C0BENCH" + chat_channel_id.removeprefix("ch_sync")


def message_text(seq: int, sent_at: float) -> str:
    """The stand-in and the inbound reader find `bench_seq` and `sent_at` with a regex."""
    return f"bench_seq={seq} sent_at={sent_at:.6f} {TEXT}"


def chat_event(run: str, phase: str, seq: int, channels: int, sent_at: float) -> ChatEvent:
    return message_created(
        f"{run}_{phase}_{seq:07d}",
        WORKSPACE,
        chat_channel(seq % channels),
        message_text(seq, sent_at),
    )


def message_created(name: str, workspace_id: str, channel_id: str, text: str) -> ChatEvent:
    """Alice's message in a chat channel, as the chat product announces it: the event
    `evt_bench_<name>`, the message `msg_<name>`."""
    return ChatEvent(
        id=f"evt_bench_{name}",
        type="message.created",
        workspace_id=workspace_id,
        occurred_at=utcnow(),
        actor=ACTOR,
        data={"message_id": f"msg_{name}", "channel_id": channel_id, "text": text},
    )


class Sync:
    name = "sync"
    title = "Slack sync, chat → Slack and Slack → chat"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        options = harness.options
        infrastructure = harness.infrastructure()
        bootstrap = infrastructure.kafka_bootstrap
        run = harness.run_id
        topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_EVENTS}"
        standin = start_standin(harness)
        api = standin.url + "/api"
        env = {"HOOKHUB_SLACK_API_BASE": api}
        unpaced = {**env, "HOOKHUB_SYNC_PACE_FACTOR": "0"}

        oauth = harness.start_service("oauth", env=env)
        integration_id = create_integration(
            oauth.url,
            infrastructure.admin_token,
            "slack",
            WORKSPACE,
            {"bot_token": BOT_TOKEN, "signing_secret": _signing_secret()},
        )
        oauth.stop()
        sync = harness.start_service("sync", env=unpaced)
        setup_started = time.perf_counter()
        asyncio.run(_create_mappings(sync.url, infrastructure.admin_token, integration_id))
        mappings_in = time.perf_counter() - setup_started
        # One message end to end before anything is timed: the path works.
        standin.reset(expect=1)
        check = [chat_event(run, "check", 0, CHANNELS, time.time())]
        asyncio.run(publish_all(bootstrap, topic, check))
        if not standin.wait_until("complete", time.monotonic() + 60, sync.child.alive):
            raise BenchError(f"a first message did not reach the Slack stand-in: {standin.stats()}")
        sync.stop()

        # -- 1. throughput, ours: a backlog, one sync process started on it -----------------
        events = [chat_event(run, "burst", seq, CHANNELS, time.time()) for seq in range(EVENTS)]
        published_in = asyncio.run(publish_all(bootstrap, topic, events))
        standin.reset(expect=EVENTS)
        sync = harness.start_service("sync", env=unpaced, wait=False)
        window = Window.around(
            standin, sync, infrastructure, timeout=max(180.0, EVENTS / 50), sink_name="slack"
        )
        window.start()
        window.join()
        if not sync.child.alive():
            raise BenchError(f"the sync service exited; its log: {sync.child.log_path}")
        written = wait_written(infrastructure, EVENTS + 1, since=window.completed_at)
        ours = window.measurement("hookhub sync", from_seq=0)
        if written.missing:
            ours.errors += written.missing
            ours.error_kinds["not_in_map_or_outbox"] = written.missing
        harness.wait_ready(sync)
        sync.stop()

        # -- baseline throughput: the consumer → post loop on the same events ---------------
        base_topic = asyncio.run(_topic_like(bootstrap, topic, "baseline-burst"))
        asyncio.run(publish_all(bootstrap, base_topic, events))
        standin.reset(expect=EVENTS)
        base, _ = self.baseline(harness, standin, base_topic, api, EVENTS, from_seq=0)
        # Not the baseline (sync posts with httpx): the same loop on aiohttp, for what the
        # client alone accounts for.
        base_topic = asyncio.run(_topic_like(bootstrap, topic, "baseline-burst-aiohttp"))
        asyncio.run(publish_all(bootstrap, base_topic, events))
        standin.reset(expect=EVENTS)
        bare, _ = self.baseline(
            harness, standin, base_topic, api, EVENTS, from_seq=0, client="aiohttp"
        )
        # The floor (#61's second baseline): the loop keeping a message map, what a correct
        # sync cannot skip.
        floor_topic = asyncio.run(_topic_like(bootstrap, topic, "floor-burst"))
        asyncio.run(publish_all(bootstrap, floor_topic, events))
        standin.reset(expect=EVENTS)
        floor, _ = self.baseline(harness, standin, floor_topic, api, EVENTS, from_seq=0, floor=True)

        # -- 2. outbound latency, pacing on (the default) ------------------------------------
        sync = harness.start_service("sync", env=env)
        out_seconds = max(options.duration, OUT_LATENCY_SECONDS)
        warm = round(OUT_RATE * options.warmup)
        total = warm + round(OUT_RATE * out_seconds)
        standin.reset(expect=total, open_after=warm + 1)
        window = Window.around(
            standin,
            sync,
            infrastructure,
            timeout=options.warmup + out_seconds + 60,
            sink_name="slack",
            publisher=os.getpid(),
        )
        window.start()
        late = asyncio.run(
            publish_paced(bootstrap, topic, run, "latency", OUT_RATE, total, LATENCY_CHANNELS)
        )
        window.join()
        out_ours = window.measurement("hookhub sync", from_seq=warm, latency=True)

        # -- 3. inbound latency: gateway + sync ---------------------------------------------
        gateway = harness.start_service("gateway")
        inbound_topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_INBOUND}"
        url = f"{gateway.url}/api/webhooks/slack/{integration_id}"
        in_warm = round(IN_RATE * options.warmup)
        in_total = in_warm + round(IN_RATE * options.duration)
        asyncio.run(inbound_check(bootstrap, inbound_topic, url, run))
        pids = {
            "gateway": gateway.child.process.pid,
            "sync": sync.child.process.pid,
            **infrastructure.pids(),
            "slack": standin.child.process.pid,
        }
        with CpuWindow(pids) as cpu:
            in_ours, gateway_note = asyncio.run(
                inbound_latency(bootstrap, inbound_topic, url, run, in_total, in_warm)
            )
        cpu.apply(in_ours)
        gateway.stop()
        sync.stop()

        # -- baselines of the latencies -----------------------------------------------------
        base_topic = asyncio.run(_topic_like(bootstrap, topic, "baseline-latency"))
        standin.reset(expect=total, open_after=warm + 1)
        out_base, base_late = self.baseline(
            harness,
            standin,
            base_topic,
            api,
            total,
            from_seq=warm,
            paced=(run, OUT_RATE, LATENCY_CHANNELS),
        )
        in_floor = asyncio.run(kafka_two_hops(bootstrap, inbound_topic, run, in_total, in_warm))
        standin.child.stop()

        throughput = BenchmarkResult(
            "sync",
            "chat messages posted to Slack by one sync process",
            ours,
            base,
            notes=[
                f"{EVENTS:,} message.created events over {CHANNELS:,} mapped channels, "
                f"published in {published_in:.2f} s before the sync process was started; "
                f"HOOKHUB_SYNC_PACE_FACTOR=0 (no per-channel pacing); the {CHANNELS:,} "
                f"mappings were created through the API in {mappings_in:.1f} s",
                written.summary(ours.window_s),
                "baseline: bench.sync_baseline, aiokafka getmany (500 records) → per batch, "
                "each channel's posts in order, all channels at once on sync's HTTP client "
                "(httpx on aiohttp's pool) with 200 connections → commit",
                ratio_note(ours, base, TARGET_RATIO),
                floor_note(ours, floor, base),
                f"for comparison, the same loop on aiohttp: {bare.rps:,.0f} posts/s "
                f"({bare.cpu_cores.get('baseline', 0):.2f} cores; the httpx loop "
                f"{base.cpu_cores.get('baseline', 0):.2f}); hookhub posts at "
                f"{ours.rps / bare.rps if bare.rps else 0:.2f} of it"
                + (f", {bare.errors} errors" if bare.errors else ""),
            ],
            setup=f"{EVENTS:,} pre-published events, first → last post at the Slack stand-in",
            unit="posts/s",
            minimal=floor,
        )
        outbound = BenchmarkResult(
            "sync-latency",
            "outbound latency, published → chat.postMessage received",
            out_ours,
            out_base,
            notes=[
                _targets(out_ours, TARGET_OUT_P50_MS, TARGET_OUT_P99_MS),
                f"{OUT_RATE:g} events/s round robin over {LATENCY_CHANNELS} channels "
                f"({OUT_RATE / LATENCY_CHANNELS:g}/s per channel), sync with its default "
                "pacing (Slack's ~1 post/s per channel); sent_at is time.time() before the "
                "producer's send (acks=all), the stand-in takes its receive time minus it",
                f"paced sends more than 5 ms late: hookhub {late}, baseline {base_late}",
                f"max: hookhub {out_ours.max_ms or 0:.0f} ms, baseline "
                f"{out_base.max_ms or 0:.0f} ms; measured for {out_seconds:g} s, at least "
                "one pass of the embedded MongoDB's TTL monitor (every 60 s; it stalls "
                "every write for ~250 ms here, see OUT_LATENCY_SECONDS)",
            ],
            setup=(
                f"{OUT_RATE:g} events/s, {out_seconds:g} s measured after "
                f"{options.warmup:g} s warm-up"
            ),
            unit="posts/s",
            compare="latency",
        )
        inbound = BenchmarkResult(
            "sync-inbound",
            "inbound latency, signed Slack event sent → hookhub.chat.inbound",
            in_ours,
            in_floor,
            notes=[
                _targets(in_ours, None, TARGET_IN_P99_MS),
                f"{IN_RATE:g} signed event_callback message events/s to the gateway over "
                f"{LATENCY_CHANNELS} channels and {USERS} users; measured by an aiokafka "
                f"consumer (fetch_max_wait_ms {FETCH_MAX_WAIT_MS}) in the harness process",
                gateway_note,
                "CPU: from the first event sent to the last received, warm-up included; the "
                "harness sends the events and reads the topic",
                "baseline: Kafka alone over the same two hops (publish acks=all → relay "
                "consumer → publish acks=all → consumer), same rate and fetch settings; no "
                "HTTP, no verification, no lookups",
            ],
            setup=(
                f"{IN_RATE:g} events/s, {options.duration:g} s measured after "
                f"{options.warmup:g} s warm-up"
            ),
            unit="messages/s",
            compare="latency",
        )
        return [throughput, outbound, inbound]

    def baseline(
        self,
        harness: Harness,
        standin: Sink,
        topic: str,
        api: str,
        count: int,
        from_seq: int,
        paced: tuple[str, float, int] | None = None,
        client: str = "httpx",
        network: str = "slack",
        token: str = BOT_TOKEN,
        sink_name: str = "slack",
        infrastructure: Infrastructure | None = None,
        floor: bool = False,
    ) -> tuple[Measurement, int]:
        """Runs bench.sync_baseline on `topic` until it posted `count`; with `paced`, the
        events are published at that rate once it has its partitions; on `infrastructure`,
        else the run's. `floor`: as the minimal correct sync, keeping a message map in the
        infrastructure's MongoDB server (a database of its own)."""
        infrastructure = infrastructure or harness.infrastructure()
        stamp = time.monotonic_ns()
        result_file = harness.root / f"sync-baseline-{stamp}.json"
        ready_file = harness.root / f"sync-baseline-{stamp}.ready"
        argv = [sys.executable, "-m", "bench.sync_baseline", "--bootstrap"]
        argv += [infrastructure.kafka_bootstrap, "--topic", topic, "--api", api]
        argv += ["--network", network, "--token", token, "--count", str(count)]
        argv += ["--result-file", str(result_file), "--ready-file", str(ready_file)]
        argv += ["--client", client]
        if floor:
            argv += ["--mongo", infrastructure.mongo_uri]
            argv += ["--database", f"{infrastructure.mongo_db}_floor"]
        baseline = harness.start_process("sync-floor" if floor else "sync-baseline", argv)
        late = 0
        if paced is not None:
            deadline = time.monotonic() + 60
            while not ready_file.exists():
                if not baseline.alive() or time.monotonic() > deadline:
                    raise BenchError(f"the baseline did not start; its log: {baseline.log_path}")
                time.sleep(0.05)
        watched = {
            "baseline": baseline.process.pid,
            "kafka": infrastructure.broker.process.pid,
            sink_name: standin.child.process.pid,
        }
        if floor:
            watched["mongo"] = infrastructure.mongo.process.pid
        if paced is not None:
            watched["publisher"] = os.getpid()
        window = Window(
            standin,
            watched,
            timeout=max(180.0, count / 50),
            alive=baseline.alive,
        )
        window.start()
        if paced is not None:
            run, rate, channels = paced
            late = asyncio.run(
                publish_paced(
                    infrastructure.kafka_bootstrap, topic, run, "base", rate, count, channels
                )
            )
        window.join()
        try:
            baseline.process.wait(60)
        except Exception as exc:
            raise BenchError(f"the baseline did not finish: {exc!r}") from exc
        if not result_file.exists():
            raise BenchError(f"the baseline left no result; its log: {baseline.log_path}")
        result: dict[str, Any] = json.loads(result_file.read_text())
        label = f"{'floor' if floor else 'baseline'} (aiokafka → {client} loop)"
        if floor:
            label += " + message map"
        measurement = window.measurement(label, from_seq=from_seq, latency=paced is not None)
        measurement.errors += result["errors"]
        measurement.error_kinds.update(result["error_kinds"])
        return measurement, late


def floor_note(ours: Measurement, floor: Measurement, base: Measurement) -> str:
    """What the floor (`bench.sync_baseline --mongo`) says beside ours and the baseline."""
    of_base = floor.rps / base.rps if base.rps else 0.0
    return (
        f"floor: the same loop keeping a message map (one map query, one insert_many of the "
        f"batch's copies before the commit), {floor.rps:,.0f} posts/s = {of_base:.2f} of the "
        f"baseline; hookhub posts at {ours.rps / floor.rps if floor.rps else 0:.2f} of the floor"
        + (f", {floor.errors} errors" if floor.errors else "")
    )


# -- set-up ----------------------------------------------------------------------------------


def start_standin(harness: Harness) -> Sink:
    return start_sink(harness, "bench.slack_standin", "slack-standin")


def _signing_secret() -> str:
    return "bench-signing-secret-" + "0" * 11


async def _create_mappings(sync_url: str, admin_token: str, integration_id: str) -> None:
    bodies = [
        {"external_channel_id": slack_channel(index), "channel_id": chat_channel(index)}
        for index in range(CHANNELS)
    ]
    path = f"/api/integrations/{integration_id}/mappings"
    await create_each(sync_url, admin_token, path, bodies, MAPPINGS_IN_FLIGHT)


async def _topic_like(bootstrap: str, like: str, suffix: str) -> str:
    """A new topic with as many partitions as `like`."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"{like}.{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([like])
        await admin.create_topics([NewTopic(topic, len(described["partitions"]), 1)])
    finally:
        await admin.close()
    return topic


# -- the outbound side -----------------------------------------------------------------------


def _producer(bootstrap: str) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=0,
        max_batch_size=1024 * 1024,
        client_id="hookhub-bench",
    )


async def publish_paced(
    bootstrap: str, topic: str, run: str, phase: str, rate: float, total: int, channels: int
) -> int:
    """`total` chat events, one every 1/rate s round robin over `channels`, each stamped with
    `sent_at` as it is handed to the producer; returns how many went out more than 5 ms late."""
    producer = _producer(bootstrap)
    await producer.start()
    loop = asyncio.get_running_loop()
    late = 0
    try:
        futures = []
        started = loop.time()
        for seq in range(total):
            due = started + seq / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() - due > 0.005:
                late += 1
            event = chat_event(run, phase, seq, channels, time.time())
            futures.append(await producer.send(topic, event.to_kafka(), key=event.partition_key()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return late


class Written:
    """How long after the last post the message map held every message's copy, and the
    outbox no job still queued (a post that finished at once leaves no job there)."""

    def __init__(self, expected: int, copies: int, queued: int, lag_s: float | None) -> None:
        self.expected, self.copies, self.queued, self.lag_s = expected, copies, queued, lag_s

    @property
    def missing(self) -> int:
        return max(self.expected - self.copies, self.queued, 0)

    def summary(self, window_s: float) -> str:
        if self.lag_s is None:
            when = f"when the harness stopped waiting ({MAP_WAIT:g} s): INCOMPLETE"
        else:
            when = (
                f"{self.lag_s:.1f} s after the last post "
                f"({(self.expected - 1) / (window_s + self.lag_s):,.0f} messages/s if the "
                "window ended there)"
            )
        return (
            f"message map (MongoDB): {self.copies:,}/{self.expected:,} copies, outbox "
            f"{self.queued:,} jobs queued, {when}"
        )


def wait_written(infrastructure: Infrastructure, expected: int, since: float) -> Written:
    with infrastructure.database() as db:
        deadline = time.monotonic() + MAP_WAIT
        copies = queued = 0
        while time.monotonic() < deadline:
            copies = db[MAP].count_documents({"origin": "outbound"})
            queued = db[OUTBOX].count_documents({"status": "queued"})
            if copies >= expected and queued == 0:
                return Written(expected, copies, queued, time.monotonic() - since)
            time.sleep(0.2)
        return Written(expected, copies, queued, None)


# -- the inbound side ------------------------------------------------------------------------


def slack_event(run: str, phase: str, seq: int, sent_at: float | None) -> bytes:
    """An Events API `event_callback` for a user's message, as Slack sends it."""
    channel = slack_channel(seq % LATENCY_CHANNELS)
    ts = f"{int(time.time())}.{seq % 1_000_000:06d}"
    text = message_text(seq, sent_at) if sent_at is not None else f"bench check {run}"
    body = {
        "token": "bench-verification-token",
        "team_id": "T0",
        "context_team_id": "T0",
        "context_enterprise_id": None,
        "api_app_id": "A0APP",
        "event": {
            "type": "message",
            "user": f"U0USER{seq % USERS:04d}",
            "text": text,
            "ts": ts,
            "team": "T0",
            "client_msg_id": str(uuid.uuid4()),
            "channel": channel,
            "channel_type": "channel",
            "event_ts": ts,
        },
        "type": "event_callback",
        "event_id": f"Ev{run.upper()}{phase.upper()}{seq:07d}",
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": "T0",
                "user_id": "U0BOT",
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + uuid.uuid4().hex,
    }
    return orjson.dumps(body)


def signed(raw: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + raw
    signature = hmac.new(_signing_secret().encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={signature}",
    }


def _consumer(bootstrap: str, topic: str, group: str) -> Any:
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )


async def _assigned(consumer: Any) -> None:
    """Once the consumer has its partitions, at their end: a bench's reader reads what comes
    from now on. (A new group starts at the earliest record: a latency reader first worked
    through every earlier phase's and mix's records, and that backlog became the phase's
    latency — p99 0.5 to 1.2 s for the last mix of `notifications`, 84 ms alone.)"""
    for _ in range(600):  # 30 s for the group join
        if consumer.assignment():
            partitions = consumer.assignment()
            await consumer.seek_to_end(*partitions)
            for partition in partitions:
                await consumer.position(partition)  # resolved now, not at the first fetch
            return
        await asyncio.sleep(0.05)
    raise BenchError("a bench consumer got no partitions within 30 s")


async def inbound_check(bootstrap: str, topic: str, url: str, run: str) -> None:
    """One event end to end (and the users looked up once) before anything is timed."""
    consumer = _consumer(bootstrap, topic, f"{topic}.bench-check-{run}")
    await consumer.start()
    try:
        await _assigned(consumer)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            for seq in range(USERS):
                raw = slack_event(run, "check", seq, None)
                answer = await client.post(url, content=raw, headers=signed(raw))
                if answer.status_code != 200:
                    refused = f"{answer.status_code} {answer.text}"
                    raise BenchError(f"a Slack event was refused: {refused}")
        seen = 0
        deadline = time.monotonic() + 60
        while seen < USERS and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batches.values())
        if seen < USERS:
            raise BenchError(f"{seen} of {USERS} Slack events reached {topic} within 60 s")
    finally:
        await consumer.stop()


async def _read_latencies(consumer: Any, latencies: dict[int, float], total: int) -> None:
    async for record in consumer:
        now = time.time()
        mark = _MARK.search(record.value)
        if mark:
            latencies.setdefault(int(mark.group(1)), now - float(mark.group(2)))
        if len(latencies) >= total:
            return


async def inbound_latency(
    bootstrap: str, topic: str, url: str, run: str, total: int, warm: int
) -> tuple[Measurement, str]:
    """The measurement, and a note on how fast the gateway answered (its 200 means the
    event is on `hookhub.provider.events`): where the time went, HTTP leg or after it."""
    consumer = _consumer(bootstrap, topic, f"{topic}.bench-{run}")
    await consumer.start()
    latencies: dict[int, float] = {}

    def request(seq: int, sent_at: float) -> tuple[bytes, dict[str, str]]:
        raw = slack_event(run, "inbound", seq, sent_at)
        return raw, signed(raw)

    try:
        await _assigned(consumer)
        reader = asyncio.ensure_future(_read_latencies(consumer, latencies, total))
        answered, errors = await post_paced(url, request, IN_RATE, total)
        try:
            await asyncio.wait_for(reader, 30)
        except TimeoutError:
            reader.cancel()
    finally:
        await consumer.stop()
    measurement = _latency_measurement("hookhub gateway + sync", latencies, errors, total, warm)
    return measurement, answers_note(answered, warm)


async def post_paced(
    url: str | Callable[[int], str],
    request: Callable[[int, float], tuple[bytes, dict[str, str]]],
    rate: float,
    total: int,
) -> tuple[dict[int, float], Counter[str]]:
    """POSTs `request(seq, sent_at)` (the body and its headers) to `url` (or `url(seq)`)
    every 1/rate s, `sent_at` taken as it is built; returns how long each answer took, by
    seq, and the failures by kind (a non-200 is one)."""
    answered: dict[int, float] = {}
    errors: Counter[str] = Counter()
    # aiohttp, not httpx: under this load httpcore's pool matching in the harness's own
    # loop took the answers it timed to seconds while the gateway handled each request in
    # a few milliseconds (its hookhub_gateway_webhook_seconds); aiohttp timed the same
    # gateway at p99 16-38 ms (docs/benchmarks.md, sync 2026-11-23 (4)).
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=50),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as client:

        async def send(seq: int) -> None:
            sent_at = time.time()
            raw, headers = request(seq, sent_at)
            try:
                target = url(seq) if callable(url) else url
                async with client.post(target, data=raw, headers=headers) as answer:
                    await answer.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                return
            answered[seq] = time.time() - sent_at
            if answer.status != 200:
                errors[f"http_{answer.status}"] += 1

        await _paced(send, rate, total)
    return answered, errors


def answers_note(answered: dict[int, float], warm: int) -> str:
    """How fast the gateway answered after the warm-up (its 200 means the event is on
    `hookhub.provider.events`): where the time went, HTTP leg or after it."""
    http = sorted(seconds for seq, seconds in answered.items() if seq >= warm)
    return "the gateway's answers (200 once the event is on hookhub.provider.events): " + (
        f"p50 {_ms(http, 0.50)} ms, p99 {_ms(http, 0.99)} ms, max {1000 * http[-1]:.1f} ms"
        if http
        else "none"
    )


def _ms(ordered: list[float], q: float) -> str:
    return f"{1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]:.1f}"


async def _paced(send: Callable[[int], Any], rate: float, total: int) -> None:
    """`send(seq)` as its own task every 1/rate s; waits for them all."""
    loop = asyncio.get_running_loop()
    tasks = []
    started = loop.time()
    for seq in range(total):
        delay = started + seq / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(seq)))
    await asyncio.gather(*tasks)


async def kafka_two_hops(
    bootstrap: str,
    like: str,
    run: str,
    total: int,
    warm: int,
    record: Callable[[int, float], tuple[bytes, bytes]] | None = None,
) -> Measurement:
    """The transport floor of the inbound path: publish → relay consumer → publish →
    consumer, on two topics of their own, at the same rate. `record(seq, sent_at)` is what
    is published (value, key); its value must hold `bench_seq=<seq> sent_at=<sent_at>`
    (default: a Slack event keyed by its channel)."""
    from aiokafka import AIOKafkaProducer

    first = await _topic_like(bootstrap, like, "floor-1")
    second = await _topic_like(bootstrap, like, "floor-2")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    relay = _consumer(bootstrap, first, f"{first}.relay")
    reader = _consumer(bootstrap, second, f"{second}.reader")
    latencies: dict[int, float] = {}
    errors: Counter[str] = Counter()
    await producer.start()
    await relay.start()
    await reader.start()
    try:
        await _assigned(relay)
        await _assigned(reader)

        async def forward() -> None:
            async for record in relay:
                await producer.send_and_wait(second, record.value, key=record.key)

        relaying = asyncio.ensure_future(forward())
        reading = asyncio.ensure_future(_read_latencies(reader, latencies, total))

        def slack(seq: int, sent_at: float) -> tuple[bytes, bytes]:
            raw = slack_event(run, "floor", seq, sent_at)
            return raw, slack_channel(seq % LATENCY_CHANNELS).encode()

        async def send(seq: int) -> None:
            raw, key = (record or slack)(seq, time.time())
            await producer.send_and_wait(first, raw, key=key)

        await _paced(send, IN_RATE, total)
        try:
            await asyncio.wait_for(reading, 30)
        except TimeoutError:
            reading.cancel()
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
    finally:
        await reader.stop()
        await relay.stop()
        await producer.stop()
    return _latency_measurement("Kafka alone, two hops", latencies, errors, total, warm)


def _latency_measurement(
    label: str, latencies: dict[int, float], errors: Counter[str], total: int, warm: int
) -> Measurement:
    ordered = sorted(latency for seq, latency in latencies.items() if seq >= warm)
    missing = total - len(latencies)
    if missing:
        errors["missing"] += missing

    def at(q: float) -> float | None:
        if not ordered:
            return None
        return round(1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))], 2)

    measured = total - warm
    return Measurement(
        label=label,
        rps=round(len(ordered) / (measured / IN_RATE), 1) if measured else 0.0,
        p50_ms=at(0.50),
        p90_ms=at(0.90),
        p99_ms=at(0.99),
        max_ms=round(1000 * ordered[-1], 2) if ordered else None,
        ok=len(ordered),
        errors=sum(errors.values()),
        error_kinds=dict(errors),
        window_s=round(measured / IN_RATE, 3),
        cpu_cores={},
        p95_ms=at(0.95),
    )


# -- notes -----------------------------------------------------------------------------------


def _targets(measurement: Measurement, p50: float | None, p99: float) -> str:
    def verdict(value: float | None, target: float) -> str:
        if value is None:
            return "not measured"
        return f"{value:.1f} ms, {'met' if value <= target else 'NOT MET'}"

    parts = []
    if p50 is not None:
        parts.append(f"p50 ≤ {p50:g} ms ({verdict(measurement.p50_ms, p50)})")
    parts.append(f"p99 ≤ {p99:g} ms ({verdict(measurement.p99_ms, p99)})")
    return "targets: " + ", ".join(parts)


BENCHMARK = Sync()
