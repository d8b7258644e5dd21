"""The log's writer: lines out once per event-loop tick, in order, none left behind; the
request line written as structlog would write it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
import structlog

from shared.kernel import logging as hookhub_logging
from shared.kernel.logging import TickFlushedLogger, configure_logging, info_line, request_line


class CountedFile(io.BytesIO):
    """A file that counts its flushes and keeps what each flush made visible."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes: list[bytes] = []

    def flush(self) -> None:
        super().flush()
        self.flushes.append(self.getvalue())


def test_outside_a_loop_each_line_is_flushed_at_once() -> None:
    file = CountedFile()
    logger = TickFlushedLogger(file)
    logger.msg(b"one")
    logger.msg(b"two")
    assert file.flushes == [b"one\n", b"one\ntwo\n"]


async def test_a_ticks_lines_go_out_in_one_flush_at_its_end() -> None:
    file = CountedFile()
    logger = TickFlushedLogger(file)
    for i in range(50):
        logger.info(b"line %d" % i)
    assert file.flushes == [], "not before the tick ends"
    await asyncio.sleep(0)
    assert len(file.flushes) == 1
    assert file.flushes[0].splitlines() == [b"line %d" % i for i in range(50)]
    logger.warning(b"later")
    await asyncio.sleep(0)
    assert len(file.flushes) == 2 and file.flushes[1].endswith(b"later\n")


class Stderr:
    """sys.stderr as a service has it outside a terminal: bytes under `buffer`."""

    def __init__(self) -> None:
        self.buffer = CountedFile()

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        return self.buffer.write(text.encode())

    def flush(self) -> None:
        self.buffer.flush()


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stderr]:
    """Logging configured as a service's, into a `Stderr`; put back afterwards."""
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    stderr = Stderr()
    monkeypatch.setattr(sys, "stderr", stderr)
    # Set again by configure_logging: put back as it was by monkeypatch.
    monkeypatch.setattr(hookhub_logging, "_request_lines", hookhub_logging._request_lines)
    monkeypatch.setattr(hookhub_logging, "_info_written", hookhub_logging._info_written)
    configure_logging("INFO", "json", "gateway")
    try:
        yield stderr
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = handlers
        structlog.contextvars.clear_contextvars()


def test_a_requests_line_is_the_line_structlog_writes(json_logs: Stderr) -> None:
    """The request line skips structlog's processors; what it writes must not differ."""
    fields = {"method": "POST", "route": "/api/x/{token}", "status": 202, "duration_ms": 1.5}
    with structlog.contextvars.bound_contextvars(request_id="r-1", delivery_id="dlv_1"):
        request_line(dict(fields))
        structlog.get_logger("hookhub.http").info("http_request", **fields)
    ours, theirs = (json.loads(line) for line in json_logs.buffer.getvalue().splitlines())
    assert datetime.fromisoformat(ours.pop("timestamp")) <= datetime.fromisoformat(
        theirs.pop("timestamp")
    )
    assert ours == theirs
    assert ours["request_id"] == "r-1" and ours["service"] == "gateway"


def test_an_attempts_line_is_the_line_structlog_writes(json_logs: Stderr) -> None:
    fields = {"delivery_id": "dlv_1", "attempt": 2, "status_code": None, "error": "timeout"}
    with structlog.contextvars.bound_contextvars(trace_id="t-1"):
        info_line("delivery_attempt", dict(fields))
        structlog.get_logger("anything").info("delivery_attempt", **fields)
    ours, theirs = (json.loads(line) for line in json_logs.buffer.getvalue().splitlines())
    assert ours.pop("timestamp") <= theirs.pop("timestamp")
    assert ours == theirs
    assert ours["event"] == "delivery_attempt" and ours["status_code"] is None


def test_below_info_no_request_line_is_written(json_logs: Stderr) -> None:
    configure_logging("WARNING", "json", "gateway")
    request_line({"method": "GET", "route": "/", "status": 200, "duration_ms": 0.1})
    assert json_logs.buffer.getvalue() == b""
