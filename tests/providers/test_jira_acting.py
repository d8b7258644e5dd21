"""Acting on a Jira Cloud issue from the channel (SPEC §20): what its card offers, what the
actions act on (the key and the site, from the webhook), the workflow's transitions read
from Jira's API, and each action as the documented calls, made with the clicking user's own
token through api.atlassian.com's `/ex/jira/{cloud_id}`, to the Atlassian stand-in
(services/sandbox/atlassian.py) on loopback over real HTTP.

Payloads from tests/providers/jira_payloads (their README.md says where each comes from):
`issue_created.json` (SP-10 on example.atlassian.net, To Do), `issue_updated_status.json`
(SP-10 moved to In Progress), `sprint_started.json` (no issue)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sandbox import FakeAtlassian
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
)
from shared.providers.catalog import provider_module
from shared.providers.jira.acting import ACTING, site_of
from shared.providers.jira.notify import NOTIFIER
from tests.support import served

PAYLOADS = Path(__file__).parent / "jira_payloads"
SITE = "https://example.atlassian.net"
ADA_ID = "5b10ac8d82e05b22cc7d4ef5"
TARGET = {"key": "SP-10", "site": SITE}
# A workflow as Jira's default software one: To Do → In Progress → Done, and back.
WORKFLOW = {
    "To Do": [("11", "Start progress", "In Progress"), ("31", "Done", "Done")],
    "In Progress": [("21", "Stop progress", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}


def payload(name: str) -> dict[str, Any]:
    return dict(json.loads((PAYLOADS / f"{name}.json").read_text()))


def ada(jira: FakeAtlassian) -> Link:
    return Link(
        chat_user_id="u_ada",
        kind="oauth",
        provider_user=ADA_ID,
        external_id=ADA_ID,
        name="Ada",
        account={"sites": [{"id": jira.cloud_id, "name": "example", "url": SITE}]},
    )


@pytest.fixture(scope="module")
async def served_jira() -> AsyncIterator[FakeAtlassian]:
    async with served(FakeAtlassian()) as fake:
        yield fake


@pytest.fixture
def jira(served_jira: FakeAtlassian) -> FakeAtlassian:
    """Fresh: SP-10 in To Do; Ada may transition and assign, Bob may do neither."""
    fake = served_jira
    fake.acted.forget()
    fake.tracked.clear()
    fake.track("SP-10", "To Do", WORKFLOW)
    fake.people.update(ada={"accountId": ADA_ID, "displayName": "Ada"}, bob={"accountId": "bob-1"})
    fake.transitioners = {ADA_ID}
    fake.assigners = {ADA_ID}
    return fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


def credentials(jira: FakeAtlassian, token: str) -> Credentials:
    return Credentials({}, api_base=jira.base_url, user_token=token)


# -- offers and target ----------------------------------------------------------------------


def test_an_issue_offers_assign_to_me_and_names_its_key_and_site() -> None:
    for name in ("issue_created", "issue_updated_status"):
        made = NOTIFIER.notice(None, payload(name))
        assert [a.id for a in ACTING.offers(made)] == ["assign:me"]
        assert ACTING.target(made) == TARGET
    sprint = NOTIFIER.notice(None, payload("sprint_started"))
    assert ACTING.offers(sprint) == () and ACTING.target(sprint) is None
    assert site_of("http://example.atlassian.net/browse/SP-10") is None  # https only


def test_jira_is_found_by_its_name_and_acts_with_the_user_s_own_token() -> None:
    module = provider_module("jira", "acting")
    assert module is not None and module.ACTING is ACTING
    assert (ACTING.link, ACTING.settings) == ("oauth", ())


async def test_the_workflow_s_transitions_are_read_from_jira_for_the_issue_s_status(
    client: httpx.AsyncClient, jira: FakeAtlassian
) -> None:
    token = jira.issue_token("ada")
    given = Credentials({"sites": [{"id": jira.cloud_id, "url": SITE}]}, jira.base_url, token)
    offered = await ACTING.read_offers(client, given, TARGET)
    assert [(a.id, a.label) for a in offered] == [
        ("transition:11", "Start progress"),
        ("transition:31", "Done"),
    ]
    [request] = jira.acted.requests
    path = f"/ex/jira/{jira.cloud_id}/rest/api/3/issue/SP-10/transitions"
    assert (request.method, request.path, request.body) == ("GET", path, None)
    assert request.headers["authorization"] == f"Bearer {token}"
    jira.tracked["SP-10"]["status"] = "Done"
    again = await ACTING.read_offers(client, given, TARGET)
    assert [a.id for a in again] == ["transition:41"]


# -- the calls --------------------------------------------------------------------------------


async def test_a_transition_is_checked_offered_then_made_and_the_issue_moves(
    client: httpx.AsyncClient, jira: FakeAtlassian
) -> None:
    token = jira.issue_token("ada")
    outcome = await ACTING.perform(
        client, credentials(jira, token), TARGET, "transition:11", ada(jira)
    )
    path = f"/ex/jira/{jira.cloud_id}/rest/api/3/issue/SP-10/transitions"
    assert [(r.method, r.path, r.body) for r in jira.acted.requests] == [
        ("GET", path, None),
        ("POST", path, {"transition": {"id": "11"}}),
    ]
    assert all(r.headers["authorization"] == f"Bearer {token}" for r in jira.acted.requests)
    assert (outcome.text, outcome.state) == ("moved to In Progress", "In Progress")
    assert jira.tracked["SP-10"]["status"] == "In Progress"
    # Through its workflow: on to Done, and a transition no longer offered is refused.
    await ACTING.perform(client, credentials(jira, token), TARGET, "transition:31", ada(jira))
    with pytest.raises(ActionRefused, match="does not offer"):
        await ACTING.perform(client, credentials(jira, token), TARGET, "transition:11", ada(jira))
    assert jira.tracked["SP-10"]["status"] == "Done"
    assert [r.method for r in jira.acted.requests[2:]] == ["GET", "POST", "GET"]


async def test_assign_to_me_puts_the_linked_account_id(
    client: httpx.AsyncClient, jira: FakeAtlassian
) -> None:
    token = jira.issue_token("ada")
    outcome = await ACTING.perform(client, credentials(jira, token), TARGET, "assign:me", ada(jira))
    [request] = jira.acted.requests
    path = f"/ex/jira/{jira.cloud_id}/rest/api/3/issue/SP-10/assignee"
    assert (request.method, request.path, request.body) == ("PUT", path, {"accountId": ADA_ID})
    assert request.headers["authorization"] == f"Bearer {token}"
    assert outcome.text == "assigned to Ada"
    assert jira.tracked["SP-10"]["assignee"] == ADA_ID


async def test_refusals_outages_and_a_refused_token_are_told_apart(
    client: httpx.AsyncClient, jira: FakeAtlassian
) -> None:
    bob = jira.issue_token("bob")
    with pytest.raises(ActionRefused) as no_assign:
        await ACTING.perform(client, credentials(jira, bob), TARGET, "assign:me", ada(jira))
    assert no_assign.value.upstream_status == 403
    with pytest.raises(ActionRefused) as no_transition:
        await ACTING.perform(client, credentials(jira, bob), TARGET, "transition:11", ada(jira))
    assert no_transition.value.upstream_status == 400
    assert "permission" in no_transition.value.message
    with pytest.raises(ActionRefused) as missing:
        await ACTING.perform(
            client, credentials(jira, bob), {**TARGET, "key": "SP-99"}, "assign:me", ada(jira)
        )
    assert missing.value.upstream_status == 404
    with pytest.raises(LinkRejected):
        await ACTING.perform(client, credentials(jira, "nope"), TARGET, "assign:me", ada(jira))
    jira.acted.unavailable = True
    with pytest.raises(ActionUnavailable):
        await ACTING.perform(
            client, credentials(jira, jira.issue_token("ada")), TARGET, "assign:me", ada(jira)
        )
    assert (jira.tracked["SP-10"]["status"], jira.tracked["SP-10"]["assignee"]) == ("To Do", None)


async def test_a_site_the_user_s_account_does_not_reach_sends_nothing(
    client: httpx.AsyncClient, jira: FakeAtlassian
) -> None:
    elsewhere = {**TARGET, "site": "https://other.atlassian.net"}
    with pytest.raises(ActionRefused, match="does not reach"):
        await ACTING.perform(
            client, credentials(jira, jira.issue_token("ada")), elsewhere, "assign:me", ada(jira)
        )
    with pytest.raises(ActionRefused):
        await ACTING.perform(
            client, credentials(jira, jira.issue_token("ada")), TARGET, "transition:x", ada(jira)
        )
    assert jira.acted.requests == []
