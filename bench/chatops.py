"""Benchmark "chatops" (issue #62): clicks on notification cards acted on at the provider,
by one sync process, against a bare consumer → HTTP call loop in the same run.

The set-up, through the real services: `python -m bench.chatops standin`, a PagerDuty
stand-in on loopback (a cheap HTTP/1.1 server in its own process, `bench.sink`'s connection,
no framework) answering `GET /incidents/{id}` (the incident, triggered) and `PUT
/incidents/{id}` (the incident in the status asked for), noting when each incident's first
PUT arrived and how long it took itself to answer each request; CHANNELS PagerDuty
integrations (a signing secret and an `api_token`) made through the oauth service, one
subscription each (its own chat channel, every event, threads on) made through sync's API,
and one account link for the clicking user (`PUT /api/account-links/pagerduty/{user}`);
then sync (`HOOKHUB_PAGERDUTY_API_BASE` the stand-in) reads CARDS + 1 `incident.triggered`
webhooks published straight onto `hookhub.provider.events` as the gateway would (PagerDuty's
own sample, each a distinct incident `PBCH<n>`, spread over the integrations) and posts
their roots, each a card offering acknowledge, resolve and reassign, on
`hookhub.chat.inbound`, where the harness reads them: a click's `message_id` is its root's
id. The extra card takes a first click end to end before anything is timed.

Each action acts once on a card (SPEC §20: the second click of it is "already done"), so
every click measured is a distinct (card, action): the issue's "across 20 incidents" would
make 20 calls, so the cards are CARDS (or one per latency click, if more) in CHANNELS
channels.

1. **Latency** (`chatops-latency`): sync running, one `acknowledge` click a card published
   on `hookhub.chat.events` at RATE a second for `--warmup` + `--duration` s; latency = when
   the stand-in received the card's PUT minus when the harness handed the click to its
   producer (an acknowledge is a GET of the incident, then the PUT), the warm-up's clicks
   left out. Baseline: `python -m bench.chatops bare` (below) on a copy of the same clicks
   on a topic of its own, at the same rate, timed the same way; the stand-in's own answer
   time is in a note.
2. **Throughput** (`chatops`): sync stopped, one `resolve` click a card (one PUT each) is
   published, then one sync process started on the backlog; timed by the stand-in from the
   first PUT to the one completing CARDS. Baseline: `python -m bench.chatops bare` on a
   copy of the same clicks: aiokafka `getmany` (500 records) → per batch, every click's
   PagerDuty calls at once (the same requests and headers as sync's, on the client sync acts
   through: `provider_client` with ACTING_CONNECTIONS connections) → commit; the card
   looked up in a dict, no click written, no claim, no link, no reply, no audit.

The stand-in is for measuring, not testing: it checks no token and no `From` (the unit
test in tests/bench/test_chatops.py runs hookhub's own PagerDuty acting against it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.delivery import Sink, publish_all
from bench.harness import (
    BenchError,
    BenchmarkResult,
    CpuWindow,
    Harness,
    Infrastructure,
    Measurement,
    Server,
    create_integration,
    ratio_note,
    wait_answering,
)
from bench.sink import Connection, run_server
from bench.sink import Sink as Counter
from bench.sync import _topic_like
from services.gateway.provider_webhooks.service import envelope_for
from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.embedded import ChildProcess, free_port
from shared.kernel.envelopes import ChatEvent, ProviderEvent, Topic
from shared.kernel.ids import utcnow
from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest

WORKSPACE = "ws_bench_chatops"
CHANNELS = 20
CARDS = 500  # at least; one per latency click if there are more
RATE = 50.0  # clicks a second, the latency table's
USER = "u_bench_oncall"
USER_NAME = "Bench On-call"
EMAIL = "oncall@bench.example"
API_TOKEN = "bench-pagerduty-rest-key"  # noqa: S105 (the stand-in takes any)
SECRET = "bench-chatops-signing-secret"  # noqa: S105
TARGET_P99_MS = 150.0
TARGET_RATIO = 0.6
ACCEPT = "application/vnd.pagerduty+json;version=2"
SAMPLE = (
    Path(__file__).resolve().parent.parent
    / "shared"
    / "providers"
    / "pagerduty"
    / "samples"
    / "incident_triggered.json"
)
_INCIDENT = re.compile(rb"/incidents/pbch(\d{6})")  # the connection lower-cases the path
_STATUS = re.compile(rb'"status"\s*:\s*"([a-z]+)"')
_ROOT_INCIDENT = re.compile(rb"PBCH(\d{6})")


def incident_id(seq: int) -> str:
    return f"PBCH{seq:06d}"


def channel_of(seq: int) -> str:
    return f"ch_chatops_{seq % CHANNELS:02d}"


# -- the PagerDuty stand-in ------------------------------------------------------------------


def answer(document: Any, status: int = 200) -> bytes:
    body = orjson.dumps(document)
    reason = b"OK" if status == 200 else b"Error"
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % (status, reason, len(body)) + body


def incident_document(seq: int, status: str) -> dict[str, Any]:
    """`{"incident": …}` as `GET`/`PUT /incidents/{id}` answer it (the fields acting reads)."""
    incident = incident_id(seq)
    return {
        "incident": {
            "id": incident,
            "type": "incident",
            "status": status,
            "title": f"bench incident {seq}",
            "self": f"https://api.pagerduty.com/incidents/{incident}",
            "html_url": f"https://bench.pagerduty.com/incidents/{incident}",
        }
    }


class Ledger(Counter):
    """The stand-in's state: the sink's counter (each incident's first PUT counts, as its
    `bench_seq`, so `/_bench/wait` and `/_bench/stats` work as for the other stand-ins), and
    when each incident's first PUT arrived, the GETs, and its own answer times
    (`GET /_bench/puts`)."""

    def reset(self, expect: int, open_after: int, by_path: bool = False) -> None:
        super().reset(expect, open_after, by_path)
        self.put_at: dict[int, float] = {}
        self.puts = 0
        self.gets = 0
        self.answer_ns: list[int] = []

    def respond(self, target: bytes, body: bytes) -> bytes:
        started = time.perf_counter_ns()
        found = _INCIDENT.match(target.partition(b"?")[0])
        if found is None:
            reply = answer({"error": {"message": "Not Found", "code": 2100}}, 404)
        elif not body:  # the connection hands no method: a read is the request without a body
            self.gets += 1
            reply = answer(incident_document(int(found[1]), "triggered"))
        else:
            seq = int(found[1])
            self.puts += 1
            self.put_at.setdefault(seq, time.time())
            self.record(b'"bench_seq":%d' % seq)
            status = _STATUS.search(body)
            reply = answer(incident_document(seq, status[1].decode() if status else "triggered"))
        self.answer_ns.append(time.perf_counter_ns() - started)
        return reply

    def control(self, transport: asyncio.Transport, method: bytes, target: bytes) -> None:
        if target.partition(b"?")[0] != b"/_bench/puts":
            super().control(transport, method, target)
            return
        ordered = sorted(self.answer_ns)

        def percentile_us(q: float) -> float | None:
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 1)

        document = {
            "put_at": {str(seq): at for seq, at in self.put_at.items()},
            "puts": self.puts,
            "gets": self.gets,
            "answer_us": {"p50": percentile_us(0.5), "p99": percentile_us(0.99)},
        }
        body = orjson.dumps(document)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        transport.write(head % len(body) + body)


@dataclass
class StandIn(Sink):
    def puts(self) -> dict[str, Any]:
        with self._client() as client:
            document: dict[str, Any] = client.get("/_bench/puts").json()
        return document


def start_standin(harness: Harness) -> StandIn:
    port = free_port()
    argv = [sys.executable, "-m", "bench.chatops", "standin", "--port", str(port)]
    child = harness.start_process("pagerduty-standin", argv)
    standin = StandIn(f"http://127.0.0.1:{port}", child)
    wait_answering(child, standin.url + "/_bench/ready", "pagerduty-standin")
    return standin


# -- events ----------------------------------------------------------------------------------


def triggered(integration: IntegrationSnapshot, seq: int, sample: dict[str, Any]) -> ProviderEvent:
    """PagerDuty's `incident.triggered` sample as incident `seq`, enveloped as the gateway
    publishes it once verified."""
    payload = json.loads(json.dumps(sample))
    incident = incident_id(seq)
    delivery = f"bench-chatops-{seq:06d}"
    payload["event"]["id"] = delivery
    data = payload["event"]["data"]
    data["id"] = incident
    data["number"] = seq + 1
    data["title"] = f"bench incident {seq}"
    data["self"] = f"https://api.pagerduty.com/incidents/{incident}"
    data["html_url"] = f"https://bench.pagerduty.com/incidents/{incident}"
    body = orjson.dumps(payload)
    request = InboundRequest(
        headers={"x-webhook-id": delivery},
        body=body,
        received_at=utcnow(),
        url=f"https://hookhub.bench/api/webhooks/pagerduty/{integration.id}",
    )
    parsed = WEBHOOK_PROVIDERS["pagerduty"].parse(request)
    envelope = envelope_for(integration, parsed, request)
    # The gateway splices a body that is the payload into the envelope's bytes
    # (`to_kafka_with_raw_payload`); `publish_all` encodes the model: the payload in it.
    return (
        envelope.model_copy(update={"payload": payload}) if envelope.payload is None else envelope
    )


@dataclass(frozen=True)
class Card:
    seq: int
    root_id: str
    channel_id: str


def click(run: str, phase: str, card: Card, action: str) -> ChatEvent:
    return ChatEvent(
        id=f"evt_bench_{run}_{phase}_{card.seq:06d}",
        type="message.action",
        workspace_id=WORKSPACE,
        occurred_at=utcnow(),
        actor={"id": USER, "name": USER_NAME},
        data={"message_id": card.root_id, "channel_id": card.channel_id, "action_id": action},
    )


async def read_roots(bootstrap: str, topic: str, count: int, within: float) -> dict[int, Card]:
    """The roots (`message.received` with `card.actions`) of the bench's incidents on
    `topic`, from its beginning, by incident, until `count` were read or `within` seconds passed."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    cards: dict[int, Card] = {}
    deadline = time.monotonic() + within
    try:
        while len(cards) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batches.values():
                for record in records:
                    found = _ROOT_INCIDENT.search(record.value or b"")
                    if found is None:
                        continue
                    message = orjson.loads(record.value)
                    card = message.get("card") or {}
                    if message.get("type") != "message.received" or "thread_id" in message:
                        continue
                    if not any(a.get("id") == "acknowledge" for a in card.get("actions") or ()):
                        continue
                    seq = int(found[1])
                    cards.setdefault(seq, Card(seq, message["id"], message["channel_id"]))
    finally:
        await consumer.stop()
    return cards


async def publish_paced(
    bootstrap: str, topic: str, events: list[tuple[int, ChatEvent]], rate: float
) -> tuple[dict[int, float], int]:
    """Publishes each event, one every 1/rate s; when each was handed to the producer (unix
    seconds, by its seq), and how many went out more than 5 ms late."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, client_id="hookhub-bench"
    )
    await producer.start()
    loop = asyncio.get_running_loop()
    sent: dict[int, float] = {}
    late = 0
    try:
        futures = []
        started = loop.time()
        for index, (seq, event) in enumerate(events):
            due = started + index / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() - due > 0.005:
                late += 1
            sent[seq] = time.time()
            futures.append(await producer.send(topic, event.to_kafka(), key=event.partition_key()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent, late


# -- the benchmark ---------------------------------------------------------------------------


class ChatOps:
    name = "chatops"
    title = "card clicks acted on at PagerDuty by one sync process"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        infrastructure = harness.infrastructure()
        options = harness.options
        warm = round(RATE * options.warmup)
        measured = round(RATE * options.duration)
        cards = max(CARDS, warm + measured)
        standin = start_standin(harness)
        env = {"HOOKHUB_PAGERDUTY_API_BASE": standin.url}
        setup_started = time.perf_counter()
        integrations = self._integrations(harness, infrastructure, standin.url)
        sync = harness.start_service("sync", env=env)
        self._subscribe(sync, infrastructure, integrations)
        sample = json.loads(SAMPLE.read_text())
        events = [triggered(integrations[s % CHANNELS], s, sample) for s in range(cards + 1)]
        bootstrap = infrastructure.kafka_bootstrap
        namespace = infrastructure.topic_namespace
        asyncio.run(publish_all(bootstrap, f"{namespace}.{Topic.PROVIDER_EVENTS}", events))
        found = asyncio.run(
            read_roots(bootstrap, f"{namespace}.{Topic.CHAT_INBOUND}", cards + 1, 180.0)
        )
        if len(found) < cards + 1:
            raise BenchError(
                f"{len(found)} of {cards + 1} PagerDuty cards reached hookhub.chat.inbound"
            )
        setup_s = time.perf_counter() - setup_started
        self.cards = [found[s] for s in range(cards)]
        self.check_card = found[cards]
        self.mapping = harness.root / "chatops-cards.json"
        self.mapping.write_text(
            json.dumps({c.root_id: incident_id(c.seq) for c in [*self.cards, self.check_card]})
        )
        topic = f"{namespace}.{Topic.CHAT_EVENTS}"

        # A first click end to end (the link read, the client's first connection).
        self._check(harness, standin, bootstrap, topic, sync.child, "ours")

        # -- latency: ours, then the bare loop -----------------------------------------------
        latency_clicks = [
            (c.seq, click(harness.run_id, "ack", c, "acknowledge"))
            for c in self.cards[: warm + measured]
        ]
        ours_latency, late, answer_us = self._latency(
            harness, standin, bootstrap, topic, latency_clicks, warm, sync.child, "hookhub sync"
        )
        sync.stop()
        bare_topic = asyncio.run(_topic_like(bootstrap, topic, "chatops-bare-latency"))
        bare = self._start_bare(harness, bootstrap, bare_topic, standin.url, "latency")
        self._check(harness, standin, bootstrap, bare_topic, bare, "bare")
        base_latency, base_late, _ = self._latency(
            harness, standin, bootstrap, bare_topic, latency_clicks, warm, bare, "baseline (bare)"
        )
        bare.stop()

        # -- throughput: a backlog, ours, then the bare loop ---------------------------------
        backlog = [click(harness.run_id, "resolve", c, "resolve") for c in self.cards]
        published_in = asyncio.run(publish_all(bootstrap, topic, backlog))
        started: list[Server] = []

        def start_sync() -> ChildProcess:
            started.append(harness.start_service("sync", env=env, wait=False))
            child: ChildProcess = started[-1].child
            return child

        ours = self._backlog(standin, infrastructure, len(backlog), start_sync, "hookhub sync")
        for service in started:
            service.stop()
        bare_backlog = asyncio.run(_topic_like(bootstrap, topic, "chatops-bare-backlog"))
        asyncio.run(publish_all(bootstrap, bare_backlog, backlog))

        def start_bare() -> ChildProcess:
            return self._start_bare(harness, bootstrap, bare_backlog, standin.url, "backlog")

        base = self._backlog(standin, infrastructure, len(backlog), start_bare, "baseline (bare)")
        standin.child.stop()

        where = (
            f"{cards:,} PagerDuty incidents (one card each, each a distinct incident: an action "
            f"acts once per card, so the issue's 20 incidents would make 20 calls) over "
            f"{CHANNELS} channels, one integration and subscription each; set up through the "
            f"oauth and sync APIs and {cards + 1:,} incident.triggered events on "
            f"hookhub.provider.events in {setup_s:.1f} s"
        )
        bare_note = (
            "baseline: python -m bench.chatops bare, aiokafka getmany (500 records) → every "
            "click's PagerDuty calls at once, the same requests and headers as sync's, on "
            "provider_client (sync's acting client) → commit; the card looked up in a dict, "
            "no click written, no claim, no link, no reply, no audit"
        )
        p99 = ours_latency.p99_ms
        verdict = (
            "not measured"
            if p99 is None
            else (f"{p99:.1f} ms, {'met' if p99 <= TARGET_P99_MS else 'NOT MET'}")
        )
        latency = BenchmarkResult(
            "chatops-latency",
            f"click → PagerDuty PUT at {RATE:g} clicks/s, one sync process",
            ours_latency,
            base_latency,
            notes=[
                where,
                f"{warm + measured:,} acknowledge clicks (each a GET of the incident, then the "
                f"PUT), one a card, at {RATE:g}/s: {warm} in {options.warmup:g} s of warm-up, "
                f"then {measured} measured; latency = the PUT's arrival at the stand-in minus the "
                f"click handed to the producer; {late} (ours) and {base_late} (baseline) clicks "
                "published more than 5 ms late",
                bare_note + "; at the same rate on a copy of the clicks",
                f"the stand-in's own answer time per request: p50 {answer_us.get('p50')} µs, "
                f"p99 {answer_us.get('p99')} µs (inside its process)",
                f"target p99 ≤ {TARGET_P99_MS:g} ms: {verdict}",
            ],
            setup=(
                f"{RATE:g} acknowledge clicks/s, {options.duration:g} s measured after "
                f"{options.warmup:g} s warm-up, click → PUT at the stand-in"
            ),
            unit="clicks/s",
            compare="latency",
        )
        throughput = BenchmarkResult(
            "chatops",
            self.title,
            ours,
            base,
            notes=[
                where,
                f"{len(backlog):,} resolve clicks (one PUT each), one a card, published in "
                f"{published_in:.2f} s before the sync process was started; timed by the "
                "stand-in from the first PUT to the one completing them",
                bare_note + "; on a copy of the same clicks",
                ratio_note(ours, base, TARGET_RATIO),
            ],
            setup=f"{len(backlog):,} pre-published clicks, first → last PUT at the stand-in",
            unit="clicks/s",
        )
        return [throughput, latency]

    # -- set-up ------------------------------------------------------------------------------

    def _integrations(
        self, harness: Harness, infrastructure: Infrastructure, standin_url: str
    ) -> list[IntegrationSnapshot]:
        """CHANNELS PagerDuty integrations that can act, and the clicking user's link, made
        through the oauth service (stopped after)."""
        oauth = harness.start_service("oauth")
        admin = infrastructure.admin_token
        made = []
        for _ in range(CHANNELS):
            settings = {"signing_secret": SECRET, "api_token": API_TOKEN}
            integration_id = create_integration(oauth.url, admin, "pagerduty", WORKSPACE, settings)
            made.append(
                IntegrationSnapshot(
                    id=integration_id,
                    workspace_id=WORKSPACE,
                    provider="pagerduty",
                    enabled=True,
                    is_default=False,
                    status="connected",
                    account_id=None,
                    rate_limit_per_second=None,
                )
            )
        linked = httpx.put(
            f"{oauth.url}/api/account-links/pagerduty/{USER}",
            params={"workspace_id": WORKSPACE},
            json={"provider_user": EMAIL},
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        )
        if linked.status_code not in (200, 201):
            raise BenchError(f"linking the user: {linked.status_code} {linked.text}")
        oauth.stop()
        return made

    def _subscribe(
        self, sync: Server, infrastructure: Infrastructure, integrations: list[IntegrationSnapshot]
    ) -> None:
        headers = {"Authorization": f"Bearer {infrastructure.admin_token}"}
        for index, integration in enumerate(integrations):
            made = httpx.post(
                f"{sync.url}/api/integrations/{integration.id}/subscriptions",
                json={"channel_id": channel_of(index), "events": ["*"], "threads": "item"},
                headers=headers,
                timeout=10,
            )
            if made.status_code != 201:
                raise BenchError(f"subscribing: {made.status_code} {made.text}")

    def _check(
        self,
        harness: Harness,
        standin: StandIn,
        bootstrap: str,
        topic: str,
        child: ChildProcess,
        phase: str,
    ) -> None:
        standin.reset(expect=1)
        first = click(harness.run_id, f"check{phase}", self.check_card, "acknowledge")
        asyncio.run(publish_all(bootstrap, topic, [first]))
        if not standin.wait_until("complete", time.monotonic() + 90, child.alive):
            raise BenchError(f"a first click ({phase}) did not reach the stand-in: {child.name}")

    def _start_bare(
        self, harness: Harness, bootstrap: str, topic: str, url: str, name: str
    ) -> ChildProcess:
        argv = [sys.executable, "-m", "bench.chatops", "bare", "--bootstrap", bootstrap]
        argv += ["--topic", topic, "--cards", str(self.mapping), "--api", url]
        return harness.start_process(f"chatops-bare-{name}", argv)

    # -- measuring ---------------------------------------------------------------------------

    def _latency(
        self,
        harness: Harness,
        standin: StandIn,
        bootstrap: str,
        topic: str,
        clicks: list[tuple[int, ChatEvent]],
        warm: int,
        child: ChildProcess,
        label: str,
    ) -> tuple[Measurement, int, dict[str, Any]]:
        standin.reset(expect=len(clicks))
        pids = {"actor": child.process.pid, "standin": standin.child.process.pid}
        pids |= harness.infrastructure().pids()
        cpu = CpuWindow(pids)
        measured_from = clicks[warm][0] if warm < len(clicks) else None

        async def publish() -> tuple[dict[int, float], int]:
            warm_sent, warm_late = await publish_paced(bootstrap, topic, clicks[:warm], RATE)
            cpu.open()
            rest, late = await publish_paced(bootstrap, topic, clicks[warm:], RATE)
            return {**warm_sent, **rest}, warm_late + late

        sent, late = asyncio.run(publish())
        standin.wait_until("complete", time.monotonic() + 60, child.alive)
        cpu.close()
        ledger = standin.puts()
        put_at = {int(seq): at for seq, at in ledger["put_at"].items()}
        seqs = [seq for seq, _ in clicks[warm:]]
        latencies = sorted(put_at[s] - sent[s] for s in seqs if s in put_at)
        missing = len(seqs) - len(latencies)
        window = max(sent[seqs[-1]] - sent[seqs[0]], 1e-9) if len(seqs) > 1 else 1e-9
        result = Measurement(
            label=label,
            rps=round(len(latencies) / window, 1) if measured_from is not None else 0.0,
            p50_ms=_percentile_ms(latencies, 0.50),
            p90_ms=_percentile_ms(latencies, 0.90),
            p99_ms=_percentile_ms(latencies, 0.99),
            max_ms=round(latencies[-1] * 1000, 2) if latencies else None,
            ok=len(latencies),
            errors=missing,
            error_kinds={"no PUT": missing} if missing else {},
            window_s=round(window, 3),
            cpu_cores={},
            p95_ms=_percentile_ms(latencies, 0.95),
        )
        cpu.apply(result)
        answer_us: dict[str, Any] = ledger["answer_us"]
        return result, late, answer_us

    def _backlog(
        self,
        standin: StandIn,
        infrastructure: Infrastructure,
        count: int,
        start: Any,
        label: str,
    ) -> Measurement:
        standin.reset(expect=count)
        child: ChildProcess = start()
        pids = {"actor": child.process.pid, "standin": standin.child.process.pid}
        with CpuWindow({**pids, **infrastructure.pids()}) as cpu:
            standin.wait_until("complete", time.monotonic() + 300, child.alive)
        stats = standin.stats()
        done = int(stats["distinct"])
        first, last = stats["first_at"], stats["complete_at"] or stats["last_at"]
        window = (last - first) if first is not None and last is not None else 0.0
        missing = count - done
        result = Measurement(
            label=label,
            rps=round(done / window, 1) if window > 0 else 0.0,
            p50_ms=None,
            p90_ms=None,
            p99_ms=None,
            max_ms=None,
            ok=done,
            errors=missing,
            error_kinds={"no PUT": missing} if missing else {},
            window_s=round(window, 3),
            cpu_cores={},
        )
        cpu.apply(result)
        return result


BENCHMARK = ChatOps()


def _percentile_ms(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


# -- the baseline: a bare consumer → HTTP call loop ------------------------------------------


async def bare(bootstrap: str, topic: str, cards: dict[str, str], api: str) -> None:
    """Each click of `topic` (from its beginning, a group of its own) made PagerDuty's calls
    as sync's acting makes them, a batch's clicks at once, then the batch committed."""
    from aiokafka import AIOKafkaConsumer

    from services.sync.clicks.worker import ACTING_CONNECTIONS
    from shared.providers.chats import provider_client

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    client = provider_client(ACTING_CONNECTIONS, 10.0)
    headers = {
        "Authorization": f"Token token={API_TOKEN}",
        "Accept": ACCEPT,
        "Content-Type": "application/json",
    }
    statuses = {"acknowledge": "acknowledged", "resolve": "resolved"}

    async def act(value: bytes) -> None:
        event = orjson.loads(value)
        data = event["data"]
        incident = cards.get(data.get("message_id"))
        status = statuses.get(data.get("action_id"))
        if incident is None or status is None:
            return
        url = f"{api}/incidents/{incident}"
        if status != "resolved":  # as sync: read first what acknowledging would reopen
            found = await client.get(url, headers=headers)
            if found.json()["incident"]["status"] == "resolved":
                return
        body = {"incident": {"type": "incident_reference", "status": status}}
        await client.put(url, json=body, headers={**headers, "From": EMAIL})

    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            values = [record.value for records in batches.values() for record in records]
            if not values:
                continue
            await asyncio.gather(*(act(value) for value in values if value))
            await consumer.commit()
    finally:
        await consumer.stop()
        await client.aclose()


# -- the processes ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chatops", description=__doc__)
    parser.add_argument("part", choices=("standin", "bare"))
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--cards", help="bare: a JSON file of {root id: incident id}")
    parser.add_argument("--api", help="bare: the stand-in's URL")
    args, rest = parser.parse_known_args(argv)
    if args.part == "bare":
        import uvloop

        cards = json.loads(Path(args.cards).read_text())
        uvloop.run(bare(args.bootstrap, args.topic, cards, args.api))
        return 0
    ledger = Ledger()

    async def serve(host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Connection(ledger, ledger.respond), host, port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    return run_server(serve, "python -m bench.chatops standin", __doc__, rest)


if __name__ == "__main__":
    sys.exit(main())
