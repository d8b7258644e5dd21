"""New Relic's webhooks as notifications (SPEC §16): one thread per issue, opened then
closed.

A workflow's Webhook destination sends its payload template; the default one has the issue
(`id`, `title`, `priority`, `state`, `trigger`, `issueUrl`, `impactedEntities`,
`alertPolicyNames`, `alertConditionNames`, `totalIncidents`, `createdAt`, `updatedAt`). Its
`state` (`CREATED`, `ACTIVATED`, `ACKNOWLEDGED`, `CLOSED`), lower case, names the event:
created and activated open the issue's thread, closed ends it (open from `createdAt` to
`closedAt`, else to a closed issue's `updatedAt`), acknowledged leaves it as it was.
Templates of users' own (Zulip's documented one, earlier ones) add `owner` (who acknowledged
it), `closedAt`, or name the incident as the legacy webhook did, with its `condition_name`
(the title, where there is no `title`) and `details` (quoted). An `ACTIVATED` notification
that a user's action raised (`trigger` `USER_ACTION`) is an acknowledgement, as New Relic
sends one (Zulip's capture).

The legacy alert policy webhook sends an incident (`incident_id`, `current_state` `open`,
`acknowledged` or `closed`, `policy_name`, `condition_name`, `details`, `incident_url`):
`open` opens it, `closed` ends it. The item is the issue's id, or the incident's.

Nobody is named as who did it (the payloads do not say). Payloads as Zulip's captures show
them (New Relic's "Workflows" docs describe the template); samples in ./samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.ids import field_at, id_field, str_field
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

# Workflow issue states and legacy incident states, lower case: the events.
EVENTS: frozenset[str] = frozenset({"created", "activated", "acknowledged", "closed", "open"})
DEFAULT_EVENTS: tuple[str, ...] = ("created", "activated", "acknowledged", "closed", "open")
RESOLVES = {"created": False, "activated": False, "open": False, "closed": True}
PRIORITY_COLORS = {"critical": RED, "high": RED, "medium": YELLOW, "low": YELLOW}
LISTED = 5
EVENT_CHARS = 80


def _names(value: Any) -> str | None:
    if not isinstance(value, list):
        return None
    names = [v for v in value if isinstance(v, str) and v]
    more = len(names) - LISTED
    return (", ".join(names[:LISTED]) + (f" and {more} more" if more > 0 else "")) or None


def _color(state: str, priority: str | None) -> str:
    if state == "closed":
        return GREEN
    if state == "acknowledged":
        return YELLOW
    return PRIORITY_COLORS.get((priority or "").lower(), GRAY)


def _notice(
    *,
    state: str,
    item: str,
    title: str,
    url: str | None,
    facts: list[tuple[str, str | None]],
    body: str | None,
    started: Any,
    ended: Any,
) -> Notice:
    present = [(name, value) for name, value in facts if value]
    card = Card(
        title=title,
        url=url,
        state=state,
        color=_color(state, dict(present).get("Priority")),
        fields=tuple(Field(name, value) for name, value in present),
    )
    lines = [md.link(f"**{md.text(title)}**", url) + f" · {md.text(state)}"]
    if present:
        lines.append(" · ".join(f"{name}: {md.text(value)}" for name, value in present))
    if body:
        lines.append(f"\n{md.quote(body)}")
    return Notice(
        event=state[:EVENT_CHARS],
        text="\n".join(lines),
        card=card,
        item=item,
        item_card=card,
        default=state in DEFAULT_EVENTS,
        resolved=RESOLVES.get(state),
        started_at=when(started),
        ended_at=when(ended) if RESOLVES.get(state) else None,
    )


def _issue_notice(payload: Mapping[str, Any]) -> Notice:
    item = id_field(payload, "id")
    if item is None:
        raise Unrenderable("`id` (the issue) is missing")
    state = (str_field(payload, "state") or "").lower()
    if state == "activated" and str_field(payload, "trigger") == "USER_ACTION":
        state = "acknowledged"
    total = field_at(payload, "totalIncidents")
    condition = _names(payload.get("alertConditionNames")) or str_field(payload, "condition_name")
    owner = str_field(payload, "owner")
    return _notice(
        state=state or "updated",
        item=item,
        title=str_field(payload, "title") or condition or f"Issue {item}",
        url=str_field(payload, "issueUrl"),
        facts=[
            ("Priority", str_field(payload, "priority")),
            ("Entities", _names(payload.get("impactedEntities"))),
            ("Policy", _names(payload.get("alertPolicyNames"))),
            ("Condition", condition),
            ("Incidents", str(total) if type(total) is int else None),
            # The template's `owner`: who acknowledged it ("N/A" until someone has).
            ("Acknowledged by", owner if owner != "N/A" else None),
        ],
        body=str_field(payload, "details"),
        started=payload.get("createdAt"),
        # `closedAt` where the template has it; the default one's `updatedAt` of a closed
        # issue is when it closed.
        ended=payload.get("closedAt") or payload.get("updatedAt"),
    )


def _incident_notice(payload: Mapping[str, Any]) -> Notice:
    item = id_field(payload, "incident_id")
    if item is None:
        raise Unrenderable("`incident_id` is missing")
    state = (str_field(payload, "current_state") or "updated").lower()
    condition = str_field(payload, "condition_name")
    return _notice(
        state=state,
        item=item,
        title=f"Incident {item}" + (f": {condition}" if condition else ""),
        url=str_field(payload, "incident_url"),
        facts=[("Policy", str_field(payload, "policy_name"))],
        body=str_field(payload, "details"),
        # The time of this notification: when the incident opened, on `open`; when it
        # closed, on `closed`.
        started=payload.get("timestamp") if state == "open" else None,
        ended=payload.get("timestamp"),
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    if "incident_id" in payload or "current_state" in payload:
        return _incident_notice(payload)
    return _issue_notice(payload)


NOTIFIER = ServiceNotifier(
    name="newrelic",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    render=_render,
)
