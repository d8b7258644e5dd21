"""Subscriptions (SPEC §12): the filters over real notices (octokit's GitHub payloads
rendered by the GitHub notifier, Atlassian's Jira examples by the Jira one), each alone and
combined; and the API through the real sync service, on the session's broker and database."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from services.sync.subscriptions.filters import (
    Authors,
    Filters,
    Labels,
    filtered,
    filters_of,
    glob_problem,
)
from shared.providers.github.notify import NOTIFIER as GITHUB
from shared.providers.jira.notify import NOTIFIER as JIRA
from shared.providers.notify import Notice
from tests.support import github_corpus

JIRA_PAYLOADS = Path(__file__).parents[1] / "providers" / "jira_payloads"


def payload(relative: str) -> dict[str, Any]:
    return dict(json.loads((github_corpus()[0].parents[1] / relative).read_text()))


def github(relative: str, change: Any = None) -> Notice:
    """The notice of a corpus payload (`pull_request/opened.payload.json`), optionally
    changed first by `change(payload)`."""
    data = copy.deepcopy(payload(relative))
    if change is not None:
        change(data)
    return GITHUB.notice(relative.split("/")[0], data)


def jira(name: str, change: Any = None) -> Notice:
    data = json.loads((JIRA_PAYLOADS / name).read_text())
    if change is not None:
        change(data)
    return JIRA.notice(None, data)


def pushed_to(branch: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        data["ref"] = f"refs/heads/{branch}"

    return change


def by_bot(data: dict[str, Any]) -> None:
    data["sender"]["login"] = "dependabot[bot]"
    data["sender"]["type"] = "Bot"


def as_draft(data: dict[str, Any]) -> None:
    data["pull_request"]["draft"] = True


PR_OPENED = "pull_request/opened.payload.json"  # Codertocat/Hello-World#2, base master, `bug`
ISSUE_OPENED = "issues/opened.payload.json"  # Codertocat/Hello-World#1, `bug`
PUSH = "push/with-new-branch.payload.json"  # to master: a default event


# --- the filters, each alone -------------------------------------------------------------


def test_without_events_the_providers_defaults_apply() -> None:
    none = Filters()
    assert filtered(none, github(PR_OPENED)) is None
    assert filtered(none, github(PUSH)) is None
    assert filtered(none, github("pull_request/labeled.payload.json")) == "event"
    assert filtered(none, github("check_run/completed.payload.json")) == "event"
    assert filtered(none, jira("issue_created.json")) is None
    assert filtered(none, jira("issue_updated_status.json")) is None
    # An update that changed no status is not a default.
    assert filtered(none, jira("issue_updated.json")) == "event"


def test_events_and_wildcards() -> None:
    prs = Filters(events=("pull_request.*",))
    assert filtered(prs, github("pull_request/labeled.payload.json")) is None
    assert filtered(prs, github(ISSUE_OPENED)) == "event"
    merged = Filters(events=("pull_request.merged",))
    closed = github(
        "pull_request/closed.payload.json",
        lambda d: d["pull_request"].__setitem__("merged", True),
    )
    assert closed.event == "pull_request.merged"
    assert filtered(merged, closed) is None
    assert filtered(merged, github("pull_request/closed.payload.json")) == "event"
    assert filtered(Filters(events=("*",)), github("check_run/completed.payload.json")) is None
    failed = github("check_run/completed.1.payload.json")
    assert filtered(Filters(events=("check_run.fail*",)), failed) is None
    assert filtered(Filters(events=("push",)), github("push/payload.json")) is None
    assert filtered(Filters(events=("issue.*",)), jira("issue_updated.json")) is None


def test_exclude_events() -> None:
    everything_but_labels = Filters(events=("*",), exclude_events=("*.labeled", "*.unlabeled"))
    assert filtered(everything_but_labels, github(PR_OPENED)) is None
    label = github("pull_request/labeled.payload.json")
    assert filtered(everything_but_labels, label) == "excluded_event"
    # Exclusions apply to the defaults too.
    assert filtered(Filters(exclude_events=("push",)), github(PUSH)) == "excluded_event"


def test_repositories_with_globs_and_without_regard_to_case() -> None:
    assert filtered(Filters(repositories=("codertocat/hello-world",)), github(PR_OPENED)) is None
    assert filtered(Filters(repositories=("Codertocat/*",)), github(PR_OPENED)) is None
    assert filtered(Filters(repositories=("octo-org/*",)), github(PR_OPENED)) == "repository"
    run = github("workflow_run/completed.payload.json")  # octo-org/octo-repo
    several = Filters(events=("*",), repositories=("other/x", "octo-org/*"))
    assert filtered(several, run) is None


def test_projects() -> None:
    assert filtered(Filters(projects=("SP",)), jira("issue_created.json")) is None
    assert filtered(Filters(projects=("sp",)), jira("comment_created.json")) is None
    assert filtered(Filters(projects=("JRA",)), jira("issue_created.json")) == "project"
    # A sprint names no project: a projects filter cannot judge it, and keeps it.
    sprint = jira("sprint_started.json")
    assert filtered(Filters(events=("sprint.*",), projects=("JRA",)), sprint) is None


@pytest.mark.parametrize(
    ("relative", "branch_of"),
    [
        (PUSH, lambda d: d.__setitem__("ref", "refs/heads/release/1.2")),
        (PR_OPENED, lambda d: d["pull_request"]["base"].__setitem__("ref", "release/1.2")),
        (
            "check_run/completed.payload.json",
            lambda d: d["check_run"]["check_suite"].__setitem__("head_branch", "release/1.2"),
        ),
        ("deployment/payload.json", lambda d: d["deployment"].__setitem__("ref", "release/1.2")),
        (
            "deployment_status/payload.json",
            lambda d: d["deployment"].__setitem__("ref", "release/1.2"),
        ),
        (
            "workflow_run/completed.payload.json",
            lambda d: d["workflow_run"].__setitem__("head_branch", "release/1.2"),
        ),
    ],
    ids=["push", "pull_request base", "check_run", "deployment", "deployment_status", "workflow"],
)
def test_branch_globs_on_every_event_with_a_branch(relative: str, branch_of: Any) -> None:
    notice = github(relative, branch_of)
    assert notice.branch == "release/1.2", notice
    kept = Filters(events=("*",), branches=("main", "release/*"))
    assert filtered(kept, notice) is None
    assert filtered(Filters(events=("*",), branches=("main",)), notice) == "branch"
    # Branch names are case-sensitive, as in git.
    assert filtered(Filters(events=("*",), branches=("Release/*",)), notice) == "branch"


def test_a_notice_without_a_branch_is_not_filtered_by_branches() -> None:
    issue = github(ISSUE_OPENED)
    assert issue.branch is None
    assert filtered(Filters(branches=("main",)), issue) is None


def test_labels_any_all_none() -> None:
    bug = github(PR_OPENED)  # labelled `bug`
    assert bug.labels == ("bug",)
    assert filtered(Filters(labels=Labels(any=("BUG", "feature"))), bug) is None
    assert filtered(Filters(labels=Labels(any=("feature",))), bug) == "label"
    assert filtered(Filters(labels=Labels(all=("bug",))), bug) is None
    assert filtered(Filters(labels=Labels(all=("bug", "urgent"))), bug) == "label"
    assert filtered(Filters(labels=Labels(none=("wontfix",))), bug) is None
    assert filtered(Filters(labels=Labels(none=("bug",))), bug) == "label"

    def two_labels(data: dict[str, Any]) -> None:
        data["issue"]["labels"].append({**data["issue"]["labels"][0], "name": "urgent"})

    urgent_bug = github(ISSUE_OPENED, two_labels)
    assert filtered(Filters(labels=Labels(all=("bug", "urgent"))), urgent_bug) is None
    assert filtered(Filters(labels=Labels(any=("bug",), none=("urgent",))), urgent_bug) == "label"
    # A comment on an issue carries the issue's labels.
    comment = github("issue_comment/created.payload.json")
    assert filtered(Filters(events=("*",), labels=Labels(any=("bug",))), comment) is None
    # A push has no labels to judge: kept.
    assert filtered(Filters(labels=Labels(any=("bug",))), github(PUSH)) is None


def test_authors_excluded_by_login_or_glob() -> None:
    pr = github(PR_OPENED)  # by Codertocat
    assert filtered(Filters(authors=Authors(exclude=("codertocat",))), pr) == "author"
    assert filtered(Filters(authors=Authors(exclude=("coder*",))), pr) == "author"
    assert filtered(Filters(authors=Authors(exclude=("octocat",))), pr) is None
    comment = jira("comment_created.json")
    assert filtered(Filters(authors=Authors(exclude=("5b10ac8d*",))), comment) == "author"


def test_bots_are_kept_unless_left_out() -> None:
    bot_pr = github(PR_OPENED, by_bot)
    assert bot_pr.actor is not None and bot_pr.actor.bot
    assert filtered(Filters(), bot_pr) is None
    assert filtered(Filters(authors=Authors()), bot_pr) is None
    assert filtered(Filters(authors=Authors(bots=False)), bot_pr) == "bot"
    assert filtered(Filters(authors=Authors(bots=False)), github(PR_OPENED)) is None
    # `exclude` names one bot where `bots: false` would leave out all of them.
    assert filtered(Filters(authors=Authors(exclude=("dependabot*",))), bot_pr) == "author"


def test_drafts_are_quiet_until_ready_for_review() -> None:
    draft = github(PR_OPENED, as_draft)
    assert draft.draft
    assert filtered(Filters(), draft) == "draft"
    assert filtered(Filters(drafts=True), draft) is None
    ready = github("pull_request/ready_for_review.payload.json")
    assert not ready.draft
    assert filtered(Filters(), ready) is None
    converted = github("pull_request/converted_to_draft.payload.json")
    assert filtered(Filters(events=("pull_request.*",)), converted) == "draft"
    assert filtered(Filters(events=("pull_request.*",), drafts=True), converted) is None


def test_quiet_and_disabled() -> None:
    no_op = github("issues/edited.payload.json")
    assert no_op.quiet is not None
    assert filtered(Filters(events=("*",)), no_op) == "quiet"
    assert filtered(Filters(enabled=False), github(PR_OPENED)) == "disabled"


# --- combined ----------------------------------------------------------------------------


def test_filters_combined_give_the_first_reason() -> None:
    subscription = filters_of(
        {
            "events": ["pull_request.*", "push"],
            "exclude_events": ["pull_request.synchronize"],
            "repositories": ["Codertocat/*"],
            "branches": ["master", "release/*"],
            "labels": {"any": ["bug"], "none": ["wontfix"]},
            "authors": {"exclude": ["octocat"], "bots": False},
            "drafts": False,
        }
    )
    assert filtered(subscription, github(PR_OPENED)) is None
    assert filtered(subscription, github(PUSH)) is None
    assert filtered(subscription, github(ISSUE_OPENED)) == "event"
    assert filtered(subscription, github("pull_request/synchronize.payload.json")) == (
        "excluded_event"
    )
    other_repo = github(PR_OPENED, lambda d: d["repository"].__setitem__("full_name", "octo-org/x"))
    assert filtered(subscription, other_repo) == "repository"
    assert filtered(subscription, github(PUSH, pushed_to("feature/x"))) == "branch"

    def wontfix(data: dict[str, Any]) -> None:
        data["pull_request"]["labels"].append(
            {**data["pull_request"]["labels"][0], "name": "wontfix"}
        )

    assert filtered(subscription, github(PR_OPENED, wontfix)) == "label"
    assert filtered(subscription, github(PR_OPENED, by_bot)) == "bot"

    def by_octocat(data: dict[str, Any]) -> None:
        data["sender"]["login"] = "octocat"

    assert filtered(subscription, github(PR_OPENED, by_octocat)) == "author"
    assert filtered(subscription, github(PR_OPENED, as_draft)) == "draft"

    # A bot's draft: the first reason in the documented order (`bot` before `draft`).
    def bot_draft(data: dict[str, Any]) -> None:
        by_bot(data)
        as_draft(data)

    both = github(PR_OPENED, bot_draft)
    assert filtered(subscription, both) == "bot"


def test_stored_subscription_defaults() -> None:
    stored = filters_of({"channel_id": "ch_1", "enabled": True})
    assert stored == Filters()
    assert filters_of({"authors": {"exclude": ["x"]}}).authors == Authors(exclude=("x",))


@pytest.mark.parametrize(
    ("pattern", "bad"),
    [("main", False), ("release/*", False), ("v[0-9]*", False), ("[!x]y", False),
     ("", True), ("  ", True), ("release/[", True), ("a]b", True), (" main", True)],
)  # fmt: skip
def test_glob_problems(pattern: str, bad: bool) -> None:
    assert (glob_problem(pattern) is not None) == bad
