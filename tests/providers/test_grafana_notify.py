"""Grafana's alerting webhooks rendered (SPEC §16): one item per alert group, firing then
resolved, each alert with its values and its dashboard, panel and silence links (by
Alertmanager's renderer); legacy alerting one item per rule, alerting then ok; outside text
stays text. Payloads from shared/providers/grafana/samples (their README says where each
comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.grafana.notify import NOTIFIER
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
    to_html,
)
from tests.providers.notify_support import card_fields as fields
from tests.providers.notify_support import sample as provider_sample


def sample(name: str) -> dict[str, Any]:
    return provider_sample("grafana", name)


def test_a_group_firing_then_resolved_is_one_item() -> None:
    # Zulip's captures of one Grafana 9 group (the same groupKey) firing, then resolved.
    firing = NOTIFIER.notice("firing", sample("group_firing"))
    resolved = NOTIFIER.notice("resolved", sample("group_resolved"))
    assert firing.item == resolved.item == '{}/{test="true"}:{}'
    assert [firing.event, resolved.event] == ["firing", "resolved"]
    assert [firing.resolved, resolved.resolved] == [False, True]
    assert firing.item_card is not None and resolved.item_card is not None
    assert [firing.item_card.state, resolved.item_card.state] == ["firing", "resolved"]
    assert [firing.item_card.color, resolved.item_card.color] == ["#cf222e", "#1f883d"]
    assert firing.default and resolved.default
    assert firing.actor is None and resolved.actor is None  # an alert has no one behind it
    start = datetime(2022, 6, 17, 0, 41, 0, 782137, tzinfo=UTC)
    assert firing.started_at == resolved.started_at == start
    assert plain(firing.text).startswith("[FIRING:1] Test alert · Grafana (Webhook test)")
    assert plain(resolved.text).startswith("[RESOLVED] Test alert")


def test_each_alert_has_its_values_and_links() -> None:
    notice = NOTIFIER.notice("firing", sample("firing_values"))
    seen = plain(notice.text)
    assert "A=2473545728, B=0, C=1, minute=9" in seen
    assert "> High memory usage" in notice.text
    hrefs = {label: href for href, label in links(notice.text)}
    assert (
        hrefs["dashboard"]
        == "https://play.grafana.org/d/ece9fb32-7f71-4be9-bd94-2f23608ae5b9?orgId=1"
    )
    assert hrefs["panel"].endswith("viewPanel=2")
    assert hrefs["silence"].startswith("https://play.grafana.org/alerting/silence/new")
    assert hrefs["Memory (copy)"].startswith("https://play.grafana.org/alerting/grafana/dd2f0260")
    assert fields(notice.card)["grafana_folder"] == "device"
    # Grafana 8 sends only a valueString; empty links are left out.
    documented = NOTIFIER.notice("firing", sample("firing"))
    assert "B=44.24, C=1" in plain(documented.text)
    assert "dashboard" not in [label for _, label in links(documented.text)]
    assert "[ var='B0' metric='Value'" in plain(NOTIFIER.notice(None, sample("group_firing")).text)


def test_alerts_grafana_left_out_are_counted() -> None:
    payload = sample("firing")
    payload["truncatedAlerts"] = 3
    assert "and 3 more" in plain(NOTIFIER.notice("firing", payload).text)


def test_legacy_alerting_then_ok_is_one_rule() -> None:
    # Zulip's captures of Grafana's legacy test notification (rule 0), alerting then ok.
    alerting = NOTIFIER.notice("alerting", sample("legacy_alerting"))
    ok = NOTIFIER.notice("ok", sample("legacy_ok"))
    assert alerting.item == ok.item == "rule 0"
    assert [alerting.event, ok.event] == ["firing", "resolved"]
    assert [alerting.resolved, ok.resolved] == [False, True]
    assert alerting.item_card is not None and ok.item_card is not None
    assert [alerting.item_card.state, ok.item_card.state] == ["alerting", "ok"]
    assert [alerting.item_card.color, ok.item_card.color] == ["#cf222e", "#1f883d"]
    seen = plain(alerting.text)
    assert seen.startswith("[ALERTING] Test rule · Grafana")
    assert "Someone is testing the alert notification" in seen
    assert "High value = 100" in seen and "Higher Value = 200" in seen
    assert links(alerting.text)[0][0] == "http://localhost:3000/"
    no_data = sample("legacy_no_data")
    no_data["state"] = "no_data"
    notice = NOTIFIER.notice(None, no_data)
    assert notice.event == "no_data" and notice.resolved is False and notice.item == "rule 3"
    paused = sample("legacy_ok")
    paused["state"] = "paused"
    notice = NOTIFIER.notice(None, paused)
    assert notice.event == "paused" and notice.resolved is None and not notice.default


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("firing_values")
    alert = payload["alerts"][0]
    alert["labels"]["alertname"] = hostile
    alert["annotations"]["summary"] = hostile
    alert["valueString"] = hostile
    alert["values"] = {hostile: 1}
    alert["dashboardURL"] = "javascript:alert(1)"
    payload["commonAnnotations"]["summary"] = hostile
    payload["groupLabels"]["alertname"] = hostile
    payload["receiver"] = hostile
    baseline = NOTIFIER.notice(None, sample("firing_values")).text
    notice = NOTIFIER.notice(None, payload)
    assert_inert(notice.text, baseline=baseline)
    assert "dashboard" not in [label for _, label in links(notice.text)]
    legacy = sample("legacy_alerting")
    legacy.update(ruleName=hostile, message=hostile, ruleUrl="data:text/html,x")
    legacy["evalMatches"][0]["metric"] = hostile
    notice = NOTIFIER.notice(None, legacy)
    assert_inert(notice.text, baseline=NOTIFIER.notice(None, sample("legacy_alerting")).text)
    assert notice.card is not None and notice.card.url is None


def test_the_card_is_defused() -> None:
    legacy = sample("legacy_alerting")
    legacy["ruleName"] = CARD_HOSTILE
    legacy["tags"] = {"team": CARD_HOSTILE}
    notice = NOTIFIER.notice(None, legacy)
    assert notice.card is not None
    assert_defused(notice.card.title, CARD_READS)
    assert_defused(fields(notice.card)["team"], CARD_READS)


def test_what_names_no_group_or_rule_is_unrenderable() -> None:
    broken: Any
    for broken in (
        [],
        {"status": "firing"},
        {"ruleId": 1, "state": "exploded"},
        {"ruleId": None, "state": "ok", "ruleName": "x"},
    ):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice(None, broken)


@pytest.mark.parametrize("name", ["firing", "firing_values", "legacy_alerting"])
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))


def test_each_alert_of_a_group_says_its_description() -> None:
    # Zulip's capture of a Grafana 9 notification of three alerts, each with a summary and a
    # description (runbook_url common to all): every alert's line carries both.
    notice = NOTIFIER.notice("firing", sample("group_multiple"))
    lines = [plain(line).strip() for line in notice.text.splitlines() if line.startswith("- ")]
    assert len(lines) == 3
    assert lines[0].startswith(
        "Test alert: This is a summary field, failure on badhost.example.com"
        " — This is a description"
    )
    assert "failure on otherhost.example.com — This is a description" in lines[1]
    # Its description's `**here**` stays text, as Zulip's rendering does not make it bold.
    assert "Testing **another** failing alert — Description **here**" in lines[2]
    assert "<strong>here" not in to_html(notice.text)
    # The documented example (Grafana's docs): each alert's description too.
    documented = plain(NOTIFIER.notice("firing", sample("firing")).text)
    assert "The system has high memory usage" in documented
    assert "The system has high CPU usage" in documented


def test_a_resolved_group_was_open_from_its_starts_to_its_ends() -> None:
    # Zulip's capture: the group resolved at its alert's own `endsAt`, 10 min after it began.
    resolved = NOTIFIER.notice("resolved", sample("group_resolved"))
    assert resolved.started_at == datetime(2022, 6, 17, 0, 41, 0, 782137, tzinfo=UTC)
    assert resolved.ended_at == datetime(2022, 6, 17, 0, 51, 24, 67337, tzinfo=UTC)
    assert NOTIFIER.notice("firing", sample("group_firing")).ended_at is None
