"""API shapes of incoming webhooks and of the Slack-compatible body posted to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from shared.http.patch import Patch
from shared.ids import PrintableId


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


class IncomingWebhookUpdate(Patch):
    clearable = frozenset({"description", "default_username", "default_icon_url"})

    target_channel_id: PrintableId | None = None
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    default_username: str | None = Field(None, max_length=200)
    default_icon_url: AnyHttpUrl | None = None
    enabled: bool | None = None


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
