"""What each MongoDB write and index costs on the embedded server (`python -m bench.mongo_costs`).

For a collection shaped like `deliveries` (documents from the delivery service's own
`delivery_doc`, a ~1.1 KB webhook body each) and one like `delivery_attempts` (the
benchmark's `attempt_doc`, field for field the service's), each fresh, first with no index
but `_id` and then with the delivery service's indexes of that collection
(`services/delivery/deliveries/repository.py`) added one at a time, in the order it
declares them, it measures per document:

- **insert**: `insert_many` of 500 documents (ordered=False), as a batched writer does;
- **update**: `update_one` by `_id`, one at a time: for a delivery, the `$set` of an
  attempt's outcome (status, counts, times, the schedule cleared: the dispatcher's); for
  an attempt, the `$set` of its answer (status code, headers, body, duration, error);
- **delete**: `delete_many` by `_id` of 500 at a time, as retention removes.

Each is reported as the client's wall time (one operation in flight, PyMongo, loopback)
and the server's CPU time (its process's, from /proc), in µs per document: the
difference between two rows is what that index costs each write. The server is started on a
free port in a temporary directory, its storage on disk as the benchmarks' is (`--uri`
measures a running server instead, wall time only). About 45 s with the
defaults; not part of `make bench`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection

from bench.harness import _cpu_times
from bench.sender import WORKSPACE, Reply, attempt_doc, event_id, webhook_request
from services.delivery.deliveries.repository import ATTEMPTS, DELIVERIES, INDEXES
from services.delivery.deliveries.service import delivery_doc
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.kernel.embedded import free_port, start_mongo
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Index

BATCH = 500
ENDPOINT = EndpointSnapshot(
    id="whk_bench_costs",
    workspace_id=WORKSPACE,
    url="http://127.0.0.1:9/hooks/bench",
    events=("*",),
    enabled=True,
    retry_schedule=(5, 300, 1800),
    timeout_seconds=30.0,
    rate_limit_per_second=None,
    max_concurrency=10,
)
SINK_REPLY = Reply(200, {"content-type": "text/plain", "content-length": "2"}, "ok")


@dataclass
class Cost:
    """µs per document of one operation: the client's wall time, the server's CPU."""

    wall_us: float
    server_us: float | None


@dataclass
class Row:
    collection: str
    indexes: list[Index]
    insert: Cost
    update: Cost
    delete: Cost


def deliveries(count: int) -> list[dict[str, Any]]:
    now = utcnow()
    body = webhook_request("costs", "delivery", 0, 0.0, "whsec_" + "A" * 32, now)[0]
    return [
        delivery_doc(
            endpoint=ENDPOINT,
            event_id=event_id("costs", "delivery", seq),
            event_type="message.created",
            occurred_at=now + timedelta(milliseconds=seq),
            body=body,
            now=now,
            owner="wkr_bench_costs",
        )
        for seq in range(count)
    ]


def delivery_outcome() -> dict[str, Any]:
    """The `$set` of a first attempt's success (the dispatcher's `attempt`)."""
    now = utcnow()
    return {
        "attempts": 1,
        "tries": 1,
        "last_attempt_at": now,
        "last_status_code": 200,
        "last_error": None,
        "updated_at": now,
        "next_attempt_at": None,
        "lease_owner": None,
        "status": "completed",
        "completed_at": now,
        "ended_at": now,
    }


def attempts(count: int) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        attempt_doc(f"dlv_bench_costs_{seq:07d}", now, SINK_REPLY, 0.0021, None)
        for seq in range(count)
    ]


def attempt_answer() -> dict[str, Any]:
    return {
        "status_code": 200,
        "response_headers": SINK_REPLY.headers,
        "response_body": "ok",
        "duration_ms": 2.1,
        "error": None,
    }


SHAPES: dict[str, tuple[Callable[[int], list[dict[str, Any]]], Callable[[], dict[str, Any]]]] = {
    DELIVERIES: (deliveries, delivery_outcome),
    ATTEMPTS: (attempts, attempt_answer),
}


class Meter:
    """Times a block by the client's clock and, when it knows the server's pid, its CPU."""

    def __init__(self, server_pid: int | None) -> None:
        self.pids = {"server": server_pid} if server_pid is not None else {}

    @contextmanager
    def cost(self, count: int, into: list[Cost]) -> Iterator[None]:
        cpu_before = _cpu_times(self.pids)
        started = time.perf_counter()
        yield
        wall = time.perf_counter() - started
        cpu_after = _cpu_times(self.pids)
        server = None
        if "server" in cpu_before and "server" in cpu_after:
            server = round(1e6 * (cpu_after["server"] - cpu_before["server"]) / count, 1)
        into.append(Cost(round(1e6 * wall / count, 1), server))


def measure(
    collection: Collection[dict[str, Any]],
    indexes: Sequence[Index],
    shape: str,
    count: int,
    updates: int,
    meter: Meter,
) -> Row:
    make, change = SHAPES[shape]
    collection.drop()
    for index in indexes:
        collection.create_index(list(index.keys), **dict(index.options))
    docs = make(count)
    ids = [doc["_id"] for doc in docs]
    costs: list[Cost] = []
    with meter.cost(count, costs):
        for start in range(0, count, BATCH):
            collection.insert_many(docs[start : start + BATCH], ordered=False)
    # Spread over the collection, not its first documents.
    step = max(count // updates, 1)
    targets = ids[::step][:updates]
    changes = [change() for _ in targets]
    with meter.cost(len(targets), costs):
        for doc_id, fields in zip(targets, changes, strict=True):
            collection.update_one({"_id": doc_id}, {"$set": fields})
    with meter.cost(count, costs):
        for start in range(0, count, BATCH):
            collection.delete_many({"_id": {"$in": ids[start : start + BATCH]}})
    if collection.estimated_document_count():
        raise SystemExit(f"{shape}: documents left after the deletes")
    return Row(shape, list(indexes), *costs)


def run(uri: str, server_pid: int | None, count: int, updates: int) -> list[Row]:
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    meter = Meter(server_pid)
    rows = []
    try:
        db = client[f"hookhub_costs_{int(time.time())}"]
        for shape in (DELIVERIES, ATTEMPTS):
            declared = [index for index in INDEXES if index.collection == shape]
            collection = db[f"costs_{shape}"]
            # Once unmeasured: the server's first writes of a collection pay for its set-up.
            measure(collection, [], shape, BATCH, 50, Meter(None))
            for upto in range(len(declared) + 1):
                rows.append(measure(collection, declared[:upto], shape, count, updates, meter))
                print(f"bench.mongo_costs: {shape} + {upto} indexes", file=sys.stderr)
        client.drop_database(db.name)
    finally:
        client.close()
    return rows


def _keys(index: Index) -> str:
    return ", ".join(f"{field} {order}" for field, order in index.keys)


def render(rows: list[Row], count: int, updates: int) -> str:
    lines = [
        f"µs per document on the embedded MongoDB: client wall / server CPU "
        f"({count:,} inserted in batches of {BATCH}, {updates:,} updated one by one, "
        f"{count:,} deleted in batches of {BATCH})",
        "",
        "| collection | indexes besides _id (added one at a time) | insert | update_one | delete |",
        "| --- | --- | ---: | ---: | ---: |",
    ]

    def cell(cost: Cost) -> str:
        server = "-" if cost.server_us is None else f"{cost.server_us:,.0f}"
        return f"{cost.wall_us:,.0f} / {server}"

    for row in rows:
        added = f"+ {_keys(row.indexes[-1])} ({len(row.indexes)})" if row.indexes else "none"
        lines.append(
            f"| {row.collection} | {added} | {cell(row.insert)} | {cell(row.update)} | "
            f"{cell(row.delete)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mongo_costs", description=__doc__)
    parser.add_argument("--docs", type=int, default=2000, help="inserted and deleted per row")
    parser.add_argument("--updates", type=int, default=500, help="update_one calls per row")
    parser.add_argument("--uri", help="a running server (wall time only); default: start one")
    args = parser.parse_args(argv)
    if args.docs < BATCH or args.updates < 1:
        parser.error(f"--docs at least {BATCH}, --updates at least 1")
    if args.uri:
        rows = run(args.uri, None, args.docs, args.updates)
    else:
        root = Path(tempfile.mkdtemp(prefix="hookhub-mongo-costs-"))
        port = free_port()
        server = start_mongo(port, root / "mongo", root / "logs")
        try:
            rows = run(f"mongodb://127.0.0.1:{port}", server.process.pid, args.docs, args.updates)
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(render(rows, args.docs, args.updates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
