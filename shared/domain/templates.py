"""Templates (SPEC §16): a workspace's JavaScript `function handler(event)` that renders an
event for a subscription (sync) or an incoming webhook (gateway), run in shared.kernel.jsbox.

What they share: the `event` handed to a template (headers without credentials), the
result's shape and its checks, the error kept as a `last_error`, the metric of runs, and
the check at save (422 with the line and column). The result shown as a provider's text,
card or `Notice` is the providers' (shared.providers.templated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.domain import tenancy
from shared.kernel.errors import BadRequest, Invalid
from shared.kernel.ids import utcnow
from shared.kernel.jsbox import Sandbox, ScriptError

__all__ = [
    "MAX_TEMPLATE_CHARS",
    "TemplateFailure",
    "TemplateMetrics",
    "TemplateResult",
    "Templates",
    "event_of",
]

log = structlog.get_logger(__name__)

MAX_TEMPLATE_CHARS = 20_000
FUNCTION = "handler"
Use = Literal["subscription", "incoming_webhook", "test"]

# A header whose name says it carries a credential is not shown to a template.
_CREDENTIAL = re.compile(r"authorization|cookie|token|secret|signature|password|api-?key|session")
_ERROR_CHARS = 300


class TemplateField(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=2000)

    @field_validator("value", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """Numbers and booleans shown as JavaScript writes them (`3`, `true`)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return format(value, "g") if isinstance(value, float) else str(value)
        return value


class TemplateResult(BaseModel):
    """What a template returns. `text` is required unless `skip` is true."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str | None = Field(None, max_length=40_000)
    title: str | None = Field(None, max_length=300)
    url: str | None = Field(None, max_length=2000)
    fields: list[TemplateField] | None = Field(None, max_length=25)
    state: str | None = Field(None, max_length=100)
    color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    item: str | None = Field(None, min_length=1, max_length=200)
    skip: bool = False

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not _is_http_url(value):
            raise ValueError("must be an absolute http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _text(self) -> TemplateResult:
        if not self.skip and not (self.text and self.text.strip()):
            raise ValueError("`text` is required (or `skip: true`)")
        return self


@dataclass(frozen=True)
class TemplateFailure:
    """A run that gave no usable result: `code` as the API says it (template_error,
    template_timeout, template_memory, bad_result, template_suspended)."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None

    @property
    def outcome(self) -> str:
        """The metric's outcome: error, timeout, memory, bad_result, suspended."""
        return _OUTCOMES[self.code]

    def as_error(self) -> dict[str, Any]:
        """The body of a 422, and (with `at`) a `last_error`."""
        error: dict[str, Any] = {"code": self.code, "message": self.message[:_ERROR_CHARS]}
        if self.line is not None:
            error["line"] = self.line
            error["column"] = self.column
        return error

    def as_last_error(self) -> dict[str, Any]:
        return {**self.as_error(), "at": utcnow()}


_CODES = {
    "syntax": "template_error",
    "error": "template_error",
    "timeout": "template_timeout",
    "memory": "template_memory",
    "result": "bad_result",
    "suspended": "template_suspended",
}
_OUTCOMES = {
    "template_error": "error",
    "template_timeout": "timeout",
    "template_memory": "memory",
    "bad_result": "bad_result",
    "template_suspended": "suspended",
}


def failure_of(error: ScriptError) -> TemplateFailure:
    return TemplateFailure(_CODES[error.kind], error.message, error.line, error.column)


class TemplateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "hookhub_template_runs",
            "Template runs, by use (subscription, incoming_webhook, test) and outcome (ok, "
            "error, timeout, memory, bad_result, suspended: not run, after failures in a row)",
            ["use", "outcome"],
            registry=registry,
        )


def event_of(
    provider: str, event_type: str, payload: Any, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The `event` a template is called with; headers lower-cased, without credentials (and
    without one whose value is not UTF-8)."""
    given: Mapping[str, str] = headers or {}
    kept: dict[str, str] = {}
    for name in given:
        if _CREDENTIAL.search(name.lower()):
            continue
        try:
            kept[name.lower()] = given[name]
        except BadRequest:
            continue
    return {"provider": provider, "event_type": event_type, "headers": kept, "payload": payload}


class Templates:
    """Runs templates in a sandbox, checks their results, counts the runs."""

    def __init__(self, sandbox: Sandbox, metrics: TemplateMetrics | None) -> None:
        self.sandbox = sandbox
        self._metrics = metrics

    async def check(self, template: str | None) -> None:
        """At save: a template that does not compile, or defines no `handler`, is refused
        (422 `invalid_template`, with its line and column)."""
        if template is None:
            return
        try:
            # In the saving workspace's queue of the sandbox (its fair share).
            await self.sandbox.check(template, FUNCTION, scope=tenancy.current() or "")
        except ScriptError as exc:
            where: dict[str, object] = {}
            if exc.line is not None:
                where = {"line": exc.line, "column": exc.column}
            raise Invalid(f"template: {exc}", code="invalid_template", extra=where) from exc

    async def render(
        self, template: str, event: dict[str, Any], *, use: Use, scope: str
    ) -> TemplateResult | TemplateFailure:
        """The template's result for `event`, or why there is none (counted either way)."""
        try:
            value = await self.sandbox.run(
                template, event, function=FUNCTION, scope=scope, keep=use != "test"
            )
        except ScriptError as exc:
            value = exc
        except Exception as exc:  # the sandbox's own trouble: the event still gets rendered
            value = _sandbox_failed(exc, use)
        return self._outcome(value, use)

    async def render_many(
        self, template: str, events: list[dict[str, Any]], *, use: Use, scope: str
    ) -> list[TemplateResult | TemplateFailure]:
        """`render` for each of `events`, in order, the runs batched in the sandbox
        (Sandbox.run_many): a consumer's batch of events crosses to V8 at once."""
        try:
            values = await self.sandbox.run_many(template, events, function=FUNCTION, scope=scope)
        except Exception as exc:
            values = [_sandbox_failed(exc, use)] * len(events)
        return [self._outcome(value, use) for value in values]

    def _outcome(self, value: Any, use: Use) -> TemplateResult | TemplateFailure:
        """A run's value (or the ScriptError it gave) as its outcome, counted."""
        if isinstance(value, TemplateFailure):
            outcome: TemplateResult | TemplateFailure = value
        elif isinstance(value, ScriptError):
            outcome = failure_of(value)
        else:
            outcome = result_of(value)
        if self._metrics is not None:
            label = "ok" if isinstance(outcome, TemplateResult) else outcome.outcome
            self._metrics.runs.labels(use, label).inc()
        return outcome


def _sandbox_failed(exc: Exception, use: Use) -> TemplateFailure:
    """The sandbox's own trouble (not the script's): the event still gets rendered."""
    log.exception("template_sandbox_failed", use=use, exc_info=exc)
    return TemplateFailure("template_error", f"the sandbox failed: {exc!r}")


_JSON_KINDS = {str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def result_of(value: Any) -> TemplateResult | TemplateFailure:
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "an array") if value is not None else "null"
        return TemplateFailure("bad_result", f"the function returned {kind}, not an object")
    try:
        return TemplateResult.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "result"
        return TemplateFailure("bad_result", f"{where}: {first['msg']}")


def _is_http_url(url: str) -> bool:
    """An absolute http(s) URL: what a card links to (shared.providers.commonmark.safe_url
    takes the same)."""
    url = url.strip()
    return url.lower().startswith(("https://", "http://")) and len(url) > len("https://")
