"""Acting on a Sentry issue from the channel (SPEC §20): what an issue's card offers by its
state, what the actions act on, and each action as the one documented call ("Update an
Issue") to the stand-in of Sentry's API (services/sandbox/sentry.py), served on loopback
over real HTTP, with Sentry's answers sorted into the kinds of refusal.

Payloads from shared/providers/sentry/samples (their README.md says where each comes from):
`issue_created.json` (Sentry's docs; unresolved), `issue_assigned.json` (Zulip's capture;
unresolved), `issue_resolved.json`, `issue_ignored.json` (Zulip's), `event_alert_triggered
.json` (Sentry's docs: an issue alert, its event's `web_url` naming the organization
`test-org`), and `metric_alert_resolved.json`, `error_created.json`, `comment_created.json`
(no issue's card). The issue samples carry no `web_url` (the docs' example and Zulip's
captures predate it): the organization is unknown there, and one test gives an issue the
`https://<org>.sentry.io/issues/…` address Sentry's issue webhooks document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.sandbox import FakeSentry
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
)
from shared.providers.catalog import CATALOG, provider_module
from shared.providers.notify import Notice
from shared.providers.sentry.acting import ACTING, organization
from shared.providers.sentry.notify import NOTIFIER
from tests.providers.samples import load
from tests.support import served

TOKEN = "sntrys_internal_integration"
READ_ONLY = "sntrys_read_only"
ADA = Link(chat_user_id="u_ada", kind="mapping", provider_user="ada@example.com")
OFFERED = [("resolve", "Resolve"), ("ignore", "Ignore"), ("assign:me", "Assign to me")]
# event_alert_triggered.json's issue (in test-org, per its event's addresses) and
# issue_created.json's (the sample names no organization).
ALERTED, CREATED = "1117540176", "1170820242"


def notice(event: str, name: str, **issue: Any) -> Notice:
    payload = load("sentry", name)
    payload["data"].get("issue", {}).update(issue)
    return NOTIFIER.notice(event, payload)


@pytest.fixture(scope="module")
async def served_sentry() -> AsyncIterator[FakeSentry]:
    async with served(FakeSentry()) as fake:
        yield fake


@pytest.fixture
def sentry(served_sentry: FakeSentry) -> FakeSentry:
    """The module's stand-in, fresh: two open issues of `front-end` (one in test-org, one
    in acme), Ada a member of it, Bob of no project, a token that may write and one that
    may only read."""
    fake = served_sentry
    fake.requests.clear()
    fake.unavailable = False
    fake.tokens = {TOKEN: {"event:read", "event:write"}, READ_ONLY: {"event:read"}}
    fake.issues.clear()
    fake.add_issue(ALERTED, "test-org", "front-end")
    fake.add_issue(CREATED, "acme", "front-end")
    fake.users.clear()
    fake.add_user("1", "ada@example.com", {"front-end"}, name="Ada")
    fake.add_user("2", "bob@example.com", set())
    return fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


def credentials(sentry: FakeSentry, token: str = TOKEN) -> Credentials:
    return Credentials({"api_token": token, "client_secret": "s"}, api_base=sentry.base_url)


def alerted_target() -> dict[str, Any]:
    target = ACTING.target(notice("event_alert.triggered", "event_alert_triggered"))
    assert target is not None
    return dict(target)


# -- offers and target --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "sample", "offered"),
    [
        ("issue.created", "issue_created", OFFERED),
        ("issue.assigned", "issue_assigned", OFFERED),
        ("event_alert.triggered", "event_alert_triggered", OFFERED),
        ("issue.resolved", "issue_resolved", []),
        ("issue.archived", "issue_ignored", []),
        ("metric_alert.resolved", "metric_alert_resolved", []),
    ],
)
def test_an_open_issue_offers_resolve_ignore_and_assign_and_a_closed_one_nothing(
    event: str, sample: str, offered: list[tuple[str, str]]
) -> None:
    actions = ACTING.offers(notice(event, sample))
    assert [(a.id, a.label) for a in actions] == offered
    if actions:
        assert actions[0].style == "primary"


def test_the_target_is_the_issue_and_the_organization_its_address_names() -> None:
    assert alerted_target() == {"issue_id": ALERTED, "organization": "test-org"}
    assert ACTING.target(notice("issue.created", "issue_created")) == {
        "issue_id": CREATED,
        "organization": None,
    }
    addressed = notice("issue.created", "issue_created", web_url="https://acme.sentry.io/issues/1/")
    assert ACTING.target(addressed) == {"issue_id": CREATED, "organization": "acme"}
    # An id that is no one path segment is no issue to act on.
    assert ACTING.target(notice("issue.created", "issue_created", id="1/../../x")) is None
    for event, sample in [
        ("metric_alert.resolved", "metric_alert_resolved"),
        ("error.created", "error_created"),
        ("comment.created", "comment_created"),
    ]:
        assert ACTING.target(notice(event, sample)) is None


def test_an_organization_is_read_from_sentry_s_addresses_only() -> None:
    assert organization("https://sentry.io/organizations/test-org/issues/1/") == "test-org"
    assert organization("https://sentry.io/api/0/projects/test-org/front-end/events/e/") == (
        "test-org"
    )
    assert organization("https://acme.sentry.io/issues/1/") == "acme"
    assert organization("https://de.sentry.io/issues/1/") is None  # a region, not an org
    assert organization("https://example.com/issues/1/") is None
    assert organization(None) is None


def test_sentry_is_found_by_its_name_with_its_token_optional_in_the_catalog() -> None:
    module = provider_module("sentry", "acting")
    assert module is not None and module.ACTING is ACTING
    optional = {s.name for s in CATALOG["sentry"].settings if not s.required}
    assert ACTING.settings == ("api_token",) and "api_token" in optional
    assert ACTING.link == "mapping"


# -- the calls ----------------------------------------------------------------------------


@pytest.mark.parametrize(("action_id", "status"), [("resolve", "resolved"), ("ignore", "ignored")])
async def test_resolve_and_ignore_are_one_put_of_the_status(
    sentry: FakeSentry, client: httpx.AsyncClient, action_id: str, status: str
) -> None:
    outcome = await ACTING.perform(client, credentials(sentry), alerted_target(), action_id, ADA)
    [request] = sentry.requests
    assert (request.method, request.path) == (
        "PUT",
        f"/api/0/organizations/test-org/issues/{ALERTED}/",
    )
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body == {"status": status}
    assert (outcome.text, outcome.state) == (status, status)
    assert sentry.issues[ALERTED]["status"] == status


async def test_assign_to_me_names_the_linked_sentry_user(
    sentry: FakeSentry, client: httpx.AsyncClient
) -> None:
    outcome = await ACTING.perform(client, credentials(sentry), alerted_target(), "assign:me", ADA)
    [request] = sentry.requests
    assert request.body == {"assignedTo": "ada@example.com"}
    assert outcome.text == "assigned to ada@example.com"
    assert sentry.issues[ALERTED]["assignedTo"]["id"] == "1"


async def test_without_an_organization_the_issue_is_updated_at_its_own_path(
    sentry: FakeSentry, client: httpx.AsyncClient
) -> None:
    target = ACTING.target(notice("issue.created", "issue_created"))
    assert target is not None
    await ACTING.perform(client, credentials(sentry), target, "resolve", ADA)
    assert [(r.method, r.path) for r in sentry.requests] == [("PUT", f"/api/0/issues/{CREATED}/")]
    assert sentry.issues[CREATED]["status"] == "resolved"


# -- refusals -----------------------------------------------------------------------------


async def test_a_bad_token_is_the_link_refused_and_a_read_only_one_a_refusal(
    sentry: FakeSentry, client: httpx.AsyncClient
) -> None:
    with pytest.raises(LinkRejected) as rejected:
        await ACTING.perform(
            client, credentials(sentry, "sntrys_revoked"), alerted_target(), "resolve", ADA
        )
    assert rejected.value.message == "resolve: HTTP 401 Invalid token"
    with pytest.raises(ActionRefused) as refused:
        await ACTING.perform(
            client, credentials(sentry, READ_ONLY), alerted_target(), "resolve", ADA
        )
    assert refused.value.upstream_status == 403
    assert "You do not have permission" in refused.value.message
    assert sentry.issues[ALERTED]["status"] == "unresolved"


async def test_an_assignee_sentry_cannot_take_is_the_link_refused(
    sentry: FakeSentry, client: httpx.AsyncClient
) -> None:
    for who, said in [
        ("carol@example.com", "Unable to resolve actor identifier"),
        ("bob@example.com", "Cannot assign to non-team member"),
    ]:
        link = Link(chat_user_id="u_x", kind="mapping", provider_user=who)
        with pytest.raises(LinkRejected) as rejected:
            await ACTING.perform(client, credentials(sentry), alerted_target(), "assign:me", link)
        assert rejected.value.message == f"assign:me: HTTP 400 assignedTo: {said}"
    unlinked = Link(chat_user_id="u_y", kind="mapping")
    with pytest.raises(LinkRejected):
        await ACTING.perform(client, credentials(sentry), alerted_target(), "assign:me", unlinked)
    assert len(sentry.requests) == 2  # the unlinked user's click called nothing
    assert sentry.issues[ALERTED]["assignedTo"] is None


async def test_an_unknown_issue_is_refused_and_an_outage_unavailable(
    sentry: FakeSentry, client: httpx.AsyncClient
) -> None:
    gone = alerted_target() | {"issue_id": "999"}
    with pytest.raises(ActionRefused) as refused:
        await ACTING.perform(client, credentials(sentry), gone, "ignore", ADA)
    assert refused.value.message == ("ignore: HTTP 404 The requested resource does not exist")
    sentry.unavailable = True
    with pytest.raises(ActionUnavailable) as down:
        await ACTING.perform(client, credentials(sentry), alerted_target(), "resolve", ADA)
    assert down.value.upstream_status == 503
    with pytest.raises(ActionRefused):
        await ACTING.perform(client, credentials(sentry), alerted_target(), "delete", ADA)
    assert len(sentry.requests) == 2
