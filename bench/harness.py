"""What every benchmark shares: the infrastructure, service processes, the load run, results.

A `Harness` owns every process a run starts and stops them all when it exits, however it
exits (an exception, Ctrl-C, SIGTERM). Infrastructure is started once, on first use: an
embedded broker and MongoDB server on free ports, a fresh data dir under a temporary
directory, a topic namespace and database name of this run only, and a new admin token and
Fernet key handed to services through the environment. A benchmark asks the harness for the
processes it needs and calls `load()` once for hookhub and once for the baseline with the
same body, concurrency and duration, and returns a `BenchmarkResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import httpx
from cryptography.fernet import Fernet
from pymongo import MongoClient
from pymongo.database import Database

from bench.loadgen import SEQ, SIGNERS, Target
from shared.kernel.embedded import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    ChildProcess,
    die_with_parent,
    free_port,
    spawn,
    start_broker,
    start_mongo,
    wait_for_port,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Options:
    duration: float = 10.0
    warmup: float = 2.0
    concurrency: int = 50
    client: str = "raw"
    timeout: float = 10.0
    # The soak's length (`--duration` when given; bench.soak.DEFAULT_SECONDS otherwise).
    soak_seconds: float = 1200.0
    # Extra HOOKHUB_* variables for the services under test (`--set KEY=VALUE`).
    service_env: dict[str, str] = field(default_factory=dict)
    keep_logs: bool = False


@dataclass
class Measurement:
    """One load run against one server."""

    label: str
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    ok: int
    errors: int
    error_kinds: dict[str, int]
    window_s: float
    # CPU cores used during the measured window, per watched process (including the client).
    cpu_cores: dict[str, float]
    # The whole machine during the window, in cores: busy (any process), idle, and stolen by
    # the hypervisor (a noisy neighbour on a shared VM host).
    host_cores: dict[str, float] = field(default_factory=dict)
    # Set by the benchmarks that report it (in notes and the JSON; the table shows p50, p99).
    p95_ms: float | None = None


@dataclass
class BenchmarkResult:
    name: str
    title: str
    ours: Measurement
    # None: a benchmark judged against targets alone (the soak).
    baseline: Measurement | None
    notes: list[str] = field(default_factory=list)
    # For benchmarks not driven by the load generator: how the run was set up (printed in
    # place of the load options), what the rate column counts, and what the ratio compares:
    # "rps" (ours/baseline throughput) or "latency" (ours/baseline p50 and p99).
    setup: str | None = None
    unit: str = "req/s"
    compare: Literal["rps", "latency"] = "rps"
    # More rows between ours and the baseline (other configurations of ours), in notes'
    # ratios: the ratio row is ours/baseline.
    others: list[Measurement] = field(default_factory=list)
    # The second baseline (bench.minimal), the row before the baseline's: a minimal correct
    # gateway doing the same requests; `minimal_ratio` is ours/it.
    minimal: Measurement | None = None

    @property
    def ratio(self) -> float | None:
        if self.compare != "rps" or self.baseline is None:
            return None
        return self.ours.rps / self.baseline.rps if self.baseline.rps else None

    @property
    def minimal_ratio(self) -> float | None:
        if self.minimal is None or not self.minimal.rps:
            return None
        return self.ours.rps / self.minimal.rps

    @property
    def latency_ratios(self) -> dict[str, float | None]:
        """ours/baseline of p50 and p99 (lower is better), for `compare="latency"`."""
        if self.baseline is None:
            return {"p50": None, "p99": None}
        pairs = {
            "p50": (self.ours.p50_ms, self.baseline.p50_ms),
            "p99": (self.ours.p99_ms, self.baseline.p99_ms),
        }
        return {
            name: round(ours / base, 2) if ours is not None and base else None
            for name, (ours, base) in pairs.items()
        }

    @property
    def runs(self) -> list[Measurement]:
        floors = [run for run in (self.minimal, self.baseline) if run is not None]
        return [self.ours, *self.others, *floors]

    @property
    def flagged(self) -> bool:
        return any(run.errors for run in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "ours": asdict(self.ours),
            "baseline": asdict(self.baseline) if self.baseline is not None else None,
            "ratio": _rounded(self.ratio),
            "flagged": self.flagged,
            "notes": self.notes,
            **({"setup": self.setup} if self.setup is not None else {}),
            **({"unit": self.unit} if self.unit != "req/s" else {}),
            **({"latency_ratios": self.latency_ratios} if self.compare == "latency" else {}),
            **({"others": [asdict(run) for run in self.others]} if self.others else {}),
            **({"minimal": asdict(self.minimal)} if self.minimal is not None else {}),
            **({"minimal_ratio": _rounded(self.minimal_ratio)} if self.minimal is not None else {}),
        }


def _rounded(ratio: float | None) -> float | None:
    return round(ratio, 3) if ratio is not None else None


class Benchmark(Protocol):
    """One entry of `bench.suite.BENCHMARKS`."""

    name: str
    title: str

    def run(self, harness: Harness) -> BenchmarkResult | list[BenchmarkResult]: ...


@dataclass
class Infrastructure:
    broker: ChildProcess
    mongo: ChildProcess
    kafka_bootstrap: str
    mongo_uri: str
    mongo_db: str
    topic_namespace: str
    data_dir: Path
    admin_token: str
    encryption_key: str
    mongo_storage: Path
    # `bench.tcp_proxy`, in front of the broker: every client connects through it.
    broker_proxy: ChildProcess | None = None

    @property
    def mongo_port(self) -> int:
        return int(self.mongo_uri.rpartition(":")[2])

    @contextlib.contextmanager
    def database(self) -> Iterator[Database[dict[str, Any]]]:
        """The run's database, through a PyMongo client closed after the block."""
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.mongo_uri, serverSelectionTimeoutMS=5000
        )
        try:
            yield client[self.mongo_db]
        finally:
            client.close()

    def pids(self) -> dict[str, int]:
        """The broker's, MongoDB's and this process's (the harness's), for a `CpuWindow`."""
        return {
            "kafka": self.broker.process.pid,
            "mongo": self.mongo.process.pid,
            "harness": os.getpid(),
        }

    def env(self) -> dict[str, str]:
        return {
            "HOOKHUB_ENV": "dev",
            "HOOKHUB_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "HOOKHUB_MONGO_URI": self.mongo_uri,
            "HOOKHUB_MONGO_DB": self.mongo_db,
            "HOOKHUB_TOPIC_NAMESPACE": self.topic_namespace,
            "HOOKHUB_DATA_DIR": str(self.data_dir),
            "HOOKHUB_ADMIN_TOKEN": self.admin_token,
            "HOOKHUB_ENCRYPTION_KEYS": self.encryption_key,
            "HOOKHUB_LOG_FORMAT": "json",
            # Its topics have several partitions: on tansu, a fetch of several is answered
            # at its wait's end, not when records arrive (shared.kernel.embedded).
            "HOOKHUB_KAFKA_FETCH_MAX_WAIT_MS": str(EMBEDDED_FETCH_MAX_WAIT_MS),
        }


@dataclass
class Server:
    """An HTTP server process of the run: a hookhub service or the baseline."""

    name: str
    url: str
    child: ChildProcess

    def stop(self) -> None:
        self.child.stop()


class Harness:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.root = Path(tempfile.mkdtemp(prefix="hookhub-bench-"))
        self.log_dir = self.root / "logs"
        self.run_id = uuid.uuid4().hex[:10]
        self._children: list[ChildProcess] = []
        self._infrastructure: Infrastructure | None = None
        self._baseline: Server | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Harness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(keep_logs=self.options.keep_logs or exc is not None)

    def close(self, keep_logs: bool = False) -> None:
        """Stops every process started, newest first (services, then MongoDB, then Kafka)."""
        with _signals_deferred():
            while self._children:
                child = self._children.pop()
                try:
                    child.stop(timeout=10)
                except Exception as exc:  # keep stopping the others
                    print(f"bench: stopping {child.name} failed: {exc!r}", file=sys.stderr)
                    child.kill()
        if keep_logs:
            print(f"bench: logs kept in {self.log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)

    def _adopt(self, child: ChildProcess) -> ChildProcess:
        self._children.append(child)
        return child

    # -- processes -----------------------------------------------------------------------

    def infrastructure(self) -> Infrastructure:
        if self._infrastructure is None:
            self._infrastructure = self.new_infrastructure()
        return self._infrastructure

    def new_infrastructure(self, name: str = "", *, proxied: bool = False) -> Infrastructure:
        """A broker and MongoDB server on free ports, with a data dir, topic namespace,
        database, admin token and key of their own. The run's (`infrastructure()`) is
        unnamed; a benchmark that stops them (the soak) makes its own, named, whose logs
        are `kafka-<name>.log` and `mongo-<name>.log`. `proxied`: the broker behind
        `bench.tcp_proxy`, which it advertises, so that the proxy can stop "the broker"."""
        suffix = f"-{name}" if name else ""
        root = self.root / name if name else self.root
        kafka_port, mongo_port, proxy_port = free_port(), free_port(), free_port()
        broker = self._adopt(
            start_broker(
                kafka_port,
                self.log_dir,
                advertised_port=proxy_port if proxied else None,
                name="kafka" + suffix,
            )
        )
        proxy = None
        if proxied:
            argv = [sys.executable, "-m", "bench.tcp_proxy", "--port", str(proxy_port)]
            proxy = self.start_process("kafka-proxy" + suffix, [*argv, "--target", str(kafka_port)])
            wait_for_port(proxy_port, 10, proxy.process)
            kafka_port = proxy_port
        storage = root / "mongo"
        mongo = self._adopt(start_mongo(mongo_port, storage, self.log_dir, name="mongo" + suffix))
        return Infrastructure(
            broker=broker,
            mongo=mongo,
            kafka_bootstrap=f"127.0.0.1:{kafka_port}",
            mongo_uri=f"mongodb://127.0.0.1:{mongo_port}",
            mongo_db=f"hookhub_bench_{self.run_id}{suffix.replace('-', '_')}",
            topic_namespace=f"bench-{self.run_id}{suffix}",
            data_dir=root / "data",
            admin_token="hh_admin_" + secrets.token_urlsafe(32),
            encryption_key=Fernet.generate_key().decode(),
            mongo_storage=storage,
            broker_proxy=proxy,
        )

    def stop_infrastructure(self, infrastructure: Infrastructure) -> None:
        """A `new_infrastructure`'s processes stopped (MongoDB, the proxy, the broker), before
        the end of the run; their logs stay."""
        for child in (infrastructure.mongo, infrastructure.broker_proxy, infrastructure.broker):
            if child is None:
                continue
            if child in self._children:
                self._children.remove(child)
            child.stop(timeout=10)

    def start_mongo_again(self, infrastructure: Infrastructure) -> None:
        """MongoDB started again (after it was stopped) on its port and storage."""
        mongo = infrastructure.mongo
        infrastructure.mongo = self._adopt(
            start_mongo(
                infrastructure.mongo_port,
                infrastructure.mongo_storage,
                self.log_dir,
                name=mongo.name,
            )
        )

    def start_service(
        self,
        service: str,
        env: dict[str, str] | None = None,
        *,
        wait: bool = True,
        infrastructure: Infrastructure | None = None,
        name: str | None = None,
    ) -> Server:
        """`hookhub serve <service>` as its own process, as in production, on the run's
        infrastructure or the one given; waits for /readyz unless `wait` is false (then call
        `wait_ready` when it matters). `name`: the process's, for its log and CPU figures,
        when a run has two of one service (the service's name otherwise)."""
        infrastructure = infrastructure or self.infrastructure()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "services.cli", "serve", service]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        child = self._adopt(
            spawn(
                name or service,
                argv,
                self.log_dir,
                env={
                    **self._python_env(),
                    **infrastructure.env(),
                    "HOOKHUB_PUBLIC_URL": url,
                    **self.options.service_env,
                    **(env or {}),
                },
            )
        )
        server = Server(name or service, url, child)
        if wait:
            self.wait_ready(server)
        return server

    def start_process(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> ChildProcess:
        """A helper process of a benchmark (a sink, a client), logged to `<name>.log` and
        stopped with everything else; `env` added to its environment."""
        env = {**self._python_env(), **(env or {})}
        return self._adopt(spawn(name, list(argv), self.log_dir, env=env))

    def baseline(self) -> Server:
        """The bare FastAPI + uvicorn app (`bench.baseline`), started once per run."""
        if self._baseline is None or not self._baseline.child.alive():
            port = free_port()
            child = self._adopt(
                spawn(
                    "baseline",
                    [sys.executable, "-m", "bench.baseline", "--port", str(port)],
                    self.log_dir,
                    env=self._python_env(),
                )
            )
            self._baseline = Server("baseline", f"http://127.0.0.1:{port}", child)
            self.wait_ready(self._baseline)
        return self._baseline

    def wait_ready(self, server: Server, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not server.child.alive():
                    raise BenchError(
                        f"{server.name} exited with {server.child.process.returncode} while "
                        f"starting:\n{_tail(server.child.log_path)}"
                    )
                try:
                    response = client.get(server.url + "/readyz")
                except httpx.HTTPError as exc:
                    last = repr(exc)
                else:
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:300]}"
                time.sleep(0.2)
        raise BenchError(f"{server.name} not ready within {timeout:.0f}s: {last}")

    def _python_env(self) -> dict[str, str]:
        """So `python -m bench.*` resolves in children: `bench` is not an installed package."""
        path = os.environ.get("PYTHONPATH")
        return {"PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)}

    # -- load ----------------------------------------------------------------------------

    def load(
        self,
        label: str,
        target: Target,
        watch: Sequence[tuple[str, ChildProcess]] = (),
        *,
        duration: float | None = None,
    ) -> Measurement:
        """Drives `target` from a separate client process with the run's options (its
        measured window `duration` seconds instead of `--duration` when given: a benchmark
        alternating rounds of two targets).

        The CPU time of the `watch`ed processes and of the client is sampled when the
        client opens and closes its measured window.
        """
        options = self.options
        body_file = self.root / f"body-{uuid.uuid4().hex[:8]}"
        body_file.write_bytes(target.body)
        argv = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--url",
            target.url,
            "--body-file",
            str(body_file),
            "--method",
            target.method,
            "--client",
            options.client,
            "--concurrency",
            str(options.concurrency),
            "--duration",
            str(options.duration if duration is None else duration),
            "--warmup",
            str(options.warmup),
            "--timeout",
            str(options.timeout),
        ]
        for name, value in target.headers.items():
            argv += ["--header", f"{name}: {value}"]
        if target.signer is not None:
            argv += ["--signer", target.signer]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "loadgen.log").open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env={**os.environ, **self._python_env()},
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
            try:
                return self._follow(label, process, watch)
            finally:
                if process.poll() is None:
                    process.terminate()
                    try:
                        process.wait(5)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait(5)
                if process.stdout:
                    process.stdout.close()
                body_file.unlink(missing_ok=True)

    def _follow(
        self,
        label: str,
        process: subprocess.Popen[bytes],
        watch: Sequence[tuple[str, ChildProcess]],
    ) -> Measurement:
        pids = {name: child.process.pid for name, child in watch}
        pids["client"] = process.pid
        started: dict[str, float] = {}
        ended: dict[str, float] = {}
        host_started: dict[str, float] = {}
        host_ended: dict[str, float] = {}
        opened = closed = 0.0
        result: dict[str, Any] | None = None
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] == "measure-start":
                opened, started, host_started = time.perf_counter(), _cpu_times(pids), _host()
            elif event["event"] == "measure-end":
                closed, ended, host_ended = time.perf_counter(), _cpu_times(pids), _host()
            elif event["event"] == "result":
                result = event
        process.wait(30)
        if result is None:
            raise BenchError(
                f"the load generator exited with {process.returncode} and no result:\n"
                + _tail(self.log_dir / "loadgen.log")
            )
        window = max(closed - opened, 1e-9)
        cpu = _per_second(started, ended, window)
        host = _per_second(host_started, host_ended, window)
        return Measurement(
            label=label,
            rps=result["rps"],
            p50_ms=result["p50_ms"],
            p90_ms=result["p90_ms"],
            p99_ms=result["p99_ms"],
            max_ms=result["max_ms"],
            ok=result["ok"],
            errors=result["errors"],
            error_kinds=result["error_kinds"],
            window_s=result["window_s"],
            cpu_cores=cpu,
            host_cores=host,
        )


def mean_of(label: str, runs: Sequence[Measurement]) -> Measurement:
    """Several runs of one thing as one row: rates, percentiles, windows and CPU averaged
    (a percentile over the runs that have it), requests and errors summed, the worst max."""
    count = len(runs)

    def average(values: list[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return round(sum(known) / len(known), 2) if known else None

    def cores(of: list[dict[str, float]]) -> dict[str, float]:
        names = sorted({name for figures in of for name in figures})
        return {name: round(sum(f.get(name, 0.0) for f in of) / count, 2) for name in names}

    kinds: Counter[str] = Counter()
    for run in runs:
        kinds.update(run.error_kinds)
    return Measurement(
        label=label,
        rps=round(sum(run.rps for run in runs) / count, 1),
        p50_ms=average([run.p50_ms for run in runs]),
        p90_ms=average([run.p90_ms for run in runs]),
        p99_ms=average([run.p99_ms for run in runs]),
        max_ms=max((run.max_ms for run in runs if run.max_ms is not None), default=None),
        ok=sum(run.ok for run in runs),
        errors=sum(run.errors for run in runs),
        error_kinds=dict(kinds),
        window_s=round(sum(run.window_s for run in runs) / count, 3),
        cpu_cores=cores([run.cpu_cores for run in runs]),
        host_cores=cores([run.host_cores for run in runs]),
        p95_ms=average([run.p95_ms for run in runs]),
    )


# -- output --------------------------------------------------------------------------------


def ratio_note(ours: Measurement, base: Measurement, target: float) -> str:
    """ "target ratio ≥ 0.7: 0.82, met" for two throughput measurements of one run."""
    if not base.rps:
        return f"target ratio ≥ {target:g}: not measured"
    ratio = ours.rps / base.rps
    verdict = "met" if ratio >= target else "NOT MET"
    return f"target ratio ≥ {target:g}: {ratio:.2f}, {verdict}"


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio_row(result: BenchmarkResult) -> tuple[str, str, str, str, str]:
    if result.compare == "latency":
        ratios = result.latency_ratios
        cells = ["-" if ratios[q] is None else f"{ratios[q]:.2f}" for q in ("p50", "p99")]
        return ("ratio ours/baseline", "-", cells[0], cells[1], "")
    ratio = result.ratio
    return ("ratio ours/baseline", "-" if ratio is None else f"{ratio:.2f}", "", "", "")


def render(result: BenchmarkResult, options: Options) -> str:
    setup = result.setup or (
        f"{options.concurrency} connections, "
        f"{options.duration:g} s measured after {options.warmup:g} s warm-up, "
        f"{options.client} client"
    )
    header = f"{result.title} [{result.name}]: {setup}"
    rows = [("", result.unit, "p50 ms", "p99 ms", "errors")]
    for run in result.runs:
        rows.append(
            (
                run.label,
                _number(run.rps),
                _number(run.p50_ms, 2),
                _number(run.p99_ms, 2),
                str(run.errors),
            )
        )
    if result.baseline is not None:
        rows.append(_ratio_row(result))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in range(1, 5)]
        lines.append("  ".join(cells).rstrip())
    for run in result.runs:
        if run.cpu_cores:
            used = ", ".join(f"{name} {cores:.2f}" for name, cores in run.cpu_cores.items())
            lines.append(f"CPU cores during {run.label}: {used}")
            if run.host_cores:
                host = ", ".join(f"{name} {cores:.2f}" for name, cores in run.host_cores.items())
                lines.append(f"  whole machine: {host}")
    for run in result.runs:
        if run.errors:
            kinds = ", ".join(f"{kind}={n}" for kind, n in sorted(run.error_kinds.items()))
            lines.append(f"!! FLAGGED: {run.label} had {run.errors} errors ({kinds})")
    lines.extend(f"note: {note}" for note in result.notes)
    return "\n".join(lines)


def write_results(results: Sequence[BenchmarkResult], options: Options) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / "latest.json"
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "options": {
            "duration": options.duration,
            "warmup": options.warmup,
            "concurrency": options.concurrency,
            "client": options.client,
            "service_env": options.service_env,
        },
        "flagged": any(result.flagged for result in results),
        "benchmarks": [result.to_json() for result in results],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


# -- helpers -------------------------------------------------------------------------------


def _ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_times(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each process (all its threads), from /proc."""
    ticks = _ticks_per_second()
    times: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        # After the command name: state is field 3; utime and stime are fields 14 and 15.
        times[name] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def _host() -> dict[str, float]:
    """CPU seconds of the whole machine so far: busy, idle (with I/O wait) and steal."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return {}
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    ticks = _ticks_per_second()
    return {
        "busy": (user + nice + system + irq + softirq) / ticks,
        "idle": (idle + iowait) / ticks,
        "steal": steal / ticks,
    }


class CpuWindow:
    """The CPU cores each of `pids` (and the whole machine: busy, idle, steal) used between
    `open()` and `close()` (or over a `with` block), for benchmarks that time their own
    window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.opened_at: float | None = None
        self._started: dict[str, float] = {}
        self._host_started: dict[str, float] = {}
        self.cpu_cores: dict[str, float] = {}
        self.host_cores: dict[str, float] = {}
        self.elapsed = 0.0

    def open(self) -> None:
        self._started, self._host_started = _cpu_times(self.pids), _host()
        self.opened_at = time.perf_counter()

    def close(self) -> None:
        if self.opened_at is None:
            return
        self.elapsed = max(time.perf_counter() - self.opened_at, 1e-9)
        ended, host_ended = _cpu_times(self.pids), _host()
        self.cpu_cores = _per_second(self._started, ended, self.elapsed)
        self.host_cores = _per_second(self._host_started, host_ended, self.elapsed)

    def __enter__(self) -> CpuWindow:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def apply(self, measurement: Measurement) -> None:
        """The window's figures as the measurement's CPU lines."""
        measurement.cpu_cores, measurement.host_cores = self.cpu_cores, self.host_cores


def _per_second(
    started: dict[str, float], ended: dict[str, float], elapsed: float
) -> dict[str, float]:
    return {
        name: round((ended[name] - started[name]) / elapsed, 2) for name in started if name in ended
    }


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """A second Ctrl-C while stopping the processes must not leave some of them running."""
    if sys.platform == "win32":
        yield
        return
    pending: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda number, _frame: pending.append(number))
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def create_each(
    service_url: str, admin_token: str, path: str, bodies: Sequence[dict[str, Any]], in_flight: int
) -> list[dict[str, Any]]:
    """POSTs every body to `path` on a service with the admin token, `in_flight` at a time
    (mappings, subscriptions); returns what each answer made, in the bodies' order;
    BenchError unless each answer is 201."""
    gate = asyncio.Semaphore(in_flight)
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=service_url, timeout=30, trust_env=False) as client:

        async def create(index: int, body: dict[str, Any]) -> dict[str, Any]:
            async with gate:
                answer = await client.post(path, json=body, headers=headers)
            if answer.status_code != 201:
                raise BenchError(f"POST {path} #{index}: {answer.status_code} {answer.text}")
            made: dict[str, Any] = answer.json()
            return made

        return await asyncio.gather(*(create(index, body) for index, body in enumerate(bodies)))


def create_integration(
    oauth_url: str, admin_token: str, provider: str, workspace_id: str, settings: dict[str, Any]
) -> str:
    """An integration made through the oauth service, its rate limit out of the way (the
    benchmarks measure the services, not the gateway's per-integration limit); its id."""
    response = httpx.post(
        oauth_url + "/api/integrations",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={
            "provider": provider,
            "workspace_id": workspace_id,
            "settings": settings,
            "rate_limit_per_second": 100_000,
        },
        timeout=10,
    )
    if response.status_code != 201:
        raise BenchError(f"creating the integration: {response.status_code} {response.text}")
    integration_id: str = response.json()["id"]
    return integration_id


def post_once(target: Target) -> None:
    """One request as the load generator sends `target` (`{seq}` filled in, the body
    signed anew by its signer), checked: the benchmarks measure acceptance, not refusals."""
    unique = uuid.uuid4()
    body = target.body.replace(SEQ, unique.hex.encode())
    seq = SEQ.decode()
    headers = {name: value.replace(seq, str(unique)) for name, value in target.headers.items()}
    if target.signer is not None:
        signer, _, secret = target.signer.partition(":")
        headers |= SIGNERS[signer](secret)(body)
    response = httpx.post(target.url, content=body, headers=headers, timeout=10)
    if response.status_code != 200:
        raise BenchError(
            f"a single webhook was not accepted: {response.status_code} {response.text}"
        )


def wait_answering(child: ChildProcess, url: str, name: str, timeout: float = 30.0) -> None:
    """Until `url` (a helper process's probe) answers 200; BenchError if `child` exits or
    `timeout` passes first."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if not child.alive():
                raise BenchError(f"the {name} exited; its log: {child.log_path}")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise BenchError(f"the {name} did not start within {timeout:g} s")


def kafka_check(infrastructure: Infrastructure, name: str, ok: int) -> str:
    """How many messages the topic holds: at least one per 200 we counted."""
    topic = f"{infrastructure.topic_namespace}.{name}"
    try:
        total = asyncio.run(_topic_size(infrastructure.kafka_bootstrap, topic))
    except Exception as exc:
        return f"could not count the messages on {topic}: {exc!r}"
    verdict = "consistent" if total >= ok else "FEWER THAN THE 200s COUNTED"
    return (
        f"{topic} holds {total:,} messages (warm-up and first post included) for "
        f"{ok:,} measured 200s: {verdict}"
    )


async def _topic_size(bootstrap: str, topic: str) -> int:
    begin, end = await topic_offsets(bootstrap, topic)
    return sum(end[partition] - begin[partition] for partition in end)


async def topic_offsets(bootstrap: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The first and the next offset of each partition of `topic`, by partition."""
    from aiokafka import AIOKafkaConsumer

    from shared.kernel.kafka import partitions_of

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = await partitions_of(consumer, topic)
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        return (
            {tp.partition: offset for tp, offset in begin.items()},
            {tp.partition: offset for tp, offset in end.items()},
        )
    finally:
        await consumer.stop()
