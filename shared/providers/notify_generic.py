"""Any catalog provider's webhooks as notifications, where it has no renderer of its own
(SPEC §16): who, what, which object, the link, as far as the payload says; quiet unless a
subscription names the event.

The event's name is the gateway's (`event_type`, in the provider's own naming: Stripe's
`charge.refunded`, Typeform's `form_response`). What the payload holds is found by common
field names only, read defensively: nothing is required, so any payload renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.catalog import Entry
from shared.providers.notify import Card, Notice, Unrenderable

EVENT_CHARS = 100


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
        text = f"**{md.text(self.entry.name)}**: {md.code(event)}"
        return Notice(event=event, text=text, card=Card(title=f"{self.entry.name}: {event}"))
