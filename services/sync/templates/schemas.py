"""API shapes of a template's test run (SPEC §16)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.domain.templates import MAX_TEMPLATE_CHARS


class TemplateTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)
    # The event's payload as the template will see it (any JSON).
    payload: Any = None
    provider: str = Field("incoming_webhook", min_length=1, max_length=100)
    event_type: str = Field("message", max_length=200)
    # Shown to the template without credentials, as at a real run.
    headers: dict[str, str] | None = Field(None, max_length=100)


class TemplatePreview(BaseModel):
    """How the chat would show the result: CommonMark `text` and the `card`."""

    text: str
    card: dict[str, Any] | None = None


class TemplateTestOut(BaseModel):
    # What the template returned, as checked.
    result: dict[str, Any]
    notice: TemplatePreview
