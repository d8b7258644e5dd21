"""What every destination is to the dispatcher: a sender of signed envelopes that answers.

A destination gets the §7 envelope (transformed, if the endpoint has a transformation) and
its signing headers, and answers as an attempt: `status_code` where the destination speaks
HTTP (AWS and Pub/Sub answer with one, 2xx when accepted), else 200 for an acknowledged
message (a RabbitMQ confirm, a Kafka ack); an `error` in words otherwise, with the status
when there is one. The dispatcher decides the rest (retry, dead letter, breaker) as it does
for an HTTP endpoint's answer: an error with no status is retried as a connection error is.
An answer that says the message never left (`reached` false: a listening endpoint with no
listener connected) is retried the same way, but is not the endpoint's failure: its
breaker, failure streak and auto-disable do not count it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.kernel.egress import EgressPolicy

# The headers a destination carries as message attributes (SPEC §21): what a consumer needs
# to verify the body as it verifies a webhook, nothing else (SQS allows 10 attributes).
SIGNING_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
ACKNOWLEDGED = 200  # an answer without HTTP (a broker's ack): the message is the broker's
ANSWER_LIMIT = 16 * 1024  # of an answer's body kept in the attempt log, as for HTTP


@dataclass(frozen=True, slots=True)
class Message:
    """One attempt's message: the envelope and what a destination may key or name it by."""

    body: bytes  # the §7 envelope, as signed
    headers: Mapping[str, str]  # the signing headers (SIGNING_HEADERS), as a webhook's
    event_type: str
    event_id: str
    msg_id: str  # webhook-id: the same on every retry, what a FIFO queue deduplicates by
    workspace_id: str
    key: str | None  # the ordering key (FIFO endpoints) or the configured key's value
    fifo: bool  # the endpoint is FIFO: keys are ordering keys (Pub/Sub's)
    endpoint_id: str = ""
    timeout_seconds: float = 30.0  # the endpoint's: how long the dispatcher waits for it

    def attributes(self) -> dict[str, str]:
        return {name: self.headers[name] for name in SIGNING_HEADERS if name in self.headers}


@dataclass(frozen=True, slots=True)
class Answer:
    """A destination's answer, for the attempt log and the dispatcher's decision."""

    status_code: int | None
    body: str = ""
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    reached: bool = True  # False: nothing was sent (no listener connected)

    @classmethod
    def accepted(cls, body: str, status_code: int = ACKNOWLEDGED) -> Answer:
        return cls(status_code, body[:ANSWER_LIMIT])

    @classmethod
    def refused(cls, error: str, status_code: int | None = None, body: str = "") -> Answer:
        return cls(status_code, body[:ANSWER_LIMIT], error[:1000])

    @classmethod
    def unreached(cls, error: str) -> Answer:
        """Nothing was sent: retried on schedule, not counted against the endpoint."""
        return cls(None, "", error[:1000], reached=False)


class Relay(Protocol):
    """Where a listening endpoint's messages go (services/delivery/listen): to the laptop's
    socket, held by this replica or another."""

    def address(self, endpoint_id: str) -> str:
        """The attempt log's `url`: where the listener forwards, when one is connected."""
        ...

    async def deliver(self, message: Message) -> Answer: ...


class Destination(Protocol):
    """A destination's client, made once per endpoint (its lane's) and closed with it."""

    @property
    def address(self) -> str:
        """Where it sends, in words (the attempt log's `url`): a queue URL, `amqp://host/x`."""
        ...

    async def send(self, message: Message) -> Answer:
        """Sends `message`; the destination's refusals are answers, never raised. The
        dispatcher bounds it in time (the endpoint's `timeout_seconds`)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Surroundings:
    """What a destination's client is made with besides its endpoint's config: the egress
    policy every address it connects to is judged by, the deployment's endpoint overrides
    (an emulator standing in for the cloud service: tests, LocalStack), and the relay to
    the laptops listening (`hookhub listen`)."""

    policy: EgressPolicy
    aws_endpoint_url: str | None = None
    pubsub_endpoint_url: str | None = None
    relay: Relay | None = None  # the listening endpoints' (services/delivery/listen)
    endpoint_id: str = ""  # the endpoint the client is made for (catalog.open_destination)


def dig(document: Any, path: str) -> str | None:
    """The value at a dotted path of a JSON document (`data.channel_id`; a leading `$.` is
    allowed), as text; None where there is none or it is an object or a list."""
    value = document
    for part in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
