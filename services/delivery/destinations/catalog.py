"""Each destination type's client, and an endpoint's destination sealed, opened and shown."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from services.delivery.destinations.base import Destination, Surroundings
from services.delivery.destinations.schemas import CONFIGS, STORED, Config
from shared.kernel.crypto import SecretBox
from shared.kernel.mongo import Document

Opener = Callable[[Config, Surroundings], Destination]


@dataclass(frozen=True)
class DestinationSpec:
    """An endpoint's destination as delivery holds it: its config with the secrets opened."""

    type: str
    config: Config = field(repr=False)
    # Changes with any change of the stored destination: its lane's client is made anew.
    fingerprint: str = ""


def openers() -> dict[str, Opener]:
    """Each type's client, imported on first use: an endpoint's type brings its library."""
    from services.delivery.destinations import aws, kafka, listen, pubsub, rabbitmq

    return {
        "sqs": aws.Sqs,
        "sns": aws.Sns,
        "eventbridge": aws.EventBridge,
        "kinesis": aws.Kinesis,
        "s3": aws.S3,
        "pubsub": pubsub.PubSub,
        "rabbitmq": rabbitmq.RabbitMq,
        "kafka": kafka.Kafka,
        "listen": listen.Listen,
    }


def open_destination(
    spec: DestinationSpec, endpoint_id: str, surroundings: Surroundings
) -> Destination:
    """The client of endpoint `endpoint_id`'s destination."""
    return openers()[spec.type](spec.config, replace(surroundings, endpoint_id=endpoint_id))


def seal(
    kind: str, config: Config, box: SecretBox, stored: Mapping[str, Any] | None = None
) -> Document:
    """The destination as stored: secret fields sealed (those left out kept from `stored`
    when it is of the same type), the config showing them masked."""
    given = config.model_dump(exclude_none=True)
    kept = dict(stored.get("secrets") or {}) if stored and stored.get("type") == kind else {}
    shown = dict((stored or {}).get("config") or {}) if kept else {}
    secrets: dict[str, str] = {}
    public: dict[str, Any] = {}
    for name, value in given.items():
        if name in config.SECRETS:
            secrets[name] = box.encrypt(value)
            public[name] = config.masked(name, value)
        else:
            public[name] = value
    for name in config.SECRETS - given.keys():
        if name in kept:
            secrets[name] = kept[name]
            public[name] = shown.get(name)
    return {"type": kind, "config": public, "secrets": secrets}


def spec_of(stored: Mapping[str, Any] | None, box: SecretBox) -> DestinationSpec | None:
    if not stored:
        return None
    kind = stored["type"]
    opened = {
        **stored["config"],
        **{name: box.decrypt(value) for name, value in (stored.get("secrets") or {}).items()},
    }
    fingerprint = hashlib.sha256(orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)).hexdigest()
    config = CONFIGS[kind].model_validate(opened, context={STORED: True})
    return DestinationSpec(kind, config, fingerprint)


def shown(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the API answers: the type and config, secrets masked, never their values."""
    if not stored:
        return None
    return {"type": stored["type"], "config": dict(stored["config"])}
