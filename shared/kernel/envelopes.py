"""The envelopes of the topics other services rely on (SPEC §5, §6), with their topic names."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

import orjson
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shared.kernel import jsonlimits
from shared.kernel.ids import PrintableId, id_problem, new_id, utcnow
from shared.kernel.text import printable

# An event type: dotted lower-case words (`message.created`), as envelopes and the event
# type catalog (services/delivery/event_types) name them.
EVENT_TYPE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"

# The types of hookhub's own operational events (OperationalEvent), never a chat event's.
OPERATIONAL_PREFIX = "operational."

# The record header naming a provider event's provider (ProviderEvent.kafka_headers).
PROVIDER_HEADER = "hookhub-provider"


class Topic(StrEnum):
    """Topic names without the test namespace; `Settings.topic()` adds it where set."""

    CHAT_EVENTS = "hookhub.chat.events"
    CHAT_INBOUND = "hookhub.chat.inbound"
    PROVIDER_EVENTS = "hookhub.provider.events"
    INTEGRATION_EVENTS = "hookhub.integration.events"
    OPERATIONAL_EVENTS = "hookhub.operational.events"


@dataclass(frozen=True, slots=True)
class Encoded:
    """An envelope as it goes to Kafka: its id, its partition key and its JSON bytes."""

    id: str
    key: bytes | None
    value: bytes
    # Record headers besides `content-type` and `hookhub-id` (Envelope.kafka_headers).
    headers: tuple[tuple[str, bytes], ...] = ()
    # The trace it goes on in (shared.kernel.tracing; an OpenTelemetry Context): the envelope it
    # was derived from's, else the publisher's current one.
    trace: Any = None


class Envelope(BaseModel):
    """Common shape: every envelope has an `id` that consumers dedupe by."""

    model_config = ConfigDict(extra="forbid")

    id: PrintableId
    # Where a consumer read it (partition, offset): set by shared.kernel.consumers, not sent.
    _position: tuple[int, int] | None = PrivateAttr(default=None)
    # The trace it goes on in once consumed (an OpenTelemetry Context; shared.kernel.tracing).
    _trace: Any = PrivateAttr(default=None)

    def position(self) -> tuple[int, int] | None:
        """The (partition, offset) it was consumed from; None when not read from Kafka."""
        position: tuple[int, int] | None = self._private("_position")
        return position

    def trace(self) -> Any:
        """The context of its trace where it was consumed (its record's span, or what its
        producer's `traceparent` said): what is derived from it goes on in it. None when
        tracing is off or it came with no trace."""
        return self._private("_trace")

    def _private(self, name: str) -> Any:
        # Read from pydantic's own dict: `self._trace` goes through BaseModel.__getattr__
        # after the normal lookup fails, ~1.9 µs a read against ~0.06 (timeit), and the
        # consumers read these several times an envelope.
        private = self.__pydantic_private__
        return private.get(name) if private else None

    def to_kafka(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def kafka_headers(self) -> tuple[tuple[str, bytes], ...]:
        """Record headers that let a consumer pass over a record without decoding it."""
        return ()


class ChatEvent(Envelope):
    """`hookhub.chat.events`: the chat product's own events, keyed by channel (or workspace)."""

    type: str = Field(pattern=EVENT_TYPE_PATTERN, max_length=200)
    workspace_id: PrintableId
    occurred_at: datetime
    actor: dict[str, Any] | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    ordering_key: PrintableId | None = Field(
        None,
        description="what a FIFO endpoint orders its deliveries by (else `data.channel_id`); "
        "also the Kafka partition key, so that one key's events keep their order",
    )

    @field_validator("type")
    @classmethod
    def _not_operational(cls, value: str) -> str:
        """`operational.*` is hookhub's own (`hookhub.operational.events`): a chat event so
        named would reach the endpoints that take them, signed, as if hookhub said it."""
        if value.startswith(OPERATIONAL_PREFIX):
            raise ValueError(
                "operational.* types are hookhub's own operational events, not chat events"
            )
        return value

    @field_validator("data")
    @classmethod
    def _channel_routed_by(cls, data: dict[str, Any]) -> dict[str, Any]:
        """`data.channel_id` keys the event's partition and finds its mappings: an id by
        the same rule as the others (shared.kernel.ids)."""
        channel = data.get("channel_id")
        problem = id_problem(channel) if isinstance(channel, str) else None
        if problem is not None:
            raise ValueError(f"data.channel_id {problem}")
        return data

    @field_validator("actor", "data")
    @classmethod
    def _portable(cls, value: Any, info: ValidationInfo) -> Any:
        """Refused here, at the API and by every consumer alike, what a consumer could not
        carry to the end (shared.kernel.jsonlimits)."""
        found = jsonlimits.problem(value, str(info.field_name))
        if found is not None:
            raise ValueError(found)
        return value

    def partition_key(self) -> bytes:
        if self.ordering_key:
            return self.ordering_key.encode()
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

    @field_validator("name")
    @classmethod
    def _printable(cls, value: str) -> str:
        return printable(value)


InboundType = Literal["message.received", "message.edited", "message.deleted"]


class InboundMessage(Envelope):
    """`hookhub.chat.inbound`: a message hookhub hands to the chat product, keyed by channel."""

    type: InboundType
    workspace_id: str
    channel_id: str
    source: MessageSource
    author: MessageAuthor
    text: str = ""
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    # Slack Block Kit blocks as received, for chat products that render them; `text` always
    # carries a plain rendering.
    blocks: list[dict[str, Any]] | None = None
    # Notifications (SPEC §12): `{title, url, state, color?, fields: [{name, value}]}`, plain
    # text, for chat products that render cards; `text` always carries the CommonMark.
    card: dict[str, Any] | None = None
    thread_id: str | None = None
    # On `message.edited|deleted`: the message they change, as the chat knows it (its own
    # id once it named it through `data.inbound_id`, else the id of the `message.received`
    # envelope it came in). Absent on `message.received`, whose own `id` is that.
    message_id: str | None = None
    # Ephemeral (SPEC §20): the chat user id of the only person who may see it. The chat
    # product shows it to them alone and keeps it out of the channel's history (it does
    # not publish `message.created` for it); sync never bridges it to a network.
    visible_to: str | None = Field(
        None,
        description="ephemeral: the chat user id of the only person who may see it; the chat "
        "product shows it to them alone, keeps it out of the channel's history and publishes "
        "no `message.created` for it",
    )
    imported: bool = False
    occurred_at: datetime = Field(default_factory=utcnow)

    @field_validator("text")
    @classmethod
    def _printable(cls, value: str) -> str:
        """What came from outside, without control or bidirectional characters
        (shared.kernel.text): no name or message reads other than it is."""
        return printable(value)

    def partition_key(self) -> bytes:
        return self.channel_id.encode()


def encode_inbound(
    *,
    id: str,
    type: InboundType,
    workspace_id: str,
    channel_id: str,
    provider: str,
    integration_id: str,
    external_channel_id: str | None,
    external_message_id: str | None,
    external_thread_id: str | None,
    author_name: str,
    avatar_url: str | None,
    author_external_id: str | None,
    text: str,
    attachments: list[dict[str, Any]],
    blocks: list[dict[str, Any]] | None,
    thread_id: str | None,
    occurred_at: datetime,
    message_id: str | None = None,
    imported: bool = False,
    card: dict[str, Any] | None = None,
    visible_to: str | None = None,
    trace: Any = None,
) -> Encoded:
    """An `InboundMessage`'s Kafka bytes without building the model: for paths that publish
    thousands a second (an import), where validating and dumping the model cost a fifth of
    the time. The bytes are those of `InboundMessage(...).to_kafka()` (tests hold the two
    equal): the author's name and the text lose control and bidirectional characters as
    the model has them (shared.kernel.text); the avatar URL is checked the same way here and left
    out when it is not an http(s) URL. `trace`: the trace it goes on in (`Encoded.trace`)."""
    source = {
        "provider": provider,
        "integration_id": integration_id,
        **_present(
            external_channel_id=external_channel_id,
            external_message_id=external_message_id,
            external_thread_id=external_thread_id,
        ),
    }
    author = {
        "name": printable(author_name),
        **_present(
            avatar_url=http_url(avatar_url) if avatar_url is not None else None,
            external_id=author_external_id,
        ),
    }
    fields: dict[str, Any] = {
        "id": id,
        "type": type,
        "workspace_id": workspace_id,
        "channel_id": channel_id,
        "source": source,
        "author": author,
        "text": printable(text),
        "attachments": attachments,
        **_present(
            blocks=blocks,
            card=card,
            thread_id=thread_id,
            message_id=message_id,
            visible_to=visible_to,
        ),
        "imported": imported,
        "occurred_at": occurred_at,
    }
    try:
        value = orjson.dumps(fields, option=orjson.OPT_UTC_Z)
    except TypeError:  # what orjson cannot write (an integer over 64 bits in blocks): the model can
        value = InboundMessage.model_validate(fields).to_kafka()
    return Encoded(id, channel_id.encode(), value, trace=trace)


def _present(**fields: Any) -> dict[str, Any]:
    """The fields that have a value, in their order: what the model's dump leaves out when
    it is None is left out here too."""
    return {name: value for name, value in fields.items() if value is not None}


class _Sender(Protocol):
    @property
    def user_id(self) -> str | None: ...


class _Attachment(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class MessageChange(Protocol):
    """What `encode_change` reads of a provider's message change: the shape of
    shared.providers.chat.MessageChange, which this module does not import (the envelopes
    are below the providers: docs/development.md, Layers)."""

    @property
    def external_channel_id(self) -> str: ...
    @property
    def external_message_id(self) -> str: ...
    @property
    def external_thread_id(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def sender(self) -> _Sender: ...
    @property
    def attachments(self) -> Sequence[_Attachment]: ...
    @property
    def blocks(self) -> list[dict[str, Any]] | None: ...


class Author(Protocol):
    """What `encode_change` reads of a message's author (shared.providers.chat.Author)."""

    @property
    def name(self) -> str: ...
    @property
    def avatar_url(self) -> str | None: ...
    @property
    def external_id(self) -> str | None: ...


def encode_change(
    change: MessageChange,
    author: Author,
    *,
    id: str,
    type: InboundType,
    workspace_id: str,
    channel_id: str,
    integration_id: str,
    provider: str,
    text: str,
    thread_id: str | None,
    message_id: str | None = None,
    imported: bool = False,
    trace: Any = None,
) -> Encoded:
    """A provider's message change as the chat's envelope, live (sync) or imported alike:
    its ids, attachments, blocks and time from the change, its author (the sender's user
    id when the author has none) and readable text as the caller found them."""
    return encode_inbound(
        id=id,
        type=type,
        workspace_id=workspace_id,
        channel_id=channel_id,
        provider=provider,
        integration_id=integration_id,
        external_channel_id=change.external_channel_id,
        external_message_id=change.external_message_id,
        external_thread_id=change.external_thread_id,
        author_name=author.name,
        avatar_url=author.avatar_url,
        author_external_id=author.external_id or change.sender.user_id,
        text=text,
        attachments=[a.as_dict() for a in change.attachments],
        blocks=change.blocks,
        thread_id=thread_id,
        occurred_at=change.occurred_at,
        message_id=message_id,
        imported=imported,
        trace=trace,
    )


_HTTP_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


@functools.lru_cache(maxsize=4096)  # a few authors post most messages
def http_url(url: str) -> str | None:
    """`url` as the envelope keeps an http(s) URL (pydantic's `AnyHttpUrl`); None when it
    is not one."""
    try:
        return str(_HTTP_URL.validate_python(url))
    except ValidationError:
        return None


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

    @field_validator("received_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        """A time without a zone (written by another producer) is UTC, as hookhub's are:
        consumers compare it with aware times."""
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def partition_key(self) -> bytes:
        return self.integration_id.encode()

    def kafka_headers(self) -> tuple[tuple[str, bytes], ...]:
        # Sync's consumers each read one kind of provider (chat providers; GitHub and
        # Jira): a 20 KB GitHub payload is not decoded by the one that does not want it.
        return ((PROVIDER_HEADER, self.provider.encode()),)

    def to_kafka_with_raw_payload(self, raw_json: bytes) -> bytes:
        """The envelope with `payload` spliced in as the provider's own JSON bytes.

        For bodies that are the payload (already verified to parse as a JSON object):
        re-encoding a decoded 7 KB GitHub payload costs more than everything else we do
        with it, and the provider's bytes are exactly the payload.
        """
        head = self.model_dump_json(exclude_none=True, exclude={"payload"}).encode()
        return head[:-1] + b',"payload":' + raw_json + b"}"


class IntegrationEvent(Envelope):
    """`hookhub.integration.events`: connection and import lifecycle, and actions' results,
    keyed by integration."""

    type: Literal[
        "integration.connected",
        "integration.refreshed",
        "integration.disconnected",
        "integration.error",
        "import.started",
        "import.progress",
        "import.completed",
        "import.failed",
        "action.completed",
        "action.failed",
    ]
    workspace_id: str
    integration_id: str
    provider: str
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)

    def partition_key(self) -> bytes:
        return self.integration_id.encode()


OperationalType = Literal[
    "operational.endpoint.created",
    "operational.endpoint.updated",
    "operational.endpoint.deleted",
    "operational.endpoint.disabled",
    "operational.endpoint.enabled",
    "operational.endpoint.circuit_opened",
    "operational.endpoint.circuit_closed",
    "operational.delivery.failing",
    "operational.delivery.recovered",
    "operational.delivery.exhausted",
    "operational.integration.error",
    "operational.integration.disconnected",
    "operational.import.failed",
]


class OperationalEvent(Envelope):
    """`hookhub.operational.events` (SPEC §17): what happened to a workspace's endpoints,
    deliveries, integrations and imports, for its subscribers. `data` names the resource
    (`endpoint_id`, `delivery_id`, `integration_id`, `import_id`), the `reason` and the last
    status or error. Keyed by that resource."""

    type: OperationalType
    workspace_id: PrintableId
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)

    def resource_id(self) -> str | None:
        """The endpoint, integration or import the event is about."""
        for name in ("endpoint_id", "import_id", "integration_id"):
            value = self.data.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def partition_key(self) -> bytes:
        return (self.resource_id() or self.workspace_id).encode()


TOPIC_MODELS: dict[Topic, type[Envelope]] = {
    Topic.CHAT_EVENTS: ChatEvent,
    Topic.CHAT_INBOUND: InboundMessage,
    Topic.PROVIDER_EVENTS: ProviderEvent,
    Topic.INTEGRATION_EVENTS: IntegrationEvent,
    Topic.OPERATIONAL_EVENTS: OperationalEvent,
}


def new_event_id() -> str:
    return new_id("evt")
