"""An item's lifecycle in a channel (SPEC §16), decided without a stack: which thread a
notice goes in, whether it edits the root, who changed it and how long it was open, reopening
within the hour and a new thread after it, and late or repeated events changing nothing;
how long it was open by the provider's own times, whenever the webhooks arrived. Times are
the events' own: the tests set them, nothing waits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.sync.notifications.threads import (
    BY,
    OPEN_FOR,
    Cards,
    Lifecycle,
    Step,
    advance,
    duration,
    first,
)
from shared.providers.alertmanager.notify import NOTIFIER as ALERTMANAGER
from shared.providers.notify import Card, Notice, card_text
from shared.providers.pagerduty.notify import NOTIFIER as PAGERDUTY

PROVIDERS = Path(__file__).parents[2] / "shared" / "providers"
SAMPLES = PROVIDERS / "alertmanager" / "samples"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def alert(name: str, started: datetime | None = None, ended: datetime | None = None) -> Notice:
    """Alertmanager's own sample (one group across both), its alerts started at `started`
    and (resolved.json's) ended at `ended` (the capture's `endsAt` is Go's zero time)."""
    payload = json.loads((SAMPLES / name).read_text())
    for each in payload["alerts"]:
        if started is not None:
            each["startsAt"] = started.isoformat()
        if ended is not None:
            each["endsAt"] = ended.isoformat()
    return ALERTMANAGER.notice(None, payload)


def pagerduty(name: str, occurred: datetime, created: datetime | None = None) -> Notice:
    """PagerDuty's V3 webhook as Zulip captured it (shared/providers/pagerduty/samples), its
    event `occurred_at` and, where given, the incident's `created_at` (V3's incident data
    has it; these captures do not)."""
    payload = json.loads((PROVIDERS / "pagerduty" / "samples" / name).read_text())
    payload["event"]["occurred_at"] = occurred.isoformat()
    if created is not None:
        payload["event"]["data"]["created_at"] = created.isoformat()
    return PAGERDUTY.notice(None, payload)


def incident(state: str, resolved: bool | None) -> Notice:
    card = Card(title="[#42] Database down", state=state)
    return Notice(
        event=f"incident.{state}", text=state, item="Q1", item_card=card, resolved=resolved
    )


def fields(step: Step) -> dict[str, str]:
    assert step.card is not None
    return {f.name: f.value for f in step.card.fields}


def test_durations_read_as_people_say_them() -> None:
    assert [
        duration(timedelta(seconds=s))
        for s in (0, 45, 60, 12 * 60 + 59, 3600, 4800, 86400, 86400 + 4 * 3600 + 59, -5)
    ] == ["0 s", "45 s", "1 min", "12 min", "1 h", "1 h 20 min", "1 d", "1 d 4 h", "0 s"]


def test_firing_then_resolved_edits_the_root_with_how_long_it_was_open() -> None:
    started = T0 - timedelta(minutes=75)
    root = first(alert("firing.json", started), T0, "d1", "Alertmanager")
    assert root.new_thread and root.generation == 0 and not root.edits_root
    assert root.lifecycle.state == "firing" and root.lifecycle.opened_at == T0
    assert fields(root)[BY] == "Alertmanager" and OPEN_FOR not in fields(root)

    resolved = advance(
        root.lifecycle,
        alert("resolved.json", started),
        T0 + timedelta(minutes=5),
        "d2",
        "Ada",
        HOUR,
    )
    assert resolved.edits_root and resolved.changed and not resolved.new_thread
    assert resolved.generation == 0 and resolved.card is not None
    assert resolved.card.state == "resolved" and resolved.card.color == "#1f883d"
    # From the alerts' own start (startsAt), not from when the root was posted.
    assert fields(resolved)[OPEN_FOR] == "1 h 20 min" and fields(resolved)[BY] == "Ada"
    assert "Open for: 1 h 20 min" in card_text(resolved.card)
    assert "By: Ada" in card_text(resolved.card)
    assert resolved.lifecycle.resolved_at == T0 + timedelta(minutes=5)


def test_without_a_start_it_was_open_since_its_thread_opened() -> None:
    root = first(incident("triggered", False), T0, "d1", "PagerDuty")
    done = advance(
        root.lifecycle,
        incident("resolved", True),
        T0 + 90 * 60 * timedelta(seconds=1),
        "d2",
        "Ada",
        HOUR,
    )
    assert fields(done)[OPEN_FOR] == "1 h 30 min"


def test_an_acknowledgement_is_who_changed_it_and_a_comment_is_not() -> None:
    life = first(incident("triggered", False), T0, "d1", "PagerDuty").lifecycle
    acked = advance(life, incident("acknowledged", None), T0 + HOUR / 6, "d2", "Ada", HOUR)
    assert acked.changed and acked.edits_root and fields(acked)[BY] == "Ada"
    assert acked.lifecycle.state == "acknowledged"
    comment = advance(
        acked.lifecycle, incident("acknowledged", None), T0 + HOUR / 3, "d3", "Bob", HOUR
    )
    assert comment.edits_root and not comment.changed and fields(comment)[BY] == "Ada"


def test_firing_again_within_the_hour_reopens_the_thread_and_later_starts_a_new_one() -> None:
    life = first(alert("firing.json"), T0, "d1", "Alertmanager").lifecycle
    resolved_at = T0 + HOUR / 2
    life = advance(life, alert("resolved.json"), resolved_at, "d2", "Alertmanager", HOUR).lifecycle

    again = advance(life, alert("firing.json"), resolved_at + HOUR, "d3", "Alertmanager", HOUR)
    assert again.generation == 0 and not again.new_thread and again.edits_root
    assert again.reopened_after == HOUR and again.card is not None
    assert again.card.state == "firing" and OPEN_FOR not in fields(again)
    assert again.lifecycle.resolved_at is None and again.lifecycle.opened_at == resolved_at + HOUR

    later = advance(
        life, alert("firing.json"), resolved_at + HOUR + timedelta(seconds=1), "d3", "A", HOUR
    )
    assert later.new_thread and later.generation == 1 and not later.edits_root
    assert later.reopened_after is None and later.lifecycle.resolved_at is None
    # The new thread resolves on its own.
    done = advance(later.lifecycle, alert("resolved.json"), resolved_at + 2 * HOUR, "d4", "A", HOUR)
    assert done.generation == 1 and done.edits_root and fields(done)[OPEN_FOR]


def test_late_and_repeated_events_turn_nothing_back() -> None:
    life = first(alert("firing.json"), T0, "d1", "Alertmanager").lifecycle
    life = advance(life, alert("resolved.json"), T0 + HOUR, "d2", "Alertmanager", HOUR).lifecycle
    # A firing received before the resolution, handled after it (a replay): history.
    late = advance(life, alert("firing.json"), T0 + HOUR / 2, "d0", "Alertmanager", HOUR)
    assert not late.edits_root and not late.changed and late.lifecycle == life
    # The resolution again (a redelivery), and a second resolution: no second edit.
    for source, at in (("d2", T0 + HOUR), ("d9", T0 + 2 * HOUR)):
        again = advance(life, alert("resolved.json"), at, source, "Alertmanager", HOUR)
        assert not again.edits_root and not again.changed and again.lifecycle == life


def test_a_first_notice_that_resolves_knows_no_start_unless_it_says() -> None:
    root = first(incident("resolved", True), T0, "d1", "PagerDuty")
    assert root.lifecycle.resolved_at == T0 and OPEN_FOR not in fields(root)
    said = first(alert("resolved.json", T0 - timedelta(minutes=3)), T0, "d1", "Alertmanager")
    assert fields(said)[OPEN_FOR] == "3 min"


def test_lifecycles_are_stored_and_read_back_and_old_roots_have_none() -> None:
    life = first(incident("triggered", False), T0, "d1", "PagerDuty").lifecycle
    assert Lifecycle.from_doc(life.to_doc()) == life
    assert Lifecycle.from_doc(None, claimed_at=T0) == Lifecycle(opened_at=T0)


def test_a_batch_makes_a_root_card_once_for_every_subscription_of_an_event() -> None:
    """A notice is every subscription's of its event: their roots' cards are made once,
    and one whose lifecycle shows otherwise (another channel's) gets its own."""
    notice, cards = alert("resolved.json"), Cards()
    life = first(alert("firing.json"), T0, "d1", "Alertmanager").lifecycle
    one = advance(life, notice, T0 + HOUR, "d2", "Ada", HOUR, cards)
    two = advance(life, notice, T0 + HOUR, "d2", "Ada", HOUR, cards)
    other = advance(life, notice, T0 + HOUR, "d2", "Bob", HOUR, cards)
    assert one.card is two.card and one.card is not None and len(cards) == 2
    assert fields(other)[BY] == "Bob" and fields(one)[BY] == "Ada"
    assert advance(life, notice, T0 + HOUR, "d2", "Ada", HOUR).card == one.card


def test_a_late_resolution_was_open_until_the_provider_resolved_it() -> None:
    """PagerDuty: created 10:00, resolved 10:47 (the resolve event's `occurred_at`), its
    webhook received at 13:00 (a slow sender, a backlog): open for 47 min, not 3 h."""
    ten = T0.replace(hour=10)
    life = first(pagerduty("incident_triggered.json", ten), ten, "d1", "PagerDuty").lifecycle
    resolved = pagerduty("incident_resolved.json", ten + timedelta(minutes=47))
    late = advance(life, resolved, ten + 3 * HOUR, "d2", "PIG 208", HOUR)
    assert late.edits_root and fields(late)[OPEN_FOR] == "47 min"
    # When it resolved by PagerDuty's account is kept beside when the webhook came.
    assert late.lifecycle.ended_at == ten + timedelta(minutes=47)
    assert late.lifecycle.resolved_at == ten + 3 * HOUR
    # The whole incident replayed at 13:00 (both received then): its own times still say.
    replayed = first(pagerduty("incident_triggered.json", ten), ten + 3 * HOUR, "r1", "PagerDuty")
    again = advance(
        replayed.lifecycle,
        pagerduty("incident_resolved.json", ten + timedelta(minutes=47), created=ten),
        ten + 3 * HOUR + timedelta(seconds=1),
        "r2",
        "PIG 208",
        HOUR,
    )
    assert fields(again)[OPEN_FOR] == "47 min"


def test_a_late_alert_group_was_open_from_its_starts_to_its_ends() -> None:
    """Alertmanager: `startsAt` 10:00, `endsAt` 11:23, the resolution received at 14:00."""
    ten = T0.replace(hour=10)
    ended = ten + timedelta(hours=1, minutes=23)
    life = first(alert("firing.json", ten), ten, "d1", "Alertmanager").lifecycle
    late = advance(life, alert("resolved.json", ten, ended), ten + 4 * HOUR, "d2", "A", HOUR)
    assert fields(late)[OPEN_FOR] == "1 h 23 min"
    assert late.card is not None and "Open for: 1 h 23 min" in card_text(late.card)
    # A first notice that resolves, late: its own times too.
    alone = first(alert("resolved.json", ten, ended), ten + 4 * HOUR, "d9", "Alertmanager")
    assert fields(alone)[OPEN_FOR] == "1 h 23 min"


def test_where_the_resolution_says_no_start_the_opening_notice_s_own_start_stands() -> None:
    """A resolution without the item's start (a Statuspage component back to operational)
    is measured from when the opening notice said the item began, not from when hookhub
    received that notice; both known ends survive a restart (the stored lifecycle)."""
    ten = T0.replace(hour=10)
    opening = replace(incident("triggered", False), started_at=ten)
    life = first(opening, ten + 2 * HOUR, "d1", "Statuspage").lifecycle
    stored = Lifecycle.from_doc(life.to_doc())
    assert stored == life and stored.began_at == ten
    ending = replace(incident("resolved", True), ended_at=ten + HOUR / 2)
    done = advance(stored, ending, ten + 3 * HOUR, "d2", "Statuspage", HOUR)
    assert fields(done)[OPEN_FOR] == "30 min"
    assert Lifecycle.from_doc(done.lifecycle.to_doc()) == done.lifecycle


def test_ends_that_disagree_show_no_duration() -> None:
    """A resolution whose own end is before the item's start (a clock gone wrong): nothing
    is said rather than a negative or made-up duration."""
    ten = T0.replace(hour=10)
    life = first(alert("firing.json", ten), ten, "d1", "Alertmanager").lifecycle
    wrong = advance(life, alert("resolved.json", ten, ten - HOUR), ten + HOUR, "d2", "A", HOUR)
    assert wrong.edits_root and OPEN_FOR not in fields(wrong)
