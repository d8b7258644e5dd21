"""Deliveries and their attempts are removed HOOKHUB_DELIVERY_RETENTION after they ended
(SPEC §14); pending and delayed ones stay, and what the API says stays consistent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.delivery.deliveries.repository import ATTEMPTS, DELIVERIES
from services.delivery.deliveries.retention import EndedDeliveries
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, Document
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.delivery.test_deliveries import Sink, endpoint, path, publish
from tests.infra import Infra
from tests.support import RunningService, admin_headers, until


@pytest.fixture(scope="module")
def delivery_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> DeliverySettings:
    return settings_for(
        infra, tmp_path_factory, delivery_retention="2s", retention_interval_seconds=0.3
    )


async def _listed(delivery: RunningService, endpoint_id: str) -> list[dict[str, Any]]:
    answer = await delivery.client.get(
        "/api/deliveries", params={"webhook_id": endpoint_id}, headers=admin_headers()
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["data"]
    return items


async def test_ended_deliveries_go_with_their_attempts_and_open_ones_stay(
    delivery: RunningService, sink: Sink, delivery_settings: DeliverySettings
) -> None:
    fake, _ = sink
    ok_path, dead_path, later_path = path(), path(), path()
    fake.on(ok_path, 200)
    fake.on(dead_path, 500)
    fake.on(later_path, 503)
    ok = await endpoint(delivery, sink, ok_path)
    dead = await endpoint(delivery, sink, dead_path, retry_schedule=[0])
    later = await endpoint(delivery, sink, later_path, retry_schedule=[3600])
    for _ in range(3):
        await publish(delivery, "message.created")

    # Seen at the sink: three accepted, three refused twice (then dead-lettered), three
    # refused once and waiting an hour for their retry.
    await fake.wait_for(ok_path, 3)
    await fake.wait_for(dead_path, 6)
    await fake.wait_for(later_path, 3)

    async def removed() -> bool:
        left = await _listed(delivery, ok["id"]) + await _listed(delivery, dead["id"])
        return not left

    await until(removed, timeout=30, what="the ended deliveries removed")
    waiting = await _listed(delivery, later["id"])
    assert [d["status"] for d in waiting] == ["delayed"] * 3
    # Their attempts went with them; the delayed ones' stay.
    client: AsyncMongoClient[Document] = AsyncMongoClient(delivery_settings.mongo_uri)
    try:
        db = client[delivery_settings.mongo_db]
        for hook, expected in ((ok, 0), (dead, 0), (later, 3)):
            # The first in the delivery's document, the later ones in `delivery_attempts`.
            first = {"endpoint_id": hook["id"], "first_attempt": {"$exists": True}}
            logged = await db[DELIVERIES].count_documents(first)
            logged += await db[ATTEMPTS].count_documents({"endpoint_id": hook["id"]})
            assert logged == expected

        # The workspace's usage: 9 stored and 12 attempts made, 6 and 9 of them removed.
        async def kept() -> bool:
            totals = await db["usage"].find_one({"_id": "kept:ws_d"}) or {}
            return totals.get("deliveries") == 3 and totals.get("attempts") == 3

        await until(kept, timeout=15, what="usage's kept deliveries and attempts down to 3")
    finally:
        await client.close()
    # What the API counts agrees with what is kept.
    for hook, delayed in ((ok, 0), (dead, 0), (later, 3)):
        stats = await delivery.client.get(
            "/api/webhooks/stats", params={"webhook_id": hook["id"]}, headers=admin_headers()
        )
        assert stats.json()["total"] == delayed
        assert stats.json()["delayed"] == delayed
    ready = (await delivery.client.get("/readyz")).json()
    assert ready["retention"]["deliveries"]["state"] == "ok"
    assert ready["retention"]["processed_envelopes"]["state"] == "ok"
    metrics = (await delivery.client.get("/metrics")).text
    assert 'hookhub_retention_removed_total{collection="deliveries"} ' in metrics
    assert 'hookhub_retention_removed_total{collection="delivery_attempts"} ' in metrics


async def test_a_reopened_delivery_is_kept_and_usage_goes_down_by_what_was_removed(
    db: Database,
) -> None:
    now = utcnow()
    long_ago = now - timedelta(days=40)

    def doc(n: int, workspace: str, status: str, ended: Any, attempts: int) -> dict[str, Any]:
        return {
            "_id": f"dlv_{n:03d}",
            "workspace_id": workspace,
            "endpoint_id": "ep",
            "status": status,
            "attempts": attempts,
            "ended_at": ended,
            "updated_at": long_ago,
        }

    await db[DELIVERIES].insert_many(
        [
            doc(1, "ws_a", "completed", long_ago, 1),
            doc(2, "ws_a", "failed", long_ago, 3),
            doc(3, "ws_b", "completed", long_ago, 2),
            doc(4, "ws_b", "completed", long_ago, 1),  # reopened below
            doc(5, "ws_b", "pending", None, 0),
            doc(6, "ws_b", "delayed", None, 4),
            doc(7, "ws_a", "completed", now, 1),  # ended a moment ago
        ]
    )
    # Ended before `ended_at` was written: its last update's time stands in.
    old = doc(8, "ws_a", "completed", None, 2)
    del old["ended_at"]
    await db[DELIVERIES].insert_one(old)
    await db[ATTEMPTS].insert_many(
        [
            {"_id": f"dlv_{n:03d}:{a}", "delivery_id": f"dlv_{n:03d}"}
            for n in range(1, 9)
            for a in (1, 2)
        ]
    )
    await db[DELIVERIES].create_index([("ended_at", 1)])
    counted: list[tuple[str, int, int]] = []
    sweep = EndedDeliveries(db, timedelta(days=30), lambda *c: counted.append(c))
    found = await sweep.due(now, await sweep.cutoff(now), 100)
    assert sorted(d["_id"] for d in found) == ["dlv_001", "dlv_002", "dlv_003", "dlv_004"]
    await db[DELIVERIES].update_one({"_id": "dlv_004"}, {"$set": {"ended_at": None}})
    removed = await sweep.dispose(found, await sweep.cutoff(now))
    assert removed == {DELIVERIES: 3, ATTEMPTS: 6}
    assert sorted(counted) == [("ws_a", 2, 4), ("ws_b", 1, 2)]
    # The backfill, then the one that ended long ago without `ended_at`.
    counted.clear()
    while (await sweep.remove(now, 100))[DELIVERIES]:
        pass
    assert counted == [("ws_a", 1, 2)]
    kept = sorted(d["_id"] for d in await db[DELIVERIES].find({}, {"_id": 1}).to_list())
    assert kept == ["dlv_004", "dlv_005", "dlv_006", "dlv_007"]
    attempts = {d["delivery_id"] for d in await db[ATTEMPTS].find({}).to_list()}
    assert attempts == set(kept)
