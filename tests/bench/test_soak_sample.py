"""The soak's per-process figures (bench/soak_sample.py): RSS, descriptors, and where the
TCP connections among them go, read from /proc for this very process."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from bench.soak_sample import process_figures, tcp_sockets

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
