"""Any catalog provider's webhooks as notifications, where it has no renderer of its own
(SPEC §16): who, what, which object, the link, as far as the payload says; quiet unless a
subscription names the event.

The event's name is the gateway's (`event_type`, in the provider's own naming: Stripe's
`charge.refunded`, Typeform's `form_response`). What the payload holds is found by common
field names only, read defensively and boundedly: objects are searched breadth first, at
most `DEPTH` levels down and `VISITED` objects in all, so any JSON renders, whatever its
shape or size.

- who: the first of `actor`, `user`, `sender`, `author`, `creator`, `initiator`, `by`
  (a name, or an object's `name`, `display_name`, `username`, `login`, `email`);
- which object: Stripe-like `data.object` first, then the payload and its objects: the
  first `title`, `name`, `subject`, `summary`, `display_name` and the first `id`, `key`,
  `number`;
- the link: the first `html_url`, `permalink`, `url`, `link`, `web_url`, `href` that is an
  absolute http(s) URL.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.catalog import Entry
from shared.providers.notify import Actor, Card, Field, Notice, Unrenderable, card_of

EVENT_CHARS = 100
DEPTH = 3
VISITED = 200
ACTOR_KEYS = ("actor", "user", "sender", "author", "creator", "initiator", "by")
ACTOR_NAMES = ("name", "display_name", "displayName", "username", "login", "email")
SUBJECT_KEYS = ("title", "name", "subject", "summary", "display_name", "displayName")
ID_KEYS = ("id", "key", "number")
LINK_KEYS = ("html_url", "permalink", "url", "link", "web_url", "href", "permalink_url")


def _objects(payload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The payload's objects, breadth first (Stripe-like `data.object` first), at most
    `DEPTH` levels down and `VISITED` in all; the objects of a list are its first three."""
    first = payload.get("data")
    start: list[Mapping[str, Any]] = []
    if isinstance(first, dict) and isinstance(first.get("object"), dict):
        start.append(first["object"])
    start.append(payload)
    level, seen = start, 0
    for _ in range(DEPTH + 1):
        following: list[Mapping[str, Any]] = []
        for found in level:
            seen += 1
            if seen > VISITED:
                return
            yield found
            for value in found.values():
                if isinstance(value, dict):
                    following.append(value)
                elif isinstance(value, list):
                    following.extend(v for v in value[:3] if isinstance(v, dict))
        level = following


def _first(objects: list[Mapping[str, Any]], keys: tuple[str, ...]) -> str | None:
    for found in objects:
        for key in keys:
            value = found.get(key)
            if type(value) is int:
                return str(value)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _link(objects: list[Mapping[str, Any]]) -> str | None:
    for found in objects:
        for key in LINK_KEYS:
            value = found.get(key)
            if isinstance(value, dict):  # `links: {html: {href}}`, `link: {href}`
                value = value.get("href")
            safe = md.safe_url(value)
            if safe is not None:
                return safe
    return None


def _actor(objects: list[Mapping[str, Any]]) -> Actor | None:
    for found in objects:
        for key in ACTOR_KEYS:
            value = found.get(key)
            if isinstance(value, str) and value.strip() and md.safe_url(value) is None:
                return Actor(name=md.line(value, 100))
            if isinstance(value, dict):
                name = _first([value], ACTOR_NAMES)
                if name:
                    login = _first([value], ("login", "username", "email"))
                    return Actor(
                        name=md.line(name, 100), login=login, external_id=_first([value], ("id",))
                    )
    return None


def generic_notice(service: str, event: str, payload: Mapping[str, Any]) -> Notice:
    """`payload` of `event` from `service` (its display name) as who, what, which object,
    the link. Never fails on a JSON object."""
    objects = list(_objects(payload))
    actor = _actor(objects)
    subject = _first(objects, SUBJECT_KEYS)
    ident = _first(objects[:1], ID_KEYS) if objects else None
    url = _link(objects)
    readable = event.replace("_", " ").replace(".", " ").replace(":", " ")
    line = f"**{md.text(service)}**: {md.code(event)}"
    if actor is not None:
        line += f" by {md.text(actor.name)}"
    shown = subject or ident
    if shown:
        label = md.text(shown)
        if subject and ident and ident not in subject:
            label += f" ({md.code(ident, limit=80)})"
        line += f": {md.link(label, url)}"
    elif url:
        line += f" ({md.link('view', url)})"
    fields = [("Event", event), ("Object", ident)]
    card = card_of(f"{service}: {subject or md.line(readable, 100)}", url, None, None, fields)
    return Notice(event=event, text=line, card=card, actor=actor)


class GenericNotifier:
    """The notifier of one catalog provider without a renderer of its own."""

    generic_events: frozenset[str] = frozenset({"*"})
    default_events: tuple[str, ...] = ()
    filters: frozenset[str] = frozenset()

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.name = entry.provider
        self.events = frozenset(entry.events)

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        event = (event_header or "").strip()[:EVENT_CHARS]
        if not event:
            raise Unrenderable("the webhook names no event")
        if not isinstance(payload, Mapping):
            # A body that is not an object (a list, a form) still names its event.
            return Notice(
                event=event,
                text=f"**{md.text(self.entry.name)}**: {md.code(event)}",
                card=Card(title=f"{self.entry.name}: {event}", fields=(Field("Event", event),)),
            )
        return generic_notice(self.entry.name, event, payload)
