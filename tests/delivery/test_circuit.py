"""The endpoint's circuit breaker (SPEC §17, services/delivery/deliveries/circuit.py): its
rules on a clock the test moves, then its whole cycle in a delivery service against a sink
whose answers are scripted (ten failures, a failed probe, then success)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.delivery.deliveries.circuit import (
    FAILURES_TO_OPEN,
    GO,
    PROBE,
    TIMEOUTS_IN_ROW,
    WINDOW,
    Admission,
    Breaker,
    Circuit,
    State,
)
from shared.ids import utcnow
from shared.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.test_deliveries import endpoint, publish
from tests.infra import Infra
from tests.support import RunningService, admin_headers, until
from tests.webhook_sink import WebhookSink

Sink = tuple[WebhookSink, str]
COOL_DOWN = timedelta(seconds=30)
MAX_COOL_DOWN = timedelta(minutes=10)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def breaker(
    clock: Clock, changes: list[Circuit], shared: Callable[[], Circuit | None] = lambda: None
) -> Breaker:
    return Breaker(
        cool_down=COOL_DOWN,
        max_cool_down=MAX_COOL_DOWN,
        shared=shared,
        on_change=changes.append,
        clock=clock,
    )


def state(b: Breaker) -> State:
    """Read afresh: after a check of `b.state`, mypy takes it as fixed."""
    return b.state


async def still_waiting(task: asyncio.Task[Any]) -> bool:
    for _ in range(20):  # the loop runs the task as far as it gets
        await asyncio.sleep(0)
    return not task.done()


async def test_it_opens_when_half_the_last_twenty_failed_and_not_before() -> None:
    clock, changes = Clock(), list[Circuit]()
    b = breaker(clock, changes)
    for _ in range(FAILURES_TO_OPEN - 1):
        b.record(failed=True, timed_out=False)
    for _ in range(WINDOW):  # the failures slide out of the window
        b.record(failed=False, timed_out=False)
    for _ in range(FAILURES_TO_OPEN - 1):
        b.record(failed=True, timed_out=False)
    assert state(b) is State.CLOSED and changes == []
    b.record(failed=True, timed_out=False)  # the tenth of the last twenty
    assert state(b) is State.OPEN
    [opened] = changes
    assert opened.opened_at == clock.now
    assert opened.next_probe_at == clock.now + COOL_DOWN
    assert opened.failure_rate == pytest.approx(FAILURES_TO_OPEN / WINDOW)


async def test_five_timeouts_in_a_row_open_it_and_an_answer_between_resets_the_count() -> None:
    clock, changes = Clock(), list[Circuit]()
    b = breaker(clock, changes)
    for _ in range(TIMEOUTS_IN_ROW - 1):
        b.record(failed=True, timed_out=True)
    b.record(failed=False, timed_out=False)
    for _ in range(TIMEOUTS_IN_ROW - 1):
        b.record(failed=True, timed_out=True)
    assert state(b) is State.CLOSED  # eight failures of ten, four timeouts in a row
    b.record(failed=True, timed_out=True)
    assert state(b) is State.OPEN


async def test_no_attempt_while_open_then_one_probe_whose_failure_doubles_the_cool_down() -> None:
    clock, changes = Clock(), list[Circuit]()
    b = breaker(clock, changes)
    assert await b.admit() == GO  # closed: at once
    for _ in range(FAILURES_TO_OPEN):
        b.record(failed=True, timed_out=False)
    # Open: set aside until the probe's time.
    assert await b.admit() == Admission(later=clock.now + COOL_DOWN)

    cool_down = COOL_DOWN
    for _ in range(6):  # 30 s, 1, 2, 4, 8, 10 (the most) minutes
        clock.now = b.circuit.next_probe_at or clock.now
        assert await b.admit() == PROBE
        assert state(b) is State.HALF_OPEN
        other = asyncio.create_task(b.admit())
        assert await still_waiting(other)  # for the probe's outcome
        b.record(failed=True, timed_out=False, probe=True)
        cool_down = min(MAX_COOL_DOWN, 2 * cool_down)
        assert state(b) is State.OPEN
        assert b.circuit.next_probe_at == clock.now + cool_down
        # Which sets the waiting one aside until the next probe.
        assert await asyncio.wait_for(other, 5) == Admission(later=clock.now + cool_down)
    assert cool_down == MAX_COOL_DOWN

    clock.now = b.circuit.next_probe_at or clock.now
    assert await b.admit() == PROBE
    waiting = asyncio.create_task(b.admit())
    assert await still_waiting(waiting)
    b.record(failed=False, timed_out=False, probe=True)
    assert state(b) is State.CLOSED
    assert await asyncio.wait_for(waiting, 5) == GO  # goes at once now
    states = [c.state for c in changes]
    assert states == [State.OPEN] + [State.HALF_OPEN, State.OPEN] * 6 + [
        State.HALF_OPEN,
        State.CLOSED,
    ]
    # Closed, it starts counting afresh, and a new opening cools down 30 s again.
    for _ in range(FAILURES_TO_OPEN):
        b.record(failed=True, timed_out=False)
    assert b.circuit.next_probe_at == clock.now + COOL_DOWN


async def test_a_probe_that_made_no_attempt_hands_the_probe_to_the_next() -> None:
    clock, changes = Clock(), list[Circuit]()
    b = breaker(clock, changes)
    for _ in range(FAILURES_TO_OPEN):
        b.record(failed=True, timed_out=False)
    clock.now += COOL_DOWN
    assert await b.admit() == PROBE
    second = asyncio.create_task(b.admit())
    assert await still_waiting(second)
    b.unprobed()  # cut off, or its endpoint disabled meanwhile
    assert await asyncio.wait_for(second, 5) == PROBE


async def test_another_replicas_later_change_is_adopted_and_an_older_one_is_not() -> None:
    clock, changes = Clock(), list[Circuit]()
    theirs: list[Circuit | None] = [None]
    b = breaker(clock, changes, shared=lambda: theirs[0])
    opened_there = Circuit(
        state=State.OPEN,
        opened_at=clock.now,
        failure_rate=0.5,
        next_probe_at=clock.now + COOL_DOWN,
        cool_down_seconds=COOL_DOWN.total_seconds(),
        changed_at=clock.now,
    )
    theirs[0] = opened_there
    assert await b.admit() == Admission(later=clock.now + COOL_DOWN)
    assert state(b) is State.OPEN and changes == []  # adopted, not written again
    # Their probe is out (half open): here it is open until their probe's time is up.
    clock.now += COOL_DOWN
    retry = clock.now + COOL_DOWN
    theirs[0] = Circuit(
        state=State.HALF_OPEN,
        opened_at=opened_there.opened_at,
        next_probe_at=retry,
        changed_at=clock.now,
    )
    assert await b.admit() == Admission(later=retry)
    b.adopt(opened_there)  # older than what it has: ignored
    assert b.circuit.changed_at == clock.now
    clock.now += timedelta(seconds=1)
    theirs[0] = Circuit(state=State.CLOSED, changed_at=clock.now)
    assert await b.admit() == GO
    # Their probe never came back: past its time, this process probes.
    theirs[0] = None
    for _ in range(FAILURES_TO_OPEN):
        b.record(failed=True, timed_out=False)
    clock.now += COOL_DOWN
    theirs[0] = Circuit(
        state=State.HALF_OPEN, next_probe_at=clock.now + COOL_DOWN, changed_at=clock.now
    )
    clock.now += COOL_DOWN
    assert await b.admit() == PROBE


# -- the whole cycle in a delivery service --------------------------------------------------

CYCLE_COOL_DOWN = 0.3


@pytest.fixture(scope="module")
def delivery_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> DeliverySettings:
    return settings_for(
        infra,
        tmp_path_factory,
        circuit_cool_down_seconds=CYCLE_COOL_DOWN,
        circuit_max_cool_down_seconds=10 * CYCLE_COOL_DOWN,
    )


async def _endpoint_doc(delivery: RunningService, endpoint_id: str) -> dict[str, Any]:
    answer = await delivery.client.get(
        f"/api/outgoing-webhooks/{endpoint_id}", headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


async def _deliveries(delivery: RunningService, endpoint_id: str) -> list[dict[str, Any]]:
    answer = await delivery.client.get(
        "/api/deliveries", params={"webhook_id": endpoint_id, "limit": 100}, headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]
    return found


def _at(attempt_log: list[dict[str, Any]]) -> datetime:
    return datetime.fromisoformat(attempt_log[0]["at"])


async def test_the_circuit_opens_holds_probes_and_closes_by_itself(
    delivery: RunningService, sink: Sink
) -> None:
    """Ten failures open it; what comes up while it is open waits, unattempted, for the
    probes; a failed probe opens it again for twice as long; once the endpoint answers, a
    probe closes it and the rest go. Judged by what the sink and the attempt logs show,
    whatever the machine's pace (a delivery may be sent twice, at least once is the rule)."""
    fake, _ = sink
    path = "/circuit/cycle"
    fake.on(path, 500)  # down until the test says
    created = await endpoint(delivery, sink, path, retry_schedule=[3600])
    endpoint_id = created["id"]
    assert created["circuit"] == {
        "state": "closed",
        "opened_at": None,
        "failure_rate": 0.0,
        "next_probe_at": None,
    }
    for _ in range(FAILURES_TO_OPEN):  # each fails once, then waits an hour for its retry
        await publish(delivery, "circuit.test", "ws_d")
    await fake.wait_for(path, FAILURES_TO_OPEN)

    async def circuit() -> dict[str, Any]:
        found: dict[str, Any] = (await _endpoint_doc(delivery, endpoint_id))["circuit"]
        return found

    async def circuit_is(state: str) -> dict[str, Any] | None:
        found = await circuit()
        return found if found["state"] == state else None

    opened = await until(lambda: circuit_is("open"), what="the circuit open")
    assert opened["failure_rate"] == 1.0
    opened_at = datetime.fromisoformat(opened["opened_at"])
    first_probe_at = datetime.fromisoformat(opened["next_probe_at"])
    assert first_probe_at - opened_at == timedelta(seconds=CYCLE_COOL_DOWN)

    # Five events while it is open and the endpoint still down.
    waiting = {await publish(delivery, "circuit.test", "ws_d") for _ in range(5)}

    async def probed_and_failed() -> dict[str, Any] | None:
        found = await circuit()
        probe_at = found["next_probe_at"]
        later = probe_at is not None and datetime.fromisoformat(probe_at) > first_probe_at
        return found if found["state"] == "open" and later else None

    reopened = await until(probed_and_failed, what="a probe failed and the circuit reopened")
    assert reopened["opened_at"] == opened["opened_at"]  # open since, all along
    fake.on(path, 200)  # back
    await until(lambda: circuit_is("closed"), what="the circuit closed by a probe")

    async def ended() -> list[dict[str, Any]] | None:
        found = [d for d in await _deliveries(delivery, endpoint_id) if d["event_id"] in waiting]
        done = len(found) == len(waiting) and all(
            d["status"] == "completed" or (d["status"] == "delayed" and d["attempts"] == 1)
            for d in found
        )
        return found if done else None

    last = await until(ended, what="each delivered, or a failed probe waiting for its retry")
    # None was tried while it was open: one attempt each, a probe's or once it closed.
    assert all(d["attempts"] == 1 for d in last)
    assert any(d["status"] == "completed" for d in last)
    first_attempts = []
    for d in last:
        answer = await delivery.client.get(f"/api/deliveries/{d['id']}", headers=admin_headers())
        first_attempts.append(_at(answer.json()["attempt_log"]))
    assert min(first_attempts) >= first_probe_at  # the first attempt after it opened: a probe
    failed_probes = sorted(
        at for at, d in zip(first_attempts, last, strict=True) if d["status"] == "delayed"
    )
    assert failed_probes  # the probe the test saw fail
    # Each later probe waited at least twice the cool-down after a failed one.
    for earlier, later in itertools.pairwise(failed_probes):
        assert later - earlier >= timedelta(seconds=2 * CYCLE_COOL_DOWN)

    metrics = (await delivery.client.get("/metrics")).text
    opens = len(failed_probes) + 1
    assert f'hookhub_delivery_circuit_changes_total{{state="open"}} {opens:.1f}' in metrics
    assert f'hookhub_delivery_circuit_changes_total{{state="half_open"}} {opens:.1f}' in metrics
    assert 'hookhub_delivery_circuit_changes_total{state="closed"} 1.0' in metrics
    assert "hookhub_delivery_circuits_open 0.0" in metrics
