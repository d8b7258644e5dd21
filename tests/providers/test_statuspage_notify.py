"""Atlassian Statuspage's webhooks rendered (SPEC §16): one item per incident, identified
then resolved, its latest update quoted and its impact as its colour; one item per
component, down then operational; outside text stays text. Payloads from
shared/providers/statuspage/samples (their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.notify import Unrenderable
from shared.providers.statuspage.notify import NOTIFIER
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
    return provider_sample("statuspage", name)


def test_an_incident_identified_then_resolved_is_one_item() -> None:
    # Zulip's captures of one incident (z3lct0r596n4): created as identified, then resolved.
    opened = NOTIFIER.notice("incident.identified", sample("incident_created"))
    resolved = NOTIFIER.notice("incident.resolved", sample("incident_resolved"))
    assert [opened.event, resolved.event] == ["incident.identified", "incident.resolved"]
    assert opened.item == resolved.item == "z3lct0r596n4"
    assert [opened.resolved, resolved.resolved] == [False, True]
    assert opened.item_card is not None and resolved.item_card is not None
    assert [opened.item_card.state, resolved.item_card.state] == ["identified", "resolved"]
    # Impact `none` is gray while it lasts; an ended incident is green.
    assert [opened.item_card.color, resolved.item_card.color] == ["#6e7781", "#1f883d"]
    assert (
        opened.started_at
        == resolved.started_at
        == datetime(2017, 12, 26, 7, 32, 0, 507000, tzinfo=UTC)
    )
    assert opened.actor is None and resolved.actor is None
    assert opened.default and resolved.default
    # The latest update is quoted: the resolution, not the first report.
    assert "> The database issue is resolved." in resolved.text
    assert "timing out" not in resolved.text and "timing out" in opened.text
    assert links(opened.text)[0] == ("http://stspg.io/646947c1e", "Database query delays")
    assert "Components: Management Portal (example) (operational)" in plain(opened.text)
    assert fields(opened.card)["Impact"] == "none"


def test_impact_is_the_colour_and_statuses_open_or_leave_it() -> None:
    payload = sample("incident_created")
    payload["incident"].update(status="investigating", impact="critical")
    notice = NOTIFIER.notice(None, payload)
    assert notice.event == "incident.investigating" and notice.resolved is False
    assert notice.card is not None and notice.card.color == "#cf222e"
    payload["incident"].update(status="monitoring", impact="minor")
    notice = NOTIFIER.notice(None, payload)
    assert notice.resolved is None and notice.card is not None and notice.card.color == "#bf8700"
    payload["incident"]["status"] = "postmortem"
    assert NOTIFIER.notice(None, payload).resolved is True


def test_a_component_down_then_operational_is_one_item() -> None:
    # Zulip's capture is a component going under maintenance; the test moves the same
    # component to a major outage and back (Statuspage's statuses, the same object).
    down, up = sample("component_update"), sample("component_update")
    down["component_update"].update(old_status="operational", new_status="major_outage")
    down["component"]["status"] = "major_outage"
    up["component_update"].update(old_status="major_outage", new_status="operational")
    up["component"]["status"] = "operational"
    notices = [NOTIFIER.notice(None, down), NOTIFIER.notice(None, up)]
    assert [n.event for n in notices] == ["component.major_outage", "component.operational"]
    assert {n.item for n in notices} == {"sqm6pl84wzjc"}
    assert [n.resolved for n in notices] == [False, True]
    assert [n.item_card.color for n in notices if n.item_card] == ["#cf222e", "#1f883d"]
    assert plain(notices[0].text).startswith("Database component · operational → major outage")
    # The page's address, without the subscriber's unsubscribe token.
    assert links(notices[0].text)[0][0] == "http://mycompany24.statuspage.io/"
    maintenance = NOTIFIER.notice("component.under_maintenance", sample("component_update"))
    assert maintenance.resolved is None and not maintenance.default
    assert "Status page: Service Under Maintenance" in plain(maintenance.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("incident_created")
    payload["incident"].update(name=hostile, impact=hostile, shortlink="javascript:alert(1)")
    payload["incident"]["incident_updates"][0]["body"] = hostile
    payload["incident"]["components"][0]["name"] = hostile
    payload["meta"]["unsubscribe"] = "data:text/html,x"
    baseline = NOTIFIER.notice(None, sample("incident_created")).text
    notice = NOTIFIER.notice(None, payload)
    assert_inert(notice.text, baseline=baseline)
    assert notice.card is not None and notice.card.url is None
    component = sample("component_update")
    component["component"]["name"] = hostile
    component["page"]["status_description"] = hostile
    baseline = NOTIFIER.notice(None, sample("component_update")).text
    assert_inert(NOTIFIER.notice(None, component).text, baseline=baseline)


def test_the_card_is_defused() -> None:
    payload = sample("incident_created")
    payload["incident"]["name"] = CARD_HOSTILE
    payload["incident"]["components"][0]["name"] = CARD_HOSTILE
    notice = NOTIFIER.notice(None, payload)
    assert notice.card is not None
    assert_defused(notice.card.title, CARD_READS)
    assert_defused(fields(notice.card)["Components"], f"{CARD_READS} (operational)")


def test_what_names_no_incident_or_component_is_unrenderable() -> None:
    broken: Any
    for broken in (
        [],
        {"page": {}},
        {"incident": {"name": "x"}},
        {"component_update": {"new_status": "operational"}},
        {"component": {"id": "c1"}, "component_update": {}},
    ):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice(None, broken)


@pytest.mark.parametrize("name", ["incident_created", "component_update"])
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))


def test_an_incident_and_a_component_end_at_their_own_times() -> None:
    # Zulip's capture: the incident's `resolved_at`, 5 min after its `created_at`.
    resolved = NOTIFIER.notice("incident.resolved", sample("incident_resolved"))
    assert resolved.ended_at == datetime(2017, 12, 26, 7, 37, 20, 785000, tzinfo=UTC)
    assert NOTIFIER.notice("incident.identified", sample("incident_created")).ended_at is None
    # A component's outage began, and ended, with its update's own `created_at` (the capture
    # is a change to maintenance; the statuses are the documented ones).
    down = sample("component_update")
    down["component_update"]["new_status"] = "major_outage"
    went = NOTIFIER.notice(None, down)
    assert went.resolved is False and went.ended_at is None
    assert went.started_at == datetime(2017, 12, 26, 7, 59, 9, 379000, tzinfo=UTC)
    back = sample("component_update")
    back["component_update"].update(old_status="major_outage", new_status="operational")
    came = NOTIFIER.notice(None, back)
    assert came.resolved is True and came.started_at is None
    assert came.ended_at == datetime(2017, 12, 26, 7, 59, 9, 379000, tzinfo=UTC)
