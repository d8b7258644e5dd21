"""PagerDuty's V3 webhooks rendered (SPEC §16): one item per incident, triggered then
acknowledged then resolved, each by its agent; notes, responders and status updates in the
incident's thread; outside text stays text. Payloads from shared/providers/pagerduty/samples
(their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.notify import Unrenderable
from shared.providers.pagerduty.notify import NOTIFIER
from tests.providers.notify_support import (
    CARD_HOSTILE,
    CARD_READS,
    HOSTILE,
    assert_defused,
    assert_inert,
    assert_renders_or_refuses,
    links,
    plain,
    set_path,
)
from tests.providers.notify_support import (
    card_fields as fields,
)
from tests.providers.notify_support import (
    sample as provider_sample,
)


def sample(name: str) -> dict[str, Any]:
    return provider_sample("pagerduty", name)


def test_an_incident_triggered_acknowledged_and_resolved_is_one_item() -> None:
    # Zulip's captures are of three incidents of one account (PFQZPSY triggered, PQ1K5C8
    # acknowledged, PCPZE64 resolved); the test makes them one incident, as PagerDuty
    # sends for one, by giving the three the first one's id.
    steps = [sample(f"incident_{name}") for name in ("triggered", "acknowledged", "resolved")]
    for payload in steps[1:]:
        payload["event"]["data"]["id"] = "PFQZPSY"
    notices = [NOTIFIER.notice(p["event"]["event_type"], p) for p in steps]
    assert [n.event for n in notices] == [
        "incident.triggered",
        "incident.acknowledged",
        "incident.resolved",
    ]
    assert {n.item for n in notices} == {"PFQZPSY"}
    assert [n.item_card.state for n in notices if n.item_card] == [
        "triggered",
        "acknowledged",
        "resolved",
    ]
    assert [n.item_card.color for n in notices if n.item_card] == ["#cf222e", "#bf8700", "#1f883d"]
    assert [n.resolved for n in notices] == [False, None, True]
    assert all(n.default for n in notices)
    for notice in notices:
        assert notice.actor is not None and notice.actor.name == "PIG 208"
        assert notice.actor.login == "PJ0LVEB" and not notice.actor.bot
    seen = [plain(n.text) for n in notices]
    assert seen[0].startswith("PIG 208 triggered #9 Test Incident 3 on pig208")
    assert seen[1].startswith("PIG 208 acknowledged #10 Test Incident on pig208")
    assert seen[2].startswith("PIG 208 resolved #6 Test Incident on pig208")


def test_a_triggered_incident_links_it_and_says_what_matters() -> None:
    notice = NOTIFIER.notice("incident.triggered", sample("incident_triggered"))
    assert links(notice.text)[:2] == [
        ("https://pig208.pagerduty.com/incidents/PFQZPSY", "#9 Test Incident 3"),
        ("https://pig208.pagerduty.com/services/PA2P440", "pig208"),
    ]
    assert "Urgency: high · Assigned to: PIG 208" in plain(notice.text)
    assert notice.card is not None and notice.item_card == notice.card
    assert notice.card.title == "#9 Test Incident 3"
    assert fields(notice.card) == {
        "Service": "pig208",
        "Urgency": "high",
        "Assigned to": "PIG 208",
        "Escalation policy": "Default",
    }


def test_the_incident_s_thread_escalated_delegated_noted_and_updated() -> None:
    # Zulip's captures of one incident, Q3B15VLMF3ASBD, through its life.
    names = ("escalated", "delegated", "annotated", "responder_added", "status_update_published")
    notices = {name: NOTIFIER.notice(None, sample(f"incident_{name}")) for name in names}
    assert {n.item for n in notices.values()} == {"Q3B15VLMF3ASBD"}
    assert all(n.resolved is None for n in notices.values())
    assert all(n.actor and n.actor.name == "Harsh Santwani" for n in notices.values())
    escalated = notices["escalated"]
    assert escalated.started_at == datetime(2026, 4, 1, 2, 7, 30, tzinfo=UTC)
    assert "escalated #5 Critical: Checkout API High Latency to Harsh Santwani" in plain(
        escalated.text
    )
    assert "Priority: P1" in plain(escalated.text) and "· triggered" in plain(escalated.text)
    assert escalated.item_card is not None
    assert fields(escalated.item_card)["Priority"] == "P1"
    assert "delegated #5 Critical: Checkout API High Latency to APIs-ep" in plain(
        notices["delegated"].text
    )
    note = notices["annotated"]
    assert note.item_card is None  # a note does not say the incident's state
    assert "> Running KILL on long-running queries" in note.text
    assert not note.default
    responder = notices["responder_added"]
    assert "asked Harsh Santwani to help with" in plain(responder.text)
    assert "pending" in plain(responder.text)
    replied = NOTIFIER.notice(None, sample("incident_responder_replied"))
    assert replied.item == "Q3B15VLMF3ASBD" and replied.resolved is None
    assert plain(replied.text).startswith(
        "Harsh Santwani replied to the request for help with Critical: Checkout API"
    )
    assert "accepted" in plain(replied.text) and "> Checking now." in replied.text
    update = notices["status_update_published"]
    assert "published a status update on" in plain(update.text)
    assert "We've identified a database lock" in plain(update.text)


def test_reopened_starts_the_incident_again_and_unacknowledged_leaves_it_open() -> None:
    reopened = NOTIFIER.notice(None, sample("incident_reopened"))
    assert reopened.resolved is False and reopened.item == "Q05XJA8GDXGOB3"
    assert reopened.started_at == datetime(2026, 3, 30, 13, 37, 7, tzinfo=UTC)
    unacknowledged = NOTIFIER.notice(None, sample("incident_unacknowledged"))
    assert unacknowledged.resolved is None and not unacknowledged.default
    assert unacknowledged.item_card is not None
    assert unacknowledged.item_card.state == "triggered"
    reassigned = NOTIFIER.notice(None, sample("incident_reassigned"))
    assert "reassigned #3 Test Incident to Test User" in plain(reassigned.text)
    priority = NOTIFIER.notice(None, sample("incident_priority_updated"))
    assert priority.event == "incident.priority_updated" and not priority.default
    assert "changed the priority of #2 A little bump in the road" in plain(priority.text)


def test_an_agent_that_is_not_a_user_is_a_bot_and_a_missing_one_is_pagerduty() -> None:
    payload = sample("incident_triggered")
    payload["event"]["agent"].update(type="service_reference", summary="Datadog")
    notice = NOTIFIER.notice(None, payload)
    assert notice.actor is not None and notice.actor.bot and notice.actor.name == "Datadog"
    payload["event"]["agent"] = None
    notice = NOTIFIER.notice(None, payload)
    assert notice.actor is None and plain(notice.text).startswith("PagerDuty triggered")


def test_services_and_pings_render_without_an_item() -> None:
    notice = NOTIFIER.notice(None, sample("service_updated"))
    assert notice.event == "service.updated" and notice.item is None and not notice.default
    assert plain(notice.text) == "Service testing service updates updated\n"
    ping = {"event": {"event_type": "pagey.ping", "data": None}}
    assert NOTIFIER.notice(None, ping).event == "pagey.ping"


HOSTILE_PATHS = (
    "event.agent.summary",
    "event.data.title",
    "event.data.service.summary",
    "event.data.priority.summary",
    "event.data.urgency",
    "event.data.escalation_policy.summary",
)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("incident_escalated")
    for path in HOSTILE_PATHS:
        set_path(payload, path, hostile)
    payload["event"]["data"]["assignees"][0]["summary"] = hostile
    payload["event"]["data"]["html_url"] = "javascript:alert(1)"
    payload["event"]["data"]["service"]["html_url"] = "data:text/html,x"
    notice = NOTIFIER.notice(None, payload)
    assert_inert(notice.text, baseline=NOTIFIER.notice(None, sample("incident_escalated")).text)
    assert notice.card is not None and notice.card.url is None
    note = sample("incident_annotated")
    note["event"]["data"]["content"] = hostile
    note["event"]["data"]["incident"]["summary"] = hostile
    note["event"]["agent"]["summary"] = hostile
    assert_inert(
        NOTIFIER.notice(None, note).text,
        baseline=NOTIFIER.notice(None, sample("incident_annotated")).text,
    )


def test_the_card_and_the_author_are_defused() -> None:
    payload = sample("incident_triggered")
    payload["event"]["data"]["title"] = CARD_HOSTILE
    payload["event"]["data"]["service"]["summary"] = CARD_HOSTILE
    payload["event"]["agent"]["summary"] = CARD_HOSTILE
    notice = NOTIFIER.notice(None, payload)
    assert notice.card is not None and notice.actor is not None
    assert_defused(notice.card.title, f"#9 {CARD_READS}")
    assert_defused(fields(notice.card)["Service"], CARD_READS)
    assert_defused(notice.actor.name, CARD_READS)


def test_what_names_no_incident_is_unrenderable() -> None:
    broken: Any
    for broken in (
        [],
        {},
        {"event": {"event_type": "incident.triggered"}},
        {"event": {"event_type": "incident.triggered", "data": {"type": "incident"}}},
        {"event": {"event_type": "incident.annotated", "data": {"incident": {}}}},
        {"event": {"data": {"id": "P1"}}},
    ):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice(None, broken)


@pytest.mark.parametrize(
    "name",
    ["incident_escalated", "incident_annotated", "incident_responder_added", "service_updated"],
)
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))


def test_a_resolution_ends_when_pagerduty_resolved_it() -> None:
    # The resolve event's own `occurred_at` (Zulip's capture): how long the incident was open
    # is measured to it, not to when the webhook arrived (SPEC §16, "Open for").
    resolved = NOTIFIER.notice(None, sample("incident_resolved"))
    assert resolved.ended_at == datetime(2021, 6, 4, 13, 16, 53, 816000, tzinfo=UTC)
    # Other events end nothing, though each has its `occurred_at`.
    for name in ("incident_triggered", "incident_acknowledged", "incident_reopened"):
        assert NOTIFIER.notice(None, sample(name)).ended_at is None
    # The capture of a trigger has no `created_at`: the incident began when it triggered.
    triggered = NOTIFIER.notice(None, sample("incident_triggered"))
    assert triggered.started_at == datetime(2021, 6, 4, 13, 35, 29, 781000, tzinfo=UTC)
    # An acknowledgement's time is not when the incident began.
    assert NOTIFIER.notice(None, sample("incident_acknowledged")).started_at is None
