"""Structured logging: structlog, JSON outside a terminal, context bound per request and message."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any, BinaryIO

import orjson
import structlog

from shared.kernel import tracing


def configure_logging(level: str = "INFO", fmt: str = "auto", service: str = "hookhub") -> None:
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if tracing.mode() is not tracing.Mode.OFF:  # configured first (services.cli)
        shared_processors.append(tracing.add_trace_ids)
    renderer: structlog.types.Processor
    factory: structlog.types.WrappedLogger
    global _request_lines, _info_written
    _request_lines = None
    _info_written = logging.getLevelName(level.upper()) <= logging.INFO
    if json_output:
        # orjson writes bytes: one canonical line per request costs a few microseconds.
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = TickFlushedLoggerFactory(sys.stderr.buffer)
        if _info_written:
            _request_lines = _RequestLines(factory(), tracing.mode() is not tracing.Mode.OFF)
    else:
        renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries that log through the standard library (uvicorn, aiokafka, pymongo) stay quiet
    # below WARNING and are rendered like our own lines: one JSON object a line.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared_processors,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer()
                if json_output
                else structlog.dev.ConsoleRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Python's warnings (a library's DeprecationWarning) as log lines too, not raw text.
    logging.captureWarnings(True)
    root.setLevel(logging.WARNING)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.ERROR)


class TickFlushedLogger:
    """Lines written to the (buffered) stream at once, flushed once per event-loop tick:
    every line a request handler logs during a tick goes out in one write, at the end of
    that tick. Under load that is one system call for dozens of lines instead of one each
    (a twentieth of a webhook's CPU, docs/benchmarks.md); idle, a line is out as soon as
    the handler yields. Nothing waits on a timer: a crash loses at most the current tick's
    lines. Outside a running loop (startup, threads) each line is flushed at once."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._lock = threading.Lock()
        self._pending = False

    def msg(self, message: bytes) -> None:
        with self._lock:
            self._file.write(message + b"\n")
            if self._pending:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._file.flush()
                return
            self._pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        with self._lock:
            self._pending = False
            self._file.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class TickFlushedLoggerFactory:
    def __init__(self, file: BinaryIO) -> None:
        self._logger = TickFlushedLogger(file)

    def __call__(self, *args: Any) -> TickFlushedLogger:
        return self._logger


def request_line(fields: dict[str, Any]) -> None:
    """The canonical `http_request` line of a request (SPEC §18's), at INFO."""
    info_line("http_request", fields)


def info_line(event: str, fields: dict[str, Any]) -> None:
    """A line written for each request or attempt (`event` with `fields` and the context
    bound for logs), at INFO. In JSON, the line the processors above would write, written
    without them: a line every request writes, and their chain costs four times the line."""
    lines = _request_lines
    if lines is not None:
        lines.write(event, fields)
    elif _info_written:
        # A logger of the configuration now, not one kept: structlog caches a logger on its
        # first use, with the configuration of that moment (a test's, say) for good.
        structlog.get_logger("hookhub").info(event, **fields)


class _RequestLines:
    def __init__(self, logger: TickFlushedLogger, traced: bool) -> None:
        self._logger = logger
        self._traced = traced

    def write(self, event: str, fields: dict[str, Any]) -> None:
        line = {"event": event, **fields}
        for key, value in structlog.contextvars.get_contextvars().items():
            line.setdefault(key, value)
        line["level"] = "info"
        line["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if self._traced:
            tracing.add_trace_ids(None, "info", line)
        self._logger.msg(orjson.dumps(line))


_request_lines: _RequestLines | None = None
_info_written = True  # INFO lines are: below it, `info_line` makes no logger for nothing
