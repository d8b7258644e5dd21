"""Alertmanager's webhooks rendered (SPEC §16): one item per alert group, firing then
resolved, every alert a line with what tells it apart; outside text stays text. Payloads
from shared/providers/alertmanager/samples (their README says where they come from)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.providers.alertmanager.notify import ALERTS_SHOWN, NOTIFIER
from shared.providers.notify import Unrenderable
from tests.providers.notify_support import (
    HOSTILE,
    assert_defused,
    assert_inert,
    assert_renders_or_refuses,
    links,
    plain,
)

SAMPLES = Path(__file__).parents[2] / "shared" / "providers" / "alertmanager" / "samples"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return loaded


def test_a_firing_group_names_each_alert_and_what_it_shares() -> None:
    notice = NOTIFIER.notice("firing", sample("firing"))
    assert notice.event == "firing" and notice.default and notice.resolved is False
    assert notice.item == "{}/{}:{}"
    assert notice.started_at == datetime(2020, 2, 6, 0, 17, 58, 432911, tzinfo=UTC)
    seen = plain(notice.text)
    assert "[FIRING:2] High CPU Temperature" in seen
    assert "High CPU core temperature" in seen  # the group's summary, said once
    assert seen.count("High CPU core temperature") == 1
    assert "CPU core temperature is 34.75C" in seen and "CPU core temperature is 17.625C" in seen
    assert "host=andromeda" in seen
    hrefs = [href for href, _ in links(notice.text)]
    assert hrefs[0] == "http://ops1:9093" and hrefs[1].startswith("http://cobalt:9090/graph")
    assert notice.card is not None and notice.item_card == notice.card
    assert notice.card.state == "firing" and notice.card.color == "#cf222e"
    fields = {f.name: f.value for f in notice.card.fields}
    assert fields == {"severity": "critical", "Alerts": "2 firing"}


def test_the_same_group_resolved_is_the_same_item_turned_green() -> None:
    firing = NOTIFIER.notice("firing", sample("firing"))
    notice = NOTIFIER.notice("resolved", sample("resolved"))
    assert notice.item == firing.item and notice.resolved is True
    assert notice.card is not None and notice.card.state == "resolved"
    assert notice.card.color == "#1f883d"
    assert "[RESOLVED] High CPU Temperature" in plain(notice.text)
    assert "(resolved)" in plain(notice.text)


def test_a_large_group_is_cut_and_counted() -> None:
    payload = sample("firing")
    alert = payload["alerts"][0]
    payload["alerts"] = [
        {**copy.deepcopy(alert), "labels": {**alert["labels"], "host": f"h{n}"}}
        for n in range(ALERTS_SHOWN + 5)
    ]
    notice = NOTIFIER.notice("firing", payload)
    assert "and 5 more" in plain(notice.text)
    assert "h0" in plain(notice.text) and f"h{ALERTS_SHOWN}" not in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_labels_and_annotations_stay_text(hostile: str) -> None:
    payload = sample("firing")
    payload["commonLabels"]["alertname"] = hostile
    payload["commonAnnotations"]["summary"] = hostile
    payload["alerts"][0]["labels"]["host"] = hostile
    payload["alerts"][0]["annotations"]["description"] = hostile
    payload["alerts"][0]["generatorURL"] = "javascript:alert(1)"
    payload["externalURL"] = "data:text/html,x"
    notice = NOTIFIER.notice("firing", payload)
    assert_inert(notice.text, baseline=NOTIFIER.notice("firing", sample("firing")).text)
    assert notice.card is not None and notice.card.url is None
    assert_defused(notice.card.title)


def test_what_is_not_a_group_is_unrenderable() -> None:
    broken: Any
    for broken in ({"status": "pending", "groupKey": "g"}, {"status": "firing"}, []):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice("firing", broken)
    # Wrong types inside are absent, not errors.
    odd = {"status": "firing", "groupKey": "g", "alerts": [1, {"labels": 5}], "commonLabels": []}
    assert "[FIRING:0] alerts" in plain(NOTIFIER.notice("firing", odd).text)


def test_alerts_alertmanager_left_out_are_counted() -> None:
    # `truncatedAlerts` (Alertmanager 0.25, the webhook's `max_alerts`): alerts not sent.
    payload = sample("firing")
    payload["truncatedAlerts"] = 4
    assert "and 4 more" in plain(NOTIFIER.notice("firing", payload).text)


@pytest.mark.parametrize("name", ["firing", "resolved"])
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))


def test_a_resolved_group_ended_with_its_last_alert_s_ends_at() -> None:
    # The capture's `endsAt` is Go's zero time ("not yet"): no end is known from it.
    assert NOTIFIER.notice(None, sample("resolved")).ended_at is None
    # Two alerts of the group resolved at their own `endsAt` (the format's field): the
    # group ended with the last.
    payload = sample("firing")
    payload["status"] = "resolved"
    for alert, ended in zip(payload["alerts"], ("11:23", "11:05"), strict=True):
        alert["status"] = "resolved"
        alert["endsAt"] = f"2020-02-06T{ended}:00Z"
    notice = NOTIFIER.notice(None, payload)
    assert notice.ended_at == datetime(2020, 2, 6, 11, 23, tzinfo=UTC)
    assert notice.started_at == datetime(2020, 2, 6, 0, 17, 58, 432911, tzinfo=UTC)
    # Still firing: a firing alert's `endsAt` is a guess ahead, no end.
    payload["status"] = "firing"
    payload["alerts"][0]["status"] = "firing"
    assert NOTIFIER.notice(None, payload).ended_at is None


def test_each_alert_says_its_summary_and_its_description() -> None:
    # The capture's alert has the group's common summary (quoted once, above) and its own
    # description (on its line).
    notice = NOTIFIER.notice(None, sample("resolved"))
    seen = plain(notice.text)
    assert seen.count("High CPU core temperature") == 1
    assert "High CPU Temperature (resolved): CPU core temperature is 34.75C" in seen
    both = sample("firing")
    both["commonAnnotations"]["description"] = "Every core of the host"
    assert "> High CPU core temperature\n>\n> Every core of the host" in (
        NOTIFIER.notice(None, both).text
    )
