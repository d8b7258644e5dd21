"""Acting on a GitHub issue or pull request from the channel (SPEC §20): what its card
offers by its state, what the actions act on, and each action as the one documented call,
made with the clicking user's own token, to GitHub's stand-in (services/sandbox/github.py)
on loopback over real HTTP, with GitHub's answers sorted into the kinds of refusal.

Payloads from the octokit/webhooks examples in the corpus (tests/corpus/README.md):
`issues/opened` (issue #1 of Codertocat/Hello-World, open), `pull_request/opened` (#2,
open), `pull_request/closed` (#2 closed without merging), `pull_request/closed` made
merged, `push` (no item)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.sandbox import FakeGitHub
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
)
from shared.providers.catalog import provider_module
from shared.providers.github.acting import _LABELS, ACTING, LABELS_OFFERED
from shared.providers.github.notify import NOTIFIER
from shared.providers.notify import Notice
from tests.support import github_corpus, served

REPO = "Codertocat/Hello-World"
ADA = Link(chat_user_id="u_ada", kind="oauth", provider_user="ada", external_id="ada")


def corpus(relative: str) -> dict[str, Any]:
    return dict(json.loads((github_corpus()[0].parents[1] / relative).read_text()))


def notice(event: str, relative: str, **item: Any) -> Notice:
    payload = corpus(relative)
    payload["issue" if "issue" in payload else "pull_request"].update(item)
    return NOTIFIER.notice(event, payload)


@pytest.fixture(scope="module")
async def served_github() -> AsyncIterator[FakeGitHub]:
    async with served(FakeGitHub()) as fake:
        yield fake


@pytest.fixture
def github(served_github: FakeGitHub) -> FakeGitHub:
    """The stand-in, fresh: issue #1 and pull request #2 open, Ada and Bob who consented,
    Ada with push access, Bob without."""
    fake = served_github
    fake.acted.forget()
    fake.tracked.clear()
    _LABELS.clear()
    fake.track(REPO, 1)
    fake.track(REPO, 2)
    fake.profiles.update(ada={"login": "ada", "id": 1}, bob={"login": "bob", "id": 2})
    fake.writers = {REPO: {"ada"}}
    return fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


def credentials(github: FakeGitHub, token: str) -> Credentials:
    return Credentials({}, api_base=github.base_url + "/api", user_token=token)


async def act(
    client: httpx.AsyncClient, github: FakeGitHub, action: str, number: int = 1, user: str = "ada"
) -> Any:
    token = github.issue_token(user)
    target = {"repository": REPO, "number": number}
    return await ACTING.perform(client, credentials(github, token), target, action, ADA), token


# -- offers and target ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "relative", "item", "offered"),
    [
        ("issues", "issues/opened.payload.json", {}, ["assign:me", "close"]),
        ("pull_request", "pull_request/opened.payload.json", {}, ["assign:me", "close"]),
        ("pull_request", "pull_request/closed.payload.json", {}, ["reopen"]),
        ("pull_request", "pull_request/closed.payload.json", {"merged": True}, []),
        ("push", "push/payload.json", None, []),
    ],
)
def test_an_open_item_offers_assign_and_close_a_closed_one_reopen_a_merged_one_nothing(
    event: str, relative: str, item: dict[str, Any] | None, offered: list[str]
) -> None:
    made = (
        NOTIFIER.notice(event, corpus(relative))
        if item is None
        else notice(event, relative, **item)
    )
    assert [a.id for a in ACTING.offers(made)] == offered


def test_the_target_is_the_repository_and_number_of_the_item() -> None:
    assert ACTING.target(notice("issues", "issues/opened.payload.json")) == {
        "repository": REPO,
        "number": 1,
        "labels": ["bug"],
    }
    assert ACTING.target(notice("pull_request", "pull_request/opened.payload.json")) == {
        "repository": REPO,
        "number": 2,
        "labels": ["bug"],
    }
    assert ACTING.target(NOTIFIER.notice("push", corpus("push/payload.json"))) is None


def test_github_is_found_by_its_name_and_acts_with_the_user_s_own_token() -> None:
    module = provider_module("github", "acting")
    assert module is not None and module.ACTING is ACTING
    assert (ACTING.link, ACTING.settings) == ("oauth", ())


# -- the calls --------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "state"), [("close", "closed"), ("reopen", "open")])
async def test_close_and_reopen_patch_the_issue_s_state_with_the_user_s_token(
    client: httpx.AsyncClient, github: FakeGitHub, action: str, state: str
) -> None:
    outcome, token = await act(client, github, action, number=2)
    [request] = github.acted.requests
    assert (request.method, request.path) == ("PATCH", f"/api/repos/{REPO}/issues/2")
    assert request.body == {"state": state}
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.headers["accept"] == "application/vnd.github+json"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    assert (outcome.text, outcome.state) == (state, state)
    assert github.tracked[(REPO, 2)]["state"] == state


async def test_assign_to_me_adds_the_linked_login_as_an_assignee(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    outcome, token = await act(client, github, "assign:me")
    [request] = github.acted.requests
    assert (request.method, request.path) == ("POST", f"/api/repos/{REPO}/issues/1/assignees")
    assert request.body == {"assignees": ["ada"]}
    assert request.headers["authorization"] == f"Bearer {token}"
    assert outcome.text == "assigned to ada"
    assert github.tracked[(REPO, 1)]["assignees"] == ["ada"]


async def test_refusals_outages_and_a_refused_token_are_told_apart(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    # Bob has no push access: GitHub refuses the update (403), and leaves him unassigned.
    with pytest.raises(ActionRefused) as refused:
        await act(client, github, "close", user="bob")
    assert refused.value.upstream_status == 403
    assert github.tracked[(REPO, 1)]["state"] == "open"
    bob = Link(chat_user_id="u_bob", kind="oauth", provider_user="bob", external_id="bob")
    token = github.issue_token("bob")
    with pytest.raises(ActionRefused, match="did not assign bob"):
        await ACTING.perform(
            client, credentials(github, token), {"repository": REPO, "number": 1}, "assign:me", bob
        )
    # An item the user cannot see.
    with pytest.raises(ActionRefused) as missing:
        await act(client, github, "close", number=99)
    assert missing.value.upstream_status == 404
    # A token GitHub does not know: the user links again.
    with pytest.raises(LinkRejected):
        await ACTING.perform(
            client,
            credentials(github, "ghu_unknown"),
            {"repository": REPO, "number": 1},
            "close",
            ADA,
        )
    # GitHub away: retried.
    github.acted.unavailable = True
    with pytest.raises(ActionUnavailable) as away:
        await act(client, github, "close")
    assert away.value.upstream_status == 503
    assert github.tracked[(REPO, 1)]["state"] == "open"
    # Nothing but the one documented call each time.
    assert {(r.method, r.path.rsplit("/", 1)[-1]) for r in github.acted.requests} == {
        ("PATCH", "1"),
        ("POST", "assignees"),
        ("PATCH", "99"),
    }


async def test_without_a_token_or_an_action_it_knows_nothing_is_sent(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    target = {"repository": REPO, "number": 1}
    with pytest.raises(LinkRejected):
        await ACTING.perform(
            client, Credentials({}, api_base=github.base_url), target, "close", ADA
        )
    with pytest.raises(ActionRefused):
        await ACTING.perform(
            client, credentials(github, github.issue_token("ada")), target, "add-label", ADA
        )
    assert github.acted.requests == []


# -- labels -----------------------------------------------------------------------------------


async def test_the_labels_a_card_offers_are_the_repository_s_the_item_does_not_carry(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    token = github.issue_token("bob")  # reading needs no push access
    target = {"repository": REPO, "number": 1, "labels": ["bug", "Documentation"]}
    offered = await ACTING.read_offers(client, credentials(github, token), target)
    ids = {label["name"]: label["id"] for label in github.labels_of(REPO)}
    # GitHub's order, less the two the issue carries (names are compared without case),
    # at most four: "Assign to me", "Close" and these are what a Teams card shows.
    expected = ["duplicate", "enhancement", "good first issue", "help wanted"]
    assert LABELS_OFFERED == 4
    assert [(a.id, a.label) for a in offered] == [
        (f"label:{ids[name]}", f"Label: {name}") for name in expected
    ]
    [request] = github.acted.requests
    assert (request.method, request.path) == ("GET", f"/api/repos/{REPO}/labels")
    assert request.query == {"per_page": "100"}
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.headers["x-github-api-version"] == "2022-11-28"
    # The next card of the repository within a minute: the labels kept for that token,
    # nothing asked; another token's read asks.
    again = await ACTING.read_offers(client, credentials(github, token), {**target, "labels": []})
    assert [a.label for a in again][:2] == ["Label: bug", "Label: documentation"]
    assert len(github.acted.requests) == 1
    await ACTING.read_offers(client, credentials(github, github.issue_token("ada")), target)
    assert len(github.acted.requests) == 2


async def test_reading_labels_tells_a_refused_token_from_a_repository_it_cannot_see(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    target = {"repository": REPO, "number": 1, "labels": []}
    with pytest.raises(LinkRejected):
        await ACTING.read_offers(client, credentials(github, "ghu_unknown"), target)
    with pytest.raises(ActionRefused) as hidden:
        await ACTING.read_offers(
            client,
            credentials(github, github.issue_token("ada")),
            {**target, "repository": "someone/private"},
        )
    assert hidden.value.upstream_status == 404
    github.acted.unavailable = True
    with pytest.raises(ActionUnavailable):
        await ACTING.read_offers(client, credentials(github, github.issue_token("ada")), target)


async def test_a_label_is_added_by_its_id_under_its_name_now(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    bug = next(label for label in github.labels_of(REPO) if label["name"] == "bug")
    outcome, token = await act(client, github, f"label:{bug['id']}", number=2)
    listed, added = github.acted.requests
    assert (listed.method, listed.path, listed.query) == (
        "GET",
        f"/api/repos/{REPO}/labels",
        {"per_page": "100"},
    )
    assert (added.method, added.path) == ("POST", f"/api/repos/{REPO}/issues/2/labels")
    assert added.body == {"labels": ["bug"]}
    assert added.headers["authorization"] == f"Bearer {token}"
    assert outcome.text == "labelled bug"
    assert github.tracked[(REPO, 2)]["labels"] == ["bug"]


async def test_a_label_the_repository_no_longer_has_or_a_user_without_access_is_refused(
    client: httpx.AsyncClient, github: FakeGitHub
) -> None:
    with pytest.raises(ActionRefused, match="has that label no more"):
        await act(client, github, "label:1")
    assert [r.method for r in github.acted.requests] == ["GET"]  # nothing added
    bug = next(label for label in github.labels_of(REPO) if label["name"] == "bug")
    with pytest.raises(ActionRefused) as refused:
        await act(client, github, f"label:{bug['id']}", user="bob")
    assert refused.value.upstream_status == 403
    assert github.tracked[(REPO, 1)]["labels"] == []
    with pytest.raises(ActionRefused, match="not an action"):
        await act(client, github, "label:bug")
