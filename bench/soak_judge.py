"""The soak's verdicts: pure functions from what `bench.soak` recorded to pass, fail or "not
judged", so that a soak that ran is judged by code the tests check on recorded samples
(tests/bench/test_soak_judge.py).

What is judged (the targets of issue #34):

- **loss**: every event accepted (a 2xx, or Kafka's ack) reached every endpoint it was for,
  or was dead-lettered there, and every synced message arrived, once where it must be once;
- **rss**, **fds**: a service process's resident memory grows by at most 10%, its open file
  descriptors not at all, from the first minute after the warm-up to the last minute;
- **lag**: each consumer group's lag is back at its steady level within a minute of each
  fault's end;
- **level**: MongoDB's collections stop growing once retention runs.

Times are seconds since the load began. A process restarted (a new pid) starts a new
series with a warm-up of its own. A figure a sample could not read (the process, the
broker or MongoDB was down) is missing from it, never zero. Windows are medians of the
samples in them, so one spike does not decide a verdict, and leave out the samples taken
during a fault or in the recovery window after it (the "quiet" samples).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fault:
    name: str
    start: float
    end: float


@dataclass(frozen=True)
class Proc:
    """One process at one sample: its pid, resident memory (bytes) and open descriptors;
    of those, its TCP connections by the port at the other end (where descriptors went);
    and the CPU time it has used so far (user and system, seconds)."""

    pid: int
    rss: int
    fds: int
    peers: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0


@dataclass(frozen=True)
class Coll:
    """One MongoDB collection at one sample: documents and their size in bytes."""

    count: int
    size: int


@dataclass
class Sample:
    t: float
    # By process name; None: not running, or /proc could not be read.
    processes: dict[str, Proc | None] = field(default_factory=dict)
    # Messages behind, by consumer group; None: the broker did not answer.
    lag: dict[str, int] | None = None
    # By collection; None: not read in this sample (bench.soak_sample.COLLECTIONS_EVERY),
    # or MongoDB did not answer (then `pending` is None too).
    collections: dict[str, Coll] | None = None
    # Deliveries pending, active or delayed; None: MongoDB did not answer.
    pending: int | None = None
    # hookhub_event_loop_lag_seconds by service; None: the service did not answer.
    loop_lag: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Sample:
        collections = raw.get("collections")
        return cls(
            t=float(raw["t"]),
            processes={
                name: None if proc is None else Proc(**proc)
                for name, proc in raw.get("processes", {}).items()
            },
            lag=raw.get("lag"),
            collections=None
            if collections is None
            else {name: Coll(**coll) for name, coll in collections.items()},
            pending=raw.get("pending"),
            loop_lag=dict(raw.get("loop_lag", {})),
        )


@dataclass(frozen=True)
class Rules:
    """The targets and how they are read. The defaults are the 20-minute soak's."""

    warmup: float = 300.0  # s after a process's first sample before its growth counts
    window: float = 60.0  # s of quiet samples whose median is compared
    recovery: float = 60.0  # s after a fault's end for the lag to be back
    min_samples: int = 3  # a window holds at least this many samples
    rss_growth: float = 0.10  # at most this fraction more memory
    fd_growth: int = 0  # at most this many more descriptors
    lag_factor: float = 2.0  # back at most this many times the steady lag...
    lag_slack: int = 20  # ...or this many messages above it, whichever is more
    settle: float = 210.0  # s from the start after which retention holds collections level
    level_ratio: float = 0.1  # the last third grows at most this fraction of the first's rate
    level_floor: float = 0.05  # documents a second of growth that count as flat


@dataclass(frozen=True)
class Verdict:
    rule: str  # loss, rss, fds, lag, level
    subject: str
    ok: bool | None  # None: not judged (the detail says why)
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    samples: Sequence[Sample],
    faults: Sequence[Fault],
    end: float,
    rules: Rules,
    services: Iterable[str],
    exempt: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """Every rule but loss, on the samples up to `end` (the end of the load): memory and
    descriptors of each of `services`, each group's lag after each fault, and collections."""
    within = [sample for sample in samples if sample.t <= end]
    verdicts = []
    for name in services:
        verdicts += rss_growth(within, name, faults, rules)
        verdicts += fd_growth(within, name, faults, rules)
    verdicts += lag_recovery(within, faults, rules)
    verdicts += levelling(within, end, rules, exempt)
    return verdicts


def passed(verdicts: Iterable[Verdict]) -> bool:
    """True when no verdict failed (one not judged is not a failure; it is reported)."""
    return all(verdict.ok is not False for verdict in verdicts)


# -- loss ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcomes:
    """Where each (endpoint, event) pair an accepted event made ended up."""

    delivered: frozenset[tuple[str, str]]  # the endpoint answered 2xx (the sink saw it)
    dead_lettered: frozenset[tuple[str, str]]  # on hookhub.delivery.dead-letters
    # Seen `failed` in MongoDB with no dead letter (its publish failed: the broker was down).
    failed: frozenset[tuple[str, str]] = frozenset()


def ends(
    accepted: Sequence[str], endpoints: Sequence[str], outcomes: Outcomes
) -> tuple[Counter[str], list[tuple[str, str]]]:
    """How the (endpoint, event) pairs ended, counted, and those that did not (lost)."""
    counts: Counter[str] = Counter()
    lost: list[tuple[str, str]] = []
    for event in accepted:
        for endpoint in endpoints:
            pair = (endpoint, event)
            if pair in outcomes.delivered:
                counts["delivered"] += 1
            elif pair in outcomes.dead_lettered:
                counts["dead-lettered"] += 1
            elif pair in outcomes.failed:
                counts["failed without a dead letter"] += 1
            else:
                lost.append(pair)
    return counts, lost


def deliveries(
    kind: str, accepted: Sequence[str], endpoints: Sequence[str], outcomes: Outcomes
) -> Verdict:
    """Every accepted event of `kind` delivered to, or dead-lettered at, every endpoint."""
    counts, lost = ends(accepted, endpoints, outcomes)
    ended = ", ".join(f"{n:,} {what}" for what, n in counts.items() if n)
    detail = (
        f"{len(accepted):,} accepted, {len(endpoints)} endpoints each: {ended or 'none'}"
        f"; {len(lost):,} lost"
    )
    if lost:
        detail += " (e.g. " + ", ".join(f"{e} at {p}" for p, e in lost[:3]) + ")"
    return Verdict("loss", kind, not lost, detail)


def missing(accepted: Sequence[str], seen: Mapping[str, int]) -> list[str]:
    return [item for item in accepted if not seen.get(item)]


def arrivals(
    kind: str, accepted: Sequence[str], seen: Mapping[str, int], *, exactly_once: bool
) -> Verdict:
    """Every accepted id seen where it goes (`seen`: times each id arrived); with
    `exactly_once`, no more than once either."""
    lost = missing(accepted, seen)
    twice = [item for item in accepted if seen.get(item, 0) > 1]
    detail = (
        f"{len(accepted):,} accepted: {len(lost):,} lost, {len(twice):,} arrived more than once"
    )
    if lost:
        detail += " (lost e.g. " + ", ".join(lost[:3]) + ")"
    if twice:
        detail += " (twice e.g. " + ", ".join(twice[:3]) + ")"
    return Verdict("loss", kind, not lost and not (exactly_once and twice), detail)


def left_open(kind: str, found: Sequence[Mapping[str, Any]] | str) -> Verdict:
    """None of `kind` is still open once the stack was given time to finish (`found`: those
    that are, up to a few; or why they could not be read)."""
    if isinstance(found, str):
        return Verdict("loss", f"{kind} left open", None, f"could not be read: {found}")
    detail = f"{len(found)} still open after the drain" + (f", e.g. {found[0]}" if found else "")
    return Verdict("loss", f"{kind} left open", not found, detail)


# -- memory and descriptors ------------------------------------------------------------------


def quiet(t: float, faults: Sequence[Fault], recovery: float) -> bool:
    """Not during a fault, nor in the recovery window after one."""
    return not any(fault.start <= t < fault.end + recovery for fault in faults)


def series(samples: Sequence[Sample], name: str) -> list[list[tuple[float, Proc]]]:
    """A process's samples, one list per pid it had (a restart starts another)."""
    runs: list[list[tuple[float, Proc]]] = []
    for sample in samples:
        proc = sample.processes.get(name)
        if proc is None:
            continue
        if not runs or runs[-1][-1][1].pid != proc.pid:
            runs.append([])
        runs[-1].append((sample.t, proc))
    return runs


def _windows(
    points: Sequence[tuple[float, Proc]], rules: Rules
) -> tuple[list[Proc], list[Proc]] | None:
    """The figures of the first and of the last `window` seconds of `points` (at least
    `min_samples` each), or None when they would overlap."""
    if len(points) < 2 * rules.min_samples:
        return None
    first_t, last_t = points[0][0], points[-1][0]
    first = [i for i, (t, _) in enumerate(points) if t < first_t + rules.window]
    last = [i for i, (t, _) in enumerate(points) if t > last_t - rules.window]
    if len(first) < rules.min_samples:
        first = list(range(rules.min_samples))
    if len(last) < rules.min_samples:
        last = list(range(len(points) - rules.min_samples, len(points)))
    if first[-1] >= last[0]:
        return None
    return [points[i][1] for i in first], [points[i][1] for i in last]


def _growth(
    rule: str,
    samples: Sequence[Sample],
    name: str,
    faults: Sequence[Fault],
    rules: Rules,
    value: Callable[[Proc], float],
    within: Callable[[float, float], bool],
    unit: Callable[[float], str],
    explain: Callable[[list[Proc], list[Proc]], str] | None = None,
) -> list[Verdict]:
    verdicts = []
    for run in series(samples, name):
        start, pid = run[0][0], run[0][1].pid
        subject = f"{name} (pid {pid}, from {start:.0f} s)"
        points = [
            (t, proc)
            for t, proc in run
            if t >= start + rules.warmup and quiet(t, faults, rules.recovery)
        ]
        windows = _windows(points, rules)
        if windows is None:
            detail = (
                f"{len(points)} quiet samples after its {rules.warmup:.0f} s warm-up, "
                f"fewer than two windows of {rules.min_samples}"
            )
            verdicts.append(Verdict(rule, subject, None, detail))
            continue
        first, last = windows
        before = statistics.median(value(proc) for proc in first)
        after = statistics.median(value(proc) for proc in last)
        detail = (
            f"median {unit(before)} in its first quiet minute after the warm-up, "
            f"{unit(after)} in its last"
        )
        if explain is not None and before != after:
            detail += explain(first, last)
        verdicts.append(Verdict(rule, subject, within(before, after), detail))
    return verdicts


def rss_growth(
    samples: Sequence[Sample], name: str, faults: Sequence[Fault], rules: Rules
) -> list[Verdict]:
    """Resident memory grows by at most `rss_growth` (a fraction) after the warm-up."""

    def within(before: float, after: float) -> bool:
        return after <= before * (1 + rules.rss_growth)

    def mb(value: float) -> str:
        return f"{value / 1e6:.1f} MB"

    return _growth("rss", samples, name, faults, rules, lambda p: p.rss, within, mb)


def fd_growth(
    samples: Sequence[Sample], name: str, faults: Sequence[Fault], rules: Rules
) -> list[Verdict]:
    """Open file descriptors do not grow (by more than `fd_growth`) after the warm-up."""

    def within(before: float, after: float) -> bool:
        return after <= before + rules.fd_growth

    def fds(value: float) -> str:
        return f"{value:g} descriptors"

    return _growth(
        "fds", samples, name, faults, rules, lambda p: p.fds, within, fds, _peers_changed
    )


def _peers_changed(first: list[Proc], last: list[Proc]) -> str:
    """Which TCP connections (by peer) the medians of the two windows differ by."""
    changes = []
    for peer in sorted({peer for proc in first + last for peer in proc.peers}):
        before = statistics.median(proc.peers.get(peer, 0) for proc in first)
        after = statistics.median(proc.peers.get(peer, 0) for proc in last)
        if before != after:
            changes.append(f"{after - before:+g} {peer}")
    return f" (TCP connections: {', '.join(changes)})" if changes else ""


# -- consumer lag ----------------------------------------------------------------------------


def _lags(samples: Sequence[Sample], group: str) -> list[tuple[float, int]]:
    return [(s.t, s.lag[group]) for s in samples if s.lag is not None and group in s.lag]


def lag_recovery(samples: Sequence[Sample], faults: Sequence[Fault], rules: Rules) -> list[Verdict]:
    """Each group's lag is back at its steady level (the median before the first fault)
    within `recovery` seconds of each fault's end: at most `lag_factor` times it, or
    `lag_slack` messages above it, whichever is more."""
    if not faults:
        return []
    first_fault = min(fault.start for fault in faults)
    groups = sorted({group for sample in samples for group in (sample.lag or {})})
    verdicts = []
    for group in groups:
        lags = _lags(samples, group)
        before = [lag for t, lag in lags if t < first_fault]
        if not before:
            verdicts.append(Verdict("lag", group, None, "no lag read before the first fault"))
            continue
        steady = statistics.median(before)
        limit = max(steady * rules.lag_factor, steady + rules.lag_slack)
        for fault in faults:
            until = fault.end + rules.recovery
            after = [(t, lag) for t, lag in lags if fault.end <= t <= until]
            back = next((t for t, lag in after if lag <= limit), None)
            peak = max((lag for t, lag in lags if fault.start <= t <= until), default=None)
            head = f"steady {steady:g}, back at ≤ {limit:g}"
            tail = "" if peak is None else f" (peak {peak:,})"
            if back is not None:
                detail = f"{head} {back - fault.end:.0f} s after the fault's end{tail}"
            elif after:
                detail = f"{head}: NOT within {rules.recovery:.0f} s, {after[-1][1]:,} then{tail}"
            else:
                detail = f"{head}: no lag read within {rules.recovery:.0f} s of the fault's end"
            verdicts.append(Verdict("lag", f"{group} after {fault.name}", back is not None, detail))
    return verdicts


# -- collections -----------------------------------------------------------------------------


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares growth per second."""
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if not spread:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def levelling(
    samples: Sequence[Sample], end: float, rules: Rules, exempt: Mapping[str, str] | None = None
) -> list[Verdict]:
    """Each collection's document count grows in the last third of the run at most
    `level_ratio` of its rate in the first third (or under `level_floor` a second):
    retention keeps it level. Judged only when the last third begins after `settle`."""
    if 2 * end / 3 < rules.settle:
        detail = (
            f"the run's last third begins at {2 * end / 3:.0f} s, before "
            f"retention levels collections off ({rules.settle:.0f} s)"
        )
        return [Verdict("level", "collections", None, detail)]
    names = sorted({name for s in samples for name in (s.collections or {})})
    verdicts = []
    for name in names:
        if exempt and name in exempt:
            verdicts.append(Verdict("level", name, None, exempt[name]))
            continue
        points = [
            (s.t, float(s.collections[name].count))
            for s in samples
            if s.collections is not None and name in s.collections and s.t <= end
        ]
        first = [p for p in points if p[0] <= end / 3]
        last = [p for p in points if p[0] >= 2 * end / 3]
        if len(first) < rules.min_samples or len(last) < rules.min_samples:
            verdicts.append(Verdict("level", name, None, "too few samples"))
            continue
        early, late = slope(first), slope(last)
        ok = late <= max(rules.level_ratio * early, rules.level_floor)
        detail = (
            f"{early:+.2f} documents/s in the first third, {late:+.2f}/s in the last "
            f"({points[-1][1]:,.0f} at the end)"
        )
        verdicts.append(Verdict("level", name, ok, detail))
    return verdicts
