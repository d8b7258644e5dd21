"""Benchmark "management" (issue #32): a workspace API key's `GET` of a list against the admin
token's, on the same data, in the same run.

One `hookhub serve delivery` process and `hookhub edge` in front of it, as under `make run`.
Through delivery's API (admin token), PER_WORKSPACE outgoing webhooks are created in
workspace A, then as many in workspace B, so the newest page of the whole collection is B's
and the key's narrowing has something to filter. A `read` key for A is issued through the
oauth service, which is then stopped.

- **ours:** `GET /api/outgoing-webhooks?limit=50` through the edge with the key: the request
  is confined to A (`shared.domain.tenancy`), the key found in the replica's fingerprint cache
  (`shared.domain.api_keys.KeyChecker`);
- **baseline:** the same list with the admin token asking for `?workspace_id=A`: the same
  MongoDB query, the same page.

Before anything is timed each is answered once: 200, 50 webhooks of A, the same ids (and the
key asking for `?workspace_id=B` still gets A's page). Then ROUNDS rounds alternate the two
(key, admin, admin, key, ...), each run `--warmup` then `--duration / ROUNDS` measured
seconds at `--concurrency` connections, so that the machine's drift hits both alike. The
table sums the rounds: req/s over the summed windows, p50 and p99 the median of the rounds'.
Target: ≥ 0.95 (the key check is a cached hash lookup, not a database read per request).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

import httpx

from bench.console import start_edge
from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    Infrastructure,
    Measurement,
    create_each,
    ratio_note,
)
from bench.loadgen import Target
from services.delivery.outgoing_webhooks.repository import COLLECTION

WORKSPACE = "ws_bench_mgmt_a"
OTHER_WORKSPACE = "ws_bench_mgmt_b"
PER_WORKSPACE = 300
PAGE = 50
ROUNDS = 4
TARGET = 0.95
IN_FLIGHT = 10
PATH = "/api/outgoing-webhooks"
INDEX = [("workspace_id", 1), ("_id", -1)]


def webhook(workspace_id: str, number: int) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "name": f"bench receiver {number}",
        "url": f"https://receiver{number}.example/hooks/hookhub",
        "events": ["message.created", "message.edited"],
    }


class ManagementList:
    name = "management"
    title = "a workspace key's list against the admin token's"

    def run(self, harness: Harness) -> BenchmarkResult:
        options = harness.options
        infrastructure = harness.infrastructure()
        admin_token = infrastructure.admin_token
        oauth = harness.start_service("oauth")
        key = _create_read_key(oauth.url, admin_token)
        oauth.stop()
        delivery = harness.start_service("delivery")
        for workspace_id in (WORKSPACE, OTHER_WORKSPACE):
            bodies = [webhook(workspace_id, n) for n in range(PER_WORKSPACE)]
            asyncio.run(create_each(delivery.url, admin_token, PATH, bodies, IN_FLIGHT))
        index_note = _index_note(infrastructure)
        edge = start_edge(harness, delivery)

        url = f"{edge.url}{PATH}?limit={PAGE}"
        with_key = Target(url, b"", {"Authorization": f"Bearer {key}"}, "GET")
        with_admin = Target(
            f"{url}&workspace_id={WORKSPACE}",
            b"",
            {"Authorization": f"Bearer {admin_token}"},
            "GET",
        )
        page_note = _same_page(with_key, with_admin)

        watch = [
            ("delivery", delivery.child),
            ("edge", edge.child),
            ("mongo", infrastructure.mongo),
        ]
        window = options.duration / ROUNDS
        key_runs: list[Measurement] = []
        admin_runs: list[Measurement] = []
        for number in range(ROUNDS):
            turns = [("key", with_key, key_runs), ("admin", with_admin, admin_runs)]
            for label, target, runs in turns if number % 2 == 0 else reversed(turns):
                runs.append(harness.load(label, target, watch, duration=window))
        ours = combined("workspace key (read, hhk_)", key_runs)
        base = combined("admin token, ?workspace_id=A", admin_runs)
        rounds = ", ".join(
            f"{k.rps:,.0f} / {a.rps:,.0f} ({k.rps / a.rps if a.rps else 0:.2f})"
            for k, a in zip(key_runs, admin_runs, strict=True)
        )
        per_list = ", ".join(
            f"{name} {_ms_per(ours, name)} / {_ms_per(base, name)}" for name, _ in watch
        )
        notes = [
            ratio_note(ours, base, TARGET),
            f"rounds, key / admin req/s (ratio): {rounds}",
            f"CPU ms per list, key / admin: {per_list}",
            page_note,
            f"{PER_WORKSPACE} outgoing webhooks in each of {WORKSPACE} (A) and "
            f"{OTHER_WORKSPACE} (B), B's created last; {index_note}",
        ]
        return BenchmarkResult(
            self.name,
            self.title,
            ours,
            base,
            notes,
            setup=(
                f"GET {PATH}?limit={PAGE} through the edge, {options.concurrency} connections, "
                f"{ROUNDS} alternating rounds of {window:g} s measured after "
                f"{options.warmup:g} s warm-up, {options.client} client"
            ),
        )


def combined(label: str, runs: list[Measurement]) -> Measurement:
    """One target's rounds as one measurement: req/s over the summed windows, latencies the
    median of the rounds' (the max the max), CPU averaged over the windows."""
    window = sum(run.window_s for run in runs)
    ok = sum(run.ok for run in runs)

    def median(values: list[float | None]) -> float | None:
        known = [value for value in values if value is not None]
        return round(statistics.median(known), 2) if known else None

    def cores(of: list[dict[str, float]]) -> dict[str, float]:
        weighted = [(each, run.window_s) for each, run in zip(of, runs, strict=True)]
        return {
            name: round(sum(each.get(name, 0.0) * s for each, s in weighted) / window, 2)
            for name in sorted(set().union(*of))
        }

    kinds: Counter[str] = Counter()
    for run in runs:
        kinds.update(run.error_kinds)
    return Measurement(
        label=label,
        rps=round(ok / window, 1) if window else 0.0,
        p50_ms=median([run.p50_ms for run in runs]),
        p90_ms=median([run.p90_ms for run in runs]),
        p99_ms=median([run.p99_ms for run in runs]),
        max_ms=max((run.max_ms for run in runs if run.max_ms is not None), default=None),
        ok=ok,
        errors=sum(run.errors for run in runs),
        error_kinds=dict(kinds),
        window_s=round(window, 3),
        cpu_cores=cores([run.cpu_cores for run in runs]),
        host_cores=cores([run.host_cores for run in runs]),
    )


def _ms_per(run: Measurement, process: str) -> str:
    cores = run.cpu_cores.get(process)
    return "-" if cores is None or not run.rps else f"{cores / run.rps * 1000:.1f}"


def _create_read_key(oauth_url: str, admin_token: str) -> str:
    response = httpx.post(
        f"{oauth_url}/api/workspaces/{WORKSPACE}/api-keys",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"name": "bench reader", "scopes": ["read"]},
        timeout=10,
    )
    if response.status_code != 201:
        raise BenchError(f"creating the API key: {response.status_code} {response.text}")
    key: str = response.json()["key"]
    return key


def _ids(client: httpx.Client, target: Target, url: str | None = None) -> list[str]:
    """The ids of the page `target` answers, checked: 200, a full page of A's webhooks."""
    answer = client.get(url or target.url, headers=target.headers)
    if answer.status_code != 200:
        raise BenchError(f"GET {url or target.url}: {answer.status_code} {answer.text[:300]}")
    rows = answer.json()["data"]
    if len(rows) != PAGE or any(row["workspace_id"] != WORKSPACE for row in rows):
        spaces = sorted({row["workspace_id"] for row in rows})
        raise BenchError(f"GET {url or target.url}: {len(rows)} rows of {spaces}, not {PAGE} of A")
    return [row["id"] for row in rows]


def _same_page(with_key: Target, with_admin: Target) -> str:
    """BenchError unless the key and the admin token get the same page of A's webhooks, and
    the key asking for B's gets A's all the same."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        key_ids = _ids(client, with_key)
        admin_ids = _ids(client, with_admin)
        narrowed = _ids(client, with_key, f"{with_key.url}&workspace_id={OTHER_WORKSPACE}")
        size = len(client.get(with_key.url, headers=with_key.headers).content)
    if key_ids != admin_ids or narrowed != key_ids:
        raise BenchError("the key's page and the admin token's page of A differ")
    return (
        f"checked before timing: both answer 200 with the same {PAGE} ids of A "
        f"({size:,}-byte page); the key asking for ?workspace_id=B gets A's page"
    )


def _index_note(infrastructure: Infrastructure) -> str:
    """BenchError unless the collection has the index the narrowed list walks."""
    with infrastructure.database() as db:
        keys = [list(info["key"]) for info in db[COLLECTION].index_information().values()]
    if INDEX not in keys:
        raise BenchError(f"no {INDEX} index on {COLLECTION}: {keys}")
    return f"`{COLLECTION}` has its (workspace_id, _id) index"


BENCHMARK = ManagementList()
