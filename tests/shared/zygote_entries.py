"""Entry points the zygote's tests fork (tests/shared/test_zygote.py)."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
from pathlib import Path

# A descriptor the zygote holds from its imports: closed in what it forks.
HELD = os.open(os.devnull, os.O_RDONLY)
# What an import prints goes to the zygote's stderr, not among its answers.
print("zygote_entries imported", flush=True)


def _late() -> None:
    time.sleep(0.2)
    print("thread joined", flush=True)


def report(argv: list[str]) -> int:
    """Prints what it was given and where it runs, and exits with argv[0]."""
    atexit.register(lambda: print("exit handlers ran", flush=True))
    fds = sorted(int(fd.name) for fd in Path("/proc/self/fd").iterdir())
    print(f"argv={argv} sys.argv={sys.argv[1:]}")
    print(f"env={os.environ.get('ZYGOTE_TEST')} others={sorted(os.environ)}")
    print(f"session_leader={os.getsid(0) == os.getpid()} cwd={Path.cwd()}")
    print(f"stdin={sys.stdin.read()!r} open_fds={fds}")
    cmdline = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").strip()
    print(f"cmdline={cmdline.decode()}")
    Path(os.environ["ZYGOTE_FILE"]).write_text("made")
    threading.Thread(target=_late).start()
    return int(argv[0])


def wait(argv: list[str]) -> int:
    """Writes its pid to argv[0] and waits for a signal."""
    Path(argv[0]).write_text(str(os.getpid()))
    signal.pause()
    return 0


def fail(argv: list[str]) -> int:
    raise ValueError("entry failed")
