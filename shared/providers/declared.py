"""A provider's webhooks declared rather than coded: its signature scheme, where its event
name and delivery id are, how big its bodies get, and its handshakes.

Most providers are one `Declared(...)` in their folder (docs/providers.md). The gateway
runs them through the same pipeline as the hand-written ones (`ProviderWebhooks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson
import simdjson

from shared.providers.base import InboundRequest, MalformedWebhook, ParsedWebhook, Reply
from shared.providers.ids import (
    decode_form,
    decode_json,
    derived_delivery_id,
    field_at,
    is_form,
    parse_json_object,
)
from shared.providers.schemes import Scheme

# Most providers' webhooks are a few KB; a provider documenting a larger limit says so.
DEFAULT_MAX_BODY = 1024 * 1024


class Fields(Protocol):
    """A verified body, read a field at a time (JSON path or form field)."""

    def get(self, path: tuple[str, ...]) -> Any: ...


class _Decoded:
    """A body already decoded (a form, a JSON array, a JSON object simdjson refused)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self, path: tuple[str, ...]) -> Any:
        found = field_at(self.value, *path)
        return found if isinstance(found, (str, int, float, bool)) else None


class _Lazy:
    """A JSON object read field by field with simdjson, never built in Python: what lets a
    Stripe event's `id` and `type` be found in a few µs (docs/benchmarks.md)."""

    def __init__(self, document: simdjson.Object) -> None:
        self._doc: Any = document

    def get(self, path: tuple[str, ...]) -> Any:
        value = self._doc
        for key in path:
            if not isinstance(value, simdjson.Object):
                return None
            value = value.get(key)
        return value if isinstance(value, (str, int, float, bool)) else None


# -- where a name or an id is found --------------------------------------------------------


class Locator(Protocol):
    def find(self, request: InboundRequest, fields: Fields) -> str | None: ...

    def where(self) -> str:
        """How the catalog and the errors name it."""
        ...


@dataclass(frozen=True)
class FromHeader:
    name: str

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        value = request.header(self.name)
        return value.strip() or None if value is not None else None

    def where(self) -> str:
        return f"header {self.name}"


@dataclass(frozen=True)
class FromJson:
    """A string or integer at a path of the body (a form field, for form bodies)."""

    path: tuple[str, ...]

    def __init__(self, *path: str) -> None:
        object.__setattr__(self, "path", path)

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        value = fields.get(self.path)
        if isinstance(value, bool) or value is None:
            return None
        text = str(value).strip()
        return text or None

    def where(self) -> str:
        return "`" + ".".join(self.path) + "`"


@dataclass(frozen=True)
class Joined:
    """Several parts joined by `separator`; a missing part is left out (GitLab's
    `object_kind` with its `action` when it has one), all missing is None."""

    parts: tuple[Locator, ...]
    separator: str = "."

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        found = [p.find(request, fields) for p in self.parts]
        present = [f for f in found if f]
        return self.separator.join(present) if present and found[0] else None

    def where(self) -> str:
        return f" + {self.separator!r} + ".join(p.where() for p in self.parts)


@dataclass(frozen=True)
class FirstOf:
    """The first of several places that holds a value (GitLab's `Idempotency-Key`, else
    its `X-Gitlab-Event-UUID`)."""

    options: tuple[Locator, ...]

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        for option in self.options:
            found = option.find(request, fields)
            if found:
                return found
        return None

    def where(self) -> str:
        return " or ".join(o.where() for o in self.options)


@dataclass(frozen=True)
class Fixed:
    value: str

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        return self.value

    def where(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class BodyDigest:
    """For a provider that sends no delivery id: a redelivery repeats the exact bytes."""

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        return derived_delivery_id(request.body)

    def where(self) -> str:
        return "the body's SHA-256"


@dataclass(frozen=True)
class Found:
    """A provider's own rule (`find(request, fields)`), named for the catalog."""

    finder: Callable[[InboundRequest, Fields], str | None]
    description: str

    def find(self, request: InboundRequest, fields: Fields) -> str | None:
        return self.finder(request, fields)

    def where(self) -> str:
        return self.description


BODY_DIGEST = BodyDigest()

Handshake = Callable[[InboundRequest, Mapping[str, str]], Reply | None]


def echoed(text: str) -> Reply:
    """A handshake's challenge given back as the provider asks (Dropbox, Meta, Twitch,
    Microsoft Graph): 200 `text/plain`, with `nosniff` so that text from outside cannot be
    taken for a page or a script."""
    return Reply(200, text, media_type="text/plain", headers={"X-Content-Type-Options": "nosniff"})


def json_array(body: Any) -> Sequence[Any]:
    """The items of a body that is a JSON array of events (SendGrid's, HubSpot's); none
    for any other body (a 400: "the body carries no events")."""
    return body if isinstance(body, list) else ()


@dataclass(frozen=True)
class Split:
    """A body carrying several events (SendGrid's array, HubSpot's): each becomes its own
    envelope, named and deduplicated by its own fields. `items` finds them in the body."""

    items: Callable[[Any], Sequence[Any]]
    event: Locator
    delivery_id: Locator


@dataclass(frozen=True)
class Declared:
    """`ProviderWebhooks` from a declaration.

    - `scheme`: how requests are signed (shared/providers/schemes.py).
    - `event`, `delivery_id`: where the event's name and the provider's delivery id are;
      a missing delivery id falls back to the body's digest (a redelivery repeats the
      bytes), a missing event name is a 400 naming where it was looked for.
    - `body`: `json` (an object, or with `split` an array), `form`, or `json_or_form`.
    - `handshakes`: probes answered before verification, given the integration's settings
      (only ever for an integration that exists and is enabled); methods besides POST
      they answer are in `handshake_methods`.
    - `control`: verified requests that are not events (a provider's challenge after its
      signature checks): answered with its reply, not published.
    """

    name: str
    scheme: Scheme
    event: Locator
    delivery_id: Locator = BODY_DIGEST
    body: Literal["json", "form", "json_or_form"] = "json"
    max_body_bytes: int = DEFAULT_MAX_BODY
    handshakes: tuple[Handshake, ...] = ()
    handshake_methods: tuple[str, ...] = ()
    control: Callable[[InboundRequest, Fields], Reply | None] | None = None
    split: Split | None = None
    reply: Reply = field(default_factory=lambda: Reply(200, {"ok": True}))
    account: Locator | None = None

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return self.scheme.settings

    @property
    def delivery_id_header(self) -> str | None:
        return self.delivery_id.name if isinstance(self.delivery_id, FromHeader) else None

    def handshake(self, request: InboundRequest, secrets: Mapping[str, str] | None) -> Reply | None:
        if secrets is None:
            return None  # the app-level URL: a handshake is an integration's only
        for answer in self.handshakes:
            reply = answer(request, secrets)
            if reply is not None:
                return reply
        return None

    def verify(self, request: InboundRequest, secrets: Mapping[str, str], now: datetime) -> None:
        self.scheme.verify(request, secrets, now)

    def parse(self, request: InboundRequest) -> ParsedWebhook:
        payload, fields = self._read(request)
        if self.control is not None:
            reply = self.control(request, fields)
            if reply is not None:
                return ParsedWebhook(
                    event_type="handshake",
                    delivery_id=derived_delivery_id(request.body),
                    payload=None,
                    reply=reply,
                    publish=False,
                )
        if self.split is not None:
            return self._split(request, payload)
        event_type = self.event.find(request, fields)
        if event_type is None:
            raise MalformedWebhook(f"no event name in {self.event.where()}")
        return ParsedWebhook(
            event_type=event_type,
            delivery_id=self.delivery_id.find(request, fields) or derived_delivery_id(request.body),
            payload=payload,
            reply=self.reply,
            # Looked for only by an app-level request, to route it (GitHub's way).
            account=_finder(self.account, request, fields),
        )

    def _read(self, request: InboundRequest) -> tuple[Any, Fields]:
        if self.body != "json" and is_form(request):
            form = decode_form(request.body)
            return form, _Decoded(form)
        if self.body == "form":
            raise MalformedWebhook("body is not a form (application/x-www-form-urlencoded)")
        if self.split is not None:
            value = decode_json(request.body)
            return value, _Decoded(value)
        checked, document = parse_json_object(request.body)
        if document is not None:
            return checked, _Lazy(document)
        # Valid JSON simdjson refuses (a BOM, integers past 64 bits): decoded instead.
        decoded = checked.decode()
        return decoded, _Decoded(decoded)

    def _split(self, request: InboundRequest, payload: Any) -> ParsedWebhook:
        assert self.split is not None
        items = self.split.items(payload)
        if not items:
            raise MalformedWebhook("the body carries no events")
        events = []
        for item in items:
            if not isinstance(item, dict):
                raise MalformedWebhook("an event in the body is not a JSON object")
            fields = _Decoded(item)
            event_type = self.split.event.find(request, fields)
            if event_type is None:
                raise MalformedWebhook(f"an event has no name in {self.split.event.where()}")
            delivery_id = self.split.delivery_id.find(request, fields)
            events.append(
                ParsedWebhook(
                    event_type=event_type,
                    delivery_id=delivery_id or derived_delivery_id(_item_bytes(item)),
                    payload=item,
                    reply=self.reply,
                    # Its own item, not the body: each envelope carried the whole body
                    # (5,000 of Graph's notifications: 5,000 copies of 520 KB, each
                    # stored aside as too large for Kafka).
                    payload_is_body=False,
                )
            )
        return ParsedWebhook(
            event_type=events[0].event_type,
            delivery_id=derived_delivery_id(request.body),
            payload=payload,
            reply=self.reply,
            events=tuple(events),
        )


def _finder(
    locator: Locator | None, request: InboundRequest, fields: Fields
) -> Callable[[], str | None] | None:
    """What finds the account when asked (`ParsedWebhook.account`), not before."""
    if locator is None:
        return None
    return lambda: locator.find(request, fields)


def _item_bytes(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
