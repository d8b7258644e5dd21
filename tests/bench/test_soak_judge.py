"""The soak's judging code (bench/soak_judge.py) on hand-made series: each rule passes when
its target is met, fails when it is not, and says "not judged" when it cannot tell."""

from __future__ import annotations

from collections.abc import Callable

from bench.soak_judge import (
    Coll,
    Fault,
    Outcomes,
    Proc,
    Rules,
    Sample,
    arrivals,
    deliveries,
    fd_growth,
    lag_recovery,
    levelling,
    passed,
    rss_growth,
    series,
    slope,
)

MB = 1_000_000
# A 20-minute soak read the way bench.soak reads it: warm-up 300 s, minute windows.
RULES = Rules()
FAULTS = [
    Fault("broker stopped", 360, 420),
    Fault("MongoDB stopped", 600, 660),
    Fault("delivery killed", 840, 845),
]


def run_of(
    value: Callable[[float], float], *, pid: Callable[[float], int] = lambda t: 100
) -> list[Sample]:
    """A sample every 10 s for 20 minutes of one process, "gateway", whose RSS at t is
    `value(t)` MB and whose descriptors are 40."""
    return [
        Sample(t=t, processes={"gateway": Proc(pid(t), int(value(t) * MB), 40)})
        for t in range(0, 1201, 10)
    ]


# -- loss ------------------------------------------------------------------------------------


def test_every_pair_delivered_or_dead_lettered_is_no_loss() -> None:
    outcomes = Outcomes(
        delivered=frozenset({("ep_ok", "evt_1"), ("ep_ok", "evt_2")}),
        dead_lettered=frozenset({("ep_500", "evt_1"), ("ep_500", "evt_2")}),
    )
    verdict = deliveries("chat events", ["evt_1", "evt_2"], ["ep_ok", "ep_500"], outcomes)
    assert verdict.ok is True
    assert "2 delivered, 2 dead-lettered; 0 lost" in verdict.detail


def test_a_pair_neither_delivered_nor_dead_lettered_is_lost() -> None:
    outcomes = Outcomes(
        delivered=frozenset({("ep_ok", "evt_1")}),
        dead_lettered=frozenset({("ep_500", "evt_1"), ("ep_500", "evt_2")}),
    )
    verdict = deliveries("chat events", ["evt_1", "evt_2"], ["ep_ok", "ep_500"], outcomes)
    assert verdict.ok is False
    assert "1 lost (e.g. evt_2 at ep_ok)" in verdict.detail


def test_a_delivery_failed_whose_dead_letter_could_not_be_published_is_not_lost() -> None:
    outcomes = Outcomes(
        delivered=frozenset(),
        dead_lettered=frozenset(),
        failed=frozenset({("ep_hangs", "evt_1")}),
    )
    verdict = deliveries("chat events", ["evt_1"], ["ep_hangs"], outcomes)
    assert verdict.ok is True
    assert "1 failed without a dead letter" in verdict.detail


def test_arrivals_lost_and_twice() -> None:
    seen = {"a": 1, "b": 2}
    assert arrivals("incoming", ["a", "b"], seen, exactly_once=False).ok is True
    twice = arrivals("slack → chat", ["a", "b"], seen, exactly_once=True)
    assert twice.ok is False
    assert "1 arrived more than once (twice e.g. b)" in twice.detail
    lost = arrivals("incoming", ["a", "b", "c"], seen, exactly_once=False)
    assert lost.ok is False
    assert "1 lost" in lost.detail


# -- memory and descriptors ------------------------------------------------------------------


def test_flat_memory_with_a_spike_in_the_last_minute_passes() -> None:
    samples = run_of(lambda t: 200 if t == 1180 else 80)
    [verdict] = rss_growth(samples, "gateway", FAULTS, RULES)
    assert verdict.ok is True
    assert "80.0 MB in its first quiet minute after the warm-up, 80.0 MB in its last" in (
        verdict.detail
    )


def test_memory_growing_a_fifth_after_the_warm_up_fails() -> None:
    samples = run_of(lambda t: 80 + 16 * max(t - 300, 0) / 900)
    [verdict] = rss_growth(samples, "gateway", FAULTS, RULES)
    assert verdict.ok is False


def test_growth_during_the_warm_up_does_not_count() -> None:
    samples = run_of(lambda t: 40 + 40 * min(t, 300) / 300)  # doubles, then flat
    [verdict] = rss_growth(samples, "gateway", FAULTS, RULES)
    assert verdict.ok is True


def test_samples_during_a_fault_and_its_recovery_are_left_out() -> None:
    # The first quiet minute after the warm-up is 300-360 s; a fault from 1150 s to the
    # end leaves the last quiet minute at 1090-1150 s: the spike after it is not read.
    faults = [Fault("broker stopped", 1150, 1200)]
    samples = run_of(lambda t: 150 if t >= 1150 else 80)
    [verdict] = rss_growth(samples, "gateway", faults, RULES)
    assert verdict.ok is True


def test_a_restarted_process_is_a_new_series_with_its_own_warm_up() -> None:
    # Killed at 840 s: the first process was flat; the new one starts small and grows as
    # it warms up, and has 360 s, too few for a warm-up and two windows.
    samples = run_of(
        lambda t: 80 if t < 840 else 30 + (t - 840) / 10,
        pid=lambda t: 100 if t < 840 else 200,
    )
    assert [len(run) for run in series(samples, "gateway")] == [84, 37]
    first, second = rss_growth(samples, "gateway", FAULTS, RULES)
    assert first.ok is True
    assert first.subject == "gateway (pid 100, from 0 s)"
    assert second.ok is None
    assert "fewer than two windows" in second.detail


def test_a_process_missing_from_some_samples_stays_one_series() -> None:
    samples = run_of(lambda t: 80)
    for sample in samples[50:60]:
        sample.processes["gateway"] = None  # /proc unreadable for a while
    assert len(series(samples, "gateway")) == 1


def test_descriptors_must_not_grow_at_all() -> None:
    samples = run_of(lambda t: 80)
    [flat] = fd_growth(samples, "gateway", FAULTS, RULES)
    assert flat.ok is True
    for sample in samples:
        proc = sample.processes["gateway"]
        assert proc is not None
        if sample.t > 1100:
            sample.processes["gateway"] = Proc(proc.pid, proc.rss, 41)
    [grown] = fd_growth(samples, "gateway", FAULTS, RULES)
    assert grown.ok is False
    assert "40 descriptors in its first quiet minute after the warm-up, 41" in grown.detail


# -- consumer lag ----------------------------------------------------------------------------


def lag_run(lag: Callable[[float], int | None]) -> list[Sample]:
    """One group's lag every 10 s; None where the broker did not answer."""
    samples = []
    for t in range(0, 1201, 10):
        value = lag(t)
        samples.append(Sample(t=t, lag=None if value is None else {"g.fanout": value}))
    return samples


def test_lag_back_within_the_recovery_window_after_every_fault() -> None:
    def lag(t: float) -> int | None:
        if 360 <= t < 420:
            return None  # the broker is down: nothing read
        if 420 <= t < 440 or 600 <= t < 680 or 840 <= t < 870:
            return 500
        return 5

    verdicts = lag_recovery(lag_run(lag), FAULTS, RULES)
    assert [v.ok for v in verdicts] == [True, True, True]
    assert verdicts[1].subject == "g.fanout after MongoDB stopped"
    assert "steady 5, back at ≤ 25 20 s after the fault's end (peak 500)" in verdicts[1].detail


def test_lag_still_high_a_minute_after_a_fault_fails() -> None:
    verdicts = lag_recovery(lag_run(lambda t: 300 if 600 <= t < 800 else 5), FAULTS, RULES)
    assert [v.ok for v in verdicts] == [True, False, True]
    assert "NOT within 60 s" in verdicts[1].detail


def test_no_lag_read_after_a_fault_fails() -> None:
    verdicts = lag_recovery(lag_run(lambda t: None if t >= 360 else 5), FAULTS, RULES)
    assert [v.ok for v in verdicts] == [False, False, False]
    assert "no lag read" in verdicts[0].detail


def test_a_group_first_seen_after_the_first_fault_is_not_judged() -> None:
    verdicts = lag_recovery(lag_run(lambda t: 5 if t >= 500 else None), FAULTS, RULES)
    assert [v.ok for v in verdicts] == [None]


# -- collections -----------------------------------------------------------------------------


def collection_run(count: Callable[[float], float]) -> list[Sample]:
    return [
        Sample(t=t, collections={"deliveries": Coll(int(count(t)), int(count(t)) * 1000)})
        for t in range(0, 1201, 10)
    ]


def test_slope() -> None:
    assert slope([(0, 0), (10, 5), (20, 10)]) == 0.5
    assert slope([(5, 3)]) == 0.0


def test_a_collection_levelled_by_retention_passes() -> None:
    samples = collection_run(lambda t: 25 * min(t, 200))  # retention holds 200 s of it
    [verdict] = levelling(samples, 1200, RULES)
    assert verdict.ok is True


def test_a_collection_growing_all_along_fails() -> None:
    [verdict] = levelling(collection_run(lambda t: 25 * t), 1200, RULES)
    assert verdict.ok is False
    assert "+25.00 documents/s in the first third, +25.00/s in the last" in verdict.detail


def test_a_collection_that_never_grows_passes() -> None:
    [verdict] = levelling(collection_run(lambda t: 50), 1200, RULES)
    assert verdict.ok is True


def test_a_run_too_short_for_retention_is_not_judged() -> None:
    samples = [s for s in collection_run(lambda t: 25 * t) if s.t <= 180]
    [verdict] = levelling(samples, 180, RULES)
    assert verdict.ok is None


def test_a_collection_growing_by_design_is_named_not_judged() -> None:
    samples = collection_run(lambda t: 25 * t)
    [verdict] = levelling(samples, 1200, RULES, exempt={"deliveries": "one per message"})
    assert verdict.ok is None
    assert verdict.detail == "one per message"


def test_passed_fails_on_any_failure_only() -> None:
    samples = collection_run(lambda t: 25 * t)
    assert passed(levelling(samples, 180, RULES)) is True
    assert passed(levelling(samples, 1200, RULES)) is False


def test_samples_round_trip_through_json() -> None:
    sample = Sample(
        t=10.0,
        processes={"gateway": Proc(1, 2, 3), "delivery": None},
        lag={"g": 4},
        collections={"deliveries": Coll(5, 6)},
        pending=7,
        loop_lag={"gateway": 0.01, "delivery": None},
    )
    assert Sample.from_json(sample.to_json()) == sample
