"""Zendesk's ticket events rendered (SPEC §16): a ticket is one thread under its id,
created then solved (or closed), reopened when it comes back; comments land in it quoted;
every other event generically; outside text stays text. Payloads from
shared/providers/zendesk/samples (their README says where each comes from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.providers.notify import Notice, Unrenderable
from shared.providers.zendesk.notify import NOTIFIER
from tests.providers.mutations import survives
from tests.providers.notify_support import HOSTILE, assert_defused, assert_inert, plain
from tests.providers.samples import load


def sample(name: str) -> dict[str, Any]:
    return load("zendesk", name)


def render(payload: dict[str, Any]) -> Notice:
    kind = payload.get("type")
    return NOTIFIER.notice(kind if isinstance(kind, str) else "trigger", payload)


def moved(previous: str, current: str) -> dict[str, Any]:
    payload = sample("ticket.status_changed")
    payload["event"] = {"previous": previous, "current": current}
    payload["detail"]["status"] = current
    return payload


def test_a_ticket_created_commented_solved_is_one_item_that_resolves() -> None:
    created = render(sample("ticket.created"))
    commented = render(sample("ticket.comment_added"))
    solved = render(sample("ticket.status_changed"))
    assert created.item == commented.item == solved.item == "5158"
    assert [created.event, commented.event, solved.event] == [
        "ticket.created",
        "ticket.comment_added",
        "ticket.solved",
    ]
    assert [created.resolved, commented.resolved, solved.resolved] == [False, None, True]
    assert created.default and solved.default and not commented.default
    assert created.started_at == datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC)
    assert "Ticket #5158 Cannot login to mobile app created (via web service)" in plain(
        created.text
    )
    assert "> Customer is experiencing login issues" in created.text
    assert commented.actor is not None and commented.actor.name == "Support Agent"
    assert "Support Agent commented on ticket #5158" in plain(commented.text)
    assert "> We are investigating this issue" in commented.text
    assert "open → solved" in plain(solved.text)
    assert solved.item_card is not None and solved.item_card.state == "solved"
    assert solved.item_card.color == "#1f883d"
    fields = {f.name: f.value for f in solved.item_card.fields}
    assert fields == {
        "Priority": "high",
        "Type": "problem",
        "Tags": "mobile, login, priority-support",
    }


@pytest.mark.parametrize(
    ("previous", "current", "event", "resolved"),
    [
        ("SOLVED", "CLOSED", "ticket.closed", True),
        ("SOLVED", "OPEN", "ticket.reopened", False),
        ("OPEN", "PENDING", "ticket.status_changed", None),
    ],
)
def test_a_status_change_is_named_by_where_it_went(
    previous: str, current: str, event: str, resolved: bool | None
) -> None:
    notice = render(moved(previous, current))
    assert (notice.event, notice.resolved) == (event, resolved)


def test_an_internal_note_says_so() -> None:
    payload = sample("ticket.comment_added")
    payload["event"]["comment"]["is_public"] = False
    assert "Support Agent added an internal note to ticket #5158" in plain(render(payload).text)


def test_other_events_and_a_trigger_are_rendered_generically() -> None:
    notice = render(sample("user.active_changed"))
    assert notice.event == "user.active_changed" and not notice.default and notice.item is None
    trigger = NOTIFIER.notice("trigger", {"ticket": {"id": 35436, "title": "Printer on fire"}})
    assert trigger.event == "trigger" and "Zendesk: trigger: Printer on fire" in plain(trigger.text)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_outside_text_stays_text(hostile: str) -> None:
    payload = sample("ticket.comment_added")
    payload["detail"].update(subject=hostile, tags=[hostile], priority=hostile)
    payload["event"]["comment"]["body"] = hostile
    payload["event"]["comment"]["author"]["name"] = hostile
    notice = render(payload)
    assert_inert(notice.text, baseline=render(sample("ticket.comment_added")).text)
    assert notice.card is not None and notice.actor is not None
    assert_defused(notice.card.title)
    assert_defused(notice.actor.name)
    created = sample("ticket.created")
    created["detail"]["description"] = hostile
    created["detail"]["via"]["channel"] = hostile
    assert_inert(render(created).text, baseline=render(sample("ticket.created")).text)


@pytest.mark.parametrize(
    "name", ["ticket.created", "ticket.comment_added", "ticket.status_changed"]
)
def test_broken_payloads_are_unrenderable_or_rendered_with_what_is_there(name: str) -> None:
    survives(render, sample(name))
    bad: Any = []
    with pytest.raises(Unrenderable):
        NOTIFIER.notice("zen:event-type:ticket.created", bad)
    with pytest.raises(Unrenderable):
        NOTIFIER.notice(None, {"type": "zen:event-type:ticket.created", "detail": {}})


def test_a_solved_ticket_ends_at_the_event_s_own_time() -> None:
    # The example's `time`: solved 6 h 33 min after the ticket's `created_at`.
    solved = render(sample("ticket.status_changed"))
    assert solved.started_at == datetime(2025, 1, 8, 10, 12, 7, tzinfo=UTC)
    assert solved.ended_at == datetime(2025, 1, 8, 16, 45, 20, 987654, tzinfo=UTC)
    assert render(sample("ticket.comment_added")).ended_at is None
    assert render(moved("SOLVED", "OPEN")).ended_at is None  # reopened
