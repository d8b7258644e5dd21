"""Subscriptions (SPEC §12): the filters over real notices (octokit's GitHub payloads
rendered by the GitHub notifier, Atlassian's Jira examples by the Jira one), each alone and
combined; and the API through the real sync service, on the session's broker and database."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
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
from tests.support import admin_headers, github_corpus
from tests.sync.conftest import World, connect

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


# --- the API, through the real sync service ------------------------------------------------


async def subscribe(world: World, integration_id: str, **body: Any) -> httpx.Response:
    return await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={"channel_id": world.new_id("ch_"), **body},
        headers=admin_headers(),
    )


def refused(answer: httpx.Response, *named: str) -> str:
    assert answer.status_code == 422, answer.text
    message: str = answer.json()["error"]["message"]
    for name in named:
        assert name in message, (name, message)
    return message


async def test_create_get_list_patch_delete(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret="subs-secret")
    channel = world.new_id("ch_")
    created = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={
            "channel_id": channel,
            "events": ["pull_request.*", "push"],
            "exclude_events": ["pull_request.synchronize"],
            "repositories": ["Codertocat/*"],
            "branches": ["main", "release/*"],
            "labels": {"any": ["bug"], "none": ["wontfix"]},
            "authors": {"exclude": ["dependabot*"], "bots": False},
        },
        headers=admin_headers(),
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["id"].startswith("sub_")
    assert sub["workspace_id"] == world.chat.workspace_id
    assert sub["integration_id"] == integration_id and sub["provider"] == "github"
    assert sub["channel_id"] == channel
    assert sub["threads"] == "item" and sub["enabled"] is True and sub["drafts"] is False
    assert sub["labels"] == {"any": ["bug"], "all": None, "none": ["wontfix"]}
    assert sub["authors"] == {"exclude": ["dependabot*"], "bots": False}
    assert sub["projects"] is None
    assert (sub["notified_count"], sub["filtered_count"]) == (0, 0)
    assert sub["last_notified_at"] is None and sub["last_error"] is None
    assert sub["created_at"] and sub["updated_at"]

    base = f"/api/integrations/{integration_id}/subscriptions"
    got = await world.sync.get(f"{base}/{sub['id']}", headers=admin_headers())
    assert got.status_code == 200 and got.json() == sub

    # Defaults: no events (the provider's), threads per item, enabled.
    second = (await subscribe(world, integration_id)).json()
    assert second["events"] is None and second["threads"] == "item"
    listed = await world.sync.get(f"{base}?limit=1", headers=admin_headers())
    assert listed.status_code == 200
    page = listed.json()
    assert [s["id"] for s in page["data"]] == [second["id"]] and page["next_cursor"]
    rest = await world.sync.get(f"{base}?cursor={page['next_cursor']}", headers=admin_headers())
    assert [s["id"] for s in rest.json()["data"]] == [sub["id"]]

    patched = await world.sync.patch(
        f"{base}/{sub['id']}",
        json={"events": None, "labels": None, "drafts": True, "threads": "off", "enabled": False},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["events"] is None and body["labels"] is None
    assert body["drafts"] is True and body["threads"] == "off" and body["enabled"] is False
    assert body["repositories"] == ["Codertocat/*"]  # left alone
    # As times, not strings: a time on a whole second is written without its fraction.
    moment = datetime.fromisoformat
    assert moment(body["updated_at"]) > moment(sub["updated_at"])

    deleted = await world.sync.delete(f"{base}/{sub['id']}", headers=admin_headers())
    assert deleted.status_code == 204
    gone = await world.sync.get(f"{base}/{sub['id']}", headers=admin_headers())
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    again = await world.sync.delete(f"{base}/{sub['id']}", headers=admin_headers())
    assert again.status_code == 404
    left = await world.sync.get(base, headers=admin_headers())
    assert [s["id"] for s in left.json()["data"]] == [second["id"]]


async def test_jira_subscription(world: World) -> None:
    integration_id = await connect(world, "jira", webhook_secret="subs-secret")
    answer = await subscribe(
        world, integration_id, events=["issue.*", "comment.created"], projects=["SP", "BUG"]
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["provider"] == "jira" and answer.json()["projects"] == ["SP", "BUG"]


async def test_refusals_name_every_bad_value(world: World) -> None:
    github_id = await connect(world, "github", webhook_secret="subs-secret")
    message = refused(
        await subscribe(
            world,
            github_id,
            events=["pull_request.opened", "pull_request.frobbed", "stars"],
            exclude_events=["nonsense.*"],
            repositories=["octo-org/*", "no-slash", "octo-org/[x"],
            branches=["main", "", "release/["],
            projects=["SP"],
            authors={"exclude": ["ok", "bad["]},
        ),
        "`pull_request.frobbed`",
        "`stars`",
        "`nonsense.*`",
        "`no-slash`",
        "`octo-org/[x`",
        "branches: `` is empty",
        "`release/[`",
        "projects does not apply to github",
        "`bad[`",
    )
    assert "`pull_request.opened`" not in message and "`main`" not in message
    refused(await subscribe(world, github_id, events=[]), "events is empty")
    refused(await subscribe(world, github_id, labels={}), "labels names none")

    jira_id = await connect(world, "jira", webhook_secret="subs-secret")
    refused(
        await subscribe(
            world,
            jira_id,
            events=["push"],
            projects=["SP", "not a key"],
            repositories=["a/b"],
            branches=["main"],
            labels={"any": ["x"]},
            drafts=False,
        ),
        "`push`",
        "`not a key`",
        "repositories does not apply to jira",
        "branches does not apply to jira",
        "labels does not apply to jira",
        "drafts does not apply to jira",
    )


async def test_wrong_shapes_are_refused_by_the_schema(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret="subs-secret")
    for body in (
        {"labels": ["bug"]},
        {"labels": {"some": ["bug"]}},
        {"authors": {"bots": "nope"}},
        {"authors": ["dependabot"]},
        {"threads": "always"},
        {"events": "push"},
        {"unknown": 1},
    ):
        answer = await subscribe(world, integration_id, **body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid"
        assert any(next(iter(body)) in d["loc"] for d in error["details"]), (body, error)
    missing = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions", json={}, headers=admin_headers()
    )
    assert missing.status_code == 422


async def test_patch_is_validated_like_a_creation(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret="subs-secret")
    sub = (await subscribe(world, integration_id)).json()
    url = f"/api/integrations/{integration_id}/subscriptions/{sub['id']}"
    refused(
        await world.sync.patch(
            url, json={"events": ["issues.eaten"], "projects": ["SP"]}, headers=admin_headers()
        ),
        "`issues.eaten`",
        "projects does not apply",
    )
    refused(await world.sync.patch(url, json={"enabled": None}, headers=admin_headers()))
    unchanged = await world.sync.get(url, headers=admin_headers())
    assert unchanged.json() == sub


async def test_unknown_integration_and_subscription(world: World) -> None:
    answer = await subscribe(world, "int_nosuchintegration")
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "not_found"
    integration_id = await connect(world, "github", webhook_secret="subs-secret")
    base = f"/api/integrations/{integration_id}/subscriptions"
    for method in ("get", "patch", "delete"):
        kwargs: dict[str, Any] = {"json": {"enabled": False}} if method == "patch" else {}
        found = await getattr(world.sync, method)(
            f"{base}/sub_nosuch", headers=admin_headers(), **kwargs
        )
        assert found.status_code == 404, (method, found.text)
    # A subscription is reached only through its own integration.
    sub = (await subscribe(world, integration_id)).json()
    other = await connect(world, "github", webhook_secret="other-secret")
    elsewhere = await world.sync.get(
        f"/api/integrations/{other}/subscriptions/{sub['id']}", headers=admin_headers()
    )
    assert elsewhere.status_code == 404


async def test_chat_integrations_take_no_subscriptions(world: World) -> None:
    message = refused(await subscribe(world, world.slack_integration), "slack", "mappings")
    assert "take no subscriptions" in message
    answer = await world.sync.get(
        f"/api/integrations/{world.slack_integration}/subscriptions", headers=admin_headers()
    )
    assert answer.status_code == 200 and answer.json()["data"] == []


async def test_the_admin_token_is_required(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret="subs-secret")
    answer = await world.sync.get(f"/api/integrations/{integration_id}/subscriptions")
    assert answer.status_code == 401


async def test_the_event_names_to_choose_from(world: World) -> None:
    answer = await world.sync.get(
        "/api/notification-events", params={"provider": "github"}, headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["provider"] == "github"
    events = {e["name"]: e for e in body["events"]}
    assert set(events) == GITHUB.events
    assert events["pull_request.opened"] == {
        "name": "pull_request.opened",
        "group": "pull_request",
        "default": True,
    }
    assert events["push"] == {"name": "push", "group": "push", "default": True}
    assert events["pull_request.synchronize"]["default"] is False
    assert {n for n, e in events.items() if e["default"]} == set(GITHUB.default_events)
    assert [e["name"] for e in body["events"]] == sorted(events)
    assert body["generic"] == sorted(GITHUB.generic_events)

    jira = await world.sync.get(
        "/api/notification-events", params={"provider": "jira"}, headers=admin_headers()
    )
    assert jira.status_code == 200, jira.text
    assert {e["name"] for e in jira.json()["events"] if e["default"]} == set(JIRA.default_events)
    assert jira.json()["generic"] == []
    assert body["filters"] == ["repositories", "branches", "labels", "authors", "drafts"]
    assert jira.json()["filters"] == ["projects", "authors"]
    # Every provider sending webhooks notifies (SPEC §16): its own renderer's events, or
    # any event it sends, by name, rendered generically.
    for provider, named, generic in (
        ("alertmanager", {"firing", "resolved"}, []),
        ("typeform", {"form_response", "form_response_partial"}, ["*"]),
    ):
        answer = await world.sync.get(
            "/api/notification-events", params={"provider": provider}, headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        assert {e["name"] for e in answer.json()["events"]} == named
        assert answer.json()["generic"] == generic and answer.json()["filters"] == []

    slack = await world.sync.get(
        "/api/notification-events", params={"provider": "slack"}, headers=admin_headers()
    )
    assert slack.status_code == 422
    assert slack.json()["error"]["code"] == "provider_not_notifying"
    misspelt = await world.sync.get(
        "/api/notification-events", params={"provider": "githb"}, headers=admin_headers()
    )
    assert misspelt.status_code == 404, misspelt.text
    assert misspelt.json()["error"]["code"] == "unknown_provider"
    missing = await world.sync.get("/api/notification-events", headers=admin_headers())
    assert missing.status_code == 422
    anonymous = await world.sync.get("/api/notification-events", params={"provider": "github"})
    assert anonymous.status_code == 401


async def test_the_collections_of_an_integration_that_is_not_there_answer_404(
    world: World,
) -> None:
    """Subscriptions, mappings and actions under an integration that does not exist are
    404, as the integration itself is (not an empty list, not a refusal of the body); and
    another workspace's key gets the same answer for this workspace's integration: it does
    not learn that one is there."""
    github_id = await connect(world, "github", webhook_secret="subs-secret")
    unknown = world.new_id("int_")
    key = await world.oauth.client.post(
        "/api/workspaces/ws_elsewhere/api-keys",
        json={"name": "another workspace", "scopes": ["read", "write"]},
        headers=admin_headers(),
    )
    assert key.status_code == 201, key.text
    theirs = {"Authorization": f"Bearer {key.json()['key']}"}

    async def answers(integration_id: str, headers: dict[str, str]) -> list[tuple[int, str]]:
        base = f"/api/integrations/{integration_id}"
        calls = [
            ("GET", f"{base}/subscriptions", None),
            ("GET", f"{base}/subscriptions/sub_nope", None),
            ("POST", f"{base}/subscriptions", {"channel_id": "ch_x"}),
            ("GET", f"{base}/mappings", None),
            ("GET", f"{base}/mappings/map_nope", None),
            ("POST", f"{base}/mappings", {"channel_id": "ch_x", "external_channel_id": "C1"}),
            ("POST", f"{base}/actions/create-issue", {"repo": "a/b", "title": "t"}),
            ("POST", f"{base}/actions/create-issue", {"title": ""}),  # a wrong body too
        ]
        found = []
        for method, path, body in calls:
            answer = await world.sync.request(method, path, json=body, headers=headers)
            error = answer.json().get("error", {}) if answer.content else {}
            message = str(error.get("message", "")).replace(integration_id, "{id}")
            found.append((answer.status_code, f"{error.get('code')}: {message}"))
        return found

    unknown_answers = await answers(unknown, admin_headers())
    assert {status for status, _ in unknown_answers} == {404}, unknown_answers
    assert all("integration {id} not found" in said for _, said in unknown_answers)
    # Another workspace's key: this workspace's integration reads exactly as one not there.
    assert await answers(github_id, theirs) == await answers(unknown, theirs) == unknown_answers
    # This workspace's own answers are not 404 (the calls reach it).
    listed = await world.sync.get(
        f"/api/integrations/{github_id}/subscriptions", headers=admin_headers()
    )
    assert listed.status_code == 200 and listed.json()["data"] == []
