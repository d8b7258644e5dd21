"""GitLab webhooks as notifications (SPEC §16): pushes and tags, merge requests and issues
(one thread each), comments in their item's thread, pipelines and jobs that failed or
recovered, deployments, releases and wiki pages; any other event rendered generically.

The gateway's event is `object_kind` with `object_attributes.action` (`merge_request.merge`,
`pipeline`); the names subscriptions use are derived from the payload, in the past tense
GitLab's own UI uses: `merge_request.opened|updated|approved|unapproved|approval|
unapproval|merged|closed|reopened`, `issue.opened|updated|closed|reopened`,
`note.<noteable>` (`note.merge_request`, `note.issue`, `note.commit`, `note.snippet`),
`pipeline.<status>` and `job.<status>` (a `success` is `recovered`: it is posted only in
the thread of an earlier failure of the same ref), `deployment.<status>`,
`release.created|updated|deleted`, `wiki_page.created|updated|deleted`, `push`,
`tag_push`.

Items: a merge request is `group/project!iid`, an issue `group/project#iid`, a ref's
pipeline `group/project@ref:pipeline`, a job `group/project@ref:job:<name>`.

Payloads as https://docs.gitlab.com/user/project/integrations/webhook_events/ documents
them, read defensively (shared.providers.reading).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

from shared.providers import commonmark as md
from shared.providers.notify import (
    GRAY,
    GREEN,
    RED,
    YELLOW,
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
from shared.providers.reading import (
    first_line,
    integer,
    moment,
    names,
    obj,
    objs,
    plural,
    text,
)

PUSH_COMMITS = 20
ZERO_SHA = "0" * 40
PURPLE, BLUE = "#8250df", "#0969da"
STATE_COLORS = {
    "opened": GREEN,
    "reopened": GREEN,
    "draft": GRAY,
    "merged": PURPLE,
    "closed": RED,
    "locked": GRAY,
    "failed": RED,
    "success": GREEN,
    "canceled": GRAY,
    "skipped": GRAY,
    "manual": YELLOW,
    "running": YELLOW,
    "pending": YELLOW,
    "created": YELLOW,
}

# GitLab's action → the name's part (a state in the past tense, as the UI says it).
MR_ACTIONS = {
    "open": "opened",
    "update": "updated",
    "approved": "approved",
    "unapproved": "unapproved",
    "approval": "approval",
    "unapproval": "unapproval",
    "merge": "merged",
    "close": "closed",
    "reopen": "reopened",
}
ISSUE_ACTIONS = {"open": "opened", "update": "updated", "close": "closed", "reopen": "reopened"}
PAGE_ACTIONS = {"create": "created", "update": "updated", "delete": "deleted"}
NOTEABLES = {
    "MergeRequest": "merge_request",
    "Issue": "issue",
    "Commit": "commit",
    "Snippet": "snippet",
}
# A pipeline's or job's status, as GitLab names it; `success` is named `recovered`.
RUN_STATUSES = (
    "failed",
    "recovered",
    "canceled",
    "skipped",
    "manual",
    "running",
    "pending",
    "created",
    "preparing",
    "scheduled",
    "waiting_for_resource",
)
UNFINISHED = frozenset(
    {"running", "pending", "created", "preparing", "scheduled", "waiting_for_resource"}
)
DEPLOYMENT_STATUSES = ("success", "failed", "canceled", "running", "created", "blocked")

EVENTS: frozenset[str] = frozenset(
    [
        "push",
        "tag_push",
        *(f"merge_request.{a}" for a in MR_ACTIONS.values()),
        *(f"issue.{a}" for a in ISSUE_ACTIONS.values()),
        *(f"note.{n}" for n in NOTEABLES.values()),
        *(f"pipeline.{s}" for s in RUN_STATUSES),
        *(f"job.{s}" for s in RUN_STATUSES),
        *(f"deployment.{s}" for s in DEPLOYMENT_STATUSES),
        *(f"release.{a}" for a in PAGE_ACTIONS.values()),
        *(f"wiki_page.{a}" for a in PAGE_ACTIONS.values()),
    ]
)
# GitLab's other webhook kinds: who, what, which project, the link.
GENERIC_EVENTS: frozenset[str] = frozenset(
    {
        "emoji",
        "feature_flag",
        "work_item",
        "member",
        "subgroup",
        "project",
        "milestone",
        "vulnerability",
        "resource_access_token",
    }
)
DEFAULT_EVENTS: tuple[str, ...] = (
    "merge_request.opened",
    "merge_request.reopened",
    "merge_request.merged",
    "merge_request.closed",
    "issue.opened",
    "issue.closed",
    "issue.reopened",
    "pipeline.failed",
    "pipeline.recovered",
    "deployment.success",
    "deployment.failed",
    "release.created",
)
# `changes` keys every update carries: an update with only these changed nothing shown.
BOOKKEEPING = frozenset(
    {
        "updated_at",
        "updated_by_id",
        "last_edited_at",
        "last_edited_by_id",
        "state_id",
        "time_change",
        "total_time_spent",
    }
)
# GitLab's project and group access-token users (`project_123_bot_…`, `group_9_bot`).
_BOT_USER = re.compile(r"^(project|group)_\d+_bot")


class _Context(Scene):
    """`event` is GitLab's `object_kind`; `place` the project's `group/project`."""

    def path_url(self, *parts: str) -> str | None:
        """A page of the project: `<web_url>/-/<parts>`, each part a path segment."""
        if self.place_url is None:
            return None
        return "/".join([self.place_url.rstrip("/"), "-", *(quote(p, safe="") for p in parts)])


def _actor(payload: Mapping[str, Any]) -> Actor | None:
    user = obj(payload, "user")
    username = text(user, "username") or text(payload, "user_username")
    name = text(user, "name") or text(payload, "user_name") or username
    if name is None:
        return None
    user_id = integer(user, "id") or integer(payload, "user_id")
    return Actor(
        name=name,
        login=username,
        avatar_url=text(user, "avatar_url") or text(payload, "user_avatar"),
        external_id=str(user_id) if user_id is not None else None,
        bot=bool(username and _BOT_USER.match(username)),
    )


def _project(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(`group/project`, its web URL); a job's payload has only `repository.homepage`."""
    url = text(payload, "project", "web_url") or text(payload, "repository", "homepage")
    path = text(payload, "project", "path_with_namespace")
    if path is None and url is not None and md.safe_url(url):
        path = urlsplit(url).path.strip("/") or None
    return path, url


def _card(
    c: _Context, title: str, url: str | None, state: str | None, *fields: tuple[str, str | None]
) -> Card:
    shown = [("Project", c.place), *fields, ("By", c.actor.name if c.actor else None)]
    return card_of(title, url, state, STATE_COLORS.get(state or ""), shown)


# -- merge requests and issues ---------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """A merge request or an issue as the payload shows it now."""

    kind: str  # "merge request" or "issue"
    sigil: str  # "!" or "#"
    iid: int
    title: str
    url: str | None
    state: str
    labels: tuple[str, ...]
    assignees: tuple[str, ...]
    draft: bool
    target: str | None
    source: str | None
    description: str | None
    created_at: Any

    def key(self, project: str | None) -> str | None:
        return f"{project}{self.sigil}{self.iid}" if project else None

    @property
    def label(self) -> str:
        return f"{self.sigil}{self.iid} {self.title}".strip()

    def ref(self, url: str | None = None) -> str:
        return f"{self.kind} " + md.link(md.text(self.label), url or self.url)

    def card(self, project: str | None) -> Card:
        fields = [
            ("Project", project),
            ("Source branch", self.source),
            ("Target branch", self.target),
            ("Labels", ", ".join(self.labels)),
            ("Assignees", ", ".join(self.assignees)),
        ]
        return card_of(self.label, self.url, self.state, STATE_COLORS.get(self.state), fields)


def _item(found: Mapping[str, Any], kind: str, labels_from: Mapping[str, Any]) -> _Item:
    iid = integer(found, "iid")
    if iid is None:
        raise Unrenderable(f"the {kind} has no `iid`")
    is_mr = kind == "merge request"
    draft = found.get("draft") is True or found.get("work_in_progress") is True
    state = text(found, "state") or "opened"
    if state == "opened" and draft:
        state = "draft"
    labels = names(labels_from, "labels", "title") or names(found, "labels", "title")
    assignees = names(labels_from, "assignees", "username")
    # Older payloads name one `assignee`, in the attributes or (merge requests) beside them.
    single = text(found, "assignee", "username") or text(labels_from, "assignee", "username")
    if not assignees and single:
        assignees = (single,)
    return _Item(
        kind=kind,
        sigil="!" if is_mr else "#",
        iid=iid,
        title=text(found, "title") or "",
        url=text(found, "url"),
        state=state,
        labels=labels,
        assignees=assignees,
        draft=draft and is_mr,
        target=text(found, "target_branch") if is_mr else None,
        source=text(found, "source_branch") if is_mr else None,
        description=text(found, "description"),
        created_at=found.get("created_at"),
    )


def _item_notice(
    c: _Context,
    item: _Item,
    event: str,
    text_: str,
    card: Card,
    *,
    resolved: bool | None = None,
    quiet: str | None = None,
    changed: frozenset[str] = frozenset(),
) -> Notice:
    return Notice(
        event=event,
        text=text_,
        card=card,
        actor=c.actor,
        item=item.key(c.place),
        item_card=item.card(c.place),
        quiet=quiet,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.place,
        branch=item.target,
        labels=item.labels,
        draft=item.draft,
        changed=changed,
        resolved=resolved,
        started_at=moment(item.created_at),
        item_ref=_item_ref(c.payload, item),
    )


# Where a payload names the project an issue or merge request is in: the webhook's project
# (a merge request's target project), else the item's own attributes (a note's item).
_PROJECT_PATHS = (
    ("project", "id"),
    ("object_attributes", "target_project_id"),
    ("object_attributes", "project_id"),
    ("merge_request", "target_project_id"),
    ("issue", "project_id"),
)


def _item_ref(payload: Mapping[str, Any], item: _Item) -> dict[str, Any] | None:
    """What GitLab's API knows the item by (`/projects/{project_id}/{kind}/{iid}`), for
    acting on it (shared.providers.gitlab.acting)."""
    project = next((p for path in _PROJECT_PATHS if (p := integer(payload, *path))), None)
    if project is None:
        return None
    kind = "merge_requests" if item.kind == "merge request" else "issues"
    return {"project_id": project, "kind": kind, "iid": item.iid}


def _change_names(payload: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k.lower() for k in obj(payload, "changes")) - BOOKKEEPING


def _change_lines(payload: Mapping[str, Any]) -> list[str]:
    """What an update changed, a line each: titles and labels before → after, the rest
    named."""
    changes = obj(payload, "changes")
    lines = []
    for key in sorted(_change_names(payload)):
        change = obj(changes, key)
        before, after = change.get("previous"), change.get("current")
        if key == "labels":
            old, new = names(change, "previous", "title"), names(change, "current", "title")
            lines.append(
                f"- Labels: {md.text(', '.join(old) or '—')} → {md.text(', '.join(new) or '—')}"
            )
        elif key in ("title", "target_branch") and isinstance(after, str):
            was = md.text(before) if isinstance(before, str) else "—"
            lines.append(
                f"- {md.text(key.replace('_', ' ').capitalize())}: {was} → {md.text(after)}"
            )
        elif key in ("draft", "work_in_progress") and isinstance(after, bool):
            lines.append("- marked as draft" if after else "- marked as ready")
        else:
            lines.append(f"- {md.text(key.replace('_', ' '))} changed")
    return lines[:10]


def _merge_request(c: _Context) -> Notice:
    attrs = obj(c.payload, "object_attributes")
    item = _item(attrs, "merge request", c.payload)
    action = text(attrs, "action") or "update"
    name = MR_ACTIONS.get(action, action.lower())
    quiet = None
    body = ""
    changed = _change_names(c.payload)
    if name == "opened":
        phrase = f"opened {'draft ' if item.draft else ''}{item.ref()}"
        body = md.quote(item.description)
    elif name == "updated" and text(attrs, "oldrev"):
        phrase = f"pushed new commits to {item.ref()}"
    elif name == "updated" and not isinstance(c.payload.get("changes"), dict):
        # Older GitLab sent no `changes` (Zulip's 2016 capture of a description edit): what
        # changed is unknown, so the merge request is shown as it is now.
        phrase = f"updated {item.ref()}"
        body = md.quote(item.description)
    elif name == "updated":
        phrase = f"updated {item.ref()}"
        lines = _change_lines(c.payload)
        body = "\n".join(lines)
        if not lines:
            quiet = "an update that changed nothing shown"
    elif name == "merged":
        into = f" into {md.code(item.target)}" if item.target else ""
        phrase = f"merged {item.ref()}{into}"
    elif name == "closed":
        phrase = f"closed {item.ref()} without merging"
    elif name == "approval":
        phrase = f"added an approval to {item.ref()}"
    elif name == "unapproval":
        phrase = f"removed an approval from {item.ref()}"
    else:
        phrase = f"{md.text(name)} {item.ref()}"
    branches = ""
    if name == "opened" and item.source and item.target:
        branches = f" ({md.code(item.source)} → {md.code(item.target)})"
    line = f"{c.who} {phrase}{c.where}{branches}"
    resolved = {"merged": True, "closed": True, "opened": False, "reopened": False}.get(name)
    card = _card(
        c,
        item.label,
        item.url,
        item.state,
        ("Source branch", item.source),
        ("Target branch", item.target),
        ("Labels", ", ".join(item.labels)),
    )
    return _item_notice(
        c,
        item,
        f"merge_request.{name}",
        f"{line}\n\n{body}" if body else line,
        card,
        resolved=resolved,
        quiet=quiet,
        changed=changed,
    )


def _issue(c: _Context) -> Notice:
    attrs = obj(c.payload, "object_attributes")
    item = _item(attrs, "issue", c.payload)
    action = text(attrs, "action") or "update"
    name = ISSUE_ACTIONS.get(action, action.lower())
    quiet, body = None, ""
    if name == "opened":
        body = md.quote(item.description)
    elif name == "updated":
        lines = _change_lines(c.payload)
        body = "\n".join(lines)
        if not lines:
            quiet = "an update that changed nothing shown"
    verb = {"opened": "opened", "closed": "closed", "reopened": "reopened"}.get(name, md.text(name))
    line = f"{c.who} {verb} {item.ref()}{c.where}"
    resolved = {"closed": True, "opened": False, "reopened": False}.get(name)
    card = _card(c, item.label, item.url, item.state, ("Labels", ", ".join(item.labels)))
    return _item_notice(
        c,
        item,
        f"issue.{name}",
        f"{line}\n\n{body}" if body else line,
        card,
        resolved=resolved,
        quiet=quiet,
        changed=_change_names(c.payload),
    )


def _note(c: _Context) -> Notice:
    attrs = obj(c.payload, "object_attributes")
    noteable = NOTEABLES.get(text(attrs, "noteable_type") or "", "")
    if not noteable:
        raise Unrenderable("a note on nothing it names (`noteable_type`)")
    url = text(attrs, "url")
    body = md.quote(text(attrs, "note"))
    quiet = "a system note" if attrs.get("system") is True else None
    if noteable in ("merge_request", "issue"):
        kind = "merge request" if noteable == "merge_request" else "issue"
        item = _item(obj(c.payload, noteable), kind, obj(c.payload, noteable))
        line = f"{c.who} commented on {item.ref(url)}{c.where}"
        card = _card(c, item.label, url or item.url, "commented")
        return _item_notice(
            c, item, f"note.{noteable}", f"{line}\n\n{body}" if body else line, card, quiet=quiet
        )
    if noteable == "commit":
        sha = text(c.payload, "commit", "id") or text(attrs, "commit_id") or ""
        what = "commit " + md.link(md.code(sha[:8] or "?"), url)
        title = f"Comment on commit {sha[:8]}"
    else:
        snippet = obj(c.payload, "snippet")
        label = text(snippet, "title") or "snippet"
        what = "snippet " + md.link(md.text(label), url)
        title = f"Comment on snippet {label}"
    line = f"{c.who} commented on {what}{c.where}"
    return Notice(
        event=f"note.{noteable}",
        text=f"{line}\n\n{body}" if body else line,
        card=_card(c, title, url, "commented"),
        actor=c.actor,
        quiet=quiet,
        repository=c.place,
    )


# -- pushes and tags -------------------------------------------------------------------------


def _commit_line(commit: Mapping[str, Any]) -> str:
    sha = text(commit, "id") or ""
    short = md.link(md.code(sha[:8] or "?"), text(commit, "url"))
    message = md.text(first_line(text(commit, "title") or text(commit, "message")), limit=100)
    author = text(commit, "author", "name")
    by = f" — {md.text(author)}" if author else ""
    return f"- {short} {message}{by}".rstrip()


def _push(c: _Context) -> Notice:
    ref = text(c.payload, "ref")
    if ref is None:
        raise Unrenderable("a push without a `ref`")
    tag = c.event == "tag_push"
    prefix = "refs/tags/" if tag else "refs/heads/"
    name = ref[len(prefix) :] if ref.startswith(prefix) else ref
    kind = "tag" if tag else "branch"
    before, after = text(c.payload, "before") or "", text(c.payload, "after") or ""
    page = c.path_url("tags" if tag else "tree", name)
    named = md.link(md.code(name), page)
    commits = objs(c.payload, "commits")
    total = integer(c.payload, "total_commits_count")
    total = max(total if total is not None else len(commits), len(commits))
    compare = None
    if after == ZERO_SHA:
        line, state = f"{c.who} deleted {kind} {md.code(name)}{c.where}", "deleted"
        title = f"{kind} {name} deleted"
    elif before == ZERO_SHA or tag:
        line, state = f"{c.who} {'pushed' if tag else 'created'} {kind} {named}{c.where}", "created"
        title = f"{kind} {name} created"
    else:
        compare = c.path_url("compare", f"{before}...{after}") if before and after else None
        what = f" {plural(total, 'commit')} to" if total else " to"
        line = f"{c.who} pushed{what} {named}{c.where}"
        if compare:
            line += f" ({md.link('compare', compare)})"
        lines = [_commit_line(commit) for commit in commits[:PUSH_COMMITS]]
        shown = len(lines)
        if total > shown and shown:
            lines.append(f"- and {plural(total - shown, 'more commit')}")
        if lines:
            line += "\n\n" + "\n".join(lines)
        state, title = "pushed", f"{plural(total, 'commit')} to {name}"
    default_branch = text(c.payload, "project", "default_branch")
    return Notice(
        event=c.event,
        text=line,
        card=_card(c, title, compare or page, state, ("Tag" if tag else "Branch", name)),
        actor=c.actor,
        repository=c.place,
        branch=None if tag else name,
        default=False if tag else (name == default_branch and after != ZERO_SHA),
    )


# -- pipelines, jobs, deployments, releases --------------------------------------------------

_RUN_WORDS = {
    "failed": "failed",
    "recovered": "passed again",
    "canceled": "was canceled",
    "skipped": "was skipped",
    "manual": "is waiting for a manual action",
}


def _run_notice(
    c: _Context,
    *,
    noun: str,
    status: str,
    ref: str | None,
    label: str,
    url: str | None,
    item_suffix: str,
    detail: str,
    fields: tuple[tuple[str, str | None], ...],
    allowed_failure: bool = False,
) -> Notice:
    """A pipeline's or a job's status: a failure opens the ref's item, a success is its
    recovery (posted only where the failure was), what is still running is quiet."""
    name = "recovered" if status == "success" else status
    word = _RUN_WORDS.get(name, f"is {md.text(name)}")
    on = f" on {md.code(ref)}" if ref else ""
    line = f"{noun.capitalize()} {md.link(md.text(label), url)} {word}{on}{c.where}{detail}"
    if c.actor and name in ("failed", "canceled"):
        line += f" (by {c.who})"
    quiet = None
    if name in UNFINISHED:
        quiet = f"a {noun} that has not finished"
    elif allowed_failure and name == "failed":
        quiet = "a job that is allowed to fail"
    item = f"{c.place}@{ref}:{item_suffix}" if c.place and ref else None
    card = _card(c, f"{noun.capitalize()} {label}", url, status, ("Ref", ref), *fields)
    event = f"{noun}.{name}"
    return Notice(
        event=event,
        text=line,
        card=card,
        actor=c.actor,
        item=item,
        item_card=card if item else None,
        quiet=quiet,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.place,
        branch=ref,
        resolved={"failed": False, "recovered": True}.get(name),
        needs_root=name == "recovered",
    )


def _failed_job(c: _Context, build: Mapping[str, Any]) -> str:
    build_id = integer(build, "id")
    url = c.path_url("jobs", str(build_id)) if build_id is not None else None
    stage = text(build, "stage")
    line = f"- {md.link(md.code(text(build, 'name') or '?'), url)}"
    return line + (f" (stage {md.text(stage)})" if stage else "")


def _pipeline(c: _Context) -> Notice:
    attrs = obj(c.payload, "object_attributes")
    status = text(attrs, "status")
    pipeline_id = integer(attrs, "id")
    if status is None or pipeline_id is None:
        raise Unrenderable("a pipeline without an `id` or a `status`")
    url = text(attrs, "url") or c.path_url("pipelines", str(pipeline_id))
    sha = text(attrs, "sha") or ""
    detail = f" ({md.code(sha[:8])})" if sha else ""
    title = first_line(text(c.payload, "commit", "title") or text(c.payload, "commit", "message"))
    if title:
        detail += f": {md.text(title)}"
    failed = [
        b
        for b in objs(c.payload, "builds")
        if text(b, "status") == "failed" and b.get("allow_failure") is not True
    ]
    if status == "failed" and failed:
        jobs = [_failed_job(c, b) for b in failed[:10]]
        detail += "\n\nFailed jobs:\n" + "\n".join(jobs)
    return _run_notice(
        c,
        noun="pipeline",
        status=status,
        ref=text(attrs, "ref"),
        label=f"#{pipeline_id}",
        url=url,
        item_suffix="pipeline",
        detail=detail,
        fields=(("Source", text(attrs, "source")),),
    )


def _job(c: _Context) -> Notice:
    status = text(c.payload, "build_status")
    name = text(c.payload, "build_name")
    if status is None or name is None:
        raise Unrenderable("a job without a `build_name` or a `build_status`")
    build_id = integer(c.payload, "build_id")
    url = c.path_url("jobs", str(build_id)) if build_id is not None else None
    stage = text(c.payload, "build_stage")
    detail = f" (stage {md.text(stage)})" if stage else ""
    reason = text(c.payload, "build_failure_reason")
    if status == "failed" and reason:
        detail += f": {md.text(reason.replace('_', ' '))}"
    return _run_notice(
        c,
        noun="job",
        status=status,
        ref=text(c.payload, "ref"),
        label=name,
        url=url,
        item_suffix=f"job:{name}",
        detail=detail,
        fields=(("Stage", stage),),
        allowed_failure=c.payload.get("build_allow_failure") is True,
    )


_DEPLOYMENT_WORDS = {
    "success": "succeeded",
    "failed": "failed",
    "canceled": "was canceled",
    "running": "started",
    "created": "was created",
    "blocked": "is blocked",
}


def _deployment(c: _Context) -> Notice:
    status = text(c.payload, "status")
    if status is None:
        raise Unrenderable("a deployment without a `status`")
    environment = text(c.payload, "environment") or "an environment"
    sha = text(c.payload, "short_sha")
    of = f" of {md.link(md.code(sha), text(c.payload, 'commit_url'))}" if sha else ""
    url = text(c.payload, "deployable_url") or text(c.payload, "environment_external_url")
    word = _DEPLOYMENT_WORDS.get(status, f"is {md.text(status)}")
    line = f"Deployment{of} to {md.link(md.code(environment), url)}{c.where} {word}"
    if c.actor:
        line += f" (by {c.who})"
    commit_title = text(c.payload, "commit_title")
    if commit_title:
        line += f": {md.text(commit_title)}"
    event = f"deployment.{status}"
    return Notice(
        event=event,
        text=line,
        card=_card(c, f"Deployment to {environment}", url, status, ("Commit", sha)),
        actor=c.actor,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.place,
        branch=text(c.payload, "ref"),
    )


def _release(c: _Context) -> Notice:
    tag = text(c.payload, "tag")
    name = text(c.payload, "name") or tag
    if name is None:
        raise Unrenderable("a release without a `tag` or a `name`")
    action = PAGE_ACTIONS.get(text(c.payload, "action") or "create", "updated")
    label = md.text(name) + (f" ({md.code(tag)})" if tag and tag != name else "")
    url = text(c.payload, "url")
    shown = label if action == "deleted" else md.link(label, url)
    line = f"Release {shown} {action}{c.where}"
    if c.actor:
        line += f" by {c.who}"
    if action == "created":
        body = md.quote(text(c.payload, "description"))
        if body:
            line += "\n\n" + body
    event = f"release.{action}"
    return Notice(
        event=event,
        text=line,
        card=_card(c, name, url, action, ("Tag", tag)),
        actor=c.actor,
        default=any_matches(DEFAULT_EVENTS, event),
        repository=c.place,
    )


def _wiki_page(c: _Context) -> Notice:
    attrs = obj(c.payload, "object_attributes")
    title = text(attrs, "title") or text(attrs, "slug")
    if title is None:
        raise Unrenderable("a wiki page without a `title`")
    action = PAGE_ACTIONS.get(text(attrs, "action") or "update", "updated")
    url = text(attrs, "url")
    shown = md.text(title) if action == "deleted" else md.link(md.text(title), url)
    line = f"{c.who} {action} wiki page {shown}{c.where}"
    return Notice(
        event=f"wiki_page.{action}",
        text=line,
        card=_card(c, title, url, action),
        actor=c.actor,
        repository=c.place,
    )


def _generic(c: _Context) -> Notice:
    action = text(c.payload, "object_attributes", "action") or text(c.payload, "event_type")
    event = f"{c.event}.{action.lower()}" if action else c.event
    attrs = obj(c.payload, "object_attributes")
    subject = text(attrs, "title") or text(attrs, "name") or text(c.payload, "name")
    url = text(attrs, "url") or c.place_url
    return Notice(
        event=event,
        text=named_only(replace(c, event=event), subject, url),
        card=_card(c, subject or event, url, action),
        actor=c.actor,
        repository=c.place,
    )


_RENDERERS: dict[str, Callable[[_Context], Notice]] = {
    "push": _push,
    "tag_push": _push,
    "merge_request": _merge_request,
    "issue": _issue,
    "note": _note,
    "pipeline": _pipeline,
    "build": _job,
    "deployment": _deployment,
    "release": _release,
    "wiki_page": _wiki_page,
}


class GitLabNotifier:
    name: str = "gitlab"
    events: frozenset[str] = EVENTS
    generic_events: frozenset[str] = GENERIC_EVENTS
    default_events: tuple[str, ...] = DEFAULT_EVENTS
    filters: frozenset[str] = frozenset({"repositories", "branches", "labels", "authors", "drafts"})

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        if not isinstance(payload, Mapping):
            raise Unrenderable("the payload is not a JSON object")
        kind = (
            text(payload, "object_kind")
            or (event_header or "").strip().split(".", 1)[0]
            or text(payload, "event_name")
        )
        if not kind:
            raise Unrenderable("the webhook names no `object_kind`")
        project, project_url = _project(payload)
        c = _Context(
            event=kind.lower(),
            payload=payload,
            actor=_actor(payload),
            place=project,
            place_url=project_url,
        )
        return settled(_RENDERERS.get(c.event, _generic)(c))


NOTIFIER = GitLabNotifier()
