"""The zygote (shared/kernel/zygote.py): processes forked from a process that imported their
code once, each what `python -m` would have started, reported when they exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.kernel.zygote import Zygote, ZygoteError

ENTRIES = "tests.shared.zygote_entries"


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    started = Zygote([ENTRIES])
    yield started
    started.close()


def _pid_in(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the forked process never wrote its pid"
        time.sleep(0.01)
    return int(path.read_text())


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_a_forked_entry_runs_as_python_m_would_and_its_exit_code_is_reported(
    zygote: Zygote, tmp_path: Path
) -> None:
    log = tmp_path / "report.log"
    made = tmp_path / "made"
    env = {"ZYGOTE_TEST": "given", "ZYGOTE_FILE": str(made), "PATH": os.environ["PATH"]}
    forked = zygote.fork(f"{ENTRIES}:report", ["7", "x"], env, log, umask=0o077)
    assert forked.wait(30) == 7
    assert forked.poll() == 7 and forked.returncode == 7
    lines = log.read_text().splitlines()
    assert "argv=['7', 'x'] sys.argv=['7', 'x']" in lines
    # The environment it was given, whole: nothing of the zygote's or ours besides.
    assert "env=given others=['PATH', 'ZYGOTE_FILE', 'ZYGOTE_TEST']" in lines
    assert f"session_leader=True cwd={Path.cwd()}" in lines
    # Its input is /dev/null; the zygote's pipes are not open in it (3: the listing itself).
    assert "stdin='' open_fds=[0, 1, 2, 3]" in lines
    # `ps` names it as it would name `python -m`'s process.
    assert f"cmdline={sys.executable} -m {ENTRIES} 7 x" in lines
    assert made.stat().st_mode & 0o777 == 0o600  # the umask it was given
    # It ends as a program does: its threads joined, then its exit handlers.
    assert lines[-2:] == ["thread joined", "exit handlers ran"]


def test_signals_reach_it_and_its_end_by_one_is_reported_as_popen_reports_it(
    zygote: Zygote, tmp_path: Path
) -> None:
    forked = zygote.fork(f"{ENTRIES}:wait", [str(tmp_path / "pid")], {}, None)
    assert _pid_in(tmp_path / "pid") == forked.pid
    assert forked.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        forked.wait(0.05)
    forked.terminate()
    assert forked.wait(30) == -signal.SIGTERM
    killed = zygote.fork(f"{ENTRIES}:wait", [str(tmp_path / "pid2")], {}, None)
    _pid_in(tmp_path / "pid2")
    killed.kill()
    assert killed.wait(30) == -signal.SIGKILL
    killed.kill()  # already gone: nothing happens


def test_an_entry_that_raises_exits_with_1_and_its_traceback_in_its_log(
    zygote: Zygote, tmp_path: Path
) -> None:
    log = tmp_path / "fail.log"
    assert zygote.fork(f"{ENTRIES}:fail", [], {}, log).wait(30) == 1
    assert "ValueError: entry failed" in log.read_text()


def test_what_it_forked_ends_with_the_zygote_and_a_closed_one_forks_nothing(
    tmp_path: Path,
) -> None:
    own = Zygote([ENTRIES])
    forked = own.fork(f"{ENTRIES}:wait", [str(tmp_path / "pid")], {}, None)
    pid = _pid_in(tmp_path / "pid")
    own.process.kill()  # as when it is killed: its children hear SIGTERM (their parent died)
    assert forked.wait(30) == -signal.SIGTERM  # what the parent is told once the zygote is gone
    deadline = time.monotonic() + 30
    while _alive(pid):
        assert time.monotonic() < deadline, "a forked process outlived its zygote"
        time.sleep(0.01)
    with pytest.raises(ZygoteError):
        own.fork(f"{ENTRIES}:report", ["0"], {}, None)
    own.close()


def test_a_preload_that_starts_a_thread_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "zygote.log"
    with log.open("wb") as stderr:
        refused = Zygote(["tests.shared.starts_a_thread"], stderr=stderr)
    with pytest.raises(ZygoteError):
        refused.fork(f"{ENTRIES}:report", ["0"], {}, None)
    assert refused.process.wait(30) == 1
    assert "started threads; cannot fork" in log.read_text()
