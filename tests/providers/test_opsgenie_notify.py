"""Opsgenie's Webhook integration rendered (SPEC §16): one item per alert, created then
acknowledged then closed, each by its user; notes, tags, owners and escalations in the
alert's thread; outside text stays text. Payloads from shared/providers/opsgenie/samples
(their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.commonmark import ZWJ
from shared.providers.notify import Unrenderable
from shared.providers.opsgenie.notify import NOTIFIER
from tests.providers.notify_support import (
    CARD_HOSTILE,
    CARD_READS,
    HOSTILE,
    assert_defused,
    assert_inert,
    assert_renders_or_refuses,
    plain,
)
from tests.providers.notify_support import (
    card_fields as fields,
)
from tests.providers.notify_support import (
    sample as provider_sample,
)


def sample(name: str) -> dict[str, Any]:
    return provider_sample("opsgenie", name)


def test_an_alert_created_acknowledged_and_closed_is_one_item() -> None:
    # Opsgenie's documented actions of one alert (052652ac-…), as its docs and Zulip have them.
    notices = [NOTIFIER.notice(None, sample(name)) for name in ("create", "acknowledge", "close")]
    assert [n.event for n in notices] == ["create", "acknowledge", "close"]
    assert {n.item for n in notices} == {"052652ac-5d1c-464a-812a-7dd18bbfba8c"}
    assert [n.item_card.state for n in notices if n.item_card] == ["open", "acknowledged", "closed"]
    assert [n.item_card.color for n in notices if n.item_card] == ["#cf222e", "#bf8700", "#1f883d"]
    assert [n.resolved for n in notices] == [False, None, True]
    assert all(n.default for n in notices)
    for notice in notices:
        assert notice.actor is not None and notice.actor.login == "fili@ifountain.com"
        assert_defused(notice.actor.name, "fili@ifountain.com")  # an address is no mention
        assert not notice.actor.bot
        assert notice.started_at == datetime(2015, 1, 5, 10, 3, 11, 104000, tzinfo=UTC)
    seen = [plain(n.text) for n in notices]
    assert seen[0].startswith("fili@ifountain.com created #23 test alert")
    assert seen[1].startswith("fili@ifountain.com acknowledged #23 test alert")
    assert seen[2].startswith("fili@ifountain.com closed #23 test alert")


def test_a_created_alert_says_its_priority_tags_source_and_entity() -> None:
    notice = NOTIFIER.notice("Create", sample("create_with_priority"))
    assert notice.item == "ec03dad6-62c8-4c94-b38b-d88f398e900f"
    assert {k: v.replace(ZWJ, "") for k, v in fields(notice.card).items()} == {
        "Priority": "P3",
        "Tags": "vip",
        "Source": "test@example.com",
        "Entity": "Server",
    }
    assert "Priority: P3 · Tags: vip · Source: test@example.com · Entity: Server" in plain(
        notice.text
    )
    payload = sample("create_with_priority")
    payload["alert"].update(priority="P1", description="Disk full on db-1")
    notice = NOTIFIER.notice("Create", payload)
    assert fields(notice.card)["Priority"] == "P1" and "> Disk full on db-1" in notice.text


def test_other_actions_thread_under_the_alert_and_leave_its_state() -> None:
    for name in ("addnote", "addtags", "assignownership"):
        notice = NOTIFIER.notice(None, sample(name))
        assert notice.item == "052652ac-5d1c-464a-812a-7dd18bbfba8c"
        assert notice.resolved is None and notice.item_card is None and not notice.default
    assert "> note to test alert" in NOTIFIER.notice(None, sample("addnote")).text
    assert "tagged #23 test alert: tag1,tag2,tag3" in plain(
        NOTIFIER.notice(None, sample("addtags")).text
    )
    assigned = NOTIFIER.notice(None, sample("assignownership"))
    assert "assigned #23 test alert to user2@ifountain.com" in plain(assigned.text)
    unacknowledged = NOTIFIER.notice(None, sample("unacknowledge"))
    assert unacknowledged.item_card is not None and unacknowledged.item_card.state == "open"
    assert unacknowledged.resolved is None
    escalated = NOTIFIER.notice(None, sample("escalate"))
    assert escalated.event == "escalate" and escalated.default and escalated.actor is None
    assert escalated.item == "7ba97e3a-d328-4b5e-8f9a-39e945a3869a"
    assert plain(escalated.text).startswith("Escalation test_esc notified test@ifountain.com")


def test_a_custom_action_and_the_system_user() -> None:
    payload = sample("acknowledge")
    payload["action"] = "Restart the service"
    payload["alert"]["username"] = "System"
    notice = NOTIFIER.notice(None, payload)
    assert notice.event == "restart the service" and notice.resolved is None
    assert notice.actor is not None and notice.actor.bot
    assert "System ran Restart the service on #23 test alert" in plain(notice.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("create_with_priority")
    payload["alert"].update(
        message=hostile, tags=[hostile], source=hostile, entity=hostile, description=hostile
    )
    payload["alert"]["username"] = hostile
    baseline = NOTIFIER.notice(None, sample("create_with_priority")).text
    assert_inert(NOTIFIER.notice(None, payload).text, baseline=baseline)
    note = sample("addnote")
    note["alert"].update(note=hostile, tinyId=hostile)
    assert_inert(
        NOTIFIER.notice(None, note).text, baseline=NOTIFIER.notice(None, sample("addnote")).text
    )
    escalation = sample("escalate")
    escalation["escalationName"] = hostile
    escalation["escalationNotify"]["name"] = hostile
    escalation["alert"]["alertId"] = hostile
    assert_inert(NOTIFIER.notice(None, escalation).text)


def test_the_card_and_the_author_are_defused() -> None:
    payload = sample("create_with_priority")
    payload["alert"].update(message=CARD_HOSTILE, entity=CARD_HOSTILE, username=CARD_HOSTILE)
    notice = NOTIFIER.notice(None, payload)
    assert notice.card is not None and notice.actor is not None
    assert_defused(notice.card.title, f"#2 {CARD_READS}")
    assert_defused(fields(notice.card)["Entity"], CARD_READS)
    assert_defused(notice.actor.name, CARD_READS)


def test_what_names_no_alert_is_unrenderable() -> None:
    broken: Any
    for broken in ([], {}, {"action": "Create"}, {"action": "Create", "alert": {"message": "x"}}):
        with pytest.raises(Unrenderable):
            NOTIFIER.notice(None, broken)


@pytest.mark.parametrize("name", ["create_with_priority", "addnote", "assignownership", "escalate"])
def test_any_field_removed_or_retyped_renders_or_is_unrenderable(name: str) -> None:
    assert_renders_or_refuses(lambda payload: NOTIFIER.notice(None, payload), sample(name))


def test_a_close_ends_at_the_action_s_own_time() -> None:
    # Opsgenie's documented Close: `updatedAt` in nanoseconds, `createdAt` in milliseconds.
    close = NOTIFIER.notice(None, sample("close"))
    assert close.started_at is not None and close.ended_at is not None
    assert close.ended_at.replace(microsecond=0) == datetime(2015, 1, 5, 10, 6, 14, tzinfo=UTC)
    assert round((close.ended_at - close.started_at).total_seconds(), 3) == 183.565
    assert NOTIFIER.notice(None, sample("acknowledge")).ended_at is None
