"""Runs an endpoint's transformation (SPEC §17) in the sandbox of user JavaScript
(shared.kernel.jsbox, as templates do: the same limits) and checks what it returns.

A transformation is `function handler(webhook)`, called before each attempt with
`{event_type, payload, url, method, headers}`: the body hookhub would send (parsed), the
endpoint's URL, `POST` and its extra headers. It returns the webhook changed, or
`{cancel: true}`. What it returns is checked as the API checks an endpoint: the URL by the
egress guard, the method one of POST, PUT and PATCH, the headers neither the ones hookhub
signs with nor the connection's. A key it leaves out keeps its value. Anything else (a
throw, a time-out, memory, a result that fails a check) is a `TransformationFailure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import structlog
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from services.delivery.outgoing_webhooks.schemas import MAX_HEADERS, check_headers
from services.delivery.transformations.schemas import Method, Webhook
from shared.domain import tenancy
from shared.kernel.egress import EgressPolicy, check_url
from shared.kernel.errors import HookhubError, Invalid
from shared.kernel.jsbox import Sandbox, ScriptError

log = structlog.get_logger(__name__)

FUNCTION = "handler"
# The code an attempt's `error` starts with, and the API's for a test that failed.
TRANSFORMATION_ERROR = "transformation_error"
_ERROR_CHARS = 300
Use = Literal["delivery", "test"]


@dataclass(frozen=True)
class Outgoing:
    """What an attempt sends: the endpoint's as it is, or as a transformation left it."""

    method: str
    url: str
    body: bytes
    headers: Mapping[str, str] = field(repr=False)


@dataclass(frozen=True)
class Cancelled:
    """The transformation returned `{cancel: true}`: the delivery ends, unsent."""


@dataclass(frozen=True)
class TransformationFailure:
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        return f"{self.message[:_ERROR_CHARS]}{where}"

    @property
    def error(self) -> str:
        """As an attempt records it."""
        return f"{TRANSFORMATION_ERROR}: {self}"

    def raise_invalid(self) -> None:
        extra: dict[str, object] = {}
        if self.line is not None:
            extra = {"line": self.line, "column": self.column}
        raise Invalid(str(self), code=TRANSFORMATION_ERROR, extra=extra)


Outcome = Outgoing | Cancelled | TransformationFailure


class _Result(BaseModel):
    """What a handler returns: the webhook, each key optional (left out: unchanged)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    event_type: Any = None  # handed in, and back: not something a transformation changes
    payload: Any = None
    url: str | None = None
    method: Method | None = None
    headers: dict[str, str] | None = None
    cancel: bool = False

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        if headers is not None and len(headers) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        return check_headers(headers)


class TransformationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "hookhub_transformation_runs",
            "Transformation runs, by use (delivery, test) and outcome (ok, cancel, error)",
            ["use", "outcome"],
            registry=registry,
        )


class Transformer:
    def __init__(
        self, sandbox: Sandbox, egress: EgressPolicy, metrics: TransformationMetrics | None
    ) -> None:
        self.sandbox = sandbox
        self._egress = egress
        self._metrics = metrics

    async def check(self, code: str) -> None:
        """At save: code that does not compile or defines no `handler` is refused (422
        `transformation_error`, with its line and column)."""
        try:
            # In the saving workspace's queue of the sandbox (its fair share).
            await self.sandbox.check(code, FUNCTION, scope=tenancy.current() or "")
        except ScriptError as exc:
            TransformationFailure(exc.message, exc.line, exc.column).raise_invalid()

    async def apply(
        self, code: str, event_type: str, outgoing: Outgoing, *, scope: str, use: Use = "delivery"
    ) -> Outcome:
        """`outgoing` as the transformation leaves it (counted)."""
        outcome = await self._apply(code, event_type, outgoing, scope=scope, use=use)
        if self._metrics is not None:
            label = {Outgoing: "ok", Cancelled: "cancel"}.get(type(outcome), "error")
            self._metrics.runs.labels(use, label).inc()
        return outcome

    async def _apply(
        self, code: str, event_type: str, outgoing: Outgoing, *, scope: str, use: Use
    ) -> Outcome:
        webhook = {
            "event_type": event_type,
            "payload": orjson.loads(outgoing.body),
            "url": outgoing.url,
            "method": outgoing.method,
            "headers": dict(outgoing.headers),
        }
        try:
            if use == "test":  # an editor's code: a fresh isolate, closed after
                value = await self.sandbox.run(
                    code, webhook, function=FUNCTION, scope=scope, keep=False
                )
            else:  # with the endpoint's other attempts waiting for its script
                value = await self.sandbox.call(code, webhook, function=FUNCTION, scope=scope)
        except ScriptError as exc:
            return TransformationFailure(exc.message, exc.line, exc.column)
        except Exception as exc:  # the sandbox's own trouble: this attempt fails, retried
            log.exception("transformation_sandbox_failed", exc_info=exc)
            return TransformationFailure(f"the sandbox failed: {exc!r}")
        return self._checked(value, outgoing)

    def _checked(self, value: Any, outgoing: Outgoing) -> Outcome:
        if not isinstance(value, dict):
            kind = "null" if value is None else type(value).__name__
            return TransformationFailure(f"the function returned {kind}, not an object")
        try:
            result = _Result.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "result"
            return TransformationFailure(f"the function returned a bad {where}: {first['msg']}")
        if result.cancel:
            return Cancelled()
        url = outgoing.url if result.url is None else result.url
        if url != outgoing.url:
            try:
                check_url(url, self._egress)
            except HookhubError as exc:
                return TransformationFailure(f"the function returned a refused url: {exc}")
        body = outgoing.body if "payload" not in value else orjson.dumps(result.payload)
        return Outgoing(
            method=result.method or outgoing.method,
            url=url,
            body=body,
            headers=outgoing.headers if result.headers is None else result.headers,
        )


def webhook_of(outgoing: Outgoing) -> Webhook:
    """As the test answers it."""
    return Webhook(
        payload=orjson.loads(outgoing.body),
        url=outgoing.url,
        method=outgoing.method,
        headers=dict(outgoing.headers),
    )
