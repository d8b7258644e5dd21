"""`python -m bench` (`make bench`): runs the registered benchmarks and reports them.

A benchmark is a module exposing an object with `name`, `title` and
`run(harness) -> BenchmarkResult` (or a list of them, one table each; see
`bench.harness.Benchmark`); adding one is adding it to `BENCHMARKS`, or to `ON_REQUEST` for
one that runs only when named with `--only` (the 20-minute soak; `tracing`, which runs
`incoming`, `github` and `delivery` six times over).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bench import (
    chatops,
    console,
    delivery,
    delivery_mix,
    destinations,
    discord,
    event_types,
    github,
    importer,
    incoming,
    management,
    networks,
    notifications,
    retention,
    soak,
    sources,
    sync,
    tracing,
)
from bench.harness import (
    BenchError,
    Benchmark,
    BenchmarkResult,
    Harness,
    Options,
    render,
    write_results,
)
from shared.kernel.embedded import EmbeddedError

BENCHMARKS: list[Benchmark] = [
    incoming.BENCHMARK,
    github.BENCHMARK,
    sources.BENCHMARK,
    delivery.BENCHMARK,
    delivery_mix.BENCHMARK,
    sync.BENCHMARK,
    networks.BENCHMARK,
    notifications.BENCHMARK,
    discord.BENCHMARK,
    importer.BENCHMARK,
    console.BENCHMARK,
    management.BENCHMARK,
    event_types.BENCHMARK,
    retention.BENCHMARK,
    chatops.BENCHMARK,
    destinations.BENCHMARK,
]
# Not in a plain `make bench`: only with `--only <name>`.
ON_REQUEST: list[Benchmark] = [soak.BENCHMARK, tracing.BENCHMARK]


def _parse_env(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
    return name, value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [benchmark.name for benchmark in BENCHMARKS + ON_REQUEST]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="hookhub throughput against a bare FastAPI baseline, same machine, same run.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        help=f"measured seconds per load run (10); the soak's length ({soak.DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds before each window (2)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=50, help="connections, one request in flight each (50)"
    )
    parser.add_argument(
        "--only", action="append", choices=names, metavar="NAME", help=f"one of {names}; repeatable"
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: raw asyncio HTTP/1.1 (default) or httpx, to cross-check",
    )
    parser.add_argument(
        "--set",
        dest="service_env",
        action="append",
        type=_parse_env,
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the hookhub services, e.g. HOOKHUB_LOG_LEVEL=WARNING",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the temporary directory with process logs"
    )
    parser.add_argument(
        "--import-messages",
        action="append",
        type=int,
        metavar="N",
        help="import: the export sizes in messages, repeatable (100000 and 1000000)",
    )
    parser.add_argument(
        "--import-source",
        action="append",
        choices=importer.KINDS,
        metavar="SOURCE",
        help=f"import: the export sources, repeatable (all: {', '.join(importer.KINDS)})",
    )
    parser.add_argument(
        "--network",
        action="append",
        choices=sorted(networks.NETWORKS),
        metavar="NETWORK",
        help=f"sync-networks: the networks, repeatable (all: {', '.join(networks.NETWORKS)})",
    )
    parser.add_argument(
        "--network-events",
        type=int,
        metavar="N",
        help=f"sync-networks: events per measurement ({networks.EVENTS:,})",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if (
        (args.duration is not None and args.duration <= 0)
        or args.warmup < 0
        or args.concurrency < 1
    ):
        parser.error("--duration and --concurrency must be positive, --warmup not negative")
    if args.network_events is not None and args.network_events < 1_000:
        parser.error("--network-events: at least 1000")
    if args.import_messages and min(args.import_messages) < 1_000:
        parser.error("--import-messages: at least 1000 (200 conversations)")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run the way Ctrl-C does: through `finally`


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for benchmark in BENCHMARKS:
            print(f"{benchmark.name}\t{benchmark.title}")
        for benchmark in ON_REQUEST:
            print(f"{benchmark.name}\t{benchmark.title} (only with --only {benchmark.name})")
        return 0
    options = Options(
        duration=10.0 if args.duration is None else args.duration,
        soak_seconds=soak.DEFAULT_SECONDS if args.duration is None else args.duration,
        warmup=args.warmup,
        concurrency=args.concurrency,
        client=args.client,
        service_env=dict(args.service_env),
        keep_logs=args.keep_logs,
    )
    only = set(args.only or ())
    if sync.BENCHMARK.name in only:  # `--only sync`: Slack's tables and every network's
        only.add(networks.BENCHMARK.name)
    selected = [b for b in BENCHMARKS + ON_REQUEST if b.name in only]
    selected = selected or BENCHMARKS
    if args.import_messages:
        importer.BENCHMARK.sizes = tuple(args.import_messages)
    if args.import_source:
        importer.BENCHMARK.kinds = tuple(args.import_source)
    if args.network:
        networks.BENCHMARK.only = tuple(args.network)
    if args.network_events:
        networks.BENCHMARK.events = args.network_events
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background
    # job of a non-interactive shell); SIGTERM does the same, so both stop every process.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    results: list[BenchmarkResult] = []
    try:
        with Harness(options) as harness:
            for benchmark in selected:
                print(f"bench: running {benchmark.name} ({benchmark.title})…", flush=True)
                outcome = benchmark.run(harness)
                for result in outcome if isinstance(outcome, list) else [outcome]:
                    results.append(result)
                    print("\n" + render(result, options) + "\n", flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; every process started was stopped", file=sys.stderr)
        return 130
    except (BenchError, EmbeddedError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if results:
            path = write_results(results, options)
            print(f"bench: results written to {path}")
    if any(result.flagged for result in results):
        print("bench: FLAGGED: some requests failed; the figures above are not clean", flush=True)
        return 1
    return 0
