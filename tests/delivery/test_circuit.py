"""The endpoint's circuit breaker (SPEC §17, services/delivery/deliveries/circuit.py): its
rules on a clock the test moves, then its whole cycle in a delivery service against a sink
whose answers are scripted (ten failures, a failed probe, then success)."""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.delivery.deliveries.circuit import (
    DEFAULT_TUNING,
    FAILURES_TO_OPEN,
    GO,
    PROBE,
    TIMEOUTS_IN_ROW,
    WINDOW,
    Admission,
    Breaker,
    Circuit,
    State,
    Tuning,
)
from services.delivery.deliveries.policy import JITTER
from shared.kernel.ids import utcnow
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.test_deliveries import endpoint, publish
from tests.infra import Infra
from tests.support import RunningService, admin_headers, until
from tests.webhook_sink import Received, WebhookSink

Sink = tuple[WebhookSink, str]
COOL_DOWN = timedelta(seconds=30)
MAX_COOL_DOWN = timedelta(minutes=10)


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def breaker(
    clock: Clock,
    changes: list[Circuit],
    shared: Callable[[], Circuit | None] = lambda: None,
    tuning: list[Tuning] | None = None,  # the endpoint's setting, as a PATCH may change it
) -> Breaker:
    tuned = tuning or [DEFAULT_TUNING]
    return Breaker(
        cool_down=COOL_DOWN,
        max_cool_down=MAX_COOL_DOWN,
        shared=shared,
        on_change=changes.append,
        clock=clock,
        tuning=lambda: tuned[0],
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


# -- tuned per endpoint, or off (its `circuit_breaker`) -------------------------------------

FLAKY = (False, False, True)  # a flaky receiver: each delivery fails twice, then succeeds


def flaky_outcomes(deliveries: int) -> list[bool]:
    """`failed` of each attempt a flaky receiver's deliveries make, one delivery at a time."""
    return [not ok for _ in range(deliveries) for ok in FLAKY]


def test_a_ratio_is_of_a_full_window_rounded_up() -> None:
    assert Tuning().failures_to_open == FAILURES_TO_OPEN == 10
    assert Tuning(failure_ratio=0.7, window=10).failures_to_open == 7  # not 8 (0.7 * 10 > 7)
    assert Tuning(failure_ratio=0.75, window=4).failures_to_open == 3
    assert Tuning(failure_ratio=0.01, window=20).failures_to_open == 1
    assert Tuning(failure_ratio=1.0, window=1000).failures_to_open == 1000
    # An endpoint stored before the setting, or a PATCH that named some of its fields.
    assert Tuning.from_doc(None) == Tuning.from_doc({}) == DEFAULT_TUNING
    assert Tuning.from_doc({"window": 4}) == Tuning(window=4)


async def test_off_nothing_is_counted_and_every_attempt_goes() -> None:
    clock, changes = Clock(), list[Circuit]()
    b = breaker(clock, changes, tuning=[Tuning(enabled=False)])
    for failed in [True] * 40 + flaky_outcomes(20):  # every first attempt failed, and more
        b.record(failed=failed, timed_out=False)
        b.record(failed=True, timed_out=True)
        assert await b.admit() == GO
    assert changes == [] and state(b) is State.CLOSED


async def test_tuned_it_opens_at_its_ratio_of_its_window_and_cools_down_its_time() -> None:
    clock, changes = Clock(), list[Circuit]()
    tuning = [Tuning(failure_ratio=0.75, window=4, cool_down_seconds=3600)]
    b = breaker(clock, changes, tuning=tuning)
    outcomes = flaky_outcomes(2)
    for failed in outcomes[:3]:  # the first delivery's three: two of three failed
        b.record(failed=failed, timed_out=False)
        assert state(b) is State.CLOSED
    b.record(failed=outcomes[3], timed_out=False)  # the second's first: three of four
    [opened] = changes
    assert opened.state is State.OPEN
    assert opened.failure_rate == 0.75
    assert opened.next_probe_at == clock.now + timedelta(hours=1)  # its own, not 30 s
    # Past the deployment's 10 minutes already, a failed probe's doubling stops at its own.
    clock.now = opened.next_probe_at
    assert await b.admit() == PROBE
    b.record(failed=True, timed_out=False, probe=True)
    assert b.circuit.next_probe_at == clock.now + timedelta(hours=1)
    # Under them, it doubles from its own (a minute, two, up to the 10).
    tuning[0] = Tuning(failure_ratio=0.75, window=4, cool_down_seconds=60)
    clock.now = b.circuit.next_probe_at
    assert await b.admit() == PROBE
    b.record(failed=False, timed_out=False, probe=True)  # closed
    for failed in outcomes:
        b.record(failed=failed, timed_out=False)
    assert b.circuit.next_probe_at == clock.now + timedelta(minutes=1)
    clock.now = b.circuit.next_probe_at
    assert await b.admit() == PROBE
    b.record(failed=True, timed_out=False, probe=True)
    assert b.circuit.next_probe_at == clock.now + timedelta(minutes=2)

    # The same receiver under today's defaults: ten failures of twenty, fifteen attempts in.
    clock, changes = Clock(), list[Circuit]()
    b = breaker(clock, changes, tuning=[DEFAULT_TUNING])
    for number, failed in enumerate(flaky_outcomes(5), start=1):
        b.record(failed=failed, timed_out=False)
        assert (state(b) is State.OPEN) == (number == 14)
        if number == 14:
            break
    assert [c.failure_rate for c in changes] == [10 / 14]


async def test_a_smaller_window_keeps_the_last_attempts_and_turned_off_it_lets_all_go() -> None:
    clock, changes = Clock(), list[Circuit]()
    tuning = [DEFAULT_TUNING]
    b = breaker(clock, changes, tuning=tuning)
    for failed in (True, True, False, False, True):
        b.record(failed=failed, timed_out=False)
    tuning[0] = Tuning(window=4)  # PATCHed: its last four count
    b.record(failed=False, timed_out=False)  # one of the last four failed
    assert state(b) is State.CLOSED
    b.record(failed=True, timed_out=False)  # two of the last four: half
    assert state(b) is State.OPEN
    assert await b.admit() == Admission(later=clock.now + COOL_DOWN)
    tuning[0] = Tuning(window=4, enabled=False)
    assert state(b) is State.CLOSED and await b.admit() == GO
    # A probe out when it was turned off: its failure reopens nothing.
    tuning[0] = Tuning(window=4)
    clock.now += COOL_DOWN
    assert await b.admit() == PROBE
    tuning[0] = Tuning(window=4, enabled=False)
    b.record(failed=True, timed_out=False, probe=True)
    assert [c.state for c in changes] == [State.OPEN, State.HALF_OPEN]
    assert state(b) is State.CLOSED and await b.admit() == GO


def flaky_receiver(fake: WebhookSink, path: str) -> None:
    """The issue's receiver: 500 to each delivery's first two attempts, then 200 (a
    delivery's attempts share their `webhook-id`)."""
    seen: collections.Counter[str] = collections.Counter()

    async def answer(received: Received) -> int:
        seen[received.headers["webhook-id"]] += 1
        return 500 if seen[received.headers["webhook-id"]] <= 2 else 200

    fake.on(path, answer=answer)


async def _circuit_changes(delivery: RunningService) -> float:
    """Circuit changes this delivery process made so far (its metrics)."""
    metrics = (await delivery.client.get("/metrics")).text
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("hookhub_delivery_circuit_changes_total{")
    ]
    return sum(counted)


async def _attempt_log(delivery: RunningService, delivery_id: str) -> list[dict[str, Any]]:
    answer = await delivery.client.get(f"/api/deliveries/{delivery_id}", headers=admin_headers())
    assert answer.status_code == 200, answer.text
    logged: list[dict[str, Any]] = answer.json()["attempt_log"]
    return logged


SCHEDULE = [1, 2]


async def test_a_flaky_endpoint_with_its_breaker_off_follows_its_retry_schedule(
    delivery: RunningService, sink: Sink
) -> None:
    """Twenty deliveries to the issue's flaky receiver at once: their forty failed first
    attempts would open a breaker (ten failures of twenty); off, each is retried when its
    schedule says and ends after three attempts, and the circuit never changes."""
    fake, _ = sink
    path = "/circuit/off"
    flaky_receiver(fake, path)
    created = await endpoint(
        delivery, sink, path, retry_schedule=SCHEDULE, circuit_breaker={"enabled": False}
    )
    assert created["circuit_breaker"] == {
        "enabled": False,
        "failure_ratio": 0.5,
        "window": 20,
        "cool_down_seconds": None,
    }
    changes_before = await _circuit_changes(delivery)
    events = {await publish(delivery, "circuit.flaky", "ws_d") for _ in range(20)}

    async def completed() -> list[dict[str, Any]] | None:
        found = [d for d in await _deliveries(delivery, created["id"]) if d["event_id"] in events]
        done = len(found) == len(events) and all(d["status"] == "completed" for d in found)
        return found if done else None

    ended = await until(completed, timeout=60, what="the twenty delivered")
    for d in ended:
        log = await _attempt_log(delivery, d["id"])
        assert [a["status_code"] for a in log] == [500, 500, 200], log
        for attempt, after, wait in zip(log[:-1], log[1:], SCHEDULE, strict=True):
            # The schedule's wait, give or take its jitter, from the attempt's start.
            scheduled = datetime.fromisoformat(attempt["next_attempt_at"])
            least = timedelta(seconds=wait * (1 - JITTER))
            assert scheduled - datetime.fromisoformat(attempt["at"]) >= least
            assert datetime.fromisoformat(after["at"]) >= scheduled
    # Never opened, so nothing was set aside for a probe.
    assert await _circuit_changes(delivery) == changes_before
    assert (await _endpoint_doc(delivery, created["id"]))["circuit"]["state"] == "closed"


async def test_a_flaky_endpoint_s_tuned_breaker_opens_at_its_ratio_and_holds_what_comes(
    delivery: RunningService, sink: Sink
) -> None:
    """`failure_ratio` 0.75 of a `window` of 4, one delivery after the other: the first
    delivery's two failures of three leave it closed (it ends on schedule), the second's
    first failure makes three of four and opens it, for its own hour; a delivery made then
    is set aside, unattempted, until that probe. Turned off then, those two and the next
    one follow their schedule."""
    fake, _ = sink
    path = "/circuit/tuned"
    flaky_receiver(fake, path)
    tuning = {"failure_ratio": 0.75, "window": 4, "cool_down_seconds": 3600}
    created = await endpoint(
        delivery, sink, path, retry_schedule=SCHEDULE, max_concurrency=1, circuit_breaker=tuning
    )
    endpoint_id = created["id"]
    assert created["circuit_breaker"] == {"enabled": True, **tuning}

    async def delivery_of(event_id: str, status: str) -> dict[str, Any] | None:
        found = [d for d in await _deliveries(delivery, endpoint_id) if d["event_id"] == event_id]
        return found[0] if found and found[0]["status"] == status else None

    first = await publish(delivery, "circuit.flaky", "ws_d")
    done = await until(lambda: delivery_of(first, "completed"), what="the first delivered")
    assert done["attempts"] == 3
    assert (await _endpoint_doc(delivery, endpoint_id))["circuit"]["state"] == "closed"

    second = await publish(delivery, "circuit.flaky", "ws_d")

    async def opened() -> dict[str, Any] | None:
        found: dict[str, Any] = (await _endpoint_doc(delivery, endpoint_id))["circuit"]
        return found if found["state"] == "open" else None

    circuit = await until(opened, what="the circuit open")
    assert circuit["failure_rate"] == 0.75
    probe_at = datetime.fromisoformat(circuit["next_probe_at"])
    assert probe_at - datetime.fromisoformat(circuit["opened_at"]) == timedelta(hours=1)
    assert len(fake.at(path)) == 4

    third = await publish(delivery, "circuit.flaky", "ws_d")
    held = await until(lambda: delivery_of(third, "delayed"), what="the third set aside")
    assert held["attempts"] == 0
    assert datetime.fromisoformat(held["next_attempt_at"]) >= probe_at  # not on its schedule
    assert len(fake.at(path)) == 4

    # Turned off, the circuit is closed at once, what it set aside is due now rather than
    # in an hour, and each goes on its schedule.
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{endpoint_id}",
        json={"circuit_breaker": {"enabled": False}},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["circuit"]["state"] == "closed"
    assert answer.json()["circuit_breaker"] == {**tuning, "enabled": False}
    for event_id in (second, third, await publish(delivery, "circuit.flaky", "ws_d")):
        done = await until(
            functools.partial(delivery_of, event_id, "completed"), what="each delivered"
        )
        assert done["attempts"] == 3
