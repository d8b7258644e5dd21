"""The GitHub stand-in's world: accounts, repositories with their branches, pull requests,
issues, comments and reviews; what happens to them (a pull request opened, reviewed,
commented on, merged; a push; an issue opened or closed; and, through the API as a card's
buttons ask, an item closed, reopened, assigned or labelled: `act`); and the webhook
payloads GitHub sends about each, in GitHub's shapes.

The shapes are octokit's examples (tests/corpus/github) with the fields GitHub's current
webhook schema adds (`archived_at` and `archived_by` on labels, `user_view_type` on users),
as githubkit types them. Links are github.com's and api.github.com's, as in GitHub's own payloads.
Every refusal is an `EventRefused` whose message says what to change.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.sandbox.hooks import EventRefused, bind

WEB = "https://github.com"
API = "https://api.github.com"
ZERO_SHA = "0" * 40

# The labels GitHub gives every new repository: name → (colour, description).
DEFAULT_LABELS: dict[str, tuple[str, str]] = {
    "bug": ("d73a4a", "Something isn't working"),
    "documentation": ("0075ca", "Improvements or additions to documentation"),
    "duplicate": ("cfd3d7", "This issue or pull request already exists"),
    "enhancement": ("a2eeef", "New feature or request"),
    "good first issue": ("7057ff", "Good for newcomers"),
    "help wanted": ("008672", "Extra attention is needed"),
    "invalid": ("e4e669", "This doesn't seem right"),
    "question": ("d876e3", "Further information is requested"),
    "wontfix": ("ffffff", "This will not be worked on"),
}
REVIEW_STATES = ("approved", "changes_requested", "commented")
CLOSE_REASONS = ("completed", "not_planned")
# GitHub's Zen, which a ping carries.
ZEN = (
    "Design for failure.",
    "Keep it logically awesome.",
    "Speak like a human.",
    "Anything added dilutes everything else.",
    "Favor focus over features.",
    "Responsive is better than fast.",
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None


def node_id(kind: str, number: int) -> str:
    """GitHub's (legacy) global id: base64 of `<len(kind):02>:<kind><id>`."""
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


# -- the world's things ------------------------------------------------------------------------


@dataclass
class GitHubUser:
    login: str
    id: int
    name: str | None = None
    kind: str = "User"  # "User", "Bot" or "Organization"

    @property
    def avatar_url(self) -> str:
        return f"https://avatars.githubusercontent.com/u/{self.id}?v=4"

    @property
    def email(self) -> str:
        return f"{self.id}+{self.login}@users.noreply.github.com"


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None
    default: bool = True


@dataclass
class Commit:
    sha: str
    tree_id: str
    message: str
    author: str  # login
    timestamp: datetime
    modified: list[str] = field(default_factory=lambda: ["README.md"])
    distinct: bool = True


@dataclass
class Review:
    id: int
    number: int
    user: str
    state: str  # approved, changes_requested, commented
    body: str | None
    commit_id: str
    submitted_at: datetime


@dataclass
class Comment:
    id: int
    number: int
    user: str
    body: str
    created_at: datetime


@dataclass
class PullRequest:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    head: str
    base: str
    base_sha: str
    commits: list[Commit]
    labels: list[str]
    created_at: datetime
    updated_at: datetime
    draft: bool = False
    state: str = "open"
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    comments: int = 0
    reviews: list[Review] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)

    @property
    def head_sha(self) -> str:
        return self.commits[-1].sha

    @property
    def status(self) -> str:
        """As hookhub's cards say it: open, draft, merged or closed."""
        if self.merged:
            return "merged"
        if self.state == "open" and self.draft:
            return "draft"
        return self.state


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    labels: list[str]
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    comments: int = 0
    assignees: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.state


@dataclass
class Push:
    """One push to a branch: what the `push` webhook reports."""

    branch: str
    before: str
    after: str
    commits: list[Commit]
    user: str
    created: bool


@dataclass
class Repository:
    id: int
    owner: str
    name: str
    description: str | None
    default_branch: str
    created_at: datetime
    pushed_at: datetime
    branches: dict[str, str] = field(default_factory=dict)  # name → head sha
    labels: dict[str, Label] = field(default_factory=dict)
    pulls: dict[int, PullRequest] = field(default_factory=dict)
    issues: dict[int, Issue] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    next_number: int = 1  # pull requests and issues share their numbers

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def html_url(self) -> str:
        return f"{WEB}/{self.full_name}"

    @property
    def api_url(self) -> str:
        return f"{API}/repos/{self.full_name}"

    def open_issues(self) -> int:
        """GitHub counts open pull requests among the open issues."""
        return sum(1 for i in self.issues.values() if i.state == "open") + sum(
            1 for p in self.pulls.values() if p.state == "open"
        )


# -- the world ---------------------------------------------------------------------------------


class GitHubWorld:
    """Accounts and repositories, what can happen to them, and the webhooks that says.

    `event(name, **params)` does what the event says to the world and returns the webhooks
    GitHub sends about it, as (X-GitHub-Event, payload): one for most events, two for a
    merge (the pull request closed, and the push of the merge to its base) and for a push to
    an open pull request's branch (the push, and the pull request's `synchronize`)."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self.clock = clock
        self.users: dict[str, GitHubUser] = {}  # by lowercased login
        self.repositories: dict[str, Repository] = {}  # by lowercased full name
        self._ids = itertools.count(100_000_001)
        self._serial = itertools.count(1)
        self.events: dict[str, Callable[..., list[tuple[str, dict[str, Any]]]]] = {
            "pull_request.opened": self._pull_request_opened,
            "pull_request.closed": self._pull_request_closed,
            "pull_request.merged": self._pull_request_merged,
            "pull_request_review.submitted": self._review_submitted,
            "issue_comment.created": self._comment_created,
            "push": self._push,
            "issues.opened": self._issue_opened,
            "issues.closed": self._issue_closed,
        }

    # -- seeding -----------------------------------------------------------------------------

    def add_user(
        self, login: str, *, id: int | None = None, name: str | None = None, bot: bool = False
    ) -> GitHubUser:
        if login.lower() in self.users:
            raise EventRefused(f"the account {login!r} exists already")
        user = GitHubUser(login, id or next(self._ids), name, "Bot" if bot else "User")
        self.users[login.lower()] = user
        return user

    def add_repository(
        self,
        full_name: str,
        *,
        id: int | None = None,
        description: str | None = None,
        default_branch: str = "main",
        labels: dict[str, tuple[str, str]] | None = None,
    ) -> Repository:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise EventRefused(f"a repository is owner/name, not {full_name!r}")
        if full_name.lower() in self.repositories:
            raise EventRefused(f"the repository {full_name} exists already")
        if owner.lower() not in self.users:
            # An owner that is not a user of the world is an organization.
            self.users[owner.lower()] = GitHubUser(owner, next(self._ids), None, "Organization")
        at = self.clock()
        repo = Repository(
            id=id or next(self._ids),
            owner=self.users[owner.lower()].login,
            name=name,
            description=description,
            default_branch=default_branch,
            created_at=at,
            pushed_at=at,
        )
        for label, (color, about) in (DEFAULT_LABELS if labels is None else labels).items():
            repo.labels[label] = Label(next(self._ids), label, color, about)
        repo.branches[default_branch] = self._commit("Initial commit", repo.owner).sha
        self.repositories[full_name.lower()] = repo
        return repo

    def repository(self, full_name: str | None = None) -> Repository:
        """The repository named, or the world's first when none is."""
        if full_name is None:
            if not self.repositories:
                raise EventRefused("the world has no repository: add one first")
            return next(iter(self.repositories.values()))
        found = self.repositories.get(full_name.lower())
        if found is None:
            known = ", ".join(r.full_name for r in self.repositories.values()) or "none"
            raise EventRefused(f"no repository {full_name!r} (known: {known})")
        return found

    def user(self, login: str | None) -> GitHubUser:
        """The account named, or the world's first person when none is."""
        if login is None:
            people = [u for u in self.users.values() if u.kind != "Organization"]
            if not people:
                raise EventRefused("the world has no user: add one first")
            return people[0]
        found = self.users.get(login.lower())
        if found is None or found.kind == "Organization":
            known = ", ".join(u.login for u in self.users.values() if u.kind != "Organization")
            raise EventRefused(f"no user {login!r} (known: {known or 'none'})")
        return found

    # -- what can happen ---------------------------------------------------------------------

    def open_pull_request(
        self,
        repo: Repository,
        *,
        title: str,
        user: str | None = None,
        body: str | None = None,
        head: str | None = None,
        base: str | None = None,
        draft: bool = False,
        labels: Iterable[str] = (),
    ) -> PullRequest:
        author = self.user(user).login
        if not title.strip():
            raise EventRefused("a pull request needs a title")
        base = base or repo.default_branch
        if base not in repo.branches:
            raise EventRefused(f"no branch {base!r} in {repo.full_name} to merge into")
        head = head or f"{author.lower()}/{_slug(title)}"
        if head == base:
            raise EventRefused(f"no commits between {base} and {head}")
        for other in repo.pulls.values():
            if other.state == "open" and (other.head, other.base) == (head, base):
                raise EventRefused(
                    f"a pull request already exists for {repo.owner}:{head} (#{other.number})"
                )
        names = self._labels(repo, labels)
        commits: list[Commit] = []
        if head not in repo.branches:
            commit = self._commit(title, author)
            repo.branches[head] = commit.sha
            commits.append(commit)
        else:
            commits.append(self._commit(f"Update {head}", author))
            repo.branches[head] = commits[-1].sha
        at = self.clock()
        pull = PullRequest(
            number=self._number(repo),
            id=next(self._ids),
            title=title,
            body=body,
            user=author,
            head=head,
            base=base,
            base_sha=repo.branches[base],
            commits=commits,
            labels=names,
            created_at=at,
            updated_at=at,
            draft=draft,
        )
        repo.pulls[pull.number] = pull
        return pull

    def open_issue(
        self,
        repo: Repository,
        *,
        title: str,
        user: str | None = None,
        body: str | None = None,
        labels: Iterable[str] = (),
    ) -> Issue:
        if not title.strip():
            raise EventRefused("an issue needs a title")
        author, names = self.user(user).login, self._labels(repo, labels)
        at = self.clock()
        issue = Issue(
            number=self._number(repo),
            id=next(self._ids),
            title=title,
            body=body,
            user=author,
            labels=names,
            created_at=at,
            updated_at=at,
        )
        repo.issues[issue.number] = issue
        return issue

    def pull_request(self, repo: Repository, number: int | None, *, open_only: bool) -> PullRequest:
        """Pull request `number`, or the latest open one."""
        if number is None:
            found = [p for p in repo.pulls.values() if p.state == "open"]
            if not found:
                raise EventRefused(f"{repo.full_name} has no open pull request")
            return found[-1]
        pull = repo.pulls.get(number)
        if pull is None:
            raise EventRefused(f"{repo.full_name} has no pull request #{number}")
        if open_only and pull.state != "open":
            raise EventRefused(f"pull request #{number} is {pull.status}")
        return pull

    def issue(self, repo: Repository, number: int | None, *, open_only: bool) -> Issue:
        """Issue `number`, or the latest open one."""
        if number is None:
            found = [i for i in repo.issues.values() if i.state == "open"]
            if not found:
                raise EventRefused(f"{repo.full_name} has no open issue")
            return found[-1]
        issue = repo.issues.get(number)
        if issue is None:
            raise EventRefused(f"{repo.full_name} has no issue #{number}")
        if open_only and issue.state != "open":
            raise EventRefused(f"issue #{number} is {issue.state}")
        return issue

    def push(
        self, repo: Repository, *, branch: str, messages: Iterable[str], user: str | None = None
    ) -> Push:
        author = self.user(user).login
        if not branch or branch.startswith("refs/"):
            raise EventRefused("a push names its branch without refs/heads/ (main, feature/x)")
        wanted = [m for m in messages if m.strip()]
        if not wanted:
            raise EventRefused("a push needs at least one commit message")
        before = repo.branches.get(branch, ZERO_SHA)
        commits = [self._commit(message, author) for message in wanted]
        repo.branches[branch] = commits[-1].sha
        repo.pushed_at = self.clock()
        return Push(branch, before, commits[-1].sha, commits, author, before == ZERO_SHA)

    # -- events: the world changes, and the webhooks that say so ------------------------------

    def event(self, name: str, **params: Any) -> list[tuple[str, dict[str, Any]]]:
        handler = self.events.get(name)
        if handler is None:
            raise EventRefused(f"unknown event {name!r}; one of {', '.join(sorted(self.events))}")
        return handler(**bind(name, handler, params))

    def _pull_request_opened(
        self,
        *,
        title: str = "Update the README",
        body: str | None = None,
        user: str | None = None,
        head: str | None = None,
        base: str | None = None,
        draft: bool = False,
        labels: list[str] | tuple[str, ...] = (),
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        pull = self.open_pull_request(
            repo,
            title=title,
            body=body,
            user=user,
            head=head,
            base=base,
            draft=draft,
            labels=labels,
        )
        return [("pull_request", self._pull_payload("opened", repo, pull, pull.user))]

    def _pull_request_closed(
        self, *, number: int | None = None, user: str | None = None, repository: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        pull = self.pull_request(repo, number, open_only=True)
        sender = self.user(user).login
        pull.state, pull.closed_at = "closed", self.clock()
        pull.updated_at = pull.closed_at
        return [("pull_request", self._pull_payload("closed", repo, pull, sender))]

    def _pull_request_merged(
        self,
        *,
        number: int | None = None,
        user: str | None = None,
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        pull = self.pull_request(repo, number, open_only=True)
        if pull.draft:
            raise EventRefused(f"pull request #{pull.number} is a draft: it cannot be merged")
        merger = self.user(user).login
        at = self.clock()
        message = f"Merge pull request #{pull.number} from {repo.owner}/{pull.head}\n\n{pull.title}"
        merge = self._commit(message, merger)
        before = repo.branches[pull.base]
        for commit in pull.commits:
            commit.distinct = False  # already pushed, to the head branch
        repo.branches[pull.base] = merge.sha
        repo.pushed_at = at
        pull.state, pull.merged, pull.merged_at, pull.merged_by = "closed", True, at, merger
        pull.closed_at, pull.updated_at, pull.merge_commit_sha = at, at, merge.sha
        push = Push(pull.base, before, merge.sha, [*pull.commits, merge], merger, False)
        return [
            ("pull_request", self._pull_payload("closed", repo, pull, merger)),
            ("push", self._push_payload(repo, push)),
        ]

    def _review_submitted(
        self,
        *,
        number: int | None = None,
        user: str | None = None,
        state: str = "approved",
        body: str | None = None,
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        pull = self.pull_request(repo, number, open_only=True)
        state = state.lower()
        if state not in REVIEW_STATES:
            raise EventRefused(f"a review's state is one of {', '.join(REVIEW_STATES)}")
        if user is None:
            others = [
                u for u in self.users.values() if u.kind != "Organization" and u.login != pull.user
            ]
            reviewer = others[0].login if others else pull.user
        else:
            reviewer = self.user(user).login
        if reviewer == pull.user and state != "commented":
            # GitHub: "Can not approve your own pull request" (and likewise for changes).
            raise EventRefused(
                f"{reviewer} cannot {state.replace('_', ' ')} their own pull request"
            )
        if state != "approved" and not (body or "").strip():
            raise EventRefused(f"a review that is {state} needs a body")
        review = Review(
            next(self._ids), pull.number, reviewer, state, body, pull.head_sha, self.clock()
        )
        pull.reviews.append(review)
        pull.updated_at = review.submitted_at
        payload = {
            "action": "submitted",
            "review": self._review_json(repo, pull, review),
            "pull_request": self._pull_json(repo, pull, simple=True),
            "repository": self._repository_json(repo),
            "sender": self.user_json(self.users[reviewer.lower()]),
        }
        return [("pull_request_review", self._with_organization(repo, payload))]

    def _comment_created(
        self,
        *,
        number: int | None = None,
        body: str = "Looks good to me!",
        user: str | None = None,
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        item: PullRequest | Issue
        if number is None:
            item = self.pull_request(repo, None, open_only=True)
        elif number in repo.pulls:
            item = repo.pulls[number]
        else:
            item = self.issue(repo, number, open_only=False)
        if not body.strip():
            raise EventRefused("a comment needs a body")
        author = self.user(user).login
        comment = Comment(next(self._ids), item.number, author, body, self.clock())
        repo.comments.append(comment)
        item.comments += 1
        item.updated_at = comment.created_at
        payload = {
            "action": "created",
            "issue": self.issue_json(repo, item),
            "comment": self._comment_json(repo, comment, isinstance(item, PullRequest)),
            "repository": self._repository_json(repo),
            "sender": self.user_json(self.users[author.lower()]),
        }
        return [("issue_comment", self._with_organization(repo, payload))]

    def _push(
        self,
        *,
        branch: str | None = None,
        commits: list[str] | tuple[str, ...] | str = ("Update the README",),
        user: str | None = None,
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        messages = [commits] if isinstance(commits, str) else list(commits)
        push = self.push(repo, branch=branch or repo.default_branch, messages=messages, user=user)
        sent = [("push", self._push_payload(repo, push))]
        for pull in repo.pulls.values():
            if pull.state == "open" and pull.head == push.branch:
                # GitHub says a pull request's branch moved with `synchronize`.
                pull.commits.extend(push.commits)
                pull.updated_at = self.clock()
                payload = self._pull_payload("synchronize", repo, pull, push.user)
                rest = {k: v for k, v in payload.items() if k not in ("action", "number")}
                payload = {
                    "action": "synchronize",
                    "number": pull.number,
                    "before": push.before,
                    "after": push.after,
                    **rest,
                }
                sent.append(("pull_request", payload))
        return sent

    def _issue_opened(
        self,
        *,
        title: str = "Something is not right",
        body: str | None = None,
        user: str | None = None,
        labels: list[str] | tuple[str, ...] = (),
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        issue = self.open_issue(repo, title=title, body=body, user=user, labels=labels)
        return [("issues", self.issue_payload("opened", repo, issue, issue.user))]

    def _issue_closed(
        self,
        *,
        number: int | None = None,
        user: str | None = None,
        reason: str = "completed",
        repository: str | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        repo = self.repository(repository)
        issue = self.issue(repo, number, open_only=True)
        if reason not in CLOSE_REASONS:
            raise EventRefused(f"an issue is closed as one of {', '.join(CLOSE_REASONS)}")
        sender = self.user(user).login
        issue.state, issue.state_reason, issue.closed_at = "closed", reason, self.clock()
        issue.updated_at = issue.closed_at
        return [("issues", self.issue_payload("closed", repo, issue, sender))]

    def act(
        self, repo: Repository, number: int, change: str, sender: str, value: str | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """A change made through GitHub's API (what a card's button asks, SPEC §20) to an
        issue or pull request of the world: `close`, `reopen`, `assign` (`value` the login)
        or `label` (`value` the label's name), by `sender` (a login of the world, else its
        first person); the webhook GitHub then sends (none when nothing changed, as GitHub
        sends none for a label already there)."""
        item: PullRequest | Issue | None = repo.pulls.get(number) or repo.issues.get(number)
        if item is None:
            raise EventRefused(f"no issue or pull request #{number} in {repo.full_name}")
        login = self.user(sender if sender.lower() in self.users else None).login
        extra: dict[str, Any] = {}
        if change == "close" and item.state == "open":
            item.state, item.closed_at, action = "closed", self.clock(), "closed"
            if isinstance(item, Issue):
                item.state_reason = "completed"
        elif change == "reopen" and item.state == "closed" and not getattr(item, "merged", False):
            item.state, item.closed_at, action = "open", None, "reopened"
            if isinstance(item, Issue):
                item.state_reason = "reopened"
        elif change == "assign" and value and value.lower() in self.users:
            assignee = self.users[value.lower()]
            if assignee.login in item.assignees:
                return []
            item.assignees.append(assignee.login)
            action, extra = "assigned", {"assignee": self.user_json(assignee)}
        elif change == "label" and value in repo.labels:
            if value in item.labels:
                return []
            item.labels.append(value)
            action, extra = "labeled", {"label": self.label_json(repo, value)}
        else:
            return []
        item.updated_at = self.clock()
        if isinstance(item, PullRequest):
            payload = self._pull_payload(action, repo, item, login)
            header = "pull_request"
        else:
            payload, header = self.issue_payload(action, repo, item, login), "issues"
        if extra:  # after the item, before `repository`, as GitHub orders them
            at = list(payload).index("repository")
            ordered = list(payload.items())
            payload = dict([*ordered[:at], *extra.items(), *ordered[at:]])
        return [(header, payload)]

    # -- payloads ----------------------------------------------------------------------------

    def ping_payload(
        self, repo: Repository, hook: dict[str, Any], sender: GitHubUser
    ) -> dict[str, Any]:
        """The `ping` GitHub sends to a hook when it is created (and on demand)."""
        payload = {
            "zen": ZEN[hook["id"] % len(ZEN)],
            "hook_id": hook["id"],
            "hook": hook,
            "repository": self._repository_json(repo),
            "sender": self.user_json(sender),
        }
        return self._with_organization(repo, payload)

    def _assignees_json(self, logins: list[str]) -> dict[str, Any]:
        people = [self.user_json(self.users[login.lower()]) for login in logins]
        return {"assignee": people[0] if people else None, "assignees": people}

    def _pull_payload(
        self, action: str, repo: Repository, pull: PullRequest, sender: str
    ) -> dict[str, Any]:
        payload = {
            "action": action,
            "number": pull.number,
            "pull_request": self._pull_json(repo, pull),
            "repository": self._repository_json(repo),
            "sender": self.user_json(self.users[sender.lower()]),
        }
        return self._with_organization(repo, payload)

    def issue_payload(
        self, action: str, repo: Repository, issue: Issue, sender: str
    ) -> dict[str, Any]:
        payload = {
            "action": action,
            "issue": self.issue_json(repo, issue),
            "repository": self._repository_json(repo),
            "sender": self.user_json(self.users[sender.lower()]),
        }
        return self._with_organization(repo, payload)

    def _push_payload(self, repo: Repository, push: Push) -> dict[str, Any]:
        pusher = self.users[push.user.lower()]
        if push.created:
            compare = f"{repo.html_url}/commit/{push.after}"
        else:
            compare = f"{repo.html_url}/compare/{push.before[:12]}...{push.after[:12]}"
        commits = [self._commit_json(repo, commit) for commit in push.commits]
        payload = {
            "ref": f"refs/heads/{push.branch}",
            "before": push.before,
            "after": push.after,
            "repository": self._repository_json(repo, push=True),
            "pusher": {"name": pusher.login, "email": pusher.email},
            "sender": self.user_json(pusher),
            "created": push.created,
            "deleted": False,
            "forced": False,
            "base_ref": None,
            "compare": compare,
            "commits": commits,
            "head_commit": commits[-1],
        }
        return self._with_organization(repo, payload)

    def _with_organization(self, repo: Repository, payload: dict[str, Any]) -> dict[str, Any]:
        """An organization's repository's webhooks name the organization too."""
        owner = self.users[repo.owner.lower()]
        if owner.kind != "Organization":
            return payload
        api = f"{API}/orgs/{owner.login}"
        organization = {
            "login": owner.login,
            "id": owner.id,
            "node_id": node_id("Organization", owner.id),
            "url": api,
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events",
            "hooks_url": f"{api}/hooks",
            "issues_url": f"{api}/issues",
            "members_url": f"{api}/members{{/member}}",
            "public_members_url": f"{api}/public_members{{/member}}",
            "avatar_url": owner.avatar_url,
            "description": "",
        }
        ordered = {k: v for k, v in payload.items() if k != "sender"}
        return {**ordered, "organization": organization, "sender": payload["sender"]}

    @staticmethod
    def user_json(user: GitHubUser) -> dict[str, Any]:
        api = f"{API}/users/{user.login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": node_id(user.kind if user.kind != "Bot" else "Bot", user.id),
            "avatar_url": user.avatar_url,
            "gravatar_id": "",
            "url": api,
            "html_url": f"{WEB}/{user.login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.kind,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _repository_json(self, repo: Repository, *, push: bool = False) -> dict[str, Any]:
        owner = self.users[repo.owner.lower()]
        api, web = repo.api_url, repo.html_url
        owner_json = self.user_json(owner)
        if push:
            # A push's repository names its owner with name and email, and its times as
            # epoch seconds.
            owner_json = {"name": owner.login, "email": owner.email, **owner_json}
        open_issues = repo.open_issues()
        found: dict[str, Any] = {
            "id": repo.id,
            "node_id": node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": False,
            "owner": owner_json,
            "html_url": web,
            "description": repo.description,
            "fork": False,
            "url": web if push else api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": (int(repo.created_at.timestamp()) if push else iso(repo.created_at)),
            "updated_at": iso(repo.pushed_at),
            "pushed_at": int(repo.pushed_at.timestamp()) if push else iso(repo.pushed_at),
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "clone_url": f"{web}.git",
            "svn_url": web,
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": "Python",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_issues,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "public",
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
            "default_branch": repo.default_branch,
        }
        if push:
            found.update(stargazers=0, master_branch=repo.default_branch)
        found["custom_properties"] = {}
        return found

    def label_json(self, repo: Repository, name: str) -> dict[str, Any]:
        label = repo.labels[name]
        return {
            "id": label.id,
            "node_id": node_id("Label", label.id),
            "url": f"{repo.api_url}/labels/{label.name.replace(' ', '%20')}",
            "name": label.name,
            "color": label.color,
            "default": label.default,
            "description": label.description,
            "archived_at": None,
            "archived_by": None,
        }

    def _pull_json(
        self, repo: Repository, pull: PullRequest, *, simple: bool = False
    ) -> dict[str, Any]:
        api = f"{repo.api_url}/pulls/{pull.number}"
        html = f"{repo.html_url}/pull/{pull.number}"
        issue_api = f"{repo.api_url}/issues/{pull.number}"
        statuses = f"{repo.api_url}/statuses/{pull.head_sha}"
        author = self.users[pull.user.lower()]
        found: dict[str, Any] = {
            "url": api,
            "id": pull.id,
            "node_id": node_id("PullRequest", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue_api,
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self.user_json(author),
            "body": pull.body,
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            **self._assignees_json(pull.assignees),
            "requested_reviewers": [],
            "requested_teams": [],
            "labels": [self.label_json(repo, name) for name in pull.labels],
            "milestone": None,
            "draft": pull.draft,
            "commits_url": f"{api}/commits",
            "review_comments_url": f"{api}/comments",
            "review_comment_url": f"{repo.api_url}/pulls/comments{{/number}}",
            "comments_url": f"{issue_api}/comments",
            "statuses_url": statuses,
            "head": self._ref_json(repo, pull.head, pull.head_sha),
            "base": self._ref_json(repo, pull.base, pull.base_sha),
            "_links": {
                "self": {"href": api},
                "html": {"href": html},
                "issue": {"href": issue_api},
                "comments": {"href": f"{issue_api}/comments"},
                "review_comments": {"href": f"{api}/comments"},
                "review_comment": {"href": f"{repo.api_url}/pulls/comments{{/number}}"},
                "commits": {"href": f"{api}/commits"},
                "statuses": {"href": statuses},
            },
            "author_association": self._association(repo, pull.user),
            "auto_merge": None,
            "active_lock_reason": None,
        }
        if simple:
            return found
        merger = self.users[pull.merged_by.lower()] if pull.merged_by else None
        found.update(
            merged=pull.merged,
            mergeable=None if pull.state == "open" else pull.merged or None,
            rebaseable=None,
            mergeable_state="unknown" if pull.state == "open" else "clean",
            merged_by=self.user_json(merger) if merger else None,
            comments=pull.comments,
            review_comments=0,
            maintainer_can_modify=False,
            commits=len(pull.commits),
            additions=len(pull.commits),
            deletions=len(pull.commits),
            changed_files=1,
        )
        return found

    def _ref_json(self, repo: Repository, branch: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{repo.owner}:{branch}",
            "ref": branch,
            "sha": sha,
            "user": self.user_json(self.users[repo.owner.lower()]),
            "repo": self._repository_json(repo),
        }

    def issue_json(self, repo: Repository, item: PullRequest | Issue) -> dict[str, Any]:
        api = f"{repo.api_url}/issues/{item.number}"
        is_pull = isinstance(item, PullRequest)
        html = f"{repo.html_url}/{'pull' if is_pull else 'issues'}/{item.number}"
        found: dict[str, Any] = {
            "url": api,
            "repository_url": repo.api_url,
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": html,
            "id": item.id,
            "node_id": node_id("PullRequest" if is_pull else "Issue", item.id),
            "number": item.number,
            "title": item.title,
            "user": self.user_json(self.users[item.user.lower()]),
            "labels": [self.label_json(repo, name) for name in item.labels],
            "state": item.state,
            "locked": False,
            **self._assignees_json(item.assignees),
            "milestone": None,
            "comments": item.comments,
            "created_at": iso(item.created_at),
            "updated_at": iso(item.updated_at),
            "closed_at": iso(item.closed_at),
            "author_association": self._association(repo, item.user),
            "active_lock_reason": None,
        }
        if isinstance(item, PullRequest):
            found["draft"] = item.draft
            found["pull_request"] = {
                "url": f"{repo.api_url}/pulls/{item.number}",
                "html_url": html,
                "diff_url": f"{html}.diff",
                "patch_url": f"{html}.patch",
                "merged_at": iso(item.merged_at),
            }
        found["body"] = item.body
        found["reactions"] = _reactions(f"{api}/reactions")
        found["timeline_url"] = f"{api}/timeline"
        found["performed_via_github_app"] = None
        if isinstance(item, Issue):
            found["state_reason"] = item.state_reason
        return found

    def _comment_json(self, repo: Repository, comment: Comment, on_pull: bool) -> dict[str, Any]:
        api = f"{repo.api_url}/issues/comments/{comment.id}"
        kind = "pull" if on_pull else "issues"
        return {
            "url": api,
            "html_url": f"{repo.html_url}/{kind}/{comment.number}#issuecomment-{comment.id}",
            "issue_url": f"{repo.api_url}/issues/{comment.number}",
            "id": comment.id,
            "node_id": node_id("IssueComment", comment.id),
            "user": self.user_json(self.users[comment.user.lower()]),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.created_at),
            "author_association": self._association(repo, comment.user),
            "body": comment.body,
            "reactions": _reactions(f"{api}/reactions"),
            "performed_via_github_app": None,
        }

    def _review_json(self, repo: Repository, pull: PullRequest, review: Review) -> dict[str, Any]:
        html = f"{repo.html_url}/pull/{pull.number}#pullrequestreview-{review.id}"
        api = f"{repo.api_url}/pulls/{pull.number}"
        return {
            "id": review.id,
            "node_id": node_id("PullRequestReview", review.id),
            "user": self.user_json(self.users[review.user.lower()]),
            "body": review.body,
            "commit_id": review.commit_id,
            "submitted_at": iso(review.submitted_at),
            "state": review.state,
            "html_url": html,
            "pull_request_url": api,
            "author_association": self._association(repo, review.user),
            "_links": {"html": {"href": html}, "pull_request": {"href": api}},
        }

    def _commit_json(self, repo: Repository, commit: Commit) -> dict[str, Any]:
        author = self.users[commit.author.lower()]
        person = {"name": author.name or author.login, "email": author.email}
        return {
            "id": commit.sha,
            "tree_id": commit.tree_id,
            "distinct": commit.distinct,
            "message": commit.message,
            "timestamp": iso(commit.timestamp),
            "url": f"{repo.html_url}/commit/{commit.sha}",
            "author": {**person, "username": author.login},
            "committer": {**person, "username": author.login},
            "added": [],
            "removed": [],
            "modified": list(commit.modified),
        }

    @staticmethod
    def _association(repo: Repository, login: str) -> str:
        return "OWNER" if login == repo.owner else "CONTRIBUTOR"

    # -- helpers -----------------------------------------------------------------------------

    def _number(self, repo: Repository) -> int:
        number = repo.next_number
        repo.next_number += 1
        return number

    def _labels(self, repo: Repository, labels: Iterable[str]) -> list[str]:
        names = list(dict.fromkeys(labels))
        unknown = [name for name in names if name not in repo.labels]
        if unknown:
            raise EventRefused(
                f"no label {', '.join(map(repr, unknown))} in {repo.full_name} "
                f"(known: {', '.join(repo.labels) or 'none'})"
            )
        return names

    def _commit(self, message: str, author: str) -> Commit:
        serial = str(next(self._serial))
        sha = hashlib.sha1(f"{serial}\0{author}\0{message}".encode()).hexdigest()  # noqa: S324
        tree = hashlib.sha1(f"tree\0{serial}".encode()).hexdigest()  # noqa: S324
        return Commit(sha, tree, message, author, self.clock())


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40] or "patch"


def _reactions(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "total_count": 0,
        "+1": 0,
        "-1": 0,
        "laugh": 0,
        "hooray": 0,
        "confused": 0,
        "heart": 0,
        "rocket": 0,
        "eyes": 0,
    }
