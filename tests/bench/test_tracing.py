"""The tracing benchmark's configurations and verdicts (bench/tracing.py)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from bench.harness import BenchError, Measurement, Server
from bench.tracing import (
    DISABLED,
    EXPORTING,
    NO_EXPORTER,
    SAMPLED,
    Run,
    check_environment,
    environments,
    result,
    sequence,
)
from shared.kernel.embedded import ChildProcess


def _measured(rps: float) -> Measurement:
    return Measurement(
        label="x",
        rps=rps,
        p50_ms=None,
        p90_ms=None,
        p99_ms=None,
        max_ms=None,
        ok=1000,
        errors=0,
        error_kinds={},
        window_s=1.0,
        cpu_cores={},
    )


def test_the_configurations_set_otel_in_full_and_only_exporting_takes_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    envs = environments("http://127.0.0.1:9", {"OTEL_BSP_SCHEDULE_DELAY": "100", "HOOKHUB_X": "1"})
    blank = {"OTEL_EXPORTER_OTLP_PROTOCOL": "", "OTEL_BSP_SCHEDULE_DELAY": ""}
    assert envs[DISABLED] == {**blank, "OTEL_SDK_DISABLED": "true"}
    assert envs[NO_EXPORTER] == blank
    assert envs[EXPORTING] == {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    assert envs[SAMPLED] == {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    }


def test_the_order_of_runs_needs_the_baseline_and_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_TRACING_RUNS", raising=False)
    assert sequence() == [
        *(DISABLED, NO_EXPORTER, SAMPLED, EXPORTING),
        *(EXPORTING, SAMPLED, NO_EXPORTER, DISABLED),
    ]
    for wrong in ("exporting,no-exporter", "disabled,disabled", "disabled,exporting,x"):
        monkeypatch.setenv("BENCH_TRACING_RUNS", wrong)
        with pytest.raises(BenchError):
            sequence()


def test_a_run_that_exported_nothing_cannot_pass() -> None:
    quiet = [Run(DISABLED, _measured(1000)), Run(NO_EXPORTER, _measured(990))]
    silent = result("t", "t", [*quiet, Run(EXPORTING, _measured(950))], [])
    assert silent.ratio == pytest.approx(0.95)
    assert silent.flagged and silent.ours.error_kinds == {"no_spans_exported": 1}
    assert "NO SPAN: NOT MET" in silent.notes[0]
    assert silent.notes[1] == "no-exporter (#60): target ratio ≥ 0.97: 0.99, met"

    spans = Counter({"hookhub-gateway": 3000})
    tenth = Counter({"hookhub-gateway": 300})
    exported = result(
        "t",
        "t",
        [*quiet, Run(EXPORTING, _measured(740), spans), Run(SAMPLED, _measured(960), tenth)],
        [],
    )
    assert not exported.flagged
    assert exported.notes[:3] == [
        "exporting (#60): target ratio ≥ 0.75: 0.74, NOT MET",
        "sampled (#60): target ratio ≥ 0.95: 0.96, met",
        "no-exporter (#60): target ratio ≥ 0.97: 0.99, met",
    ]
    assert [run.label for run in exported.runs] == [
        "tracing, exporting (always_on)",
        "tracing, exporting 0.1 (parentbased_traceidratio)",
        "tracing, no exporter",
        "OTEL_SDK_DISABLED=true",
    ]
    assert "exporting 3,000 (hookhub-gateway 3,000) for 1,000 measured" in exported.notes[3]
    assert "sampled 300 (hookhub-gateway 300)" in exported.notes[3]

    unsampled = result("t", "t", [*quiet, Run(SAMPLED, _measured(960))], [])
    assert unsampled.flagged and unsampled.ours.error_kinds == {"no_spans_exported": 1}

    leaked = result("t", "t", [*quiet[:1], Run(NO_EXPORTER, _measured(990), spans)], [])
    assert leaked.flagged and leaked.ours.error_kinds == {"spans_exported": 3000}


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_environment_is_read_back_from_the_process() -> None:
    env = {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_SAMPLER": ""}
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_SAMPLER": "", "PATH": "/usr/bin"},
    )
    try:
        # Until it runs: between fork and exec, /proc shows the parent's environment.
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        server = Server("svc", "http://127.0.0.1:9", ChildProcess("svc", process, None))
        check_environment(server, env)
        with pytest.raises(BenchError, match="not"):
            check_environment(server, {"OTEL_SDK_DISABLED": ""})
    finally:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        process.wait(10)
        process.stdout.close()
