"""Atlassian Statuspage's webhooks as notifications (SPEC §16): one thread per incident,
investigating to resolved, and one per component, down to operational.

A webhook tells of an incident (`incident`, with every update so far, newest first in
`incident_updates`) or of a component's status (`component` and `component_update`:
`old_status` → `new_status`). The event is the gateway's (the catalog's):
`incident.<status>` or `component.<new status>`.

- An incident's item is its id; `investigating` and `identified` open it, `resolved` and
  `postmortem` end it (open from its `created_at` to its `resolved_at`), `monitoring` leaves
  it as it was. A scheduled maintenance (`scheduled`, `in_progress`, `verifying`,
  `completed`) is an incident too: in progress opens it, completed ends it. Its colour is
  its `impact` (`none`, `minor`, `major`, `critical`), green once it ends; the message
  quotes the latest update's body and lists the components it affects.
- A component's item is its id: `operational` ends its thread, `degraded_performance`,
  `partial_outage` and `major_outage` open it, `under_maintenance` leaves it as it was;
  the outage began and ended with the updates' own `created_at`.

Nobody is named as who did it (a status page speaks for its company). Payloads as Zulip's
captures show them (Atlassian's "Enable webhook notifications" describes them); samples in
./samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.providers import commonmark as md
from shared.providers.ids import field_at, str_field
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
    Card,
    Field,
    Notice,
    ServiceNotifier,
    Unrenderable,
    when,
)
from shared.providers.statuspage.catalog import ENTRY

EVENTS: frozenset[str] = frozenset(ENTRY.events)
DEFAULT_EVENTS: tuple[str, ...] = (
    "incident.*",
    "component.major_outage",
    "component.partial_outage",
    "component.degraded_performance",
    "component.operational",
)
INCIDENT_RESOLVES = {
    "investigating": False,
    "identified": False,
    "resolved": True,
    "postmortem": True,
    "in_progress": False,
    "completed": True,
}
ENDED = ("resolved", "postmortem", "completed")
# Statuspage's impact levels, as colours (an ended incident is green whatever it was).
IMPACT_COLORS = {"none": GRAY, "minor": YELLOW, "major": RED, "critical": RED, "maintenance": GRAY}
COMPONENT_RESOLVES = {
    "operational": True,
    "degraded_performance": False,
    "partial_outage": False,
    "major_outage": False,
}
COMPONENT_COLORS = {
    "operational": GREEN,
    "degraded_performance": YELLOW,
    "partial_outage": YELLOW,
    "major_outage": RED,
    "under_maintenance": GRAY,
}
COMPONENTS_SHOWN = 10
EVENT_CHARS = 80


def _words(status: str) -> str:
    """`partial_outage` → `partial outage`."""
    return status.replace("_", " ")


def _page_url(payload: Mapping[str, Any]) -> str | None:
    """The status page's address: the unsubscribe link's origin (its query is the
    subscriber's own token, and is left out)."""
    link = md.safe_url(str_field(payload, "meta", "unsubscribe"))
    if link is None:
        return None
    parts = urlsplit(link)
    return f"{parts.scheme}://{parts.netloc}/" if parts.netloc else None


def _latest_update(incident: Mapping[str, Any]) -> dict[str, Any]:
    updates = incident.get("incident_updates")
    if not isinstance(updates, list):
        return {}
    found = [u for u in updates if isinstance(u, dict)]
    # Newest first as Statuspage sends them; by time where both say it.
    found.sort(key=lambda u: str_field(u, "created_at") or "", reverse=True)
    return found[0] if found else {}


def _components(incident: Mapping[str, Any]) -> list[str]:
    found = incident.get("components")
    if not isinstance(found, list):
        return []
    names = []
    for component in found:
        name = str_field(component, "name")
        if name:
            status = str_field(component, "status")
            names.append(f"{name} ({_words(status)})" if status else name)
    return names


def _incident_notice(event: str, payload: Mapping[str, Any]) -> Notice:
    incident = field_at(payload, "incident")
    item = str_field(incident, "id")
    if not isinstance(incident, dict) or item is None:
        raise Unrenderable("`incident.id` is missing")
    status = str_field(incident, "status") or event.split(".", 1)[-1]
    name = str_field(incident, "name") or f"Incident {item}"
    url = str_field(incident, "shortlink") or _page_url(payload)
    impact = str_field(incident, "impact_override") or str_field(incident, "impact")
    color = GREEN if status in ENDED else IMPACT_COLORS.get(impact or "", GRAY)
    components = _components(incident)
    shown = ", ".join(components[:COMPONENTS_SHOWN])
    if len(components) > COMPONENTS_SHOWN:
        shown += f" and {len(components) - COMPONENTS_SHOWN} more"
    fields = [Field("Status", _words(status))]
    if impact:
        fields.append(Field("Impact", impact))
    if shown:
        fields.append(Field("Components", shown))
    lines = [
        md.link(f"**{md.text(name)}**", url)
        + f" · {md.text(_words(status))}"
        + (f" · impact {md.text(impact)}" if impact else "")
    ]
    if shown:
        lines.append(f"Components: {md.text(shown)}")
    body = str_field(_latest_update(incident), "body")
    if body:
        lines.append(f"\n{md.quote(body)}")
    card = Card(title=name, url=url, state=status, color=color, fields=tuple(fields))
    return Notice(
        event=event,
        text="\n".join(lines),
        card=card,
        item=item,
        item_card=card,
        default=True,
        resolved=INCIDENT_RESOLVES.get(status),
        started_at=when(incident.get("created_at")),
        ended_at=when(incident.get("resolved_at")) if INCIDENT_RESOLVES.get(status) else None,
    )


def _component_notice(event: str, payload: Mapping[str, Any]) -> Notice:
    component = field_at(payload, "component")
    update = field_at(payload, "component_update")
    item = str_field(component, "id") or str_field(update, "component_id")
    if item is None:
        raise Unrenderable("`component.id` is missing")
    new = str_field(update, "new_status") or str_field(component, "status")
    if new is None:
        raise Unrenderable("`component_update.new_status` is missing")
    old = str_field(update, "old_status")
    changed_at = when(field_at(update, "created_at"))
    name = str_field(component, "name") or f"Component {item}"
    url = _page_url(payload)
    change = f"{_words(old)} → {_words(new)}" if old else _words(new)
    lines = [md.link(f"**{md.text(name)}**", url) + f" · {md.text(change)}"]
    page = str_field(payload, "page", "status_description")
    if page:
        lines.append(f"Status page: {md.text(page)}")
    fields = [Field("Status", _words(new))]
    if page:
        fields.append(Field("Status page", page))
    card = Card(
        title=name,
        url=url,
        state=new,
        color=COMPONENT_COLORS.get(new, GRAY),
        fields=tuple(fields),
    )
    return Notice(
        event=event,
        text="\n".join(lines),
        card=card,
        item=item,
        item_card=card,
        default=new != "under_maintenance",
        resolved=COMPONENT_RESOLVES.get(new),
        # The change's own time: an outage began, or ended, with it.
        started_at=changed_at if COMPONENT_RESOLVES.get(new) is False else None,
        ended_at=changed_at if COMPONENT_RESOLVES.get(new) else None,
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    if isinstance(payload.get("incident"), dict):
        status = str_field(payload, "incident", "status")
        return _incident_notice(f"incident.{status or 'updated'}"[:EVENT_CHARS], payload)
    if isinstance(payload.get("component_update"), dict) or isinstance(
        payload.get("component"), dict
    ):
        status = str_field(payload, "component_update", "new_status") or str_field(
            payload, "component", "status"
        )
        return _component_notice(f"component.{status or 'updated'}"[:EVENT_CHARS], payload)
    raise Unrenderable("neither `incident` nor `component_update`: not a Statuspage webhook")


NOTIFIER = ServiceNotifier(
    name="statuspage",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    render=_render,
)
