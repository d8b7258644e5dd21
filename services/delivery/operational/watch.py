"""An endpoint's troubles as operational events: `failing` at its fifth failure in a row and
then at most once an hour while it keeps failing, `recovered` at its first success after
that, `exhausted` for each delivery dead-lettered, `circuit_opened` and `circuit_closed`.

Each delivery process counts the attempts it makes (as the circuit breaker does): with
several replicas an endpoint's failures are spread over them, so `failing` may come a little
later, and once an hour per replica at most.

What keeps two operational endpoints from feeding each other: an event about an endpoint is
never delivered to it (fan-out), a delivery of an operational event that is dead-lettered
makes no `exhausted` (else each one lost would make another, for as long as both are down),
and the rest are bounded by time: `failing` once an hour, `circuit_opened` once per opening
(not at each failed probe, which only reopens it), the disabling once. Deliveries of
operational events still count towards `failing` and the circuit: they are the endpoint's
health like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.delivery.deliveries.circuit import Circuit, State
from services.delivery.deliveries.dispatcher import Attempted
from services.delivery.deliveries.policy import Verdict
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.domain.operational import is_operational, operational_event
from shared.kernel.envelopes import OperationalEvent, OperationalType
from shared.kernel.ids import isoformat, utcnow

FAILURES_TO_WARN = 5
WARN_EVERY = timedelta(hours=1)


@dataclass(slots=True)
class Streak:
    """An endpoint's failures in a row in this process, and its last answer."""

    failures: int = 0
    since: datetime | None = None
    warned_at: datetime | None = None  # its last `failing`, if it had one in this streak


class EndpointWatch:
    def __init__(
        self,
        emit: Callable[[OperationalEvent], None],
        *,
        failures_to_warn: int = FAILURES_TO_WARN,
        warn_every: timedelta = WARN_EVERY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._emit = emit
        self._failures_to_warn = failures_to_warn
        self._warn_every = warn_every
        self._clock = clock
        self._streaks: dict[str, Streak] = {}  # by endpoint id
        self._last: dict[str, tuple[int | None, str | None]] = {}  # its last answer, by id

    def attempted(self, attempt: Attempted) -> None:
        """An attempt's outcome (the dispatcher calls it before the circuit hears of it, so
        that a circuit's change names this answer)."""
        endpoint, job = attempt.endpoint, attempt.job
        self._last[endpoint.id] = (attempt.status_code, attempt.error)
        if attempt.verdict is Verdict.COMPLETED:
            self._succeeded(endpoint, attempt.status_code)
            return
        if attempt.reached:  # a transformation's error is not the endpoint failing
            self._failed(endpoint, attempt.status_code, attempt.error)
        if attempt.verdict in (Verdict.FAILED, Verdict.GONE) and not is_operational(job.event_type):
            self._emit(
                operational_event(
                    endpoint.workspace_id,
                    "operational.delivery.exhausted",
                    endpoint_id=endpoint.id,
                    delivery_id=job.id,
                    event_id=job.event_id,
                    event_type=job.event_type,
                    attempts=attempt.number,
                    reason=(
                        "the endpoint answered 410 Gone"
                        if attempt.verdict is Verdict.GONE
                        else f"no success in {attempt.number} attempts"
                    ),
                    last_status_code=attempt.status_code,
                    last_error=attempt.error,
                )
            )

    def _failed(
        self, endpoint: EndpointSnapshot, status_code: int | None, error: str | None
    ) -> None:
        now = self._clock()
        streak = self._streaks.setdefault(endpoint.id, Streak(since=now))
        streak.failures += 1
        if streak.failures < self._failures_to_warn:
            return
        if streak.warned_at is not None and now - streak.warned_at < self._warn_every:
            return
        streak.warned_at = now
        reason = f"{streak.failures} failed attempts in a row"
        self._streak_event(
            "operational.delivery.failing", endpoint, streak, reason, status_code, error
        )

    def _succeeded(self, endpoint: EndpointSnapshot, status_code: int | None) -> None:
        streak = self._streaks.pop(endpoint.id, None)
        if streak is None or streak.warned_at is None:
            return
        reason = f"a success after {streak.failures} failed attempts in a row"
        self._streak_event("operational.delivery.recovered", endpoint, streak, reason, status_code)

    def _streak_event(
        self,
        type: OperationalType,
        endpoint: EndpointSnapshot,
        streak: Streak,
        reason: str,
        status_code: int | None,
        error: str | None = None,
    ) -> None:
        self._emit(
            operational_event(
                endpoint.workspace_id,
                type,
                endpoint_id=endpoint.id,
                reason=reason,
                failures=streak.failures,
                failing_since=isoformat(streak.since) if streak.since else None,
                last_status_code=status_code,
                last_error=error,
            )
        )

    def circuit(self, endpoint: EndpointSnapshot | None, circuit: Circuit) -> None:
        """A change of an endpoint's circuit made in this process (not one adopted from
        another replica, which that replica announced): its opening, not a failed probe's
        reopening (`opened_at` is kept then), and its closing."""
        if endpoint is None:
            return
        status_code, error = self._last.get(endpoint.id, (None, None))
        if circuit.state is State.OPEN and circuit.opened_at == circuit.changed_at:
            timed_out = error is not None and error.startswith("timeout")
            reason = (
                "attempts timed out in a row"
                if timed_out and circuit.failure_rate < endpoint.circuit_breaker.failure_ratio
                else f"{circuit.failure_rate:.0%} of the last attempts failed"
            )
            self._emit(
                operational_event(
                    endpoint.workspace_id,
                    "operational.endpoint.circuit_opened",
                    endpoint_id=endpoint.id,
                    reason=reason,
                    failure_rate=circuit.failure_rate,
                    next_probe_at=isoformat(circuit.next_probe_at)
                    if circuit.next_probe_at
                    else None,
                    last_status_code=status_code,
                    last_error=error,
                )
            )
        elif circuit.state is State.CLOSED:
            self._emit(
                operational_event(
                    endpoint.workspace_id,
                    "operational.endpoint.circuit_closed",
                    endpoint_id=endpoint.id,
                    reason="a probe succeeded",
                    last_status_code=status_code,
                )
            )
