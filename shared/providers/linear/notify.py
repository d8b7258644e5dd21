"""Linear webhooks as notifications (SPEC §16): an issue is one thread (its identifier,
`ENG-123`) that created starts and completed or canceled ends, its comments in it; any
other type rendered generically.

The gateway's event is `type.action` (`Issue.update`); the names subscriptions use are the
type in lower case with the action in the past tense: `issue.created|updated|removed`,
`comment.created|updated|removed`, and, for an update that moved the issue into a
completed or canceled state (`updatedFrom` names `stateId`, `data.state.type` says where it
is now), `issue.completed` and `issue.canceled`. An update whose `updatedFrom` names
nothing a reader sees (only `updatedAt`, a sort order) is quiet.

Payloads as https://linear.app/developers/webhooks describes them (`action`, `type`,
`data`, `url`, `updatedFrom`, `actor`), read defensively.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
    Actor,
    Card,
    Field,
    Notice,
    Scene,
    Unrenderable,
    any_matches,
    card_of,
    named_only,
    settled,
)
from shared.providers.reading import moment, names, obj, text

ACTIONS = {"create": "created", "update": "updated", "remove": "removed"}
# Linear's workflow state types, and their colours.
STATE_COLORS = {
    "triage": GRAY,
    "backlog": GRAY,
    "unstarted": GRAY,
    "started": YELLOW,
    "completed": GREEN,
    "canceled": RED,
}
ENDED = frozenset({"completed", "canceled"})
EVENTS: frozenset[str] = frozenset(
    [
        *(f"issue.{a}" for a in ACTIONS.values()),
        "issue.completed",
        "issue.canceled",
        *(f"comment.{a}" for a in ACTIONS.values()),
    ]
)
# Linear's other webhook types (`IssueLabel`, `Reaction`, `Project`, `Cycle`, …).
GENERIC_EVENTS: frozenset[str] = frozenset(
    {
        "issuelabel",
        "reaction",
        "attachment",
        "project",
        "projectupdate",
        "cycle",
        "document",
        "initiative",
        "customer",
        "customerneed",
        "issuesla",
        "user",
        "auditentry",
    }
)
DEFAULT_EVENTS: tuple[str, ...] = (
    "issue.created",
    "issue.completed",
    "issue.canceled",
    "comment.created",
)
# What an update may change that a reader sees (`updatedFrom`'s keys), and how it is named.
VISIBLE = {
    "title": "title",
    "description": "description",
    "stateId": "status",
    "priority": "priority",
    "assigneeId": "assignee",
    "labelIds": "labels",
    "estimate": "estimate",
    "dueDate": "due date",
    "projectId": "project",
    "cycleId": "cycle",
    "parentId": "parent",
    "teamId": "team",
}
_IDENTIFIER = re.compile(r"/issue/([A-Za-z][A-Za-z0-9_]*-\d+)")


def _actor(payload: Mapping[str, Any], data: Mapping[str, Any]) -> Actor | None:
    """Linear's `actor` (who did it: a user, an OAuth app, an integration), else a
    comment's `user`."""
    who = obj(payload, "actor") or obj(data, "user")
    name = text(who, "name")
    if name is None:
        return None
    return Actor(
        name=name,
        login=text(who, "email") or name,
        avatar_url=text(who, "avatarUrl"),
        external_id=text(who, "id"),
        bot=(text(who, "type") or "user") != "user",
    )


def _identifier(issue: Mapping[str, Any], url: str | None) -> str | None:
    found = text(issue, "identifier")
    if found:
        return found
    key, number = text(issue, "team", "key"), issue.get("number")
    if key and type(number) is int:
        return f"{key}-{number}"
    match = _IDENTIFIER.search(url or "")
    return match.group(1) if match else None


def _issue_card(issue: Mapping[str, Any], identifier: str, url: str | None) -> Card:
    state_type = text(issue, "state", "type")
    return card_of(
        f"{identifier} {text(issue, 'title') or ''}".strip(),
        url,
        text(issue, "state", "name") or state_type,
        STATE_COLORS.get(state_type or ""),
        [
            ("Team", text(issue, "team", "name") or text(issue, "team", "key")),
            ("Priority", text(issue, "priorityLabel")),
            ("Assignee", text(issue, "assignee", "name")),
            ("Labels", ", ".join(names(issue, "labels"))),
        ],
    )


def _standing(issue: Mapping[str, Any]) -> str:
    """Where the issue stands, the facts Zulip's rendering of the same payloads lists:
    `Status: In Progress · Priority: Urgent · Assignee: Ada`, each as far as the payload
    says (priority 0, Linear's "No priority", left out: it says nothing)."""
    priority = text(issue, "priorityLabel")
    if issue.get("priority") == 0:
        priority = None
    facts = [
        ("Status", text(issue, "state", "name") or text(issue, "state", "type")),
        ("Priority", priority),
        ("Assignee", text(issue, "assignee", "name")),
    ]
    return " · ".join(f"{name}: {md.text(value)}" for name, value in facts if value)


def _did(c: Scene, verb: str, named: str) -> str:
    """`Ada created [ENG-1 …](…) in Team`; without an actor (older payloads have none)
    `Issue [ENG-1 …](…) created in Team`. `verb` may place the item with `{}`."""
    if "{}" not in verb:
        verb += " {}"
    if c.actor is not None:
        return f"{c.who} {verb.format(named)}{c.where}"
    passive = verb.format("").replace("  ", " ").strip()
    return f"Issue {named} {passive}{c.where}"


def _issue(c: Scene, action: str) -> Notice:
    data = obj(c.payload, "data")
    url = text(c.payload, "url") or text(data, "url")
    identifier = _identifier(data, url)
    if identifier is None:
        raise Unrenderable(
            "an issue without an identifier (`data.identifier`, team key and number)"
        )
    title = text(data, "title") or ""
    label = f"{identifier} {title}".strip()
    state_type = text(data, "state", "type")
    state_name = text(data, "state", "name") or state_type
    changed_from = obj(c.payload, "updatedFrom")
    changed = frozenset(VISIBLE[k] for k in changed_from if k in VISIBLE)
    name = ACTIONS.get(action, action)
    if name == "updated" and "status" in changed and state_type in ENDED:
        name = state_type
    quiet, body = None, ""
    standing = _standing(data)
    named = md.link(md.text(label), None if name == "removed" else url)
    if name == "created":
        line = _did(c, "created", named)
        body = "\n\n".join(part for part in (md.quote(text(data, "description")), standing) if part)
    elif name in ENDED:
        line = _did(c, f"moved {{}} to {md.code(state_name or name)}", named)
    elif name == "updated":
        line = _did(c, "updated", named)
        lines = []
        if "title" in changed and isinstance(changed_from.get("title"), str):
            lines.append(f"- Title: {md.text(changed_from['title'])} → {md.text(title)}")
        if "status" in changed and state_name:
            lines.append(f"- Status: {md.text(state_name)}")
        if "priority" in changed and text(data, "priorityLabel"):
            lines.append(f"- Priority: {md.text(text(data, 'priorityLabel'))}")
        if "assignee" in changed:
            lines.append(f"- Assignee: {md.text(text(data, 'assignee', 'name') or 'nobody')}")
        if "labels" in changed:
            lines.append(f"- Labels: {md.text(', '.join(names(data, 'labels')) or 'none')}")
        shown = {"title", "status", "priority", "assignee", "labels"}
        rest = sorted(changed - shown)
        if rest:
            lines.append(f"- Also changed: {md.text(', '.join(rest))}")
        body = "\n\n".join(part for part in ("\n".join(lines), standing) if part)
        if not changed:
            quiet = "an update that changed nothing shown"
    else:
        line = _did(c, md.text(name), named)
    event = f"issue.{name}"
    item_card = _issue_card(data, identifier, url)
    card = item_card
    if name == "updated" and changed:
        # The update's own card says what it changed; the root's shows the issue as it is.
        card = replace(
            item_card, fields=(*item_card.fields, Field("Changed", ", ".join(sorted(changed))))
        )
    return Notice(
        event=event,
        text=f"{line}\n\n{body}" if body else line,
        card=card,
        actor=c.actor,
        item=identifier,
        item_card=item_card,
        quiet=quiet,
        default=any_matches(DEFAULT_EVENTS, event),
        project=text(data, "team", "key") or identifier.split("-", 1)[0],
        labels=names(data, "labels"),
        changed=changed,
        resolved={"created": False, "completed": True, "canceled": True}.get(name),
        started_at=moment(data.get("createdAt")),
    )


def _comment(c: Scene, action: str) -> Notice:
    data = obj(c.payload, "data")
    url = text(c.payload, "url") or text(data, "url")
    issue = obj(data, "issue")
    identifier = _identifier(issue, url)
    label = f"{identifier or 'issue'} {text(issue, 'title') or ''}".strip()
    name = ACTIONS.get(action, action)
    verb = {
        "created": "commented on",
        "updated": "edited a comment on",
        "removed": "deleted a comment on",
    }.get(name, f"{md.text(name)} a comment on")
    line = f"{c.who} {verb} {md.link(md.text(label), url)}{c.where}"
    body = md.quote(text(data, "body")) if name != "removed" else ""
    event = f"comment.{name}"
    return Notice(
        event=event,
        text=f"{line}\n\n{body}" if body else line,
        card=card_of(label, url, "commented", None, [("By", c.actor.name if c.actor else None)]),
        actor=c.actor,
        item=identifier,
        default=any_matches(DEFAULT_EVENTS, event),
        project=identifier.split("-", 1)[0] if identifier else None,
    )


def _generic(c: Scene, action: str) -> Notice:
    data = obj(c.payload, "data")
    subject = text(data, "title") or text(data, "name") or text(data, "body")
    url = text(c.payload, "url") or text(data, "url")
    return Notice(
        event=c.event,
        text=named_only(c, subject, url),
        card=card_of(subject or c.event, url, ACTIONS.get(action, action), None),
        actor=c.actor,
    )


class LinearNotifier:
    name: str = "linear"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = GENERIC_EVENTS
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"projects", "labels", "authors"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        kind = (text(payload, "type") or (event_header or "").partition(".")[0]).strip().lower()
        action = (text(payload, "action") or (event_header or "").partition(".")[2]).strip().lower()
        if not kind or not action:
            raise Unrenderable("the webhook names no `type` and `action`")
        data = obj(payload, "data")
        team = obj(data, "team")
        c = Scene(
            event=f"{kind}.{ACTIONS.get(action, action)}",
            payload=payload,
            actor=_actor(payload, data),
            place=text(team, "name") or text(team, "key"),
            place_url=None,
        )
        if kind == "issue":
            notice = _issue(c, action)
        elif kind == "comment":
            notice = _comment(c, action)
        else:
            notice = _generic(c, action)
        return settled(notice)


NOTIFIER = LinearNotifier()
