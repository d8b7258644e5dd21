"""New Relic's webhooks rendered (SPEC §16): a workflow's issue created, acknowledged then
closed, and a legacy policy incident open, acknowledged then closed, each one item;
outside text stays text. Payloads from shared/providers/newrelic/samples (their README says
where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.newrelic.notify import NOTIFIER
from shared.providers.notify import Unrenderable
from tests.providers.notify_support import (
    CARD_HOSTILE,
    CARD_READS,
    HOSTILE,
    assert_defused,
    assert_inert,
    assert_renders_or_refuses,
    links,
    plain,
)
from tests.providers.notify_support import card_fields as fields
from tests.providers.notify_support import sample as provider_sample


def sample(name: str) -> dict[str, Any]:
    return provider_sample("newrelic", name)


def test_an_issue_created_acknowledged_and_closed_is_one_item() -> None:
    # Zulip's captures of the default payload are of three issues; the test gives the
    # acknowledged and closed ones the created one's id, as New Relic sends for one issue.
    steps = [sample(name) for name in ("issue_created", "issue_acknowledged", "issue_closed")]
    for payload in steps[1:]:
        payload["id"] = steps[0]["id"]
    notices = [NOTIFIER.notice(p["state"], p) for p in steps]
    assert [n.event for n in notices] == ["created", "acknowledged", "closed"]
    assert {n.item for n in notices} == {"208c5e92-f250-40be-b7c2-50508c268c15"}
    assert [n.resolved for n in notices] == [False, None, True]
    assert [n.item_card.state for n in notices if n.item_card] == [
        "created",
        "acknowledged",
        "closed",
    ]
    assert [n.item_card.color for n in notices if n.item_card] == ["#cf222e", "#bf8700", "#1f883d"]
    assert all(n.default and n.actor is None for n in notices)
    assert notices[0].started_at == datetime.fromtimestamp(1713767789.495, UTC)
    created = notices[0]
    assert links(created.text)[0][1] == (
        "MAIN-APP-UBUNTU query result is > 2.0 for 1 minutes on 'High CPU'"
    )
    assert fields(created.card) == {
        "Priority": "CRITICAL",
        "Entities": "MAIN-APP-UBUNTU",
        "Policy": "Golden Signals",
        "Condition": "High CPU",
        "Incidents": "1",
    }


def test_an_activated_issue_opens_it() -> None:
    notice = NOTIFIER.notice("ACTIVATED", sample("issue_activated"))
    assert notice.event == "activated" and notice.resolved is False
    assert notice.item == "c5faa7e6-7b54-402d-af79-f99601e0278c"


def test_a_legacy_incident_open_acknowledged_and_closed_is_one_item() -> None:
    # Zulip's captures of one legacy incident (1234).
    names = ("incident_open", "incident_acknowledged", "incident_closed")
    notices = [NOTIFIER.notice(None, sample(name)) for name in names]
    assert [n.event for n in notices] == ["open", "acknowledged", "closed"]
    assert {n.item for n in notices} == {"1234"}
    assert [n.resolved for n in notices] == [False, None, True]
    assert [n.item_card.state for n in notices if n.item_card] == ["open", "acknowledged", "closed"]
    assert notices[0].started_at == datetime.fromtimestamp(1605133931.151, UTC)
    assert plain(notices[0].text).startswith("Incident 1234: Server Down · open")
    assert "> I am a test Violation" in notices[0].text
    assert (
        links(notices[2].text)[0][0]
        == "https://alerts.newrelic.com/accounts/2941966/incidents/1234"
    )


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("issue_created")
    payload.update(
        title=hostile,
        priority=hostile,
        impactedEntities=[hostile],
        alertPolicyNames=[hostile],
        issueUrl="javascript:alert(1)",
    )
    notice = NOTIFIER.notice(None, payload)
    assert_inert(notice.text, baseline=NOTIFIER.notice(None, sample("issue_created")).text)
    assert notice.card is not None and notice.card.url is None
    legacy = sample("incident_open")
    legacy.update(details=hostile, condition_name=hostile, policy_name=hostile)
    baseline = NOTIFIER.notice(None, sample("incident_open")).text
    assert_inert(NOTIFIER.notice(None, legacy).text, baseline=baseline)


def test_the_card_is_defused() -> None:
    payload = sample("issue_created")
    payload.update(title=CARD_HOSTILE, impactedEntities=[CARD_HOSTILE])
    notice = NOTIFIER.notice(None, payload)
    assert notice.card is not None
    assert_defused(notice.card.title, CARD_READS)
    assert_defused(fields(notice.card)["Entities"], CARD_READS)


def test_what_names_no_issue_or_incident_is_unrenderable() -> None:
    broken: Any
    for broken in ([], {}, {"state": "CREATED"}, {"current_state": "open"}):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice(None, broken)


@pytest.mark.parametrize("name", ["issue_created", "issue_acknowledged", "incident_open"])
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))


def test_an_incident_of_a_workflow_template_says_its_title_and_details() -> None:
    # Zulip's captures of a workflow template that names the incident as the legacy webhook
    # did: no `title`, its condition (`condition_name`) and `details`; Zulip shows
    # "**active** for condition: **Server Down**" with the details quoted.
    active = NOTIFIER.notice(None, sample("incident_active_new"))
    assert active.event == "activated" and active.resolved is False
    assert active.item == "8ceed342-f305-4bfa-adb8-97ba93f5dd26"
    assert active.card is not None and active.card.title == "Server Down"
    assert plain(active.text).startswith("Server Down · activated")
    assert "> Violation description test." in active.text
    assert fields(active.card) == {"Policy": "Test policy name", "Condition": "Server Down"}
    assert active.started_at == datetime.fromtimestamp(1605133931.151, UTC)
    # Acknowledged by its `owner` (Zulip: "acknowledged by **Alice**").
    acknowledged = NOTIFIER.notice(None, sample("incident_acknowledged_new"))
    assert acknowledged.event == "acknowledged" and acknowledged.item == "1234"
    assert fields(acknowledged.card)["Acknowledged by"] == "Alice"
    assert "Acknowledged by: Alice" in plain(acknowledged.text)


def test_a_closed_issue_ends_when_new_relic_closed_it() -> None:
    # Zulip's documented template: `closedAt`, and who acknowledged it (`owner`).
    closed = NOTIFIER.notice(None, sample("issue_closed_owner"))
    assert closed.resolved is True
    assert closed.started_at == datetime.fromtimestamp(1713769949.493, UTC)
    assert closed.ended_at == datetime.fromtimestamp(1713770135.419, UTC)
    assert fields(closed.card)["Acknowledged by"] == "Pieter Cardillo Kwok"
    # The default template has no `closedAt`: a closed issue's `updatedAt` is its closing.
    default = NOTIFIER.notice(None, sample("issue_closed"))
    assert default.ended_at == datetime.fromtimestamp(1713766657.383, UTC)
    # "N/A" is New Relic's owner of an issue nobody acknowledged: not shown.
    unowned = sample("issue_closed")
    unowned["owner"] = "N/A"
    assert "Acknowledged by" not in fields(NOTIFIER.notice(None, unowned).card)
    # The legacy webhook's closing: its `timestamp`; an open one ends nothing.
    assert NOTIFIER.notice(None, sample("incident_closed")).ended_at == datetime.fromtimestamp(
        1605133931.151, UTC
    )
    assert NOTIFIER.notice(None, sample("incident_open")).ended_at is None
