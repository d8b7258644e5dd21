"""What sync needs of a provider that notifies (GitHub, Jira): its event names, and each
verified webhook turned into a `Notice` — CommonMark text, a card, and the facts that
subscriptions filter and thread on.

Each such provider implements `Notifier` in `shared/providers/<name>/notify.py`. The
renderers are pure: a payload in, a `Notice` out, nothing fetched and nothing stored. What
happens next is sync's (SPEC §12): it matches `event` against a subscription's `events`
(or, when a subscription names none, takes `default`), applies the filters to the facts,
posts `text`/`card` as `actor`, and threads under the root of `item`, whose root message it
edits to `item_card`.

A payload that lacks what a rendering needs raises `Unrenderable` with the reason, for
sync to count and record; any other exception escaping a renderer is a bug.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from shared.providers import commonmark as md

__all__ = [
    "GRAY",
    "GREEN",
    "RED",
    "YELLOW",
    "Actor",
    "Card",
    "CardAction",
    "Field",
    "Notice",
    "Notifier",
    "Scene",
    "ServiceNotifier",
    "Unrenderable",
    "card_of",
    "event_matches",
    "named_only",
    "placed",
    "settled",
    "when",
    "who",
]

# The colours of states common to every service, as GitHub's own (a renderer may have more).
RED, GREEN, YELLOW, GRAY = "#cf222e", "#1f883d", "#bf8700", "#6e7781"

_FRACTION = re.compile(r"(\.\d{6})\d+")
# A time since the epoch below each bound is in that many parts of a second.
_EPOCH_UNITS = ((10**11, 1), (10**14, 10**3), (10**17, 10**6))


def _defuse(instance: object, *names: str) -> None:
    """A frozen instance's text fields as plain text from outside (`md.plain`)."""
    for name in names:
        value = getattr(instance, name)
        if value is not None:
            object.__setattr__(instance, name, md.plain(value))


class Unrenderable(Exception):
    """The payload lacks what any rendering of its event needs (`reason` says what)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Field:
    name: str
    value: str

    def __post_init__(self) -> None:
        _defuse(self, "name", "value")


@dataclass(frozen=True)
class CardAction:
    """One button on an item's card (SPEC §20, shared.providers.acting): `id` what a click
    names, `label` what people read (plain text), `style` primary, danger or default."""

    id: str
    label: str
    style: Literal["primary", "danger", "default"] = "default"

    def __post_init__(self) -> None:
        _defuse(self, "label")

    @classmethod
    def from_dict(cls, action: Mapping[str, Any]) -> CardAction:
        """An action as `as_dict` wrote it (kept beside a root, carried on a job)."""
        return cls(str(action["id"]), str(action["label"]), action.get("style", "default"))

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label, "style": self.style}


@dataclass(frozen=True)
class Card:
    """SPEC §12's card, for chat products that render cards. `title` and field values are
    plain text (not CommonMark): the chat product escapes them for its own format. What
    came from outside is defused here, whichever renderer made the card: control and
    bidirectional characters removed, mentions and `<` markup broken with a zero-width
    joiner (shared.providers.commonmark), the URL http(s) only."""

    title: str
    url: str | None = None
    state: str | None = None
    color: str | None = None
    fields: tuple[Field, ...] = ()
    # What can be done to the item now, from the channel (SPEC §20): sync sets them on an
    # item's root card from the provider's `Acting.offers`; a renderer leaves them empty.
    actions: tuple[CardAction, ...] = ()

    def __post_init__(self) -> None:
        _defuse(self, "title", "state")
        object.__setattr__(self, "url", md.safe_url(self.url))

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> Card:
        """A card as `as_dict` wrote it (kept beside its root: services.sync.clicks)."""
        return cls(
            title=str(card.get("title") or ""),
            url=card.get("url"),
            state=card.get("state"),
            color=card.get("color"),
            fields=tuple(Field(str(f["name"]), str(f["value"])) for f in card.get("fields") or ()),
            actions=tuple(CardAction.from_dict(a) for a in card.get("actions") or ()),
        )

    def with_actions(self, actions: tuple[CardAction, ...]) -> Card:
        """The card with these actions: its other fields as they are, already defused
        (`dataclasses.replace` would defuse them again, for every root a webhook edits)."""
        card = copy.copy(self)
        object.__setattr__(card, "actions", actions)
        return card

    def as_dict(self) -> dict[str, Any]:
        card: dict[str, Any] = {
            "title": self.title,
            "url": self.url,
            "state": self.state,
            "fields": [{"name": f.name, "value": f.value} for f in self.fields],
        }
        if self.color is not None:
            card["color"] = self.color
        if self.actions:
            card["actions"] = [action.as_dict() for action in self.actions]
        return card


def card_text(card: Card) -> str:
    """An item's card as CommonMark, for its root message: the title linked, its state,
    then its fields (`Labels: bug, ui`), each line escaped."""
    title = md.link(f"**{md.text(card.title)}**", card.url)
    head = f"{title} · {md.text(card.state)}" if card.state else title
    lines = [head, *(f"{md.text(f.name)}: {md.text(f.value)}" for f in card.fields)]
    return "  \n".join(lines)


def card_of(
    title: object,
    url: object,
    state: str | None,
    color: str | None,
    fields: Iterable[tuple[str, object]] = (),
) -> Card:
    """A card from outside values: the title and each field's value on one line (trimmed),
    the fields without a value left out."""
    return Card(
        title=md.line(title),
        url=md.safe_url(url),
        state=state,
        color=color,
        fields=tuple(Field(name, md.line(value)) for name, value in fields if value),
    )


@dataclass(frozen=True)
class Actor:
    """Who did it: the message's author. `login` is the provider's handle (GitHub login,
    Jira account id or user name), matched by the `authors` filter; `bot` for GitHub
    `sender.type == "Bot"` or a `[bot]` login, Jira `accountType == "app"`."""

    name: str
    login: str | None = None
    avatar_url: str | None = None
    external_id: str | None = None
    bot: bool = False

    def __post_init__(self) -> None:
        _defuse(self, "name")  # shown as the message's author


def who(actor: Actor | None) -> str:
    """The actor's name as CommonMark text, or "Someone"."""
    return md.text(actor.name) if actor else "Someone"


def placed(name: str | None, url: object) -> str:
    """` in [name](url)`: where it happened (a repository, a project), or nothing."""
    return "" if name is None else " in " + md.link(md.text(name), url)


@dataclass(frozen=True)
class Scene:
    """What every rendering of one payload shares: the event's name, the payload, who
    acted, and where (a repository or project: `place`, linked to `place_url`)."""

    event: str
    payload: Mapping[str, Any]
    actor: Actor | None
    place: str | None
    place_url: str | None

    @property
    def who(self) -> str:
        return who(self.actor)

    @property
    def where(self) -> str:
        return placed(self.place, self.place_url)


def named_only(scene: Scene, subject: str | None, url: object) -> str:
    """An event a renderer knows only by its name: `who: `event` in place: [subject](url)`
    (or `(view)` linked when there is no subject)."""
    line = f"{scene.who}: {md.code(scene.event)}{scene.where}"
    if subject:
        return line + f": {md.link(md.text(subject), url)}"
    if md.safe_url(url) and url != scene.place_url:
        return line + f" ({md.link('view', url)})"
    return line


@dataclass(frozen=True)
class Notice:
    """One provider event, rendered.

    - `event`: the SPEC §12 name (`pull_request.merged`, `issue.updated`).
    - `text`: CommonMark, who did what to which item, linked; outside text escaped.
    - `item`: the thread key of an item with a thread (`owner/repo#42` for a GitHub pull
      request or issue, which share numbers in a repository; `BUG-15` for a Jira issue);
      None for pushes, releases, runs, sprints.
    - `item_card`: the item as it is now, for its root message (title, state, labels,
      assignees); None when there is no item.
    - `quiet`: why this event produces nothing at all (a no-op edit, a merge-queue ref);
      sync counts it and posts nothing. The rest is filled in as far as it could be.
    - `default`: whether a subscription without `events` notifies it (the provider's
      documented defaults, refined by facts of the payload: a push to the default branch,
      a Jira update that changed the status).
    - `occurrence`: what happened, named alike by every delivery that tells of it, where a
      provider sends one thing twice (a Jira comment: its `comment_created` and the issue
      update beside it); the envelope ids derive from it instead of the delivery id, so a
      subscription that takes both posts one message. None: each delivery is its own.
    - facts for filters: `repository` (`owner/name`) or `project` (Jira key); `branch` (a
      push's branch, a pull request's base, a run's head branch, a deployment's ref);
      `labels`; `draft`; `changed` (the fields an update changed, lower case: `status`,
      `assignee`, `title`).
    - the item's lifecycle (SPEC §16), for items that open and resolve (an alert, an
      incident, a Sentry issue, a merge request): `resolved` True when this event ends the
      item (resolved, closed, merged), False when it starts or re-opens it (triggered,
      firing, reopened), None when it leaves that as it was (a comment, an
      acknowledgement); `started_at` when the item began, where the payload says (an
      alert's `startsAt`, an incident's `created_at`), and, on a notice that ends it,
      `ended_at` when it ended by the provider's own account (an alert's `endsAt`, the
      resolve event's `occurred_at`), for "open for 1 h 20 min" that a late or replayed
      webhook tells as truly as a live one (sync falls back to the thread's times,
      when hookhub received the webhooks, only where the payload has none). The
      item's current state is `item_card.state`; who changed it, `actor`. `needs_root`: a
      notice that only means something in its item's thread (a pipeline that passed again
      after failing: "recovered"), posted only when the item has a root in the channel.
      `needs_root_by_default`: the same for a subscription that takes the notice by default
      (one without `events`); one that names its event takes it anyway (a CircleCI
      workflow that succeeded: a recovery by default, every completion when asked for).
    - `item_ref`: what the provider's API knows the item by, from the payload, where the
      rest of the notice does not say it (an Alertmanager group's labels and its
      Alertmanager's address): what `Acting.target` builds its target from (SPEC §20,
      shared.providers.acting). None where the renderer keeps nothing for acting.
    """

    event: str
    text: str
    card: Card | None = None
    actor: Actor | None = None
    item: str | None = None
    item_card: Card | None = None
    quiet: str | None = None
    default: bool = False
    repository: str | None = None
    project: str | None = None
    branch: str | None = None
    labels: tuple[str, ...] = ()
    draft: bool = False
    changed: frozenset[str] = field(default_factory=frozenset)
    occurrence: str | None = None
    resolved: bool | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    needs_root: bool = False
    needs_root_by_default: bool = False
    item_ref: Mapping[str, Any] | None = field(default=None, hash=False)


def settled(notice: Notice) -> Notice:
    """`notice` as sync gets it: nothing is posted for a quiet event, so it is never a
    default either."""
    if notice.quiet is not None and notice.default:
        return replace(notice, default=False)
    return notice


class Notifier(Protocol):
    """A provider's renderers.

    `events` is every event name it renders specifically (an alerting service's few
    names, or a catalog provider's own); `generic_events` the event kinds it renders only
    generically (who, what, which repository, the link), any action of
    which is `<kind>` or `<kind>.<action>`; `default_events` the patterns a subscription
    without `events` starts from (`Notice.default` is the final word, per event)."""

    name: str
    events: frozenset[str]
    generic_events: frozenset[str]
    default_events: tuple[str, ...]
    # The subscription filters its notices carry the facts of (services.sync.subscriptions
    # .filters.FILTERS); a subscription setting any other is refused.
    filters: frozenset[str]

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        """The payload rendered; `event_header` is the event's name where the provider
        sends it in a header (GitHub's `X-GitHub-Event`), None where the body says it.
        Raises `Unrenderable`."""
        ...


@dataclass
class ServiceNotifier:
    """A `Notifier` made of a service's names and its `render`, which is given the payload
    only when it is a JSON object (anything else is Unrenderable before it): what the
    alerting services' renderers share."""

    name: str
    events: frozenset[str]
    default_events: tuple[str, ...]
    render: Callable[[str | None, Mapping[str, Any]], Notice]
    filters: frozenset[str] = frozenset()
    generic_events: frozenset[str] = frozenset()

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        return self.render(event_header, payload)


def event_matches(pattern: str, event: str) -> bool:
    """SPEC §12's match: `*` within one dot-separated part, or a whole part; a pattern
    without an action part (`push`, `star`) names the event with every action."""
    pattern_parts = pattern.split(".")
    event_parts = event.split(".")
    if len(pattern_parts) == 1 and len(event_parts) == 2:
        event_parts = event_parts[:1]
    if len(pattern_parts) != len(event_parts):
        return False
    return all(
        fnmatch.fnmatchcase(part, wanted)
        for wanted, part in zip(pattern_parts, event_parts, strict=True)
    )


def known(notifier: Notifier, pattern: str) -> bool:
    """Whether `pattern` names at least one event `notifier` knows (for validating a
    subscription's `events`)."""
    if any(event_matches(pattern, name) for name in notifier.events):
        return True
    if "*" in notifier.generic_events:
        return True  # rendered generically, whatever it is called
    kind = pattern.split(".", 1)[0]
    return any(fnmatch.fnmatchcase(name, kind) for name in notifier.generic_events)


def any_matches(patterns: Iterable[str], event: str) -> bool:
    return any(event_matches(pattern, event) for pattern in patterns)


def when(value: object) -> datetime | None:
    """A time as a payload writes it, aware and in UTC: ISO 8601 (`Z` or an offset, up to
    nanoseconds, as Go's services write), or seconds, milliseconds, microseconds or
    nanoseconds since the epoch (Opsgenie's `updatedAt`); None for anything else, and for
    Go's zero time (`0001-01-01T00:00:00Z`, "not yet")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # The unit by magnitude: each reads as a year before 5138 in its own unit only.
        scale = next((s for limit, s in _EPOCH_UNITS if abs(value) < limit), 10**9)
        seconds = value / scale
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    text = _FRACTION.sub(r"\1", value.strip())
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        return None
    if found.year <= 1:
        return None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
