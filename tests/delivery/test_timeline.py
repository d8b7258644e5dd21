"""Attempts per minute (services/delivery/deliveries/timeline.py): each attempt counted in
its own endpoint's document of its own minute, on the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.delivery.deliveries.timeline import AttemptMinutes
from shared.kernel.mongo import Database


async def test_attempts_are_counted_by_endpoint_minute_and_outcome(db: Database) -> None:
    minutes = AttemptMinutes(db, interval=60)
    start = datetime(2026, 11, 28, 9, 59, 58, tzinfo=UTC)
    # Across a minute's end and back (a late attempt of the minute before), two endpoints.
    for at, endpoint, status in [
        (start, "ep_a", 200),
        (start + timedelta(seconds=1), "ep_b", 500),
        (start + timedelta(seconds=3), "ep_a", 200),  # 10:00:01
        (start + timedelta(seconds=4), "ep_a", None),
        (start + timedelta(seconds=1.5), "ep_a", 502),  # 09:59:59.5, ended late
    ]:
        minutes.count("ws_1", endpoint, at, status)
    await minutes.flush()
    docs = {doc.pop("_id"): doc for doc in await db["delivery_minutes"].find().to_list()}
    assert set(docs) == {"202611280959:ep_a", "202611280959:ep_b", "202611281000:ep_a"}
    assert docs["202611280959:ep_a"]["success"] == 1
    assert docs["202611280959:ep_a"]["http_error"] == 1
    assert docs["202611280959:ep_b"]["http_error"] == 1
    assert docs["202611281000:ep_a"]["success"] == 1
    assert docs["202611281000:ep_a"]["network_error"] == 1
    assert docs["202611281000:ep_a"]["endpoint_id"] == "ep_a"
    timeline = sorted(await minutes.since(start - timedelta(minutes=1), "ep_a"))
    assert [(minute.hour, minute.minute) for minute, _ in timeline] == [(9, 59), (10, 0)]
    assert [counts for _, counts in timeline] == [
        {"success": 1, "http_error": 1, "network_error": 0},
        {"success": 1, "http_error": 0, "network_error": 1},
    ]
