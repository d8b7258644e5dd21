"""Acting on PagerDuty incidents from the channel (shared/providers/pagerduty/acting.py): what
a card offers, from PagerDuty's own webhooks rendered by the notifier, and each action's
calls, made for real over HTTP to PagerDuty's stand-in (services/sandbox/pagerduty.py) on
loopback: exactly the documented requests and nothing else, and each kind of refusal.

Payloads from shared/providers/pagerduty/samples (its README.md says where each comes from:
real V3 webhooks captured in Zulip's fixtures): `incident_triggered.json` (PFQZPSY,
triggered), `incident_reopened.json`, `incident_unacknowledged.json` (triggered),
`incident_acknowledged.json`, `incident_resolved.json`, and `incident_annotated.json`,
`incident_responder_added.json` (a reference to the incident, no status), and
`service_updated.json` (no incident)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.sandbox import FakePagerDuty
from services.sandbox.recording import Recorded
from shared.kernel.embedded import free_port
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
    Outcome,
)
from shared.providers.catalog import CATALOG, provider_module
from shared.providers.pagerduty.acting import ACTING
from shared.providers.pagerduty.notify import NOTIFIER
from tests.providers.samples import load

TOKEN = "y_NbAkKc66ryYTWUXYEu"  # the shape of PagerDuty's documented key: 20 characters
ADA = "ada@example.com"
INCIDENT = "PFQZPSY"  # incident_triggered.json's
ADA_LINK = Link("u_ada", "mapping", provider_user=ADA)


@pytest.fixture
async def pagerduty(pagerduty_api: FakePagerDuty) -> AsyncIterator[FakePagerDuty]:
    pagerduty_api.forget()
    pagerduty_api.tokens = {TOKEN}
    # Found first by the same `query`, but not Ada: the exact email is the one taken.
    pagerduty_api.add_user("PADA002", "Ada Lovelace (ops)", "ada@example.com.au")
    pagerduty_api.add_user("PADA001", "Ada Lovelace", ADA)
    pagerduty_api.add_incident(INCIDENT)
    yield pagerduty_api


def credentials(fake: FakePagerDuty, token: str = TOKEN) -> Credentials:
    return Credentials({"api_token": token}, api_base=fake.base_url)


async def perform(
    http: httpx.AsyncClient, fake: FakePagerDuty, action: str, who: Link = ADA_LINK
) -> Outcome:
    return await ACTING.perform(http, credentials(fake), {"incident_id": INCIDENT}, action, who)


def headers(call: Recorded) -> dict[str, str]:
    """The headers the acting chose (httpx's own, such as the host, left out)."""
    wanted = ("authorization", "accept", "content-type", "from")
    return {name: call.headers[name] for name in wanted if name in call.headers}


API = {
    "authorization": f"Token token={TOKEN}",
    "accept": "application/vnd.pagerduty+json;version=2",
    "content-type": "application/json",
}
AS_ADA = {**API, "from": ADA}
READ = ("GET", f"/incidents/{INCIDENT}")
UPDATE = ("PUT", f"/incidents/{INCIDENT}")


def made(fake: FakePagerDuty) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in fake.requests]


# -- what a card offers, from PagerDuty's webhooks ------------------------------------------


ACK = ("acknowledge", "Acknowledge", "primary")
RESOLVE = ("resolve", "Resolve", "default")
REASSIGN = ("reassign:me", "Reassign to me", "default")


@pytest.mark.parametrize(
    ("sample", "offered"),
    [
        ("incident_triggered", [ACK, RESOLVE, REASSIGN]),
        ("incident_reopened", [ACK, RESOLVE, REASSIGN]),
        ("incident_unacknowledged", [ACK, RESOLVE, REASSIGN]),
        ("incident_acknowledged", [RESOLVE, REASSIGN]),
        ("incident_resolved", []),
        # A note carries a reference to the incident, not its status: nothing to offer.
        ("incident_annotated", []),
    ],
)
def test_a_card_offers_what_the_incidents_status_allows(
    sample: str, offered: list[tuple[str, str, str]]
) -> None:
    actions = ACTING.offers(NOTIFIER.notice(None, load("pagerduty", sample)))
    assert [(a.id, a.label, a.style) for a in actions] == offered


@pytest.mark.parametrize(
    ("sample", "incident"),
    [
        ("incident_triggered", "PFQZPSY"),  # event.data.id
        ("incident_resolved", "PCPZE64"),
        ("incident_annotated", "Q3B15VLMF3ASBD"),  # event.data.incident.id
        ("incident_responder_added", "Q3B15VLMF3ASBD"),
    ],
)
def test_the_target_is_the_incidents_id(sample: str, incident: str) -> None:
    notice = NOTIFIER.notice(None, load("pagerduty", sample))
    assert ACTING.target(notice) == {"incident_id": incident}


def test_a_service_event_has_no_target() -> None:
    assert ACTING.target(NOTIFIER.notice(None, load("pagerduty", "service_updated"))) is None


def test_the_catalog_finds_the_acting_and_its_setting_is_an_optional_secret() -> None:
    found = provider_module("pagerduty", "acting")
    assert found is not None and found.ACTING is ACTING
    assert (ACTING.name, ACTING.link, ACTING.settings) == ("pagerduty", "mapping", ("api_token",))
    setting = CATALOG["pagerduty"].setting("api_token")
    assert setting is not None and setting.secret and not setting.required


# -- each action's calls ------------------------------------------------------------------


async def test_acknowledge_reads_the_incident_then_puts_its_status_as_the_linked_user(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    outcome = await perform(http, pagerduty, "acknowledge")
    assert outcome == Outcome("acknowledged", state="acknowledged")
    assert made(pagerduty) == [READ, UPDATE]
    read, update = pagerduty.requests
    assert headers(read) == API and read.body is None
    assert headers(update) == AS_ADA
    assert update.body == {"incident": {"type": "incident_reference", "status": "acknowledged"}}
    incident = pagerduty.incidents[INCIDENT]
    assert (incident.status, incident.acknowledgers) == ("acknowledged", ["PADA001"])


async def test_resolve_puts_its_status_and_nothing_else(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    outcome = await perform(http, pagerduty, "resolve")
    assert outcome == Outcome("resolved", state="resolved")
    assert made(pagerduty) == [UPDATE]
    [update] = pagerduty.requests
    assert headers(update) == AS_ADA
    assert update.body == {"incident": {"type": "incident_reference", "status": "resolved"}}
    assert pagerduty.incidents[INCIDENT].resolved_by == "PADA001"


async def test_reassign_to_me_finds_the_user_by_exact_email_and_assigns_them(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    pagerduty.incidents[INCIDENT].status = "acknowledged"
    outcome = await perform(http, pagerduty, "reassign:me")
    assert outcome == Outcome("reassigned to Ada Lovelace", state="triggered")
    assert made(pagerduty) == [READ, ("GET", "/users"), UPDATE]
    _, users, update = pagerduty.requests
    assert users.query == {"query": ADA} and headers(users) == API
    assert headers(update) == AS_ADA
    assert update.body == {
        "incident": {
            "type": "incident_reference",
            "assignments": [{"assignee": {"id": "PADA001", "type": "user_reference"}}],
        }
    }
    assert pagerduty.incidents[INCIDENT].assignees == ["PADA001"]


# -- refusals -------------------------------------------------------------------------------


async def test_an_email_pagerduty_does_not_know_is_the_users_link_to_fix(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    stranger = Link("u_bob", "mapping", provider_user="bob@example.com")
    with pytest.raises(LinkRejected) as refused:
        await perform(http, pagerduty, "resolve", stranger)
    assert refused.value.upstream_status == 400
    assert "Requester User Not Found" in refused.value.message
    assert [r.headers["from"] for r in pagerduty.requests] == ["bob@example.com"]
    assert pagerduty.incidents[INCIDENT].status == "triggered"
    # Reassigning finds no user with that email: refused before anything is changed.
    with pytest.raises(LinkRejected, match=r"no user with the email bob@example\.com"):
        await perform(http, pagerduty, "reassign:me", stranger)
    assert made(pagerduty)[1:] == [READ, ("GET", "/users")]


async def test_no_linked_user_is_refused_before_any_call(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    with pytest.raises(LinkRejected):
        await perform(http, pagerduty, "acknowledge", Link("u_eve", "mapping"))
    with pytest.raises(ActionRefused, match="no action 'snooze'"):
        await perform(http, pagerduty, "snooze")
    with pytest.raises(ActionRefused, match="no api_token"):
        await ACTING.perform(
            http,
            Credentials({}, api_base=pagerduty.base_url),
            {"incident_id": INCIDENT},
            "resolve",
            ADA_LINK,
        )
    assert pagerduty.requests == []


async def test_an_already_resolved_incident_is_refused_and_never_reopened(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    pagerduty.incidents[INCIDENT].status = "resolved"
    with pytest.raises(ActionRefused) as refused:
        await perform(http, pagerduty, "resolve")
    assert refused.value.upstream_status == 400
    assert "Incident Already Resolved" in refused.value.message
    # PagerDuty would reopen it on an acknowledgement: the acting reads it first.
    for action in ("acknowledge", "reassign:me"):
        with pytest.raises(ActionRefused, match="already resolved"):
            await perform(http, pagerduty, action)
    assert made(pagerduty) == [UPDATE, READ, READ]
    assert pagerduty.incidents[INCIDENT].status == "resolved"


async def test_the_stand_in_reopens_a_resolved_incident_acknowledged_as_pagerduty_does(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    """Why acknowledge reads first: the same PUT, sent blindly, reopens the incident."""
    pagerduty.incidents[INCIDENT].status = "resolved"
    answer = await http.put(
        f"{pagerduty.base_url}/incidents/{INCIDENT}",
        headers={"Authorization": f"Token token={TOKEN}", "From": ADA},
        json={"incident": {"type": "incident_reference", "status": "acknowledged"}},
    )
    assert answer.status_code == 200
    assert pagerduty.incidents[INCIDENT].status == "acknowledged"


async def test_a_key_pagerduty_refuses_is_a_401_link_rejected(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    with pytest.raises(LinkRejected) as refused:
        await ACTING.perform(
            http,
            credentials(pagerduty, "wrong-token"),
            {"incident_id": INCIDENT},
            "resolve",
            ADA_LINK,
        )
    assert refused.value.upstream_status == 401
    assert made(pagerduty) == [UPDATE]


async def test_an_unknown_incident_is_refused(
    http: httpx.AsyncClient, pagerduty: FakePagerDuty
) -> None:
    with pytest.raises(ActionRefused) as refused:
        await ACTING.perform(
            http, credentials(pagerduty), {"incident_id": "PNOPE00"}, "resolve", ADA_LINK
        )
    assert refused.value.upstream_status == 404


# -- no usable answer ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "status", "wait"),
    [
        (lambda fake: fake.fail(times=1), 503, None),
        (lambda fake: fake.rate_limit(times=1, reset=20), 429, 20.0),  # `ratelimit-reset`
    ],
    ids=["outage", "rate-limit"],
)
async def test_an_outage_or_a_rate_limit_is_unavailable_until_it_is_over(
    http: httpx.AsyncClient,
    pagerduty: FakePagerDuty,
    script: Callable[[FakePagerDuty], None],
    status: int,
    wait: float | None,
) -> None:
    script(pagerduty)
    with pytest.raises(ActionUnavailable) as unavailable:
        await perform(http, pagerduty, "resolve")
    assert (unavailable.value.upstream_status, unavailable.value.retry_after) == (status, wait)
    assert pagerduty.incidents[INCIDENT].status == "triggered"
    assert (await perform(http, pagerduty, "resolve")).state == "resolved"


async def test_no_answer_at_all_is_unavailable(http: httpx.AsyncClient) -> None:
    nowhere = Credentials({"api_token": TOKEN}, api_base=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ActionUnavailable, match="ConnectError"):
        await ACTING.perform(http, nowhere, {"incident_id": INCIDENT}, "resolve", ADA_LINK)
