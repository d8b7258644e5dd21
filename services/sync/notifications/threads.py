"""An item's thread in a channel (SPEC §16): its lifecycle, and what each notice about it
does to the thread — pure decisions, no I/O (services.sync.notifications.service reads and
writes the lifecycle on the item's root in the message map).

An item (an alert group, an incident, a pull request) has one thread per channel at a time:
its root is the first notice the channel had of it, later notices go in its thread and edit
the root to the item's current state, "by" whoever made the latest state change and, once
resolved, how long it was open. The lifecycle says which thread is current (`generation`)
and where the item is:

- a resolution (`Notice.resolved` True) of an open item resolves the thread; of one already
  resolved it is posted in the thread and changes nothing (a repeated or redelivered one);
- a notice that (re)opens (`resolved` False) an item whose thread resolved at most
  `reopen_after` (HOOKHUB_SYNC_REOPEN_SECONDS, an hour) before reopens that thread: posted
  in it, saying it fired again, the root edited back; later than that, it starts a new
  thread (the next generation) with a root of its own;
- a notice older than the latest change applied (by `received_at`, when hookhub received
  the webhook) is history: posted in the thread, it edits nothing and changes nothing, so a
  late "firing" never turns a resolved root back. The delivery that made the latest change,
  seen again, changes nothing either.

Times are the events' own (`received_at`), never the clock's: a replayed backlog decides as
the live stream did. How long an item was open is the provider's own account where its
payloads give one (`Notice.started_at`, `Notice.ended_at`: an alert's `startsAt` and
`endsAt`, an incident's `created_at` and the resolve event's `occurred_at`), so a webhook
that arrives or is replayed hours late still says how long the item itself was open; the
thread's times (when hookhub received the notices that opened and resolved it) stand in
only for what the payloads do not say.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from shared.providers.notify import Card, Field, Notice

# The root card's fields added to the item's own.
BY, OPEN_FOR = "By", "Open for"

# Root cards made for one batch, by notice (its id: the notices outlive the batch's use)
# and what the card shows of the lifecycle (who, and the times "open for" is read from).
Cards = dict[tuple[int, str | None, tuple[datetime | None, ...]], Card]


@dataclass(frozen=True)
class Lifecycle:
    """Where an item stands in a channel: its current thread (`generation`, 0 for the first
    root), its state (the item card's) and who set it, when the current thread's item
    (re)opened and resolved (None while open: when hookhub received those notices), when
    the item began and ended by the provider's own account where those notices said
    (`began_at`, `ended_at`: their `started_at` and `ended_at`), and which event made the
    latest change (its `received_at` and source: a delivery id or an occurrence)."""

    generation: int = 0
    state: str | None = None
    by: str | None = None
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    changed_at: datetime | None = None
    source: str | None = None
    began_at: datetime | None = None
    ended_at: datetime | None = None

    def course(self) -> tuple[int, datetime | None, datetime | None]:
        """Which thread is current and whether its item is open: what another replica, or
        this one after a restart, must find stored (the state and who set it matter to the
        root's next edit only, and the next change of state sets them again)."""
        return self.generation, self.opened_at, self.resolved_at

    def to_doc(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "state": self.state,
            "by": self.by,
            "opened_at": self.opened_at,
            "resolved_at": self.resolved_at,
            "changed_at": self.changed_at,
            "source": self.source,
            "began_at": self.began_at,
            "ended_at": self.ended_at,
        }

    @classmethod
    def from_doc(cls, doc: Any, *, claimed_at: datetime | None = None) -> Lifecycle:
        """A root's stored lifecycle; a root written before lifecycles were kept has none:
        open since it was claimed."""
        if not isinstance(doc, dict):
            return cls(opened_at=claimed_at)
        generation = doc.get("generation")
        return cls(
            generation=generation if isinstance(generation, int) else 0,
            state=doc.get("state"),
            by=doc.get("by"),
            opened_at=doc.get("opened_at") or claimed_at,
            resolved_at=doc.get("resolved_at"),
            changed_at=doc.get("changed_at"),
            source=doc.get("source"),
            began_at=doc.get("began_at"),
            ended_at=doc.get("ended_at"),
        )


@dataclass(frozen=True)
class Step:
    """What one notice does to its item's thread.

    - `generation`: the thread it goes in (a new one when `new_thread`, whose root it is);
    - `edits_root`: whether the root is edited to `card` (the item card with who changed
      it and, resolved, how long it was open);
    - `reopened_after`: set when it reopens a resolved thread: how long after it resolved;
    - `lifecycle`: the item's lifecycle after it; `changed`: whether that is new (to be
      written)."""

    generation: int
    new_thread: bool
    edits_root: bool
    card: Card | None
    lifecycle: Lifecycle
    changed: bool
    reopened_after: timedelta | None = None


def first(
    notice: Notice,
    at: datetime,
    source: str,
    actor: str,
    generation: int = 0,
    cards: Cards | None = None,
) -> Step:
    """The first notice of an item in a channel (or of its thread `generation`, whose root
    is gone): its root. `cards`: see `root_card`."""
    life = _opened(Lifecycle(generation=generation), notice, at, source, actor)
    return Step(generation, True, False, root_card(notice, life, cards), life, True)


def advance(
    life: Lifecycle,
    notice: Notice,
    at: datetime,
    source: str,
    actor: str,
    reopen_after: timedelta,
    cards: Cards | None = None,
) -> Step:
    """A later notice of an item whose current thread has a root (`life`): see the
    module's docstring. `cards`: see `root_card`."""
    keep = Step(life.generation, False, False, None, life, False)
    if source == life.source or (life.changed_at is not None and at < life.changed_at):
        return keep  # history, or the latest change seen again
    if notice.resolved is True:
        if life.resolved_at is not None:
            return keep
        after = replace(
            life,
            state=_state(notice, life),
            by=actor,
            resolved_at=at,
            changed_at=at,
            source=source,
            ended_at=notice.ended_at,
        )
        return Step(life.generation, False, True, root_card(notice, after, cards), after, True)
    if notice.resolved is False and life.resolved_at is not None:
        gap = at - life.resolved_at
        if gap > reopen_after:
            after = _opened(Lifecycle(generation=life.generation + 1), notice, at, source, actor)
            return Step(after.generation, True, False, root_card(notice, after, cards), after, True)
        after = _opened(life, notice, at, source, actor)
        return Step(life.generation, False, True, root_card(notice, after, cards), after, True, gap)
    state = _state(notice, life)
    changed = state != life.state
    after = replace(life, state=state, by=actor, changed_at=at, source=source) if changed else life
    if notice.item_card is None:
        return replace(keep, lifecycle=after, changed=changed)
    return Step(life.generation, False, True, root_card(notice, after, cards), after, changed)


def _state(notice: Notice, life: Lifecycle) -> str | None:
    card = notice.item_card
    return card.state if card is not None and card.state else life.state


def _opened(life: Lifecycle, notice: Notice, at: datetime, source: str, actor: str) -> Lifecycle:
    resolved = notice.resolved is True
    return replace(
        life,
        state=_state(notice, life),
        by=actor,
        # A first notice that resolves: when it opened is not known (the notice's own
        # `started_at` may say).
        opened_at=None if resolved else at,
        resolved_at=at if resolved else None,
        changed_at=at,
        source=source,
        began_at=None if resolved else notice.started_at,
        ended_at=notice.ended_at if resolved else None,
    )


def root_card(notice: Notice, life: Lifecycle, cards: Cards | None = None) -> Card | None:
    """The item card as its root shows it: who made the latest change and, resolved, how
    long it was open (`open_for`). `cards` remembers those made for notices alive
    meanwhile (one batch's: a notice is every subscription's of its event)."""
    card = notice.item_card
    if card is None:
        return None
    if cards is None:
        return _root_card(card, notice, life)
    times = (life.opened_at, life.resolved_at, life.began_at, life.ended_at)
    key = (id(notice), life.by, times)
    made = cards.get(key)
    if made is None:
        made = cards[key] = _root_card(card, notice, life)
    return made


def _root_card(card: Card, notice: Notice, life: Lifecycle) -> Card:
    fields = list(card.fields)
    if life.by:
        fields.append(Field(BY, life.by))
    span = open_for(notice, life)
    if span is not None:
        fields.append(Field(OPEN_FOR, duration(span)))
    return replace(card, fields=tuple(fields))


def open_for(notice: Notice, life: Lifecycle) -> timedelta | None:
    """How long a resolved item was open: from when it began to when it ended by the
    provider's own account (the notice's `started_at`, else the opening notice's; the
    resolving notice's `ended_at`), each end the thread's own (when hookhub received the
    notice that opened or resolved it) only where the payloads did not say. None while
    open, or where neither says when it began (or the two disagree: it began after it
    ended)."""
    if life.resolved_at is None:
        return None
    began = notice.started_at or life.began_at or life.opened_at
    ended = life.ended_at or life.resolved_at
    if began is None or began > ended:
        return None
    return ended - began


def duration(span: timedelta) -> str:
    """A span as people say it, to its two largest units: `45 s`, `12 min`, `1 h 20 min`,
    `3 d 4 h` (rounded down)."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"
