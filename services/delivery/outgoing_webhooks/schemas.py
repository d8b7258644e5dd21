"""API shapes of outgoing webhooks (SPEC §4). The secret is shown at creation and rotation only."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.delivery.destinations.schemas import (
    DESTINATION_DESCRIPTION,
    DestinationIn,
    DestinationOut,
)
from services.delivery.outgoing_webhooks.matching import valid_pattern
from services.delivery.transformations.schemas import Transformation
from shared.kernel.http.patch import Patch
from shared.kernel.ids import PrintableId
from shared.kernel.signing import FORBIDDEN_EXTRA_HEADERS, RESERVED_HEADERS

DEFAULT_RETRY_SCHEDULE = [5, 10, 20]
# One delivery per 100 s at the slowest: below that the wait for a token is no rate at all
# (5e-324 made it infinite).
MIN_RATE = 0.01
RATE_DESCRIPTION = "deliveries per second to this endpoint (0.01-10000); null: no limit"
Ordering = Literal["none", "fifo"]
ORDERING_DESCRIPTION = (
    "`fifo`: deliveries go one at a time in the order their events were published, per "
    "ordering key (the event's `ordering_key`, else `data.channel_id`, else one queue); a "
    "failing one holds the later ones of its key until it succeeds or is dead-lettered"
)
PROPAGATE_TRACE_DESCRIPTION = (
    "send the W3C trace context (`traceparent`, and `tracestate` when there is one) of each "
    "attempt: the trace of the event the delivery was made for; never sent when false"
)


def _check_events(events: list[str] | None) -> list[str] | None:
    if events is not None:
        bad = [e for e in events if not valid_pattern(e)]
        if bad:
            raise ValueError(f"not an event type or wildcard: {', '.join(bad)}")
    return events


# RFC 9110: a header name is a token; a value is visible ASCII, spaces and tabs (no CR, LF,
# NUL or other controls, which would split or end the request; non-ASCII has no agreed
# encoding on the wire).
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*$")
HEADERS_DESCRIPTION = (
    "Extra headers sent with every delivery. Values are write-only (sealed at rest, never "
    "returned: reads list the names in `headers_configured`). Refused: names that are "
    "not RFC 9110 tokens, values with control or non-ASCII characters, the headers hookhub "
    f"sets itself ({', '.join(sorted(RESERVED_HEADERS))}) and the framing and hop-by-hop "
    f"ones ({', '.join(sorted(FORBIDDEN_EXTRA_HEADERS))})."
)


MAX_HEADERS = 50
HeadersT = TypeVar("HeadersT", dict[str, str], dict[str, str | None])
PATCH_HEADERS_DESCRIPTION = (
    "Merged into the endpoint's headers by name (case-insensitive): a value sets or replaces "
    "that header, null removes it, headers not named are kept. " + HEADERS_DESCRIPTION
)


def _check_headers(headers: HeadersT | None) -> HeadersT | None:
    """Refuse what would never be sent: delivery drops these names and values. In a PATCH a
    null value removes the header, so it is not checked as one."""
    if headers is None:
        return None
    seen: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower()
        if not _HEADER_NAME.fullmatch(name) or len(name) > 100:
            raise ValueError(f"header name {name!r} is not an HTTP token of 1-100 characters")
        if lowered in RESERVED_HEADERS:
            raise ValueError(f"header {name!r} is set by hookhub itself")
        if lowered in FORBIDDEN_EXTRA_HEADERS:
            raise ValueError(f"header {name!r} belongs to the HTTP connection, not the request")
        if lowered in seen:
            raise ValueError(f"header {name!r} is given twice")
        if value is not None and (not _HEADER_VALUE.fullmatch(value) or len(value) > 4000):
            raise ValueError(
                f"header {name!r}: a value is at most 4000 visible ASCII characters, spaces "
                "and tabs (no CR, LF or other control characters)"
            )
        seen.add(lowered)
    return headers


check_headers = _check_headers  # a transformation's headers too (delivery/transformations)
check_events = _check_events  # a listening endpoint's too (delivery/listen)


CIRCUIT_BREAKER_DESCRIPTION = (
    "The endpoint's circuit breaker (SPEC §17): once `failure_ratio` of its last `window` "
    "attempts failed (or 5 timed out in a row) it opens, and deliveries wait, their retries "
    "unspent, for one probe after `cool_down_seconds` (doubling after each failed probe, "
    "to 10 minutes or the cool-down if longer). `enabled: false`: the retry schedule alone "
    "decides when each attempt goes."
)
MAX_COOL_DOWN = 24 * 3600
RATIO_DESCRIPTION = "the share of the last `window` attempts that must fail to open it (0-1]"
FailureRatio = Annotated[float, Field(gt=0, le=1, description=RATIO_DESCRIPTION)]
Window = Annotated[
    int, Field(ge=1, le=1000, description="how many of the endpoint's last attempts count (1-1000)")
]
CoolDown = Annotated[
    float,
    Field(
        ge=1,
        le=MAX_COOL_DOWN,
        description="seconds from its opening to the first probe (1-86400); null: the "
        "deployment's HOOKHUB_CIRCUIT_COOL_DOWN_SECONDS (30 unless set)",
    ),
]


class CircuitBreaker(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    failure_ratio: FailureRatio = 0.5
    window: Window = 20
    cool_down_seconds: CoolDown | None = None


class CircuitBreakerUpdate(Patch):
    """Merged into the endpoint's setting: the fields named change, the others are kept."""

    clearable = frozenset({"cool_down_seconds"})

    enabled: bool | None = None
    failure_ratio: FailureRatio | None = None
    window: Window | None = None
    cool_down_seconds: CoolDown | None = None


URL_DESCRIPTION = "where deliveries are POSTed (SPEC §7); else a `destination`"


def _check_schedule(schedule: list[int] | None) -> list[int] | None:
    if schedule is not None and any(not 0 <= s <= 7 * 24 * 3600 for s in schedule):
        raise ValueError("retry_schedule entries are seconds from 0 to 604800")
    return schedule


class OutgoingWebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: PrintableId
    name: str = Field("Outgoing webhook", min_length=1, max_length=200)
    url: str | None = Field(None, min_length=1, max_length=2000, description=URL_DESCRIPTION)
    destination: DestinationIn | None = None
    events: list[str] = Field(min_length=1, max_length=100)
    secret: str | None = Field(
        None, description="whsec_ + base64 of 24-64 bytes; generated when absent"
    )
    enabled: bool = True
    headers: dict[str, str] = Field(
        default_factory=dict, max_length=MAX_HEADERS, description=HEADERS_DESCRIPTION
    )
    retry_schedule: list[int] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE), max_length=20
    )
    timeout_seconds: float = Field(30.0, gt=0, le=120)
    rate_limit_per_second: float | None = Field(
        None, ge=MIN_RATE, le=10_000, description=RATE_DESCRIPTION
    )
    max_concurrency: int = Field(10, ge=1, le=1000)
    transformation: Transformation | None = None
    ordering: Ordering = Field("none", description=ORDERING_DESCRIPTION)
    propagate_trace: bool = Field(False, description=PROPAGATE_TRACE_DESCRIPTION)
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker, description=CIRCUIT_BREAKER_DESCRIPTION
    )

    _events = field_validator("events")(_check_events)
    _schedule = field_validator("retry_schedule")(_check_schedule)
    _headers = field_validator("headers")(_check_headers)

    @model_validator(mode="after")
    def _url_or_destination(self) -> OutgoingWebhookCreate:
        if (self.url is None) == (self.destination is None):
            raise ValueError("url or destination: one of the two, not both")
        return self


class OutgoingWebhookUpdate(Patch):
    clearable = frozenset({"rate_limit_per_second", "transformation"})

    name: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(
        None, min_length=1, max_length=2000, description="a URL instead of its destination"
    )
    destination: DestinationIn | None = Field(
        None, description=f"instead of its URL. {DESTINATION_DESCRIPTION}"
    )
    events: list[str] | None = Field(None, min_length=1, max_length=100)
    enabled: bool | None = None
    headers: dict[str, str | None] | None = Field(
        None, max_length=MAX_HEADERS, description=PATCH_HEADERS_DESCRIPTION
    )
    retry_schedule: list[int] | None = Field(None, max_length=20)
    timeout_seconds: float | None = Field(None, gt=0, le=120)
    rate_limit_per_second: float | None = Field(
        None, ge=MIN_RATE, le=10_000, description=RATE_DESCRIPTION
    )
    max_concurrency: int | None = Field(None, ge=1, le=1000)
    transformation: Transformation | None = Field(None, description="null removes it")
    ordering: Ordering | None = Field(None, description=ORDERING_DESCRIPTION)
    propagate_trace: bool | None = Field(None, description=PROPAGATE_TRACE_DESCRIPTION)
    circuit_breaker: CircuitBreakerUpdate | None = Field(
        None, description=f"{CIRCUIT_BREAKER_DESCRIPTION} {CircuitBreakerUpdate.__doc__}"
    )

    _events = field_validator("events")(_check_events)
    _schedule = field_validator("retry_schedule")(_check_schedule)
    _headers = field_validator("headers")(_check_headers)

    @model_validator(mode="after")
    def _url_or_destination(self) -> OutgoingWebhookUpdate:
        if self.url is not None and self.destination is not None:
            raise ValueError("url or destination: one of the two, not both")
        return self


class CircuitOut(BaseModel):
    """The endpoint's circuit (SPEC §17): `open` while its `circuit_breaker`'s share of its
    last attempts failed (half of 20 unless tuned; or 5 timed out in a row) and no probe has
    succeeded since; no attempt is made then but one probe at `next_probe_at`. Always
    `closed` while the breaker is off."""

    state: Literal["closed", "open", "half_open"]
    opened_at: datetime | None
    failure_rate: float = Field(
        description="of its last attempts (the breaker's window), when the state changed"
    )
    next_probe_at: datetime | None


class OutgoingWebhookOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    url: str | None = Field(description="null: the endpoint has a `destination`")
    destination: DestinationOut | None = None
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    circuit: CircuitOut
    headers_configured: list[str] = Field(
        description="names of the extra headers sent (their values are write-only)"
    )
    retry_schedule: list[int]
    timeout_seconds: float
    rate_limit_per_second: float | None
    max_concurrency: int
    transformation: Transformation | None = None
    ordering: Ordering = "none"
    propagate_trace: bool = Field(False, description=PROPAGATE_TRACE_DESCRIPTION)
    circuit_breaker: CircuitBreaker = Field(description=CIRCUIT_BREAKER_DESCRIPTION)
    created_at: datetime
    updated_at: datetime


class OutgoingWebhookWithSecret(OutgoingWebhookOut):
    secret: str = Field(description="shown once: at creation and at rotation")


class RotateSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str | None = None
    grace_seconds: int = Field(24 * 3600, ge=0, le=30 * 24 * 3600)


class Recover(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime
    until: datetime | None = None


class HeadOut(BaseModel):
    """The delivery a held key waits for."""

    id: str
    event_id: str
    event_type: str
    status: Literal["pending", "active", "delayed"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None = None
    last_error: str | None = None


class HeldKeyOut(BaseModel):
    ordering_key: str = Field(description='"" for events with neither key nor channel')
    head: HeadOut
    waiting_seconds: float = Field(description="since the head was made")
    queued: int = Field(description="deliveries of the key waiting, the head included")


class HeldKeysOut(BaseModel):
    """A FIFO endpoint's keys whose deliveries wait in its queue, the longest waiting first."""

    data: list[HeldKeyOut]
    truncated: bool = Field(description="more deliveries are queued than were read")
