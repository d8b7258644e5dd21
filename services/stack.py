"""`make run`: the embedded stack — broker, database, the five services and the single origin.

Every service is its own process, exactly as `hookhub serve` runs it in production; this
supervisor only starts them in order, prints where they are, and takes them all down on
Ctrl-C (SIGINT or SIGTERM), leaving no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx
import uvicorn

from shared.kernel.embedded import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    EMBEDDED_PARTITIONS,
    ChildProcess,
    EmbeddedError,
    port_free,
    start_broker,
    start_mongo,
)
from shared.kernel.http.tls import tls
from shared.kernel.settings import SERVICE_PORTS, ConfigurationError, Settings
from shared.kernel.zygote import Zygote

# What the zygote imports once for every service it forks (shared/kernel/zygote.py).
PRELOAD = (
    "services.cli",
    "shared.domain.platform",
    "shared.kernel.http.server",
    "uvicorn",
    *(f"services.{service}.app" for service in SERVICE_PORTS),
)

PIDS_FILE = "stack.pids"


class StackError(RuntimeError):
    pass


def _port_of_bootstrap(bootstrap: str) -> int:
    first = bootstrap.split(",")[0].strip()
    return int(first.rpartition(":")[2])


def _port_of_mongo(uri: str) -> int:
    return urlsplit(uri).port or 27017


def plan_ports(settings: Settings, sandbox: bool = False) -> dict[str, int]:
    ports = {"HTTP (single origin)": settings.http_port}
    for offset, service in enumerate(SERVICE_PORTS, start=1):
        ports[f"{service} service"] = settings.http_port + offset
    if sandbox:
        ports[SANDBOX] = settings.http_port + len(SERVICE_PORTS) + 1
    ports["Kafka broker"] = _port_of_bootstrap(settings.kafka_bootstrap)
    ports["MongoDB server"] = _port_of_mongo(settings.mongo_uri)
    return ports


SANDBOX = "sandbox"


def run_stack(sandbox: bool = False) -> int:
    # `make run | tee log` and Ctrl-C: tee gets the SIGINT too and is gone before we say
    # we are stopping; a closed terminal goes the same way. Our output is for the user
    # only: losing it must not cost the ordered stop.
    sys.stdout = _Unbreakable(sys.stdout)
    sys.stderr = _Unbreakable(sys.stderr)
    try:
        settings = Settings()
    except ConfigurationError as exc:
        print(f"hookhub run: {exc}", file=sys.stderr)
        return 2
    if sandbox and (why := settings.sandbox_refused()):
        print(why, file=sys.stderr)
        return 2
    taken = [
        f"{what} port {port}"
        for what, port in plan_ports(settings, sandbox).items()
        if not port_free(port)
    ]
    if taken:
        for item in taken:
            print(f"hookhub run: {item} is already in use", file=sys.stderr)
        print(
            "hookhub run: stop whatever holds it, or set HOOKHUB_HTTP_PORT / "
            "HOOKHUB_KAFKA_BOOTSTRAP / HOOKHUB_MONGO_URI",
            file=sys.stderr,
        )
        return 1
    # The data dir holds the admin token, the encryption key and every secret stored in the
    # database: for our user only, whatever the shell's umask, in this process and in every
    # one it starts; an earlier run's is tightened.
    os.umask(0o077)
    _keep_private(settings.data_dir)
    settings.resolve_dev_secrets()  # only now: a refused run leaves no secrets behind
    if "HOOKHUB_KAFKA_PARTITIONS" not in os.environ:
        # Its own broker answers a fetch of one partition as records arrive: no latency at
        # Kafka's 500 ms fetch wait, and an idle stack asks a tenth as often
        # (shared.kernel.embedded).
        settings.kafka_partitions = EMBEDDED_PARTITIONS
    elif settings.kafka_partitions > 1 and "HOOKHUB_KAFKA_FETCH_MAX_WAIT_MS" not in os.environ:
        # A fetch of several partitions it holds to the wait's end: asked often.
        settings.kafka_fetch_max_wait_ms = EMBEDDED_FETCH_MAX_WAIT_MS
    try:
        return asyncio.run(_run(settings, sandbox))
    except KeyboardInterrupt:
        return 0


def _keep_private(data_dir: Path) -> None:
    """The data dir and all in it readable by its owner alone (directories 0700, files
    without group and other bits), creating it if need be."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for root, dirs, files in os.walk(data_dir):
        for name in [*dirs, *files]:
            path = Path(root, name)
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    path.chmod(stat.S_IMODE(mode) & 0o700)


async def _run(settings: Settings, sandbox: bool) -> int:

    from services.edge import edge_config

    ports = plan_ports(settings, sandbox)
    data_dir = settings.data_dir.resolve()
    log_dir = data_dir / "logs"
    children: list[ChildProcess] = []
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP: the terminal closed. The children are in sessions of their own and hear
    # none of these; they are stopped in order from here.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stopping.set)

    def remember(child: ChildProcess) -> ChildProcess:
        children.append(child)
        (data_dir / PIDS_FILE).write_text("\n".join(str(c.process.pid) for c in children) + "\n")
        return child

    print(f"hookhub: data in {data_dir}, logs in {log_dir}", flush=True)
    exit_code = 0
    try:
        # Started from the main thread on purpose: a child's parent-death signal fires when
        # the *thread* that forked it exits, and executor threads do exit. The zygote first:
        # it imports the services' code while the broker and the database start.
        zygote = _zygote(log_dir, sandbox)
        remember(ChildProcess(ZYGOTE, zygote.process, log_dir / f"{ZYGOTE}.log"))
        remember(start_broker(ports["Kafka broker"], log_dir))
        remember(start_mongo(ports["MongoDB server"], data_dir / "mongo", log_dir))
        env = _service_env(settings)
        upstreams: dict[str, str] = {}
        if sandbox:
            from services.sandbox.app import credentials, service_environment

            port = ports[SANDBOX]
            env |= service_environment(credentials(data_dir), port, settings.public_url)
            upstreams[SANDBOX] = f"http://127.0.0.1:{port}"
            remember(
                zygote.spawn(
                    SANDBOX,
                    ENTRY,
                    ["sandbox", "--port", str(port)],
                    log_dir,
                    env={**env, "HOOKHUB_HTTP_PORT": str(settings.http_port)},
                )
            )
        for service in SERVICE_PORTS:
            port = ports[f"{service} service"]
            upstreams[service] = f"http://127.0.0.1:{port}"
            remember(
                zygote.spawn(
                    service,
                    ENTRY,
                    ["serve", service, "--host", "127.0.0.1", "--port", str(port)],
                    log_dir,
                    env=env,
                )
            )
        await _wait_healthy(upstreams, children, stopping)
        server = _QuietServer(
            edge_config(
                upstreams,
                settings.http_host,
                settings.http_port,
                header_timeout=settings.edge_header_timeout_seconds,
                body_timeout=settings.edge_body_timeout_seconds,
                portal_frame_ancestors=settings.portal_frame_ancestors,
                timeout_graceful_shutdown=2,
            )
        )
        edge_task = asyncio.create_task(server.serve())
        await _wait_ready(f"http://127.0.0.1:{settings.http_port}", stopping)
        _banner(settings, upstreams)
        exit_code = await _supervise(children, stopping)
        server.should_exit = True
        await edge_task
    except (EmbeddedError, StackError) as exc:
        print(f"hookhub run: {exc}", file=sys.stderr)
        exit_code = 1
    finally:
        print("hookhub: stopping…", flush=True)
        _stop_in_order(children, settings.shutdown_seconds)
        with contextlib.suppress(FileNotFoundError):
            (data_dir / PIDS_FILE).unlink()
        print("hookhub: stopped", flush=True)
    return exit_code


ENTRY = "services.cli:main"  # `hookhub`, as `python -m services.cli` runs it
ZYGOTE = "zygote"


def _zygote(log_dir: Path, sandbox: bool) -> Zygote:
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (log_dir / f"{ZYGOTE}.log").open("ab") as log:
        return Zygote([*PRELOAD, *(["services.sandbox.app"] if sandbox else [])], stderr=log)


def _stop_in_order(children: list[ChildProcess], shutdown_seconds: float) -> None:
    """The services together (each within its own bounded stop), then the database they
    wrote to, then the broker, then the zygote they were forked from; a process past its
    time is killed."""
    infrastructure = [c for c in children if c.name in (ZYGOTE, "kafka", "mongo")]
    services = [c for c in children if c not in infrastructure]
    for child in services:
        child.terminate()
    deadline = time.monotonic() + shutdown_seconds + 3
    for child in services:
        child.wait_or_kill(deadline)
    for child in reversed(infrastructure):  # database, then broker
        child.stop(timeout=5)


class _Unbreakable:
    """A standard stream whose reader may be gone (a pipe's, a closed terminal's): what
    cannot be written is dropped instead of raised."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:  # EPIPE from a pipe whose reader left, EIO from a hung-up terminal
            self._lost()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._lost()

    def _lost(self) -> None:
        # What is still buffered, and all that follows, goes to /dev/null; so does the
        # interpreter's last flush at exit, which would otherwise fail the same way.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _QuietServer(uvicorn.Server):
    """The edge inside the supervisor: our own handlers own SIGINT/SIGTERM, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _service_env(settings: Settings) -> dict[str, str]:
    """What every process the stack starts is given: the stack's settings, and a log of
    JSON lines (`logs/<name>.log`, one object a line, as shared.kernel.logging writes them)."""
    return {
        "HOOKHUB_LOG_FORMAT": "json",
        "HOOKHUB_ENV": settings.env,
        "HOOKHUB_DATA_DIR": str(settings.data_dir.resolve()),
        "HOOKHUB_ADMIN_TOKEN": settings.admin_token,
        "HOOKHUB_ENCRYPTION_KEYS": settings.encryption_keys,
        "HOOKHUB_EGRESS_ALLOW_CIDRS": settings.egress_allow_cidrs,
        "HOOKHUB_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "HOOKHUB_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        "HOOKHUB_KAFKA_PARTITIONS": str(settings.kafka_partitions),
        "HOOKHUB_KAFKA_FETCH_MAX_WAIT_MS": str(settings.kafka_fetch_max_wait_ms),
        "HOOKHUB_MONGO_URI": settings.mongo_uri,
        "HOOKHUB_MONGO_DB": settings.mongo_db,
        "HOOKHUB_PUBLIC_URL": settings.public_url,
        "HOOKHUB_TOPIC_NAMESPACE": settings.topic_namespace,
    }


async def _wait_healthy(
    upstreams: dict[str, str], children: list[ChildProcess], stopping: asyncio.Event
) -> None:
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(verify=tls(), timeout=2.0) as client:
        for name, base in upstreams.items():
            while True:
                if stopping.is_set():
                    raise StackError("interrupted while starting")
                dead = [c for c in children if not c.alive()]
                if dead:
                    raise StackError(f"{dead[0].name} exited during start; see {dead[0].log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(base + "/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise StackError(f"{name} did not become healthy within 90s")
                await asyncio.sleep(0.2)


async def _wait_ready(origin: str, stopping: asyncio.Event) -> None:
    """Waits (bounded) for every service to report ready, so the banner means usable."""
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(verify=tls(), timeout=6.0) as client:
        while time.monotonic() < deadline and not stopping.is_set():
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(origin + "/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.5)
    if not stopping.is_set():
        print("hookhub: not every service is ready yet; see /readyz", file=sys.stderr)


async def _supervise(children: list[ChildProcess], stopping: asyncio.Event) -> int:
    while not stopping.is_set():
        for child in children:
            if not child.alive():
                print(
                    f"hookhub: {child.name} exited with {child.process.returncode}; "
                    f"see {child.log_path}",
                    file=sys.stderr,
                )
                return 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
    return 0


def _banner(settings: Settings, upstreams: dict[str, str]) -> None:
    origin = f"http://{settings.http_host}:{settings.http_port}"
    lines = [
        "",
        "hookhub is running",
        f"  origin        {origin}   (every public route)",
        f"  console       {origin}/   (the operator console: sign in with the admin token)",
        f"  health        {origin}/healthz   {origin}/readyz",
        f"  API docs      {origin}/openapi.json   events {origin}/asyncapi.json",
        *(
            [f"  public URL    {settings.public_url}   (in the URLs hookhub hands out)"]
            if settings.public_url.rstrip("/") != origin
            else []
        ),
        *(
            [f"  sandbox       {origin}/sandbox/   (every provider's stand-in)"]
            if "sandbox" in upstreams
            else []
        ),
        f"  admin token   {settings.admin_token}",
        f"  kafka         {settings.kafka_bootstrap}   mongodb  {settings.mongo_uri}",
        "  services      " + "  ".join(f"{n} {u}" for n, u in upstreams.items()),
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
