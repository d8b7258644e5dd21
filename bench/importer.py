"""Benchmark "import": a generated Slack export imported into `hookhub.chat.inbound` by one
importer process, against a minimal loop that reads the same ZIP and produces the same
envelopes, in the same run (issue #16).

The exports: `tests.slack_export.generate` over 200 conversations (channels, private
channels, DMs, group DMs), one per size (`--import-messages`, default 100,000 and
1,000,000), written once into `bench/results/exports/` (git-ignored) and reused while the
size, the seed and the generator's source are the same (1,000,000 messages take about a
minute to generate and are about 90 MB zipped).

For each size, smallest first:

1. **Ours.** A fresh `hookhub serve importer` process (the HOOKHUB_IMPORT_* defaults). The
   harness assigns an aiokafka consumer (no group) to every partition of
   `<namespace>.hookhub.chat.inbound` at its end, then uploads the export with
   `POST /api/imports` (multipart: workspace_id, the file, a channel_map naming a chat
   channel `ch_imp_<conversation id>` for every conversation). No integration exists for the
   export's team, so no message map is written. The upload (transfer, the export's check,
   the copy into GridFS) is timed apart. messages/s = envelopes read / (last envelope read -
   first envelope read); the job's `started_at` → last read is given in a note. The count
   must equal the job's `progress.messages_imported` and what the generator wrote (minus
   the notices it skips: joins, leaves, topic changes, tombstones). The importer's RSS is
   polled from /proc (VmRSS, every 0.1 s, during the import) and its peak read at the end
   (VmHWM: the whole process life, upload included).
2. **Baseline.** `python -m bench.importer baseline`, in its own process, started once the
   importer is stopped: zipfile + orjson reading the same ZIP conversation by conversation,
   day file by day file, building the same envelope as a plain dict (id from
   `shared.message_map.inbound_message_id`, channel from the map, text as written, author
   from users.json or the bot's username, attachments, blocks, thread, occurred_at,
   `imported: true`), skipping the same notices, and producing it with aiokafka (acks=all,
   keyed by channel, linger 5 ms, 512 KiB batches) without awaiting each send: it awaits the
   acknowledgements every `--flush-every` records (1,000, the importer's default batch:
   the unit the importer has acknowledged before it goes on). To a topic of its own, with
   as many partitions; measured the same way.

The process under test and the baseline never run at the same time. CPU per process (the
importer or the baseline, Kafka, MongoDB, the harness, which reads every envelope) is taken
over the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import threading
import time
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.harness import (
    RESULTS_DIR,
    BenchError,
    BenchmarkResult,
    Harness,
    Measurement,
    _cpu_times,
    _host,
    ratio_note,
)
from shared.consumers import FETCH_MAX_WAIT_MS
from shared.embedded import ChildProcess
from shared.envelopes import Topic
from shared.message_map import inbound_message_id

WORKSPACE = "ws_bench_import"
CHANNELS = 200
SIZES = (100_000, 1_000_000)
SEED = 16
TARGET_RATIO = 0.6
TARGET_RATE = 5_000.0  # messages/s, ours
TARGET_RSS_MB = 250.0
CACHE_DIR = RESULTS_DIR / "exports"
GENERATOR = Path(__file__).resolve().parent.parent / "tests" / "fakes" / "slack_export.py"
# Subtypes that are someone saying something (shared.providers.slack.messages): imported.
# Every other one is a notice the import skips.
CONTENT_SUBTYPES = frozenset({"thread_broadcast", "file_share", "me_message", "bot_message"})
FLUSH_EVERY = 1_000
RSS_POLL_SECONDS = 0.1
# After the job is over (or the baseline said it is done), how long to wait for envelopes
# still on their way before calling the rest missing.
SETTLE_SECONDS = 30.0


def _workspace(source: Export) -> str:
    """A workspace per import: the envelopes of one are told from another's."""
    return f"{WORKSPACE}_{size_label(source.messages)}"


def chat_channel(conversation_id: str) -> str:
    return f"ch_imp_{conversation_id}"


def size_label(messages: int) -> str:
    if messages % 1_000_000 == 0:
        return f"{messages // 1_000_000}m"
    if messages % 1_000 == 0:
        return f"{messages // 1_000}k"
    return str(messages)


# -- the exports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    path: Path
    messages: int
    importable: int  # what an import publishes: the messages minus the notices it skips
    day_files: int
    zip_bytes: int
    uncompressed_bytes: int
    generated_in: float | None  # s; None when reused from the cache


def export(messages: int, cache: Path = CACHE_DIR) -> Export:
    """The export of `messages` over `CHANNELS` conversations, generated once per size,
    seed and generator version."""
    version = hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:10]
    stem = f"slack-{messages}-{CHANNELS}ch-seed{SEED}-{version}"
    path, meta_path = cache / f"{stem}.zip", cache / f"{stem}.json"
    generated_in = None
    if not (path.exists() and meta_path.exists()):
        from tests.slack_export import generate

        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        print(f"bench: generating a Slack export of {messages:,} messages…", flush=True)
        started = time.perf_counter()
        stats = generate(partial, messages, CHANNELS, seed=SEED)
        generated_in = time.perf_counter() - started
        meta = asdict(stats)
        meta["by_subtype"] = dict(stats.by_subtype)
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        partial.replace(path)
    meta = json.loads(meta_path.read_text())
    by_subtype: dict[str, int] = meta["by_subtype"]
    importable = sum(
        count
        for subtype, count in by_subtype.items()
        if subtype == "plain" or subtype in CONTENT_SUBTYPES
    )
    return Export(
        path=path,
        messages=int(meta["messages"]),
        importable=importable,
        day_files=int(meta["day_files"]),
        zip_bytes=path.stat().st_size,
        uncompressed_bytes=int(meta["bytes_uncompressed"]),
        generated_in=generated_in,
    )


def conversation_ids(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        found = []
        for index in ("channels.json", "groups.json", "dms.json", "mpims.json"):
            with contextlib.suppress(KeyError):
                found += [str(item["id"]) for item in orjson.loads(archive.read(index))]
    return found


# -- watching a process --------------------------------------------------------------------------


class RssWatch:
    """Polls a process's resident set size in a thread, by phase (`mark`): the largest
    seen in each, and the kernel's high-water mark (VmHWM) of each, which is reset at
    each mark (`/proc/<pid>/clear_refs`; without that right, the process's whole life)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, str, int]] = []  # (monotonic, phase, kB)
        self.hwm_kb: dict[str, int] = {}
        self.phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._close_phase()

    def mark(self, phase: str) -> None:
        self._close_phase()
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.phase = phase

    def _close_phase(self) -> None:
        hwm = _status_kb(self.pid, "VmHWM")
        if hwm is not None:
            self.hwm_kb[self.phase] = hwm

    def _poll(self) -> None:
        while not self._stop.is_set():
            rss = _status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), self.phase, rss))
            self._stop.wait(RSS_POLL_SECONDS)

    def peak_mb(self, phase: str | None = None) -> float:
        found = [kb for _, p, kb in self.samples if phase is None or p == phase]
        hwm = [kb for p, kb in self.hwm_kb.items() if phase is None or p == phase]
        return max(found + hwm, default=0) / 1024

    def course(self, phase: str, points: int = 5) -> list[float]:
        """The RSS (MB) at evenly spaced moments of a phase, its start to its end."""
        found = [kb for _, p, kb in self.samples if p == phase]
        if not found:
            return []
        picks = {round(i * (len(found) - 1) / (points - 1)) for i in range(points)}
        return [found[i] / 1024 for i in sorted(picks)]


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- reading the topic ---------------------------------------------------------------------------


@dataclass
class Reading:
    """What the harness read from a topic during one import."""

    count: int = 0
    value_bytes: int = 0
    first_at: float | None = None  # time.time() of the first batch read
    last_at: float | None = None
    cpu_first: dict[str, float] = field(default_factory=dict)
    cpu_last: dict[str, float] = field(default_factory=dict)
    host_first: dict[str, float] = field(default_factory=dict)
    host_last: dict[str, float] = field(default_factory=dict)
    foreign: int = 0  # envelopes of another import, not counted
    ids: set[bytes] = field(default_factory=set)
    duplicates: int = 0  # envelopes read again with an id already read
    duplicate_samples: list[bytes] = field(default_factory=list)

    @property
    def window(self) -> float:
        if self.first_at is None or self.last_at is None:
            return 0.0
        return self.last_at - self.first_at

    def measurement(self, label: str, expected: int) -> Measurement:
        window = self.window
        distinct = len(self.ids)
        missing = max(expected - distinct, 0)
        extra = max(distinct - expected, 0)
        kinds = {"missing": missing} if missing else {}
        if extra:
            kinds["unexpected"] = extra
        if self.duplicates:
            kinds["duplicate"] = self.duplicates
        return Measurement(
            label=label,
            rps=round(distinct / window, 1) if window > 0 else 0.0,
            p50_ms=None,
            p90_ms=None,
            p99_ms=None,
            max_ms=None,
            ok=min(distinct, expected),
            errors=missing + extra + self.duplicates,
            error_kinds=kinds,
            window_s=round(window, 3),
            cpu_cores=_per_second(self.cpu_first, self.cpu_last, window),
            host_cores=_per_second(self.host_first, self.host_last, window),
        )


def _per_second(first: dict[str, float], last: dict[str, float], window: float) -> dict[str, float]:
    if window <= 0:
        return {}
    return {name: round((last[name] - first[name]) / window, 2) for name in first if name in last}


class Reader:
    """An aiokafka consumer without a group, assigned to every partition of a topic at its
    end; counts what arrives after that, with the time and the CPU of `pids` at the first
    and the latest batch."""

    def __init__(self, bootstrap: str, topic: str, pids: dict[str, int], workspace: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.pids = pids
        # Only this import's envelopes count: after an import of another size on the same
        # topic, a consumer assigned at the end (seek_to_end) was seen to read a few
        # thousand of the earlier import's last envelopes from the embedded broker.
        self.marker = f'"workspace_id":"{workspace}"'.encode()
        self.reading = Reading()
        self._consumer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=4 * 2**20,
            client_id="import-bench-reader",
        )
        await consumer.start()
        self._consumer = consumer
        partitions = None
        for _ in range(100):
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            await consumer.topics()  # a metadata request
            await asyncio.sleep(0.1)
        if not partitions:
            raise BenchError(f"{self.topic} has no partitions")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for partition in assigned:
            await consumer.position(partition)

    async def read_until(self, done: asyncio.Event, expected: int) -> None:
        """Reads until `expected` records arrived, or `done` is set and nothing more came
        for SETTLE_SECONDS."""
        consumer, reading = self._consumer, self.reading
        quiet_since: float | None = None
        while len(reading.ids) < expected:
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            now = time.time()
            got = 0
            for records in batches.values():
                got += len(records)
                for record in records:
                    value = record.value
                    if self.marker not in value:
                        reading.foreign += 1
                        got -= 1
                        continue
                    reading.value_bytes += len(value)
                    key = _envelope_id(value)
                    if key in reading.ids:
                        reading.duplicates += 1
                        if len(reading.duplicate_samples) < 5:
                            reading.duplicate_samples.append(value)
                    else:
                        reading.ids.add(key)
            if got:
                if reading.first_at is None:
                    reading.first_at = now
                    reading.cpu_first, reading.host_first = _cpu_times(self.pids), _host()
                reading.count += got
                reading.last_at = now
                reading.cpu_last, reading.host_last = _cpu_times(self.pids), _host()
                quiet_since = None
            elif done.is_set():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > SETTLE_SECONDS:
                    return

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def _envelope_id(value: bytes) -> bytes:
    """The envelope's id: both write it first."""
    if value.startswith(b'{"id":"'):
        end = value.find(b'"', 7)
        if end > 0:
            return value[7:end]
    return str(orjson.loads(value)["id"]).encode()


# -- ours ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One import, ours or the baseline's."""

    measurement: Measurement
    reading: Reading
    rss: RssWatch
    upload_s: float | None = None
    job: dict[str, Any] | None = None
    produced: int | None = None  # what the baseline says it produced


async def import_ours(
    importer_url: str,
    admin_token: str,
    source: Export,
    reader: Reader,
    rss: RssWatch,
    limit_s: float,
) -> tuple[dict[str, Any], float]:
    """Uploads the export and follows the job while `reader` reads the topic; the job as it
    ended and the upload's duration."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    channel_map = {c: chat_channel(c) for c in conversation_ids(source.path)}
    done = asyncio.Event()
    reading = asyncio.ensure_future(reader.read_until(done, source.importable))
    try:
        async with httpx.AsyncClient(base_url=importer_url, timeout=600, trust_env=False) as client:
            rss.mark("upload")
            started = time.perf_counter()
            with source.path.open("rb") as file:
                answer = await client.post(
                    "/api/imports",
                    data={
                        "workspace_id": _workspace(source),
                        "channel_map": orjson.dumps(channel_map).decode(),
                    },
                    files={"file": (source.path.name, file, "application/zip")},
                    headers=headers,
                )
            upload_s = time.perf_counter() - started
            rss.mark("import")
            if answer.status_code != 202:
                raise BenchError(f"the upload was refused: {answer.status_code} {answer.text}")
            job_id = answer.json()["id"]
            deadline = time.monotonic() + limit_s
            while True:
                job: dict[str, Any] = (
                    await client.get(f"/api/imports/{job_id}", headers=headers)
                ).json()
                if job["status"] in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise BenchError(f"the import did not end within {limit_s:.0f} s: {job}")
                if reading.done():
                    reading.result()  # a reader's failure, raised here
                await asyncio.sleep(0.5)
        if job["status"] != "completed":
            raise BenchError(f"the import ended {job['status']}: {job.get('error')}")
        done.set()
        await reading
    finally:
        if not reading.done():
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
    return job, upload_s


def run_ours(harness: Harness, source: Export, inbound: str) -> Run:
    infrastructure = harness.infrastructure()
    importer = harness.start_service("importer")
    pid = importer.child.process.pid
    pids = {
        "importer": pid,
        "kafka": infrastructure.broker.process.pid,
        "mongo": infrastructure.mongo.process.pid,
        "harness": os.getpid(),
    }
    timeout = max(600.0, source.messages / 500)

    async def go(rss: RssWatch) -> tuple[dict[str, Any], float, Reading]:
        reader = Reader(infrastructure.kafka_bootstrap, inbound, pids, _workspace(source))
        await reader.start()
        try:
            job, upload_s = await import_ours(
                importer.url, infrastructure.admin_token, source, reader, rss, timeout
            )
        finally:
            await reader.stop()
        return job, upload_s, reader.reading

    with RssWatch(pid) as rss:
        job, upload_s, reading = asyncio.run(go(rss))
        rss.mark("after")
    if not importer.child.alive():
        raise BenchError(f"the importer exited; its log: {importer.child.log_path}")
    importer.stop()
    measurement = reading.measurement("hookhub importer", source.importable)
    imported = int(job["progress"]["messages_imported"])
    if imported != len(reading.ids):
        measurement.errors += abs(imported - len(reading.ids))
        measurement.error_kinds["read_not_imported"] = abs(imported - len(reading.ids))
    return Run(measurement, reading, rss, upload_s=upload_s, job=job)


# -- the baseline --------------------------------------------------------------------------------


def run_baseline(harness: Harness, source: Export, inbound: str) -> Run:
    from bench.sync import _topic_like

    infrastructure = harness.infrastructure()
    bootstrap = infrastructure.kafka_bootstrap
    topic = asyncio.run(_topic_like(bootstrap, inbound, f"import-baseline-{source.messages}"))
    channel_map = {c: chat_channel(c) for c in conversation_ids(source.path)}
    map_path = harness.root / f"import-map-{source.messages}.json"
    map_path.write_bytes(orjson.dumps(channel_map))
    done_path = harness.root / f"import-baseline-{source.messages}.done"
    pids = {
        "kafka": infrastructure.broker.process.pid,
        "mongo": infrastructure.mongo.process.pid,
        "harness": os.getpid(),
    }

    async def go() -> tuple[Reading, ChildProcess, RssWatch]:
        reader = Reader(bootstrap, topic, pids, _workspace(source))
        await reader.start()
        argv = [sys.executable, "-m", "bench.importer", "baseline", "--zip", str(source.path)]
        argv += ["--bootstrap", bootstrap, "--topic", topic, "--map", str(map_path)]
        argv += ["--workspace", _workspace(source), "--done", str(done_path)]
        child = harness.start_process(f"import-baseline-{size_label(source.messages)}", argv)
        pids["baseline"] = child.process.pid
        done = asyncio.Event()
        try:
            with RssWatch(child.process.pid) as rss:
                rss.mark("import")
                reading = asyncio.ensure_future(reader.read_until(done, source.importable))
                deadline = time.monotonic() + max(600.0, source.messages / 500)
                while not reading.done():
                    if done_path.exists():
                        done.set()
                    if not child.alive():
                        done.set()
                        if child.process.returncode:
                            reading.cancel()
                            raise BenchError(f"the baseline failed; its log: {child.log_path}")
                    if time.monotonic() > deadline:
                        reading.cancel()
                        raise BenchError("the baseline did not end in time")
                    await asyncio.sleep(0.2)
                await reading
                for _ in range(100):  # it writes the file once its last produce is acked
                    if done_path.exists():
                        break
                    await asyncio.sleep(0.1)
        finally:
            await reader.stop()
        return reader.reading, child, rss

    reading, child, rss = asyncio.run(go())
    child.stop()
    produced = None
    if done_path.exists():
        produced = int(json.loads(done_path.read_text())["produced"])
    measurement = reading.measurement("baseline (zipfile + orjson → aiokafka)", source.importable)
    if produced is not None and produced != len(reading.ids):
        measurement.errors += abs(produced - len(reading.ids))
        measurement.error_kinds["read_not_produced"] = abs(produced - len(reading.ids))
    return Run(measurement, reading, rss, produced=produced)


async def baseline_loop(
    zip_path: Path, bootstrap: str, topic: str, channel_map: dict[str, str], workspace: str,
    flush_every: int,
) -> int:  # fmt: skip
    """The same envelopes as the importer's, from the same ZIP, produced with aiokafka."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        client_id="import-baseline",
    )
    await producer.start()
    produced = 0
    try:
        with zipfile.ZipFile(zip_path) as archive:
            # Slack writes UTF-8 names without the UTF-8 flag: zipfile reads them as cp437.
            members = {_utf8_name(info): info for info in archive.infolist()}

            def index(name: str) -> list[dict[str, Any]]:
                return orjson.loads(archive.read(members[name])) if name in members else []

            users: dict[str, tuple[str, str | None]] = {}
            teams: Counter[str] = Counter()
            for user in index("users.json"):
                profile = user.get("profile") or {}
                name = (
                    profile.get("display_name")
                    or profile.get("real_name")
                    or user.get("real_name")
                    or user.get("name")
                    or user["id"]
                )
                users[user["id"]] = (name, profile.get("image_72"))
                if user.get("team_id"):
                    teams[user["team_id"]] += 1
            account = teams.most_common(1)[0][0] if teams else "export"
            days: dict[str, list[str]] = {}
            for member in members:
                folder, _, day = member.partition("/")
                if day.endswith(".json"):
                    days.setdefault(folder, []).append(member)
            pending: list[asyncio.Future[Any]] = []
            for file, kind in (("channels.json", ""), ("groups.json", ""), ("dms.json", "dm")):
                conversations = index(file)
                if file == "dms.json":
                    conversations += index("mpims.json")
                for conversation in conversations:
                    conversation_id = conversation["id"]
                    is_dm = kind == "dm" and "name" not in conversation
                    folder = conversation_id if is_dm else conversation["name"]
                    channel_id = channel_map[conversation_id]
                    key = channel_id.encode()
                    for day in sorted(days.get(folder, ())):
                        for record in orjson.loads(archive.read(members[day])):
                            envelope = _envelope(
                                record, account, workspace, conversation_id, channel_id, users
                            )
                            if envelope is None:
                                continue
                            pending.append(await producer.send(topic, envelope, key=key))
                            produced += 1
                            if len(pending) >= flush_every:
                                await asyncio.gather(*pending)
                                pending = []
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return produced


def _utf8_name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return info.filename


def _envelope(
    record: dict[str, Any],
    account: str,
    workspace: str,
    conversation_id: str,
    channel_id: str,
    users: dict[str, tuple[str, str | None]],
) -> bytes | None:
    subtype = record.get("subtype")
    if subtype is not None and subtype not in CONTENT_SUBTYPES:
        return None
    ts = record["ts"]
    user_id = record.get("user")
    if subtype == "bot_message" or record.get("bot_id"):
        icons = record.get("icons") or {}
        name, avatar = record.get("username") or user_id or "bot", icons.get("image_48")
        external_id = record.get("bot_id")
    else:
        name, avatar = users.get(user_id or "", (user_id or "unknown", None))
        external_id = user_id
    thread_ts = record.get("thread_ts")
    thread = thread_ts if thread_ts and thread_ts != ts else None
    files = record.get("files")
    if files is None and "file" in record:
        files = [record["file"]]
    source: dict[str, Any] = {
        "provider": "slack",
        "integration_id": "",
        "external_channel_id": conversation_id,
        "external_message_id": ts,
    }
    envelope: dict[str, Any] = {
        "id": inbound_message_id("slack", account, conversation_id, ts),
        "type": "message.received",
        "workspace_id": workspace,
        "channel_id": channel_id,
        "source": source,
        "author": {"name": name, "avatar_url": avatar, "external_id": external_id},
        "text": record.get("text") or "",
        "attachments": [
            {
                "url": f.get("permalink") or f.get("url_private"),
                "name": f.get("name"),
                "mime_type": f.get("mimetype"),
            }
            for f in files or ()
        ],
    }
    if record.get("blocks"):
        envelope["blocks"] = record["blocks"]
    if thread:
        source["external_thread_id"] = thread
        envelope["thread_id"] = inbound_message_id("slack", account, conversation_id, thread)
    envelope["imported"] = True
    envelope["occurred_at"] = datetime.fromtimestamp(float(ts), UTC).isoformat()
    return orjson.dumps(envelope)


def serve_baseline(args: argparse.Namespace) -> int:
    import uvloop

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    channel_map = orjson.loads(Path(args.map).read_bytes())
    with contextlib.suppress(KeyboardInterrupt):
        produced = uvloop.run(
            baseline_loop(
                Path(args.zip), args.bootstrap, args.topic, channel_map, args.workspace,
                args.flush_every,
            )
        )  # fmt: skip
        Path(args.done).write_text(json.dumps({"produced": produced}))
        # Stays until stopped, so that its CPU and memory can still be read.
        while True:
            time.sleep(1)
    return 0


# -- the benchmark -------------------------------------------------------------------------------


class Import:
    name = "import"
    title = "Slack export import → hookhub.chat.inbound"

    def __init__(self) -> None:
        self.sizes: tuple[int, ...] = SIZES

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        infrastructure = harness.infrastructure()
        inbound = f"{infrastructure.topic_namespace}.{Topic.CHAT_INBOUND}"
        sources = [export(messages) for messages in sorted(self.sizes)]
        results: list[tuple[Export, Run, Run]] = []
        for source in sources:
            print(f"bench: import of {source.messages:,} messages, hookhub…", flush=True)
            ours = run_ours(harness, source, inbound)
            print(f"bench: import of {source.messages:,} messages, baseline…", flush=True)
            base = run_baseline(harness, source, inbound)
            results.append((source, ours, base))
        return [self._result(source, ours, base, results) for source, ours, base in results]

    def _result(
        self, source: Export, ours: Run, base: Run, every: list[tuple[Export, Run, Run]]
    ) -> BenchmarkResult:
        job = ours.job or {}
        started_at = job.get("started_at")
        since_start = None
        if started_at and ours.reading.last_at is not None:
            started = datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
            since_start = ours.reading.last_at - started
        rate = ours.measurement.rps
        rate_verdict = "met" if rate >= TARGET_RATE else "NOT MET"
        rss = ours.rss.peak_mb("import")
        notes = [
            f"{source.messages:,} generated messages over {CHANNELS} conversations in "
            f"{source.day_files:,} day files ({source.zip_bytes / 2**20:.1f} MiB zipped, "
            f"{source.uncompressed_bytes / 2**20:.0f} MiB of JSON); {source.importable:,} "
            "are imported, the rest are notices both skip (joins, leaves, topic changes, "
            "tombstones)"
            + (
                f"; generated in {source.generated_in:.1f} s"
                if source.generated_in is not None
                else ""
            ),
            f"target ≥ {TARGET_RATE:,.0f} messages/s: {rate:,.0f}, {rate_verdict}",
            ratio_note(ours.measurement, base.measurement, TARGET_RATIO),
            f"upload (POST /api/imports: transfer, check, copy into GridFS): "
            f"{ours.upload_s or 0:.1f} s, not in the throughput"
            + (
                f"; the job's started_at → last envelope read: {since_start:.1f} s "
                f"({ours.reading.count / since_start:,.0f} messages/s)"
                if since_start
                else ""
            ),
            f"job: {job.get('progress', {}).get('messages_imported', 0):,} imported, "
            f"{job.get('progress', {}).get('messages_skipped', 0):,} skipped, attempt "
            f"{job.get('attempts')}; envelopes read {ours.reading.count:,} (hookhub, "
            f"{len(ours.reading.ids):,} distinct ids) and {base.reading.count:,} (baseline, "
            f"{len(base.reading.ids):,} distinct; it says it produced "
            f"{base.produced if base.produced is not None else '?'})"
            + (
                f"; {ours.reading.foreign + base.reading.foreign:,} envelopes of another "
                "import read and left out"
                if ours.reading.foreign or base.reading.foreign
                else ""
            ),
            "envelope size, mean: hookhub "
            f"{_mean_bytes(ours.reading)}, baseline {_mean_bytes(base.reading)}",
            f"importer peak RSS during the import (202 → completed): {rss:,.0f} MB, target ≤ "
            f"{TARGET_RSS_MB:g} MB: {'met' if rss <= TARGET_RSS_MB else 'NOT MET'}; over "
            f"the import: {_course(ours.rss.course('import'))} MB; idle before the upload "
            f"{ours.rss.peak_mb('start'):,.0f} MB; during the upload (until 202) "
            f"{ours.rss.peak_mb('upload'):,.0f} MB; the baseline's peak "
            f"{base.rss.peak_mb():,.0f} MB",
            "CPU per message (process CPU over the window / messages): importer "
            f"{_cpu_ms(ours, 'importer')}, baseline loop {_cpu_ms(base, 'baseline')}",
        ]
        if len(every) > 1 and source is every[-1][0]:
            sizes = ", ".join(
                f"{s.messages:,}: {o.rss.peak_mb('import'):,.0f} MB (upload "
                f"{o.rss.peak_mb('upload'):,.0f}, baseline {b.rss.peak_mb():,.0f})"
                for s, o, b in every
            )
            notes.append(f"importer peak RSS by export size: {sizes}")
        extra = ours.reading.ids - base.reading.ids
        if extra or ours.reading.duplicates:
            shown = ", ".join(sorted(i.decode() for i in extra)[:5])
            notes.append(
                f"hookhub published {len(extra)} ids the baseline did not ({shown}) and "
                f"{ours.reading.duplicates} envelopes twice"
            )
            for value in ours.reading.duplicate_samples:
                notes.append(f"read twice: {value[:400].decode(errors='replace')}")
        label = size_label(source.messages)
        return BenchmarkResult(
            "import" if source is every[-1][0] else f"import-{label}",
            f"Slack export of {source.messages:,} messages imported by one importer process",
            ours.measurement,
            base.measurement,
            notes=notes,
            setup=f"{source.messages:,} messages, first → last envelope read",
            unit="messages/s",
        )


def _course(values: list[float]) -> str:
    return " → ".join(f"{value:,.0f}" for value in values) or "-"


def _mean_bytes(reading: Reading) -> str:
    return f"{reading.value_bytes / reading.count:,.0f} B" if reading.count else "-"


def _cpu_ms(run: Run, process: str) -> str:
    cores = run.measurement.cpu_cores.get(process)
    if cores is None or not run.reading.count:
        return "-"
    return f"{1000 * cores * run.reading.window / run.reading.count:.3f} ms"


BENCHMARK = Import()


# -- the processes -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.importer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    base = commands.add_parser("baseline", help="the zipfile + orjson → aiokafka loop")
    base.add_argument("--zip", required=True)
    base.add_argument("--bootstrap", required=True)
    base.add_argument("--topic", required=True)
    base.add_argument("--map", required=True, help="a JSON file: conversation id → channel id")
    base.add_argument("--workspace", required=True)
    base.add_argument("--done", required=True, help="a file written once every send is acked")
    base.add_argument("--flush-every", type=int, default=FLUSH_EVERY)
    gen = commands.add_parser("generate", help="generate (or find) the export of a size")
    gen.add_argument("--messages", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "generate":
        found = export(args.messages)
        print(f"{found.path} ({found.importable:,} importable)")
        return 0
    return serve_baseline(args)


if __name__ == "__main__":
    sys.exit(main())
