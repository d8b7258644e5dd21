"""Two notification consumers that both find an item without a root, at the same moment (two
sync replicas during a rebalance, or a replay beside the live consumer), make one root: the
race is held open by construction, on the real broker and database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.sync.metrics import NotificationMetrics
from services.sync.notifications import directory
from services.sync.notifications.service import Notifications
from services.sync.subscriptions import repository as subscriptions
from shared import message_map
from shared.cache import RefreshingCache
from shared.envelopes import ProviderEvent, Topic
from shared.ids import new_id, utcnow
from shared.message_map import Copy, MessageMap
from shared.mongo import BatchedWriter, ensure_indexes
from shared.runtime import Runtime
from shared.settings import ServiceSettings
from tests.infra import Infra
from tests.support import KafkaTap, github_corpus, make_settings, new_namespace, until


@pytest.fixture
async def runtime(infra: Infra, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    made = Runtime(settings=settings, service="sync")
    await made.start([], [Topic.CHAT_INBOUND])
    await until(lambda: made.kafka_started, what="kafka")
    await ensure_indexes(made.db, [*message_map.INDEXES, *subscriptions.INDEXES])
    yield made
    await made.stop()


class HeldMap(MessageMap):
    """A message map whose claims wait until `parties` claimers have arrived: each has
    decided by then that the root is missing."""

    def __init__(self, db: Any, barrier: asyncio.Barrier) -> None:
        super().__init__(db)
        self._barrier = barrier

    async def claim(self, copies: list[Copy], extra: dict[str, Any] | None = None) -> set[str]:
        await self._barrier.wait()
        return await super().claim(copies, extra)


def _payload(relative: str) -> dict[str, Any]:
    return dict(json.loads((github_corpus()[0].parents[1] / relative).read_text()))


def _event(integration_id: str, event_type: str, payload: dict[str, Any]) -> ProviderEvent:
    delivery = new_id("dlv")
    return ProviderEvent(
        id=f"pev_{delivery}",
        provider="github",
        integration_id=integration_id,
        workspace_id="ws_roots",
        event_type=event_type,
        delivery_id=delivery,
        payload=payload,
    )


async def _consumer(runtime: Runtime, the_map: MessageMap) -> Notifications:
    cache: RefreshingCache[str, directory.SubscriptionSnapshot] = RefreshingCache.by_id(
        subscriptions.SubscriptionRepository(runtime.db),
        directory.snapshot,
        refresh_seconds=60,
        name="subscriptions",
    )
    await cache.refresh()
    return Notifications(
        subscriptions=directory.SubscriptionDirectory(cache),
        message_map=the_map,
        publisher=runtime.publisher,
        db=runtime.db,
        counts=BatchedWriter(runtime.db),
        metrics=NotificationMetrics(CollectorRegistry()),
    )


async def test_two_consumers_racing_for_an_items_root_make_one(runtime: Runtime) -> None:
    integration_id, channel = new_id("int"), new_id("ch")
    created = utcnow() - timedelta(minutes=1)
    await subscriptions.SubscriptionRepository(runtime.db).insert(
        {
            "_id": new_id("sub"),
            "workspace_id": "ws_roots",
            "integration_id": integration_id,
            "provider": "github",
            "channel_id": channel,
            "events": ["*"],
            "threads": "item",
            "enabled": True,
            "created_at": created,
            "updated_at": created,
            "deleted_at": None,
        }
    )
    barrier = asyncio.Barrier(2)
    one = await _consumer(runtime, HeldMap(runtime.db, barrier))
    two = await _consumer(runtime, HeldMap(runtime.db, barrier))
    # Two events about Codertocat/Hello-World#2, neither the first the channel sees of it.
    review = _event(
        integration_id,
        "pull_request_review",
        _payload("pull_request_review/submitted.payload.json"),
    )
    labeled = _event(integration_id, "pull_request", _payload("pull_request/labeled.payload.json"))
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await asyncio.gather(one.events([review]), two.events([labeled]))
        found = await tap.wait_for(lambda v: v["channel_id"] == channel, count=3)
    received = [v for v in found if v["type"] == "message.received"]
    edits = [v for v in found if v["type"] == "message.edited"]
    assert len(received) == 2 and len(edits) == 1, [v["type"] for v in found]
    [root] = [v for v in received if "thread_id" not in v]
    [reply] = [v for v in received if "thread_id" in v]
    assert reply["thread_id"] == root["id"] and edits[0]["message_id"] == root["id"]
    roots = await runtime.db[message_map.COLLECTION].find({"origin": "notification"}).to_list()
    assert [(r["channel_id"], r["external_message_id"], r["inbound_id"]) for r in roots] == [
        (channel, "Codertocat/Hello-World#2", root["id"])
    ]
