"""GitLab's webhooks rendered (SPEC §16): a merge request or an issue is one thread whose
state follows it, comments land in it, a ref's pipeline failing opens a thread that its
recovery closes; pushes list their commits; outside text stays text. Payloads from
shared/providers/gitlab/samples (their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.sync.subscriptions.filters import Authors, Filters, Labels, filtered, problems
from shared.providers.github.notify import NOTIFIER as GITHUB
from shared.providers.gitlab.notify import NOTIFIER, PUSH_COMMITS
from shared.providers.notify import Notice, Unrenderable
from tests.providers.mutations import survives
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, links, plain
from tests.providers.samples import load


def sample(name: str) -> dict[str, Any]:
    return load("gitlab", name)


def render(payload: dict[str, Any]) -> Notice:
    """As the gateway names it: `object_kind`, `.action` when there is one (strings only)."""
    kind = payload.get("object_kind")
    attributes = payload.get("object_attributes")
    action = attributes.get("action") if isinstance(attributes, dict) else None
    header = kind if isinstance(kind, str) else None
    if header and isinstance(action, str):
        header += f".{action}"
    return NOTIFIER.notice(header, payload)


def merge_request(action: str, state: str = "opened") -> dict[str, Any]:
    payload = sample("merge_request_open")
    payload["object_attributes"].update(action=action, state=state)
    return payload


def pipeline(status: str) -> dict[str, Any]:
    """GitLab's documented pipeline event with its status (and a job's) set to `status`:
    the docs show one pipeline, so a failure and its recovery are the same pipeline's."""
    payload = sample("pipeline")
    payload["object_attributes"]["status"] = status
    payload["builds"][2]["status"] = status
    return payload


def test_a_merge_request_opened_names_its_branches_labels_and_thread() -> None:
    notice = render(sample("merge_request_open"))
    assert notice.event == "merge_request.opened" and notice.default
    assert notice.item == "gitlabhq/gitlab-test!1" and notice.resolved is False
    assert notice.repository == "gitlabhq/gitlab-test" and notice.branch == "master"
    assert notice.labels == ("API",) and notice.draft is False
    assert notice.actor is not None and notice.actor.login == "user1"
    assert notice.started_at == datetime(2013, 12, 3, 17, 23, 34, tzinfo=UTC)
    seen = plain(notice.text)
    assert "User1 opened merge request !1 MS-Viewport in gitlabhq/gitlab-test" in seen
    assert "(ms-viewport → master)" in seen
    assert ("http://example.com/diaspora/merge_requests/1", "!1 MS-Viewport") in links(notice.text)
    assert notice.item_card is not None and notice.item_card.state == "opened"
    fields = {f.name: f.value for f in notice.item_card.fields}
    assert fields["Target branch"] == "master" and fields["Labels"] == "API"
    assert fields["Source branch"] == "ms-viewport" and fields["Assignees"] == "user1"
    assert notice.card is not None
    assert {f.name: f.value for f in notice.card.fields}["Source branch"] == "ms-viewport"


def test_a_merge_request_opened_approved_merged_is_one_item_that_resolves() -> None:
    opened = render(sample("merge_request_open"))
    # Zulip's approval is of another project's merge request: made this one's.
    approved_payload = sample("merge_request_approved")
    approved_payload["project"] = sample("merge_request_open")["project"]
    approved_payload["object_attributes"]["iid"] = 1
    approved = render(approved_payload)
    merged = render(merge_request("merge", "merged"))
    assert opened.item == approved.item == merged.item == "gitlabhq/gitlab-test!1"
    assert [opened.resolved, approved.resolved, merged.resolved] == [False, None, True]
    assert approved.event == "merge_request.approved" and not approved.default
    assert approved.actor is not None and approved.actor.login == "eeshangargtest"
    assert "Eeshan Garg approved merge request" in plain(approved.text)
    assert merged.event == "merge_request.merged" and merged.default
    assert "User1 merged merge request !1 MS-Viewport into master in gitlabhq/gitlab-test" in (
        plain(merged.text)
    )
    assert merged.item_card is not None and merged.item_card.state == "merged"
    assert merged.item_card.color == "#8250df"


@pytest.mark.parametrize(
    ("action", "state", "event", "resolved"),
    [
        ("close", "closed", "merge_request.closed", True),
        ("reopen", "opened", "merge_request.reopened", False),
        ("unapproved", "opened", "merge_request.unapproved", None),
        ("approval", "opened", "merge_request.approval", None),
    ],
)
def test_each_merge_request_action_has_its_name_and_lifecycle(
    action: str, state: str, event: str, resolved: bool | None
) -> None:
    notice = render(merge_request(action, state))
    assert notice.event == event and notice.resolved is resolved
    assert notice.item == "gitlabhq/gitlab-test!1"


def test_an_update_says_what_changed_and_one_that_changed_nothing_is_quiet() -> None:
    notice = render(merge_request("update"))
    assert notice.quiet is None and "labels" in notice.changed
    assert "Labels: API → Platform" in plain(notice.text)
    nothing = merge_request("update")
    nothing["changes"] = {"updated_at": {"previous": "a", "current": "b"}}
    assert render(nothing).quiet is not None
    pushed = merge_request("update")
    pushed["object_attributes"]["oldrev"] = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert "pushed new commits to merge request !1" in plain(render(pushed).text)


def test_an_update_without_changes_is_shown_in_its_thread_as_it_is_now() -> None:
    """Zulip's capture of a description edit (older GitLab sends no `changes`), which Zulip
    shows as "Tomasz Kolek updated MR #3 (assigned to Tomasz Kolek): updated desc"."""
    notice = render(sample("merge_request_update"))
    assert notice.event == "merge_request.updated" and notice.quiet is None
    assert notice.item == "tomaszkolek0/my-awesome-project!3" and not notice.default
    seen = plain(notice.text)
    assert "Tomasz Kolek updated merge request !3 New Merge Request in" in seen
    assert "> updated desc" in notice.text
    assert notice.item_card is not None
    fields = {f.name: f.value for f in notice.item_card.fields}
    assert fields["Source branch"] == "tomek" and fields["Target branch"] == "master"
    assert fields["Assignees"] == "tomaszkolek0"


def test_a_draft_is_marked_for_the_drafts_filter() -> None:
    payload = sample("merge_request_open")
    payload["object_attributes"]["draft"] = True
    notice = render(payload)
    assert notice.draft and "opened draft merge request" in plain(notice.text)
    assert notice.item_card is not None and notice.item_card.state == "draft"


def test_a_comment_lands_in_its_merge_requests_thread_quoted() -> None:
    notice = render(sample("note_merge_request"))
    assert notice.event == "note.merge_request" and notice.resolved is None
    assert notice.item == "gitlab-org/gitlab-test!1"
    assert notice.labels == ("Afterpod", "Element")
    assert "> This MR needs work." in notice.text
    assert (
        "http://example.com/gitlab-org/gitlab-test/merge_requests/1#note_1244",
        "!1 Tempora et eos debitis quae laborum et.",
    ) in links(notice.text)


def test_a_comment_on_an_issue_is_in_the_issues_thread() -> None:
    payload = sample("note_merge_request")
    payload["object_attributes"]["noteable_type"] = "Issue"
    payload["issue"] = sample("issue_open")["object_attributes"]
    notice = render(payload)
    assert notice.event == "note.issue" and notice.item == "gitlab-org/gitlab-test#23"
    commit = sample("note_merge_request")
    commit["object_attributes"]["noteable_type"] = "Commit"
    commit["commit"] = {"id": "cfe32cf61b73a0d5e9f13e774abde7ff789b1660"}
    notice = render(commit)
    assert notice.event == "note.commit" and notice.item is None
    assert "commented on commit cfe32cf6" in plain(notice.text)


def test_an_issue_opened_then_closed_is_one_item() -> None:
    opened = render(sample("issue_open"))
    closed_payload = sample("issue_open")
    closed_payload["object_attributes"].update(action="close", state="closed")
    closed = render(closed_payload)
    assert opened.event == "issue.opened" and closed.event == "issue.closed"
    assert opened.item == closed.item == "gitlabhq/gitlab-test#23"
    assert (opened.resolved, closed.resolved) == (False, True)
    assert opened.default and closed.default
    assert "> Create new API for manipulations with repository" in opened.text


def test_a_pipeline_failed_then_succeeded_is_a_thread_its_recovery_needs() -> None:
    failed = render(pipeline("failed"))
    recovered = render(pipeline("success"))
    assert failed.event == "pipeline.failed" and recovered.event == "pipeline.recovered"
    assert failed.item == recovered.item == "gitlab-org/gitlab-test@master:pipeline"
    assert (failed.resolved, recovered.resolved) == (False, True)
    assert (failed.needs_root, recovered.needs_root) == (False, True)
    assert failed.default and recovered.default and failed.branch == "master"
    seen = plain(failed.text)
    assert "Pipeline #31 failed on master in gitlab-org/gitlab-test" in seen
    assert "test-build" in seen and "test-image" not in seen  # only the failed job
    assert failed.card is not None and failed.card.color == "#cf222e"
    assert "passed again" in plain(recovered.text)
    running = render(pipeline("running"))
    assert running.quiet is not None and not running.default


def test_a_job_failure_has_its_own_item_unless_allowed_to_fail() -> None:
    payload = sample("job")
    payload["build_status"] = "failed"
    failed = render(payload)
    assert failed.event == "job.failed" and failed.resolved is False
    assert failed.item == "jsmithy2/release-tools-fake@main:job:auto_deploy:start"
    assert failed.repository == "jsmithy2/release-tools-fake"
    assert "unknown failure" in plain(failed.text)
    recovered = render(sample("job"))
    assert recovered.item == failed.item and recovered.needs_root and recovered.resolved
    payload["build_allow_failure"] = True
    assert render(payload).quiet is not None


def test_a_push_lists_commits_and_counts_the_rest() -> None:
    notice = render(sample("push"))
    assert notice.event == "push" and notice.default  # to the default branch
    assert notice.branch == "master" and notice.item is None
    seen = plain(notice.text)
    assert "John Smith pushed 4 commits to master in mike/diaspora" in seen
    assert "fixed readme — GitLab dev user" in seen and "and 2 more commits" in seen
    hrefs = [href for href, _ in links(notice.text)]
    assert (
        "http://example.com/mike/diaspora/-/compare/"
        "95790bf891e76fee5e1747ab589903a6a1f80f22...da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    ) in hrefs
    many = sample("push")
    commit = many["commits"][1]
    many["commits"] = [dict(commit, id=f"{n:040x}") for n in range(PUSH_COMMITS + 3)]
    many["total_commits_count"] = PUSH_COMMITS + 3
    assert "and 3 more commits" in plain(render(many).text)


def test_a_new_or_deleted_branch_and_a_tag_are_one_line() -> None:
    created = sample("push")
    created["before"] = "0" * 40
    assert plain(render(created).text).startswith("John Smith created branch master")
    deleted = sample("push")
    deleted["after"], deleted["commits"] = "0" * 40, []
    notice = render(deleted)
    assert "\n" not in notice.text and "deleted branch master" in plain(notice.text)
    assert not notice.default
    tag = sample("push")
    tag.update(object_kind="tag_push", ref="refs/tags/v1.0.0", commits=[])
    notice = render(tag)
    assert notice.event == "tag_push" and notice.branch is None
    assert "pushed tag v1.0.0" in plain(notice.text)


def test_deployments_and_releases() -> None:
    notice = render(sample("deployment"))
    assert notice.event == "deployment.success" and notice.default
    assert "to staging in root/test-deployment-webhooks succeeded" in plain(notice.text)
    failed = sample("deployment")
    failed["status"] = "failed"
    assert render(failed).event == "deployment.failed" and render(failed).default
    release = render(sample("release"))
    assert release.event == "release.created" and release.default
    assert "Release 1.0.0 created in exm-namespace/example-project" in plain(release.text)


def test_any_other_kind_is_rendered_generically() -> None:
    payload = {
        "object_kind": "emoji",
        "event_type": "award",
        "user": {"name": "Ada", "username": "ada"},
        "project": {"path_with_namespace": "g/p", "web_url": "https://gitlab.example/g/p"},
        "object_attributes": {"name": "thumbsup", "action": "award"},
    }
    notice = NOTIFIER.notice("emoji.award", payload)
    assert notice.event == "emoji.award" and not notice.default
    assert "Ada: emoji.award in g/p: thumbsup" in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("merge_request_open")
    attrs = payload["object_attributes"]
    attrs.update(title=hostile, description=hostile, source_branch=hostile, url="javascript:x")
    payload["labels"][0]["title"] = hostile
    payload["user"]["name"] = hostile
    payload["project"]["path_with_namespace"] = hostile
    notice = render(payload)
    assert_inert(notice.text, baseline=render(sample("merge_request_open")).text)
    assert notice.card is not None and notice.card.url is None
    assert_defused(notice.card.title)
    assert notice.actor is not None
    assert_defused(notice.actor.name)
    push = sample("push")
    push["commits"][0]["title"] = hostile
    push["commits"][0]["author"]["name"] = hostile
    push["ref"] = f"refs/heads/{hostile}"
    assert_inert(render(push).text, baseline=render(sample("push")).text)
    note = sample("note_merge_request")
    note["object_attributes"]["note"] = hostile
    assert_inert(render(note).text, baseline=render(sample("note_merge_request")).text)
    failed = pipeline("failed")
    failed["builds"][2]["name"] = hostile
    failed["commit"]["message"] = hostile
    assert_inert(render(failed).text, baseline=render(pipeline("failed")).text)


@pytest.mark.parametrize(
    "name",
    [
        "merge_request_open",
        "note_merge_request",
        "pipeline",
        "job",
        "push",
        "release",
        "deployment",
    ],
)
def test_broken_payloads_are_unrenderable_or_rendered_with_what_is_there(name: str) -> None:
    survives(render, sample(name))
    bad: Any
    for bad in ([], "x", {}):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice(None, bad)


def test_subscription_filters_read_the_facts_of_gitlab_notices() -> None:
    opened = render(sample("merge_request_open"))
    assert filtered(Filters(repositories=("GitlabHQ/*",)), opened) is None
    assert filtered(Filters(repositories=("other/*",)), opened) == "repository"
    assert filtered(Filters(branches=("release/*",)), opened) == "branch"
    assert filtered(Filters(labels=Labels(none=("api",))), opened) == "label"
    assert filtered(Filters(authors=Authors(exclude=("user*",))), opened) == "author"
    draft = sample("merge_request_open")
    draft["object_attributes"]["draft"] = True
    assert filtered(Filters(), render(draft)) == "draft"
    assert filtered(Filters(), render(pipeline("running"))) == "quiet"
    # A project in a subgroup is named by its whole path, and a subscription may say so.
    assert problems("gitlab", NOTIFIER, {"repositories": ["group/sub/project", "group/*"]}) == []
    assert problems("gitlab", NOTIFIER, {"repositories": ["group"]}) != []
    assert problems("github", GITHUB, {"repositories": ["owner/sub/name"]}) != []
