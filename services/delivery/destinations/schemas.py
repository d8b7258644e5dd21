"""API shapes of an endpoint's `destination: {type, config}` (SPEC §21), one config a type.

A config's secret fields (`SECRETS`) are sealed at rest and never returned: a read shows
them as `MASKED` (a RabbitMQ URL with its password masked), and a PATCH that leaves one
out keeps the stored value.
"""

from __future__ import annotations

import binascii
import re
import ssl
import string
from base64 import b64decode
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

MASKED = "********"  # a secret's value in every answer
DestinationType = Literal[
    "sqs", "sns", "eventbridge", "kinesis", "s3", "pubsub", "rabbitmq", "kafka", "listen"
]
KEY_PATH = Field(
    "data.channel_id",
    max_length=200,
    pattern=r"^(\$\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
    description="dotted path in the envelope whose value keys the message (a FIFO "
    "endpoint's ordering key comes first)",
)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    SECRETS: ClassVar[frozenset[str]] = frozenset()

    def masked(self, field: str, value: str) -> str:
        return MASKED


class AwsConfig(Config):
    """Credentials given, or the environment's (AWS_* variables, a role) when left out."""

    SECRETS: ClassVar[frozenset[str]] = frozenset({"secret_access_key", "session_token"})

    region: str | None = Field(
        None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$", description="else AWS_REGION's"
    )
    access_key_id: str | None = Field(None, min_length=1, max_length=128)
    secret_access_key: str | None = Field(None, min_length=1, max_length=256)
    session_token: str | None = Field(None, min_length=1, max_length=4096)


def _with_host(url: str) -> str:
    """A URL whose host (and port, if any) can be read: what the egress check judges."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for one outside 0-65535
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if not parts.hostname or port == 0:
        raise ValueError("a URL with a host (and a port from 1 to 65535, if any)")
    return url


class SqsConfig(AwsConfig):
    queue_url: str = Field(
        max_length=2000,
        pattern=r"^https?://",
        description="a `.fifo` queue gets the ordering key as `MessageGroupId` and the "
        "webhook-id as `MessageDeduplicationId`",
    )

    _queue_url = field_validator("queue_url")(_with_host)


class SnsConfig(AwsConfig):
    topic_arn: str = Field(
        pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
    )


class EventBridgeConfig(AwsConfig):
    event_bus_name: str = Field(min_length=1, max_length=1600, description="a name or an ARN")
    detail_type: str | None = Field(
        None, min_length=1, max_length=128, description="else the event's type"
    )


class KinesisConfig(AwsConfig):
    stream_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    partition_key_path: str = KEY_PATH


S3_FIELDS = frozenset({"workspace", "date", "event_id", "event_type", "msg_id"})


class S3Config(AwsConfig):
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    key_template: str = Field(
        "{workspace}/{date}/{event_id}.json",
        min_length=1,
        max_length=500,
        description=f"with {', '.join('{' + f + '}' for f in sorted(S3_FIELDS))}",
    )

    @field_validator("key_template")
    @classmethod
    def _known_fields(cls, template: str) -> str:
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"not a key template: {exc}") from None
        if any(spec or conversion for _, _, spec, conversion in parts):
            raise ValueError("a field is {name}, without a format or conversion")
        named = {name for _, name, _, _ in parts if name is not None}
        unknown = named - S3_FIELDS
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; known: {sorted(S3_FIELDS)}")
        return template


class PubSubConfig(Config):
    SECRETS: ClassVar[frozenset[str]] = frozenset({"service_account"})

    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    topic: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
    service_account: str | None = Field(
        None,
        max_length=20_000,
        description="the service account's JSON key (as text or an object); else none "
        "(the emulator)",
    )

    @field_validator("service_account", mode="before")
    @classmethod
    def _key(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = orjson.dumps(value).decode()
        if isinstance(value, str):
            try:
                key = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise ValueError("not JSON: a service account key file's content") from None
            if not isinstance(key, dict) or not {"client_email", "private_key"} <= key.keys():
                raise ValueError("a service account key has `client_email` and `private_key`")
        return value


# What aiormq reads from an AMQP URL's query that a workspace may set: the heartbeat, the
# connection's name, and a CA certificate to trust for `amqps://` (`cadata`, base64 DER: data,
# not a file). The rest it reads there names files of the delivery process (`cafile`,
# `capath`, `certfile`, `keyfile`: a workspace would make it load its own files, and learn
# from the attempt log whether they exist), or weakens what it checks (`no_verify_ssl`,
# `auth`), or its timeouts (`timeout`): refused.
AMQP_QUERY = frozenset({"heartbeat", "name", "cadata"})
# The validation context of a config opened from MongoDB to deliver (catalog.spec_of).
STORED = "stored"


def _amqp_url(url: str, info: ValidationInfo) -> str:
    """Refused with what the query may hold; one stored before (opened to deliver,
    `STORED`) is opened without the rest, so no file of the process is ever read."""
    url = _with_host(url)
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    problems = [_amqp_problem(key, value) for key, value in pairs]
    if not any(problems):
        return url
    if (info.context or {}).get(STORED):
        kept = [pair for pair, problem in zip(pairs, problems, strict=True) if not problem]
        return parts._replace(query=urlencode(kept)).geturl()
    raise ValueError(next(problem for problem in problems if problem))


def _amqp_problem(key: str, value: str) -> str | None:
    if key not in AMQP_QUERY:
        return f"the query parameter {key!r} is not taken (only {', '.join(sorted(AMQP_QUERY))})"
    if key == "cadata":
        try:
            b64decode(value, validate=True)
        except binascii.Error:
            return "cadata: a CA certificate in base64 (DER)"
    return None


class RabbitMqConfig(Config):
    SECRETS: ClassVar[frozenset[str]] = frozenset({"url"})

    url: str = Field(
        max_length=2000,
        pattern=r"^amqps?://",
        description="amqp:// or amqps://user:password@host:port/vhost, its query at most "
        "heartbeat, name and cadata (a CA certificate to trust, base64 DER); its password is "
        "write-only",
    )
    exchange: str = Field(
        "", max_length=255, description='the routing key is the event type; "": the default'
    )

    _url = field_validator("url")(_amqp_url)

    def masked(self, field: str, value: str) -> str:
        parts = urlsplit(value)
        if parts.password is None:
            return value
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=f"{parts.username}:{MASKED}@{host}").geturl()


_BROKER = re.compile(r"^[A-Za-z0-9.-]{1,253}:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$")


class KafkaConfig(Config):
    SECRETS: ClassVar[frozenset[str]] = frozenset({"sasl_password"})

    brokers: list[str] = Field(min_length=1, max_length=20, description="host:port each")
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    key_path: str = KEY_PATH
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = Field(None, min_length=1, max_length=500)
    sasl_password: str | None = Field(None, min_length=1, max_length=500)
    ca_certificate: str | None = Field(
        None,
        max_length=100_000,
        description="SSL and SASL_SSL: the PEM of the CA that signed the brokers' "
        "certificates (a private one, as Strimzi's cluster CA), trusted instead of the "
        "system's",
    )

    @field_validator("ca_certificate")
    @classmethod
    def _ca(cls, pem: str | None, info: ValidationInfo) -> str | None:
        if pem is None:
            return None
        if info.data.get("security_protocol") not in ("SSL", "SASL_SSL"):
            raise ValueError("only with security_protocol SSL or SASL_SSL")
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise ValueError("a CA certificate in PEM (-----BEGIN CERTIFICATE-----)")
        try:
            ssl.create_default_context(cadata=pem)
        except (ssl.SSLError, ValueError):
            raise ValueError("not a CA certificate in PEM that OpenSSL reads") from None
        return pem

    @field_validator("brokers")
    @classmethod
    def _host_ports(cls, brokers: list[str]) -> list[str]:
        bad = [broker for broker in brokers if not _BROKER.fullmatch(broker)]
        if bad:
            raise ValueError(f"not host:port: {', '.join(bad)}")
        return brokers


class ListenConfig(Config):
    """Nothing to say: the laptop connects in (`hookhub listen`, docs/listen.md), so there
    is no address to reach and no egress rule to judge one by."""


CONFIGS: dict[str, type[Config]] = {
    "sqs": SqsConfig,
    "sns": SnsConfig,
    "eventbridge": EventBridgeConfig,
    "kinesis": KinesisConfig,
    "s3": S3Config,
    "pubsub": PubSubConfig,
    "rabbitmq": RabbitMqConfig,
    "kafka": KafkaConfig,
    "listen": ListenConfig,
}


class _Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sqs(_Destination):
    type: Literal["sqs"]
    config: SqsConfig


class Sns(_Destination):
    type: Literal["sns"]
    config: SnsConfig


class EventBridge(_Destination):
    type: Literal["eventbridge"]
    config: EventBridgeConfig


class Kinesis(_Destination):
    type: Literal["kinesis"]
    config: KinesisConfig


class S3(_Destination):
    type: Literal["s3"]
    config: S3Config


class PubSub(_Destination):
    type: Literal["pubsub"]
    config: PubSubConfig


class RabbitMq(_Destination):
    type: Literal["rabbitmq"]
    config: RabbitMqConfig


class Kafka(_Destination):
    type: Literal["kafka"]
    config: KafkaConfig


class Listen(_Destination):
    type: Literal["listen"]
    config: ListenConfig = Field(default_factory=ListenConfig)


DESTINATION_DESCRIPTION = (
    "Instead of `url`: a queue, topic, bus, stream or bucket the envelope is sent to, its "
    "signing headers as message attributes (SPEC §21, docs/destinations.md), or `listen`: "
    "a developer's machine connected with `hookhub listen` (docs/listen.md). Secret fields "
    "are write-only: sealed at rest, shown as ********, kept by a PATCH that leaves them out."
)
DestinationIn = Annotated[
    Sqs | Sns | EventBridge | Kinesis | S3 | PubSub | RabbitMq | Kafka | Listen,
    Field(discriminator="type", description=DESTINATION_DESCRIPTION),
]


class DestinationOut(BaseModel):
    type: DestinationType
    config: dict[str, Any] = Field(description="secret fields shown as ********")
