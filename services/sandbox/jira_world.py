"""The Jira stand-in's world: a Jira Cloud site's users, projects and issues (summary,
description, type, priority, status on the workflow To Do → In Progress → Done, assignee,
reporter, comments); what happens to them (an issue created, moved, assigned, commented on);
and the webhook payloads Jira Cloud sends about each, in the shapes of Atlassian's examples
(tests/providers/jira_payloads and its README).

Rich text (descriptions, comments) is wiki markup, as Cloud's admin webhooks carry it (REST
v2's representation). Links are the site's (`https://acme.atlassian.net/...`). Every refusal
is an `EventRefused` whose message says what to change.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.sandbox.hooks import EventRefused, bind


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category_id: int
    category_key: str  # new, indeterminate, done: what hookhub colours a card by
    color: str


# The simplified workflow: any status to any other.
STATUSES: tuple[Status, ...] = (
    Status("10000", "To Do", 2, "new", "blue-gray"),
    Status("3", "In Progress", 4, "indeterminate", "yellow"),
    Status("10001", "Done", 3, "done", "green"),
)
# name → (id, description, avatar id)
ISSUE_TYPES: dict[str, tuple[str, str, int]] = {
    "Task": ("10002", "A small, distinct piece of work.", 10318),
    "Bug": ("10004", "A problem or error.", 10303),
    "Story": ("10001", "Functionality or a feature expressed as a user goal.", 10315),
    "Epic": ("10000", "A big user story that needs to be broken down.", 10307),
}
PRIORITIES: dict[str, str] = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
RESOLUTION_DONE = {"id": "10000", "description": "Work has been completed on this issue."}


def utcnow() -> datetime:
    return datetime.now(UTC)


def jira_time(at: datetime | None) -> str | None:
    """Jira's timestamps: `2021-01-20T15:58:12.797+0000`."""
    if at is None:
        return None
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def epoch_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class JiraUser:
    account_id: str
    display_name: str
    time_zone: str = "Europe/London"
    account_type: str = "atlassian"  # "app" for an app's account


@dataclass
class Project:
    id: str
    key: str
    name: str
    lead: str  # account id
    next_number: int = 1


@dataclass
class JiraComment:
    id: str
    author: str  # account id
    body: str
    created: datetime


@dataclass
class JiraIssue:
    id: str
    key: str
    project: str  # key
    summary: str
    description: str | None
    issue_type: str
    priority: str
    status: Status
    reporter: str
    assignee: str | None
    labels: list[str]
    created: datetime
    updated: datetime
    status_changed: datetime
    resolved: datetime | None = None
    comments: list[JiraComment] = field(default_factory=list)


class JiraWorld:
    """A site's users, projects and issues, what can happen to them, and the webhooks that
    say so.

    `event(name, **params)` does what the event says and returns the webhooks Jira Cloud
    sends about it, as (webhookEvent, payload): one, or two for a comment (the
    `comment_created`, and the `jira:issue_updated` whose `issue_event_type_name` is
    `issue_commented`, which Jira raises beside it)."""

    def __init__(self, site_url: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.site_url = site_url
        self.clock = clock
        self.users: dict[str, JiraUser] = {}  # by account id
        self.projects: dict[str, Project] = {}  # by key
        self.issues: dict[str, JiraIssue] = {}  # by key
        self._ids = itertools.count(10_001)
        self._changelogs = itertools.count(10_100)
        self.events: dict[str, Callable[..., list[tuple[str, dict[str, Any]]]]] = {
            "jira:issue_created": self._issue_created,
            "jira:issue_updated": self._issue_updated,
            "comment_created": self._comment_created,
        }

    # -- seeding -----------------------------------------------------------------------------

    def add_user(self, display_name: str, *, account_id: str | None = None) -> JiraUser:
        account_id = account_id or secrets.token_hex(12)
        if account_id in self.users:
            raise EventRefused(f"the account {account_id} exists already")
        user = JiraUser(account_id, display_name)
        self.users[account_id] = user
        return user

    def add_project(
        self, key: str, name: str, *, id: str | None = None, lead: str | None = None
    ) -> Project:
        if not key.isalnum() or not key[:1].isalpha() or key.upper() != key:
            raise EventRefused(f"a project key is upper-case letters and digits, not {key!r}")
        if key in self.projects:
            raise EventRefused(f"the project {key} exists already")
        project = Project(id or str(next(self._ids)), key, name, self.user(lead).account_id)
        self.projects[key] = project
        return project

    def user(self, ref: str | None) -> JiraUser:
        """The user by account id or display name, or the site's first when none is named."""
        if ref is None:
            if not self.users:
                raise EventRefused("the site has no user: add one first")
            return next(iter(self.users.values()))
        found = self.users.get(ref) or next(
            (u for u in self.users.values() if u.display_name.lower() == ref.lower()), None
        )
        if found is None:
            known = ", ".join(u.display_name for u in self.users.values()) or "none"
            raise EventRefused(f"no user {ref!r} (known: {known})")
        return found

    def project(self, key: str | None) -> Project:
        if key is None:
            if not self.projects:
                raise EventRefused("the site has no project: add one first")
            return next(iter(self.projects.values()))
        found = self.projects.get(key.upper())
        if found is None:
            raise EventRefused(f"no project {key!r} (known: {', '.join(self.projects) or 'none'})")
        return found

    def issue(self, key: str | None) -> JiraIssue:
        """Issue `key`, or the latest one."""
        if key is None:
            if not self.issues:
                raise EventRefused("the site has no issue")
            return list(self.issues.values())[-1]
        found = self.issues.get(key.upper())
        if found is None:
            raise EventRefused(f"no issue {key!r}")
        return found

    # -- what can happen ---------------------------------------------------------------------

    def create_issue(
        self,
        project: str | None,
        summary: str,
        *,
        description: str | None = None,
        issue_type: str = "Task",
        priority: str = "Medium",
        user: str | None = None,
        assignee: str | None = None,
        labels: Iterable[str] = (),
    ) -> JiraIssue:
        where = self.project(project)
        if not summary.strip():
            raise EventRefused("You must specify a summary of the issue.")
        if issue_type not in ISSUE_TYPES:
            raise EventRefused(f"an issue type is one of {', '.join(ISSUE_TYPES)}")
        if priority not in PRIORITIES:
            raise EventRefused(f"a priority is one of {', '.join(PRIORITIES)}")
        names = list(dict.fromkeys(labels))
        if any(not name or " " in name for name in names):
            raise EventRefused("a label has no spaces")
        reporter = self.user(user).account_id
        assigned = self.user(assignee).account_id if assignee else None
        at = self.clock()
        issue = JiraIssue(
            id=str(next(self._ids)),
            key=f"{where.key}-{where.next_number}",
            project=where.key,
            summary=summary,
            description=description,
            issue_type=issue_type,
            priority=priority,
            status=STATUSES[0],
            reporter=reporter,
            assignee=assigned,
            labels=names,
            created=at,
            updated=at,
            status_changed=at,
        )
        where.next_number += 1
        self.issues[issue.key] = issue
        return issue

    def update_issue(
        self,
        issue: JiraIssue,
        *,
        status: str | None = None,
        assignee: str | None = None,
        summary: str | None = None,
        priority: str | None = None,
    ) -> list[dict[str, Any]]:
        """Change the issue; its changelog's items, as Jira lists them. `assignee=""`
        unassigns. Nothing changes unless every change can be made."""
        target = None
        if status is not None:
            target = next((s for s in STATUSES if s.name.lower() == status.lower()), None)
            if target is None:
                names = ", ".join(s.name for s in STATUSES)
                raise EventRefused(f"no status {status!r} in the workflow ({names})")
            if target == issue.status:
                raise EventRefused(f"{issue.key} is already {target.name}")
        before = self.users.get(issue.assignee or "")
        after = self.user(assignee) if assignee else None
        if assignee is not None and before == after:
            raise EventRefused(f"{issue.key} is already assigned so")
        if summary is not None and not summary.strip():
            raise EventRefused("You must specify a summary of the issue.")
        if priority is not None and priority not in PRIORITIES:
            raise EventRefused(f"a priority is one of {', '.join(PRIORITIES)}")
        if target is None and assignee is None and summary is None and priority is None:
            raise EventRefused("an update changes something: status, assignee, summary, priority")

        items: list[dict[str, Any]] = []
        at = self.clock()
        if target is not None:
            items.append(
                _item("status", issue.status.id, issue.status.name, target.id, target.name)
            )
            if target.category_key == "done":
                items.append(_item("resolution", None, None, RESOLUTION_DONE["id"], "Done"))
                issue.resolved = at
            elif issue.status.category_key == "done":
                items.append(_item("resolution", RESOLUTION_DONE["id"], "Done", None, None))
                issue.resolved = None
            issue.status, issue.status_changed = target, at
        if assignee is not None:
            item = _item(
                "assignee",
                before.account_id if before else None,
                before.display_name if before else None,
                after.account_id if after else None,
                after.display_name if after else None,
            )
            items.append({**item, "tmpFromAccountId": item["from"], "tmpToAccountId": item["to"]})
            issue.assignee = after.account_id if after else None
        if summary is not None:
            items.append(_item("summary", None, issue.summary, None, summary))
            issue.summary = summary
        if priority is not None:
            was, now = issue.priority, priority
            items.append(_item("priority", PRIORITIES[was], was, PRIORITIES[now], now))
            issue.priority = priority
        issue.updated = at
        return items

    def add_comment(self, issue: JiraIssue, body: str, user: str | None = None) -> JiraComment:
        if not body.strip():
            raise EventRefused("Comment body can not be empty!")
        comment = JiraComment(str(next(self._ids)), self.user(user).account_id, body, self.clock())
        issue.comments.append(comment)
        issue.updated = comment.created
        return comment

    # -- events ------------------------------------------------------------------------------

    def event(self, name: str, **params: Any) -> list[tuple[str, dict[str, Any]]]:
        handler = self.events.get(name)
        if handler is None:
            raise EventRefused(f"unknown event {name!r}; one of {', '.join(sorted(self.events))}")
        return handler(**bind(name, handler, params))

    def _issue_created(
        self,
        *,
        summary: str = "Something needs doing",
        description: str | None = None,
        issue_type: str = "Task",
        priority: str = "Medium",
        user: str | None = None,
        assignee: str | None = None,
        labels: list[str] | tuple[str, ...] = (),
        project: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        issue = self.create_issue(
            project,
            summary,
            description=description,
            issue_type=issue_type,
            priority=priority,
            user=user,
            assignee=assignee,
            labels=labels,
        )
        return [("jira:issue_created", self.issue_created_payload(issue, issue.reporter))]

    def _issue_updated(
        self,
        *,
        key: str | None = None,
        status: str | None = None,
        assignee: str | None = None,
        summary: str | None = None,
        priority: str | None = None,
        user: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        issue = self.issue(key)
        actor = self.user(user)
        items = self.update_issue(
            issue, status=status, assignee=assignee, summary=summary, priority=priority
        )
        fields = {item["field"] for item in items}
        if "resolution" in fields:
            kind = "issue_resolved" if issue.resolved else "issue_reopened"
        elif "status" in fields:
            kind = "issue_generic"
        elif fields == {"assignee"}:
            kind = "issue_assigned"
        else:
            kind = "issue_updated"
        payload = {
            "timestamp": epoch_ms(issue.updated),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": kind,
            "user": self.user_json(actor),
            "issue": self.issue_json(issue),
            "changelog": {"id": str(next(self._changelogs)), "items": items},
        }
        return [("jira:issue_updated", payload)]

    def _comment_created(
        self, *, key: str | None = None, body: str = "Looks good.", user: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        issue = self.issue(key)
        comment = self.add_comment(issue, body, user)
        author = self.users[comment.author]
        comment_json = self.comment_json(issue, comment)
        created = {
            "timestamp": epoch_ms(comment.created),
            "webhookEvent": "comment_created",
            "comment": comment_json,
            "issue": self.issue_json(issue, brief=True),
        }
        echo = {
            "timestamp": epoch_ms(comment.created),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_commented",
            "user": self.user_json(author),
            "issue": self.issue_json(issue),
            "comment": comment_json,
        }
        return [("comment_created", created), ("jira:issue_updated", echo)]

    # -- payloads ----------------------------------------------------------------------------

    def issue_created_payload(self, issue: JiraIssue, actor: str) -> dict[str, Any]:
        return {
            "timestamp": epoch_ms(issue.created),
            "webhookEvent": "jira:issue_created",
            "issue_event_type_name": "issue_created",
            "user": self.user_json(self.users[actor]),
            "issue": self.issue_json(issue),
        }

    def user_json(self, user: JiraUser) -> dict[str, Any]:
        avatar = f"https://secure.gravatar.com/avatar/{user.account_id}?d=identicon"
        return {
            "self": f"{self.site_url}/rest/api/2/user?accountId={user.account_id}",
            "accountId": user.account_id,
            "avatarUrls": {size: f"{avatar}&s={size[:2]}" for size in _AVATAR_SIZES},
            "displayName": user.display_name,
            "active": True,
            "timeZone": user.time_zone,
            "accountType": user.account_type,
        }

    def issue_json(self, issue: JiraIssue, *, brief: bool = False) -> dict[str, Any]:
        """The issue as webhooks carry it; `brief`: the trimmed one of a comment event."""
        api = f"{self.site_url}/rest/api/2"
        fields: dict[str, Any] = {
            "summary": issue.summary,
            "issuetype": self._issue_type_json(issue.issue_type),
            "project": self._project_json(self.projects[issue.project]),
            "assignee": self.user_json(self.users[issue.assignee]) if issue.assignee else None,
            "priority": {
                "self": f"{api}/priority/{PRIORITIES[issue.priority]}",
                "iconUrl": f"{self.site_url}/images/icons/priorities/{issue.priority.lower()}.svg",
                "name": issue.priority,
                "id": PRIORITIES[issue.priority],
            },
            "status": self._status_json(issue.status),
        }
        if not brief:
            reporter = self.user_json(self.users[issue.reporter])
            fields.update(
                statuscategorychangedate=jira_time(issue.status_changed),
                timespent=None,
                fixVersions=[],
                aggregatetimespent=None,
                resolution=(
                    {"self": f"{api}/resolution/10000", **RESOLUTION_DONE, "name": "Done"}
                    if issue.resolved
                    else None
                ),
                resolutiondate=jira_time(issue.resolved),
                workratio=-1,
                watches={
                    "self": f"{api}/issue/{issue.key}/watchers",
                    "watchCount": 1,
                    "isWatching": True,
                },
                lastViewed=None,
                created=jira_time(issue.created),
                labels=list(issue.labels),
                versions=[],
                issuelinks=[],
                updated=jira_time(issue.updated),
                components=[],
                timeoriginalestimate=None,
                description=issue.description,
                timetracking={},
                security=None,
                attachment=[],
                creator=reporter,
                subtasks=[],
                reporter=reporter,
                aggregateprogress={"progress": 0, "total": 0},
                environment=None,
                duedate=None,
                progress={"progress": 0, "total": 0},
                votes={"self": f"{api}/issue/{issue.key}/votes", "votes": 0, "hasVoted": False},
            )
        return {
            "id": issue.id,
            "self": f"{api}/issue/{issue.id}",
            "key": issue.key,
            "fields": fields,
        }

    def comment_json(self, issue: JiraIssue, comment: JiraComment) -> dict[str, Any]:
        author = self.user_json(self.users[comment.author])
        return {
            "self": f"{self.site_url}/rest/api/2/issue/{issue.id}/comment/{comment.id}",
            "id": comment.id,
            "author": author,
            "body": comment.body,
            "updateAuthor": author,
            "created": jira_time(comment.created),
            "updated": jira_time(comment.created),
            "jsdPublic": True,
        }

    def _issue_type_json(self, name: str) -> dict[str, Any]:
        type_id, description, avatar = ISSUE_TYPES[name]
        return {
            "self": f"{self.site_url}/rest/api/2/issuetype/{type_id}",
            "id": type_id,
            "description": description,
            "iconUrl": f"{self.site_url}/rest/api/2/universal_avatar/view/type/issuetype/"
            f"avatar/{avatar}?size=medium",
            "name": name,
            "subtask": False,
            "avatarId": avatar,
            "hierarchyLevel": 1 if name == "Epic" else 0,
        }

    def _project_json(self, project: Project) -> dict[str, Any]:
        avatar = f"{self.site_url}/rest/api/2/universal_avatar/view/type/project/avatar/10400"
        return {
            "self": f"{self.site_url}/rest/api/2/project/{project.id}",
            "id": project.id,
            "key": project.key,
            "name": project.name,
            "projectTypeKey": "software",
            "simplified": False,
            "avatarUrls": {size: f"{avatar}?size={size[:2]}" for size in _AVATAR_SIZES},
        }

    def _status_json(self, status: Status) -> dict[str, Any]:
        return {
            "self": f"{self.site_url}/rest/api/2/status/{status.id}",
            "description": "",
            "iconUrl": f"{self.site_url}/",
            "name": status.name,
            "id": status.id,
            "statusCategory": {
                "self": f"{self.site_url}/rest/api/2/statuscategory/{status.category_id}",
                "id": status.category_id,
                "key": status.category_key,
                "colorName": status.color,
                "name": "To Do"
                if status.category_key == "new"
                else "In Progress"
                if status.category_key == "indeterminate"
                else "Done",
            },
        }


_AVATAR_SIZES = ("48x48", "24x24", "16x16", "32x32")


def _item(
    name: str,
    before: str | None,
    before_text: str | None,
    after: str | None,
    after_text: str | None,
) -> dict[str, Any]:
    """One changelog item, as Jira Cloud writes it."""
    return {
        "field": name,
        "fieldtype": "jira",
        "fieldId": name,
        "from": before,
        "fromString": before_text,
        "to": after,
        "toString": after_text,
    }
