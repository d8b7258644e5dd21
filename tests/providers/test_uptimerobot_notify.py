"""UptimeRobot's webhook alert contact rendered (SPEC §16): one item per monitor, down then
up again, with how long it was down; either template's names; outside text stays text.
Payloads from shared/providers/uptimerobot/samples (their README says where each comes
from)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.notify import Unrenderable
from shared.providers.uptimerobot.catalog import TEMPLATE
from shared.providers.uptimerobot.notify import NOTIFIER
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
    return provider_sample("uptimerobot", name)


def test_a_monitor_down_then_up_is_one_item() -> None:
    # Zulip's captures of one monitor (784350743) going down, then up a minute later.
    down = NOTIFIER.notice("Down", sample("down"))
    up = NOTIFIER.notice("Up", sample("up"))
    assert [down.event, up.event] == ["down", "up"]
    assert down.item == up.item == "784350743"
    assert [down.resolved, up.resolved] == [False, True]
    assert down.item_card is not None and up.item_card is not None
    assert [down.item_card.state, up.item_card.state] == ["down", "up"]
    assert [down.item_card.color, up.item_card.color] == ["#cf222e", "#1f883d"]
    assert down.default and up.default and down.actor is None and up.actor is None
    assert plain(down.text).startswith("ZUTesting is down: HTTP 502 - Bad Gateway")
    assert plain(up.text).startswith("ZUTesting is up again: HTTP 200 - OK · down for 1 minutes")
    assert links(down.text)[0] == ("http://7d398dfc.ngrok.io", "ZUTesting")
    # `*alertFriendlyDuration*` was left unsubstituted on the Down alert: absent.
    assert "alertFriendlyDuration" not in down.text
    assert fields(up.item_card)["Down for"] == "1 minutes and 0 seconds"


def test_hookhub_s_template_threads_on_the_id_and_says_when_it_began() -> None:
    # The catalog's template: each variable where UptimeRobot substitutes it. The values are
    # the capture's (down.json), with a time and duration as UptimeRobot writes them.
    values = {
        "monitorID": "784350743",
        "monitorURL": "http://7d398dfc.ngrok.io",
        "monitorFriendlyName": "ZUTesting",
        "alertType": "2",
        "alertTypeFriendlyName": "Up",
        "alertDetails": "HTTP 200 - OK",
        "alertFriendlyDuration": "1 minutes and 0 seconds",
        "alertDuration": "60",
        "alertDateTime": "1700000060",
    }
    body = TEMPLATE
    for name, value in values.items():
        body = body.replace(f"*{name}*", value)
    notice = NOTIFIER.notice("Up", json.loads(body))
    assert notice.item == "784350743" and notice.resolved is True
    assert notice.started_at == datetime.fromtimestamp(1700000000, UTC)
    # It ended at the Up alert's own time, however late its webhook arrives.
    assert notice.ended_at == datetime.fromtimestamp(1700000060, UTC)


def test_without_an_id_the_monitor_s_url_is_the_item() -> None:
    # Zulip's current template has no monitor id: its captures thread on the URL.
    up = NOTIFIER.notice("Up", sample("monitor_up"))
    assert up.item == "server2.example.com" and up.resolved is True
    assert "Monitor: server2.example.com" in plain(up.text)  # a host, not a link
    down = NOTIFIER.notice("Down", sample("monitor_down"))
    assert down.item == "server1.example.com" and down.resolved is False


def test_another_alert_type_leaves_the_monitor_as_it_was() -> None:
    payload = sample("up")
    payload.update(alertType="3", alertTypeFriendlyName="SSL expiry", alertDetails="in 7 days")
    notice = NOTIFIER.notice(None, payload)
    assert notice.event == "ssl expiry" and notice.resolved is None and notice.item_card is None
    assert "ZUTesting: SSL expiry: in 7 days" in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("up")
    payload.update(monitorFriendlyName=hostile, alertDetails=hostile, alertFriendlyDuration=hostile)
    assert_inert(
        NOTIFIER.notice(None, payload).text, baseline=NOTIFIER.notice(None, sample("up")).text
    )
    payload = sample("monitor_down")
    payload.update(monitor_url=hostile)
    assert_inert(
        NOTIFIER.notice(None, payload).text,
        baseline=NOTIFIER.notice(None, sample("monitor_down")).text,
    )


def test_the_card_is_defused() -> None:
    payload = sample("down")
    payload.update(monitorFriendlyName=CARD_HOSTILE, alertDetails=CARD_HOSTILE)
    notice = NOTIFIER.notice(None, payload)
    assert notice.card is not None
    assert_defused(notice.card.title, CARD_READS)
    assert_defused(fields(notice.card)["Details"], CARD_READS)


def test_what_names_no_monitor_is_unrenderable() -> None:
    broken: Any
    for broken in ([], {}, {"alert_type": "1"}, {"monitor_url": "*monitorURL*", "alert_type": "1"}):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice("Down", broken)


@pytest.mark.parametrize("name", ["down", "up", "monitor_down"])
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))
