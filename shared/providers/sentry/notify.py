"""Sentry's integration-platform webhooks as notifications (SPEC §16): one thread per
Sentry issue, its root turning from unresolved to resolved (and back when it regresses),
with who did each; metric alerts a thread each, critical or warning then resolved.

The event is the `Sentry-Hook-Resource` header and the body's `action`, as the gateway
joins them (`issue.created`); without the header it is read from what `data` holds (an
`issue`, an `error`, an `event` of an issue alert, a `metric_alert`, a `comment`). Sentry
once called archiving an issue `ignored`: that action is `issue.archived` here too.

- issue (`data.issue`): the item is the issue's id; created and unresolved start it,
  resolved ends it, archived and assigned leave that as it was. Its state is the issue's
  `status` (`unresolved`, `resolved`, `ignored`).
- error (`data.error`) and issue alert (`data.event`, with `triggered_rule`): an event of
  an issue, in that issue's thread (`issue_id`); an issue alert firing starts (or
  re-opens) the issue's thread. Neither says the issue's state, so the root is left as is.
- metric alert (`data.metric_alert`): the item is the alert rule
  (`metric_alert.alert_rule.id`; the incident's id where no rule is named), so a rule
  firing again within the hour of resolving reopens its thread (each firing is a new
  incident); its state is the action.
- comment: in its issue's thread (`data.issue_id`).

Payloads as https://docs.sentry.io/integrations/integration-platform/webhooks/ documents
them (getsentry/sentry-docs `docs/organization/integrations/integration-platform/webhooks/`);
samples in ./samples. Sentry sends no webhook of its own for uptime monitors: an uptime
failure is an issue (and can fire an issue alert), rendered as any other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.ids import field_at, id_field, str_field
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
from shared.providers.sentry.catalog import ENTRY

# Subscriptions name the catalog's events (the gateway's names).
EVENTS: frozenset[str] = frozenset(ENTRY.events)
# New and regressed issues, their resolution, and alerts: errors (every event of an issue)
# and comments only when a subscription names them.
DEFAULT_EVENTS: tuple[str, ...] = (
    "issue.created",
    "issue.resolved",
    "issue.unresolved",
    "event_alert.triggered",
    "metric_alert.critical",
    "metric_alert.warning",
    "metric_alert.resolved",
)
# What `data` holds says the resource, where the header did not come along.
RESOURCES = (
    ("issue", "issue"),
    ("error", "error"),
    ("metric_alert", "metric_alert"),
    ("event", "event_alert"),
    ("comment", "comment"),
    ("installation", "installation"),
)
# Sentry's old name for archiving.
RENAMED = {"issue.ignored": "issue.archived"}
ISSUE_RESOLVES = {"created": False, "unresolved": False, "resolved": True}
STATUS_COLORS = {"unresolved": RED, "resolved": GREEN, "ignored": GRAY}
ALERT_COLORS = {"critical": RED, "warning": YELLOW, "resolved": GREEN}
ALERT_RESOLVES = {"critical": False, "warning": False, "resolved": True}
# `statusDetails`-free words for how an issue was resolved (`data.resolution_type`).
RESOLUTIONS = {
    "in_next_release": "in the next release",
    "in_release": "in a release",
    "in_commit": "in a commit",
    "in_upcoming_release": "in the upcoming release",
}
# What an archive waits for (`substatus`).
ARCHIVED_UNTIL = {
    "archived_until_escalating": "until it escalates",
    "archived_until_condition_met": "until a condition is met",
    "archived_forever": "forever",
}
# An event's project, where the payload names only its number: its API URL says the slug.
_EVENT_PROJECT = re.compile(r"/projects/[^/]+/([^/]+)/events/")
EVENT_CHARS = 80


def _obj(value: Any, *path: str) -> dict[str, Any]:
    found = field_at(value, *path)
    return found if isinstance(found, dict) else {}


def _actor(payload: Mapping[str, Any]) -> Actor | None:
    """`actor`: a user, or Sentry itself (`application`), a bot."""
    name = str_field(payload, "actor", "name")
    if name is None:
        return None
    actor_id = id_field(payload, "actor", "id")
    return Actor(
        name=name,
        login=actor_id,
        external_id=actor_id,
        bot=str_field(payload, "actor", "type") != "user",
    )


def _event_name(event_header: str | None, payload: Mapping[str, Any]) -> str:
    header = (event_header or "").strip().lower()
    if "." not in header:
        data = _obj(payload, "data")
        resource = header or next((name for key, name in RESOURCES if key in data), "")
        action = str_field(payload, "action")
        if not resource or action is None:
            raise Unrenderable("neither `Sentry-Hook-Resource` nor `data` says the resource")
        header = f"{resource}.{action.lower()}"
    header = header[:EVENT_CHARS]
    return RENAMED.get(header, header)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _tags(event: Mapping[str, Any]) -> dict[str, str]:
    found = event.get("tags")
    if not isinstance(found, list):
        return {}
    pairs = (t for t in found if isinstance(t, list) and len(t) == 2)
    return {k: v for k, v in pairs if isinstance(k, str) and isinstance(v, str)}


# Facts the heading already says ("in front-end"), and facts that are code.
UNSAID = ("Project",)
CODE = ("Culprit",)


def _facts(pairs: list[tuple[str, str | None]]) -> tuple[str, tuple[Field, ...]]:
    """The line of facts under a heading and the card's fields (which say all of them)."""
    present = [(name, value) for name, value in pairs if value]
    line = " · ".join(
        f"{name}: {md.code(value) if name in CODE else md.text(value)}"
        for name, value in present
        if name not in UNSAID
    )
    return line, tuple(Field(name, value) for name, value in present)


def _who(actor: Actor | None) -> str:
    return md.text(actor.name) if actor is not None else "Sentry"


def _issue_notice(event: str, payload: Mapping[str, Any], actor: Actor | None) -> Notice:
    action = event.split(".", 1)[1]
    data = _obj(payload, "data")
    issue = _obj(data, "issue")
    item = id_field(issue, "id")
    if item is None:
        raise Unrenderable("`data.issue.id` is missing")
    short_id = str_field(issue, "shortId")
    title_text = str_field(issue, "title") or str_field(issue, "metadata", "title") or "issue"
    title = f"{short_id} {title_text}" if short_id else title_text
    url = str_field(issue, "web_url") or str_field(issue, "permalink")
    project = str_field(issue, "project", "slug") or str_field(issue, "project", "name")
    status = str_field(issue, "status")
    assignee = str_field(issue, "assignedTo", "name") or str_field(issue, "assignedTo", "email")
    line, fields = _facts(
        [
            ("Project", project),
            ("Level", str_field(issue, "level")),
            ("Culprit", str_field(issue, "culprit")),
            ("Events", str_field(issue, "count")),
            ("Assigned to", assignee),
        ]
    )
    link = md.link(f"**{md.text(title)}**", url)
    where = f" in {md.text(project)}" if project else ""
    if action == "created":
        head = f"New issue {link}{where}"
    elif action == "assigned":
        to = str_field(data, "assignee", "name") or str_field(data, "assignee", "email")
        head = f"{_who(actor)} assigned {link}{where}" + (f" to {md.text(to)}" if to else "")
    elif action == "resolved":
        how = RESOLUTIONS.get(str_field(data, "resolution_type") or "")
        head = f"{_who(actor)} resolved {link}{where}" + (f" {how}" if how else "")
    elif action == "unresolved":
        substatus = str_field(issue, "substatus")
        head = f"{_who(actor)} marked {link}{where} unresolved" + (
            f" ({md.text(substatus)})" if substatus else ""
        )
    elif action == "archived":
        until = ARCHIVED_UNTIL.get(str_field(issue, "substatus") or "")
        head = f"{_who(actor)} archived {link}{where}" + (f" {until}" if until else "")
    else:
        head = f"{_who(actor)}: {md.code(event)} on {link}{where}"
    card = Card(
        title=title,
        url=url,
        state=status,
        color=STATUS_COLORS.get(status or "", GRAY),
        fields=fields,
    )
    return Notice(
        event=event,
        text=head + (f"\n{line}" if line else ""),
        card=card,
        actor=actor,
        item=item,
        item_card=card,
        default=event in DEFAULT_EVENTS,
        resolved=ISSUE_RESOLVES.get(action),
        started_at=when(issue.get("firstSeen")),
    )


def _event_notice(event: str, payload: Mapping[str, Any], actor: Actor | None) -> Notice:
    """An error (`error.created`) or the event an issue alert fired on: in its issue's
    thread."""
    data = _obj(payload, "data")
    alert = event == "event_alert.triggered"
    found = _obj(data, "event" if alert else "error")
    item = id_field(found, "issue_id")
    if item is None:
        raise Unrenderable(f"`data.{'event' if alert else 'error'}.issue_id` is missing")
    title = str_field(found, "title") or str_field(found, "message") or "event"
    url = str_field(found, "web_url")
    api_url = str_field(found, "url") or ""
    slug = _EVENT_PROJECT.search(api_url)
    project = slug.group(1) if slug else None
    tags = _tags(found)
    line, fields = _facts(
        [
            ("Project", project),
            ("Level", str_field(found, "level") or tags.get("level")),
            ("Environment", str_field(found, "environment") or tags.get("environment")),
            ("Release", str_field(found, "release") or tags.get("release")),
            ("Culprit", str_field(found, "culprit")),
        ]
    )
    link = md.link(f"**{md.text(title)}**", url)
    where = f" in {md.text(project)}" if project else ""
    if alert:
        rule = str_field(data, "triggered_rule") or str_field(data, "issue_alert", "title")
        head = (
            f"Alert {md.text(rule)} triggered: {link}{where}" if rule else f"Alert: {link}{where}"
        )
        state, color = "triggered", RED
    else:
        head, state, color = f"New error {link}{where}", None, RED
    return Notice(
        event=event,
        text=head + (f"\n{line}" if line else ""),
        card=Card(title=title, url=url, state=state, color=color, fields=fields),
        actor=actor,
        item=item,
        default=event in DEFAULT_EVENTS,
        resolved=False if alert else None,
    )


def _metric_alert_notice(event: str, payload: Mapping[str, Any], actor: Actor | None) -> Notice:
    action = event.split(".", 1)[1]
    data = _obj(payload, "data")
    alert = _obj(data, "metric_alert")
    rule = _obj(alert, "alert_rule")
    # The alert rule is the item, as Sentry's own alerting keys it: a rule that fires again
    # within the hour reopens its thread (each firing is a new incident id).
    rule_id, incident = id_field(rule, "id"), id_field(alert, "id")
    if rule_id is None and incident is None:
        raise Unrenderable("`data.metric_alert.alert_rule.id` and `.id` are missing")
    item = f"metric_alert:rule:{rule_id}" if rule_id else f"metric_alert:{incident}"
    name = str_field(rule, "name") or str_field(alert, "title") or "metric alert"
    title = str_field(data, "description_title") or f"{action.capitalize()}: {name}"
    url = str_field(data, "web_url")
    projects = _strings(alert.get("projects")) or _strings(rule.get("projects"))
    aggregate, query = str_field(rule, "aggregate"), str_field(rule, "query")
    line, fields = _facts(
        [
            ("Rule", name),
            ("Projects", ", ".join(projects)),
            ("Environment", str_field(rule, "environment")),
            ("Metric", " where ".join(p for p in (aggregate, query) if p)),
        ]
    )
    text = f"Metric alert {md.link(f'**{md.text(title)}**', url)}" + (f"\n{line}" if line else "")
    description = str_field(data, "description_text")
    if description:
        text += f"\n\n{md.quote(description)}"
    card = Card(
        title=name,
        url=url,
        state=action,
        color=ALERT_COLORS.get(action, GRAY),
        fields=fields,
    )
    return Notice(
        event=event,
        text=text,
        card=card,
        actor=actor,
        item=item,
        item_card=card,
        default=event in DEFAULT_EVENTS,
        resolved=ALERT_RESOLVES.get(action),
        started_at=when(alert.get("date_started")),
        # When the incident closed, where Sentry has set it by the time it sends.
        ended_at=when(alert.get("date_closed")) if ALERT_RESOLVES.get(action) else None,
    )


def _comment_notice(event: str, payload: Mapping[str, Any], actor: Actor | None) -> Notice:
    data = _obj(payload, "data")
    item = id_field(data, "issue_id")
    if item is None:
        raise Unrenderable("`data.issue_id` is missing")
    verb = {"created": "commented on", "updated": "edited a comment on"}.get(
        event.split(".", 1)[1], "deleted a comment on"
    )
    project = str_field(data, "project_slug")
    where = f" in {md.text(project)}" if project else ""
    head = f"{_who(actor)} {verb} issue {md.text(item)}{where}"
    body = str_field(data, "comment")
    return Notice(
        event=event,
        text=head + (f"\n\n{md.quote(body)}" if body and event != "comment.deleted" else ""),
        card=Card(title=f"Issue {item}", color=GRAY),
        actor=actor,
        item=item,
        default=event in DEFAULT_EVENTS,
    )


def _render(event_header: str | None, payload: Mapping[str, Any]) -> Notice:
    event = _event_name(event_header, payload)
    actor = _actor(payload)
    resource = event.split(".", 1)[0]
    if resource == "issue":
        return _issue_notice(event, payload, actor)
    if resource in ("error", "event_alert"):
        return _event_notice(
            "event_alert.triggered" if resource == "event_alert" else event, payload, actor
        )
    if resource == "metric_alert":
        return _metric_alert_notice(event, payload, actor)
    if resource == "comment":
        return _comment_notice(event, payload, actor)
    if resource == "installation":
        what = "installed" if event.endswith(".created") else "uninstalled"
        return Notice(event=event, text=f"Sentry integration {what}", actor=actor)
    # A resource Sentry added after these (Seer, preprod artifacts): nothing to post,
    # and nothing wrong either.
    return Notice(event=event, text="", quiet=f"`{event}` is not an event notifications render")


NOTIFIER = ServiceNotifier(
    name="sentry",
    events=EVENTS,
    default_events=DEFAULT_EVENTS,
    filters=frozenset({"authors"}),
    render=_render,
)
