"""Benchmark "delivery": outgoing webhooks delivered per second by one delivery process, and
how long an event takes from `hookhub.chat.events` to the subscriber at a steady 200/s.

One `hookhub serve delivery` process, one outgoing webhook (`events: ["*"]`, every other
setting at its default, so `max_concurrency` 10) created through the management API and
pointing at `bench.sink` on loopback, a cheap HTTP/1.1 server in its own process that answers
`200` and notes which event arrived when. Every event is a ~1 KB `message.created` chat
event carrying `data.bench_seq` and `data.sent_at` (`time.time()` when it was published).

Five parts:

1. **Throughput** (`delivery`). With the delivery process stopped, N events are published to
   `<namespace>.hookhub.chat.events` (keyed by channel, as the chat product does); then the
   process is started against that backlog. Timed by the sink: from the first request to
   the one that completes the N distinct events. Each event is fanned out (a delivery
   written to MongoDB), signed, POSTed and its attempt logged; after the window the harness
   waits until the delivery log holds every attempt and says how long after the window
   that was. Baseline: `bench.sender`, an httpx loop with as many requests in flight as
   the endpoint's `max_concurrency`, POSTing the same N bodies with the same headers to
   the same sink, timed the same way. A note gives the same loop on aiohttp, the client
   the delivery service sends with, for what the service adds to it.
2. **Logged** (`delivery-logged`, `delivery-floor`). What #48 measures the delivery design
   against: hookhub's deliveries with their attempt logged per second (from the sink's
   first request to the moment the attempt log held the last one) beside two loops that
   also keep a record: `bench.sender` with `--log-uri`, sending the same N signed requests
   to the same sink with the endpoint's `max_concurrency` in flight, and writing one attempt
   document per request (the fields of `delivery_attempts`) into the run's MongoDB, a
   collection of its own (`bench_attempts`, dropped before each run, with the attempt log's
   indexes), by `insert_many` of up to 500 in the background, at least every 100 ms; timed
   from the first request to the last document written. (1) `httpx + attempt log`: the
   httpx loop; (2) the floor: the same on bare keep-alive sockets (asyncio streams,
   hand-written requests). Each runs before hookhub's burst and after it (the machine is
   shared); the table shows the mean, a note both. Targets (#48): ≥ 1.0 of (1), ≥ 0.3 of
   the floor. Notes give the CPU per logged delivery of the sending process and of MongoDB.
3. **Latency** (`delivery-latency`). The running delivery process gets 100 events/s (in a
   note), then 200 events/s (the table), paced, for `--warmup` + `--duration` seconds; the
   sink takes receive time minus `sent_at` for every event after the warm-up. Baseline:
   the same httpx loop paced at 200/s (a client, loopback and the sink). Notes check the
   targets (p50 50 ms, p99 250 ms) and, for comparison, give the broker alone: the same
   events at 200/s to a bare aiokafka consumer with the service consumer's fetch settings.
4. **kill -9** (`delivery-kill`), after the baselines. Two delivery processes in one
   consumer group (the topic's partitions, `HOOKHUB_KAFKA_PARTITIONS`, split between them;
   session timeout 6 s and lease 5 s, so that the take-over takes seconds), the same
   endpoint; once both hold partitions, 10,000 events are published at once. When the
   second process's own `/metrics` say it has made 1,666 attempts (a third of its share,
   its attempts out and outcomes unwritten read at that moment), it is killed with
   SIGKILL; the first takes its partitions over after the session timeout, reads their
   uncommitted batches again, and its scheduler claims what the dead one held once its
   heartbeat is older than the lease. The sink counts by `webhook-id`: every event
   delivered at least once (nothing lost) and the requests beyond the first of an id (the
   duplicates; #48's target ≤ 1% of the events), the time to the last event, and how long
   after the kill it arrived. Then each event must have one `deliveries` document in
   MongoDB, completed. No baseline: the table is judged against the targets.
5. **Many endpoints** (`delivery-logged-20`, `delivery-floor-20`; issue #60), last, on a
   MongoDB database and topics of its own (the parts before filled the run's). Part 2 again
   with 20 outgoing webhooks, each its own path on the sink (`/e/<i>`, every setting at its
   default), all subscribed: 600 events (as an outside measurement had them) published
   while the delivery process is stopped, so 12,000 deliveries, timed from the sink's first
   request to the moment the attempt log held them all. The same two loops send the same
   12,000 signed requests (each event to the 20 paths in turn, a secret a path) with as
   many in flight in all as the delivery process allows the 20 endpoints (each its
   `max_concurrency`, at most a quarter of `HOOKHUB_DELIVERY_MAX_IN_FLIGHT` a lane, that
   many in all: 128 by default), before and after hookhub's burst. Counted by endpoint:
   each path must have received each event, no other path anything and no other event
   (one `webhook-id` an event), and for hookhub MongoDB must hold each endpoint's delivery
   of each event completed with its attempt logged, once; only a delivery found at both
   counts, anything else is an error (the table flagged). Targets: ≥ 1.0 of httpx + attempt
   log (#48's), ≥ 0.45 of the floor (#60). Notes give the CPU per logged delivery as part 2's.

Knobs for a quick run (environment): `BENCH_DELIVERY_EVENTS` (parts 1 and 2's backlog,
10,000), `BENCH_DELIVERY_ENDPOINTS` (part 5's endpoints, 20; its tables are named by it) and
`BENCH_DELIVERY_FANOUT_EVENTS` (part 5's events, 600).

The delivery process is stopped before the baselines run, so they never compete for CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pymongo.database import Database

from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    Infrastructure,
    Measurement,
    Server,
    _cpu_times,
    _host,
    mean_of,
    ratio_note,
    wait_answering,
)
from bench.sender import (
    CHANNELS,
    EVENT_TYPE,
    LOG_BATCH,
    LOG_INTERVAL,
    WORKSPACE,
    event_id,
    loop_endpoints,
    message_data,
    webhook_request,
)
from services.delivery.deliveries.dispatcher import LANE_SHARE
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.embedded import ChildProcess, free_port
from shared.kernel.envelopes import ChatEvent, ProviderEvent, Topic
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.settings import DeliverySettings

EVENTS = 10_000  # pre-published for the throughput part
RATE = 200.0  # events per second for the latency part
# How long the harness waits, after the last delivery, for the attempt log to hold them all.
LOG_WAIT = 180.0
TARGET_P50_MS = 50.0
TARGET_P99_MS = 250.0
TARGET_P99_48_MS = 60.0  # #48's, at the same 200 events/s
SINK_PATH = "/hooks/bench"
# The logging loops' attempt log: a collection of its own in the run's database.
LOOP_LOG = "bench_attempts"
TARGET_OF_LOGGED = 1.0  # #48: hookhub's logged/s ≥ 1.0 of httpx + attempt log
TARGET_OF_FLOOR = 0.3  # #48: and ≥ 0.3 of the floor (bare sockets + attempt log)
ACTOR = {"type": "user", "id": "usr_01jcz8w3m5q7r9t2v4x6y8"}
# The many-endpoint part (#60): each event of a backlog to FANOUT_ENDPOINTS endpoints, as an
# outside measurement had it (600 events x 20 endpoints, 100 in flight: 0.22 of the floor).
FANOUT_ENDPOINTS = 20
FANOUT_EVENTS = 600
FANOUT_PATH = "/e"  # endpoint i at /e/<i> on the sink
FANOUT_PHASE = "fanout"
TARGET_OF_FLOOR_MANY = 0.45  # #60: ≥ 0.45 of the floor with many endpoints
# Environment knobs (a quick run): the one-endpoint backlog (EVENTS), the many-endpoint
# part's endpoints and events.
BENCH_EVENTS = "BENCH_DELIVERY_EVENTS"
BENCH_ENDPOINTS = "BENCH_DELIVERY_ENDPOINTS"
BENCH_FANOUT_EVENTS = "BENCH_DELIVERY_FANOUT_EVENTS"
LOGGED_NOTE = (
    "logged/s: requests (deliveries) whose attempt is written, from the first request "
    "to the last one written (hookhub: the sink's first request to the last delivery "
    "written with its first attempt in its document, one insert a delivery)"
)
# The kill run: a backlog for two delivery processes; the second is killed once it has made
# a sixth of the attempts (a third of its half of the partitions' share).
KILL_EVENTS = 10_000
KILL_AFTER = KILL_EVENTS // 6
KILL_PHASE = "kill"
KILL_WAIT = 240.0  # s for every event to reach the sink, the kill and the take-over included
TARGET_DUPLICATES = 0.01  # #48: duplicates ≤ 1% of the events in the kill run
# The group gives a dead member's partitions away after its session timeout, and the
# survivor's scheduler claims what the dead one held once its heartbeat is older than the
# lease: both lowered, so that the take-over is seconds, not a minute (the tests' values).
KILL_ENV = {"HOOKHUB_KAFKA_SESSION_TIMEOUT_MS": "6000", "HOOKHUB_LEASE_SECONDS": "5"}


class Deliveries:
    name = "delivery"
    title = "outgoing webhook deliveries"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        options = harness.options
        count = _knob(BENCH_EVENTS, EVENTS, 100)  # before anything starts: a wrong one fails
        endpoints = _knob(BENCH_ENDPOINTS, FANOUT_ENDPOINTS, 2)
        fanout_events = _knob(BENCH_FANOUT_EVENTS, FANOUT_EVENTS, 10)
        infrastructure = harness.infrastructure()
        sink = start_sink(harness)
        env = {"HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
        topic = f"{infrastructure.topic_namespace}.{Topic.CHAT_EVENTS}"
        run = harness.run_id

        delivery = harness.start_service("delivery", env=env)
        endpoint = _create_endpoint(delivery.url, infrastructure.admin_token, sink.url + SINK_PATH)
        concurrency = int(endpoint["max_concurrency"])
        # One event end to end before anything is timed: the path works.
        sink.reset(expect=1)
        check = [chat_event(run, "check", 0)]
        asyncio.run(publish_all(infrastructure.kafka_bootstrap, topic, check))
        if not sink.wait_until("complete", time.monotonic() + 60, delivery.child.alive):
            raise BenchError(f"a first event was not delivered to the sink: {sink.stats()}")
        delivery.stop()
        # The loops that keep a record, before hookhub's burst (and again after it).
        loops = LoggedLoops(harness, sink, concurrency, count)
        loops.run_all("before")

        # -- 1. throughput, ours: a backlog of `count`, one delivery process started on it ---
        events = [chat_event(run, "burst", seq) for seq in range(count)]
        body_size = len(
            webhook_request(run, "burst", 0, time.time(), "whsec_" + "A" * 32, utcnow())[0]
        )
        delivery, window, published_in = deliver_backlog(harness, sink, topic, events, env)
        harness.wait_ready(delivery)
        log = attempt_log(
            infrastructure,
            [str(endpoint["id"])],
            expected=count + 1,
            since=window.completed_at,
            process=delivery,
        )
        ours = window.measurement("hookhub delivery", from_seq=0)
        ours.p50_ms, ours.p90_ms, ours.p99_ms, ours.max_ms = log.percentiles()
        if log.failed:
            ours.errors += log.failed
            ours.error_kinds["non_2xx_attempts"] = log.failed

        # -- 2. latency, ours: the same process, at half the rate, then at 200 events/s -------
        half = self._latency(harness, sink, delivery, topic, RATE / 2, "half")
        warm = round(RATE * options.warmup)
        total = warm + round(RATE * options.duration)
        sink.reset(expect=total, open_after=warm + 1)
        window = Window.around(
            sink,
            delivery,
            infrastructure,
            timeout=options.warmup + options.duration + 60,
            publisher=os.getpid(),
        )
        window.start()
        late = asyncio.run(
            publish_paced(infrastructure.kafka_bootstrap, topic, run, "latency", RATE, total)
        )
        window.join()
        latency_ours = window.measurement("hookhub delivery", from_seq=warm, latency=True)
        delivery.stop()  # leaves the cores to the baselines
        floor = asyncio.run(kafka_floor(infrastructure.kafka_bootstrap, topic, run, warm, total))

        # -- baselines: the httpx loop against the same sink ----------------------------------
        sink.reset(expect=count)
        base_result, window = run_sender(
            harness, sink, ["--count", str(count)], concurrency, timeout=max(180.0, count / 50)
        )
        base = window.measurement(f"baseline (httpx, {concurrency} in flight)", from_seq=0)
        _apply_sender(base, base_result)
        # Not the baseline (the issue fixes that as httpx): the client hookhub sends with,
        # bare, so the note can say what the service adds to its own client.
        sink.reset(expect=count)
        _, window = run_sender(
            harness,
            sink,
            ["--count", str(count), "--client", "aiohttp"],
            concurrency,
            timeout=max(180.0, count / 50),
        )
        bare_client = window.measurement("aiohttp loop", from_seq=0)
        loops.run_all("after")
        bare_floor = loops.run(FLOOR, "after", indexes=False)

        sink.reset(expect=total, open_after=warm + 1)
        rate_args = ["--rate", f"{RATE:g}", "--warmup", f"{options.warmup:g}"]
        rate_args += ["--duration", f"{options.duration:g}"]
        paced_result, window = run_sender(
            harness, sink, rate_args, concurrency, timeout=options.warmup + options.duration + 60
        )
        latency_base = window.measurement(
            f"baseline (httpx, {concurrency} in flight)", from_seq=warm, latency=True
        )
        latency_base.errors += paced_result["errors"]
        latency_base.error_kinds.update(paced_result["error_kinds"])
        # Last: it leaves a dead member in the group until its session times out.
        killed = kill_run(harness, sink, topic, env)
        # After everything else, on a database and topics of its own: the parts above run
        # as they did before it was added.
        many = self._many_endpoints(harness, sink, env, endpoints, fanout_events)
        sink.child.stop()

        sink_cores = base.cpu_cores.get("sink")
        throughput = BenchmarkResult(
            "delivery",
            "deliveries from hookhub.chat.events",
            ours,
            base,
            notes=[
                f"{count:,} message.created events, {body_size:,}-byte webhook bodies, "
                f"{CHANNELS} channel keys; published in {published_in:.2f} s before the "
                "delivery process was started",
                log.summary(ours.window_s),
                "p50/p99: HTTP request time at the sender, at saturation: the attempt log's "
                "duration_ms for hookhub, httpx's own for the baseline",
                _sink_note(sink_cores, base.rps),
                f"for comparison, the same loop on aiohttp (the client hookhub sends with): "
                f"{bare_client.rps:,.0f} req/s; hookhub delivers at "
                f"{ours.rps / bare_client.rps if bare_client.rps else 0:.2f} of its own client",
            ],
            setup=(
                f"{count:,} pre-published events, {concurrency} in flight, "
                "first → last request at the sink"
            ),
            unit="deliveries/s",
        )
        latency = BenchmarkResult(
            "delivery-latency",
            "delivery latency, published → received",
            latency_ours,
            latency_base,
            notes=[
                _target_note(latency_ours),
                f"at {RATE / 2:g} events/s (same warm-up and duration) hookhub delivered "
                f"{half.rps:,.1f}/s, p50 {_number(half.p50_ms)} ms, p99 {_number(half.p99_ms)} ms"
                + (f", {half.errors} events MISSING" if half.errors else ""),
                "hookhub: data.sent_at (time.time() before the producer's send, acks=all) → "
                "the sink's receipt; baseline: stamped as the httpx loop builds the request",
                f"for comparison, Kafka alone: the same events at {RATE:g}/s through the same "
                "broker to a bare aiokafka consumer with the fetch settings of the service's "
                f"(fetch_max_wait_ms {FETCH_MAX_WAIT_MS}): p50 {_number(floor['p50_ms'])} ms, "
                f"p99 {_number(floor['p99_ms'])} ms ({floor['count']:,} events)",
                f"paced sends more than 5 ms late: hookhub publisher {late}, "
                f"baseline {paced_result['late_sends']}",
            ],
            setup=(
                f"{RATE:g} events/s, {options.duration:g} s measured after "
                f"{options.warmup:g} s warm-up, {concurrency} in flight"
            ),
            unit="deliveries/s",
            compare="latency",
        )
        logged = ours_logged(ours, log, count)
        per_delivery = _per_delivery_note(logged, ours, loops)
        loop_notes = [LOGGED_NOTE, loops.note(), per_delivery]
        against_loop = loops.against(
            "delivery-logged", logged, HTTPX_LOG, TARGET_OF_LOGGED, loop_notes
        )
        floor_note = (
            f"the floor with no index on its log but _id (after only): "
            f"{bare_floor.rate:,.0f} logged/s"
        )
        against_floor = loops.against(
            "delivery-floor", logged, FLOOR, TARGET_OF_FLOOR, [floor_note, *loop_notes]
        )
        return [throughput, against_loop, against_floor, latency, killed, *many]

    def _latency(
        self, harness: Harness, sink: Sink, delivery: Server, topic: str, rate: float, phase: str
    ) -> Measurement:
        """Latency of the running delivery process at `rate` events/s (no CPU figures)."""
        options = harness.options
        warm = round(rate * options.warmup)
        total = warm + round(rate * options.duration)
        sink.reset(expect=total, open_after=warm + 1)
        window = Window(
            sink, {}, timeout=options.warmup + options.duration + 60, alive=delivery.child.alive
        )
        window.start()
        bootstrap = harness.infrastructure().kafka_bootstrap
        asyncio.run(publish_paced(bootstrap, topic, harness.run_id, phase, rate, total))
        window.join()
        return window.measurement("hookhub delivery", from_seq=warm, latency=True)

    def _many_endpoints(
        self, harness: Harness, sink: Sink, env: dict[str, str], endpoints: int, events: int
    ) -> list[BenchmarkResult]:
        """The logged part again with `endpoints` endpoints, each of `events` events to each
        (issue #60): hookhub's logged/s against the same two loops, as many requests to the
        same paths with as many in flight as the delivery process allows."""
        infrastructure = harness.infrastructure()
        # A database and topics of its own (as `tracing`'s runs): the embedded MongoDB and
        # broker slow as they fill, and the parts before filled the run's.
        own = {
            "HOOKHUB_MONGO_DB": f"{infrastructure.mongo_db}_fanout",
            "HOOKHUB_TOPIC_NAMESPACE": f"{infrastructure.topic_namespace}-fanout",
        }
        env = {**env, **own}
        database = own["HOOKHUB_MONGO_DB"]
        topic = f"{own['HOOKHUB_TOPIC_NAMESPACE']}.{Topic.CHAT_EVENTS}"
        run = harness.run_id
        delivery = harness.start_service("delivery", env=env)
        paths: dict[str, str] = {}  # endpoint id → its path on the sink
        concurrencies: list[int] = []
        for i in range(endpoints):
            path = f"{FANOUT_PATH}/{i}"
            made = _create_endpoint(
                delivery.url, infrastructure.admin_token, sink.url + path, f"bench sink {i}"
            )
            paths[str(made["id"])] = path
            concurrencies.append(int(made["max_concurrency"]))
        in_flight = InFlight.of(harness, env, concurrencies)
        # One event to every endpoint before anything is timed: each path works.
        sink.reset(expect=endpoints, by_path=True)
        check = [chat_event(run, f"{FANOUT_PHASE}-check", 0)]
        asyncio.run(publish_all(infrastructure.kafka_bootstrap, topic, check))
        if not sink.wait_until("complete", time.monotonic() + 60, delivery.child.alive):
            raise BenchError(f"a first event did not reach every endpoint: {sink.stats()}")
        delivery.stop()
        loops = LoggedLoops(harness, sink, in_flight.total, events, endpoints, database)
        loops.run_all("before")

        deliveries = events * endpoints
        backlog = [chat_event(run, FANOUT_PHASE, seq) for seq in range(events)]
        delivery, window, published_in = deliver_backlog(
            harness, sink, topic, backlog, env, expect=deliveries, by_path=True
        )
        harness.wait_ready(delivery)
        log = attempt_log(
            infrastructure,
            list(paths),
            expected=deliveries + endpoints,  # and the check's
            since=window.completed_at,
            process=delivery,
            database=database,
            checks=endpoints,
        )
        ours = window.measurement(f"hookhub delivery, {endpoints} endpoints", from_seq=0)
        ours.p50_ms, ours.p90_ms, ours.p99_ms, ours.max_ms = log.percentiles()
        if log.failed:
            ours.errors += log.failed
            ours.error_kinds["non_2xx_attempts"] = log.failed
        tally = FanoutTally.at_sink(sink, list(paths.values()), run, FANOUT_PHASE, events)
        tally.read_log(infrastructure, database, paths, event_id(run, FANOUT_PHASE, 0))
        delivery.stop()
        loops.run_all("after")

        logged = ours_logged(ours, log, deliveries, tally)
        body_size = len(
            webhook_request(run, FANOUT_PHASE, 0, time.time(), "whsec_" + "A" * 32, utcnow())[0]
        )
        notes = [
            f"{events:,} message.created events x {endpoints} endpoints = {deliveries:,} "
            f"deliveries, {body_size:,}-byte webhook bodies, {CHANNELS} channel keys; "
            f"published in {published_in:.2f} s before the delivery process was started; a "
            "database and topics of this part's own",
            tally.verdict(),
            log.summary(ours.window_s),
            in_flight.note(),
            f"hookhub at the sink: {ours.rps:,.0f} deliveries/s over {ours.window_s:.2f} s",
            LOGGED_NOTE,
            loops.note(),
            _per_delivery_note(logged, ours, loops),
        ]
        return [
            loops.against(
                f"delivery-logged-{endpoints}", logged, HTTPX_LOG, TARGET_OF_LOGGED, notes
            ),
            loops.against(
                f"delivery-floor-{endpoints}",
                logged,
                FLOOR,
                TARGET_OF_FLOOR_MANY,
                notes,
                issue="#60",
            ),
        ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _knob(name: str, default: int, least: int) -> int:
    """A whole number from the environment variable `name` (`default` without one)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < least:
        raise BenchError(f"{name}: a whole number ≥ {least}, not {value!r}")
    return int(value)


@dataclass(frozen=True)
class InFlight:
    """How many attempts the delivery process has out at once over a set of endpoints: each
    lane its endpoint's `max_concurrency` workers, at most LANE_SHARE of the process's
    `HOOKHUB_DELIVERY_MAX_IN_FLIGHT`, and that many in all (services/delivery/deliveries/
    dispatcher.py)."""

    concurrencies: tuple[int, ...]
    process: int  # HOOKHUB_DELIVERY_MAX_IN_FLIGHT

    @classmethod
    def of(cls, harness: Harness, env: dict[str, str], concurrencies: list[int]) -> InFlight:
        """The setting as the delivery process gets it (the shell's environment, `--set`,
        then the benchmark's), its default without one."""
        name = "HOOKHUB_DELIVERY_MAX_IN_FLIGHT"
        value = {**os.environ, **harness.options.service_env, **env}.get(name)
        default = DeliverySettings.model_fields["delivery_max_in_flight"].default
        return cls(tuple(concurrencies), int(value) if value else int(default))

    @property
    def per_lane(self) -> int:
        return max(1, int(self.process * LANE_SHARE))

    @property
    def total(self) -> int:
        return min(sum(min(c, self.per_lane) for c in self.concurrencies), self.process)

    def note(self) -> str:
        each = sorted(set(self.concurrencies))
        named = ", ".join(str(c) for c in each)
        return (
            f"in flight: {self.total}, what the delivery process allows its "
            f"{len(self.concurrencies)} endpoints (max_concurrency {named} each, at most "
            f"{self.per_lane} a lane, {self.process} in all: HOOKHUB_DELIVERY_MAX_IN_FLIGHT); "
            "the loops as many over the same paths"
        )


@dataclass
class FanoutTally:
    """What a many-endpoint run delivered, counted by endpoint: the events each endpoint's
    path received at the sink and, for hookhub, those whose delivery MongoDB holds completed
    with its attempt logged. A delivery counts once it is in both: a wrong count elsewhere
    (another path's, a stray event's, a second copy's) is an error, never a delivery."""

    events: int
    sink: dict[str, set[int]]  # by path: the events 0 … events-1 it received
    kinds: Counter[str]
    log: dict[str, set[int]] | None = None  # by path: its endpoint's, logged and completed

    @classmethod
    def at_sink(
        cls, sink: Sink, paths: list[str], run: str, phase: str, events: int
    ) -> FanoutTally:
        """After a `by_path` run of `phase`'s events 0 … events-1: each path must have
        received each (once or more: a repeat is a duplicate, not a loss), known by its
        `webhook-id` (the event's: the same for each endpoint and attempt), no other path
        anything, and no path another event (an earlier phase's, numbered alike)."""
        stats = sink.stats()
        wanted = {derived_id(event_id(run, phase, seq), prefix="msg"): seq for seq in range(events)}
        received: dict[str, set[int]] = {}
        kinds: Counter[str] = Counter()
        for path in paths:
            ids = sink.webhook_ids(path)
            received[path] = {wanted[i] for i in ids if i in wanted}
            kinds["missing"] += events - len(received[path])
            kinds["not_an_event_of_the_run"] += len(ids - wanted.keys())
        kinds["to_another_path"] = sum(n for p, n in stats["paths"].items() if p not in paths)
        kinds["unnumbered"] = int(stats["unnumbered"])
        kinds["without_webhook_id"] = int(stats["unidentified"])
        return cls(events, received, kinds)

    def read_log(
        self, infrastructure: Infrastructure, database: str, paths: dict[str, str], first: str
    ) -> None:
        """Each endpoint's (`paths`: endpoint id → path) deliveries of the run's events
        (ids as `first`'s, the event numbered 0) in MongoDB: logged and completed, once."""
        prefix = first.removesuffix(f"{0:07d}")
        query = {
            "endpoint_id": {"$in": list(paths)},
            "event_id": {"$regex": "^" + re.escape(prefix)},
            "first_attempt": {"$exists": True},
            "status": "completed",
        }
        self.log = {path: set() for path in paths.values()}
        with _database(infrastructure, database) as db:
            rows = db.deliveries.find(query, {"_id": 0, "endpoint_id": 1, "event_id": 1})
            found = rows.to_list()
        for row in found:
            seq = int(str(row["event_id"]).removeprefix(prefix))
            logged = self.log[paths[str(row["endpoint_id"])]]
            if seq in logged:
                self.kinds["doubled_in_delivery_log"] += 1
            elif seq < self.events:
                logged.add(seq)
        self.kinds["not_logged_completed"] = sum(self.events - len(s) for s in self.log.values())

    @property
    def expected(self) -> int:
        return self.events * len(self.sink)

    @property
    def delivered(self) -> int:
        """Deliveries received at their endpoint's path and (for hookhub) logged."""
        if self.log is None:
            return sum(len(seqs) for seqs in self.sink.values())
        return sum(len(seqs & self.log.get(path, set())) for path, seqs in self.sink.items())

    def error_kinds(self) -> dict[str, int]:
        return {kind: n for kind, n in self.kinds.items() if n > 0}

    def verdict(self) -> str:
        kinds = self.error_kinds()
        problems = ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items()))
        where = "at the sink" + (" and in the delivery log" if self.log is not None else "")
        return (
            f"counted by endpoint {where}: {self.delivered:,}/{self.expected:,} deliveries, "
            f"each of the {self.events:,} events at each of the {len(self.sink)} paths"
            + (" and logged completed, once" if self.log is not None else "")
            + (": nothing lost" if not kinds else f": {problems}, NOT CLEAN")
        )


# -- the sink ------------------------------------------------------------------------------


@dataclass
class Sink:
    url: str
    child: ChildProcess

    def _client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def reset(self, expect: int, open_after: int = 1, *, by_path: bool = False) -> None:
        """`by_path`: each path's copy of an event counts (deliveries to many endpoints)."""
        params = {"expect": expect, "open_after": open_after, "by_path": int(by_path)}
        with self._client() as client:
            client.post("/_bench/reset", params=params)

    def arrivals(self, path: str) -> list[int]:
        """The events first received on `path`, in arrival order (after a `by_path` reset)."""
        with self._client() as client:
            seqs: list[int] = client.get("/_bench/arrivals", params={"path": path}).json()["seqs"]
        return seqs

    def webhook_ids(self, path: str) -> set[str]:
        """The `webhook-id`s received on `path` (after a `by_path` reset)."""
        with self._client() as client:
            ids: list[str] = client.get("/_bench/arrivals", params={"path": path}).json()[
                "webhook_ids"
            ]
        return set(ids)

    def stats(self, from_seq: int = 0) -> dict[str, Any]:
        with self._client() as client:
            stats: dict[str, Any] = client.get(
                "/_bench/stats", params={"from_seq": from_seq}
            ).json()
            return stats

    def wait_until(self, point: str, deadline: float, alive: Callable[[], bool]) -> bool:
        """Whether the sink reached `point` ("open", "complete") before `deadline`, giving up
        early once `alive()` is false (the process feeding it is gone)."""
        with self._client(timeout=10.0) as client:
            while True:
                feeding = alive()
                wait = 0.0 if not feeding else min(1.0, max(deadline - time.monotonic(), 0.0))
                answer = client.get("/_bench/wait", params={"until": point, "timeout": wait})
                if answer.json()["reached"]:
                    return True
                if not feeding or time.monotonic() >= deadline:
                    return False


def start_sink(harness: Harness, module: str = "bench.sink", name: str = "sink") -> Sink:
    """A sink-like server (`module` run with `--port`) as a process of the run, once it
    answers its ready probe."""
    port = free_port()
    child = harness.start_process(name, [sys.executable, "-m", module, "--port", str(port)])
    sink = Sink(f"http://127.0.0.1:{port}", child)
    wait_answering(child, sink.url + "/_bench/ready", name)
    return sink


class Window:
    """Watches the sink from its window opening to its completion (in a thread, so the
    caller can drive the load meanwhile) and samples the CPU of `pids` at both ends."""

    def __init__(
        self, sink: Sink, pids: dict[str, int], timeout: float, alive: Callable[[], bool]
    ) -> None:
        self.sink = sink
        self.pids = pids
        self.timeout = timeout
        self.alive = alive
        self.opened = self.completed = False
        self.completed_at = 0.0  # time.monotonic()
        self.error: BaseException | None = None
        self.cpu: dict[str, float] = {}
        self.host: dict[str, float] = {}
        self._thread = threading.Thread(target=self._watch, name="bench-window", daemon=True)

    @classmethod
    def around(
        cls,
        sink: Sink,
        service: Server,
        infrastructure: Infrastructure,
        timeout: float,
        *,
        sink_name: str = "sink",
        **more_pids: int,
    ) -> Window:
        """The window of one service process under load: its CPU, the broker's, MongoDB's
        and the sink's (and `more_pids`'), ended early if the service dies."""
        pids = {
            service.name: service.child.process.pid,
            "kafka": infrastructure.broker.process.pid,
            "mongo": infrastructure.mongo.process.pid,
            sink_name: sink.child.process.pid,
            **more_pids,
        }
        return cls(sink, pids, timeout=timeout, alive=service.child.alive)

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _watch(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            self.opened = self.sink.wait_until("open", deadline, self.alive)
            opened, started, host_started = time.perf_counter(), _cpu_times(self.pids), _host()
            if self.opened:
                self.completed = self.sink.wait_until("complete", deadline, self.alive)
            closed, ended, host_ended = time.perf_counter(), _cpu_times(self.pids), _host()
            self.completed_at = time.monotonic()
            elapsed = max(closed - opened, 1e-9)
            self.cpu = {
                name: round((ended[name] - started[name]) / elapsed, 2)
                for name in self.pids
                if name in started and name in ended
            }
            self.host = {
                name: round((host_ended[name] - host_started[name]) / elapsed, 2)
                for name in host_started
                if name in host_ended
            }
        except BaseException as exc:  # re-raised by measurement() in the caller's thread
            self.error = exc

    def measurement(self, label: str, from_seq: int, latency: bool = False) -> Measurement:
        if self.error is not None:
            raise BenchError(f"watching the sink failed: {self.error!r}") from self.error
        stats = self.sink.stats(from_seq)
        expect, open_after = stats["expect"], stats["open_after"]
        start = stats["open_at"]
        end = stats["complete_at"] or stats["last_at"]
        measured = stats["distinct"] - open_after
        window = (end - start) if start is not None and end is not None else 0.0
        missing = max(expect - stats["distinct"], 0)
        kinds: dict[str, int] = {"missing": missing} if missing else {}
        lat = stats["latency"]
        return Measurement(
            label=label,
            rps=round(measured / window, 1) if window > 0 else 0.0,
            p50_ms=lat["p50_ms"] if latency else None,
            p90_ms=lat["p90_ms"] if latency else None,
            p99_ms=lat["p99_ms"] if latency else None,
            max_ms=lat["max_ms"] if latency else None,
            ok=stats["distinct"] - (from_seq if latency else 0),
            errors=missing,
            error_kinds=kinds,
            window_s=round(window, 3),
            cpu_cores=dict(self.cpu),
            host_cores=dict(self.host),
        )


# -- the hookhub side ----------------------------------------------------------------------


def deliver_backlog(
    harness: Harness,
    sink: Sink,
    topic: str,
    events: list[ChatEvent],
    env: dict[str, str],
    *,
    expect: int | None = None,
    by_path: bool = False,
    name: str | None = None,
    **more_pids: int,
) -> tuple[Server, Window, float]:
    """Publishes `events` (no delivery process running), starts one (with `env`, named
    `name`) on that backlog and watches the sink until `expect` (every event) arrived: the
    process, still running, the window (its CPU also of `more_pids`'), and the seconds
    publishing took."""
    infrastructure = harness.infrastructure()
    published_in = asyncio.run(publish_all(infrastructure.kafka_bootstrap, topic, events))
    expect = len(events) if expect is None else expect
    sink.reset(expect=expect, by_path=by_path)
    delivery = harness.start_service("delivery", env=env, wait=False, name=name)
    timeout = max(180.0, expect / 50)
    window = Window.around(sink, delivery, infrastructure, timeout=timeout)
    window.pids.update(more_pids)
    window.start()
    window.join()
    if not delivery.child.alive():
        raise BenchError(f"the delivery service exited; its log: {delivery.child.log_path}")
    return delivery, window, published_in


def _create_endpoint(
    delivery_url: str, admin_token: str, url: str, name: str = "bench sink"
) -> dict[str, Any]:
    """An outgoing webhook for every event of the bench's workspace, the rest defaults."""
    response = httpx.post(
        delivery_url + "/api/outgoing-webhooks",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"workspace_id": WORKSPACE, "name": name, "url": url, "events": ["*"]},
        timeout=10,
    )
    if response.status_code != 201:
        raise BenchError(f"creating the outgoing webhook: {response.status_code} {response.text}")
    endpoint: dict[str, Any] = response.json()
    return endpoint


def chat_event(
    run: str, phase: str, seq: int, sent_at: float | None = None, workspace: str = WORKSPACE
) -> ChatEvent:
    return ChatEvent(
        id=event_id(run, phase, seq),
        type=EVENT_TYPE,
        workspace_id=workspace,
        occurred_at=utcnow(),
        actor=ACTOR,
        data=message_data(seq, time.time() if sent_at is None else sent_at),
    )


def _producer(bootstrap: str, linger_ms: int) -> Any:
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=1024 * 1024,
        client_id="hookhub-bench",
    )


async def publish_all(
    bootstrap: str, topic: str, events: Iterable[ChatEvent | ProviderEvent]
) -> float:
    """Publishes every event (with its headers), acknowledged; returns the seconds it took."""
    producer = _producer(bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [
            await producer.send(
                topic,
                event.to_kafka(),
                key=event.partition_key(),
                headers=list(event.kafka_headers()) or None,
            )
            for event in events
        ]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def publish_paced(
    bootstrap: str,
    topic: str,
    run: str,
    phase: str,
    rate: float,
    total: int,
    workspace: str = WORKSPACE,
) -> int:
    """Publishes `total` events of `workspace`, one every 1/rate s, each stamped with
    `sent_at` as it is handed to the producer; returns how many went out more than 5 ms
    late."""
    producer = _producer(bootstrap, linger_ms=0)
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
            event = chat_event(run, phase, seq, sent_at=time.time(), workspace=workspace)
            futures.append(await producer.send(topic, event.to_kafka(), key=event.partition_key()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return late


async def kafka_floor(bootstrap: str, like: str, run: str, warm: int, total: int) -> dict[str, Any]:
    """Publish → consume latency of the broker alone: the same paced events to a topic of
    its own (as many partitions as `like`), read by a bare aiokafka consumer with the
    defaults FastStream gives the service's consumer."""
    topic = f"{like}.bench-floor"
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, await partitions(admin, like), 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.floor",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    latencies: dict[int, float] = {}
    try:
        for _ in range(600):  # 30 s for the group join
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)

        async def consume() -> None:
            async for record in consumer:
                now = time.time()
                seq, sent = _SEQ.search(record.value), _SENT_AT.search(record.value)
                if seq and sent:
                    latencies.setdefault(int(seq.group(1)), now - float(sent.group(1)))
                if len(latencies) >= total:
                    return

        reader = asyncio.ensure_future(consume())
        await publish_paced(bootstrap, topic, run, "floor", RATE, total)
        try:
            await asyncio.wait_for(reader, 30)
        except TimeoutError:
            reader.cancel()
    finally:
        await consumer.stop()
    ordered = sorted(latency for seq, latency in latencies.items() if seq >= warm)

    def at(q: float) -> float | None:
        if not ordered:
            return None
        return 1000 * ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    return {"count": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99)}


async def partitions(admin: Any, topic: str) -> int:
    """How many partitions `topic` has (through a started AIOKafkaAdminClient)."""
    [described] = await admin.describe_topics([topic])
    return len(described["partitions"])


async def topic_partitions(bootstrap: str, topic: str) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await partitions(admin, topic)
    finally:
        await admin.close()


_SEQ = re.compile(rb'"bench_seq":(\d+)')
_SENT_AT = re.compile(rb'"sent_at":([0-9.eE+-]+)')


@dataclass
class AttemptLog:
    expected: int
    logged: int
    completed: int
    failed: int
    lag_s: float | None
    durations_ms: list[float]
    checks: int = 1  # of `expected`: the check's deliveries, before the burst

    def percentiles(self) -> tuple[float | None, float | None, float | None, float | None]:
        ordered = sorted(self.durations_ms)
        if not ordered:
            return None, None, None, None

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

        return at(0.50), at(0.90), at(0.99), ordered[-1]

    @property
    def complete(self) -> bool:
        return self.logged >= self.expected and self.lag_s is not None

    def logged_s(self, window_s: float) -> float:
        """From the sink's first request to the log holding every attempt (to the harness
        giving up, when it never did)."""
        return window_s + (self.lag_s if self.lag_s is not None else LOG_WAIT)

    def summary(self, window_s: float) -> str:
        if self.complete and self.lag_s is not None:
            rate = (self.expected - self.checks) / self.logged_s(window_s)
            when = (
                f"{self.lag_s:.1f} s after the last request reached the sink "
                f"({rate:,.0f} deliveries/s if the window ended there)"
            )
        else:
            when = f"when the harness stopped waiting ({LOG_WAIT:g} s): INCOMPLETE"
        return (
            f"delivery log (MongoDB): {self.logged:,}/{self.expected:,} deliveries with their "
            f"attempt logged, {self.completed:,} marked completed, {when}"
        )


def _database(
    infrastructure: Infrastructure, name: str | None
) -> contextlib.AbstractContextManager[Database[dict[str, Any]]]:
    """The run's database (`name` None) or another of its MongoDB, as `database()`."""
    return infrastructure.database() if name is None else _named(infrastructure, name)


@contextlib.contextmanager
def _named(infrastructure: Infrastructure, name: str) -> Iterator[Database[dict[str, Any]]]:
    with infrastructure.database() as db:
        yield db.client[name]


def attempt_log(
    infrastructure: Infrastructure,
    endpoint_ids: list[str],
    expected: int,
    since: float,
    process: Server | None = None,
    *,
    database: str | None = None,
    checks: int = 1,
) -> AttemptLog:
    """Waits (up to LOG_WAIT s) until every delivery's attempt is logged: its first in the
    delivery's document (`first_attempt`), any later one in `delivery_attempts`; the
    deliveries of `endpoint_ids`, in `database` (the run's by default), `checks` of the
    `expected` made before the burst.

    The moment it was is read from `process`'s /metrics when given (no delivery held, no
    outcome waiting for MongoDB: the writer's bulk insert acknowledged), every 10 ms, as
    the loops time their own last insert; MongoDB's counts then confirm it. Timed by the
    counts alone (every 0.2 s), the lag was the harness's: each count reads every delivery
    of the endpoint, tenths of a second on the embedded server."""
    endpoint: str | dict[str, list[str]] = (
        endpoint_ids[0] if len(endpoint_ids) == 1 else {"$in": endpoint_ids}
    )
    first = {"endpoint_id": endpoint, "first_attempt": {"$exists": True}}
    deadline = time.monotonic() + LOG_WAIT
    lag: float | None = None
    while process is not None and time.monotonic() < deadline:
        if _all_written(process):
            lag = time.monotonic() - since
            break
        time.sleep(0.01)
    with _database(infrastructure, database) as db:
        logged = completed = 0
        while time.monotonic() < deadline:
            logged = db.deliveries.count_documents(first)
            completed = db.deliveries.count_documents(
                {"endpoint_id": endpoint, "status": "completed"}
            )
            if logged >= expected and completed >= expected:
                if lag is None:  # timed by the counts (or /metrics spoke too soon)
                    lag = time.monotonic() - since
                break
            lag = None
            time.sleep(0.2)
        fields = ("duration_ms", "status_code")
        rows = [
            doc["first_attempt"]
            for doc in db.deliveries.find(first, {f"first_attempt.{f}": 1 for f in fields})
        ]
        rows += db.delivery_attempts.find(
            {"endpoint_id": endpoint}, {"_id": 0, **dict.fromkeys(fields, 1)}
        ).to_list()
    return AttemptLog(
        expected=expected,
        logged=logged,
        completed=completed,
        failed=sum(1 for row in rows if row.get("status_code") != 200),
        lag_s=lag,
        durations_ms=[float(row["duration_ms"]) for row in rows if "duration_ms" in row],
        checks=checks,
    )


# -- the baseline --------------------------------------------------------------------------


def run_sender(
    harness: Harness,
    sink: Sink,
    mode: list[str],
    concurrency: int,
    timeout: float,
    *,
    path: str = SINK_PATH,
    **more_pids: int,
) -> tuple[dict[str, Any], Window]:
    """`bench.sender` in `mode` to the sink's `path`, watched until the sink is complete."""
    result_file = harness.root / f"sender-{time.monotonic_ns()}.json"
    argv = [sys.executable, "-m", "bench.sender", "--url", sink.url + path]
    argv += ["--concurrency", str(concurrency), "--result-file", str(result_file)]
    argv += ["--run", harness.run_id, *mode]
    sender = harness.start_process("sender", argv)
    window = Window(
        sink,
        {"client": sender.process.pid, "sink": sink.child.process.pid, **more_pids},
        timeout=timeout,
        alive=sender.alive,
    )
    window.start()
    window.join()
    try:
        sender.process.wait(60)
    except Exception as exc:
        raise BenchError(f"the sender did not finish: {exc!r}") from exc
    if not result_file.exists():
        raise BenchError(f"the sender left no result; its log: {sender.log_path}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result, window


def _apply_sender(measurement: Measurement, result: dict[str, Any]) -> None:
    measurement.p50_ms = result["p50_ms"]
    measurement.p90_ms = result["p90_ms"]
    measurement.p99_ms = result["p99_ms"]
    measurement.max_ms = result["max_ms"]
    measurement.errors += result["errors"]
    measurement.error_kinds.update(result["error_kinds"])


# -- the loops that keep a record ------------------------------------------------------------

HTTPX_LOG = "httpx"
FLOOR = "raw"
LOOP_LABELS = {HTTPX_LOG: "httpx + attempt log", FLOOR: "floor: bare sockets + attempt log"}


# The loops' log keeps the two indexes `delivery_attempts` had when #48 set its targets (a
# delivery's attempts in order, the attempts of a time range), so the baselines stay what
# the targets were measured against; hookhub's own log now needs neither (its first attempt
# is in the delivery's document). The floor is also run once with none but `_id` (a note).
LOG_INDEXES: list[list[tuple[str, int]]] = [[("delivery_id", 1), ("attempt", 1)], [("at", 1)]]


@dataclass
class LoggedRun:
    """One run of `bench.sender --log-uri`: the sender's result, its sink window, and the
    CPU seconds MongoDB spent from the sender's start to its exit."""

    measurement: Measurement
    result: dict[str, Any]
    mongo_cpu_s: float
    sink_rps: float  # requests/s at the sink, first to last request

    @property
    def rate(self) -> float:
        return self.measurement.rps

    def cpu_us(self) -> tuple[float, float]:
        """(sending process, MongoDB) CPU µs per logged request."""
        logged = max(int(self.result.get("logged", 0)), 1)
        return 1e6 * float(self.result.get("cpu_s", 0.0)) / logged, 1e6 * self.mongo_cpu_s / logged


class LoggedLoops:
    """The httpx loop and the floor, each writing an attempt log, run before and after
    hookhub's burst: `events` events, each to `endpoints` paths on the sink (`SINK_PATH`
    for one, `FANOUT_PATH/<i>` for more), `concurrency` requests in flight in all, the log
    in `database` (the run's by default)."""

    def __init__(
        self,
        harness: Harness,
        sink: Sink,
        concurrency: int,
        events: int = EVENTS,
        endpoints: int = 1,
        database: str | None = None,
    ) -> None:
        self.harness = harness
        self.sink = sink
        self.concurrency = concurrency
        self.events = events
        self.endpoints = endpoints
        self.database = database
        self.runs: dict[str, dict[str, LoggedRun]] = {HTTPX_LOG: {}, FLOOR: {}}

    @property
    def requests(self) -> int:
        return self.events * self.endpoints

    @property
    def paths(self) -> list[str]:
        if self.endpoints == 1:
            return [SINK_PATH]
        return [f"{FANOUT_PATH}/{i}" for i in range(self.endpoints)]

    def run_all(self, when: str) -> None:
        for client in (HTTPX_LOG, FLOOR):
            self.runs[client][when] = self.run(client, when)

    def run(self, client: str, when: str, *, indexes: bool = True) -> LoggedRun:
        infrastructure = self.harness.infrastructure()
        many = self.endpoints > 1
        with _database(infrastructure, self.database) as db:
            db.drop_collection(LOOP_LOG)
            for keys in LOG_INDEXES if indexes else []:
                db[LOOP_LOG].create_index(keys)
        self.sink.reset(expect=self.requests, by_path=many)
        mongo = {"mongo": infrastructure.mongo.process.pid}
        mongo_before = _cpu_times(mongo)
        mode = ["--count", str(self.events), "--client", client, "--phase", f"log-{when}"]
        if many:
            mode += ["--endpoints", str(self.endpoints)]
        log_db = self.database or infrastructure.mongo_db
        mode += ["--log-uri", infrastructure.mongo_uri, "--log-db", log_db]
        mode += ["--log-collection", LOOP_LOG]
        result, window = run_sender(
            self.harness,
            self.sink,
            mode,
            self.concurrency,
            timeout=max(180.0, self.requests / 50),
            path=SINK_PATH if not many else FANOUT_PATH,
            mongo=infrastructure.mongo.process.pid,
        )
        mongo_after = _cpu_times(mongo)
        with _database(infrastructure, self.database) as db:
            rows = db[LOOP_LOG].find({}, {"_id": 0, "endpoint_id": 1}).to_list()
            db.drop_collection(LOOP_LOG)  # hookhub's burst finds its MongoDB as it left it
        measurement = window.measurement(f"{LOOP_LABELS[client]}, {when}", from_seq=0)
        _apply_sender(measurement, result)
        # What the log holds, by endpoint: each its `events` attempts, no more, no fewer.
        by_endpoint = Counter(str(row.get("endpoint_id")) for row in rows)
        shortfall = sum(
            max(self.events - by_endpoint[e], 0) for e in loop_endpoints(self.endpoints)
        )
        beyond = len(rows) - (self.requests - shortfall)
        log_kinds = {"not_in_loop_log": shortfall, "beyond_in_loop_log": beyond}
        if many:  # counted by path at the sink, as hookhub's run is
            run, phase = self.harness.run_id, f"log-{when}"
            tally = FanoutTally.at_sink(self.sink, self.paths, run, phase, self.events)
            measurement.error_kinds.pop("missing", None)
            measurement.error_kinds.update(tally.error_kinds())
        measurement.error_kinds.update({kind: n for kind, n in log_kinds.items() if n > 0})
        measurement.errors = sum(measurement.error_kinds.values())
        sink_rps = measurement.rps
        # Timed by the sender, first request to last document written.
        measurement.rps = float(result.get("logged_per_s", 0.0))
        measurement.window_s = float(result.get("logged_s", 0.0))
        spent = mongo_after.get("mongo", 0.0) - mongo_before.get("mongo", 0.0)
        return LoggedRun(measurement, result, spent, sink_rps)

    def note(self) -> str:
        """What the loops do."""
        if self.endpoints == 1:
            sent = f"the same {self.events:,} signed requests to the same sink"
        else:
            sent = (
                f"the same {self.requests:,} signed requests ({self.events:,} events x "
                f"{self.endpoints} paths, each event's one after another, a secret a path) "
                "to the same sink"
            )
        return (
            f"the loops: {sent}, {self.concurrency} in "
            f"flight, each attempt written to `{LOOP_LOG}` (the fields of delivery_attempts, "
            f"the {len(LOG_INDEXES)} indexes it had when #48 set its targets) by "
            f"insert_many of up to {LOG_BATCH} "
            f"documents at least every {LOG_INTERVAL * 1000:g} ms, not awaited per request"
        )

    def mean(self, client: str) -> Measurement:
        """The mean of the before and after runs: one row of the table."""
        runs = [run.measurement for run in self.runs[client].values()]
        return mean_of(f"{LOOP_LABELS[client]} (mean of {len(runs)})", runs)

    def spread(self, client: str) -> str:
        parts = [
            f"{when} {run.rate:,.0f} logged/s (the sink: {run.sink_rps:,.0f} req/s)"
            for when, run in self.runs[client].items()
        ]
        return f"{LOOP_LABELS[client]}: " + ", ".join(parts)

    def against(
        self,
        name: str,
        ours: Measurement,
        client: str,
        target: float,
        notes: list[str],
        issue: str = "#48",
    ) -> BenchmarkResult:
        """hookhub's logged/s against the mean of a loop's runs, `issue`'s target checked."""
        base = self.mean(client)
        runs = len(self.runs[client])
        title = f"deliveries with their attempt logged, against {LOOP_LABELS[client]}"
        events = f"{self.events:,} events"
        if self.endpoints > 1:
            title += f", {self.endpoints} endpoints"
            events += f" x {self.endpoints} endpoints ({self.requests:,} deliveries)"
        return BenchmarkResult(
            name,
            title,
            ours,
            base,
            notes=[
                f"{ratio_note(ours, base, target)} ({issue})",
                self.spread(client),
                *notes,
            ],
            setup=f"{events}, {self.concurrency} in flight, the loop's mean of {runs}",
            unit="logged/s",
        )

    def cpu_us(self, client: str) -> tuple[float, float]:
        """(sending process, MongoDB) CPU µs per logged request, the mean of the runs."""
        pairs = [run.cpu_us() for run in self.runs[client].values()]
        return (
            sum(pair[0] for pair in pairs) / len(pairs),
            sum(pair[1] for pair in pairs) / len(pairs),
        )


def ours_logged(
    ours: Measurement, log: AttemptLog, events: int, tally: FanoutTally | None = None
) -> Measurement:
    """hookhub's deliveries with their attempt logged per second: the sink's window plus
    the time the log then took to hold the last attempt (`events` deliveries of the burst;
    the log also holds the check's). With a `tally` (many endpoints), the deliveries it
    found at their path and logged are what counts, and what it found wrong the errors."""
    window = log.logged_s(ours.window_s)
    missing = max(log.expected - log.logged, 0)
    kinds = dict(ours.error_kinds)
    if tally is not None:
        kinds.pop("missing", None)  # the sink's count of (path, event): the tally's instead
        kinds.update(tally.error_kinds())
        if missing:
            kinds["attempt_not_logged"] = missing
        logged = tally.delivered
        errors = sum(kinds.values())
    else:
        if missing:
            kinds["attempt_not_logged"] = missing
        logged = events - missing
        errors = ours.errors + missing
    return Measurement(
        label="hookhub delivery",
        rps=round(logged / window, 1) if window > 0 else 0.0,
        p50_ms=ours.p50_ms,
        p90_ms=ours.p90_ms,
        p99_ms=ours.p99_ms,
        max_ms=ours.max_ms,
        ok=logged,
        errors=errors,
        error_kinds=kinds,
        window_s=round(window, 3),
        cpu_cores=dict(ours.cpu_cores),
        host_cores=dict(ours.host_cores),
    )


def _per_delivery_note(logged: Measurement, ours: Measurement, loops: LoggedLoops) -> str:
    """CPU µs per logged delivery: hookhub's process and MongoDB over the sink's window,
    the loops' sending process and MongoDB over each whole run."""
    per = ours.window_s / max(logged.ok, 1) * 1e6
    mine = f"hookhub: delivery {ours.cpu_cores.get('delivery', 0.0) * per:,.0f}, "
    mine += f"MongoDB {ours.cpu_cores.get('mongo', 0.0) * per:,.0f}"
    parts = [mine]
    for client in (HTTPX_LOG, FLOOR):
        sending, mongo = loops.cpu_us(client)
        parts.append(f"{LOOP_LABELS[client]}: client {sending:,.0f}, MongoDB {mongo:,.0f}")
    return (
        "CPU µs per logged delivery (hookhub over the sink's window; the loops from the "
        "first request to the last document, MongoDB over each sender's whole run): "
        + "; ".join(parts)
    )


# -- the kill run ----------------------------------------------------------------------------

ATTEMPTS_TOTAL = "hookhub_delivery_attempts_total"


@dataclass(frozen=True)
class KillCount:
    """What the sink saw of the kill run's events, by `webhook-id` (the same on every
    attempt of one event's delivery: one endpoint, so one per event)."""

    events: int
    delivered: int  # distinct webhook-ids
    duplicates: int  # requests beyond the first of their webhook-id

    @classmethod
    def of(cls, events: int, stats: dict[str, Any]) -> KillCount:
        return cls(events, int(stats["webhook_ids"]), int(stats["webhook_id_duplicates"]))

    @property
    def lost(self) -> int:
        return max(self.events - self.delivered, 0)

    @property
    def share(self) -> float:
        return self.duplicates / self.events if self.events else 0.0

    def verdict(self) -> str:
        lost = "nothing lost, met" if not self.lost else f"{self.lost:,} LOST, NOT MET"
        duplicates = "met" if self.share <= TARGET_DUPLICATES else "NOT MET"
        return (
            f"targets (#48): every event delivered at least once: {self.delivered:,}/"
            f"{self.events:,}, {lost}; duplicates (requests beyond the first of a webhook-id) "
            f"≤ {TARGET_DUPLICATES:.0%} of the events: {self.duplicates:,} "
            f"({self.share:.2%}), {duplicates}"
        )


@dataclass
class KillLog:
    """The kill run's `deliveries` documents in MongoDB."""

    documents: int
    events: int  # distinct event ids among them
    statuses: dict[str, int]
    attempts: int  # the sum of their `attempts`

    def error_kinds(self, expected: int) -> dict[str, int]:
        kinds = {
            "not_in_delivery_log": expected - self.events,
            "doubled_in_delivery_log": self.documents - self.events,
            "not_completed": expected - self.statuses.get("completed", 0),
        }
        return {kind: count for kind, count in kinds.items() if count > 0}

    def summary(self, expected: int) -> str:
        statuses = ", ".join(f"{status} {n:,}" for status, n in sorted(self.statuses.items()))
        one_each = self.documents == self.events == expected
        return (
            f"delivery log (MongoDB): {self.documents:,} `deliveries` documents for "
            f"{self.events:,} distinct events of {expected:,} ({statuses}), "
            f"{self.attempts:,} attempts recorded; one per event: "
            + ("met" if one_each else "NOT MET")
        )


def kill_log(infrastructure: Infrastructure, run: str, expected: int) -> KillLog:
    """Waits (up to LOG_WAIT s) until each of the run's events has its delivery completed
    in MongoDB; what is there then."""
    prefix = event_id(run, KILL_PHASE, 0).removesuffix(f"{0:07d}")
    query = {"event_id": {"$regex": "^" + re.escape(prefix)}}
    deadline = time.monotonic() + LOG_WAIT
    with infrastructure.database() as db:
        while True:
            rows = db.deliveries.find(query, {"_id": 0, "event_id": 1, "status": 1, "attempts": 1})
            found = rows.to_list()
            statuses = Counter(str(row.get("status")) for row in found)
            if statuses["completed"] >= expected or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    return KillLog(
        documents=len(found),
        events=len({row["event_id"] for row in found}),
        statuses=dict(statuses),
        attempts=sum(int(row.get("attempts") or 0) for row in found),
    )


def _metrics(server: Server) -> dict[str, float]:
    """A process's /metrics, each sample summed over its labels, and by `name{reason}` for
    one with a `reason` label."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = httpx.get(server.url + "/metrics", timeout=5, trust_env=False)
    figures: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            figures[sample.name] = figures.get(sample.name, 0.0) + sample.value
            if "reason" in sample.labels:
                figures[f"{sample.name}{{{sample.labels['reason']}}}"] = sample.value
    return figures


def _all_written(server: Server) -> bool:
    """The delivery process holds no delivery and has no outcome waiting for MongoDB."""
    figures = _metrics(server)
    return (
        figures.get("hookhub_delivery_held", 1.0) == 0
        and figures.get("hookhub_delivery_outcomes_unwritten", 1.0) == 0
    )


def _consumes(server: Server, topic: str) -> bool:
    """Whether the process's consumers hold partitions of `topic` (its /readyz lag)."""
    answer = httpx.get(server.url + "/readyz", timeout=5, trust_env=False)
    lag: dict[str, dict[str, int]] = answer.json().get("consumer_lag", {})
    return any(topic in topics for topics in lag.values())


def _until(condition: Callable[[], bool], timeout: float, step: float) -> float | None:
    """Seconds until `condition()` held, checked every `step` s; None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


def kill_run(harness: Harness, sink: Sink, topic: str, env: dict[str, str]) -> BenchmarkResult:
    """Two delivery processes in one consumer group on a backlog; the second killed with
    SIGKILL once it has made KILL_AFTER attempts; the first delivers the rest."""
    infrastructure = harness.infrastructure()
    bootstrap = infrastructure.kafka_bootstrap
    count = asyncio.run(topic_partitions(bootstrap, topic))
    if count < 2:
        raise BenchError(f"{topic} has {count} partition(s): two processes cannot share it")
    run_env = {**env, **KILL_ENV}
    first = harness.start_service("delivery", env=run_env)
    second = harness.start_service("delivery", env=run_env, name="delivery_killed")
    # The backlog goes out once both hold partitions, so that each gets its share.
    split = _until(lambda: _consumes(first, topic) and _consumes(second, topic), 60.0, 0.2)
    events = [chat_event(harness.run_id, KILL_PHASE, seq) for seq in range(KILL_EVENTS)]
    sink.reset(expect=KILL_EVENTS)
    window = Window.around(
        sink, first, infrastructure, timeout=KILL_WAIT, delivery_killed=second.child.process.pid
    )
    window.start()
    asyncio.run(publish_all(bootstrap, topic, events))
    # The kill point is the second process's own progress, read from its /metrics.
    at_kill: dict[str, float] = {}

    def far_enough() -> bool:
        nonlocal at_kill
        if not second.child.alive():
            raise BenchError(f"the second delivery process exited: {second.child.log_path}")
        at_kill = _metrics(second)
        return at_kill.get(ATTEMPTS_TOTAL, 0.0) >= KILL_AFTER

    if _until(far_enough, KILL_WAIT, 0.05) is None:
        raise BenchError(
            f"the second delivery process made {at_kill.get(ATTEMPTS_TOTAL, 0.0):,.0f} "
            f"attempts, never {KILL_AFTER:,}: did it get partitions? {second.child.log_path}"
        )
    killed_at = time.time()
    second.child.kill()  # SIGKILL
    seen = sink.stats()
    window.join()
    if not first.child.alive():
        raise BenchError(f"the first delivery process exited: {first.child.log_path}")
    log = kill_log(infrastructure, harness.run_id, KILL_EVENTS)
    stats = sink.stats()  # after the log settled: a late duplicate is counted
    first.stop()
    measurement = window.measurement("hookhub delivery, 2 processes, 1 killed", from_seq=0)
    measurement.error_kinds.update(log.error_kinds(KILL_EVENTS))
    measurement.errors = sum(measurement.error_kinds.values())
    tally = KillCount.of(KILL_EVENTS, stats)
    unwritten = at_kill.get("hookhub_delivery_outcomes_unwritten", 0.0)
    notes = [
        tally.verdict(),
        f"the second process killed (SIGKILL) once it had made "
        f"{at_kill.get(ATTEMPTS_TOTAL, 0.0):,.0f} attempts, "
        f"{killed_at - (seen['first_at'] or killed_at):.1f} s after the sink's first request, "
        f"with {at_kill.get('hookhub_delivery_in_flight', 0.0):,.0f} attempts out, "
        f"{unwritten:,.0f} outcomes unwritten "
        f"and {at_kill.get('hookhub_delivery_held', 0.0):,.0f} deliveries held (its /metrics "
        f"just before); the sink had {seen['requests']:,} requests, {seen['distinct']:,} "
        "events by then; the guarantee's bound on duplicates (docs/operations.md: the "
        "attempts out and the outcomes not yet written at the kill): "
        f"{at_kill.get('hookhub_delivery_in_flight', 0.0) + unwritten:,.0f}",
        _arrival_note(stats, killed_at),
        log.summary(KILL_EVENTS),
        f"{count} partitions of the topic, {CHANNELS} channel keys; "
        + (
            f"both processes held partitions {split:.1f} s after the second was ready"
            if split is not None
            else "both processes were not seen holding partitions within 60 s"
        )
        + f"; {', '.join(f'{k}={v}' for k, v in KILL_ENV.items())}",
        f"counted by event (bench_seq) instead: {stats['distinct']:,} events, "
        f"{stats['duplicates']:,} duplicates; requests without a webhook-id: "
        f"{stats['unidentified']:,}",
    ]
    if stats["missing"]:
        notes.append(f"events never received (the first 20 numbers): {stats['missing']}")
    return BenchmarkResult(
        "delivery-kill",
        "kill -9 of a second delivery process under load",
        measurement,
        None,
        notes=notes,
        setup=(
            f"{KILL_EVENTS:,} events published at once, two delivery processes in one consumer "
            f"group, the second killed after {KILL_AFTER:,} attempts; first → last event at "
            "the sink"
        ),
        unit="deliveries/s",
    )


def _arrival_note(stats: dict[str, Any], killed_at: float) -> str:
    first, complete, last = stats["first_at"], stats["complete_at"], stats["last_at"]
    if first is None or complete is None:
        return f"not every event reached the sink within {KILL_WAIT:g} s"
    return (
        f"every event at the sink {complete - first:.1f} s after its first request; the "
        f"last of them {complete - killed_at:.1f} s after the kill (the take-over), the last "
        f"request of all (duplicates included) {(last or complete) - killed_at:.1f} s after it"
    )


# -- notes ---------------------------------------------------------------------------------


def _sink_note(cores: float | None, rps: float) -> str:
    if not cores or not rps:
        return "sink CPU: not measured"
    per_request = cores / rps
    return (
        f"sink: {cores:.2f} cores at the baseline's {rps:,.0f} req/s = "
        f"{per_request * 1e6:.0f} µs per request, a ceiling of ~{1 / per_request:,.0f} req/s "
        "on one core: not the bottleneck"
    )


def _target_note(measurement: Measurement) -> str:
    def verdict(value: float | None, target: float) -> str:
        if value is None:
            return "not measured"
        return f"{value:.1f} ms, {'met' if value <= target else 'NOT MET'}"

    return (
        f"targets: p50 ≤ {TARGET_P50_MS:g} ms ({verdict(measurement.p50_ms, TARGET_P50_MS)}), "
        f"p99 ≤ {TARGET_P99_MS:g} ms ({verdict(measurement.p99_ms, TARGET_P99_MS)}); "
        f"#48: p99 ≤ {TARGET_P99_48_MS:g} ms ({verdict(measurement.p99_ms, TARGET_P99_48_MS)})"
    )


BENCHMARK = Deliveries()
