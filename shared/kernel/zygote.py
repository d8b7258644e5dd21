"""A process that imports Python code once and forks the processes that run it.

`hookhub run` starts five or six services, and each `python -m services.cli serve <name>`
spends about 2.5 s of CPU importing the same libraries (FastAPI, pydantic, FastStream,
PyMongo, the providers) before it serves anything. The zygote imports them once, before any
thread exists, and forks one process a service. Each then calls its entry point with its
argv exactly as `python -m` would, in a session of its own, with the environment it is
given (whole), its output appended to its log and its standard input /dev/null; it ends as
a Python program ends (threads joined, exit handlers run). Their pages of imported code are
shared until written.

The zygote reaps them and reports each exit; `Forked` is the parent's handle on one, with
`subprocess.Popen`'s signals, `poll` and `wait`. A forked process dies with the zygote
(SIGTERM), the zygote with the process that started it, and closing the zygote's input
ends it. Requests and answers are JSON lines on its standard input and output.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shared.kernel.embedded import ChildProcess, EmbeddedError, die_with_parent, log_in

# Its imports come first: on a slow machine, tens of seconds.
FORK_TIMEOUT = 120.0


class ZygoteError(EmbeddedError):
    """The zygote is gone (`hookhub run` says so and stops, as for the broker's failure)."""


@dataclass
class Forked:
    """A process the zygote forked: `subprocess.Popen`'s handle, for a process that is the
    zygote's child rather than ours (its exit is what the zygote reports)."""

    pid: int
    args: list[str]
    returncode: int | None = None
    _ended: threading.Event = field(default_factory=threading.Event, repr=False)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._ended.set()


class Zygote:
    """The parent's side: start it with the modules to import, then `fork` entry points."""

    def __init__(self, preload: Sequence[str], stderr: IO[bytes] | None = None) -> None:
        self._process = subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
            [sys.executable, "-m", "shared.kernel.zygote", *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
            start_new_session=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._requests = self._process.stdin
        self._answers = self._process.stdout
        self._lock = threading.Lock()
        self._forked: dict[int, Forked] = {}
        self._exits: dict[int, int] = {}  # reported before their fork's answer was read
        self._started: list[int] = []
        self._answered = threading.Condition()
        self._gone = False
        threading.Thread(target=self._read, name="zygote", daemon=True).start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self._process

    def fork(
        self,
        entry: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path | None = None,
        umask: int = -1,
    ) -> Forked:
        """`entry` ("module:function", called with `argv`, returning the exit code) in a
        process of its own."""
        request = {
            "entry": entry,
            "argv": list(argv),
            "env": dict(env),
            "log": str(log_path) if log_path else None,
            "umask": umask,
            "cwd": str(Path.cwd()),
        }
        with self._lock, self._answered:
            if self._gone:
                raise ZygoteError("the zygote is gone")
            try:
                self._requests.write(json.dumps(request).encode() + b"\n")
                self._requests.flush()
            except OSError as exc:
                raise ZygoteError(f"the zygote is gone: {exc}") from exc
            deadline = time.monotonic() + FORK_TIMEOUT
            while not self._started and not self._gone and time.monotonic() < deadline:
                self._answered.wait(max(0.0, deadline - time.monotonic()))
            if not self._started:
                why = "ended" if self._gone else f"did not fork within {FORK_TIMEOUT:.0f} s"
                raise ZygoteError(f"the zygote {why} (its log says why)")
            pid = self._started.pop(0)
            forked = Forked(pid, [entry, *argv])
            self._forked[pid] = forked
            if pid in self._exits:
                forked._exited(self._exits.pop(pid))
            return forked

    def spawn(
        self,
        name: str,
        entry: str,
        argv: Sequence[str],
        log_dir: Path | None,
        env: Mapping[str, str],
    ) -> ChildProcess:
        """As shared.kernel.embedded.spawn: its output appended to `log_dir/<name>.log`,
        given our environment and `env`."""
        log_path = log_in(log_dir, name)
        return ChildProcess(name, self.fork(entry, argv, {**os.environ, **env}, log_path), log_path)

    def close(self, timeout: float = 5.0) -> None:
        """Ends the zygote (and whatever it forked that still runs)."""
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)

    def _read(self) -> None:
        for line in self._answers:
            answer = json.loads(line)
            with self._answered:
                if "started" in answer:
                    self._started.append(answer["started"])
                    self._answered.notify_all()
                elif (forked := self._forked.get(answer["pid"])) is not None:
                    forked._exited(answer["exit"])
                else:
                    self._exits[answer["pid"]] = answer["exit"]
        with self._answered:
            self._gone = True
            self._answered.notify_all()
            for forked in self._forked.values():
                if forked.returncode is None:
                    # What it forked was sent SIGTERM as it went (their parent-death signal).
                    forked._exited(-signal.SIGTERM)


# The zygote's side.


_ANSWERS = 1  # the descriptor answers are written to (`_serve` moves them off stdout)


def _serve(preload: Sequence[str]) -> int:
    global _ANSWERS
    # Answers on a descriptor of their own; what an import prints goes to stderr (the log),
    # not into them.
    _ANSWERS = os.dup(1)
    os.dup2(2, 1)
    for module in preload:
        importlib.import_module(module)
    if threading.active_count() != 1:
        print(f"zygote: importing {preload} started threads; cannot fork", file=sys.stderr)
        return 1
    # What was imported stays for the process's life: out of the collector's sight, so that
    # a forked process's collections do not write to (and so copy) the pages it shares.
    gc.collect()
    gc.freeze()
    woken, wake = os.pipe()
    os.set_blocking(woken, False)
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(woken, selectors.EVENT_READ)
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.fd == woken:
                with contextlib.suppress(BlockingIOError):
                    os.read(woken, 4096)
                _reap()
                continue
            data = os.read(0, 65536)
            if not data:
                return 0  # the parent closed our input, or is gone
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    for fd in (woken, wake):
                        os.close(fd)
                    _become(request)  # never returns
                _answer({"started": pid})


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _answer({"pid": pid, "exit": os.waitstatus_to_exitcode(status)})


def _answer(answer: dict[str, Any]) -> None:
    os.write(_ANSWERS, json.dumps(answer).encode() + b"\n")


def _become(request: dict[str, Any]) -> None:
    """In the forked process: what `python -m <entry's module> <argv>` would be."""
    code: Any = 1
    try:
        # Named in `ps` and `pgrep -f` as `python -m` would have it; before the environment
        # is replaced, whose memory setproctitle finds the title's room by.
        from setproctitle import setproctitle

        module, _, function = request["entry"].partition(":")
        setproctitle(" ".join([sys.executable, "-m", module, *request["argv"]]))
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        zygote = os.getppid()
        die_with_parent()
        if os.getppid() != zygote:  # it died before we asked to die with it
            os._exit(1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        if request["log"]:
            out = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
        else:
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
        os.close(devnull)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # nothing of the zygote's stays open
        if request["umask"] != -1:
            os.umask(request["umask"])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [module, *request["argv"]]
        code = getattr(importlib.import_module(module), function)(request["argv"])
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    # Ends as the interpreter ends a program: the SystemExit unwinds the zygote's frames
    # (which hold nothing to release) and Python joins threads and runs exit handlers.
    raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
