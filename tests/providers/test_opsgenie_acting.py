"""Acting on Opsgenie alerts from the channel (shared/providers/opsgenie/acting.py): what a
card offers, from Opsgenie's own webhooks rendered by the notifier, and each action's call,
made for real over HTTP to Opsgenie's stand-in (services/sandbox/opsgenie.py) on loopback:
exactly the documented request and nothing else, and each kind of refusal.

Payloads from shared/providers/opsgenie/samples (its README.md says where each comes from:
Opsgenie's alert action data page, and Zulip's fixtures of its examples): `create.json`,
`unacknowledge.json` (open), `acknowledge.json`, `close.json`, and `addnote.json`,
`escalate.json` (no state), all of alert 052652ac-… but the escalation's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.sandbox import FakeOpsgenie
from shared.providers.acting import (
    ActionRefused,
    ActionUnavailable,
    Credentials,
    Link,
    LinkRejected,
    Outcome,
)
from shared.providers.catalog import CATALOG, provider_module
from shared.providers.opsgenie.acting import ACTING
from shared.providers.opsgenie.notify import NOTIFIER
from tests.providers.samples import load

KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"  # the docs' example key
ALERT = "052652ac-5d1c-464a-812a-7dd18bbfba8c"  # create.json's alert
ADA = "ada@example.com"
ADA_LINK = Link("u_ada", "mapping", provider_user=ADA)
BODY = {"user": ADA, "source": "hookhub", "note": "from chat"}


@pytest.fixture
async def opsgenie(opsgenie_api: FakeOpsgenie) -> AsyncIterator[FakeOpsgenie]:
    opsgenie_api.forget()
    opsgenie_api.keys = {KEY: True}
    opsgenie_api.add_alert(ALERT)
    yield opsgenie_api


async def perform(
    http: httpx.AsyncClient, fake: FakeOpsgenie, action: str, key: str = KEY
) -> Outcome:
    credentials = Credentials({"api_key": key}, api_base=fake.base_url)
    return await ACTING.perform(http, credentials, {"alert_id": ALERT}, action, ADA_LINK)


# -- what a card offers, from Opsgenie's webhooks -------------------------------------------


@pytest.mark.parametrize(
    ("sample", "offered"),
    [
        ("create", ["acknowledge", "close"]),
        ("unacknowledge", ["acknowledge", "close"]),
        ("acknowledge", ["close"]),
        ("close", []),
        # Actions that do not say the alert's state offer nothing.
        ("addnote", []),
        ("escalate", []),
    ],
)
def test_a_card_offers_what_the_alerts_state_allows(sample: str, offered: list[str]) -> None:
    actions = ACTING.offers(NOTIFIER.notice(None, load("opsgenie", sample)))
    assert [a.id for a in actions] == offered
    assert [a.id for a in actions if a.style == "primary"] == [
        a for a in offered if a == "acknowledge"
    ]


@pytest.mark.parametrize(
    ("sample", "alert"),
    [("create", ALERT), ("close", ALERT), ("escalate", "7ba97e3a-d328-4b5e-8f9a-39e945a3869a")],
)
def test_the_target_is_the_alerts_id(sample: str, alert: str) -> None:
    notice = NOTIFIER.notice(None, load("opsgenie", sample))
    assert ACTING.target(notice) == {"alert_id": alert}


def test_the_catalog_finds_the_acting_and_its_setting_is_an_optional_secret() -> None:
    found = provider_module("opsgenie", "acting")
    assert found is not None and found.ACTING is ACTING
    assert (ACTING.name, ACTING.link, ACTING.settings) == ("opsgenie", "mapping", ("api_key",))
    setting = CATALOG["opsgenie"].setting("api_key")
    assert setting is not None and setting.secret and not setting.required


# -- each action's call ------------------------------------------------------------------


@pytest.mark.parametrize(("action", "done"), [("acknowledge", "acknowledged"), ("close", "closed")])
async def test_an_action_is_one_post_naming_the_linked_user(
    http: httpx.AsyncClient, opsgenie: FakeOpsgenie, action: str, done: str
) -> None:
    outcome = await perform(http, opsgenie, action)
    [call] = opsgenie.requests
    assert (call.method, call.path, call.query) == (
        "POST",
        f"/v2/alerts/{ALERT}/{action}",
        {"identifierType": "id"},
    )
    assert call.headers["authorization"] == f"GenieKey {KEY}"
    assert call.headers["content-type"] == "application/json"
    assert call.body == BODY
    # Accepted, processed after the answer: no state yet, the request named for the audit.
    assert outcome == Outcome(done, reference=outcome.reference)
    assert opsgenie.statuses[str(outcome.reference)]["success"] is True
    alert = opsgenie.alerts[ALERT]
    assert (alert.acknowledged_by, alert.closed_by) == (
        (ADA, None) if action == "acknowledge" else (None, ADA)
    )


async def test_an_action_on_a_closed_alert_is_accepted_and_fails_later(
    http: httpx.AsyncClient, opsgenie: FakeOpsgenie
) -> None:
    """Opsgenie processes actions asynchronously: a closed alert is not refused at once."""
    opsgenie.alerts[ALERT].status = "closed"
    outcome = await perform(http, opsgenie, "acknowledge")
    assert outcome.text == "acknowledged" and outcome.reference is not None
    status = await http.get(
        f"{opsgenie.base_url}/v2/alerts/requests/{outcome.reference}",
        headers={"Authorization": f"GenieKey {KEY}"},
    )
    assert status.json()["data"]["success"] is False
    assert opsgenie.alerts[ALERT].acknowledged is False


# -- refusals and no usable answer ------------------------------------------------------------


async def test_a_key_opsgenie_does_not_know_is_a_401_link_rejected(
    http: httpx.AsyncClient, opsgenie: FakeOpsgenie
) -> None:
    with pytest.raises(LinkRejected) as refused:
        await perform(http, opsgenie, "close", key="not-a-key")
    assert refused.value.upstream_status == 401
    assert "Could not authenticate" in refused.value.message
    assert opsgenie.alerts[ALERT].status == "open"


async def test_a_key_that_is_not_an_api_integrations_is_refused(
    http: httpx.AsyncClient, opsgenie: FakeOpsgenie
) -> None:
    opsgenie.add_key("team-key", integration=False)
    with pytest.raises(ActionRefused) as refused:
        await perform(http, opsgenie, "acknowledge", key="team-key")
    assert refused.value.upstream_status == 403
    assert "use an API key from an API integration" in refused.value.message


async def test_no_linked_user_or_no_key_is_refused_before_any_call(
    http: httpx.AsyncClient, opsgenie: FakeOpsgenie
) -> None:
    credentials = Credentials({"api_key": KEY}, api_base=opsgenie.base_url)
    with pytest.raises(LinkRejected):
        await ACTING.perform(
            http, credentials, {"alert_id": ALERT}, "close", Link("u_eve", "mapping")
        )
    with pytest.raises(ActionRefused, match="no api_key"):
        await perform(http, opsgenie, "close", key="")
    with pytest.raises(ActionRefused, match="no action 'snooze'"):
        await perform(http, opsgenie, "snooze")
    assert opsgenie.requests == []


@pytest.mark.parametrize(
    ("script", "status"),
    [(lambda fake: fake.fail(times=1), 503), (lambda fake: fake.rate_limit(times=1), 429)],
    ids=["outage", "rate-limit"],
)
async def test_an_outage_or_a_rate_limit_is_unavailable(
    http: httpx.AsyncClient,
    opsgenie: FakeOpsgenie,
    script: Callable[[FakeOpsgenie], None],
    status: int,
) -> None:
    script(opsgenie)
    with pytest.raises(ActionUnavailable) as unavailable:
        await perform(http, opsgenie, "close")
    assert unavailable.value.upstream_status == status
    assert opsgenie.alerts[ALERT].status == "open"
    assert (await perform(http, opsgenie, "close")).text == "closed"
