"""PagerDuty's V3 webhooks as notifications (SPEC §16): one thread per incident, its root
turning from triggered to acknowledged to resolved, with who did each.

A V3 webhook is one event (`event.event_type`, PagerDuty's own name, kept as the event's
name: `incident.triggered`, `incident.responder.added`) done by `event.agent` (a user, or
the service or integration that raised it) to `event.data`. Most incident events carry
the whole incident (`data.type` `incident`: its `id`, `number`, `title`, `status`,
`urgency`, `priority`, `service`, `assignees`, `escalation_policy`, `created_at`; the
event's own time is `event.occurred_at`, so a resolution says when it resolved and a
trigger when the incident began, where `created_at` is missing); a note
(`incident.annotated`), a responder request or reply and a status update carry their own
object and a reference to the incident (`data.incident`). The item is the incident's id
either way, so they thread under it; only events with the whole incident say its state.

Payloads as https://developer.pagerduty.com/docs/webhooks-overview documents them
(PagerDuty/developer-docs `docs/webhooks/01-Overview.md`); samples in ./samples.
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
from shared.providers.pagerduty.catalog import ENTRY

# What each incident event did, as "<who> <verb> <incident>".
VERBS = {
    "incident.triggered": "triggered",
    "incident.acknowledged": "acknowledged",
    "incident.unacknowledged": "unacknowledged",
    "incident.escalated": "escalated",
    "incident.reassigned": "reassigned",
    "incident.delegated": "delegated",
    "incident.resolved": "resolved",
    "incident.reopened": "reopened",
    "incident.priority_updated": "changed the priority of",
    "incident.annotated": "added a note to",
    "incident.responder.added": "asked for help with",
    "incident.responder.replied": "replied to a request for help with",
    "incident.status_update_published": "published a status update on",
}
# Events that start or end the incident (SPEC §16); the others leave that as it was.
RESOLVES = {"incident.resolved": True, "incident.triggered": False, "incident.reopened": False}
# Subscriptions name the catalog's events (PagerDuty's names).
EVENTS: frozenset[str] = frozenset(ENTRY.events)
# The incident's lifecycle and who holds it: what a channel following incidents wants.
DEFAULT_EVENTS: tuple[str, ...] = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.escalated",
    "incident.reassigned",
    "incident.resolved",
    "incident.reopened",
)
# Events that hand the incident to someone: "<who> reassigned <incident> to <assignees>"
# (a delegation hands it to an escalation policy: "delegated <incident> to <policy>").
HANDED_TO = ("incident.escalated", "incident.reassigned")
# PagerDuty's incident statuses, coloured as everywhere here.
STATUS_COLORS = {"triggered": RED, "acknowledged": YELLOW, "resolved": GREEN}
# Assignees named in a message; the rest are counted.
ASSIGNEES_SHOWN = 5
EVENT_CHARS = 80


def _summary(value: Any, *path: str) -> str | None:
    """A reference's name (PagerDuty's `summary`)."""
    return str_field(value, *path, "summary")


def _ref_link(value: Any, *path: str) -> str | None:
    """A reference (`service`, `escalation_policy`, a user) as a link to it, or None."""
    name = _summary(value, *path)
    if name is None:
        return None
    return md.link(md.text(name), str_field(value, *path, "html_url"))


def _assignees(incident: Mapping[str, Any]) -> list[str]:
    found = field_at(incident, "assignees")
    if not isinstance(found, list):
        return []
    return [name for item in found if (name := _summary(item)) is not None]


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:ASSIGNEES_SHOWN])
    more = len(names) - ASSIGNEES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _actor(event: Mapping[str, Any]) -> Actor | None:
    """`event.agent`: a user, or the service or integration that raised it (a bot)."""
    name = _summary(event, "agent")
    if name is None:
        return None
    kind = str_field(event, "agent", "type")
    return Actor(
        name=name,
        login=str_field(event, "agent", "id"),
        external_id=str_field(event, "agent", "id"),
        bot=kind is not None and kind != "user_reference",
    )


def _incident_title(incident: Mapping[str, Any], title_key: str) -> str:
    """`#12 Title` when the incident says its number, else the title."""
    title = str_field(incident, title_key) or str_field(incident, "id") or "incident"
    number = field_at(incident, "number")
    return f"#{number} {title}" if type(number) is int else title


def _incident_card(incident: Mapping[str, Any]) -> Card:
    status = str_field(incident, "status")
    fields = []
    for name, value in (
        ("Service", _summary(incident, "service")),
        ("Urgency", str_field(incident, "urgency")),
        ("Priority", _summary(incident, "priority")),
        ("Assigned to", _names(_assignees(incident)) or None),
        ("Escalation policy", _summary(incident, "escalation_policy")),
    ):
        if value:
            fields.append(Field(name, value))
    return Card(
        title=_incident_title(incident, "title"),
        url=str_field(incident, "html_url"),
        state=status,
        color=STATUS_COLORS.get(status or "", GRAY),
        fields=tuple(fields),
    )


def _facts(event_type: str, incident: Mapping[str, Any]) -> str:
    """The line under the heading: what matters of the incident for this event."""
    parts = []
    urgency, priority = str_field(incident, "urgency"), _summary(incident, "priority")
    if urgency:
        parts.append(f"Urgency: {md.text(urgency)}")
    if priority:
        parts.append(f"Priority: {md.text(priority)}")
    assignees = _assignees(incident)
    if assignees and event_type not in ("incident.resolved", *HANDED_TO):
        parts.append(f"Assigned to: {md.text(_names(assignees))}")
    if event_type == "incident.escalated":
        policy = _ref_link(incident, "escalation_policy")
        if policy:
            parts.append(f"Escalation policy: {policy}")
    return " · ".join(parts)


def _who(actor: Actor | None) -> str:
    return md.text(actor.name) if actor is not None else "PagerDuty"


def _incident_notice(event_type: str, event: Mapping[str, Any], incident: dict[str, Any]) -> Notice:
    item = str_field(incident, "id")
    if item is None:
        raise Unrenderable("`event.data.id` (the incident) is missing")
    actor = _actor(event)
    card = _incident_card(incident)
    verb = VERBS.get(event_type)
    link = md.link(f"**{md.text(card.title)}**", card.url)
    if verb is not None:
        head = f"{_who(actor)} {verb} {link}"
    else:  # an incident event PagerDuty added after these names (a workflow, a field)
        head = f"{_who(actor)}: {md.code(event_type)} on {link}"
    assignees = _assignees(incident)
    if event_type in HANDED_TO and assignees:
        head += f" to {md.text(_names(assignees))}"
    policy = _ref_link(incident, "escalation_policy")
    if event_type == "incident.delegated" and policy:
        head += f" to {policy}"
    service = _ref_link(incident, "service")
    if service:
        head += f" on {service}"
    if card.state and card.state != verb:  # the state it is left in, where not said
        head += f" · {md.text(card.state)}"
    lines = [head]
    resolves, occurred = RESOLVES.get(event_type), when(event.get("occurred_at"))
    facts = _facts(event_type, incident)
    if facts:
        lines.append(facts)
    return Notice(
        event=event_type,
        text="\n".join(lines),
        card=card,
        actor=actor,
        item=item,
        item_card=card,
        default=event_type in DEFAULT_EVENTS,
        resolved=resolves,
        # When the incident was created, else (a payload without it) when the event that
        # opened it happened; the resolve event's own time is when it resolved. Neither is
        # when the webhook was sent.
        started_at=when(incident.get("created_at")) or (occurred if resolves is False else None),
        ended_at=occurred if resolves else None,
    )


def _reference_notice(event_type: str, event: Mapping[str, Any], data: dict[str, Any]) -> Notice:
    """A note, a responder request or reply, a status update: in the incident's thread,
    leaving its root as it is (the payload does not say the incident's state)."""
    item = str_field(data, "incident", "id")
    if item is None:
        raise Unrenderable("`event.data.incident.id` (the incident) is missing")
    actor = _actor(event)
    incident = field_at(data, "incident")
    assert isinstance(incident, dict)
    title = _incident_title(incident, "summary")
    link = md.link(f"**{md.text(title)}**", str_field(incident, "html_url"))
    verb = VERBS.get(event_type) or f"{md.code(event_type)} on"
    body: str | None
    if event_type == "incident.annotated":
        body = str_field(data, "content")
        head = f"{_who(actor)} {verb} {link}"
    elif event_type.startswith("incident.responder."):
        body = str_field(data, "message")
        responder = _ref_link(data, "user")
        state = str_field(data, "state")
        if event_type == "incident.responder.added" and responder:
            head = f"{_who(actor)} asked {responder} to help with {link}"
        elif event_type == "incident.responder.replied" and responder:
            head = f"{responder} replied to the request for help with {link}"
        else:
            head = f"{_who(actor)} {verb} {link}"
        if state:
            head += f" · {md.text(state)}"
    else:
        body = str_field(data, "message")
        head = f"{_who(actor)} {verb} {link}"
    text = head + (f"\n\n{md.quote(body)}" if body else "")
    card = Card(title=title, url=str_field(incident, "html_url"), color=GRAY)
    return Notice(
        event=event_type,
        text=text,
        card=card,
        actor=actor,
        item=item,
        default=event_type in DEFAULT_EVENTS,
    )


def _service_notice(event_type: str, event: Mapping[str, Any], data: Any) -> Notice:
    actor = _actor(event)
    name = _summary(data) or str_field(data, "name") or str_field(data, "id") or "a service"
    what = event_type.split(".", 1)[1] if "." in event_type else event_type
    link = md.link(f"**{md.text(name)}**", str_field(data, "html_url"))
    head = (
        f"{_who(actor)} {md.text(what)} service {link}"
        if actor
        else f"Service {link} {md.text(what)}"
    )
    return Notice(
        event=event_type,
        text=head,
        card=Card(title=f"Service {name} {what}", url=str_field(data, "html_url"), color=GRAY),
        actor=actor,
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    event = field_at(payload, "event")
    if not isinstance(event, dict):
        raise Unrenderable("`event` is missing: not a V3 webhook")
    event_type = (str_field(event, "event_type") or event_header or "").strip().lower()
    if not event_type:
        raise Unrenderable("`event.event_type` is missing")
    event_type = event_type[:EVENT_CHARS]
    data = field_at(event, "data")
    if event_type == "pagey.ping":
        return Notice(event=event_type, text="PagerDuty sent a test webhook (ping)")
    if event_type.startswith("service."):
        return _service_notice(event_type, event, data)
    if not isinstance(data, dict):
        raise Unrenderable("`event.data` is missing")
    if isinstance(data.get("incident"), dict):
        return _reference_notice(event_type, event, data)
    if str_field(data, "type") in ("incident", None) and event_type.startswith("incident"):
        return _incident_notice(event_type, event, data)
    # A resource PagerDuty added after these: nothing to post, and nothing wrong either.
    return Notice(
        event=event_type,
        text="",
        quiet=f"`{event_type}` is not about an incident or a service",
    )


NOTIFIER = ServiceNotifier(
    name="pagerduty",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    filters=frozenset({"authors"}),
    render=_render,
)
