"""Structured logging: structlog, JSON outside a terminal, context bound per request and message."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def configure_logging(level: str = "INFO", fmt: str = "auto", service: str = "hookhub") -> None:
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    factory: structlog.types.WrappedLogger
    if json_output:
        # orjson writes bytes: one canonical line per request costs a few microseconds.
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(sys.stderr.buffer)
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
