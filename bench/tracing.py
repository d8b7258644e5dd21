"""Benchmark "tracing" (issue #50): what OpenTelemetry tracing costs the gateway and delivery.

`incoming`, `github` and the throughput part of `delivery` (their own code: the same
bodies, load and sink), each run several times in one benchmark with the services'
environment in one of three configurations:

- `disabled`: `OTEL_SDK_DISABLED=true`, tracing off entirely: the baseline;
- `no-exporter`: no `OTEL_*` variable (nothing exported, the trace context still carried);
- `sampled`: `OTEL_EXPORTER_OTLP_ENDPOINT` of a local collector (`tests.otlp_receiver`,
  its own process, counting the spans it receives and keeping none),
  `OTEL_TRACES_SAMPLER=parentbased_traceidratio` and `OTEL_TRACES_SAMPLER_ARG=0.1`: a
  tenth of the traces recorded and exported, as operators run a gateway (#60);
- `exporting`: the same collector and `OTEL_TRACES_SAMPLER=always_on`: every request and
  event traced and exported.

The three define the services' `OTEL_*` environment in full: any `OTEL_*` variable of the
shell or of `--set` is blanked (an empty variable counts as unset), but `--set`'s are given
to `exporting` (to try `OTEL_BSP_*` settings, say). Each service process's environment is
read back from /proc once it runs. `BENCH_TRACING_RUNS` (default
`disabled,no-exporter,sampled,exporting,exporting,sampled,no-exporter,disabled`, so that a
drift of the machine weighs on each alike) is the order of the runs, each benchmark in turn;
a table per benchmark gives each configuration's mean. For each configuration the
collector's span count before and after its runs (each read once the process stopped, its
exporter flushed) says what it exported: the sampled and exporting runs must have sent
spans, the others none.

Targets (#60, each benchmark, of disabled): exporting (always on) ≥ 0.75, sampled ≥ 0.95,
no-exporter ≥ 0.97 (#50 asked exporting ≥ 0.85).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench import github, incoming
from bench.delivery import SINK_PATH, _create_endpoint, chat_event, deliver_backlog, start_sink
from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    Measurement,
    Server,
    mean_of,
    ratio_note,
    wait_answering,
)
from bench.loadgen import SEQ
from shared.kernel.embedded import ChildProcess, free_port
from shared.kernel.envelopes import Topic

DISABLED, NO_EXPORTER = "disabled", "no-exporter"
SAMPLED, EXPORTING = "sampled", "exporting"
SAMPLE_RATIO = "0.1"
LABELS = {
    DISABLED: "OTEL_SDK_DISABLED=true",
    NO_EXPORTER: "tracing, no exporter",
    SAMPLED: f"tracing, exporting {SAMPLE_RATIO} (parentbased_traceidratio)",
    EXPORTING: "tracing, exporting (always_on)",
}
RUNS = (DISABLED, NO_EXPORTER, SAMPLED, EXPORTING, EXPORTING, SAMPLED, NO_EXPORTER, DISABLED)
TARGETS = {EXPORTING: 0.75, SAMPLED: 0.95, NO_EXPORTER: 0.97}  # #60's
EXPORTS = (SAMPLED, EXPORTING)  # the configurations with a collector
# delivery's backlog a run: 1,000 events a second of --duration (10,000 at the default, as
# `delivery`), at least 2,000.
EVENTS_PER_SECOND = 1_000
MIN_EVENTS = 2_000


@dataclass
class Collector:
    """The local OpenTelemetry collector: `tests.otlp_receiver` in counting mode."""

    url: str
    child: ChildProcess

    def spans(self) -> Counter[str]:
        """The spans received so far, by service.name."""
        answer = httpx.get(self.url + "/counts", timeout=10, trust_env=False)
        return Counter(answer.json()["services"])


def start_collector(harness: Harness) -> Collector:
    port = free_port()
    argv = [sys.executable, "-m", "tests.otlp_receiver", "--port", str(port)]
    collector = Collector(f"http://127.0.0.1:{port}", harness.start_process("collector", argv))
    wait_answering(collector.child, collector.url + "/counts", "collector")
    return collector


def environments(endpoint: str, service_env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Each configuration's OTEL_* variables for the services (see the docstring)."""
    names = {name for name in (*os.environ, *service_env) if name.startswith("OTEL_")}
    blank = dict.fromkeys(names, "")
    tuning = {name: value for name, value in service_env.items() if name.startswith("OTEL_")}
    exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_on"}
    sampled = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": SAMPLE_RATIO,
    }
    return {
        DISABLED: {**blank, "OTEL_SDK_DISABLED": "true"},
        NO_EXPORTER: blank,
        SAMPLED: {**blank, **tuning, **sampled},
        EXPORTING: {**blank, **tuning, **exporting},
    }


def sequence() -> list[str]:
    runs = os.environ.get("BENCH_TRACING_RUNS", ",".join(RUNS)).split(",")
    if DISABLED not in runs or not set(runs) - {DISABLED} or not set(runs) <= set(LABELS):
        raise BenchError(f"BENCH_TRACING_RUNS: {DISABLED} and one of {list(TARGETS)}, not {runs}")
    return runs


def check_environment(server: Server, env: dict[str, str]) -> None:
    """BenchError unless the process's non-empty OTEL_* variables are `env`'s (Linux)."""
    try:
        raw = Path(f"/proc/{server.child.process.pid}/environ").read_bytes()
    except OSError:
        return
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    seen = {k.decode(): v.decode() for k, _, v in pairs if k.startswith(b"OTEL_") and v}
    wanted = {name: value for name, value in env.items() if value}
    if seen != wanted:
        raise BenchError(f"{server.name}'s OTEL_* environment is {seen}, not {wanted}")


@dataclass
class Run:
    config: str
    measurement: Measurement
    spans: Counter[str] = field(default_factory=Counter)


Env = dict[str, str]
# One run (its index, configuration and environment): the service started and measured,
# still running.
Measure = Callable[[int, str, Env], tuple[Measurement, Server]]


def run_all(collector: Collector, envs: dict[str, dict[str, str]], measure: Measure) -> list[Run]:
    runs = []
    for index, config in enumerate(sequence()):
        before = collector.spans()
        measurement, server = measure(index, config, envs[config])
        check_environment(server, envs[config])
        server.stop()  # its exporter flushes as it stops
        runs.append(Run(config, measurement, collector.spans() - before))
    return runs


def result(
    name: str, title: str, runs: list[Run], notes: list[str], **fields: Any
) -> BenchmarkResult:
    """Each configuration's mean; the others against disabled, with the targets and what
    the collector received (ours: exporting's, else sampled's, else no-exporter's)."""
    by_config = {
        config: [run for run in runs if run.config == config]
        for config in LABELS
        if any(run.config == config for run in runs)
    }
    means: dict[str, Measurement] = {}
    spans: dict[str, Counter[str]] = {}
    for config, of in by_config.items():
        label = LABELS[config] + (f" (mean of {len(of)})" if len(of) > 1 else "")
        means[config] = mean_of(label, [run.measurement for run in of])
        spans[config] = sum((run.spans for run in of), Counter())
    verdicts = []
    for config, target in TARGETS.items():
        if config not in means:
            continue
        verdict = f"{config} (#60): {ratio_note(means[config], means[DISABLED], target)}"
        exported = spans[config].total()
        if config in EXPORTS and not exported:
            means[config].error_kinds["no_spans_exported"] = 1
            verdict += "; the collector received NO SPAN: NOT MET"
        if config not in EXPORTS and exported:
            means[config].error_kinds["spans_exported"] = exported
        means[config].errors = sum(means[config].error_kinds.values())
        verdicts.append(verdict)
    received = "; ".join(
        f"{config} {counts.total():,}"
        + (f" ({_by_service(counts)}) for {means[config].ok:,} measured" if counts else "")
        for config, counts in spans.items()
    )
    if any(spans.values()):
        received += " (the spans include the warm-ups')"
    ours = next(means[config] for config in (EXPORTING, SAMPLED, NO_EXPORTER) if config in means)
    return BenchmarkResult(
        name,
        title,
        ours,
        means[DISABLED],
        notes=[
            *verdicts,
            f"spans at the collector: {received}",
            "runs in order: "
            + ", ".join(f"{run.config} {run.measurement.rps:,.0f}" for run in runs),
            *notes,
        ],
        others=[
            means[config]
            for config in (SAMPLED, NO_EXPORTER)
            if config in means and means[config] is not ours
        ],
        **fields,
    )


def _by_service(counts: Counter[str]) -> str:
    return ", ".join(f"{service} {n:,}" for service, n in counts.most_common())


class Tracing:
    name = "tracing"
    title = "OpenTelemetry tracing: exporting all, a tenth and nothing, against disabled"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        sequence()  # a wrong BENCH_TRACING_RUNS fails before anything starts
        infrastructure = harness.infrastructure()
        collector = start_collector(harness)
        envs = environments(collector.url, harness.options.service_env)
        watch = [("collector", collector.child)]
        token = infrastructure.admin_token

        # Delivery first, each run on topics of its own: the gateway's runs fill
        # hookhub.provider.events, which a delivery process's provider fan-out would read
        # through during its run (its spans a load of their own in the exporting ones).
        sink = start_sink(harness)
        egress = {"HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8"}
        count = max(MIN_EVENTS, round(EVENTS_PER_SECOND * harness.options.duration))

        def delivery_run(
            index: int, config: str, env: dict[str, str]
        ) -> tuple[Measurement, Server]:
            # A database and topics of its own each run: the embedded MongoDB and broker
            # slow as they fill (six runs sharing them went from 1,508 to 544 deliveries/s,
            # more drift than the configurations differ by).
            own = {
                "HOOKHUB_MONGO_DB": f"{infrastructure.mongo_db}_d{index}",
                "HOOKHUB_TOPIC_NAMESPACE": f"{infrastructure.topic_namespace}-d{index}",
            }
            setup = harness.start_service(
                "delivery", env={**egress, **envs[DISABLED], **own}, name=f"delivery-setup{index}"
            )
            _create_endpoint(setup.url, token, sink.url + SINK_PATH)
            setup.stop()
            topic = f"{own['HOOKHUB_TOPIC_NAMESPACE']}.{Topic.CHAT_EVENTS}"
            events = [chat_event(harness.run_id, f"tracing{index}", seq) for seq in range(count)]
            delivery, window, _ = deliver_backlog(
                harness,
                sink,
                topic,
                events,
                {**egress, **env, **own},
                name=f"delivery-{config}",
                collector=collector.child.process.pid,
            )
            return window.measurement(LABELS[config], from_seq=0), delivery

        delivery_runs = run_all(collector, envs, delivery_run)
        sink.child.stop()

        gateway = harness.start_service("gateway", env=envs[DISABLED], name="gateway-setup")
        path = urlsplit(incoming.create_webhook(gateway.url, token)).path
        gateway.stop()

        def incoming_run(
            index: int, config: str, env: dict[str, str]
        ) -> tuple[Measurement, Server]:
            gateway = harness.start_service("gateway", env=env, name=f"gateway-{config}")
            url = gateway.url + path
            return incoming.measure(harness, gateway, url, LABELS[config], watch), gateway

        incoming_runs = run_all(collector, envs, incoming_run)

        body = github.PAYLOAD.read_bytes()
        secret = os.urandom(16).hex()
        oauth = harness.start_service("oauth", env=envs[DISABLED], name="oauth-setup")
        integration_id = github.github_integration(oauth.url, token, secret)
        oauth.stop()
        headers = github.signed_headers(body, "push", SEQ.decode(), secret)

        def github_run(index: int, config: str, env: Env) -> tuple[Measurement, Server]:
            gateway = harness.start_service("gateway", env=env, name=f"gateway-{config}")
            measured = github.measure(
                harness, gateway, integration_id, body, headers, LABELS[config], watch
            )
            return measured, gateway

        github_runs = run_all(collector, envs, github_run)

        collector.child.stop()

        def named(config: str) -> str:
            return ", ".join(f"{k}={v}" for k, v in envs[config].items() if v)

        configs = (
            f"{DISABLED}: OTEL_SDK_DISABLED=true; {NO_EXPORTER}: no OTEL_* variable; "
            f"{SAMPLED}: {named(SAMPLED)}; {EXPORTING}: {named(EXPORTING)} "
            "(tests.otlp_receiver, counting)"
        )
        return [
            result("tracing-incoming", "incoming webhooks, tracing", incoming_runs, [configs]),
            result("tracing-github", "verified GitHub webhooks, tracing", github_runs, [configs]),
            result(
                "tracing-delivery",
                "deliveries from hookhub.chat.events, tracing",
                delivery_runs,
                [configs],
                setup=f"{count:,} pre-published events a run, first → last request at the sink",
                unit="deliveries/s",
            ),
        ]


BENCHMARK = Tracing()
