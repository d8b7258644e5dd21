"""API shapes of outgoing webhooks (SPEC §4). The secret is shown at creation and rotation only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.delivery.outgoing_webhooks.matching import valid_pattern

DEFAULT_RETRY_SCHEDULE = [5, 10, 20]


def _check_events(events: list[str] | None) -> list[str] | None:
    if events is not None:
        bad = [e for e in events if not valid_pattern(e)]
        if bad:
            raise ValueError(f"not an event type or wildcard: {', '.join(bad)}")
    return events


def _check_schedule(schedule: list[int] | None) -> list[int] | None:
    if schedule is not None and any(not 0 <= s <= 7 * 24 * 3600 for s in schedule):
        raise ValueError("retry_schedule entries are seconds from 0 to 604800")
    return schedule


class OutgoingWebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: str = Field(min_length=1, max_length=200)
    name: str = Field("Outgoing webhook", min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=100)
    secret: str | None = Field(
        None, description="whsec_ + base64 of 24-64 bytes; generated when absent"
    )
    enabled: bool = True
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    retry_schedule: list[int] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE), max_length=20
    )
    timeout_seconds: float = Field(30.0, gt=0, le=120)
    rate_limit_per_second: float | None = Field(None, gt=0, le=10_000)
    max_concurrency: int = Field(10, ge=1, le=1000)

    _events = field_validator("events")(_check_events)
    _schedule = field_validator("retry_schedule")(_check_schedule)


class OutgoingWebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    url: str | None = Field(None, min_length=1, max_length=2000)
    events: list[str] | None = Field(None, min_length=1, max_length=100)
    enabled: bool | None = None
    headers: dict[str, str] | None = Field(None, max_length=50)
    retry_schedule: list[int] | None = Field(None, max_length=20)
    timeout_seconds: float | None = Field(None, gt=0, le=120)
    rate_limit_per_second: float | None = Field(None, gt=0, le=10_000)
    max_concurrency: int | None = Field(None, ge=1, le=1000)

    _events = field_validator("events")(_check_events)
    _schedule = field_validator("retry_schedule")(_check_schedule)


class OutgoingWebhookOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    headers: dict[str, str]
    retry_schedule: list[int]
    timeout_seconds: float
    rate_limit_per_second: float | None
    max_concurrency: int
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
