"""Bitbucket Cloud webhooks as notifications (SPEC §16): pushes, and pull requests as one
thread each (`workspace/repo#id`) that created starts and merged or declined ends, their
approvals and comments in it; any other event rendered generically.

The gateway's event is `X-Event-Key` (`pullrequest:fulfilled`); the names subscriptions
use are its two parts joined by a dot, with Bitbucket's UI words for the two that end a
pull request: `repo.push`, `pullrequest.created|updated|approved|unapproved|
changes_request_created|changes_request_removed`, `pullrequest.merged` (`fulfilled`),
`pullrequest.declined` (`rejected`), `pullrequest.comment_created|comment_updated|
comment_deleted|comment_resolved|comment_reopened`.

Payloads as https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/ documents
them, read defensively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    Actor,
    Card,
    Notice,
    Scene,
    Unrenderable,
    any_matches,
    card_of,
    named_only,
    settled,
)
from shared.providers.reading import first_line, moment, obj, objs, plural, text

PUSH_COMMITS = 20
PURPLE = "#8250df"
STATE_COLORS = {"OPEN": GREEN, "DRAFT": GRAY, "MERGED": PURPLE, "DECLINED": RED, "SUPERSEDED": GRAY}
# Bitbucket's action → the name's part.
PR_ACTIONS = {
    "created": "created",
    "updated": "updated",
    "approved": "approved",
    "unapproved": "unapproved",
    "changes_request_created": "changes_request_created",
    "changes_request_removed": "changes_request_removed",
    "fulfilled": "merged",
    "rejected": "declined",
}
COMMENT_ACTIONS = ("created", "updated", "deleted", "resolved", "reopened")
EVENTS: frozenset[str] = frozenset(
    [
        "repo.push",
        *(f"pullrequest.{a}" for a in PR_ACTIONS.values()),
        *(f"pullrequest.comment_{a}" for a in COMMENT_ACTIONS),
    ]
)
# Bitbucket's other event kinds (`repo:fork`, `repo:commit_status_updated`, `issue:created`).
GENERIC_EVENTS: frozenset[str] = frozenset({"repo", "issue", "project"})
DEFAULT_EVENTS: tuple[str, ...] = (
    "pullrequest.created",
    "pullrequest.merged",
    "pullrequest.declined",
    "repo.push",
)
_PHRASES = {
    "created": "opened",
    "updated": "updated",
    "approved": "approved",
    "unapproved": "removed their approval from",
    "changes_request_created": "requested changes on",
    "changes_request_removed": "withdrew the request for changes on",
    "merged": "merged",
    "declined": "declined",
}


def _actor(user: Any) -> Actor | None:
    login = text(user, "username") or text(user, "nickname")
    name = text(user, "display_name") or login
    if name is None:
        return None
    return Actor(
        name=name,
        login=login,
        avatar_url=text(user, "links", "avatar", "href"),
        external_id=text(user, "uuid") or text(user, "account_id"),
        bot=text(user, "type") == "app_user",
    )


def _card(c: Scene, title: str, url: str | None, state: str | None, *fields: Any) -> Card:
    shown = [("Repository", c.place), *fields, ("By", c.actor.name if c.actor else None)]
    return card_of(title, url, state, STATE_COLORS.get((state or "").upper()), shown)


def _repository(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(`workspace/repo`, its page): the payload's `repository`, else the one the pull
    request's destination or the first pushed ref carries (each names it again), its name
    read from its page's path where `full_name` is missing."""
    changes = objs(payload, "push", "changes")[:1]
    candidates = [
        obj(payload, "repository"),
        obj(payload, "pullrequest", "destination", "repository"),
        *(
            obj(change, "new", "repository") or obj(change, "old", "repository")
            for change in changes
        ),
    ]
    for repository in candidates:
        name = text(repository, "full_name")
        url = text(repository, "links", "html", "href")
        if name is None and md.safe_url(url):
            name = urlsplit(str(url)).path.strip("/") or None
        if name is not None:
            return name, url
    return None, None


def _event(header: str) -> tuple[str, str]:
    kind, _, action = header.strip().lower().partition(":")
    return kind, action


# -- pull requests ---------------------------------------------------------------------------


def _pull_request(c: Scene, action: str) -> Notice:
    pr = obj(c.payload, "pullrequest")
    number = pr.get("id")
    if type(number) is not int:
        raise Unrenderable("a pull request without an `id`")
    title = text(pr, "title") or ""
    label = f"#{number} {title}".strip()
    url = text(pr, "links", "html", "href")
    draft = pr.get("draft") is True
    state = (text(pr, "state") or "OPEN").upper()
    if state not in STATE_COLORS:
        state = "OPEN"  # Atlassian's example says `OPEN|MERGED|DECLINED`
    if state == "OPEN" and draft:
        state = "DRAFT"
    target = text(pr, "destination", "branch", "name")
    source = text(pr, "source", "branch", "name")
    item_card = card_of(
        label,
        url,
        state.lower(),
        STATE_COLORS.get(state),
        [
            ("Repository", c.place),
            ("Source", source),
            ("Destination", target),
            ("Author", text(pr, "author", "display_name")),
            (
                "Reviewers",
                ", ".join(n for r in objs(pr, "reviewers") if (n := text(r, "display_name"))),
            ),
        ],
    )
    named = "pull request " + md.link(md.text(label), url)
    body = ""
    if action.startswith("comment_"):
        comment = obj(c.payload, "comment")
        comment_url = text(comment, "links", "html", "href") or url
        verb = {
            "comment_created": "commented on",
            "comment_updated": "edited a comment on",
            "comment_deleted": "deleted a comment on",
            "comment_resolved": "resolved a comment on",
            "comment_reopened": "reopened a comment on",
        }.get(action, "commented on")
        path = text(comment, "inline", "path")
        where = f"{md.code(path)} in " if path else ""
        named = f"{where}pull request " + md.link(md.text(label), comment_url)
        line = f"{c.who} {verb} {named}{c.where}"
        if action in ("comment_created", "comment_updated"):
            body = md.quote(text(comment, "content", "raw"))
        event = f"pullrequest.{action}"
        resolved = None
    else:
        name = PR_ACTIONS.get(action, action)
        phrase = _PHRASES.get(name, md.text(name.replace("_", " ")))
        line = f"{c.who} {phrase} {named}{c.where}"
        # Which branch goes where, whatever happened to the pull request (Zulip names them
        # on a merge too).
        if source and target:
            line += f" ({md.code(source)} → {md.code(target)})"
        elif target:
            line += f" (→ {md.code(target)})"
        if name == "created":
            body = md.quote(text(pr, "description"))
        elif name == "declined" and text(pr, "reason"):
            body = md.quote(text(pr, "reason"))
        event = f"pullrequest.{name}"
        resolved = {"created": False, "merged": True, "declined": True}.get(name)
    return Notice(
        event=event,
        text=f"{line}\n\n{body}" if body else line,
        card=_card(c, label, url, state.lower(), ("Source", source), ("Destination", target)),
        actor=c.actor,
        item=f"{c.place}#{number}" if c.place else None,
        item_card=item_card,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.place,
        branch=target,
        draft=draft,
        resolved=resolved,
        started_at=moment(pr.get("created_on")),
    )


# -- pushes ----------------------------------------------------------------------------------


def _commit_line(commit: Mapping[str, Any]) -> str:
    sha = text(commit, "hash") or ""
    short = md.link(md.code(sha[:7] or "?"), text(commit, "links", "html", "href"))
    message = md.text(first_line(text(commit, "message")), limit=100)
    author = text(commit, "author", "user", "display_name") or text(commit, "author", "raw")
    by = f" — {md.text(author)}" if author else ""
    return f"- {short} {message}{by}".rstrip()


def _change_text(c: Scene, change: Mapping[str, Any]) -> tuple[str, str | None]:
    """One ref's change as text, and its branch."""
    new, old = obj(change, "new"), obj(change, "old")
    ref = new or old
    kind = text(ref, "type") or "branch"
    name = text(ref, "name") or "?"
    branch = name if kind in ("branch", "named_branch") else None
    kind_word = "branch" if branch is not None else md.text(kind)
    url = text(new, "links", "html", "href")
    if change.get("closed") is True or not new:
        return f"{c.who} deleted {kind_word} {md.code(name)}{c.where}", branch
    named = md.link(md.code(name), url)
    commits = objs(change, "commits")
    if change.get("created") is True and not commits:
        return f"{c.who} created {kind_word} {named}{c.where}", branch
    verb = "force-pushed" if change.get("forced") is True else "pushed"
    new_ref = f" new {kind_word}" if change.get("created") is True else ""
    what = f" {plural(len(commits), 'commit')} to{new_ref}" if commits else f" to{new_ref}"
    line = f"{c.who} {verb}{what} {named}{c.where}"
    compare = text(change, "links", "html", "href")
    if compare and compare != url:
        line += f" ({md.link('compare', compare)})"
    lines = [_commit_line(commit) for commit in commits[:PUSH_COMMITS]]
    if len(commits) > PUSH_COMMITS:
        lines.append(f"- and {plural(len(commits) - PUSH_COMMITS, 'more commit')}")
    elif change.get("truncated") is True:
        lines.append("- and more commits")
    if lines:
        line += "\n\n" + "\n".join(lines)
    return line, branch


def _push(c: Scene) -> Notice:
    changes = objs(c.payload, "push", "changes")
    if not changes:
        raise Unrenderable("a push without `push.changes`")
    rendered = [_change_text(c, change) for change in changes[:10]]
    branches = {branch for _, branch in rendered}
    branch = branches.pop() if len(branches) == 1 else None
    main = text(c.payload, "repository", "mainbranch", "name")
    deleted = all(ch.get("closed") is True or not obj(ch, "new") for ch in changes)
    # The push's own page (its commits, as Zulip links "pushed"), else the branch's, else
    # the repository's.
    first = changes[0]
    link = (
        text(first, "links", "html", "href")
        or text(first, "new", "links", "html", "href")
        or c.place_url
    )
    return Notice(
        event="repo.push",
        text="\n\n".join(line for line, _ in rendered),
        card=_card(c, f"Push to {branch or 'several refs'}", link, "pushed", ("Branch", branch)),
        actor=c.actor,
        default=branch is not None and branch == main and not deleted,
        repository=c.place,
        branch=branch,
    )


def _generic(c: Scene) -> Notice:
    subject = obj(c.payload, c.event.split(".", 1)[0])
    title = (
        text(subject, "title") or text(subject, "name") or text(c.payload, "commit_status", "name")
    )
    url = (
        text(subject, "links", "html", "href")
        or text(c.payload, "commit_status", "url")
        or c.place_url
    )
    return Notice(
        event=c.event,
        text=named_only(c, title, url),
        card=_card(c, title or c.event, url, text(c.payload, "commit_status", "state")),
        actor=c.actor,
        repository=c.place,
    )


class BitbucketNotifier:
    name: str = "bitbucket"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = GENERIC_EVENTS
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"repositories", "branches", "authors", "drafts"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        kind, action = _event(event_header or "")
        if not kind or not action:
            raise Unrenderable("no X-Event-Key (`repo:push`, `pullrequest:created`)")
        place, place_url = _repository(payload)
        c = Scene(
            event=f"{kind}.{action}",
            payload=payload,
            actor=_actor(payload.get("actor")),
            place=place,
            place_url=place_url,
        )
        if kind == "pullrequest" and (action in PR_ACTIONS or action.startswith("comment_")):
            notice = _pull_request(c, action)
        elif c.event == "repo.push":
            notice = _push(c)
        else:
            notice = _generic(c)
        return settled(notice)


NOTIFIER = BitbucketNotifier()
