"""The whole stack as `make run` starts it (`hookhub run` in a process group of its own, on
free ports and a data directory of the test's), for the tests that drive it from outside:
tests/e2e/test_stack.py and the console's browser tests."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from shared.kernel.embedded import port_free
from shared.kernel.http.tls import tls

REPOSITORY = Path(__file__).parents[2]


def http_base() -> int:
    """A port P with P..P+6 all free (the origin, the five services and the sandbox), below the range
    the kernel hands out to outgoing connections: a port found free there may be taken by
    any client's connection before `hookhub run` binds it (seen once: oauth's)."""
    lowest_ephemeral = 32768
    with contextlib.suppress(OSError, ValueError):
        lowest_ephemeral = int(
            Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        )
    for _ in range(200):
        base = random.randrange(10_000, max(lowest_ephemeral - 7, 10_001))
        if all(port_free(base + i) for i in range(7)):
            return base
    raise RuntimeError("no run of seven free ports")


@dataclass
class Stack:
    process: subprocess.Popen[str]
    origin: str
    data_dir: Path
    kafka_bootstrap: str
    env: dict[str, str]

    def output(self) -> str:
        return self.process.stdout.read() if self.process.stdout else ""


def start_stack(
    data_dir: Path,
    ports: dict[str, int],
    stderr: IO[str] | int = subprocess.STDOUT,
    settings: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Stack:
    """`settings`: HOOKHUB_ variables of the test's, over the environment's; `args`: more
    arguments of `hookhub run` (`--sandbox`)."""
    env = {
        **os.environ,
        "HOOKHUB_DATA_DIR": str(data_dir),
        "HOOKHUB_HTTP_PORT": str(ports["http"]),
        "HOOKHUB_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports['kafka']}",
        "HOOKHUB_MONGO_URI": f"mongodb://127.0.0.1:{ports['mongo']}",
    }
    # As a new user starts it: the public URL follows the port, the secrets are generated.
    for name in (
        "HOOKHUB_ADMIN_TOKEN",
        "HOOKHUB_ENCRYPTION_KEYS",
        "HOOKHUB_TOPIC_NAMESPACE",
        "HOOKHUB_PUBLIC_URL",
    ):
        env.pop(name, None)
    # tansu answers a new consumer group's first JoinGroup after half the session timeout,
    # rounded up to a second (docs/operations.md, "Starting"): 1 s of each start rather
    # than 5, with the session the tests' other services have (tests/support.py).
    env["HOOKHUB_KAFKA_SESSION_TIMEOUT_MS"] = "2000"
    env |= settings or {}
    process = subprocess.Popen(
        # The tree under test: the venv's `hookhub` script imports whichever checkout the
        # venv was installed from, which need not be this one.
        [sys.executable, "-m", "services.cli", "run", *args],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,  # its own process group, as a terminal would give `make run`
    )
    return Stack(
        process, f"http://127.0.0.1:{ports['http']}", data_dir, f"127.0.0.1:{ports['kafka']}", env
    )


def wait_ready(stack: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=tls(), timeout=5) as client:
        while time.monotonic() < deadline:
            if stack.process.poll() is not None:
                raise AssertionError(f"hookhub run exited early:\n{stack.output()}")
            try:
                if client.get(stack.origin + "/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise AssertionError("the stack did not become ready")
