"""Benchmark "notifications": signed webhooks through the gateway → notifications on
`hookhub.chat.inbound` by one sync process, against a minimal aiokafka consumer → producer
loop that reads the same provider events. Two mixes, one after the other in the same run,
each with its own tables and baseline: GitHub's (below) and the alerts'
(`notifications-alerts`, `notifications-alerts-latency`: Alertmanager groups and PagerDuty
incidents through their lifecycles, bench.notification_alerts). A mix is a `Mix`: another
one (subscriptions with templates) is one more entry of `mixes()`.

The set-up, once: a GitHub integration with a webhook secret, created through the oauth
service (then stopped; its rate limit raised, as in `github`); 1,000 subscriptions created
through sync's API, 5 for each of 200 repositories `hookhub-bench/repo-<i>` (a
`repositories` filter naming it), each to a chat channel of its own, with `events`
`pull_request.*`, `push`, `issue_comment.*`, `check_run.*` and threads on. The webhooks
are made from the real corpus (tests/corpus/github): pull requests (opened, synchronize,
labeled, review_requested, closed as merged; 5 pull requests a repository), pushes of 1-50
commits to the default branch, comments (5 issues a repository) and completed check runs
(success, failure), each with its repository, numbers and ids varied, signed with
X-Hub-Signature-256 and POSTed to the gateway's `/api/webhooks/github/<integration>`. Every
webhook's X-GitHub-Delivery is a GUID naming its phase and sequence number; sync puts it in
each notification's `source.external_message_id`, where an aiokafka consumer in the harness
reads it back. A webhook makes 5 `message.received`, one per subscription of its repository,
and for a later notification about the same pull request or issue in a channel, a
`message.edited` of the item's thread root.

Two tables:

1. **Throughput** (`notifications`). Sync stopped, EVENTS webhooks are POSTed (50 at a time),
   the gateway is stopped too, then one sync process is started on the backlog. Timed by the
   harness's consumer on `hookhub.chat.inbound`, from the first notification read to the one
   completing 5 for every webhook: notifications (`message.received`) per second, and
   provider events per second in a note.
   Baseline: `python -m bench.notifications baseline`, a minimal aiokafka consumer (a group
   of its own on the same provider-events topic, from where the backlog starts; `getmany` of
   500 records, the services' fetch wait) → producer (acks=all) loop that decodes each
   provider event and publishes one fixed message (a real notification, encoded once) to a
   topic of its own, committing per batch; timed the same way. The ratio compares what each
   publishes a second, as the issue puts it: hookhub's notifications against the baseline's
   fixed messages (one per event); a note compares provider events per second (hookhub
   renders, matches, threads and publishes 5 notifications of each, the baseline one).
2. **Latency** (`notifications-latency`). Gateway and sync, 200 webhooks/s of the same mix
   for `--warmup` + `--duration` s; latency = when the harness reads a webhook's last (fifth)
   notification minus when its request was sent. Baseline: Kafka's own floor, the same
   bodies at the same rate through Kafka alone over the two hops sync's inbound floor uses
   (`bench.sync.kafka_two_hops`).

Sync is stopped before the baselines run, so they never compete for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.github import github_integration, signed_headers
from bench.harness import (
    BenchError,
    BenchmarkResult,
    CpuWindow,
    Harness,
    Infrastructure,
    Measurement,
    create_each,
    ratio_note,
    topic_offsets,
)
from bench.notification_alerts import Alerts
from bench.notification_mix import (
    PER_REPOSITORY,
    PHASES,
    Mix,
    Webhook,
    _guid_seq,
    _mix,
    chat_channel,
    delivery_id,
    encoded,
)
from bench.notification_templates import TemplatedAlerts
from bench.sync import (
    IN_RATE,
    _assigned,
    _consumer,
    _latency_measurement,
    _ms,
    _targets,
    _topic_like,
    answers_note,
    kafka_two_hops,
    post_paced,
)
from shared.domain.message_map import COLLECTION as MAP
from shared.kernel.embedded import EMBEDDED_FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from shared.kernel.embedded import ChildProcess
from shared.kernel.envelopes import Topic

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus" / "github"
ORG = "hookhub-bench"
REPOSITORIES = 200
EVENTS = 5_000  # webhooks of the throughput part
PULLS = 5  # pull requests a repository, and as many issues: the items threads are about
ISSUES = 5
SUBSCRIBED = ["pull_request.*", "push", "issue_comment.*", "check_run.*"]
# The mix, by weight: check runs and pushes are most of a busy organisation's webhooks.
MIX: tuple[tuple[str, int], ...] = (
    ("pull_request", 30),
    ("push", 25),
    ("issue_comment", 20),
    ("check_run", 25),
)
PULL_ACTIONS = ("opened", "synchronize", "synchronize", "labeled", "review_requested", "closed")
MAX_COMMITS = 50
IN_FLIGHT = 50  # webhooks POSTed at once for the backlog
SUBSCRIPTIONS_IN_FLIGHT = 8
MAX_RECORDS = 500  # the services' batch consumers' `max_records`
RATE = IN_RATE  # webhooks/s of the latency part: sync's inbound leg's, whose floor is reused
TARGET_RATIO = 0.6
TARGET_P99_MS = 100.0
_NOTIFICATION = re.compile(
    rb'"type":"message\.(received|edited)".*?"external_message_id":"([^"]+)"'
)
_SEQ_BITS = (1 << 64) - 1


def repository_name(index: int) -> str:
    return f"{ORG}/repo-{index:03d}"


def _sha(*parts: object) -> str:
    return hashlib.sha1("-".join(map(str, parts)).encode()).hexdigest()  # noqa: S324 (an id)


# -- the webhooks ------------------------------------------------------------------------------


class Corpus:
    """GitHub webhooks made from the real payloads, the same for the same phase and seq."""

    name = "github"
    title = "GitHub notifications"
    mix: tuple[tuple[str, int], ...] = MIX

    def __init__(self) -> None:
        self.integration_id = ""
        self.secret = uuid.uuid4().hex

        def read(path: str) -> str:
            return (CORPUS / path).read_text()

        self.pulls = {a: read(f"pull_request/{a}.payload.json") for a in set(PULL_ACTIONS)}
        self.push = read("push/payload.json")  # a tag deleted: made a branch push below
        self.commit = orjson.loads(read("push/with-new-branch.payload.json"))["commits"][0]
        self.comment = read("issue_comment/created.payload.json")
        self.checks = (
            read("check_run/completed.payload.json"),  # success
            read("check_run/completed.1.payload.json"),  # failure
        )
        self.kinds = [kind for kind, weight in MIX for _ in range(weight)]

    def webhook(self, phase: str, seq: int, kind: str | None = None) -> Webhook:
        rng = random.Random(f"{phase}-{seq}")
        kind = kind or rng.choice(self.kinds)
        repository = repository_name(rng.randrange(REPOSITORIES))
        sha = _sha(phase, seq)
        if kind == "pull_request":
            payload = self._pull(rng, repository)
        elif kind == "push":
            payload = self._push(rng, repository, sha)
        elif kind == "issue_comment":
            payload = self._load(self.comment, repository)
            number = 101 + rng.randrange(ISSUES)
            issue, comment = payload["issue"], payload["comment"]
            issue["number"] = number
            issue["html_url"] = f"https://github.com/{repository}/issues/{number}"
            comment["id"] = 10_000_000 + seq
            comment["html_url"] = f"{issue['html_url']}#issuecomment-{comment['id']}"
        else:
            payload = self._load(rng.choice(self.checks), repository)
            run = payload["check_run"]
            run["id"] = 10_000_000 + seq
            run["head_sha"] = run["check_suite"]["head_sha"] = sha
            run["html_url"] = f"https://github.com/{repository}/runs/{run['id']}"
            for pull in run.get("pull_requests", []):
                pull["number"] = 1 + rng.randrange(PULLS)
        body, delivery = orjson.dumps(payload), delivery_id(phase, seq)
        return Webhook(
            kind,
            body,
            delivery,
            f"/api/webhooks/github/{self.integration_id}",
            signed_headers(body, kind, delivery, self.secret),
        )

    def prepare(self, oauth_url: str, admin_token: str) -> None:
        self.integration_id = github_integration(oauth_url, admin_token, self.secret)

    def subscriptions(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (self.integration_id, subscription(i)) for i in range(REPOSITORIES * PER_REPOSITORY)
        ]

    def seq_of(self, delivery: bytes) -> int | None:
        """The phase and sequence number a notification's delivery id names."""
        return _guid_seq(delivery)

    def fixed_message(self) -> bytes:
        return fixed_message()

    def notes(self, kinds: Counter[str]) -> list[str]:
        return [
            f"{REPOSITORIES * PER_REPOSITORY:,} subscriptions ({PER_REPOSITORY} a "
            f"repository over {REPOSITORIES}, threads on, a `repositories` filter each)",
            f"mix: {_mix(kinds, MIX)}",
        ]

    def _load(self, template: str, repository: str) -> dict[str, Any]:
        payload: dict[str, Any] = orjson.loads(
            template.replace("Codertocat/Hello-World", repository)
        )
        payload["repository"]["name"] = repository.partition("/")[2]
        return payload

    def _pull(self, rng: random.Random, repository: str) -> dict[str, Any]:
        action = rng.choice(PULL_ACTIONS)
        payload = self._load(self.pulls[action], repository)
        number = 1 + rng.randrange(PULLS)
        pull = payload["pull_request"]
        payload["number"] = pull["number"] = number
        pull["html_url"] = f"https://github.com/{repository}/pull/{number}"
        if action == "closed":
            pull["merged"], pull["merged_at"] = True, pull["closed_at"]
        return payload

    def _push(self, rng: random.Random, repository: str, sha: str) -> dict[str, Any]:
        payload = self._load(self.push, repository)
        commits = [
            {
                **self.commit,
                "id": _sha(sha, k),
                "tree_id": _sha(sha, k, "tree"),
                "message": f"Retry deliveries that timed out, step {k + 1}\n\nSee the runbook.",
                "url": f"https://github.com/{repository}/commit/{_sha(sha, k)}",
            }
            for k in range(1 + rng.randrange(MAX_COMMITS))
        ]
        before, after = _sha(sha, "before"), commits[-1]["id"]
        payload.update(
            ref="refs/heads/master",  # the corpus repository's default branch
            before=before,
            after=after,
            created=False,
            deleted=False,
            forced=False,
            compare=f"https://github.com/{repository}/compare/{before[:12]}...{after[:12]}",
            commits=commits,
            head_commit=commits[-1],
        )
        return payload


def subscription(index: int) -> dict[str, Any]:
    return {
        "channel_id": chat_channel(index),
        "events": SUBSCRIBED,
        "repositories": [repository_name(index // PER_REPOSITORY)],
        "threads": "item",
    }


# -- what the harness reads ----------------------------------------------------------------------


@dataclass
class Tally:
    """What the harness read of one phase from a topic: each webhook's notifications by seq
    (`fixed`: the baseline's topic, where every record counts, one per event)."""

    phase: str
    expected: int  # records of the phase that complete it
    fixed: bool = False
    # A notification's delivery id → (phase << 64 | seq): the mix's `seq_of`.
    seq_of: Callable[[bytes], int | None] = _guid_seq
    count: Counter[int] = field(default_factory=Counter)
    first: dict[int, float] = field(default_factory=dict)  # seq → first read (time.time())
    last: dict[int, float] = field(default_factory=dict)
    notifications: int = 0
    edits: int = 0
    first_read: float | None = None
    last_read: float | None = None

    @property
    def complete(self) -> bool:
        return self.notifications >= self.expected

    def add(self, value: bytes, now: float) -> None:
        if not self.fixed:
            found = _NOTIFICATION.search(value)
            if found is None:
                return
            ident = self.seq_of(found.group(2))
            if ident is None or ident >> 64 != PHASES[self.phase]:
                return
            if found.group(1) == b"edited":
                self.edits += 1
                return
            seq = ident & _SEQ_BITS
            self.count[seq] += 1
            self.first.setdefault(seq, now)
            self.last[seq] = now
        self.notifications += 1
        if self.first_read is None:
            self.first_read = now
        self.last_read = now

    def events(self) -> int:
        """Webhooks (provider events) handled whole: every subscription notified."""
        if self.fixed:
            return self.notifications
        return sum(1 for n in self.count.values() if n >= PER_REPOSITORY)

    def throughput(self, label: str, events: int, cpu: CpuWindow) -> Measurement:
        handled = self.events()
        first, last = self.first_read, self.last_read
        window = last - first if first is not None and last is not None else 0.0
        missing = events - handled
        # Notifications (message.received) a second; the baseline's are its one fixed
        # message per event.
        return Measurement(
            label=label,
            rps=round(self.notifications / window, 1) if window > 0 else 0.0,
            p50_ms=None,
            p90_ms=None,
            p99_ms=None,
            max_ms=None,
            ok=handled,
            errors=missing,
            error_kinds={"missing": missing} if missing else {},
            window_s=round(window, 3),
            cpu_cores=cpu.cpu_cores,
            host_cores=cpu.host_cores,
        )


async def read(consumer: Any, tally: Tally, seconds: float, cpu: CpuWindow | None = None) -> None:
    """Reads until the phase is complete or `seconds` have passed; `cpu` is opened at the
    phase's first record and closed at its end."""
    deadline = time.monotonic() + seconds
    while not tally.complete and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200)
        now = time.time()
        for records in batches.values():
            for record in records:
                tally.add(record.value, now)
        if cpu is not None and cpu.opened_at is None and tally.first_read is not None:
            cpu.open()
    if cpu is not None:
        cpu.close()


async def backlog(
    bootstrap: str, topic: str, tally: Tally, start: Callable[[], dict[str, int]]
) -> CpuWindow:
    """Once a consumer of `topic` is reading, `start()` starts the process under test (and
    names the processes to watch); reads until the phase is complete."""
    consumer = _consumer(bootstrap, topic, f"{topic}.nbench-{tally.phase}-{time.monotonic_ns()}")
    await consumer.start()
    try:
        await _assigned(consumer)
        cpu = CpuWindow(start())
        await read(consumer, tally, max(180.0, EVENTS / 20), cpu)
    finally:
        await consumer.stop()
    return cpu


# -- sending -----------------------------------------------------------------------------------


async def post_backlog(origin: str, webhooks: Iterator[Webhook]) -> tuple[float, int]:
    """Every webhook POSTed to the gateway at `origin`, IN_FLIGHT at a time; (seconds,
    bytes); BenchError if any was not accepted."""
    errors: Counter[str] = Counter()
    sent = 0
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=IN_FLIGHT),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as client:

        async def worker() -> None:
            nonlocal sent
            for hook in webhooks:
                sent += len(hook.body)
                try:
                    async with client.post(
                        origin + hook.path, data=hook.body, headers=hook.headers
                    ) as r:
                        await r.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                if r.status != 200:
                    errors[f"http_{r.status}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        seconds = time.perf_counter() - started
    if errors:
        raise BenchError(f"the gateway refused some of the backlog's webhooks: {dict(errors)}")
    return seconds, sent


async def check(bootstrap: str, topic: str, origin: str, mix: Mix, prefix: str) -> None:
    """One webhook of each kind end to end, every subscription notified, before anything is
    timed."""
    phase = f"{prefix}check"
    hooks = [mix.webhook(phase, seq, kind) for seq, (kind, _) in enumerate(mix.mix)]
    tally = Tally(phase, expected=len(hooks) * PER_REPOSITORY, seq_of=mix.seq_of)
    consumer = _consumer(bootstrap, topic, f"{topic}.nbench-check-{time.monotonic_ns()}")
    await consumer.start()
    try:
        await _assigned(consumer)
        _, errors = await post_paced(
            lambda seq: origin + hooks[seq].path,
            lambda seq, _: (hooks[seq].body, hooks[seq].headers),
            10.0,
            len(hooks),
        )
        if errors:
            raise BenchError(f"a first webhook was refused: {dict(errors)}")
        await read(consumer, tally, 60.0)
    finally:
        await consumer.stop()
    if not tally.complete:
        raise BenchError(
            f"{tally.notifications} of {tally.expected} notifications of the first webhooks "
            f"({', '.join(kind for kind, _ in mix.mix)}) reached {topic} within 60 s"
        )


async def latency(
    bootstrap: str,
    topic: str,
    origin: str,
    hooks: list[Webhook],
    warm: int,
    mix: Mix,
    prefix: str,
) -> tuple[Measurement, Tally, dict[int, float], str]:
    """`hooks` at RATE a second; each webhook's latency is its last notification read minus
    its request sent. The measurement, what was read, when each was sent, and the gateway's
    answers."""
    total = len(hooks)
    tally = Tally(f"{prefix}latency", expected=total * PER_REPOSITORY, seq_of=mix.seq_of)
    sent: dict[int, float] = {}

    def request(seq: int, sent_at: float) -> tuple[bytes, dict[str, str]]:
        sent[seq] = sent_at
        return hooks[seq].body, hooks[seq].headers

    consumer = _consumer(bootstrap, topic, f"{topic}.nbench-latency-{time.monotonic_ns()}")
    await consumer.start()
    try:
        await _assigned(consumer)
        reader = asyncio.ensure_future(read(consumer, tally, total / RATE + 30))
        answered, errors = await post_paced(
            lambda seq: origin + hooks[seq].path, request, RATE, total
        )
        await reader
    finally:
        await consumer.stop()
    latencies = {
        seq: tally.last[seq] - sent[seq]
        for seq, n in tally.count.items()
        if n >= PER_REPOSITORY and seq in sent
    }
    measurement = _latency_measurement("hookhub gateway + sync", latencies, errors, total, warm)
    return measurement, tally, sent, answers_note(answered, warm)


# -- the benchmark -------------------------------------------------------------------------------


def mixes() -> list[Mix]:
    """The mixes measured, each against its own baseline in the same run: GitHub's, then
    alerts and incidents (bench.notification_alerts), then the alerts with every
    subscription on a template (bench.notification_templates). `BENCH_NOTIFICATIONS`
    (`github`, `alerts`, `templates`, comma-separated) measures those alone."""
    every: list[Mix] = [Corpus(), Alerts(), TemplatedAlerts()]
    wanted = {name for name in os.environ.get("BENCH_NOTIFICATIONS", "").split(",") if name}
    unknown = wanted - {mix.name for mix in every}
    if unknown:
        raise BenchError(f"BENCH_NOTIFICATIONS names no mix: {', '.join(sorted(unknown))}")
    return [mix for mix in every if not wanted or mix.name in wanted]


class Notifications:
    name = "notifications"
    title = (
        "notifications, webhook → hookhub.chat.inbound (GitHub's mix, alerts' mix, alerts' "
        "on templates)"
    )

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        results: list[BenchmarkResult] = []
        for mix in mixes():
            results += run_mix(harness, mix)
        return results


def run_mix(harness: Harness, mix: Mix) -> list[BenchmarkResult]:
    """Throughput (a backlog, one sync process started on it) and latency (200 webhooks/s
    through the gateway) of one mix, each against its baseline (module docstring)."""
    options = harness.options
    infrastructure = harness.infrastructure()
    bootstrap = infrastructure.kafka_bootstrap
    provider_topic = f"{infrastructure.topic_namespace}.{Topic.PROVIDER_EVENTS}"
    inbound = f"{infrastructure.topic_namespace}.{Topic.CHAT_INBOUND}"
    suffix = "" if mix.name == "github" else f"-{mix.name}"
    prefix = "" if mix.name == "github" else f"{mix.name}-"  # its phases (PHASES)

    oauth = harness.start_service("oauth")
    mix.prepare(oauth.url, infrastructure.admin_token)
    oauth.stop()
    sync = harness.start_service("sync")
    setup_started = time.perf_counter()
    subscriptions = mix.subscriptions()
    for integration_id in dict.fromkeys(i for i, _ in subscriptions):
        asyncio.run(
            create_each(
                sync.url,
                infrastructure.admin_token,
                f"/api/integrations/{integration_id}/subscriptions",
                [body for i, body in subscriptions if i == integration_id],
                SUBSCRIPTIONS_IN_FLIGHT,
            )
        )
    subscribed_in = time.perf_counter() - setup_started
    gateway = harness.start_service("gateway")
    asyncio.run(check(bootstrap, inbound, gateway.url, mix, prefix))
    sync.stop()

    # -- 1. throughput, ours: a backlog, one sync process started on it ---------------------
    _, backlog_from = asyncio.run(topic_offsets(bootstrap, provider_topic))
    kinds: Counter[str] = Counter()

    def burst() -> Iterator[Webhook]:
        for seq in range(EVENTS):
            hook = mix.webhook(f"{prefix}burst", seq)
            kinds[hook.event] += 1
            yield hook

    posted_in, posted_bytes = asyncio.run(post_backlog(gateway.url, burst()))
    gateway.stop()
    started: list[ChildProcess] = []

    def start_sync() -> dict[str, int]:
        started.append(harness.start_service("sync", wait=False).child)
        return {"sync": started[-1].process.pid, **infrastructure.pids()}

    tally = Tally(f"{prefix}burst", EVENTS * PER_REPOSITORY, seq_of=mix.seq_of)
    cpu = asyncio.run(backlog(bootstrap, inbound, tally, start_sync))
    sync_child = started[0]
    if not sync_child.alive():
        raise BenchError(f"the sync service exited; its log: {sync_child.log_path}")
    ours = tally.throughput("hookhub sync", EVENTS, cpu)
    roots = _roots(infrastructure)

    # -- 2. latency: gateway + the same sync process ---------------------------------------
    gateway = harness.start_service("gateway")
    warm = round(RATE * options.warmup)
    total = warm + round(RATE * options.duration)
    paced = [mix.webhook(f"{prefix}latency", seq) for seq in range(total)]
    pids = {"gateway": gateway.child.process.pid, "sync": sync_child.process.pid}
    with CpuWindow({**pids, **infrastructure.pids()}) as lat_cpu:
        lat_ours, lat_tally, sent, answers = asyncio.run(
            latency(bootstrap, inbound, gateway.url, paced, warm, mix, prefix)
        )
    lat_cpu.apply(lat_ours)
    gateway.stop()
    sync_child.stop()

    # -- baselines ----------------------------------------------------------------------------
    base_topic = asyncio.run(_topic_like(bootstrap, inbound, f"notifications-baseline{suffix}"))
    argv = [sys.executable, "-m", "bench.notifications", "baseline", "--bootstrap"]
    argv += [bootstrap, "--topic", provider_topic, "--out", base_topic, "--mix", mix.name]
    argv += ["--count", str(EVENTS), "--start", json.dumps(backlog_from)]
    loops: list[ChildProcess] = []

    def start_baseline() -> dict[str, int]:
        loops.append(harness.start_process(f"notifications-baseline{suffix}", argv))
        return {"baseline": loops[-1].process.pid, **infrastructure.pids()}

    base_tally = Tally(f"{prefix}burst", EVENTS, fixed=True)
    base_cpu = asyncio.run(backlog(bootstrap, base_topic, base_tally, start_baseline))
    base = base_tally.throughput("baseline (aiokafka consume → produce)", EVENTS, base_cpu)
    loops[0].stop()

    def floor_record(seq: int, sent_at: float) -> tuple[bytes, bytes]:
        mark = b"bench_seq=%d sent_at=%.6f " % (seq, sent_at)
        return mark + paced[seq].body, paced[seq].path.rsplit("/", 1)[-1].encode()

    floor = asyncio.run(
        kafka_two_hops(bootstrap, inbound, f"{harness.run_id}{suffix}", total, warm, floor_record)
    )

    window = ours.window_s or 1e-9
    throughput = BenchmarkResult(
        f"notifications{suffix}",
        f"{mix.title}: webhooks → notifications on hookhub.chat.inbound, one sync process",
        ours,
        base,
        notes=[
            f"{EVENTS:,} signed webhooks ({posted_bytes / EVENTS:,.0f} bytes a body on "
            f"average) POSTed to the gateway in {posted_in:.1f} s ({IN_FLIGHT} at a time) "
            "with sync stopped; the gateway was stopped before one sync process was started "
            "on the backlog",
            *mix.notes(kinds),
            f"subscriptions created through the API in {subscribed_in:.1f} s",
            f"hookhub: {tally.notifications:,} message.received "
            f"({tally.notifications / window:,.0f} notifications/s) and {tally.edits:,} "
            f"message.edited of thread roots ({tally.edits / window:,.0f}/s), first "
            "notification read → the one completing every webhook's "
            f"{PER_REPOSITORY}",
            "baseline: python -m bench.notifications baseline, aiokafka getmany "
            f"({MAX_RECORDS} records, fetch_max_wait_ms {FETCH_MAX_WAIT_MS}) on the "
            "provider-events topic (a group of its own, from where the backlog starts) "
            "→ orjson.loads of each event → one produce (acks=all) of a fixed "
            "message.received to a topic of its own → commit per batch; timed the same "
            "way on that topic",
            "the ratio compares notifications (message.received) a second with the "
            "baseline's fixed messages a second (one per event), as the issue puts it; "
            "provider events a second: hookhub "
            f"{ours.ok / window:,.0f}, baseline {base.rps:,.0f} "
            f"({ours.ok / window / base.rps:.2f}): hookhub renders, matches and threads each "
            f"and publishes {PER_REPOSITORY} notifications (and the roots' edits), the "
            "baseline publishes one fixed message"
            if base.rps
            else "the baseline published nothing",
            ratio_note(ours, base, getattr(mix, "target_ratio", TARGET_RATIO)),
            "records published a second, for comparison: hookhub "
            f"{(tally.notifications + tally.edits) / window:,.0f}, baseline "
            f"{base.rps:,.0f} ({(tally.notifications + tally.edits) / window / base.rps:.2f})"
            if base.rps
            else "records published a second: the baseline published none",
            f"thread roots in the message map (MongoDB) after the backlog: {roots:,} (every "
            "mix so far), each claimed by an insert before its first notification was "
            "published",
            f"CPU per event: hookhub sync {_cpu_ms(ours, 'sync')}, baseline loop "
            f"{_cpu_ms(base, 'baseline')}",
        ],
        setup=f"{EVENTS:,} webhooks in a backlog, first → last notification read",
        unit="notifications/s",
    )
    latency_result = BenchmarkResult(
        f"notifications{suffix}-latency",
        f"{mix.title}: webhook sent → its notifications read from hookhub.chat.inbound",
        lat_ours,
        floor,
        notes=[
            _targets(lat_ours, None, TARGET_P99_MS),
            f"{RATE:g} signed webhooks/s of the same mix to the gateway; a webhook's "
            f"latency: its last ({PER_REPOSITORY}th) message.received read by an aiokafka "
            f"consumer (fetch_max_wait_ms {FETCH_MAX_WAIT_MS}) in the harness minus the "
            "time its request was sent",
            f"p95: hookhub {_number(lat_ours.p95_ms)} ms, Kafka alone "
            f"{_number(floor.p95_ms)} ms; {_first_note(lat_tally, sent, warm)}",
            answers,
            f"message.edited of thread roots read: {lat_tally.edits:,}",
            "CPU: from the first webhook sent to the last notification read, warm-up "
            "included; the harness sends the webhooks and reads the topic",
            "baseline: Kafka's own floor, the same bodies at the same rate over two hops "
            "(publish acks=all → relay consumer → publish → consumer, keyed by the "
            "integration as the gateway keys them), same fetch settings; no HTTP, no "
            "verification, no rendering",
        ],
        setup=(
            f"{RATE:g} webhooks/s, {options.duration:g} s measured after "
            f"{options.warmup:g} s warm-up"
        ),
        unit="webhooks/s",
        compare="latency",
    )
    return [throughput, latency_result]


def _roots(infrastructure: Infrastructure) -> int:
    with infrastructure.database() as db:
        return db[MAP].count_documents({"origin": "notification"})


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cpu_ms(measurement: Measurement, process: str) -> str:
    cores = measurement.cpu_cores.get(process)
    if cores is None or not measurement.ok:
        return "-"
    return f"{1000 * cores * measurement.window_s / measurement.ok:.3f} ms"


def _first_note(tally: Tally, sent: dict[int, float], warm: int) -> str:
    first = sorted(tally.first[seq] - sent[seq] for seq in tally.first if seq >= warm)
    if not first:
        return "no first notifications"
    return f"a webhook's first notification: p50 {_ms(first, 0.50)} ms, p99 {_ms(first, 0.99)} ms"


BENCHMARK = Notifications()


# -- the baseline loop, in a process of its own ------------------------------------------------


def fixed_message() -> bytes:
    """Sync's own notification of the corpus's pull_request.opened, encoded once."""
    from shared.providers.github.notify import NOTIFIER

    payload = orjson.loads((CORPUS / "pull_request" / "opened.payload.json").read_bytes())
    return encoded(NOTIFIER.notice("pull_request", payload), "github")


async def baseline_loop(
    bootstrap: str, topic: str, out: str, count: int, start: str, message: bytes
) -> None:
    """Reads `count` provider events of `topic` from the offsets `start` names, and for each
    publishes the fixed `message` to `out`."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    offsets = {int(partition): offset for partition, offset in json.loads(start).items()}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.notifications-baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=0, client_id="notifications-baseline"
    )
    await producer.start()
    await consumer.start()
    try:
        await _assigned(consumer)
        for partition in consumer.assignment():
            consumer.seek(partition, offsets.get(partition.partition, 0))
        handled = 0
        while handled < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_RECORDS)
            records = [record for batch in batches.values() for record in batch]
            sends = []
            # The topic goes on past the backlog (the latency part's events): `count` only.
            for record in records[: count - handled]:
                event = orjson.loads(record.value)
                key = event["integration_id"].encode()
                sends.append(await producer.send(out, message, key=key))
            if sends:
                await asyncio.gather(*sends)
                await consumer.commit()
                handled += len(sends)
    finally:
        await consumer.stop()
        await producer.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("baseline", help="the aiokafka consume → produce loop")
    base.add_argument("--bootstrap", required=True)
    base.add_argument("--topic", required=True, help="the provider-events topic")
    base.add_argument("--out", required=True, help="the topic the fixed messages go to")
    base.add_argument("--count", type=int, required=True, help="events to handle, then exit")
    base.add_argument("--start", required=True, help='{"partition": offset} to start from')
    base.add_argument("--mix", default="github", help="whose notification the fixed one is")
    args = parser.parse_args(argv)
    import uvloop

    [mix] = [m for m in mixes() if m.name == args.mix]
    message = mix.fixed_message()
    uvloop.run(baseline_loop(args.bootstrap, args.topic, args.out, args.count, args.start, message))
    return 0


if __name__ == "__main__":
    sys.exit(main())
