"""Each endpoint's circuit breaker (SPEC §17).

**Closed**, attempts go out as usual and each outcome is counted: once at least half of
the last `WINDOW` attempts failed (any answer but a 2xx, or none), or `TIMEOUTS_IN_ROW`
timed out in a row, the circuit **opens**. No attempt is made then: a delivery that comes
up is set aside until the next probe (`delayed`, its `next_attempt_at` that time, held by
no process, no attempt counted), so an endpoint that is down spends none of its
deliveries' retries and holds none of a process's room. After a cool-down
(`HOOKHUB_CIRCUIT_COOL_DOWN_SECONDS`, 30 s) the scheduler brings them back: the first goes
as the probe (**half open**), the others wait for its outcome (one attempt: the
endpoint's time-out at most). A success closes the circuit and they go at once; a failure
opens it again for twice as long, up to `HOOKHUB_CIRCUIT_MAX_COOL_DOWN_SECONDS` (10
minutes), and they are set aside again. Unlike auto-disable, it closes by itself; an
endpoint whose probes keep failing is still disabled after its failure window.

An endpoint tunes the share of failures, the window and the first cool-down, or turns its
breaker off (`Tuning`: its `circuit_breaker`, read from the endpoint cache with the rest of
its settings, never from MongoDB per attempt). Off, its circuit is closed whatever was
written, every attempt goes when the retry schedule says, and none is counted.

Each delivery process counts its own attempts. A change of state is written on the
endpoint (`circuit`: state, opened_at, failure_rate, next_probe_at, and when it changed),
where the API and the console show it and from where the other replicas adopt it through
their endpoint cache (the later change wins): a circuit one process opened stops the
others within a refresh of their cache, and one a probe closed lets them all go again. A
replica that sees a circuit half open elsewhere waits for that probe's outcome until a
cool-down has passed, then probes itself (the prober may have gone away).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document

WINDOW = 20
FAILURE_RATIO = 0.5
TIMEOUTS_IN_ROW = 5
# How often a waiting attempt looks at the endpoint's shared state (the endpoint cache
# refreshes every second): another replica's probe may have closed the circuit.
RECHECK_SECONDS = 1.0


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Tuning:
    """An endpoint's `circuit_breaker` (SPEC §17), today's defaults where it sets none."""

    enabled: bool = True
    failure_ratio: float = FAILURE_RATIO
    window: int = WINDOW
    cool_down_seconds: float | None = None  # None: the deployment's (the Breaker's `cool_down`)

    @property
    def failures_to_open(self) -> int:
        """Failures among the last `window` attempts that open the circuit: the ratio of a
        full window, rounded up (0.7 of 10 is 7, not the 8 that 7.000000000000001 gives)."""
        return max(1, math.ceil(round(self.failure_ratio * self.window, 9)))

    @classmethod
    def from_doc(cls, doc: Document | None) -> Tuning:
        """As stored on the endpoint; an endpoint made before there was a setting, or a
        PATCH that set only some of its fields, keeps the defaults of the rest."""
        doc = doc or {}
        cool_down = doc.get("cool_down_seconds")
        return cls(
            enabled=bool(doc.get("enabled", True)),
            failure_ratio=float(doc.get("failure_ratio", FAILURE_RATIO)),
            window=int(doc.get("window", WINDOW)),
            cool_down_seconds=None if cool_down is None else float(cool_down),
        )


DEFAULT_TUNING = Tuning()
FAILURES_TO_OPEN = DEFAULT_TUNING.failures_to_open


@dataclass(frozen=True, slots=True)
class Circuit:
    """An endpoint's circuit as written on it (`circuit`)."""

    state: State = State.CLOSED
    opened_at: datetime | None = None
    failure_rate: float = 0.0
    next_probe_at: datetime | None = None
    cool_down_seconds: float = 0.0
    changed_at: datetime | None = None

    def doc(self) -> Document:
        return {
            "state": self.state.value,
            "opened_at": self.opened_at,
            "failure_rate": round(self.failure_rate, 3),
            "next_probe_at": self.next_probe_at,
            "cool_down_seconds": self.cool_down_seconds,
            "changed_at": self.changed_at,
        }

    @classmethod
    def from_doc(cls, doc: Document | None) -> Circuit | None:
        if not doc or doc.get("changed_at") is None:
            return None
        return cls(
            state=State(doc.get("state", State.CLOSED)),
            opened_at=doc.get("opened_at"),
            failure_rate=float(doc.get("failure_rate") or 0.0),
            next_probe_at=doc.get("next_probe_at"),
            cool_down_seconds=float(doc.get("cool_down_seconds") or 0.0),
            changed_at=doc["changed_at"],
        )


@dataclass(frozen=True, slots=True)
class Admission:
    """What `Breaker.admit` allows: an attempt now (the probe, or not), or none before
    `later`."""

    probe: bool = False
    later: datetime | None = None


GO = Admission()
PROBE = Admission(probe=True)


class Breaker:
    """One endpoint's circuit in this process. `admit` before an attempt, `record` its
    outcome; `on_change` hears every change of state (to write it on the endpoint);
    `tuning` is the endpoint's setting as it is now (a PATCH takes effect at the next
    attempt)."""

    def __init__(
        self,
        *,
        cool_down: timedelta,
        max_cool_down: timedelta,
        shared: Callable[[], Circuit | None] = lambda: None,
        on_change: Callable[[Circuit], None] = lambda _: None,
        clock: Callable[[], datetime] = utcnow,
        tuning: Callable[[], Tuning] = lambda: DEFAULT_TUNING,
    ) -> None:
        self._default_cool_down = cool_down
        self._max = max_cool_down
        self._shared = shared
        self._on_change = on_change
        self._clock = clock
        self._tuning = tuning
        self.circuit = Circuit()
        self._results: deque[bool] = deque(maxlen=WINDOW)  # True: failed
        self._timeouts = 0  # in a row
        self._probing = False  # this process's probe is out
        self._changed = asyncio.Event()

    @property
    def state(self) -> State:
        """Closed whenever the endpoint has turned its breaker off, whatever was written."""
        return self.circuit.state if self._tuning().enabled else State.CLOSED

    async def admit(self) -> Admission:
        """Whether an attempt may go out now. Closed: at once. Open: not before the next
        probe (`later`: the delivery is set aside until then, holding no room); once that
        is due, this attempt is the probe (`probe`: record its outcome with `probe=True`,
        or call `unprobed` if it made none). While this process's probe is out, the others
        wait for its outcome (an attempt at most: the endpoint's time-out)."""
        while True:
            self.adopt(self._shared())
            circuit = self.circuit
            if circuit.state is State.CLOSED or not self._tuning().enabled:
                return GO
            now = self._clock()
            if circuit.state is State.OPEN and not self._probing:
                if circuit.next_probe_at is not None and now < circuit.next_probe_at:
                    return Admission(later=circuit.next_probe_at)
                self._probing = True
                # Written with the time another replica may probe if this one's outcome has
                # not come by then (this process gone): a cool-down on.
                retry = now + self._cool_down()
                self._set(
                    replace(circuit, state=State.HALF_OPEN, next_probe_at=retry, changed_at=now)
                )
                return PROBE
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=RECHECK_SECONDS)

    def record(self, *, failed: bool, timed_out: bool, probe: bool = False) -> None:
        """An attempt's outcome: `failed` unless the endpoint answered 2xx; `timed_out` when
        it did not answer within its time-out."""
        now = self._clock()
        tuning = self._tuning()
        if probe:
            self._probing = False
        if not tuning.enabled:
            return  # off (a probe's too, turned off while it was out): nothing is counted
        if probe:
            if failed:
                ceiling = max(self._max, self._base(tuning))
                self._open(now, min(ceiling, 2 * self._cool_down()))
            else:
                self._close(now)
            return
        if self.circuit.state is not State.CLOSED:
            return  # out when the circuit opened: the probe decides
        if self._results.maxlen != tuning.window:  # tuned since: its last attempts kept
            self._results = deque(self._results, maxlen=tuning.window)
        self._results.append(failed)
        self._timeouts = self._timeouts + 1 if timed_out else 0
        if sum(self._results) >= tuning.failures_to_open or self._timeouts >= TIMEOUTS_IN_ROW:
            self._open(now, self._base(tuning))

    def unprobed(self) -> None:
        """The probe `admit` gave made no attempt (cut off, or the endpoint was disabled or
        deleted meanwhile): the next waiting attempt probes instead."""
        if not self._probing:
            return
        self._probing = False
        if self.circuit.state is State.HALF_OPEN:
            now = self._clock()
            self._set(replace(self.circuit, state=State.OPEN, next_probe_at=now, changed_at=now))

    def adopt(self, shared: Circuit | None) -> None:
        """Take another replica's later change (through the endpoint cache). A half-open
        circuit probed elsewhere is open here until its next probe time (past, by then):
        if that prober went away, this process probes."""
        mine = self.circuit.changed_at
        if shared is None or shared.changed_at is None:
            return
        if mine is not None and shared.changed_at <= mine:
            return
        state = State.OPEN if shared.state is State.HALF_OPEN else shared.state
        self.circuit = replace(shared, state=state)
        if state is State.CLOSED:
            self._results.clear()
            self._timeouts = 0
        self._changed.set()

    def _base(self, tuning: Tuning) -> timedelta:
        """The first cool-down after an opening: the endpoint's, else the deployment's."""
        seconds = tuning.cool_down_seconds
        return self._default_cool_down if seconds is None else timedelta(seconds=seconds)

    def _cool_down(self) -> timedelta:
        seconds = self.circuit.cool_down_seconds
        return timedelta(seconds=seconds) if seconds > 0 else self._base(self._tuning())

    def _failure_rate(self) -> float:
        return sum(self._results) / len(self._results) if self._results else 1.0

    def _open(self, now: datetime, cool_down: timedelta) -> None:
        self._set(
            Circuit(
                state=State.OPEN,
                opened_at=self.circuit.opened_at or now,
                failure_rate=self._failure_rate(),
                next_probe_at=now + cool_down,
                cool_down_seconds=cool_down.total_seconds(),
                changed_at=now,
            )
        )

    def _close(self, now: datetime) -> None:
        self._results.clear()
        self._timeouts = 0
        self._set(Circuit(state=State.CLOSED, changed_at=now))

    def _set(self, circuit: Circuit) -> None:
        self.circuit = circuit
        self._changed.set()
        self._on_change(circuit)


def circuit_out(doc: Any) -> Document:
    """An endpoint's circuit as the API shows it: closed when it never opened."""
    circuit = Circuit.from_doc(doc) or Circuit()
    shown = circuit.doc()
    del shown["cool_down_seconds"], shown["changed_at"]
    return shown


def tuning_out(doc: Any) -> Document:
    """An endpoint's `circuit_breaker` as the API shows it: the defaults where it set none."""
    return asdict(Tuning.from_doc(doc))
