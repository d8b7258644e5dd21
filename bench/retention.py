"""Benchmark "retention": incoming webhooks while retention removes a backlog (SPEC §14).

One gateway takes Slack-style incoming webhooks (as `bench.incoming`) twice: first alone,
then after 100,000 deliveries that ended 40 days ago (each with its one attempt in its
document, as the service writes a delivery done at its first attempt) were written,
while a delivery service started then removes them (`HOOKHUB_DELIVERY_RETENTION=30d`): as
on the first start of a release with retention, or after the retention was shortened.
The ratio is the p99 during the removal over the p99 before it: at most 1.5. The removal
rate on this MongoDB is reported beside it: from the delivery service's readiness to the
last of the backlog gone.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import httpx

from bench.harness import BenchError, BenchmarkResult, Harness, Infrastructure, Server
from bench.incoming import BODY, HEADERS, create_webhook, post_once
from bench.loadgen import Target
from services.delivery.deliveries import repository as delivery_repository
from shared.kernel.ids import utcnow

BACKLOG = 100_000
_INSERT_BATCH = 5_000
DELIVERY_ENV = {
    "HOOKHUB_DELIVERY_RETENTION": "30d",
    "HOOKHUB_RETENTION_INTERVAL_SECONDS": "2",
}
_REMOVED = re.compile(r'^hookhub_retention_removed_total\{collection="deliveries"\} (\S+)$', re.M)


class RetentionBacklog:
    name = "retention"
    title = "incoming webhooks while retention removes 100,000 ended deliveries"

    def run(self, harness: Harness) -> BenchmarkResult:
        infrastructure = harness.infrastructure()
        gateway = harness.start_service("gateway")
        url = create_webhook(gateway.url, infrastructure.admin_token)
        post_once(url)
        target = Target(url, BODY, HEADERS)
        watch = [
            ("gateway", gateway.child),
            ("kafka", infrastructure.broker),
            ("mongo", infrastructure.mongo),
        ]
        before = harness.load("before the backlog", target, watch=watch)

        seeded = _seed(infrastructure)
        delivery = harness.start_service("delivery", DELIVERY_ENV)
        started = time.monotonic()  # ready: its indexes are there, and removal begins
        during = harness.load(
            "while removing the backlog", target, watch=[*watch, ("delivery", delivery.child)]
        )
        removed_in_window = _removed(delivery)
        still = "still removing" if removed_in_window < BACKLOG else "DONE BEFORE THE WINDOW ENDED"
        took = _until_removed(delivery, BACKLOG) - started
        notes = [
            f"backlog: {BACKLOG:,} deliveries ended 40 days ago, each with its one attempt in "
            "its document, "
            f"written in {seeded:.1f} s; retention 30 d, a pass every 2 s, batches of 1,000",
            f"removed by the end of the measured window: {removed_in_window:,.0f} ({still})",
            f"removal on this MongoDB: {BACKLOG:,} deliveries in {took:.1f} s from the delivery "
            f"service's readiness ({BACKLOG / took:,.0f} deliveries/s, sharing the database "
            "with the load; each also looks for later attempts in delivery_attempts)",
            "target: p99 while removing at most 1.5x the p99 before",
        ]
        return BenchmarkResult(
            self.name,
            self.title,
            during,
            before,
            notes,
            compare="latency",
        )


def _seed(infrastructure: Infrastructure) -> float:
    """The backlog, written straight to the database as the delivery service writes it;
    seconds it took."""
    started = time.monotonic()
    ended = utcnow() - timedelta(days=40)
    with infrastructure.database() as db:
        # The indexes a running install has (the delivery service makes them at its start).
        for index in delivery_repository.INDEXES:
            db[index.collection].create_index(list(index.keys), **dict(index.options))
        for first in range(0, BACKLOG, _INSERT_BATCH):
            numbers = range(first, min(first + _INSERT_BATCH, BACKLOG))
            db.deliveries.insert_many(
                [
                    {
                        "_id": f"dlv_backlog_{n:07d}",
                        "workspace_id": "ws_bench",
                        "endpoint_id": "ep_bench",
                        "event_id": f"evt_{n}",
                        "event_type": "message.created",
                        "body": BODY,
                        "status": "completed",
                        "attempts": 1,
                        "next_attempt_at": None,
                        "lease_owner": None,
                        "created_at": ended,
                        "updated_at": ended,
                        "ended_at": ended + timedelta(milliseconds=n),
                        # Its one attempt, in its document as the service keeps a first one.
                        "first_attempt": {"attempt": 1, "at": ended, "status_code": 200},
                    }
                    for n in numbers
                ],
                ordered=False,
            )
    return time.monotonic() - started


def _removed(delivery: Server) -> float:
    answer = httpx.get(delivery.url + "/metrics", timeout=10)
    found = _REMOVED.search(answer.text)
    return float(found.group(1)) if found else 0.0


def _until_removed(delivery: Server, count: int, timeout: float = 900.0) -> float:
    """When (monotonic) `count` deliveries had been removed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _removed(delivery) >= count:
            return time.monotonic()
        time.sleep(0.2)
    raise BenchError(f"the backlog was not removed within {timeout:.0f} s")


BENCHMARK = RetentionBacklog()
