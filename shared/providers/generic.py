"""Generic sources: a service hookhub has never heard of, connected safely by saying how it
signs (`hmac`), which header holds its token (`token`), its Basic credentials (`basic`),
and where its event name and delivery id are. Each integration says it in its settings
(not secret: `config`), so the scheme is built per request from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import cast

from shared.providers.base import InboundRequest, SignatureInvalid
from shared.providers.catalog import Setting
from shared.providers.declared import BODY_DIGEST, Fields, FromHeader, FromJson
from shared.providers.ids import required_secret
from shared.providers.schemes import (
    BODY,
    Algorithm,
    Encoding,
    HeaderValue,
    Hmac,
    KeyedBy,
    KeyForm,
    Part,
    Text,
    Token,
    Window,
)

_HEADER = r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}"
_PATH = r"[A-Za-z0-9_$@-]{1,100}(\.[A-Za-z0-9_$@-]{1,100}){0,9}"

# Where a generic source's event name and delivery id are: the same settings for each.
LOCATION_SETTINGS = (
    Setting(
        "event_header",
        "the header naming the event (e.g. X-Event-Type); else event_path",
        secret=False,
        required=False,
        pattern=_HEADER,
    ),
    Setting(
        "event_path",
        "the JSON path of the event's name in the body (e.g. `type`, `data.kind`); the "
        "default is `type`, and an event without one is named `webhook`",
        secret=False,
        required=False,
        pattern=_PATH,
    ),
    Setting(
        "id_header",
        "the header holding the sender's delivery id (e.g. X-Delivery-Id), the same on a "
        "retry; else id_path",
        secret=False,
        required=False,
        pattern=_HEADER,
    ),
    Setting(
        "id_path",
        "the JSON path of the delivery id in the body (e.g. `id`); with neither, a retry is "
        "recognised by its exact bytes",
        secret=False,
        required=False,
        pattern=_PATH,
    ),
)


@dataclass(frozen=True)
class ConfiguredName:
    """The event's name where the integration says (`event_header`, `event_path`), else
    the body's `type`, else `webhook`."""

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        config = request.config
        if config.get("event_header"):
            return FromHeader(config["event_header"]).find(request, fields)
        path = tuple((config.get("event_path") or "type").split("."))
        return FromJson(*path).find(request, fields) or "webhook"

    def where(self) -> str:
        return "the integration's event_header or event_path"


@dataclass(frozen=True)
class ConfiguredId:
    """The delivery id where the integration says (`id_header`, `id_path`), else the
    body's digest."""

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        config = request.config
        if config.get("id_header"):
            return FromHeader(config["id_header"]).find(request, fields)
        if config.get("id_path"):
            return FromJson(*config["id_path"].split(".")).find(request, fields)
        return BODY_DIGEST.find(request, fields)

    def where(self) -> str:
        return "the integration's id_header or id_path"


@lru_cache(maxsize=1024)
def _hmac(
    header: str,
    algorithm: str,
    encoding: str,
    prefix: str,
    signed: str,
    timestamp_header: str,
    tolerance: int,
    key: str,
    separator: str,
) -> Hmac:
    parts: tuple[Part, ...] = (BODY,)
    window = None
    if signed != "body":
        if not timestamp_header:
            raise SignatureInvalid(f"cannot verify: signed={signed} needs timestamp_header")
        stamp = HeaderValue(timestamp_header)
        parts = (stamp, Text("."), BODY) if signed == "timestamp.body" else (stamp, BODY)
        window = Window(tolerance, header=timestamp_header)
    return Hmac(
        header=header,
        setting="secret",
        algorithm=cast(Algorithm, algorithm),
        encoding=cast(Encoding, encoding),
        prefix=prefix,
        signed=parts,
        key=cast(KeyForm, key),
        several=separator or None,
        window=window,
    )


class _Configured(KeyedBy):
    """A scheme built per request from the integration's settings (`scheme`), keyed by
    the setting named `setting`; the headers it reads are the integration's."""

    name = ""
    setting = ""

    @property
    def headers(self) -> tuple[str, ...]:
        return ()

    def scheme(self, settings: Mapping[str, str]) -> Hmac | Token:
        raise NotImplementedError

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        self.scheme(secrets).verify(request, secrets, now)

    def sign(
        self, request: InboundRequest, secrets: Mapping[str, str], now: datetime
    ) -> dict[str, str]:
        return self.scheme(secrets).sign(request, secrets, now)


class ConfiguredHmac(_Configured):
    """An HMAC as the integration's settings describe it (the `hmac` provider)."""

    name = "hmac"
    setting = "secret"

    def scheme(self, settings: Mapping[str, str]) -> Hmac:
        return _hmac(
            required_secret(settings, "header"),
            settings.get("algorithm", "sha256"),
            settings.get("encoding", "hex"),
            settings.get("prefix", ""),
            settings.get("signed", "body"),
            settings.get("timestamp_header", ""),
            int(settings.get("tolerance_seconds", "300")),
            settings.get("key_encoding", "text"),
            settings.get("separator", ""),
        )


class ConfiguredToken(_Configured):
    """A header equal to the integration's token (the `token` provider). On
    `Authorization` the value is `Bearer <token>` unless `prefix` says otherwise."""

    name = "token"
    setting = "token"

    def scheme(self, settings: Mapping[str, str]) -> Token:
        header = settings.get("header", "authorization").lower()
        prefix = settings.get("prefix")
        if prefix is None:
            prefix = "Bearer " if header == "authorization" else ""
        return Token(header=header, setting="token", prefix=_spaced(prefix))


def _spaced(prefix: str) -> str:
    """`Bearer` → `Bearer `: a scheme word is followed by a space; `sha256=` is not."""
    return prefix + " " if prefix and prefix[-1].isalnum() else prefix
