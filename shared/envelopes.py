"""The envelopes of the topics other services rely on (SPEC §5, §6), with their topic names."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from shared.ids import new_id, utcnow


class Topic(StrEnum):
    """Topic names without the test namespace; `Settings.topic()` adds it where set."""

    CHAT_EVENTS = "hookhub.chat.events"
    CHAT_INBOUND = "hookhub.chat.inbound"
    PROVIDER_EVENTS = "hookhub.provider.events"
    INTEGRATION_EVENTS = "hookhub.integration.events"


class Envelope(BaseModel):
    """Common shape: every envelope has an `id` that consumers dedupe by."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)

    def to_kafka(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class ChatEvent(Envelope):
    """`hookhub.chat.events`: the chat product's own events, keyed by channel (or workspace)."""

    type: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=200)
    workspace_id: str = Field(min_length=1)
    occurred_at: datetime
    actor: dict[str, Any] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def partition_key(self) -> bytes:
        channel = self.data.get("channel_id")
        return (str(channel) if channel else self.workspace_id).encode()


class MessageSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str
    integration_id: str
    external_channel_id: str | None = None
    external_message_id: str | None = None
    external_thread_id: str | None = None


class MessageAuthor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    avatar_url: AnyHttpUrl | None = None
    external_id: str | None = None


class InboundMessage(Envelope):
    """`hookhub.chat.inbound`: a message hookhub hands to the chat product, keyed by channel."""

    type: Literal["message.received", "message.edited", "message.deleted"]
    workspace_id: str
    channel_id: str
    source: MessageSource
    author: MessageAuthor
    text: str = ""
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    # Slack Block Kit blocks as received, for chat products that render them; `text` always
    # carries a plain rendering.
    blocks: list[dict[str, Any]] | None = None
    thread_id: str | None = None
    # On `message.edited|deleted`: the message they change, as the chat knows it (its own
    # id once it named it through `data.inbound_id`, else the id of the `message.received`
    # envelope it came in). Absent on `message.received`, whose own `id` is that.
    message_id: str | None = None
    imported: bool = False
    occurred_at: datetime = Field(default_factory=utcnow)

    def partition_key(self) -> bytes:
        return self.channel_id.encode()


class ProviderEvent(Envelope):
    """`hookhub.provider.events`: one verified provider webhook, keyed by integration."""

    provider: str
    integration_id: str
    workspace_id: str
    event_type: str
    delivery_id: str
    received_at: datetime = Field(default_factory=utcnow)
    payload: Any = None
    # Claim check: set instead of `payload` when the body is too large for one Kafka message.
    payload_ref: str | None = None

    def partition_key(self) -> bytes:
        return self.integration_id.encode()

    def to_kafka_with_raw_payload(self, raw_json: bytes) -> bytes:
        """The envelope with `payload` spliced in as the provider's own JSON bytes.

        For bodies that are the payload (already verified to parse as a JSON object):
        re-encoding a decoded 7 KB GitHub payload costs more than everything else we do
        with it, and the provider's bytes are exactly the payload.
        """
        head = self.model_dump_json(exclude_none=True, exclude={"payload"}).encode()
        return head[:-1] + b',"payload":' + raw_json + b"}"


class IntegrationEvent(Envelope):
    """`hookhub.integration.events`: connection and import lifecycle, keyed by integration."""

    type: Literal[
        "integration.connected",
        "integration.refreshed",
        "integration.disconnected",
        "integration.error",
        "import.started",
        "import.progress",
        "import.completed",
        "import.failed",
    ]
    workspace_id: str
    integration_id: str
    provider: str
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)

    def partition_key(self) -> bytes:
        return self.integration_id.encode()


TOPIC_MODELS: dict[Topic, type[Envelope]] = {
    Topic.CHAT_EVENTS: ChatEvent,
    Topic.CHAT_INBOUND: InboundMessage,
    Topic.PROVIDER_EVENTS: ProviderEvent,
    Topic.INTEGRATION_EVENTS: IntegrationEvent,
}


def new_event_id() -> str:
    return new_id("evt")
