"""Bitbucket Cloud's webhooks rendered (SPEC §16): a pull request is one thread, created
then merged or declined; approvals and comments land in it; pushes list their commits;
outside text stays text. Payloads from shared/providers/bitbucket/samples (their README
says where each comes from); each sample is named after its `X-Event-Key`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.bitbucket.notify import NOTIFIER, PUSH_COMMITS
from shared.providers.notify import Notice, Unrenderable
from tests.providers.mutations import survives
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, links, plain
from tests.providers.samples import load


def sample(name: str) -> dict[str, Any]:
    return load("bitbucket", name)


def render(event_key: str, payload: dict[str, Any]) -> Notice:
    return NOTIFIER.notice(event_key, payload)


def pushed(commits: int) -> dict[str, Any]:
    """Atlassian's push example with `commits` commits on its change (the published
    example's change has none listed)."""
    payload = sample("repo_push")
    target = payload["push"]["changes"][0]["new"]["target"]
    payload["push"]["changes"][0]["commits"] = [
        {
            "hash": f"{n:040x}",
            "message": target["message"],
            "author": {"raw": "Emma <emma@example.com>"},
            "links": {
                "html": {"href": f"https://bitbucket.org/team_name/repo_name/commits/{n:040x}"}
            },
        }
        for n in range(commits)
    ]
    return payload


def test_a_pull_request_created_approved_merged_is_one_item_that_resolves() -> None:
    created = render("pullrequest:created", sample("pullrequest_created"))
    approved = render("pullrequest:approved", sample("pullrequest_approved"))
    # Zulip's capture of the merge is the same pull request with `state: MERGED`.
    merged_payload = sample("pullrequest_created")
    merged_payload["pullrequest"]["state"] = "MERGED"
    merged = render("pullrequest:fulfilled", merged_payload)
    assert created.item == approved.item == merged.item == "kolaszek/repository-name#1"
    assert [created.resolved, approved.resolved, merged.resolved] == [False, None, True]
    assert [created.event, approved.event, merged.event] == [
        "pullrequest.created",
        "pullrequest.approved",
        "pullrequest.merged",
    ]
    assert created.default and merged.default and not approved.default
    assert created.branch == "master" and created.repository == "kolaszek/repository-name"
    assert created.actor is not None and created.actor.login == "kolaszek"
    assert created.started_at == datetime(2016, 7, 4, 19, 15, 30, 118942, tzinfo=UTC)
    seen = plain(created.text)
    assert "Tomasz opened pull request #1 new commit in kolaszek/repository-name" in seen
    assert "(new-branch → master)" in seen and "> description" in created.text
    assert (
        "https://bitbucket.org/kolaszek/repository-name/pull-requests/1",
        "#1 new commit",
    ) in links(created.text)
    assert merged.item_card is not None and merged.item_card.state == "merged"
    assert (
        "merged pull request #1 new commit in kolaszek/repository-name (new-branch → master)"
        in (plain(merged.text))
    )
    fields = {f.name: f.value for f in created.item_card.fields} if created.item_card else {}
    assert fields["Reviewers"] == "Tomasz Kolek" and fields["Destination"] == "master"


@pytest.mark.parametrize("key", ["approved", "unapproved", "fulfilled", "rejected"])
def test_every_pull_request_event_names_its_repository_and_branches(key: str) -> None:
    """Zulip's capture sent as its tests send it (`X-Event-Key: pullrequest:<key>`): the
    message and both cards name the repository and which branch goes where."""
    notice = render(f"pullrequest:{key}", sample("pullrequest_approved"))
    seen = plain(notice.text)
    assert "#1 new commit in kolaszek/repository-name (new-branch → master)" in seen
    assert notice.repository == "kolaszek/repository-name" and notice.branch == "master"
    for card in (notice.card, notice.item_card):
        assert card is not None
        fields = {f.name: f.value for f in card.fields}
        assert fields["Repository"] == "kolaszek/repository-name"
        assert (fields["Source"], fields["Destination"]) == ("new-branch", "master")
    # A payload without its own `repository` (derived: Zulip's capture, that object left
    # out) still names the one the pull request's destination carries.
    bare = sample("pullrequest_approved")
    del bare["repository"]
    notice = render(f"pullrequest:{key}", bare)
    assert notice.repository == "kolaszek/repository-name" and notice.item is not None
    assert "in kolaszek/repository-name" in plain(notice.text)


def test_declined_ends_the_item_with_the_reason() -> None:
    payload = sample("pullrequest_created")
    payload["pullrequest"].update(state="DECLINED", reason="not needed")
    notice = render("pullrequest:rejected", payload)
    assert notice.event == "pullrequest.declined" and notice.resolved is True
    assert "> not needed" in notice.text and notice.default


def test_a_comment_is_in_the_pull_requests_thread_quoted() -> None:
    notice = render("pullrequest:comment_created", sample("pullrequest_comment_created"))
    assert notice.event == "pullrequest.comment_created" and notice.resolved is None
    assert notice.item == "team_name/repo_name#1"
    assert "Emma commented on path/to/file in pull request #1" in plain(notice.text)
    assert "> Comment text" in notice.text
    # Atlassian's example has the placeholder state `OPEN|MERGED|DECLINED`: shown as open.
    assert notice.item_card is not None and notice.item_card.state == "open"


def test_a_push_lists_commits_and_counts_the_rest() -> None:
    notice = render("repo:push", pushed(2))
    assert notice.event == "repo.push" and notice.branch == "name-of-branch"
    assert notice.item is None and not notice.default  # no main branch named
    seen = plain(notice.text)
    assert "Emma pushed 2 commits to name-of-branch in team_name/repo_name" in seen
    assert "new commit message — Emma <emma@example.com>" in seen
    many = render("repo:push", pushed(PUSH_COMMITS + 4))
    assert "and 4 more commits" in plain(many.text)
    main = pushed(1)
    main["repository"]["mainbranch"] = {"name": "name-of-branch"}
    assert render("repo:push", main).default


def test_a_push_that_made_its_branch_links_the_push_and_lists_its_commits() -> None:
    """Zulip's capture of three commits pushed to a new `master`, which Zulip shows as
    "Tomasz [pushed](…/branch/master) 3 commits to branch master"."""
    notice = render("repo:push", sample("zulip/push_multiple_committers"))
    assert notice.event == "repo.push" and notice.repository == "kolaszek/repository-name"
    seen = plain(notice.text)
    assert "Tomasz pushed 3 commits to new branch master in kolaszek/repository-name" in seen
    assert seen.count("first commit — Ben") == 2
    branch = "https://bitbucket.org/kolaszek/repository-name/branch/master"
    assert (branch, "master") in links(notice.text)
    assert notice.card is not None and notice.card.url == branch
    assert {f.name: f.value for f in notice.card.fields}["Repository"] == (
        "kolaszek/repository-name"
    )


def test_a_new_or_deleted_branch_is_one_line() -> None:
    created = sample("repo_push")
    created["push"]["changes"][0]["created"] = True
    assert "Emma created branch name-of-branch" in plain(render("repo:push", created).text)
    deleted = sample("repo_push")
    change = deleted["push"]["changes"][0]
    change.update(closed=True, old=change.pop("new"), new=None)
    notice = render("repo:push", deleted)
    assert plain(notice.text).strip() == "Emma deleted branch name-of-branch in team_name/repo_name"


def test_other_events_are_rendered_generically() -> None:
    notice = render("repo:fork", sample("repo_push"))
    assert notice.event == "repo.fork" and not notice.default
    assert "Emma: repo.fork in team_name/repo_name" in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("pullrequest_created")
    pr = payload["pullrequest"]
    pr.update(title=hostile, description=hostile)
    pr["source"]["branch"]["name"] = hostile
    pr["links"]["html"]["href"] = "javascript:alert(1)"
    payload["actor"]["display_name"] = hostile
    payload["repository"]["full_name"] = hostile
    notice = render("pullrequest:created", payload)
    assert_inert(
        notice.text, baseline=render("pullrequest:created", sample("pullrequest_created")).text
    )
    assert notice.card is not None and notice.card.url is None
    assert_defused(notice.card.title)
    comment = sample("pullrequest_comment_created")
    comment["comment"]["content"]["raw"] = hostile
    comment["comment"]["inline"]["path"] = hostile
    baseline = render("pullrequest:comment_created", sample("pullrequest_comment_created")).text
    assert_inert(render("pullrequest:comment_created", comment).text, baseline=baseline)
    push = pushed(1)
    push["push"]["changes"][0]["commits"][0]["message"] = hostile
    push["push"]["changes"][0]["new"]["name"] = hostile
    assert_inert(render("repo:push", push).text, baseline=render("repo:push", pushed(1)).text)


@pytest.mark.parametrize(
    ("event_key", "name"),
    [
        ("pullrequest:created", "pullrequest_created"),
        ("pullrequest:approved", "pullrequest_approved"),
        ("pullrequest:comment_created", "pullrequest_comment_created"),
        ("repo:push", "repo_push"),
    ],
)
def test_broken_payloads_are_unrenderable_or_rendered_with_what_is_there(
    event_key: str, name: str
) -> None:
    survives(lambda broken: render(event_key, broken), sample(name))
    with pytest.raises(Unrenderable):
        NOTIFIER.notice(None, sample(name))
    bad: Any = []
    with pytest.raises(Unrenderable):
        NOTIFIER.notice(event_key, bad)
