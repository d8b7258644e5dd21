"""Benchmark "soak" (`make bench BENCH_ARGS="--only soak"`; not in a plain `make bench`): a
steady mixed load through one stack for 20 minutes (`--duration S` sets the length), three
faults on a schedule, a sample every 10 s, and at the end the accounting of everything the
stack accepted (issue #34). Judged by `bench.soak_judge`; docs/benchmarks.md says how to read it.

**The stack**, on infrastructure of its own (`Harness.new_infrastructure("soak")`): tansu
behind `bench.tcp_proxy` (it advertises the proxy's port, so every client goes through
it), SecantusDB on disk, and one process each of gateway, delivery, sync and oauth, with
retention at three minutes (`RETENTION`) so that it runs during the soak. Slack is the
sandbox's stand-in (`hookhub sandbox`, services/sandbox/slack.py), wired as `make sandbox`
wires it: it sends its signed events to the gateway's app-level URL. Set up through the
API: a Slack integration and two mappings (`SLACK_CHANNELS`), a GitHub integration, an
incoming webhook, and `ENDPOINTS` outgoing webhooks on a sink served by this process
(`/hooks/<n>`: `FAILING` answer 500 and `HANGING` never answer until `RECOVER_AT` of the
length, then 200 like the rest), each for `message.created` and `github.push`, with a short
retry schedule. The down endpoints' circuits open within seconds (SPEC §17); their
deliveries wait behind them without spending their retries, probed at most a minute
apart (`HOOKHUB_CIRCUIT_MAX_COOL_DOWN_SECONDS=60` here; 10 minutes by default), and go
once the endpoints are back: nothing they missed is lost.

**The load**, paced (`RATES`, per second), for the whole length:
- `chat`: `message.created` chat events on `hookhub.chat.events` (acks=all), over the
  mapped channels: delivered to the 50 endpoints, and posted to Slack by sync;
- `github`: the corpus `push`, signed, to the gateway: delivered to the 50 endpoints;
- `incoming`: Slack-style posts to the incoming webhook: on `hookhub.chat.inbound`;
- `slack`: a user writes in a mapped Slack channel (the sandbox's API): the stand-in sends
  the event to the gateway, sync brings it to `hookhub.chat.inbound`.
Each item carries an id (`soak=<id>` in its text); an item counts as accepted when the
stack said so: Kafka's ack, the gateway's 2xx (for `slack`, the 2xx the stand-in got).

**The faults**, at 30%, 50% and 70% of the length, each `min(60, length/10)` s: the proxy
closes every connection and refuses new ones (the broker "stopped": stopping tansu itself
would lose its in-memory topics); MongoDB stopped (SIGTERM) and started again on the same
port and storage; the delivery process killed (SIGKILL) and started again at once (the
fault lasts until it is ready again).

**The end**: the load stops, the stack is given up to `DRAIN_SECONDS` to finish (no
delivery pending, nothing new at the sink or in Slack), then each accepted item is looked
for: at the sink (each endpoint's 2xx, by `webhook-id`), on
`hookhub.delivery.dead-letters`, among the deliveries the sampler saw `failed`, on
`hookhub.chat.inbound` and in the Slack channels. Results: `bench/results/soak-<time>.json`
(samples, faults, accounting, verdicts) and the plot beside it (`bench.soak_plot`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.github import PAYLOAD, github_integration, signed_headers
from bench.harness import (
    RESULTS_DIR,
    BenchError,
    BenchmarkResult,
    CpuWindow,
    Harness,
    Infrastructure,
    Measurement,
    Server,
    create_each,
    create_integration,
    wait_answering,
)
from bench.sink import _percentile_ms
from bench.soak_judge import (
    Fault,
    Outcomes,
    Rules,
    Sample,
    Verdict,
    arrivals,
    deliveries,
    ends,
    judge,
    left_open,
    missing,
)
from bench.soak_plot import plot
from bench.soak_sample import PENDING, Sampler
from bench.sync import TEXT, _paced, message_created
from services.delivery.deliveries.dispatcher import DEAD_LETTER_TOPIC
from services.sandbox.app import SLACK_USERS, credentials, service_environment
from shared.kernel.egress import NewestFirst
from shared.kernel.embedded import ChildProcess, free_port
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.ids import derived_id

DEFAULT_SECONDS = 1200.0
SAMPLE_EVERY = 10.0
DRAIN_SECONDS = 180.0
CHECK_SECONDS = 90.0  # for a first event through before the clock starts
READY_SECONDS = 120.0  # for the delivery process to be ready after its restart
WORKSPACE = "ws_soak"
ENDPOINTS = 50
FAILING = frozenset(range(5))  # answer 500 until RECOVER_AT
HANGING = frozenset({5})  # never answer (each attempt ends at its time-out) until RECOVER_AT
# Of the length: between the second fault and the third, so that their backlog has been
# delivered and the retention job has taken it off before the last third, which the
# collections' and descriptors' rules judge.
RECOVER_AT = 0.6
HEALTHY = [n for n in range(ENDPOINTS) if n not in FAILING | HANGING]
ENDPOINT_TIMEOUT = 2.0
RETRY_SCHEDULE = [1, 2]  # s: three attempts, dead-lettered about 3 s after the first
RATES = {"chat": 1.0, "github": 0.2, "incoming": 1.0, "slack": 0.5}
SLACK_CHANNELS = {"C0GENERAL": "ch_soak_general", "C0RANDOM": "ch_soak_random"}
SLACK_USER = next(iter(SLACK_USERS.values()))
RETENTION = {
    "HOOKHUB_DELIVERY_RETENTION": "3m",
    "HOOKHUB_CLAIM_CHECK_RETENTION": "3m",
    "HOOKHUB_IMPORT_UPLOAD_RETENTION": "3m",
    "HOOKHUB_RETENTION_INTERVAL_SECONDS": "15",
    # The down endpoints come back near the end: probed within a minute, not ten.
    "HOOKHUB_CIRCUIT_MAX_COOL_DOWN_SECONDS": "60",
}
SERVICES = ("gateway", "delivery", "sync", "oauth")
# Kept longer than any soak by design (docs/operations.md#retention): they grow with the
# load for their whole keep, so "levels off" is not asked of them.
KEPT_LONGER = {
    "message_map": "kept for the life of the mapping (a copy per message: edits need it)",
    "sync_outbox": "finished jobs are kept 7 days",
    "seen_deliveries": "the dedupe window, at least 24 h",
    "processed_envelopes": "kept 7 days",
    "audit_events": "HOOKHUB_AUDIT_RETENTION_DAYS",
    "delivery_minutes": "the timeline's counts, a document per endpoint and minute, kept 2 days",
}
# An item's id in a text: `_` may come escaped (`\_`, CommonMark's: an incoming webhook's
# text is Markdown, what it meant literally is escaped), and `\` doubled in a JSON record.
_MARK = re.compile(rb"soak=((?:[A-Za-z0-9_]|\\)+)")


@dataclass(frozen=True)
class Plan:
    """The soak's timetable and rules, scaled to its length (the defaults are the 20-minute
    soak's; a short run keeps the same shape, its faults at the same fractions)."""

    seconds: float

    @property
    def fault_seconds(self) -> float:
        return min(60.0, self.seconds / 10)

    def fault_at(self, index: int) -> float:
        return self.seconds * (0.3, 0.5, 0.7)[index]

    def rules(self) -> Rules:
        window = min(60.0, max(30.0, self.seconds / 20))
        return Rules(
            # Ends a window before the first fault: the first quiet window is the last
            # before it (300 s, then 300-360 s, in 20 minutes).
            warmup=min(300.0, self.fault_at(0) - window),
            window=window,
            # Until the next fault at the latest (faults are 20% of the length apart).
            recovery=min(60.0, self.seconds / 5 - self.fault_seconds),
        )


# -- the sink --------------------------------------------------------------------------------


class EndpointSink:
    """The subscribers' endpoints, `/hooks/<n>` on one port of this process: remembers the
    `webhook-id` of each delivery an endpoint answered 200 (the down ones once `recover`ed)."""

    def __init__(self) -> None:
        self.delivered: set[tuple[int, str]] = set()
        self.requests: Counter[str] = Counter()
        self.down = True  # FAILING and HANGING, until `recover`
        self._runner: web.AppRunner | None = None

    def recover(self) -> None:
        self.down = False

    async def _hook(self, request: web.Request) -> web.Response:
        endpoint = int(request.match_info["n"])
        await request.read()
        if self.down and endpoint in HANGING:
            self.requests["hung"] += 1
            await asyncio.Event().wait()  # cancelled when the delivery gives up
        if self.down and endpoint in FAILING:
            self.requests["500"] += 1
            return web.Response(status=500, text="failing on purpose")
        self.requests["200"] += 1
        self.delivered.add((endpoint, request.headers.get("webhook-id", "")))
        return web.Response(text="ok")

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{n}", self._hook)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# -- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    infrastructure: Infrastructure
    env: dict[str, str]
    servers: dict[str, Server]
    sandbox: ChildProcess
    sandbox_url: str
    sink_port: int
    slack_integration: str = ""
    github_integration: str = ""
    github_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    incoming_url: str = ""
    endpoints: list[str] = field(default_factory=list)  # ids, by sink path number

    def topic(self, name: str) -> str:
        return f"{self.infrastructure.topic_namespace}.{name}"

    def pids(self) -> dict[str, int | None]:
        children = {name: server.child for name, server in self.servers.items()}
        infrastructure = self.infrastructure
        children |= {"sandbox": self.sandbox, "kafka": infrastructure.broker}
        children |= {"mongo": infrastructure.mongo}
        if infrastructure.broker_proxy is not None:
            children["kafka-proxy"] = infrastructure.broker_proxy
        pids = {n: c.process.pid if c.alive() else None for n, c in children.items()}
        return {**pids, "bench": os.getpid()}

    def urls(self) -> dict[str, str]:
        return {name: server.url for name, server in self.servers.items()}

    def ports(self) -> dict[int, str]:
        """Who listens where: the services, the broker (its proxy), MongoDB, the sink, the
        sandbox."""
        infrastructure = self.infrastructure
        urls = {**self.urls(), "sandbox": self.sandbox_url}
        ports = {int(url.rpartition(":")[2]): name for name, url in urls.items()}
        ports[int(infrastructure.kafka_bootstrap.rpartition(":")[2])] = "kafka"
        ports[infrastructure.mongo_port] = "mongo"
        ports[self.sink_port] = "sink"
        return ports


def start_stack(harness: Harness) -> Stack:
    infrastructure = harness.new_infrastructure("soak", proxied=True)
    creds = credentials(infrastructure.data_dir)
    sandbox_port = free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **service_environment(creds, sandbox_port, sandbox_url),
        **RETENTION,
        "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
    }
    servers = {
        name: harness.start_service(name, env, wait=False, infrastructure=infrastructure)
        for name in SERVICES
    }
    for server in servers.values():
        harness.wait_ready(server)
    gateway_port = servers["gateway"].url.rpartition(":")[2]
    # The stand-ins send their events to the origin's app-level URLs: here, the gateway.
    argv = [sys.executable, "-m", "services.cli", "sandbox", "--port", str(sandbox_port)]
    sandbox = harness.start_process(
        "sandbox", argv, env={**infrastructure.env(), "HOOKHUB_HTTP_PORT": gateway_port}
    )
    wait_answering(sandbox, sandbox_url + "/readyz", "sandbox")
    stack = Stack(infrastructure, env, servers, sandbox, sandbox_url, free_port())
    _set_up(stack, creds["slack_bot_token"])
    return stack


def _set_up(stack: Stack, bot_token: str) -> None:
    token = stack.infrastructure.admin_token
    oauth, sync = stack.servers["oauth"].url, stack.servers["sync"].url
    stack.slack_integration = create_integration(
        oauth, token, "slack", WORKSPACE, {"bot_token": bot_token}
    )
    mappings = [
        {"external_channel_id": slack, "channel_id": chat} for slack, chat in SLACK_CHANNELS.items()
    ]
    path = f"/api/integrations/{stack.slack_integration}/mappings"
    asyncio.run(create_each(sync, token, path, mappings, 1))
    stack.github_integration = github_integration(oauth, token, stack.github_secret, WORKSPACE)
    gateway, delivery = stack.servers["gateway"].url, stack.servers["delivery"].url
    webhook = {"workspace_id": WORKSPACE, "target_channel_id": "ch_soak_incoming", "name": "soak"}
    [made] = asyncio.run(create_each(gateway, token, "/api/incoming-webhooks", [webhook], 1))
    stack.incoming_url = made["url"]
    sink = f"http://127.0.0.1:{stack.sink_port}/hooks"
    endpoints = [
        {
            "workspace_id": WORKSPACE,
            "name": f"soak {n}",
            "url": f"{sink}/{n}",
            "events": ["message.created", "github.push"],
            "retry_schedule": RETRY_SCHEDULE,
            "timeout_seconds": ENDPOINT_TIMEOUT,
        }
        for n in range(ENDPOINTS)
    ]
    made_endpoints = asyncio.run(
        create_each(delivery, token, "/api/outgoing-webhooks", endpoints, 5)
    )
    stack.endpoints = [endpoint["id"] for endpoint in made_endpoints]


# -- the load --------------------------------------------------------------------------------


@dataclass
class Stream:
    """One kind of load: the ids the stack accepted, and why the others were refused."""

    name: str
    rate: float
    accepted: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    answers: list[float] = field(default_factory=list)  # s, of the HTTP requests

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.answers)
        return {
            "rate": self.rate,
            "accepted": len(self.accepted),
            "refused": dict(self.refused),
            "answer_p50_ms": _percentile_ms(ordered, 0.50),
            "answer_p99_ms": _percentile_ms(ordered, 0.99),
        }


def chat_event(run: str, seq: int) -> ChatEvent:
    """A message in one of the mapped chat channels, its id in its text (for Slack)."""
    chat_channels = list(SLACK_CHANNELS.values())
    name = f"soak_{run}_{seq:06d}"
    channel = chat_channels[seq % len(chat_channels)]
    return message_created(name, WORKSPACE, channel, f"soak=evt_bench_{name} {TEXT}")


class Load:
    """The four streams, each paced for `seconds` (see the module's docstring)."""

    def __init__(self, stack: Stack, run: str, http: aiohttp.ClientSession, producer: Any) -> None:
        self.stack = stack
        self.run = run
        self.http = http
        self.producer = producer
        self.streams = {name: Stream(name, rate) for name, rate in RATES.items()}
        self.push = PAYLOAD.read_bytes()

    async def drive(self, seconds: float) -> None:
        senders: dict[str, Callable[[int], Awaitable[None]]] = {
            "chat": self.send_chat,
            "github": self.send_github,
            "incoming": self.send_incoming,
            "slack": self.send_slack,
        }
        await asyncio.gather(
            *(
                _paced(senders[name], stream.rate, round(stream.rate * seconds))
                for name, stream in self.streams.items()
            )
        )

    async def send_chat(self, seq: int) -> None:
        stream = self.streams["chat"]
        event = chat_event(self.run, seq)
        topic = self.stack.topic(Topic.CHAT_EVENTS)
        try:
            ack = await self.producer.send(topic, event.to_kafka(), key=event.partition_key())
            await ack
        except Exception as exc:  # the broker is away: not accepted
            stream.refused[type(exc).__name__] += 1
            return
        stream.accepted.append(event.id)

    async def send_github(self, seq: int) -> None:
        delivery = str(uuid.uuid4())
        headers = signed_headers(self.push, "push", delivery, self.stack.github_secret)
        integration = self.stack.github_integration
        url = f"{self.stack.servers['gateway'].url}/api/webhooks/github/{integration}"
        event_id = derived_id("github", integration, delivery)
        await self._post("github", event_id, url, self.push, headers)

    async def send_incoming(self, seq: int) -> None:
        item = f"in_{self.run}_{seq:06d}"
        body = {"text": f"soak={item} Deploy of api-server finished", "username": "soak-bot"}
        headers = {"Content-Type": "application/json"}
        await self._post("incoming", item, self.stack.incoming_url, orjson.dumps(body), headers)

    async def send_slack(self, seq: int) -> None:
        item = f"sl_{self.run}_{seq:06d}"
        channels = list(SLACK_CHANNELS)
        body = {
            "channel": channels[seq % len(channels)],
            "user": SLACK_USER,
            "text": f"soak={item} is the deploy done?",
        }
        url = self.stack.sandbox_url + "/sandbox/api/slack/messages"
        headers = {"Content-Type": "application/json"}

        def delivered(status: int, answer: bytes) -> str | None:
            # The sandbox answers 201; `delivered` is the gateway's status for the event.
            gateway = orjson.loads(answer).get("delivered") if status == 201 else None
            return None if gateway and 200 <= gateway < 300 else f"gateway_{gateway}"

        await self._post("slack", item, url, orjson.dumps(body), headers, delivered)

    async def _post(
        self,
        kind: str,
        item: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        refusal: Callable[[int, bytes], str | None] = lambda status, _: (
            None if 200 <= status < 300 else f"http_{status}"
        ),
    ) -> None:
        """POSTs one item; `refusal(status, body)` says why it was not accepted (None: it
        was)."""
        stream = self.streams[kind]
        started = time.perf_counter()
        try:
            async with self.http.post(url, data=body, headers=headers) as answer:
                status, text = answer.status, await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            stream.refused[type(exc).__name__] += 1
            return
        stream.answers.append(time.perf_counter() - started)
        refused = refusal(status, text)
        if refused is None:
            stream.accepted.append(item)
        else:
            stream.refused[refused] += 1


# -- faults ----------------------------------------------------------------------------------


class Faults:
    """The three faults, each at its time; `done` holds those that ended (with their span)."""

    def __init__(self, harness: Harness, stack: Stack, plan: Plan, clock: Callable[[], float]):
        self.harness = harness
        self.stack = stack
        self.plan = plan
        self.clock = clock
        self.done: list[Fault] = []

    async def run(self) -> None:
        steps = [
            ("broker stopped", self.broker),
            ("MongoDB stopped", self.mongo),
            ("delivery killed", self.delivery),
        ]
        for index, (name, step) in enumerate(steps):
            await asyncio.sleep(max(0.0, self.plan.fault_at(index) - self.clock()))
            started = self.clock()
            print(f"bench: soak at {started:.0f} s: {name}", flush=True)
            await step()
            self.done.append(Fault(name, started, self.clock()))

    async def broker(self) -> None:
        proxy = self.stack.infrastructure.broker_proxy
        assert proxy is not None
        proxy.process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(self.plan.fault_seconds)
        proxy.process.send_signal(signal.SIGUSR2)

    async def mongo(self) -> None:
        infrastructure = self.stack.infrastructure
        infrastructure.mongo.terminate()
        until = self.clock() + self.plan.fault_seconds
        await _exited(infrastructure.mongo)
        await asyncio.sleep(max(0.0, until - self.clock()))
        self.harness.start_mongo_again(infrastructure)

    async def delivery(self) -> None:
        old = self.stack.servers["delivery"]
        old.child.process.kill()
        await _exited(old.child)
        new = self.harness.start_service(
            "delivery", self.stack.env, wait=False, infrastructure=self.stack.infrastructure
        )
        self.stack.servers["delivery"] = new
        await _ready(new)


async def _exited(child: ChildProcess) -> None:
    for _ in range(100):  # 10 s
        if not child.alive():
            return
        await asyncio.sleep(0.1)
    child.kill()  # SIGTERM was not enough


async def _ready(server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if not server.child.alive():
                raise BenchError(f"{server.name} exited after its restart: {server.child.log_path}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(server.url + "/readyz") as answer:
                    if answer.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise BenchError(f"{server.name} was not ready within {READY_SECONDS:g} s of its restart")


# -- accounting ------------------------------------------------------------------------------


async def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every record's value on `topic`, from the beginning to its end now."""
    from aiokafka import AIOKafkaConsumer

    from shared.kernel.kafka import partitions_of

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[bytes] = []

        async def behind() -> bool:
            for partition, end in ends.items():
                if await consumer.position(partition) < end:
                    return True
            return False

        while await behind():
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            values += [record.value for records in batches.values() for record in records]
        return values
    finally:
        await consumer.stop()


def marks(texts: Iterable[bytes]) -> Counter[str]:
    """In how many of `texts` (records, messages) each `soak=<id>` appears: once a text
    however often it holds it (an inbound envelope has it in `text` and in `blocks`)."""
    return Counter(
        item
        for text in texts
        for item in {m.replace(b"\\", b"").decode() for m in _MARK.findall(text)}
    )


async def slack_texts(http: aiohttp.ClientSession, stack: Stack) -> list[bytes]:
    texts = []
    for channel in SLACK_CHANNELS:
        url = f"{stack.sandbox_url}/sandbox/api/slack/channels/{channel}/messages"
        async with http.get(url) as answer:
            items = (await answer.json())["items"]
        texts += [str(item.get("text", "")).encode() for item in items]
    return texts


@dataclass
class Accounting:
    verdicts: list[Verdict]
    figures: dict[str, Any]


async def account(stack: Stack, load: Load, sink: EndpointSink, sampler: Sampler) -> Accounting:
    bootstrap = stack.infrastructure.kafka_bootstrap
    letters = [orjson.loads(v) for v in await read_topic(bootstrap, stack.topic(DEAD_LETTER_TOPIC))]
    inbound = marks(await read_topic(bootstrap, stack.topic(Topic.CHAT_INBOUND)))
    async with aiohttp.ClientSession() as http:
        in_slack = marks(await slack_texts(http, stack))
    streams = load.streams
    events = streams["chat"].accepted + streams["github"].accepted
    by_message = {derived_id(event, prefix="msg"): event for event in events}
    outcomes = Outcomes(
        delivered=frozenset(
            (stack.endpoints[n], by_message[msg]) for n, msg in sink.delivered if msg in by_message
        ),
        dead_lettered=frozenset((d["endpoint_id"], d["event_id"]) for d in letters),
        failed=frozenset(sampler.failed),
    )
    open_fields = ["event_id", "endpoint_id", "status", "attempts", "last_error", "updated_at"]
    still_open = await sampler.find("deliveries", {"status": {"$in": list(PENDING)}}, open_fields)
    verdicts = [
        left_open("deliveries", still_open),
        deliveries("chat events", streams["chat"].accepted, stack.endpoints, outcomes),
        deliveries("GitHub webhooks", streams["github"].accepted, stack.endpoints, outcomes),
        arrivals("chat → Slack", streams["chat"].accepted, in_slack, exactly_once=True),
        arrivals("Slack → chat", streams["slack"].accepted, inbound, exactly_once=True),
        arrivals("incoming webhooks", streams["incoming"].accepted, inbound, exactly_once=False),
    ]
    poison = await read_topic(bootstrap, stack.topic("hookhub.dead-letters"))
    answers = sorted(seconds for stream in streams.values() for seconds in stream.answers)
    figures = {
        "streams": {name: stream.summary() for name, stream in streams.items()},
        "answer_p50_ms": _percentile_ms(answers, 0.50),
        "answer_p99_ms": _percentile_ms(answers, 0.99),
        "sink_requests": dict(sink.requests),
        "dead_letters": len(letters),
        "failed_deliveries_seen": len(sampler.failed),
        "chat_events_echoed_to_chat_inbound": sum(inbound[e] for e in streams["chat"].accepted),
        "consumer_dead_letters": len(poison),
        "lost": await whereabouts(sampler, stack.endpoints, streams, outcomes, in_slack),
    }
    return Accounting(verdicts, figures)


async def whereabouts(
    sampler: Sampler,
    endpoints: list[str],
    streams: dict[str, Stream],
    outcomes: Outcomes,
    in_slack: Counter[str],
) -> dict[str, Any]:
    """What MongoDB still says of the first items lost (their delivery, their outbox job),
    to tell where each stopped."""
    events = streams["chat"].accepted + streams["github"].accepted
    _, pairs = ends(events, endpoints, outcomes)
    to_slack = missing(streams["chat"].accepted, in_slack)
    found: dict[str, Any] = {}
    if pairs:
        query: dict[str, Any] = {"$or": [{"endpoint_id": p, "event_id": e} for p, e in pairs[:20]]}
        fields = ["event_id", "endpoint_id", "status", "attempts", "last_error", "lease_owner"]
        found["deliveries"] = await sampler.find("deliveries", query, fields)
    if to_slack:
        messages = ["msg_" + event.removeprefix("evt_bench_") for event in to_slack[:20]]
        query = {"message_id": {"$in": messages}}
        fields = ["message_id", "status", "error", "lease_owner", "next_attempt_at", "attempts"]
        found["sync_outbox"] = await sampler.find("sync_outbox", query, fields)
    return found


# -- the benchmark ---------------------------------------------------------------------------


class Soak:
    name = "soak"
    title = "a steady mixed load through one stack, with faults"

    def run(self, harness: Harness) -> BenchmarkResult:
        plan = Plan(harness.options.soak_seconds)
        stack = start_stack(harness)
        print(f"bench: soak stack ready; {plan.seconds:g} s of load from now", flush=True)
        # The bench's own Kafka clients log every failed reconnect while the broker is away.
        kafka_log = logging.getLogger("aiokafka")
        level = kafka_log.level
        kafka_log.setLevel(logging.CRITICAL)
        try:
            return asyncio.run(self._soak(harness, stack, plan))
        finally:
            kafka_log.setLevel(level)

    async def _soak(self, harness: Harness, stack: Stack, plan: Plan) -> BenchmarkResult:
        from aiokafka import AIOKafkaProducer

        infrastructure = stack.infrastructure
        sink = EndpointSink()
        await sink.start(stack.sink_port)
        producer = AIOKafkaProducer(bootstrap_servers=infrastructure.kafka_bootstrap, acks="all")
        await producer.start()
        sampler = Sampler(
            infrastructure.kafka_bootstrap,
            infrastructure.topic_namespace,
            infrastructure.mongo_uri,
            infrastructure.mongo_db,
            stack.pids,
            stack.urls,
            stack.ports,
        )
        timeout = aiohttp.ClientTimeout(total=15)
        # The load's clients keep the connections they use: aiohttp's own pool reuses the
        # one idle longest, so every connection a burst opened stays warm for as long as the
        # load goes on, and the gateway's descriptors would measure the load generator.
        http = aiohttp.ClientSession(timeout=timeout, connector=NewestFirst(limit=50))
        try:
            load = Load(stack, harness.run_id, http, producer)
            await _first_of_each(load, sink)
            started = time.monotonic()

            def clock() -> float:
                return time.monotonic() - started

            faults = Faults(harness, stack, plan, clock)
            samples: list[Sample] = []
            fault_task = asyncio.ensure_future(faults.run())
            recovery = asyncio.ensure_future(_recover(sink, plan, clock))
            sampling = asyncio.ensure_future(_sample_every(sampler, samples, clock, plan.seconds))
            with CpuWindow({n: pid for n, pid in stack.pids().items() if pid}) as cpu:
                await load.drive(plan.seconds)
                await fault_task
                await recovery
                await sampling
            drained = await _drain(sampler, sink, stack, http)
            accounting = await account(stack, load, sink, sampler)
        finally:
            await http.close()
            await producer.stop()
            await sampler.close()
            await sink.stop()
        return _result(plan, samples, faults.done, accounting, drained, cpu)


async def _recover(sink: EndpointSink, plan: Plan, clock: Callable[[], float]) -> None:
    """The down endpoints answer 200 from `RECOVER_AT` of the length on."""
    await asyncio.sleep(max(0.0, plan.seconds * RECOVER_AT - clock()))
    print(f"bench: soak at {clock():.0f} s: the down endpoints are back", flush=True)
    sink.recover()


async def _first_of_each(load: Load, sink: EndpointSink) -> None:
    """One chat event and one GitHub webhook through to a healthy endpoint before the clock
    starts (the caches of new integrations fill within seconds); not counted."""
    check = Load(load.stack, load.run + "check", load.http, load.producer)
    deadline = time.monotonic() + CHECK_SECONDS
    while time.monotonic() < deadline:
        if not check.streams["chat"].accepted:
            await check.send_chat(0)
        if not check.streams["github"].accepted:
            await check.send_github(0)
        events = check.streams["chat"].accepted + check.streams["github"].accepted
        wanted = {derived_id(event, prefix="msg") for event in events}
        seen = {msg for n, msg in sink.delivered if n == HEALTHY[0]}
        if len(events) == 2 and wanted <= seen:
            return
        await asyncio.sleep(1.0)
    raise BenchError(
        f"a first chat event and GitHub webhook did not reach the sink in {CHECK_SECONDS:g} s: "
        f"{ {n: s.summary() for n, s in check.streams.items()} }, sink {dict(sink.requests)}"
    )


async def _sample_every(
    sampler: Sampler, samples: list[Sample], clock: Callable[[], float], seconds: float
) -> None:
    due = 0.0
    while due <= seconds:
        await asyncio.sleep(max(0.0, due - clock()))
        samples.append(await sampler.sample(round(clock(), 1)))
        due += SAMPLE_EVERY


async def _drain(
    sampler: Sampler, sink: EndpointSink, stack: Stack, http: aiohttp.ClientSession
) -> float | None:
    """Seconds until no delivery is pending, no sync outbox job queued, and nothing new
    arrives at the sink or in Slack for 10 s (None: not within DRAIN_SECONDS)."""
    started = time.monotonic()
    last: tuple[int, int] | None = None
    while time.monotonic() - started < DRAIN_SECONDS:
        sample = await sampler.sample(0.0)  # also keeps the failed deliveries up to date
        queued = await sampler.find("sync_outbox", {"status": "queued"}, ["_id"])
        now = (len(sink.delivered), len(await slack_texts(http, stack)))
        if sample.pending == 0 and queued == [] and now == last:
            return round(time.monotonic() - started, 1)
        last = now
        await asyncio.sleep(10.0)
    return None


def _result(
    plan: Plan,
    samples: list[Sample],
    faults: list[Fault],
    accounting: Accounting,
    drained: float | None,
    cpu: CpuWindow,
) -> BenchmarkResult:
    rules = plan.rules()
    verdicts = accounting.verdicts + judge(
        samples, faults, plan.seconds, rules, SERVICES, KEPT_LONGER
    )
    failed = [v for v in verdicts if v.ok is False]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    outcome = f"{len(failed)} targets NOT MET" if failed else "every target judged met"
    title = f"hookhub soak, {plan.seconds:g} s: {outcome}"
    picture = plot(samples, faults, RESULTS_DIR / f"soak-{stamp}.png", title)
    record = {
        "benchmark": "soak",
        "seconds": plan.seconds,
        "rules": asdict(rules),
        "drained_in_s": drained,
        "faults": [asdict(fault) for fault in faults],
        "accounting": accounting.figures,
        "verdicts": [v.to_json() for v in verdicts],
        "passed": not failed,
        "samples": [sample.to_json() for sample in samples],
        "plot": str(picture),
    }
    path = RESULTS_DIR / f"soak-{stamp}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    ours = _measurement(plan, accounting.figures, failed)
    cpu.apply(ours)
    streams = accounting.figures["streams"]
    notes = [_verdict_line(v) for v in verdicts]
    notes += [
        "load: "
        + ", ".join(
            f"{name} {s['accepted']:,} accepted, refused {s['refused'] or 'none'}"
            for name, s in streams.items()
        ),
        f"drained in {drained:g} s" if drained is not None else "NOT drained",
        *(
            [f"what MongoDB says of the first lost: {accounting.figures['lost']}"]
            if accounting.figures["lost"]
            else []
        ),
        "p50/p99: the HTTP answers of the gateway and the Slack stand-in, faults included; "
        "CPU: over the load, less the delivery process and MongoDB (restarted by the faults)",
        f"samples, faults, accounting and verdicts: {path}; plot: {picture}",
    ]
    setup = (
        f"{plan.seconds:g} s, "
        + ", ".join(f"{name} {rate:g}/s" for name, rate in RATES.items())
        + f"; faults of {plan.fault_seconds:g} s at "
        + ", ".join(f"{f.start:.0f} s" for f in faults)
    )
    return BenchmarkResult("soak", Soak.title, ours, None, notes, setup=setup, unit="accepted/s")


def _measurement(plan: Plan, figures: dict[str, Any], failed: list[Verdict]) -> Measurement:
    """The table's row: items accepted a second; an "error" is a target not met."""
    accepted = sum(stream["accepted"] for stream in figures["streams"].values())
    return Measurement(
        label="hookhub, one stack",
        rps=round(accepted / plan.seconds, 2),
        p50_ms=figures["answer_p50_ms"],
        p90_ms=None,
        p99_ms=figures["answer_p99_ms"],
        max_ms=None,
        ok=accepted,
        errors=len(failed),
        error_kinds=dict(Counter(v.rule for v in failed)),
        window_s=plan.seconds,
        cpu_cores={},
    )


def _verdict_line(verdict: Verdict) -> str:
    mark = {True: "met", False: "NOT MET", None: "not judged"}[verdict.ok]
    return f"{verdict.rule}, {verdict.subject}: {mark}: {verdict.detail}"


BENCHMARK = Soak()
