"""Benchmark "console-deliveries": the console's deliveries page, first page, with 100,000
deliveries in MongoDB.

One `hookhub serve delivery` process (it creates its indexes at start) and `hookhub edge`
in front of it, as under `make run`. 100,000 deliveries are then written to MongoDB the way
the delivery service writes them: documents made by its own `delivery_doc`, with the
fields an attempt's outcome sets (98 % `completed`, 2 % `failed`), inserted unordered in
batches of 1,000 (the fan-out's `insert_many`). They belong to 20 endpoints and 5 event
types, one event every 6 seconds over the last week.

For each view the console offers on its own (no filter; by endpoint; by status `failed`),
three runs, median in the table:

- **ours**: `GET /api/deliveries?limit=50` with that view's filter, with the admin token,
  through the edge: the call the page makes;
- **baseline**: the same query straight through PyMongo on the same database:
  `find(filter).sort("_id", -1).limit(51)`, what the repository asks MongoDB for;
- a note: the page itself in headless Chromium (a fresh browser context, the token already
  in its session storage): from navigation to the first row of the table rendered.

Target (issue #18): the first page in under a second.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient
from pymongo.collection import Collection

from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    Measurement,
    Server,
    wait_answering,
)
from services.delivery.deliveries.repository import DELIVERIES
from services.delivery.deliveries.service import delivery_doc
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.kernel.embedded import free_port
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document

DELIVERIES_COUNT = 100_000
ENDPOINTS = 20
EVENT_TYPES = 5
EVERY_SECONDS = 6  # between two events: 100,000 of them span a week
FAILED_EVERY = 50  # one delivery in 50 failed
BATCH = 1_000
RUNS = 3
PAGE = 50  # the console's page size
TARGET_S = 1.0
PAGE_WAIT_S = 30
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TOKEN_KEY = "hookhub.admin_token"  # noqa: S105 (a storage key: services/console/static/api.js)
# The list's query parameters that name a field otherwise in the documents.
API_FIELDS = {"webhook_id": "endpoint_id"}


def endpoint(number: int) -> EndpointSnapshot:
    return EndpointSnapshot(
        id=f"owh_bench{number:02d}",
        workspace_id="ws_bench_console",
        url="https://receiver.example/hook",
        events=("*",),
        enabled=True,
        retry_schedule=(5, 10, 20),
        timeout_seconds=30.0,
        rate_limit_per_second=None,
        max_concurrency=10,
    )


def finished_delivery(seq: int, endpoints: list[EndpointSnapshot], now: Any) -> Document:
    """Delivery `seq` as the service leaves it after its last attempt."""
    occurred_at = now - timedelta(seconds=(DELIVERIES_COUNT - seq) * EVERY_SECONDS)
    created_at = occurred_at + timedelta(milliseconds=40 + seq % 200)
    event_type = f"message.bench{seq % EVENT_TYPES}"
    body = (
        b'{"type":"'
        + event_type.encode()
        + b'","data":{"channel_id":"ch_bench","text":"'
        + b"x" * 400
        + b'"}}'
    )
    doc = delivery_doc(
        endpoint=endpoints[seq % len(endpoints)],
        event_id=f"evt_bench_{seq:06d}",
        event_type=event_type,
        occurred_at=occurred_at,
        body=body,
        now=created_at,
        owner="dlw_bench",
    )
    failed = seq % FAILED_EVERY == 0
    attempted_at = created_at + timedelta(milliseconds=30)
    doc.update(
        status="failed" if failed else "completed",
        attempts=4 if failed else 1,
        tries=4 if failed else 1,
        last_attempt_at=attempted_at,
        last_status_code=500 if failed else 200,
        last_error=None,
        updated_at=attempted_at,
        next_attempt_at=None,
        lease_owner=None,
    )
    if not failed:
        doc["completed_at"] = attempted_at
    return doc


def fill(mongo_uri: str, db_name: str) -> float:
    """Writes the deliveries; returns the seconds it took."""
    endpoints = [endpoint(n) for n in range(ENDPOINTS)]
    now = utcnow()
    client: MongoClient[Document] = MongoClient(mongo_uri, tz_aware=True)
    try:
        collection = client[db_name][DELIVERIES]
        started = time.perf_counter()
        for start in range(0, DELIVERIES_COUNT, BATCH):
            docs = [finished_delivery(seq, endpoints, now) for seq in range(start, start + BATCH)]
            collection.insert_many(docs, ordered=False)
        elapsed = time.perf_counter() - started
        count = collection.estimated_document_count()
    finally:
        client.close()
    if count != DELIVERIES_COUNT:
        raise BenchError(f"{count} deliveries in MongoDB, expected {DELIVERIES_COUNT}")
    return elapsed


def timed(runs: int, call: Callable[[], int]) -> tuple[list[float], int]:
    """Seconds of each run of `call`, and the rows the last one returned."""
    times, rows = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        rows = call()
        times.append(time.perf_counter() - started)
    return times, rows


def measurement(label: str, times: list[float], errors: int = 0) -> Measurement:
    median = statistics.median(times)
    return Measurement(
        label=label,
        rps=round(1 / median, 2) if median else 0.0,
        p50_ms=round(median * 1000, 1),
        p90_ms=None,
        p99_ms=None,
        max_ms=round(max(times) * 1000, 1),
        ok=len(times) - errors,
        errors=errors,
        error_kinds={"wrong_page": errors} if errors else {},
        window_s=round(sum(times), 3),
        cpu_cores={},
    )


async def page_times(origin: str, token: str, hash_route: str, runs: int) -> list[float | None]:
    """Navigation → the first row of the deliveries table rendered, in a fresh context;
    None for a run with no row within PAGE_WAIT_S (the page shows the API's error then)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    times: list[float | None] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            for _ in range(runs):
                context = await browser.new_context()
                await context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token!r})")
                page = await context.new_page()
                started = time.perf_counter()
                await page.goto(f"{origin}/#/{hash_route}")
                try:
                    await page.locator(".pager-body table tbody tr").first.wait_for(
                        timeout=PAGE_WAIT_S * 1000
                    )
                    times.append(time.perf_counter() - started)
                except PlaywrightTimeout:
                    times.append(None)
                await context.close()
        finally:
            await browser.close()
    return times


class ConsoleDeliveries:
    name = "console-deliveries"
    title = "the console's deliveries page, first page"

    def run(self, harness: Harness) -> list[BenchmarkResult]:
        infrastructure = harness.infrastructure()
        delivery = harness.start_service("delivery")
        edge = start_edge(harness, delivery)
        filled_in = fill(infrastructure.mongo_uri, infrastructure.mongo_db)
        headers = {"Authorization": f"Bearer {infrastructure.admin_token}"}
        by_endpoint = endpoint(3).id
        views: list[tuple[str, str, dict[str, str]]] = [
            ("no filter", "deliveries", {}),
            ("by endpoint", f"deliveries?webhook_id={by_endpoint}", {"webhook_id": by_endpoint}),
            ("by status", "deliveries?status=failed", {"status": "failed"}),
        ]
        filled_note = (
            f"{DELIVERIES_COUNT:,} deliveries written in {filled_in:.1f} s "
            f"({DELIVERIES_COUNT / filled_in:,.0f}/s, batches of {BATCH:,})"
        )
        client: MongoClient[Document] = MongoClient(infrastructure.mongo_uri, tz_aware=True)
        collection = client[infrastructure.mongo_db][DELIVERIES]
        try:
            with httpx.Client(
                base_url=edge.url, headers=headers, timeout=120, trust_env=False
            ) as api:
                return [
                    self._view(api, collection, view, infrastructure.admin_token, filled_note)
                    for view in views
                ]
        finally:
            client.close()

    def _view(
        self,
        api: httpx.Client,
        collection: Collection[Document],
        view: tuple[str, str, dict[str, str]],
        token: str,
        filled_note: str,
    ) -> BenchmarkResult:
        title, hash_route, params = view
        # What the repository asks MongoDB for, and the page the API must answer with.
        query: Document = {API_FIELDS.get(key, key): value for key, value in params.items()}
        expected = [
            d["_id"] for d in collection.find(query, {"_id": 1}).sort("_id", -1).limit(PAGE)
        ]
        wrong = 0

        def call_api() -> int:
            nonlocal wrong
            answer = api.get("/api/deliveries", params={"limit": PAGE, **params})
            rows = answer.json()["data"] if answer.status_code == 200 else []
            if [row["id"] for row in rows] != expected:
                wrong += 1
            return len(rows)

        def call_mongo() -> int:
            return len(collection.find(query).sort("_id", -1).limit(PAGE + 1).to_list())

        ours_times, ours_rows = timed(RUNS, call_api)
        base_times, base_rows = timed(RUNS, call_mongo)
        notes = [
            self._page_note(str(api.base_url).rstrip("/"), token, hash_route),
            f"runs (s): API {_list(ours_times)} ({ours_rows} rows), "
            f"PyMongo {_list(base_times)} ({base_rows} documents)",
            _target(statistics.median(ours_times), "the API call"),
            filled_note,
        ]
        return BenchmarkResult(
            f"{self.name}-{title.replace(' ', '-')}",
            f"{self.title}, {title}",
            measurement("hookhub API through the edge", ours_times, wrong),
            measurement("PyMongo find().sort().limit()", base_times),
            notes=notes,
            setup=(
                f"{DELIVERIES_COUNT:,} deliveries, {ENDPOINTS} endpoints, "
                f"page of {PAGE}, median of {RUNS} runs"
            ),
            unit="pages/s",
            compare="latency",
        )

    def _page_note(self, origin: str, token: str, hash_route: str) -> str:
        if not CHROMIUM.exists():
            return f"the page in Chromium: not measured ({CHROMIUM} not found)"
        runs = asyncio.run(page_times(origin, token, hash_route, RUNS))
        times = [t for t in runs if t is not None]
        failed = len(runs) - len(times)
        shown = ", ".join("no row" if t is None else f"{t:.3f}" for t in runs)
        if failed:
            return (
                f"the page in headless Chromium, navigation → first row: runs (s) {shown}; "
                f"{failed} of {len(runs)} showed no row within {PAGE_WAIT_S} s: target NOT MET"
            )
        median = statistics.median(times)
        return (
            f"the page in headless Chromium, navigation → first row: median "
            f"{median * 1000:,.0f} ms, runs (s) {shown}; {_target(median, 'the page')}"
        )


def start_edge(harness: Harness, delivery: Server) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "services.cli", "edge", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--upstream", f"delivery={delivery.url}"]
    server = Server("edge", f"http://127.0.0.1:{port}", harness.start_process("edge", argv))
    # Not `/readyz`: the edge's aggregates every service's, and only delivery runs here.
    wait_answering(server.child, server.url + "/healthz", "edge")
    return server


def _list(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


def _target(seconds: float, what: str) -> str:
    verdict = "met" if seconds < TARGET_S else "NOT MET"
    return f"target: {what} under {TARGET_S:g} s ({seconds * 1000:,.0f} ms, {verdict})"


BENCHMARK = ConsoleDeliveries()
