"""The soak's per-process figures (bench/soak_sample.py): RSS, descriptors, and where the
TCP connections among them go, read from /proc for this very process."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from bench.soak_sample import _cpu_seconds, process_figures, tcp_sockets

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_a_connection_counts_at_both_of_its_ends() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        before = process_figures(os.getpid(), tcp_sockets(), {port: "probe"})
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = server.accept()
            with accepted:
                during = process_figures(os.getpid(), tcp_sockets(), {port: "probe"})
    assert before is not None and during is not None
    assert before.rss > 0
    assert during.fds == before.fds + 2  # the client's end and the accepted one
    # The listening socket and the accepted end are the probe's, the client's goes to it.
    assert before.peers.get("from probe") == 1
    assert during.peers.get("from probe") == 2
    assert during.peers.get("to probe") == 1


def test_a_process_that_is_gone_has_no_figures() -> None:
    assert process_figures(2**22 + 1, {}, {}) is None


def test_cpu_time_is_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", *["0"] * 10, str(3 * ticks), str(ticks), *["0"] * 30]
    assert _cpu_seconds(f"42 (a (b) c) {' '.join(fields)}") == 4.0


def test_cpu_time_of_this_process_grows_with_work() -> None:
    before = process_figures(os.getpid(), tcp_sockets(), {})
    used = os.times()
    # Until the kernel has counted 0.1 s more of this process's CPU: whatever the machine.
    while sum(os.times()[:2]) < sum(used[:2]) + 0.1:
        sum(range(10_000))
    after = process_figures(os.getpid(), tcp_sockets(), {})
    assert before is not None and after is not None
    assert after.cpu > before.cpu > 0
