"""API shapes of incoming webhooks and of the Slack-compatible body posted to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from shared.domain.templates import MAX_TEMPLATE_CHARS
from shared.kernel.http.patch import Patch
from shared.kernel.ids import PrintableId


class IncomingWebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workspace_id: PrintableId
    target_channel_id: PrintableId
    name: str = Field("Incoming webhook", min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    # Shown as the author when a post names none (Slack's "customize name and icon").
    default_username: str | None = Field(None, max_length=200)
    default_icon_url: AnyHttpUrl | None = None
    enabled: bool = True
    # JavaScript `function handler(event)` rendering each post (SPEC §16,
    # docs/notifications.md#templates); checked at save.
    template: str | None = Field(None, max_length=MAX_TEMPLATE_CHARS)


class IncomingWebhookUpdate(Patch):
    clearable = frozenset({"description", "default_username", "default_icon_url", "template"})

    target_channel_id: PrintableId | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    default_username: str | None = Field(None, max_length=200)
    default_icon_url: AnyHttpUrl | None = None
    enabled: bool | None = None
    template: str | None = Field(None, max_length=MAX_TEMPLATE_CHARS)


class TemplateError(BaseModel):
    """The template's last failure: its code, message and where in the template."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    at: datetime


class IncomingWebhookOut(BaseModel):
    id: str
    workspace_id: str
    name: str
    description: str | None
    target_channel_id: str
    default_username: str | None
    default_icon_url: str | None
    enabled: bool
    url: str
    message_count: int
    last_message_at: datetime | None
    template: str | None = None
    last_error: TemplateError | None = None
    created_at: datetime
    updated_at: datetime


class IncomingPost(BaseModel):
    """A Slack-compatible incoming-webhook body. Unknown fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    text: str | None = Field(None, max_length=40_000)
    username: str | None = Field(None, max_length=200)
    icon_url: AnyHttpUrl | None = None
    icon_emoji: str | None = Field(None, max_length=100)
    channel: str | None = Field(None, max_length=200)
    thread_ts: str | None = Field(None, max_length=100)
    attachments: list[dict[str, Any]] | None = None
    blocks: list[dict[str, Any]] | None = None
