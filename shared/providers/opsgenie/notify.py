"""Opsgenie's Webhook integration as notifications (SPEC §16): one thread per alert, its
root turning from open to acknowledged to closed, with who did each.

A webhook is one alert action (`action`: `Create`, `Acknowledge`, `AddNote`, `Close`, …,
or a custom action's name) on an alert (`alert`: `alertId`, `tinyId`, `message`,
`priority`, `tags`, `source`, `entity`, `createdAt` in milliseconds and `updatedAt`, the
action's time, in nanoseconds), done by `alert.username`. The event's
name is the action in lower case (`create`, `addnote`: the catalog's names, as
subscriptions write them); the item is `alert.alertId`. Create opens it, Close ends it;
Acknowledge and UnAcknowledge change its state; the other actions (a note, tags, an owner,
an escalation) leave the state as it was, so their root is left as it is. The payload has
no link to the alert (its address depends on the account's region and domain).

Payloads as Opsgenie's "alert action data" page documents them
(https://docs.opsgenie.com/docs/marid-alert-action-data); samples in ./samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.ids import field_at, str_field
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
    Actor,
    Card,
    Field,
    Notice,
    ServiceNotifier,
    Unrenderable,
    when,
)
from shared.providers.opsgenie.catalog import ENTRY

# The catalog's action names, as subscriptions name them: lower case.
EVENTS: frozenset[str] = frozenset(action.lower() for action in ENTRY.events)
DEFAULT_EVENTS: tuple[str, ...] = ("create", "acknowledge", "close", "escalate")
# What each action did, as "<who> <verb> <alert>".
VERBS = {
    "create": "created",
    "acknowledge": "acknowledged",
    "unacknowledge": "unacknowledged",
    "close": "closed",
    "delete": "deleted",
    "addnote": "added a note to",
    "addtags": "tagged",
    "removetags": "removed tags from",
    "addteam": "added a team to",
    "addrecipient": "added a recipient to",
    "assignownership": "assigned",
    "takeownership": "took ownership of",
    "testaction": "tested the integration with",
}
# The state an action leaves the alert in, where it says.
STATES = {
    "create": "open",
    "acknowledge": "acknowledged",
    "unacknowledge": "open",
    "close": "closed",
    "delete": "deleted",
}
STATE_COLORS = {"open": RED, "acknowledged": YELLOW, "closed": GREEN, "deleted": GRAY}
RESOLVES = {"create": False, "close": True}
TAGS_SHOWN = 10
EVENT_CHARS = 80


def _tags(alert: Mapping[str, Any]) -> list[str]:
    found = alert.get("tags")
    if not isinstance(found, list):
        return []
    return [tag for tag in found if isinstance(tag, str) and tag]


def _priority(alert: Mapping[str, Any]) -> str | None:
    """Opsgenie's P1..P5, sent as `P3` or as the number 3."""
    found = alert.get("priority")
    if type(found) is int:
        return f"P{found}"
    return found if isinstance(found, str) and found else None


def _actor(alert: Mapping[str, Any]) -> Actor | None:
    """`alert.username` (an email address; `System` for Opsgenie's own actions)."""
    name = str_field(alert, "username")
    if name is None:
        return None
    return Actor(
        name=name,
        login=name,
        external_id=str_field(alert, "userId"),
        bot=name.lower() == "system",
    )


def _escalation_notice(event: str, payload: Mapping[str, Any], item: str) -> Notice:
    """An escalation's webhook: the escalation and whom it notified, the alert by id only."""
    name = str_field(payload, "escalationName")
    notified = str_field(payload, "escalationNotify", "name")
    head = f"Escalation {md.text(name)}" if name else "An escalation"
    head += f" notified {md.text(notified)} of alert" if notified else " escalated alert"
    head += f" {md.code(item)}"
    return Notice(
        event=event,
        text=head,
        card=Card(title=f"Alert {item} escalated", color=RED),
        item=item,
        default=event in DEFAULT_EVENTS,
    )


def _alert_card(alert: Mapping[str, Any], state: str | None, title: str) -> Card:
    tags = _tags(alert)
    pairs = [
        ("Priority", _priority(alert)),
        ("Tags", ", ".join(tags[:TAGS_SHOWN])),
        ("Source", str_field(alert, "source")),
        ("Entity", str_field(alert, "entity")),
        ("Owner", str_field(alert, "owner")),
    ]
    return Card(
        title=title,
        state=state,
        color=STATE_COLORS.get(state or "", GRAY),
        fields=tuple(Field(name, value) for name, value in pairs if value),
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    action = str_field(payload, "action") or (event_header or "").strip()
    if not action:
        raise Unrenderable("`action` is missing")
    event = action.lower()[:EVENT_CHARS]
    alert = field_at(payload, "alert")
    item = str_field(alert, "alertId")
    if not isinstance(alert, dict) or item is None:
        raise Unrenderable("`alert.alertId` is missing")
    if event == "escalate":
        return _escalation_notice(event, payload, item)
    message = str_field(alert, "message")
    tiny = str_field(alert, "tinyId")
    title = " ".join(p.strip() for p in (f"#{tiny}" if tiny else None, message) if p)
    title = title or f"Alert {item}"
    state = STATES.get(event)
    card = _alert_card(alert, state, title)
    actor = _actor(alert)
    who = md.text(actor.name) if actor else "Opsgenie"
    verb = VERBS.get(event)
    alert_text = f"**{md.text(title)}**"
    if verb is None:  # a custom action (Opsgenie's "alert actions")
        head = f"{who} ran {md.code(action)} on {alert_text}"
    else:
        head = f"{who} {verb} {alert_text}"
    if event == "assignownership" and str_field(alert, "owner"):
        head += f" to {md.text(str_field(alert, 'owner'))}"
    added = str_field(alert, "addedTags") or str_field(alert, "removedTags")
    if event in ("addtags", "removetags") and added:
        head += f": {md.text(added)}"
    lines = [head]
    if event == "create":
        facts = [f"{f.name}: {md.text(f.value)}" for f in card.fields]
        if facts:
            lines.append(" · ".join(facts))
        description = str_field(alert, "description")
        if description:
            lines.append(f"\n{md.quote(description)}")
    if event == "addnote" and str_field(alert, "note"):
        lines.append(f"\n{md.quote(str_field(alert, 'note'))}")
    return Notice(
        event=event,
        text="\n".join(lines),
        card=card,
        actor=actor,
        item=item,
        item_card=card if state is not None else None,
        default=event in DEFAULT_EVENTS,
        resolved=RESOLVES.get(event),
        started_at=when(alert.get("createdAt")),
        # The action's own time: the alert was last updated by it (nanoseconds).
        ended_at=when(alert.get("updatedAt")) if RESOLVES.get(event) else None,
    )


NOTIFIER = ServiceNotifier(
    name="opsgenie",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    filters=frozenset({"authors"}),
    render=_render,
)
