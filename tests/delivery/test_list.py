"""`GET /api/deliveries`: every filter, newest event first, walked page by page by cursor;
and the indexes that let MongoDB answer each filter's first page off one index."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.delivery.deliveries.repository import DELIVERIES, INDEXES, LIST_INDEXES
from services.delivery.deliveries.service import delivery_doc
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.domain import api_keys
from shared.kernel.mongo import Database, Document, ensure_indexes
from shared.kernel.settings import DeliverySettings
from tests.support import RunningService, admin_headers

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ENDPOINTS = ("owh_list_a", "owh_list_b", "owh_list_c")
STATUSES = ("completed", "failed", "delayed", "completed")


def snapshot(endpoint_id: str) -> EndpointSnapshot:
    return EndpointSnapshot(
        id=endpoint_id,
        # Two workspaces: the third endpoint is another's.
        workspace_id="ws_list_other" if endpoint_id == ENDPOINTS[2] else "ws_list",
        url="https://receiver.example/hook",
        events=("*",),
        enabled=True,
        retry_schedule=(5,),
        timeout_seconds=30.0,
        rate_limit_per_second=None,
        max_concurrency=10,
    )


def made(seq: int, endpoint_id: str | None = None) -> Document:
    """Finished delivery `seq` (of `endpoint_id`, else of one of ENDPOINTS in turn): three
    events share each millisecond (ties in the time the list is ordered by); every seventh
    was created long after its event happened (an import, a replay), so creation order is
    not event order. Finished: the scheduler leaves it alone."""
    occurred_at = BASE + timedelta(seconds=seq // 3)
    created_at = occurred_at + timedelta(days=2 if seq % 7 == 0 else 0, milliseconds=5)
    doc = delivery_doc(
        endpoint=snapshot(endpoint_id or ENDPOINTS[seq % 3]),
        event_id=f"evt_list_{seq:03d}",
        event_type=("message.created", "message.deleted")[seq % 5 % 2],
        occurred_at=occurred_at,
        body=b'{"seq":%d}' % seq,
        now=created_at,
        owner="dlw_list",
    )
    doc.update(status=STATUSES[seq % 4], lease_owner=None, next_attempt_at=None)
    return doc


@pytest.fixture(scope="module")
async def listed(delivery_settings: DeliverySettings) -> AsyncIterator[list[Document]]:
    """Deliveries in the service's database."""
    docs = [made(seq) for seq in range(40)]
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        delivery_settings.mongo_uri, tz_aware=True
    )
    await client[delivery_settings.mongo_db][DELIVERIES].insert_many(docs)
    yield docs
    await client.close()


async def walk(delivery: RunningService, limit: int, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {"limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        answer = await delivery.client.get("/api/deliveries", params=query, headers=admin_headers())
        assert answer.status_code == 200, answer.text
        page = answer.json()
        assert len(page["data"]) <= limit
        rows += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
        assert len(page["data"]) == limit  # a cursor only after a full page
    raise AssertionError("the cursor never ended")


FILTERS: list[tuple[dict[str, str], Any]] = [
    ({}, lambda d: True),
    ({"webhook_id": "owh_list_b"}, lambda d: d["endpoint_id"] == "owh_list_b"),
    ({"status": "failed"}, lambda d: d["status"] == "failed"),
    ({"workspace_id": "ws_list_other"}, lambda d: d["workspace_id"] == "ws_list_other"),
    (
        {"workspace_id": "ws_list", "status": "completed"},
        lambda d: d["workspace_id"] == "ws_list" and d["status"] == "completed",
    ),
    ({"event_type": "message.deleted"}, lambda d: d["event_type"] == "message.deleted"),
    (
        {"webhook_id": "owh_list_a", "status": "completed"},
        lambda d: d["endpoint_id"] == "owh_list_a" and d["status"] == "completed",
    ),
    (
        {"since": (BASE + timedelta(days=1)).isoformat()},
        lambda d: d["created_at"] >= BASE + timedelta(days=1),
    ),
]


# Ids from the filters alone: the same in every process (pytest-xdist's workers compare
# their collections), which a lambda's repr is not.
@pytest.mark.parametrize(
    ("params", "keep"), FILTERS, ids=[str(params) if params else "all" for params, _ in FILTERS]
)
async def test_every_filter_lists_newest_event_first_across_cursor_pages(
    delivery: RunningService, listed: list[Document], params: dict[str, str], keep: Any
) -> None:
    expected = sorted((d for d in listed if keep(d)), key=lambda d: d["_id"], reverse=True)
    assert len(expected) >= 4  # several pages of 3
    rows = await walk(delivery, 3, **params)
    assert [row["id"] for row in rows] == [d["_id"] for d in expected]
    # Newest event first, each delivery once, with its event time shown.
    times = [datetime.fromisoformat(row["occurred_at"]) for row in rows]
    assert times == sorted(times, reverse=True)
    assert times == [d["occurred_at"] for d in expected]
    # Walking with another page size gives the same list: the cursor loses nothing.
    assert [row["id"] for row in await walk(delivery, 7, **params)] == [d["_id"] for d in expected]


async def test_a_workspace_key_lists_its_own_workspace_whatever_workspace_id_asks(
    delivery: RunningService, delivery_settings: DeliverySettings, listed: list[Document]
) -> None:
    """`workspace_id` is the admin's filter; a key stays in its workspace (docs/api.md,
    tests/e2e/test_cross_tenant.py): asking for another lists its own, never the other's."""
    token, key = api_keys.issue(api_keys.KEY, "ws_list", "list reader", ["read"], None)
    client: AsyncMongoClient[Document] = AsyncMongoClient(delivery_settings.mongo_uri)
    try:
        await client[delivery_settings.mongo_db][api_keys.COLLECTION].insert_one(key)
    finally:
        await client.close()
    own = sorted((d["_id"] for d in listed if d["workspace_id"] == "ws_list"), reverse=True)
    for asked in ({}, {"workspace_id": "ws_list"}, {"workspace_id": "ws_list_other"}):
        answer = await delivery.client.get(
            "/api/deliveries",
            params={"limit": 200, **asked},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        assert [row["id"] for row in answer.json()["data"]] == own, asked


async def test_a_cursor_keeps_its_filter_and_a_forged_one_is_refused(
    delivery: RunningService, listed: list[Document]
) -> None:
    first = await delivery.client.get(
        "/api/deliveries", params={"limit": 2, "status": "failed"}, headers=admin_headers()
    )
    cursor = first.json()["next_cursor"]
    second = await delivery.client.get(
        "/api/deliveries",
        params={"limit": 50, "status": "failed", "cursor": cursor},
        headers=admin_headers(),
    )
    assert second.status_code == 200
    assert {row["status"] for row in second.json()["data"]} == {"failed"}
    forged = await delivery.client.get(
        "/api/deliveries", params={"cursor": "not-a-cursor!"}, headers=admin_headers()
    )
    assert forged.status_code == 400
    assert forged.json()["error"]["code"] == "invalid_cursor"


async def test_each_list_filter_has_an_index_of_its_equality_fields_then_the_id(
    delivery: RunningService, delivery_settings: DeliverySettings
) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(delivery_settings.mongo_uri)
    try:
        info = await client[delivery_settings.mongo_db][DELIVERIES].index_information()
    finally:
        await client.close()
    keys = [
        [(field, int(direction)) for field, direction in index["key"]] for index in info.values()
    ]
    for fields in (["endpoint_id"], ["status"], ["event_type"], ["workspace_id"]):
        assert [*((f, 1) for f in fields), ("_id", -1)] in keys, fields
    for index in LIST_INDEXES:
        assert list(index.keys) in keys


async def test_the_recover_index_holds_only_failed_deliveries_and_serves_the_recover_query(
    delivery: RunningService, delivery_settings: DeliverySettings
) -> None:
    """Partial (`status: "failed"`): a delivery that ends otherwise, nearly every one, has
    no entry in it; recover's query (which names the status) is still read off it."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(delivery_settings.mongo_uri)
    try:
        deliveries = client[delivery_settings.mongo_db][DELIVERIES]
        info = await deliveries.index_information()
        [(name, recover)] = [
            (name, index)
            for name, index in info.items()
            if [field for field, _ in index["key"]] == ["endpoint_id", "status", "created_at"]
        ]
        assert dict(recover["partialFilterExpression"]) == {"status": "failed"}
        since = datetime(2026, 1, 1, tzinfo=UTC)
        query = {"endpoint_id": "ep_recover", "status": "failed", "created_at": {"$gte": since}}
        plan = (await deliveries.find(query).explain())["queryPlanner"]["winningPlan"]
    finally:
        await client.close()
    assert plan["inputStage"]["stage"] == "IXSCAN", plan
    assert plan["inputStage"]["indexName"] == name, plan


async def test_a_recover_index_made_before_it_was_partial_is_made_again(db: Database) -> None:
    """A deployment's index of the same keys without the filter (made by an earlier version):
    creating the partial one is refused, so it is dropped and made again at the start."""
    keys = [("endpoint_id", 1), ("status", 1), ("created_at", 1)]
    await db[DELIVERIES].create_index(keys)
    await ensure_indexes(db, INDEXES)
    [recover] = [
        index
        for index in (await db[DELIVERIES].index_information()).values()
        if list(index["key"]) == keys
    ]
    assert dict(recover["partialFilterExpression"]) == {"status": "failed"}
