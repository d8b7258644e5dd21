"""Acting on a GitLab issue or merge request from the channel (SPEC §20): what its card
offers by its state, what the actions act on (read from the webhook), and each action as
the one documented call, made with the clicking user's own token, to GitLab's stand-in
(services/sandbox/gitlab.py) on loopback over real HTTP.

Payloads from shared/providers/gitlab/samples (their README.md says where each comes from):
`issue_open.json` (GitLab's docs: issue 23 of project 1, opened), `merge_request_open.json`
(go-gitlab's copy of the docs' example: merge request 1 of project 1), made closed or
merged as the README says the tests derive them, `note_merge_request.json` (a comment on
merge request 1 of project 5), and `push.json` (no item)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.sandbox import FakeGitLab
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
)
from shared.providers.catalog import provider_module
from shared.providers.gitlab.acting import ACTING
from shared.providers.gitlab.notify import NOTIFIER
from shared.providers.notify import Notice
from tests.providers.samples import load
from tests.support import served

ADA = Link(chat_user_id="u_ada", kind="oauth", provider_user="ada", external_id="7")
ISSUE = {"project_id": 1, "kind": "issues", "iid": 23}
MR = {"project_id": 1, "kind": "merge_requests", "iid": 1}


def notice(name: str, **attributes: Any) -> Notice:
    payload = load("gitlab", name)
    payload["object_attributes"].update(attributes)
    return NOTIFIER.notice(None, payload)


@pytest.fixture(scope="module")
async def served_gitlab() -> AsyncIterator[FakeGitLab]:
    async with served(FakeGitLab()) as fake:
        yield fake


@pytest.fixture
def gitlab(served_gitlab: FakeGitLab) -> FakeGitLab:
    """Fresh: issue 23 and merge request 1 of project 1 open; Ada (id 7) a developer of
    it, Bob (id 8) not."""
    fake = served_gitlab
    fake.acted.forget()
    fake.items.clear()
    fake.track(1, "issues", 23)
    fake.track(1, "merge_requests", 1)
    fake.profiles.update(ada={"id": 7, "username": "ada"}, bob={"id": 8, "username": "bob"})
    fake.developers = {1: {7}}
    return fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


def credentials(gitlab: FakeGitLab, token: str) -> Credentials:
    return Credentials({}, api_base=gitlab.base_url + "/api/v4", user_token=token)


# -- offers and target ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "attributes", "offered"),
    [
        ("issue_open", {}, ["assign:me", "close"]),
        ("merge_request_open", {}, ["assign:me", "close"]),
        ("merge_request_open", {"action": "close", "state": "closed"}, ["reopen"]),
        ("merge_request_open", {"action": "merge", "state": "merged"}, []),
        ("issue_open", {"action": "close", "state": "closed"}, ["reopen"]),
    ],
)
def test_an_open_item_offers_assign_and_close_a_closed_one_reopen_a_merged_one_nothing(
    name: str, attributes: dict[str, Any], offered: list[str]
) -> None:
    assert [a.id for a in ACTING.offers(notice(name, **attributes))] == offered


def test_the_target_is_the_project_the_kind_and_the_iid_from_the_webhook() -> None:
    assert ACTING.target(notice("issue_open")) == ISSUE
    assert ACTING.target(notice("merge_request_open")) == MR
    # A comment's item: the merge request it is on, in the project the webhook names.
    note = NOTIFIER.notice(None, load("gitlab", "note_merge_request"))
    assert ACTING.target(note) == {"project_id": 5, "kind": "merge_requests", "iid": 1}
    assert ACTING.target(NOTIFIER.notice(None, load("gitlab", "push"))) is None


def test_gitlab_is_found_by_its_name_and_acts_with_the_user_s_own_token() -> None:
    module = provider_module("gitlab", "acting")
    assert module is not None and module.ACTING is ACTING
    assert (ACTING.link, ACTING.settings) == ("oauth", ())


# -- the calls --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "action", "state"),
    [
        (ISSUE, "close", "closed"),
        (MR, "close", "closed"),
        (ISSUE, "reopen", "opened"),
    ],
)
async def test_close_and_reopen_put_the_state_event_with_the_user_s_token(
    client: httpx.AsyncClient,
    gitlab: FakeGitLab,
    target: dict[str, Any],
    action: str,
    state: str,
) -> None:
    token = gitlab.issue_token("ada")
    outcome = await ACTING.perform(client, credentials(gitlab, token), target, action, ADA)
    [request] = gitlab.acted.requests
    path = f"/api/v4/projects/1/{target['kind']}/{target['iid']}"
    assert (request.method, request.path, request.body) == ("PUT", path, {"state_event": action})
    assert request.headers["authorization"] == f"Bearer {token}"
    assert outcome.state == state
    assert gitlab.items[(1, target["kind"], target["iid"])]["state"] == state


async def test_assign_to_me_puts_the_linked_user_s_id(
    client: httpx.AsyncClient, gitlab: FakeGitLab
) -> None:
    token = gitlab.issue_token("ada")
    outcome = await ACTING.perform(client, credentials(gitlab, token), MR, "assign:me", ADA)
    [request] = gitlab.acted.requests
    assert (request.method, request.path) == ("PUT", "/api/v4/projects/1/merge_requests/1")
    assert request.body == {"assignee_ids": [7]}
    assert request.headers["authorization"] == f"Bearer {token}"
    assert outcome.text == "assigned to ada"


async def test_refusals_outages_and_a_refused_token_are_told_apart(
    client: httpx.AsyncClient, gitlab: FakeGitLab
) -> None:
    bob = Link(chat_user_id="u_bob", kind="oauth", provider_user="bob", external_id="8")
    with pytest.raises(ActionRefused) as forbidden:
        await ACTING.perform(
            client, credentials(gitlab, gitlab.issue_token("bob")), ISSUE, "close", bob
        )
    assert forbidden.value.upstream_status == 403 and "403 Forbidden" in forbidden.value.message
    missing = {**ISSUE, "iid": 99}
    with pytest.raises(ActionRefused) as not_found:
        await ACTING.perform(
            client, credentials(gitlab, gitlab.issue_token("ada")), missing, "close", ADA
        )
    assert not_found.value.upstream_status == 404
    with pytest.raises(LinkRejected):
        await ACTING.perform(client, credentials(gitlab, "glpat-unknown"), ISSUE, "close", ADA)
    gitlab.acted.unavailable = True
    with pytest.raises(ActionUnavailable):
        await ACTING.perform(
            client, credentials(gitlab, gitlab.issue_token("ada")), ISSUE, "close", ADA
        )
    assert gitlab.items[(1, "issues", 23)]["state"] == "opened"
    assert len(gitlab.acted.requests) == 4  # one call each, nothing more


async def test_without_a_token_or_a_user_id_nothing_is_sent(
    client: httpx.AsyncClient, gitlab: FakeGitLab
) -> None:
    with pytest.raises(LinkRejected):
        await ACTING.perform(client, Credentials({}, api_base=gitlab.base_url), ISSUE, "close", ADA)
    nameless = Link(chat_user_id="u_x", kind="oauth", provider_user="x")
    with pytest.raises(LinkRejected):
        await ACTING.perform(
            client, credentials(gitlab, gitlab.issue_token("ada")), ISSUE, "assign:me", nameless
        )
    assert gitlab.acted.requests == []
