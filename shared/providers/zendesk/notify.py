"""Zendesk webhooks as notifications (SPEC §16): a ticket is one thread (its id) that
created starts and solved or closed ends, its comments and status changes in it; every
other event rendered generically.

The gateway's event is Zendesk's `type` (`zen:event-type:ticket.status_changed`), or
`trigger` for a webhook a trigger or automation calls with a body of its own. The names
subscriptions use drop the `zen:event-type:` prefix (`ticket.created`,
`ticket.comment_added`), and a status change is named by where it went:
`ticket.solved`, `ticket.closed`, `ticket.reopened` (from solved or closed back to an open
status), else `ticket.status_changed`.

Payloads as https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/
documents them: `subject` `zen:ticket:<id>`, `detail` the ticket (its `subject`, `status`,
`priority`, `type`, `tags`, the ids of its people, its `created_at`), `event` what changed,
`time` when (a solved or closed ticket was open from its `created_at` to then). They carry
no link to the ticket (the account's subdomain is not in them) and only the ids of people,
but for a comment's author.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
    Actor,
    Notice,
    Unrenderable,
    any_matches,
    card_of,
    settled,
    when,
)
from shared.providers.notify_generic import generic_notice
from shared.providers.reading import ident, obj, strings, text

PREFIX = "zen:event-type:"
ENDED = {"solved": "SOLVED", "closed": "CLOSED"}
OPEN_STATUSES = frozenset({"NEW", "OPEN", "PENDING", "HOLD"})
STATE_COLORS = {
    "new": YELLOW,
    "open": RED,
    "pending": YELLOW,
    "hold": GRAY,
    "solved": GREEN,
    "closed": GREEN,
}
EVENTS: frozenset[str] = frozenset(
    {
        "ticket.created",
        "ticket.comment_added",
        "ticket.status_changed",
        "ticket.solved",
        "ticket.closed",
        "ticket.reopened",
        "ticket.priority_changed",
        "ticket.agent_assignment_changed",
        "ticket.group_assignment_changed",
        "ticket.subject_changed",
        "ticket.tags_changed",
        "ticket.soft_deleted",
        "ticket.permanently_deleted",
        "ticket.marked_as_spam",
    }
)
# Zendesk's other event domains, and the body a trigger or automation sends.
GENERIC_EVENTS: frozenset[str] = frozenset(
    {
        "ticket",
        "user",
        "organization",
        "article",
        "community_post",
        "agent_availability",
        "omnichannel_routing",
        "messaging_ticket",
        "trigger",
    }
)
DEFAULT_EVENTS: tuple[str, ...] = ("ticket.created", "ticket.solved")
_CHANGE_WORDS = {
    "priority_changed": "changed the priority of",
    "agent_assignment_changed": "reassigned",
    "group_assignment_changed": "moved to another group",
    "subject_changed": "changed the subject of",
    "tags_changed": "changed the tags of",
    "soft_deleted": "deleted",
    "permanently_deleted": "permanently deleted",
    "marked_as_spam": "marked as spam",
}


_STATUS_RESOLVES = {"ticket.solved": True, "ticket.closed": True, "ticket.reopened": False}


def _status_event(previous: str | None, current: str | None) -> str:
    if current == "SOLVED":
        return "ticket.solved"
    if current == "CLOSED":
        return "ticket.closed"
    if previous in ("SOLVED", "CLOSED") and current in OPEN_STATUSES:
        return "ticket.reopened"
    return "ticket.status_changed"


def _ticket(event: str, payload: Mapping[str, Any]) -> Notice:
    detail = obj(payload, "detail")
    subject_id = (text(payload, "subject") or "").removeprefix("zen:ticket:")
    ticket_id = ident(detail, "id") or subject_id or None
    if ticket_id is None:
        raise Unrenderable("a ticket event without the ticket's id (`detail.id`, `subject`)")
    title = text(detail, "subject") or ""
    label = f"#{ticket_id} {title}".strip()
    status = (text(detail, "status") or "").lower() or None
    change = obj(payload, "event")
    comment = obj(change, "comment")
    author = obj(comment, "author")
    actor = None
    if text(author, "name"):
        actor = Actor(name=str(text(author, "name")), external_id=ident(author, "id"))
    who = md.text(actor.name) if actor else None
    named = f"ticket {md.text(label)}"
    body = ""
    action = event.removeprefix("ticket.")
    if action == "created":
        line = f"Ticket {md.text(label)} created"
        channel = text(detail, "via", "channel")
        if channel:
            line += f" (via {md.text(channel.replace('_', ' '))})"
        body = md.quote(text(detail, "description"))
        resolved: bool | None = False
    elif action == "comment_added":
        private = comment.get("is_public") is False
        verb = "added an internal note to" if private else "commented on"
        line = f"{who or 'Someone'} {verb} {named}"
        body = md.quote(text(comment, "body"))
        resolved = None
    elif action == "status_changed":
        previous, current = text(change, "previous"), text(change, "current")
        event = _status_event(previous, current)
        moved = f"{md.code((previous or '?').lower())} → {md.code((current or '?').lower())}"
        line = f"Ticket {md.text(label)} {event.removeprefix('ticket.').replace('_', ' ')}: {moved}"
        if event == "ticket.status_changed":
            line = f"Ticket {md.text(label)} status changed: {moved}"
        resolved = {"ticket.solved": True, "ticket.closed": True, "ticket.reopened": False}.get(
            event
        )
        status = (current or "").lower() or status
    else:
        word = _CHANGE_WORDS.get(action, md.text(action.replace("_", " ")))
        line = f"Ticket {md.text(label)}: {word}"
        previous, current = change.get("previous"), change.get("current")
        if isinstance(previous, str | int) and isinstance(current, str | int):
            line += f" ({md.code(str(previous).lower())} → {md.code(str(current).lower())})"
        resolved = True if action in ("soft_deleted", "permanently_deleted") else None
    tags = strings(detail, "tags")
    card = card_of(
        label,
        None,
        status,
        STATE_COLORS.get(status or ""),
        [
            ("Priority", (text(detail, "priority") or "").lower()),
            ("Type", (text(detail, "type") or "").lower()),
            ("Tags", ", ".join(tags)),
        ],
    )
    return Notice(
        event=event,
        text=f"{line}\n\n{body}" if body else line,
        card=card,
        actor=actor,
        item=ticket_id,
        item_card=card,
        default=any_matches(DEFAULT_EVENTS, event),
        resolved=resolved,
        started_at=when(detail.get("created_at")),
        # The event's own time (Zendesk's `time`): when it was solved, closed or deleted.
        ended_at=when(payload.get("time")) if resolved else None,
    )


class ZendeskNotifier:
    name: str = "zendesk"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = GENERIC_EVENTS
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"authors"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        kind = text(payload, "type") or (event_header or "").strip() or "trigger"
        event = kind.removeprefix(PREFIX)
        if event.startswith("ticket.") and event in EVENTS:
            return settled(_ticket(event, payload))
        return generic_notice("Zendesk", event, payload)


NOTIFIER = ZendeskNotifier()
