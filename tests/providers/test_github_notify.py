"""GitHub notifications (shared/providers/github/notify.py) over octokit's real payloads:
every event and action renders or is quiet with a reason, names are derived as SPEC §12
says, pushes read as it says, malformed payloads never raise anything but Unrenderable,
and text from outside stays text (checked with a real CommonMark parser)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared.providers.commonmark import QUOTE_LIMIT, ZWJ
from shared.providers.github.notify import NOTIFIER, PUSH_COMMITS
from shared.providers.notify import Notice, Notifier, Unrenderable, event_matches, known
from tests.providers.notify_support import (
    CARD_HOSTILE,
    CARD_READS,
    HOSTILE,
    assert_defused,
    assert_inert,
    clone,
    links,
    plain,
    to_html,
)
from tests.support import github_corpus

RENDERED = {
    "push",
    "pull_request",
    "issues",
    "issue_comment",
    "pull_request_review",
    "pull_request_review_comment",
    "release",
    "deployment",
    "deployment_status",
    "check_run",
    "workflow_run",
    "create",
    "delete",
}
# The events whose text names who did it (a run's or a deployment's outcome is the
# system's: its text names the run, the card and the actor say who).
TEXT_NAMES_WHO = RENDERED - {"check_run", "workflow_run", "deployment_status"}

_notifier: Notifier = NOTIFIER  # the renderer is what the seam says


def corpus(*events: str) -> list[Path]:
    return [f for f in github_corpus() if f.parent.name in events]


def load(relative: str) -> dict[str, Any]:
    return dict(json.loads((github_corpus()[0].parents[1] / relative).read_text()))


def render(event: str, payload: Any) -> Notice:
    return NOTIFIER.notice(event, payload)


@pytest.mark.parametrize("path", corpus(*RENDERED), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_payload_of_a_rendered_event_renders(path: Path) -> None:
    event = path.parent.name
    payload = json.loads(path.read_text())
    notice = render(event, payload)
    assert notice.event in NOTIFIER.events, notice.event
    assert event_matches(event, notice.event)
    assert notice.text.strip()
    assert notice.quiet is None or notice.quiet.strip()
    assert_inert(notice.text)
    seen = plain(notice.text)
    repository = payload["repository"]["full_name"]
    assert notice.repository == repository
    assert repository in seen
    assert any(href == payload["repository"]["html_url"] for href, _ in links(notice.text))
    if event in TEXT_NAMES_WHO:
        assert payload["sender"]["login"] in seen
    assert notice.actor is not None and notice.actor.login == payload["sender"]["login"]
    assert notice.card is not None and notice.card.title
    subject = payload.get("pull_request") or payload.get("issue")
    if subject is not None:
        number, title = subject["number"], subject["title"]
        assert notice.item == f"{repository}#{number}"
        assert f"#{number} {title}" in seen
        assert notice.item_card is not None
        assert notice.item_card.title == f"#{number} {title}"
        assert notice.item_card.state in ("open", "closed", "merged", "draft")
        labels = tuple(label["name"] for label in subject.get("labels", []))
        assert notice.labels == labels
        assert [f.value for f in notice.item_card.fields if f.name == "Labels"] == (
            [", ".join(labels)] if labels else []
        )
        # The item is linked (to itself, or to the comment or review about it).
        assert any(text == f"#{number} {title}" for _, text in links(notice.text))
    else:
        assert notice.item is None and notice.item_card is None


@pytest.mark.parametrize(
    "path", corpus(*({p.parent.name for p in github_corpus()} - RENDERED)), ids=str
)
def test_any_other_event_is_rendered_generically(path: Path) -> None:
    payload = json.loads(path.read_text())
    notice = render(path.parent.name, payload)
    assert notice.event.split(".")[0] == path.parent.name
    assert path.parent.name in NOTIFIER.generic_events
    assert known(NOTIFIER, notice.event)
    assert_inert(notice.text)
    login = (payload.get("sender") or {}).get("login")
    if login:
        assert login in plain(notice.text)
    repository = (payload.get("repository") or {}).get("full_name")
    if repository:
        assert repository in plain(notice.text)


def test_a_merged_pull_request_is_merged_and_a_closed_one_closed() -> None:
    payload = load("pull_request/closed.payload.json")
    closed = render("pull_request", payload)
    assert closed.event == "pull_request.closed"
    assert "without merging" in plain(closed.text)
    assert closed.item_card is not None and closed.item_card.state == "closed"

    payload["pull_request"]["merged"] = True
    merged = render("pull_request", payload)
    assert merged.event == "pull_request.merged"
    assert plain(merged.text).startswith("Codertocat merged pull request #2")
    assert "into master" in plain(merged.text)
    assert merged.item_card is not None and merged.item_card.state == "merged"
    assert merged.item_card.color == "#8250df"
    assert merged.default and closed.default


def test_a_draft_is_a_draft_until_ready() -> None:
    payload = load("pull_request/opened.payload.json")
    payload["pull_request"]["draft"] = True
    opened = render("pull_request", payload)
    assert opened.draft and "opened draft pull request" in plain(opened.text)
    assert opened.item_card is not None and opened.item_card.state == "draft"
    ready = render("pull_request", load("pull_request/ready_for_review.payload.json"))
    assert ready.event == "pull_request.ready_for_review" and not ready.draft
    assert ready.item_card is not None and ready.item_card.state == "open"


@pytest.mark.parametrize(
    "conclusion", ["success", "failure", "cancelled", "timed_out", "action_required", "skipped"]
)
def test_completed_runs_are_named_by_their_conclusion(conclusion: str) -> None:
    check = load("check_run/completed.payload.json")
    check["check_run"]["conclusion"] = conclusion
    notice = render("check_run", check)
    assert notice.event == f"check_run.{conclusion}"
    assert notice.branch == "changes"
    assert "Octocoders-linter" in plain(notice.text)

    run = load("workflow_run/completed.payload.json")
    run["workflow_run"]["conclusion"] = conclusion
    notice = render("workflow_run", run)
    assert notice.event == f"workflow_run.{conclusion}"
    assert notice.branch == "master"
    assert any(href.endswith("/actions/runs/289782451") for href, _ in links(notice.text))


def test_runs_not_completed_keep_their_action() -> None:
    assert render("check_run", load("check_run/created.payload.json")).event == "check_run.created"
    requested = render("workflow_run", load("workflow_run/requested.payload.json"))
    assert requested.event == "workflow_run.requested"
    # A completed run without a conclusion is still something.
    check = load("check_run/completed.payload.json")
    check["check_run"]["conclusion"] = None
    assert render("check_run", check).event == "check_run.completed"


@pytest.mark.parametrize("state", ["success", "failure", "error", "in_progress", "inactive"])
def test_deployment_statuses_are_named_by_state(state: str) -> None:
    payload = load("deployment_status/payload.json")
    payload["deployment_status"]["state"] = state
    notice = render("deployment_status", payload)
    assert notice.event == f"deployment_status.{state}"
    assert notice.branch == "master"
    assert "production" in plain(notice.text)
    assert notice.default is (state in ("success", "failure", "error"))


# -- pushes -----------------------------------------------------------------------------------


def push(commits: int, **changes: Any) -> dict[str, Any]:
    """The corpus push with a commit (to `main`, the default branch) made into `commits`."""
    payload = load("push/with-no-username-committer.payload.json")
    template = payload["commits"][0]
    made = []
    for n in range(commits):
        commit = copy.deepcopy(template)
        commit["id"] = f"{n:04d}" + template["id"][4:]
        commit["message"] = f"Change number {n}\n\nwith a body that is not shown"
        commit["url"] = template["url"].rsplit("/", 1)[0] + "/" + commit["id"]
        made.append(commit)
    payload.update(ref="refs/heads/main", created=False, deleted=False, forced=False, commits=made)
    payload["repository"]["default_branch"] = "main"
    payload.update(changes)
    return payload


def test_a_push_of_one_commit() -> None:
    notice = render("push", push(1))
    seen = plain(notice.text)
    assert notice.event == "push" and notice.branch == "main" and notice.default
    assert seen.startswith("Codertocat pushed 1 commit to main in Codertocat/Hello-World")
    assert "0000728 Change number 0 — Codertocat" in seen
    assert "with a body" not in seen
    hrefs = [href for href, _ in links(notice.text)]
    assert any("/commit/0000728f27" in h for h in hrefs)
    assert (
        "https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "compare",
    ) in links(notice.text)
    assert notice.item is None


def test_a_push_of_many_commits_lists_twenty_then_counts() -> None:
    notice = render("push", push(25))
    seen = plain(notice.text)
    assert "pushed 25 commits to main" in seen
    assert sum(1 for n in range(25) if f"Change number {n} " in seen) == PUSH_COMMITS
    assert "Change number 19 " in seen and "Change number 20 " not in seen
    assert "and 5 more commits" in seen
    html = to_html(notice.text)
    assert html.count("<li>") == PUSH_COMMITS + 1


def test_a_push_of_no_commits_and_a_forced_one() -> None:
    assert plain(render("push", push(0)).text).startswith("Codertocat pushed to main in")
    forced = render("push", push(3, forced=True))
    assert "force-pushed 3 commits to main" in plain(forced.text)
    assert forced.card is not None and forced.card.state == "forced"


def test_branches_and_tags_created_and_deleted_are_one_line() -> None:
    created = render("push", push(2, created=True, ref="refs/heads/feature/x"))
    assert plain(created.text).strip() == (
        "Codertocat created branch feature/x in Codertocat/Hello-World"
    )
    assert created.branch == "feature/x" and not created.default
    deleted = render("push", push(0, deleted=True, ref="refs/heads/feature/x"))
    assert plain(deleted.text).strip() == (
        "Codertocat deleted branch feature/x in Codertocat/Hello-World"
    )
    tag = render("push", push(0, created=True, ref="refs/tags/v1.0"))
    assert plain(tag.text).strip() == "Codertocat created tag v1.0 in Codertocat/Hello-World"
    assert tag.branch is None
    assert any(href.endswith("/releases/tag/v1.0") for href, _ in links(tag.text))
    for event in ("create", "delete"):
        notice = render(event, load(f"{event}/payload.json"))
        assert "tag simple-tag" in plain(notice.text)


def test_merge_queue_refs_are_quiet() -> None:
    ref = "refs/heads/gh-readonly-queue/main/pr-2-abc"
    assert render("push", push(1, ref=ref)).quiet
    payload = load("create/payload.json")
    payload.update(ref="gh-readonly-queue/main/pr-2-abc", ref_type="branch")
    assert render("create", payload).quiet
    assert render("push", push(1)).quiet is None


def test_a_push_elsewhere_than_the_default_branch_is_not_a_default() -> None:
    assert not render("push", push(1, ref="refs/heads/dev")).default


# -- noise ------------------------------------------------------------------------------------


def test_no_op_edits_are_quiet() -> None:
    payload = load("issue_comment/edited.payload.json")
    assert render("issue_comment", payload).quiet is None
    payload["changes"] = {"body": {"from": payload["comment"]["body"]}}
    assert render("issue_comment", payload).quiet
    payload["changes"] = {}
    assert render("issue_comment", payload).quiet

    review = load("pull_request_review_comment/edited.payload.json")
    review["changes"] = {"body": {"from": review["comment"]["body"]}}
    assert render("pull_request_review_comment", review).quiet

    submitted = load("pull_request_review/submitted.payload.json")
    submitted.update(action="edited", changes={})
    edited = render("pull_request_review", submitted)
    assert edited.event == "pull_request_review.edited" and edited.quiet
    submitted["changes"] = {"body": {"from": "before"}}
    assert render("pull_request_review", submitted).quiet is None


def test_a_review_says_approved_or_changes_requested() -> None:
    payload = load("pull_request_review/submitted.payload.json")
    payload["review"]["state"] = "approved"
    payload["review"]["body"] = "Looks good"
    notice = render("pull_request_review", payload)
    assert plain(notice.text).startswith("Codertocat approved pull request #2")
    assert "Looks good" in plain(notice.text)
    payload["review"]["state"] = "changes_requested"
    assert "requested changes on" in plain(render("pull_request_review", payload).text)


def test_a_comment_on_a_pull_request_threads_with_the_pull_request() -> None:
    payload = load("issue_comment/created.payload.json")
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/x", "merged_at": None}
    notice = render("issue_comment", payload)
    assert "commented on pull request #1" in plain(notice.text)
    assert notice.item == "Codertocat/Hello-World#1"
    assert "You are totally right!" in plain(notice.text)


def test_actors_and_bots() -> None:
    payload = load("pull_request/opened.payload.json")
    notice = render("pull_request", payload)
    assert notice.actor is not None
    assert (notice.actor.name, notice.actor.bot) == ("Codertocat", False)
    assert notice.actor.external_id == str(payload["sender"]["id"])
    assert notice.actor.avatar_url == payload["sender"]["avatar_url"]
    payload["sender"]["login"] = "dependabot[bot]"
    assert render("pull_request", payload).actor.bot  # type: ignore[union-attr]
    payload["sender"].update(login="ci", type="Bot")
    assert render("pull_request", payload).actor.bot  # type: ignore[union-attr]


# -- malformed payloads -----------------------------------------------------------------------

WRONG: list[Any] = [None, [], {}, "x", 7, True, [1, "a", None]]


def _mutations(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every top-level field, and every field of each object under it, set to each wrong
    value in turn, and removed."""
    made: list[tuple[str, dict[str, Any]]] = []
    for key, value in payload.items():
        for wrong in WRONG:
            changed = clone(payload)
            changed[key] = wrong
            made.append((f"{key}={wrong!r}", changed))
        removed = clone(payload)
        del removed[key]
        made.append((f"-{key}", removed))
        if isinstance(value, dict) and key not in ("repository", "organization", "installation"):
            for inner in value:
                for wrong in WRONG:
                    changed = clone(payload)
                    changed[key][inner] = wrong
                    made.append((f"{key}.{inner}={wrong!r}", changed))
    return made


@pytest.mark.parametrize(
    "relative",
    [
        "push/with-no-username-committer.payload.json",
        "pull_request/opened.payload.json",
        "pull_request/labeled.payload.json",
        "issues/assigned.payload.json",
        "issue_comment/edited.payload.json",
        "pull_request_review/submitted.payload.json",
        "pull_request_review_comment/created.payload.json",
        "release/published.payload.json",
        "deployment/payload.json",
        "deployment_status/payload.json",
        "check_run/completed.payload.json",
        "workflow_run/completed.payload.json",
        "create/payload.json",
        "delete/payload.json",
        "star/created.payload.json",
    ],
)
def test_malformed_payloads_render_what_is_there_or_are_unrenderable(relative: str) -> None:
    event = relative.split("/")[0]
    for what, payload in _mutations(load(relative)):
        try:
            notice = render(event, payload)
        except Unrenderable as refused:
            assert refused.reason, what
            continue
        assert notice.text, what
        assert_inert(notice.text)


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("pull_request", {"action": "opened", "number": "x", "pull_request": {"number": "x"}}),
        ("pull_request", {"action": "opened", "pull_request": []}),
        ("issues", {"action": "opened", "issue": "x"}),
        ("push", {"commits": {}}),
        ("push", {"ref": 5}),
        ("release", {"action": "published", "release": []}),
        ("deployment_status", {"deployment_status": {"state": 3}}),
        ("check_run", {"action": "completed", "check_run": "x"}),
        ("workflow_run", {"action": "completed"}),
        ("deployment", {}),
    ],
)
def test_payloads_without_a_subject_are_unrenderable(event: str, payload: Any) -> None:
    with pytest.raises(Unrenderable):
        render(event, payload)


@pytest.mark.parametrize("payload", [None, [], "x", 3])
def test_a_payload_that_is_not_an_object_is_unrenderable(payload: Any) -> None:
    with pytest.raises(Unrenderable):
        render("push", payload)
    with pytest.raises(Unrenderable):
        NOTIFIER.notice(None, {})


def test_what_is_there_is_rendered() -> None:
    notice = render("pull_request", {"action": "opened", "number": 42, "pull_request": []})
    assert notice.event == "pull_request.opened"
    assert "#42" in plain(notice.text)
    payload = push(2)
    payload["commits"] = {}
    assert "pushed to main" in plain(render("push", payload).text)
    payload = push(2)
    payload["commits"][0] = "x"
    payload["commits"][1]["message"] = None
    assert "pushed 1 commit to main" in plain(render("push", payload).text)


# -- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_title_stays_the_title(hostile: str) -> None:
    payload = load("pull_request/opened.payload.json")
    payload["pull_request"]["title"] = hostile
    payload["pull_request"]["body"] = hostile
    notice = render("pull_request", payload)
    flat = " ".join(hostile.split())
    assert_inert(notice.text, f"#2 {flat}")
    # The link's text is the title, whole; its target the pull request.
    assert (payload["pull_request"]["html_url"], f"#2 {flat}") in links(notice.text)
    assert notice.item_card is not None
    assert_defused(notice.item_card.title, f"#2 {flat}")


def test_a_cards_text_from_outside_is_defused() -> None:
    """The card carries what the text does, defused alike: every field of it."""
    payload = load("pull_request/opened.payload.json")
    payload["pull_request"]["title"] = CARD_HOSTILE
    payload["pull_request"]["labels"][0]["name"] = CARD_HOSTILE
    payload["pull_request"]["base"]["ref"] = CARD_HOSTILE
    payload["sender"]["login"] = CARD_HOSTILE
    notice = render("pull_request", payload)
    assert notice.card is not None and notice.item_card is not None
    for card in (notice.card, notice.item_card):
        assert_defused(card.title, f"#2 {CARD_READS}")
        for field in card.fields:
            assert_defused(field.name)
            assert_defused(field.value)
        assert card.state is None or not card.state.startswith("<")
    assert any(CARD_READS in f.value.replace("\u200d", "") for f in notice.item_card.fields)
    assert notice.actor is not None
    assert_defused(notice.actor.name, CARD_READS)
    assert "\u202e" not in notice.text
    assert_inert(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_commit_messages_branches_and_bodies(hostile: str) -> None:
    payload = push(2, ref=f"refs/heads/{hostile}")
    payload["commits"][0]["message"] = hostile
    payload["commits"][1]["author"]["username"] = hostile
    notice = render("push", payload)
    assert_inert(notice.text, hostile.split("\n")[0])
    # The branch is one code span holding exactly the branch's name, whatever backticks
    # it holds.
    assert f"<code>{_html(hostile)}</code>" in to_html(notice.text).replace(ZWJ, "")

    comment = load("issue_comment/created.payload.json")
    comment["comment"]["body"] = f"{hostile}\n# heading\n> quote\n\n- item\n<div>block</div>"
    notice = render("issue_comment", comment)
    assert_inert(notice.text, hostile)
    rendered = to_html(notice.text)
    assert rendered.count("<blockquote>") == 1
    assert "<ul>" not in rendered and "<div>" not in rendered
    assert rendered.index("<blockquote>") < rendered.index("block")


def _html(value: str) -> str:
    import html

    return html.escape(" ".join(value.split()), quote=True).replace("&#x27;", "'")


def test_mentions_cannot_reach_the_chat() -> None:
    payload = load("issues/opened.payload.json")
    payload["issue"]["title"] = "@everyone look"
    payload["issue"]["body"] = "@here @channel @someone"
    notice = render("issues", payload)
    for mention in ("@everyone", "@here", "@channel", "@someone"):
        assert mention not in notice.text
        assert mention in plain(notice.text)
    assert f"@{ZWJ}everyone" in notice.text


def test_links_go_only_to_http() -> None:
    payload = load("pull_request/opened.payload.json")
    payload["pull_request"]["html_url"] = "javascript:alert(1)"
    payload["repository"]["html_url"] = "data:text/html,<script>x</script>"
    notice = render("pull_request", payload)
    assert_inert(notice.text, "#2 Update the README with new information.")
    assert links(notice.text) == []
    assert notice.item_card is not None and notice.item_card.url is None


def test_a_long_body_is_trimmed_and_every_line_quoted() -> None:
    payload = load("issues/opened.payload.json")
    payload["issue"]["body"] = "\n".join(f"line {n} " + "x" * 40 for n in range(40))
    notice = render("issues", payload)
    quoted = notice.text.split("\n\n", 1)[1]
    assert all(line.startswith(">") for line in quoted.split("\n"))
    assert quoted.endswith("…")
    assert len(plain(quoted)) <= QUOTE_LIMIT + 20


# -- names ------------------------------------------------------------------------------------


def test_event_names_and_patterns() -> None:
    assert "pull_request.merged" in NOTIFIER.events
    assert "check_run.failure" in NOTIFIER.events
    assert "deployment_status.success" in NOTIFIER.events
    assert event_matches("pull_request.*", "pull_request.merged")
    assert event_matches("*", "push") and event_matches("*", "issues.opened")
    assert event_matches("pull_request", "pull_request.opened")
    assert event_matches("*.opened", "issues.opened")
    assert event_matches("check_run.*fail*", "check_run.failure")
    assert not event_matches("pull_request.*", "pull_request_review.submitted")
    assert not event_matches("issues.opened", "issues.closed")
    assert known(NOTIFIER, "star") and known(NOTIFIER, "star.created")
    assert known(NOTIFIER, "pull_request.*")
    assert not known(NOTIFIER, "pull_request.exploded") and not known(NOTIFIER, "nope")
    for pattern in NOTIFIER.default_events:
        assert known(NOTIFIER, pattern), pattern
