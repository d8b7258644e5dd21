"""The destinations' real implementations, started once per test session (SPEC §21):
moto's server (SQS, SNS, EventBridge, Kinesis, S3), a private RabbitMQ node (Debian's
`rabbitmq-server`) and the Pub/Sub emulator (gcloud's, else hookhub's REST stand-in).

Each is a process of its own on loopback ports of its own, with its data in a temporary
directory: nothing a developer runs is touched, and everything goes with the session.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from shared.kernel.embedded import free_port

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EPMD = "epmd"
PUBSUB_EMULATOR = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
AWS_CREDENTIALS = {
    "region": "us-east-1",
    "access_key_id": "testing",
    "secret_access_key": "testing",
}


@dataclass(frozen=True)
class Emulators:
    aws_endpoint_url: str  # moto's server
    amqp_url: str | None  # None: RabbitMQ could not be started (the reason is in `skipped`)
    pubsub_endpoint_url: str | None  # the emulator's; None: the stand-in is served by the test
    pubsub_kind: str  # "gcloud emulator" or "stand-in"
    skipped: str = ""
    # Their processes (the benchmark's CPU figures): moto's server, RabbitMQ's Erlang VM.
    pids: dict[str, int] = field(default_factory=dict)
    # The same node's TLS listener (`amqps://…@localhost:…/`), its certificate signed by a
    # CA of the session's own, whose certificate is `amqp_ca` (base64 DER, as `cadata`).
    amqps_url: str | None = None
    amqp_ca: str | None = None


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(
    port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not listening within {timeout} s; see {log}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The process and what it started (its session's group: rabbitmq-server's script
    runs the node as its child)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def _started(
    stack: contextlib.ExitStack, argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    stack.callback(_stop, process)
    yield process


def _child(pid: int) -> int:
    """The first child of `pid` (rabbitmq-server's script runs the node as its child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0]) if children else pid


def rabbitmq_missing() -> str:
    if not RABBITMQ_SERVER.exists() or shutil.which(EPMD) is None:
        return "Debian's rabbitmq-server is not installed (.ci/run installs it)"
    return ""


@contextlib.contextmanager
def provide_emulators(*, pubsub: bool = True) -> Iterator[Emulators]:
    """All of them started at once (their starts overlap), then waited for; `pubsub`
    false: not the Pub/Sub emulator (the benchmark's runs)."""
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hookhub-emu-")))
        moto_port = free_port()
        moto = stack.enter_context(
            _started(
                stack,
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                work / "moto.log",
            )
        )
        skipped = rabbitmq_missing()
        rabbit = None
        amqp_port, amqps_port = free_port(), free_port()
        ca = None
        if not skipped:
            rabbit, ca = _start_rabbitmq(stack, work / "rabbitmq", amqp_port, amqps_port)
        pubsub_port = free_port()
        emulator = None
        if pubsub and PUBSUB_EMULATOR.exists() and shutil.which("java"):
            emulator = stack.enter_context(
                _started(
                    stack,
                    [str(PUBSUB_EMULATOR), "--host=127.0.0.1", f"--port={pubsub_port}"],
                    work / "pubsub.log",
                )
            )
        _wait(moto_port, moto, "moto's server", work / "moto.log")
        if emulator is not None:
            _wait(pubsub_port, emulator, "the Pub/Sub emulator", work / "pubsub.log")
        if rabbit is not None:
            _wait(amqp_port, rabbit, "rabbitmq-server", work / "rabbitmq" / "out.log")
            _wait(amqps_port, rabbit, "rabbitmq-server's TLS", work / "rabbitmq" / "out.log")
        pids = {"moto": moto.pid}
        if rabbit is not None:
            pids["rabbitmq"] = _child(rabbit.pid)
        yield Emulators(
            pids=pids,
            aws_endpoint_url=f"http://127.0.0.1:{moto_port}",
            amqp_url=f"amqp://guest:guest@127.0.0.1:{amqp_port}/" if rabbit else None,
            pubsub_endpoint_url=f"http://127.0.0.1:{pubsub_port}" if emulator else None,
            pubsub_kind="gcloud emulator" if emulator else "stand-in",
            skipped=skipped,
            amqps_url=f"amqps://guest:guest@localhost:{amqps_port}/" if rabbit else None,
            amqp_ca=ca,
        )


def _start_rabbitmq(
    stack: contextlib.ExitStack, home: Path, amqp_port: int, amqps_port: int
) -> tuple[subprocess.Popen[bytes], str]:
    """A private node: its own name, ports, epmd, Mnesia and logs, guest allowed on
    loopback only as configured here; a TLS listener too. The node, and its CA's
    certificate (base64 DER)."""
    home.mkdir()
    epmd_port, dist_port = free_port(), free_port()
    ca = _tls_files(home / "tls")
    (home / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{amqp_port}\nloopback_users = none\n"
        f"listeners.ssl.default = 127.0.0.1:{amqps_port}\n"
        f"ssl_options.cacertfile = {home / 'tls' / 'ca.pem'}\n"
        f"ssl_options.certfile = {home / 'tls' / 'cert.pem'}\n"
        f"ssl_options.keyfile = {home / 'tls' / 'key.pem'}\n"
        "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
    )
    (home / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_NODENAME": f"hookhub-test-{amqp_port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(home / "pid"),
    }
    # epmd in the foreground, ours: the node's own would daemonize and outlive the run.
    stack.enter_context(_started(stack, [EPMD, "-port", str(epmd_port)], home / "epmd.log"))
    node = stack.enter_context(_started(stack, [str(RABBITMQ_SERVER)], home / "out.log", env=env))
    return node, ca


def _tls_files(where: Path) -> str:
    """A CA of the session's own (trustme's) and a certificate for `localhost` it signed,
    with its key, written in `where` (PEM); the CA's certificate in base64 DER."""
    where.mkdir()
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    issued.cert_chain_pems[0].write_to_path(str(where / "cert.pem"))
    issued.private_key_pem.write_to_path(str(where / "key.pem"))
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    return base64.b64encode(der).decode()
