"""GitHub webhooks as notifications: SPEC §12's event names, and the text, card and facts
of pushes, pull requests, issues, their comments and reviews, releases, deployments, check
and workflow runs, branches and tags; any other event rendered generically.

Event names are `<X-GitHub-Event>.<action>` (`push`, `create` and `delete` have no
action), with the derived names where one action means two things: `pull_request.merged`
(closed with `merged: true`; `pull_request.closed` is then closed without merge),
`deployment_status.<state>`, `check_run.<conclusion>` and `workflow_run.<conclusion>`
when completed.

Payloads are read defensively: a field of the wrong type counts as absent. A payload
without what names its subject (a push's `ref`, an issue's number) is `Unrenderable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from shared.providers import commonmark as md
from shared.providers.ids import field_at
from shared.providers.notify import Actor, Card, Field, Notice, Unrenderable, any_matches

# Commits listed in a push's message (SPEC §12); the rest are counted.
PUSH_COMMITS = 20
MERGE_QUEUE_PREFIX = "gh-readonly-queue/"
ZERO_SHA = "0" * 40

GREEN, PURPLE, RED, GRAY, YELLOW, BLUE = (
    "#1f883d",
    "#8250df",
    "#cf222e",
    "#6e7781",
    "#bf8700",
    "#0969da",
)
STATE_COLORS = {
    "open": GREEN,
    "merged": PURPLE,
    "closed": RED,
    "draft": GRAY,
    "success": GREEN,
    "failure": RED,
    "error": RED,
    "timed_out": RED,
    "startup_failure": RED,
    "action_required": YELLOW,
    "cancelled": GRAY,
    "skipped": GRAY,
    "stale": GRAY,
    "neutral": GRAY,
    "inactive": GRAY,
    "pending": YELLOW,
    "queued": YELLOW,
    "in_progress": YELLOW,
}

PULL_REQUEST_ACTIONS = [
    "assigned",
    "auto_merge_disabled",
    "auto_merge_enabled",
    "closed",
    "converted_to_draft",
    "demilestoned",
    "dequeued",
    "edited",
    "enqueued",
    "labeled",
    "locked",
    "milestoned",
    "opened",
    "ready_for_review",
    "reopened",
    "review_request_removed",
    "review_requested",
    "synchronize",
    "unassigned",
    "unlabeled",
    "unlocked",
]
ISSUES_ACTIONS = [
    "assigned",
    "closed",
    "deleted",
    "demilestoned",
    "edited",
    "labeled",
    "locked",
    "milestoned",
    "opened",
    "pinned",
    "reopened",
    "transferred",
    "typed",
    "unassigned",
    "unlabeled",
    "unlocked",
    "unpinned",
    "untyped",
]
COMMENT_ACTIONS = ("created", "edited", "deleted")
REVIEW_ACTIONS = ("submitted", "edited", "dismissed")
RELEASE_ACTIONS = (
    "created",
    "deleted",
    "edited",
    "prereleased",
    "published",
    "released",
    "unpublished",
)
DEPLOYMENT_STATES = (
    "error",
    "failure",
    "inactive",
    "in_progress",
    "pending",
    "queued",
    "success",
)
CHECK_CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "skipped",
    "stale",
    "success",
    "timed_out",
)
WORKFLOW_CONCLUSIONS = (*CHECK_CONCLUSIONS, "startup_failure")

EVENTS: frozenset[str] = frozenset(
    [
        "push",
        "create",
        "delete",
        "deployment.created",
        *(f"pull_request.{a}" for a in (*PULL_REQUEST_ACTIONS, "merged")),
        *(f"issues.{a}" for a in ISSUES_ACTIONS),
        *(f"issue_comment.{a}" for a in COMMENT_ACTIONS),
        *(f"pull_request_review_comment.{a}" for a in COMMENT_ACTIONS),
        *(f"pull_request_review.{a}" for a in REVIEW_ACTIONS),
        *(f"release.{a}" for a in RELEASE_ACTIONS),
        *(f"deployment_status.{s}" for s in DEPLOYMENT_STATES),
        # `check_run.completed`/`workflow_run.completed`: a completed run without a conclusion.
        *(
            f"check_run.{a}"
            for a in ("created", "rerequested", "requested_action", "completed", *CHECK_CONCLUSIONS)
        ),
        *(
            f"workflow_run.{a}"
            for a in ("requested", "in_progress", "completed", *WORKFLOW_CONCLUSIONS)
        ),
    ]
)

# GitHub's other webhook events: rendered generically (who, what, which repository, the link).
GENERIC_EVENTS: frozenset[str] = frozenset(
    [
        "branch_protection_configuration",
        "branch_protection_rule",
        "check_suite",
        "code_scanning_alert",
        "commit_comment",
        "custom_property",
        "custom_property_values",
        "dependabot_alert",
        "deploy_key",
        "deployment_protection_rule",
        "deployment_review",
        "discussion",
        "discussion_comment",
        "fork",
        "github_app_authorization",
        "gollum",
        "installation",
        "installation_repositories",
        "installation_target",
        "label",
        "marketplace_purchase",
        "member",
        "membership",
        "merge_group",
        "meta",
        "milestone",
        "org_block",
        "organization",
        "package",
        "page_build",
        "personal_access_token_request",
        "ping",
        "project",
        "project_card",
        "project_column",
        "projects_v2",
        "projects_v2_item",
        "projects_v2_status_update",
        "public",
        "pull_request_review_thread",
        "registry_package",
        "repository",
        "repository_advisory",
        "repository_dispatch",
        "repository_import",
        "repository_ruleset",
        "repository_vulnerability_alert",
        "secret_scanning_alert",
        "secret_scanning_alert_location",
        "security_advisory",
        "security_and_analysis",
        "sponsorship",
        "star",
        "status",
        "sub_issues",
        "team",
        "team_add",
        "watch",
        "workflow_dispatch",
        "workflow_job",
    ]
)

# SPEC §12's defaults; a push counts only on the repository's default branch.
DEFAULT_EVENTS: tuple[str, ...] = (
    "pull_request.opened",
    "pull_request.reopened",
    "pull_request.ready_for_review",
    "pull_request.closed",
    "pull_request.merged",
    "issues.opened",
    "issues.closed",
    "issues.reopened",
    "push",
    "release.published",
    "deployment_status.success",
    "deployment_status.failure",
    "deployment_status.error",
)


# -- reading the payload ---------------------------------------------------------------------


def _obj(value: Any, *path: str) -> dict[str, Any]:
    found = field_at(value, *path)
    return found if isinstance(found, dict) else {}


def _str(value: Any, *path: str) -> str | None:
    found = field_at(value, *path)
    return found if isinstance(found, str) and found.strip() else None


def _int(value: Any, *path: str) -> int | None:
    found = field_at(value, *path)
    return found if type(found) is int else None


def _objs(value: Any, *path: str) -> list[dict[str, Any]]:
    found = field_at(value, *path)
    return [v for v in found if isinstance(v, dict)] if isinstance(found, list) else []


def _names(value: Any, key: str, name: str = "name") -> tuple[str, ...]:
    return tuple(n for item in _objs(value, key) if (n := _str(item, name)) is not None)


def _first_line(message: str | None) -> str:
    return (message or "").strip().split("\n", 1)[0]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class _Context:
    """What every rendering of one payload shares."""

    event: str
    action: str | None
    payload: Mapping[str, Any]
    actor: Actor | None
    who: str
    repository: str | None
    repository_url: str | None

    @property
    def where(self) -> str:
        """` in [owner/repo](url)`, or nothing when the payload names no repository."""
        if self.repository is None:
            return ""
        return " in " + md.link(md.text(self.repository), self.repository_url)

    def name(self, *parts: str | None) -> str:
        return ".".join(p for p in (self.event, *parts) if p)


def _actor(user: Any, fallback_name: str | None = None) -> Actor | None:
    login = _str(user, "login")
    if login is None:
        return Actor(name=fallback_name) if fallback_name else None
    return Actor(
        name=login,
        login=login,
        avatar_url=_str(user, "avatar_url"),
        external_id=str(_int(user, "id")) if _int(user, "id") is not None else None,
        bot=_str(user, "type") == "Bot" or login.endswith("[bot]"),
    )


def _context(event: str, payload: Mapping[str, Any]) -> _Context:
    actor = _actor(payload.get("sender"), _str(payload, "pusher", "name"))
    repository = _str(payload, "repository", "full_name")
    if repository is None:
        owner, name = (
            _str(payload, "repository", "owner", "login"),
            _str(payload, "repository", "name"),
        )
        repository = f"{owner}/{name}" if owner and name else None
    return _Context(
        event=event,
        action=_str(payload, "action"),
        payload=payload,
        actor=actor,
        who=md.text(actor.name) if actor else "Someone",
        repository=repository,
        repository_url=_str(payload, "repository", "html_url"),
    )


def _color(state: str | None) -> str | None:
    return STATE_COLORS.get(state or "")


def _card(
    c: _Context, title: str, url: str | None, state: str | None, *fields: tuple[str, str | None]
) -> Card:
    shown = [("Repository", c.repository), *fields, ("By", c.actor.name if c.actor else None)]
    return Card(
        title=md.line(title),
        url=md.safe_url(url),
        state=state,
        color=_color(state),
        fields=tuple(Field(name, md.line(value)) for name, value in shown if value),
    )


# -- pull requests and issues ----------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """A pull request or an issue, as the payload shows it now."""

    kind: str  # "pull request" or "issue"
    number: int
    title: str
    url: str | None
    state: str
    labels: tuple[str, ...]
    assignees: tuple[str, ...]
    draft: bool
    base: str | None
    head: str | None
    body: str | None
    author: str | None

    def key(self, repository: str | None) -> str | None:
        return f"{repository}#{self.number}" if repository else None

    @property
    def label(self) -> str:
        return f"#{self.number} {self.title}".strip()

    def ref(self, url: str | None = None) -> str:
        """`pull request [#42 title](url)`: the item named and linked (to `url` if given)."""
        return f"{self.kind} " + md.link(md.text(self.label), url or self.url)

    def card(self, repository: str | None) -> Card:
        fields = [
            ("Repository", repository),
            ("Author", self.author),
            ("Labels", ", ".join(self.labels)),
            ("Assignees", ", ".join(self.assignees)),
        ]
        if self.base:
            fields.append(("Base", self.base))
        return Card(
            title=md.line(self.label),
            url=md.safe_url(self.url),
            state=self.state,
            color=_color(self.state),
            fields=tuple(Field(name, md.line(value)) for name, value in fields if value),
        )


def _item(c: _Context, key: str) -> _Item:
    """The pull request or issue under `key` (`pull_request` or `issue`); an issue that is
    a pull request (`issue.pull_request` set, as on comments) says so."""
    found = _obj(c.payload, key)
    number = _int(found, "number")
    if number is None:
        number = _int(c.payload, "number")
    if number is None:
        raise Unrenderable(f"`{key}.number` is missing or not an integer")
    is_pull = key == "pull_request" or bool(_obj(found, "pull_request"))
    merged = (
        found.get("merged") is True
        or _str(found, "merged_at") is not None
        or _str(found, "pull_request", "merged_at") is not None
    )
    draft = found.get("draft") is True
    state = _str(found, "state") or "open"
    if merged:
        state = "merged"
    elif state == "open" and draft:
        state = "draft"
    return _Item(
        kind="pull request" if is_pull else "issue",
        number=number,
        title=_str(found, "title") or "",
        url=_str(found, "html_url"),
        state=state,
        labels=_names(found, "labels"),
        assignees=_names(found, "assignees", "login"),
        draft=draft,
        base=_str(found, "base", "ref"),
        head=_str(found, "head", "ref"),
        body=_str(found, "body"),
        author=_str(found, "user", "login"),
    )


def _item_notice(
    c: _Context, item: _Item, event: str, text: str, card: Card, quiet: str | None
) -> Notice:
    """An event on a pull request or an issue: threaded under it, with its facts (base
    branch, labels, draft) and the fields the payload's `changes` name."""
    return Notice(
        event=event,
        text=text,
        card=card,
        actor=c.actor,
        item=item.key(c.repository),
        item_card=item.card(c.repository),
        quiet=quiet,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.repository,
        branch=item.base,
        labels=item.labels,
        draft=item.draft,
        changed=frozenset(k.lower() for k in _obj(c.payload, "changes")),
    )


def _named(value: Any, key: str = "name") -> str:
    return md.code(_str(value, key) or "?")


_ITEM_PHRASES: dict[str, str] = {
    "reopened": "reopened {item}",
    "closed": "closed {item}",
    "edited": "edited {item}",
    "deleted": "deleted {item}",
    "locked": "locked {item}",
    "unlocked": "unlocked {item}",
    "pinned": "pinned {item}",
    "unpinned": "unpinned {item}",
    "ready_for_review": "marked {item} as ready for review",
    "converted_to_draft": "converted {item} to a draft",
    "synchronize": "pushed new commits to {item}",
    "auto_merge_enabled": "enabled auto-merge on {item}",
    "auto_merge_disabled": "disabled auto-merge on {item}",
    "enqueued": "added {item} to the merge queue",
    "dequeued": "removed {item} from the merge queue",
    "labeled": "added the label {label} to {item}",
    "unlabeled": "removed the label {label} from {item}",
    "assigned": "assigned {assignee} to {item}",
    "unassigned": "unassigned {assignee} from {item}",
    "review_requested": "requested a review from {reviewer} on {item}",
    "review_request_removed": "removed the review request for {reviewer} on {item}",
    "milestoned": "added {item} to the milestone {milestone}",
    "demilestoned": "removed {item} from the milestone {milestone}",
    "transferred": "transferred {item} to {new_repository}",
    "typed": "set the type of {item} to {type}",
    "untyped": "removed the type {type} from {item}",
}


def _item_event(c: _Context, key: str) -> Notice:
    item = _item(c, key)
    action = c.action or "updated"
    event_action = action
    if key == "pull_request" and action == "closed" and item.state == "merged":
        event_action = "merged"
    changes = _obj(c.payload, "changes")
    quiet = None
    if action == "edited" and not changes:
        quiet = "an edit that changed nothing"
    reviewer = _str(c.payload, "requested_reviewer", "login") or _str(
        c.payload, "requested_team", "name"
    )
    pieces = {
        "item": item.ref(),
        "label": _named(c.payload.get("label")),
        "assignee": md.code(_str(c.payload, "assignee", "login") or "?"),
        "reviewer": md.code(reviewer or "?"),
        "milestone": md.code(_str(c.payload, "milestone", "title") or "?"),
        "new_repository": md.link(
            md.text(_str(c.payload, "changes", "new_repository", "full_name") or "?"),
            _str(c.payload, "changes", "new_repository", "html_url"),
        ),
        "type": md.code(
            _str(c.payload, "type", "name") or _str(c.payload, "issue", "type", "name") or "?"
        ),
    }
    body = ""
    if event_action == "opened":
        draft = "draft " if item.draft else ""
        phrase = f"opened {draft}{item.ref()}"
        body = md.quote(item.body)
    elif event_action == "merged":
        into = f" into {md.code(item.base)}" if item.base else ""
        phrase = f"merged {item.ref()}{into}"
    elif action == "closed" and key == "pull_request":
        phrase = f"closed {item.ref()} without merging"
    elif action == "closed" and _str(c.payload, key, "state_reason") == "not_planned":
        phrase = f"closed {item.ref()} as not planned"
    else:
        phrase = _ITEM_PHRASES.get(action, f"{md.text(action)} {{item}}").format(**pieces)
    branches = ""
    if key == "pull_request" and event_action == "opened" and item.base and item.head:
        branches = f" ({md.code(item.head)} → {md.code(item.base)})"
    text = f"{c.who} {phrase}{c.where}{branches}"
    if body:
        text += "\n\n" + body
    card = _card(
        c,
        item.label,
        item.url,
        item.state,
        ("Label", _str(c.payload, "label", "name")),
        ("Assignee", _str(c.payload, "assignee", "login")),
    )
    return _item_notice(c, item, c.name(event_action), text, card, quiet)


def _unchanged_edit(c: _Context, body: str | None) -> bool:
    """A comment or review edited without a change: GitHub sends `changes: {}` or the old
    body equal to the new one (Zulip ignores both too)."""
    if c.action != "edited":
        return False
    changes = _obj(c.payload, "changes")
    if not changes:
        return True
    before = field_at(changes, "body", "from")
    return set(changes) == {"body"} and isinstance(before, str) and before == (body or "")


def _comment_event(c: _Context, key: str) -> Notice:
    item = _item(c, key)
    comment = _obj(c.payload, "comment")
    body = _str(comment, "body")
    url = _str(comment, "html_url") or item.url
    where = ""
    if c.event == "pull_request_review_comment" and _str(comment, "path"):
        where = f"{md.code(_str(comment, 'path'))} in "
    verb = {
        "created": "commented on",
        "edited": "edited a comment on",
        "deleted": "deleted a comment on",
    }.get(c.action or "", f"{md.text(c.action or 'updated')} a comment on")
    text = f"{c.who} {verb} {where}{item.ref(url)}{c.where}"
    if c.action != "deleted" and body:
        text += "\n\n" + md.quote(body)
    return _item_notice(
        c,
        item,
        c.name(c.action or "created"),
        text,
        _card(c, item.label, url, "commented", ("File", _str(comment, "path"))),
        "a comment edited to the same body" if _unchanged_edit(c, body) else None,
    )


def _review_event(c: _Context) -> Notice:
    item = _item(c, "pull_request")
    review = _obj(c.payload, "review")
    body = _str(review, "body")
    url = _str(review, "html_url") or item.url
    state = (_str(review, "state") or "").lower()
    action = c.action or "submitted"
    if action == "submitted":
        verb = {
            "approved": "approved",
            "changes_requested": "requested changes on",
            "commented": "reviewed",
        }.get(state, "reviewed")
    elif action == "dismissed":
        reviewer = _str(review, "user", "login")
        verb = f"dismissed {md.code(reviewer)}'s review on" if reviewer else "dismissed a review on"
    elif action == "edited":
        verb = "edited a review on"
    else:
        verb = f"{md.text(action)} a review on"
    text = f"{c.who} {verb} {item.ref(url)}{c.where}"
    if action != "dismissed" and body:
        text += "\n\n" + md.quote(body)
    quiet = None
    if action == "edited" and not _obj(c.payload, "changes"):
        quiet = "a review edit that changed nothing"
    card = _card(c, item.label, url, state or action)
    return _item_notice(c, item, c.name(action), text, card, quiet)


# -- pushes, branches and tags ---------------------------------------------------------------


def _ref(ref: str) -> tuple[str, str]:
    """(`branch`|`tag`|`ref`, short name) of a full ref."""
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return kind, ref[len(prefix) :]
    return "ref", ref


def _ref_url(c: _Context, kind: str, name: str) -> str | None:
    if c.repository_url is None:
        return None
    path = "releases/tag" if kind == "tag" else "tree"
    # A ref's name may hold `?`, `#`, `:` or `@`: a path, not a query, a scheme or a mention.
    return f"{c.repository_url}/{path}/{quote(name, safe='/')}"


def _commit_line(commit: Mapping[str, Any]) -> str:
    sha = _str(commit, "id") or ""
    short = md.link(md.code(sha[:7] or "?"), _str(commit, "url"))
    message = md.text(_first_line(_str(commit, "message")), limit=100)
    author = _str(commit, "author", "username") or _str(commit, "author", "name")
    by = f" — {md.text(author)}" if author else ""
    return f"- {short} {message}{by}".rstrip()


def _push(c: _Context) -> Notice:
    full_ref = _str(c.payload, "ref")
    if full_ref is None:
        raise Unrenderable("push without a `ref`")
    kind, name = _ref(full_ref)
    branch = name if kind == "branch" else None
    commits = _objs(c.payload, "commits")
    created = c.payload.get("created") is True
    deleted = c.payload.get("deleted") is True
    forced = c.payload.get("forced") is True
    compare = _str(c.payload, "compare")
    quiet = None
    if branch is not None and branch.startswith(MERGE_QUEUE_PREFIX):
        quiet = "a merge-queue ref (gh-readonly-queue/)"
    named = md.link(md.code(name), _ref_url(c, kind, name))
    if deleted:
        text = f"{c.who} deleted {kind} {md.code(name)}{c.where}"
        state, title = "deleted", f"{kind} {name} deleted"
    elif created:
        text = f"{c.who} created {kind} {named}{c.where}"
        state, title = "created", f"{kind} {name} created"
    else:
        verb = "force-pushed" if forced else "pushed"
        what = f" {_plural(len(commits), 'commit')} to" if commits else " to"
        text = f"{c.who} {verb}{what} {named}{c.where}"
        if compare:
            text += f" ({md.link('compare', compare)})"
        lines = [_commit_line(commit) for commit in commits[:PUSH_COMMITS]]
        if len(commits) > PUSH_COMMITS:
            lines.append(f"- and {_plural(len(commits) - PUSH_COMMITS, 'more commit')}")
        if lines:
            text += "\n\n" + "\n".join(lines)
        state = "forced" if forced else "pushed"
        title = f"{_plural(len(commits), 'commit')} to {name}"
    default_branch = _str(c.payload, "repository", "default_branch") or _str(
        c.payload, "repository", "master_branch"
    )
    return Notice(
        event="push",
        text=text,
        card=_card(c, title, compare, state, ("Branch" if branch else "Ref", name)),
        actor=c.actor,
        quiet=quiet,
        default=branch is not None and branch == default_branch and not deleted,
        repository=c.repository,
        branch=branch,
    )


def _create_delete(c: _Context) -> Notice:
    name = _str(c.payload, "ref")
    kind = _str(c.payload, "ref_type") or "ref"
    if name is None and kind != "repository":
        raise Unrenderable(f"{c.event} without a `ref`")
    name = name or ""
    branch = name if kind == "branch" else None
    quiet = None
    if branch is not None and branch.startswith(MERGE_QUEUE_PREFIX):
        quiet = "a merge-queue ref (gh-readonly-queue/)"
    verb = "created" if c.event == "create" else "deleted"
    if kind == "repository":
        text = f"{c.who} {verb} the repository{c.where}"
    elif c.event == "create":
        named = md.link(md.code(name), _ref_url(c, kind, name))
        text = f"{c.who} created {md.text(kind)} {named}{c.where}"
    else:
        text = f"{c.who} deleted {md.text(kind)} {md.code(name)}{c.where}"
    return Notice(
        event=c.event,
        text=text,
        card=_card(c, f"{kind} {name} {verb}", c.repository_url, verb),
        actor=c.actor,
        quiet=quiet,
        repository=c.repository,
        branch=branch,
    )


# -- releases, deployments, runs -------------------------------------------------------------


def _release(c: _Context) -> Notice:
    release = _obj(c.payload, "release")
    tag = _str(release, "tag_name")
    name = _str(release, "name") or tag
    if name is None:
        raise Unrenderable("release without a `tag_name` or `name`")
    label = md.text(name)
    if tag and tag != name:
        label += f" ({md.code(tag)})"
    url = _str(release, "html_url")
    action = c.action or "published"
    verb = {
        "published": "published release",
        "prereleased": "published pre-release",
        "released": "released",
        "created": "drafted release" if release.get("draft") is True else "created release",
        "edited": "edited release",
        "deleted": "deleted release",
        "unpublished": "unpublished release",
    }.get(action, f"{md.text(action)} release")
    target = label if action == "deleted" else md.link(label, url)
    text = f"{c.who} {verb} {target}{c.where}"
    if action in ("published", "prereleased", "released", "created"):
        body = md.quote(_str(release, "body"))
        if body:
            text += "\n\n" + body
    event = c.name(action)
    return Notice(
        event=event,
        text=text,
        card=_card(c, name, url, action, ("Tag", tag)),
        actor=c.actor,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.repository,
    )


def _deployments_url(c: _Context) -> str | None:
    return f"{c.repository_url}/deployments" if c.repository_url else None


def _deployment(c: _Context) -> Notice:
    deployment = _obj(c.payload, "deployment")
    if not deployment:
        raise Unrenderable("deployment without a `deployment`")
    ref = _str(deployment, "ref")
    environment = _str(deployment, "environment") or "an environment"
    what = md.code(ref) if ref else "a deployment"
    text = (
        f"{c.who} started deploying {what} to "
        f"{md.link(md.code(environment), _deployments_url(c))}{c.where}"
    )
    description = _str(deployment, "description")
    if description:
        text += "\n\n" + md.quote(description)
    return Notice(
        event=c.name(c.action or "created"),
        text=text,
        card=_card(c, f"Deployment to {environment}", _deployments_url(c), "created", ("Ref", ref)),
        actor=c.actor,
        repository=c.repository,
        branch=ref,
    )


_DEPLOYMENT_WORDS = {
    "success": "succeeded",
    "failure": "failed",
    "error": "errored",
    "inactive": "is now inactive",
    "in_progress": "is in progress",
    "pending": "is pending",
    "queued": "is queued",
}


def _deployment_status(c: _Context) -> Notice:
    status = _obj(c.payload, "deployment_status")
    state = _str(status, "state")
    if state is None:
        raise Unrenderable("deployment_status without a `deployment_status.state`")
    deployment = _obj(c.payload, "deployment")
    ref = _str(deployment, "ref")
    environment = _str(status, "environment") or _str(deployment, "environment") or "an environment"
    url = (
        _str(status, "target_url")
        or _str(status, "log_url")
        or _str(status, "environment_url")
        or _deployments_url(c)
    )
    of = f" of {md.code(ref)}" if ref else ""
    word = _DEPLOYMENT_WORDS.get(state, md.text(state))
    text = f"Deployment{of} to {md.code(environment)}{c.where} {word}"
    if c.actor:
        text += f" (by {c.who})"
    details = md.link("details", url)
    if details != "details":
        text += f": {details}"
    description = _str(status, "description")
    if description:
        text += "\n\n" + md.quote(description)
    event = c.name(state)
    return Notice(
        event=event,
        text=text,
        card=_card(c, f"Deployment to {environment}", url, state, ("Ref", ref)),
        actor=c.actor,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.repository,
        branch=ref,
    )


_CONCLUSION_WORDS = {
    "success": "succeeded",
    "failure": "failed",
    "cancelled": "was cancelled",
    "timed_out": "timed out",
    "action_required": "needs action",
    "neutral": "finished (neutral)",
    "skipped": "was skipped",
    "stale": "went stale",
    "startup_failure": "failed to start",
}


def _on(branch: str | None, sha: str | None) -> str:
    parts = []
    if branch:
        parts.append(f" on {md.code(branch)}")
    if sha:
        parts.append(f" ({md.code(sha[:7])})")
    return "".join(parts)


def _check_run(c: _Context) -> Notice:
    run = _obj(c.payload, "check_run")
    name = _str(run, "name")
    if not run or name is None:
        raise Unrenderable("check_run without a `check_run.name`")
    branch = _str(run, "check_suite", "head_branch")
    if branch is None:
        heads = [_str(pr, "head", "ref") for pr in _objs(run, "pull_requests")]
        branch = next((h for h in heads if h), None)
    url = _str(run, "html_url") or _str(run, "details_url")
    named = md.link(md.text(name), url)
    on = _on(branch, _str(run, "head_sha"))
    action = c.action or "created"
    conclusion = _str(run, "conclusion")
    state = conclusion or _str(run, "status") or action
    if action == "completed":
        event = c.name(conclusion or "completed")
        word = _CONCLUSION_WORDS.get(conclusion or "", "completed")
        text = f"Check run {named} {word}{on}{c.where}"
    elif action == "created":
        event = c.name("created")
        text = f"Check run {named} started{on}{c.where}"
    elif action == "rerequested":
        event = c.name("rerequested")
        text = f"{c.who} re-ran check run {named}{on}{c.where}"
    elif action == "requested_action":
        event = c.name("requested_action")
        identifier = _str(c.payload, "requested_action", "identifier") or "?"
        text = (
            f"{c.who} requested the action {md.code(identifier)} on check run {named}{on}{c.where}"
        )
    else:
        event = c.name(action)
        text = f"{c.who}: check run {named} {md.text(action)}{on}{c.where}"
    return Notice(
        event=event,
        text=text,
        card=_card(c, name, url, state, ("Branch", branch)),
        actor=c.actor,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.repository,
        branch=branch,
    )


def _workflow_run(c: _Context) -> Notice:
    run = _obj(c.payload, "workflow_run")
    if not run:
        raise Unrenderable("workflow_run without a `workflow_run`")
    name = _str(run, "name") or _str(c.payload, "workflow", "name") or _str(run, "path") or "?"
    number = _int(run, "run_number")
    label = f"{name} #{number}" if number is not None else name
    url = _str(run, "html_url")
    named = md.link(md.text(label), url)
    branch = _str(run, "head_branch")
    on = _on(branch, _str(run, "head_sha"))
    title = _str(run, "display_title")
    about = f": {md.text(title)}" if title and title != name else ""
    action = c.action or "requested"
    conclusion = _str(run, "conclusion")
    if action == "completed":
        event = c.name(conclusion or "completed")
        word = _CONCLUSION_WORDS.get(conclusion or "", "completed")
        text = f"Workflow {named} {word}{on}{c.where}{about}"
    elif action == "requested":
        event = c.name("requested")
        text = f"{c.who} started workflow {named}{on}{c.where}{about}"
    elif action == "in_progress":
        event = c.name("in_progress")
        text = f"Workflow {named} is running{on}{c.where}{about}"
    else:
        event = c.name(action)
        text = f"Workflow {named} {md.text(action)}{on}{c.where}{about}"
    return Notice(
        event=event,
        text=text,
        card=_card(
            c,
            label,
            url,
            conclusion or _str(run, "status") or action,
            ("Branch", branch),
            ("Trigger", _str(run, "event")),
        ),
        actor=_actor(run.get("triggering_actor")) or c.actor,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.repository,
        branch=branch,
    )


# -- anything else ---------------------------------------------------------------------------

_GENERIC_PHRASES = {
    "star.created": "starred",
    "star.deleted": "unstarred",
    "watch.started": "started watching",
    "public": "made public",
    "fork": "forked",
    "ping": "connected a webhook to",
}


def _generic(c: _Context) -> Notice:
    event = c.name(c.action)
    subject = _obj(c.payload, c.event)
    url = _str(subject, "html_url") or c.repository_url or _str(c.payload, "organization", "url")
    phrase = _GENERIC_PHRASES.get(event) or _GENERIC_PHRASES.get(c.event)
    repository = md.link(md.text(c.repository), c.repository_url) if c.repository else "the account"
    if phrase is not None:
        text = f"{c.who} {phrase} {repository}"
        if c.event == "fork":
            forkee = _str(c.payload, "forkee", "full_name")
            if forkee:
                text += " to " + md.link(md.text(forkee), _str(c.payload, "forkee", "html_url"))
    else:
        text = f"{c.who}: {md.code(event)}{c.where}"
        if url and url != c.repository_url:
            text += f" ({md.link('view', url)})"
    return Notice(
        event=event,
        text=text,
        card=_card(c, f"{event} {c.repository or ''}".strip(), url, c.action),
        actor=c.actor,
        repository=c.repository,
    )


_RENDERERS: dict[str, Callable[[_Context], Notice]] = {
    "push": _push,
    "create": _create_delete,
    "delete": _create_delete,
    "pull_request": lambda c: _item_event(c, "pull_request"),
    "issues": lambda c: _item_event(c, "issue"),
    "issue_comment": lambda c: _comment_event(c, "issue"),
    "pull_request_review_comment": lambda c: _comment_event(c, "pull_request"),
    "pull_request_review": _review_event,
    "release": _release,
    "deployment": _deployment,
    "deployment_status": _deployment_status,
    "check_run": _check_run,
    "workflow_run": _workflow_run,
}


class GitHubNotifier:
    name: str = "github"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = GENERIC_EVENTS
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"repositories", "branches", "labels", "authors", "drafts"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        event = (event_header or "").strip().lower()
        if not event:
            raise Unrenderable("no X-GitHub-Event")
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        c = _context(event, payload)
        notice = _RENDERERS.get(event, _generic)(c)
        if notice.quiet is not None and notice.default:
            # Nothing is posted for a quiet event, so it is never a default either.
            notice = replace(notice, default=False)
        return notice


NOTIFIER = GitHubNotifier()
