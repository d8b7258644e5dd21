"""Jira webhooks as notifications: SPEC §12's event names, and the text, card and facts of
issues (created, updated with their changelog, deleted), comments, worklogs and sprints.

Names come from `webhookEvent`: `jira:issue_created` → `issue.created`, `comment_updated`
→ `comment.updated`, `sprint_started` → `sprint.started`. An issue's thread key is its
key (`BUG-15`). Jira Cloud sends rich text (descriptions, comments) as wiki markup in most
webhooks and as ADF in some; both are read (shared.providers.jira.markup).

Comments come two ways. Jira Cloud sends `comment_created|updated|deleted`, and beside it
a `jira:issue_updated` whose `issue_event_type_name` says what happened to the comment
(`issue_commented`, `issue_comment_edited`, `issue_comment_deleted`) and which carries
the same comment (Atlassian: the `comment_*` webhooks replace the comment object of the
`jira:issue_*` ones). Jira Server and Data Center send that `jira:issue_updated`, and older
ones send it with a `comment` but no type name (or another one). Each is rendered as the
comment event it tells of (`comment.created`, ...), and both name the same `occurrence`
(the comment's id, what happened, its `updated` time), from which the envelope ids derive:
a subscription that takes both gets one message. A type-named update without a comment
(what Cloud sends once the object is removed) is quiet for a created or edited comment
(its `comment_*` event says it) and rendered for a deleted one (Jira's own deletion sends
none: the issue only).

An update that changed fields and carries a comment (a transition with a comment) quotes
the comment under its changes. Payloads are read defensively: a field of the wrong type
counts as absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from shared.providers import commonmark as md
from shared.providers.ids import field_at
from shared.providers.jira.markup import rich_text
from shared.providers.notify import Actor, Card, Field, Notice, Unrenderable, any_matches

# Changelog entries listed in an update's message; the rest are counted.
CHANGES_SHOWN = 10
# Fields whose values are long text: an update says they changed, not what they say.
LONG_FIELDS = {"description", "environment", "comment"}
# Changelog field ids that read better under another name.
FIELD_NAMES = {"issuetype": "Type", "fixversion": "Fix version", "timespent": "Time spent"}
# The `issue_event_type_name` of an issue update raised by a comment, and what it did.
COMMENT_TYPES = {
    "issue_commented": "created",
    "issue_comment_edited": "updated",
    "issue_comment_deleted": "deleted",
}
# Jira's own bookkeeping on issue updates raised by a worklog: the worklog event says it.
WORKLOG_TYPES = {"issue_work_logged", "issue_worklog_updated", "issue_worklog_deleted"}

WEBHOOK_EVENTS = {
    "jira:issue_created": "issue.created",
    "jira:issue_updated": "issue.updated",
    "jira:issue_deleted": "issue.deleted",
    "comment_created": "comment.created",
    "comment_updated": "comment.updated",
    "comment_deleted": "comment.deleted",
    "worklog_created": "worklog.created",
    "worklog_updated": "worklog.updated",
    "worklog_deleted": "worklog.deleted",
    "sprint_started": "sprint.started",
    "sprint_closed": "sprint.closed",
}
EVENTS: frozenset[str] = frozenset(WEBHOOK_EVENTS.values())
# SPEC §12: issues created, status changes (`issue.updated` whose changelog has `status`),
# comments created.
DEFAULT_EVENTS: tuple[str, ...] = ("issue.created", "issue.updated", "comment.created")

# Jira's status categories (`statusCategory.key`) and Atlassian's colours for them.
CATEGORY_COLORS = {"new": "#42526e", "indeterminate": "#0052cc", "done": "#00875a"}

_REST = re.compile(r"^(https?://.+?)/rest/")


def _obj(value: Any, *path: str) -> dict[str, Any]:
    found = field_at(value, *path)
    return found if isinstance(found, dict) else {}


def _str(value: Any, *path: str) -> str | None:
    found = field_at(value, *path)
    if type(found) is int:
        return str(found)
    return found if isinstance(found, str) and found.strip() else None


def _named(value: Any) -> str | None:
    """A Jira named thing: `{"name": ...}` or `{"displayName": ...}`, or the string itself
    (Atlassian's Server/Data Center example gives `"priority": "Minor"`)."""
    if isinstance(value, str):
        return value.strip() or None
    return _str(value, "displayName") or _str(value, "name") or _str(value, "value")


def _base(*selves: str | None) -> str | None:
    """The site's base URL (`https://example.atlassian.net`), from an entity's `self`."""
    for url in selves:
        match = _REST.match(url or "")
        if match:
            return match.group(1)
    return None


def _actor(user: Any) -> Actor | None:
    name = _str(user, "displayName") or _str(user, "name")
    if name is None:
        return None
    return Actor(
        name=name,
        login=_str(user, "accountId") or _str(user, "name") or _str(user, "key"),
        avatar_url=_str(user, "avatarUrls", "48x48"),
        external_id=_str(user, "accountId") or _str(user, "key") or _str(user, "name"),
        bot=_str(user, "accountType") == "app",
    )


def _who(actor: Actor | None) -> str:
    return md.text(actor.name) if actor else "Someone"


def _author(entity: dict[str, Any], action: str) -> Actor | None:
    """Who wrote a comment or worklog: its `updateAuthor` for an update, else its author."""
    author = entity.get("updateAuthor") if action == "updated" else entity.get("author")
    return _actor(author) or _actor(entity.get("author"))


class _Issue:
    """The issue as the payload shows it now."""

    def __init__(self, payload: Mapping[str, Any], required: bool) -> None:
        issue = _obj(payload, "issue")
        fields = _obj(issue, "fields")
        key = _str(issue, "key")
        if key is None and required:
            raise Unrenderable("no `issue.key`")
        self.key = key
        self.id = _str(issue, "id")
        self.summary = _str(fields, "summary") or ""
        self.status = _named(fields.get("status"))
        self.category = _str(fields, "status", "statusCategory", "key")
        self.assignee = _named(fields.get("assignee"))
        self.priority = _named(fields.get("priority"))
        self.type = _named(fields.get("issuetype"))
        labels = fields.get("labels")
        self.labels = tuple(
            label
            for label in (labels if isinstance(labels, list) else [])
            if isinstance(label, str)
        )
        self.description = fields.get("description")
        project = _str(fields, "project", "key")
        if project is None and key and "-" in key:
            project = key.rsplit("-", 1)[0]
        self.project = project
        self.project_name = _str(fields, "project", "name")
        self.base = _base(_str(issue, "self"))

    def url(self, base: str | None = None) -> str | None:
        base = self.base or base
        if base is None or self.key is None:
            return None
        return f"{base}/browse/{quote(self.key, safe='')}"

    @property
    def label(self) -> str:
        return f"{self.key or 'issue ' + (self.id or '?')} {self.summary}".strip()

    def ref(self, url: str | None = None) -> str:
        return md.link(md.text(self.label), url or self.url())

    def card(self, base: str | None = None) -> Card | None:
        if self.key is None:
            return None
        fields = [
            ("Status", self.status),
            ("Assignee", self.assignee or "Unassigned"),
            ("Priority", self.priority),
            ("Type", self.type),
            ("Project", self.project_name or self.project),
            ("Labels", ", ".join(self.labels)),
        ]
        return Card(
            title=md.line(self.label),
            url=md.safe_url(self.url(base)),
            state=self.status,
            color=CATEGORY_COLORS.get(self.category or ""),
            fields=tuple(Field(name, md.line(value)) for name, value in fields if value),
        )


def _change_lines(items: list[dict[str, Any]]) -> list[str]:
    lines = []
    for item in items[:CHANGES_SHOWN]:
        name = _str(item, "field") or _str(item, "fieldId") or "a field"
        title = md.text(FIELD_NAMES.get(name.lower(), name[:1].upper() + name[1:]), limit=60)
        if name.lower() in LONG_FIELDS:
            lines.append(f"- {title} changed")
            continue
        before = _str(item, "fromString") or _str(item, "from")
        after = _str(item, "toString") or _str(item, "to")
        if name.lower() == "assignee":
            before, after = before or "Unassigned", after or "Unassigned"
        shown_before = md.text(before, limit=80) if before else "none"
        shown_after = md.text(after, limit=80) if after else "none"
        lines.append(f"- {title}: {shown_before} → {shown_after}")
    if len(items) > CHANGES_SHOWN:
        lines.append(f"- and {len(items) - CHANGES_SHOWN} more")
    return lines


def _issue_notice(
    event: str,
    issue: _Issue,
    actor: Actor | None,
    text: str,
    body: str,
    *,
    url: str | None,
    state: str | None,
    detail: tuple[str, str | None],
    base: str | None = None,
    color: str | None = None,
    quiet: str | None = None,
    default: bool | None = None,
    changed: frozenset[str] = frozenset(),
    occurrence: str | None = None,
) -> Notice:
    """An issue, comment or worklog event: `text` said in the issue's project, then `body`;
    a card of the event (`detail`, then who); threaded under the issue, whose card `base`
    completes. `default` is the documented defaults' unless given."""
    if issue.project:
        text += f" in {md.text(issue.project)}"
    if body:
        text += "\n\n" + body
    return Notice(
        event=event,
        text=text,
        card=Card(
            title=md.line(issue.label),
            url=md.safe_url(url),
            state=state,
            color=color,
            fields=tuple(
                Field(name, md.line(value))
                for name, value in (detail, ("By", actor and actor.name))
                if value
            ),
        ),
        actor=actor,
        item=issue.key,
        item_card=issue.card(base),
        quiet=quiet,
        default=any_matches(DEFAULT_EVENTS, event) if default is None else default,
        project=issue.project,
        labels=issue.labels,
        changed=changed,
        occurrence=occurrence,
    )


def _issue_event(event: str, payload: Mapping[str, Any]) -> Notice:
    issue = _Issue(payload, required=True)
    actor = _actor(payload.get("user"))
    who = _who(actor)
    changelog = field_at(payload, "changelog", "items")
    items = [i for i in changelog if isinstance(i, dict)] if isinstance(changelog, list) else []
    changed = frozenset((_str(i, "field") or _str(i, "fieldId") or "").lower() for i in items) - {
        ""
    }
    comment = _obj(payload, "comment")
    quiet = None
    body = ""
    if event == "issue.created":
        kind = f"{md.text(issue.type)} " if issue.type else "issue "
        text = f"{who} created {kind}{issue.ref()}"
        body = md.quote(rich_text(issue.description))
    elif event == "issue.deleted":
        text = f"{who} deleted {issue.ref()}"
    else:
        echo = _str(payload, "issue_event_type_name")
        if not items:
            told = _told_comment(echo, comment)
            if told is not None:
                return _comment_notice(told, payload, comment)
        status = next((i for i in items if (_str(i, "field") or "").lower() == "status"), None)
        if status is not None:
            before = _str(status, "fromString") or "?"
            after = _str(status, "toString") or issue.status or "?"
            text = f"{who} moved {issue.ref()} from {md.text(before)} to {md.text(after)}"
            rest = [i for i in items if i is not status]
        else:
            text = f"{who} updated {issue.ref()}"
            rest = items
        body = "\n".join(_change_lines(rest))
        said = md.quote(rich_text(comment.get("body"))) if items else ""
        if said:
            body = f"{body}\n\n{said}" if body else said
        if not items and echo in COMMENT_TYPES:
            quiet = f"a `{echo}` update without the comment: the comment event says it"
        elif not items and echo in WORKLOG_TYPES:
            quiet = f"a `{echo}` update: the worklog event says it"
        elif not items:
            quiet = "an update that changed nothing"
    # SPEC §12's default for updates is a status change only.
    default = "status" in changed if event == "issue.updated" else event == "issue.created"
    return _issue_notice(
        event,
        issue,
        actor,
        text,
        body,
        url=issue.url(),
        state=issue.status,
        detail=("Project", issue.project),
        color=CATEGORY_COLORS.get(issue.category or ""),
        quiet=quiet,
        default=default,
        changed=changed,
    )


def _told_comment(echo: str | None, comment: dict[str, Any]) -> str | None:
    """The comment event an issue update that changed no field tells of (`comment.created`,
    ...), if it tells of one: by its type name, or (an older Jira, with no type name or
    another one) by the comment it carries, an edit when the comment was updated after it
    was written."""
    action = COMMENT_TYPES.get(echo or "")
    if action is not None:
        # Created or edited: only with the comment to show. Deleted: Jira sends no comment.
        return f"comment.{action}" if comment or action == "deleted" else None
    if comment and echo not in WORKLOG_TYPES:
        created, updated = _str(comment, "created"), _str(comment, "updated")
        edited = created is not None and updated is not None and created != updated
        return "comment.updated" if edited else "comment.created"
    return None


def _comment_event(event: str, payload: Mapping[str, Any]) -> Notice:
    comment = _obj(payload, "comment")
    if not comment:
        raise Unrenderable("no `comment`")
    return _comment_notice(event, payload, comment)


def _comment_notice(event: str, payload: Mapping[str, Any], comment: dict[str, Any]) -> Notice:
    """A comment created, edited or deleted, from a `comment_*` event or from the issue
    update that tells of it (whose comment may be absent for a deletion)."""
    issue = _Issue(payload, required=False)
    action = event.split(".")[1]
    actor = _author(comment, action) or _actor(payload.get("user"))
    base = issue.base or _base(_str(comment, "self"))
    url = issue.url(base)
    comment_id = _str(comment, "id")
    if url and comment_id and action != "deleted":
        url += f"?focusedCommentId={quote(comment_id, safe='')}"
    verb = {
        "created": "commented on",
        "updated": "edited a comment on",
        "deleted": "deleted a comment on",
    }[action]
    body = md.quote(rich_text(comment.get("body"))) if action != "deleted" else ""
    # Every delivery about this comment's change names it alike (see the module's docstring).
    occurrence = None
    if comment_id is not None:
        occurrence = f"comment {comment_id} {action} {_str(comment, 'updated') or ''}".strip()
    return _issue_notice(
        event,
        issue,
        actor,
        f"{_who(actor)} {verb} {issue.ref(url)}",
        body,
        url=url,
        state="commented",
        detail=("Project", issue.project),
        base=base,
        occurrence=occurrence,
    )


def _worklog_event(event: str, payload: Mapping[str, Any]) -> Notice:
    worklog = _obj(payload, "worklog")
    if not worklog:
        raise Unrenderable("no `worklog`")
    issue = _Issue(payload, required=False)
    if issue.key is None and issue.id is None:
        # Jira's worklog events name the issue by id only.
        issue.id = _str(worklog, "issueId")
    action = event.split(".")[1]
    actor = _author(worklog, action)
    who = _who(actor)
    spent = _str(worklog, "timeSpent")
    amount = f" {md.text(spent)}" if spent else ""
    base = issue.base or _base(_str(worklog, "self"))
    target = issue.ref(issue.url(base))
    if action == "created":
        text = f"{who} logged{amount or ' work'} on {target}"
    elif action == "updated":
        text = f"{who} changed a worklog{amount and ' to' + amount} on {target}"
    else:
        text = f"{who} deleted a worklog on {target}"
    note = md.quote(rich_text(worklog.get("comment"))) if action != "deleted" else ""
    return _issue_notice(
        event,
        issue,
        actor,
        text,
        note,
        url=issue.url(base),
        state=action,
        detail=("Time spent", spent),
        base=base,
    )


def _day(value: str | None) -> str | None:
    return value[:10] if value and re.match(r"\d{4}-\d{2}-\d{2}", value) else None


def _sprint_event(event: str, payload: Mapping[str, Any]) -> Notice:
    sprint = _obj(payload, "sprint")
    name = _str(sprint, "name")
    if name is None:
        raise Unrenderable("no `sprint.name`")
    base = _base(_str(sprint, "self"))
    board = _str(sprint, "originBoardId")
    url = f"{base}/secure/RapidBoard.jspa?rapidView={quote(board)}" if base and board else None
    start, end = _day(_str(sprint, "startDate")), _day(_str(sprint, "endDate"))
    done = _day(_str(sprint, "completeDate"))
    named = md.link(md.text(name), url)
    if event == "sprint.started":
        text = f"Sprint {named} started"
        if start and end:
            text += f" ({start} → {end})"
    else:
        text = f"Sprint {named} closed"
        if done:
            text += f" on {done}"
    goal = md.quote(_str(sprint, "goal"))
    if goal:
        text += "\n\n" + goal
    return Notice(
        event=event,
        text=text,
        card=Card(
            title=md.line(name),
            url=md.safe_url(url),
            state=_str(sprint, "state") or event.split(".")[1],
            fields=tuple(
                Field(n, v) for n, v in (("Start", start), ("End", end), ("Completed", done)) if v
            ),
        ),
        actor=_actor(payload.get("user")),
        default=any_matches(DEFAULT_EVENTS, event),
    )


class JiraNotifier:
    name: str = "jira"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = frozenset()
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"projects", "authors"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        webhook_event = payload.get("webhookEvent", event_header)
        if not isinstance(webhook_event, str) or not webhook_event.strip():
            raise Unrenderable("`webhookEvent` is missing or not a string")
        event = WEBHOOK_EVENTS.get(webhook_event)
        if event is None:
            # A Jira webhook registered for more than notifications render (versions,
            # projects, users, …): nothing to post, and nothing wrong either.
            return Notice(
                event=webhook_event[:80],
                text="",
                quiet=f"`{webhook_event[:80]}` is not an event notifications render",
            )
        kind = event.split(".")[0]
        if kind == "issue":
            return _issue_event(event, payload)
        if kind == "comment":
            return _comment_event(event, payload)
        if kind == "worklog":
            return _worklog_event(event, payload)
        return _sprint_event(event, payload)


NOTIFIER = JiraNotifier()
