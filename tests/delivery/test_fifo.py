"""FIFO endpoints (SPEC §17): one at a time per ordering key, in the order published, a
failing head holding only its own key; across a restart and with two processes.

The sink holds a head's request until the test lets it go, so what is held is held by
construction; the order is judged by what the sink received, in the order it did."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, cast

import pytest

from services.delivery.app import definition
from shared.domain.platform import create_app
from shared.kernel.settings import DeliverySettings
from tests.delivery.conftest import settings_for
from tests.infra import Infra
from tests.support import RunningService, admin_headers, counted, serve, until
from tests.webhook_sink import Received, WebhookSink

Sink = tuple[WebhookSink, str]
Answer = Callable[[Received], Awaitable[int]]


def _seen(received: Received) -> tuple[str, int]:
    """(key, n) of a request: the test's events carry both in `data`."""
    data = json.loads(received.body)["data"]
    return data["key"], data["n"]


async def _fifo_endpoint(
    delivery: RunningService, sink: Sink, answer: Answer, workspace: str, **fields: Any
) -> tuple[str, str]:
    """A FIFO endpoint on a fresh sink path answered by `answer`: (path, endpoint id)."""
    fake, base_url = sink
    path = "/fifo/" + uuid.uuid4().hex[:8]
    fake.on(path, answer=answer)
    body = {
        "workspace_id": workspace,
        "url": base_url + path,
        "events": ["*"],
        "ordering": "fifo",
        "retry_schedule": [0, 0, 0],
        **fields,
    }
    created = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert created.status_code == 201, created.text
    assert created.json()["ordering"] == "fifo"
    return path, created.json()["id"]


async def _publish(delivery: RunningService, workspace: str, key: str, n: int) -> None:
    event = {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": "message.created",
        "workspace_id": workspace,
        "occurred_at": "2025-01-01T00:00:00Z",
        "ordering_key": key,
        # A channel beside the key: the key, not the channel, orders (and partitions) it.
        "data": {"key": key, "n": n, "channel_id": f"ch_{uuid.uuid4().hex[:6]}"},
    }
    answer = await delivery.client.post("/api/events", json=event, headers=admin_headers())
    assert answer.status_code == 202, answer.text


def _order_holds(received: list[Received], key: str, count: int) -> None:
    """Of `key`'s requests: every n arrived, and each first arrived after n - 1 had its
    last attempt answered (its requests all came before any of n)."""
    seen = [_seen(r)[1] for r in received if _seen(r)[0] == key]
    assert sorted(set(seen)) == list(range(count)), seen
    first = {n: seen.index(n) for n in range(count)}
    last = {n: len(seen) - 1 - seen[::-1].index(n) for n in range(count)}
    for n in range(1, count):
        assert last[n - 1] < first[n], f"{key}{n} came before {key}{n - 1} ended: {seen}"


def _state(delivery: RunningService) -> Any:
    return cast(Any, delivery.app).state


async def test_a_failing_head_holds_its_key_while_another_key_flows(
    delivery: RunningService, sink: Sink
) -> None:
    workspace = "ws_fifo_two_keys"
    released = asyncio.Event()
    tries: dict[int, int] = {}

    async def answer(received: Received) -> int:
        key, n = _seen(received)
        if key == "a" and n == 0:
            tries[n] = tries.get(n, 0) + 1
            if tries[n] == 1:
                return 500  # its retry holds the key
            await released.wait()  # the retry, held until key b has all arrived
        return 200

    path, endpoint_id = await _fifo_endpoint(delivery, sink, answer, workspace)
    for n in range(4):
        await _publish(delivery, workspace, "a", n)
        await _publish(delivery, workspace, "b", n)
    fake = sink[0]
    try:
        await until(
            lambda: len([r for r in fake.at(path) if _seen(r)[0] == "b"]) == 4,
            what="key b delivered while key a's head is held",
        )
        await until(lambda: tries.get(0) == 2, what="key a's head retried")
        assert [_seen(r) for r in fake.at(path) if _seen(r)[0] == "a"] == [("a", 0), ("a", 0)]

        # The API shows key a held, its head the delivery of a0, with the rest of its four
        # once fan-out has read them: key a's partition need not be key b's, and its last
        # event may come in a batch after b's last was delivered.
        async def key_a_held() -> dict[str, Any] | None:
            held = await delivery.client.get(
                f"/api/outgoing-webhooks/{endpoint_id}/held-keys", headers=admin_headers()
            )
            assert held.status_code == 200, held.text
            keys = [k for k in held.json()["data"] if k["ordering_key"] == "a"]
            return cast(dict[str, Any], keys[0]) if keys and keys[0]["queued"] == 4 else None

        key_a = await until(key_a_held, what="key a held with its four deliveries")
        assert key_a["head"]["attempts"] == 1
        assert key_a["waiting_seconds"] >= 0
        head = await delivery.client.get(
            f"/api/deliveries/{key_a['head']['id']}", headers=admin_headers()
        )
        assert head.json()["payload"]["data"]["n"] == 0
    finally:
        released.set()
    await until(
        lambda: len([r for r in fake.at(path) if _seen(r)[0] == "a"]) == 5,
        what="key a delivered once its head succeeded",
    )
    _order_holds(fake.at(path), "a", 4)
    _order_holds(fake.at(path), "b", 4)
    await _nothing_held(delivery, endpoint_id)


async def test_a_delivery_queued_while_its_key_is_read_from_mongodb_is_sent_after(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parked key's queue is read back while fan-out queues one more of its deliveries
    (the read held, by construction, after its query and until that write is done): the
    read missed it, so the key stays queued and is read again once drained. (It was marked
    as having nothing queued: the delivery stayed in MongoDB, sent by nobody.)"""
    workspace = "ws_fifo_load_race"
    tries: dict[int, int] = {}

    async def answer(received: Received) -> int:
        _, n = _seen(received)
        tries[n] = tries.get(n, 0) + 1
        return 500 if n == 0 and tries[n] == 1 else 200  # the head parks its key once

    path, endpoint_id = await _fifo_endpoint(delivery, sink, answer, workspace)
    keys = _state(delivery).ordering._keys
    query = keys.queued
    read, go = asyncio.Event(), asyncio.Event()

    async def held_after_the_query(of: str, key: str, limit: int) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = await query(of, key, limit)
        if of == endpoint_id:
            read.set()
            await go.wait()
        return docs

    monkeypatch.setattr(keys, "queued", held_after_the_query)
    deliveries = _state(delivery).delivery_repository.deliveries
    try:
        await _publish(delivery, workspace, "k", 0)
        await until(read.is_set, what="the parked key's queue read")
        await _publish(delivery, workspace, "k", 1)
        queued = {"endpoint_id": endpoint_id, "lease_owner": "fifo"}
        await until(
            lambda: counted(deliveries, queued, 2), what="k1 queued behind k0 while it was read"
        )
    finally:
        go.set()
    fake = sink[0]
    await until(lambda: len(fake.at(path)) == 3, what="k0 twice, then k1")
    _order_holds(fake.at(path), "k", 2)
    await _nothing_held(delivery, endpoint_id)


async def test_a_dead_lettered_head_lets_its_key_go_on(
    delivery: RunningService, sink: Sink
) -> None:
    workspace = "ws_fifo_dead_letter"

    async def answer(received: Received) -> int:
        return 500 if _seen(received) == ("a", 0) else 200

    path, endpoint_id = await _fifo_endpoint(delivery, sink, answer, workspace, retry_schedule=[0])
    for n in range(3):
        await _publish(delivery, workspace, "a", n)
    fake = sink[0]
    await until(lambda: len(fake.at(path)) == 4, what="a0 twice, then a1 and a2")
    assert [_seen(r) for r in fake.at(path)] == [("a", 0), ("a", 0), ("a", 1), ("a", 2)]
    deliveries = _state(delivery).delivery_repository.deliveries
    await until(
        lambda: _statuses(deliveries, endpoint_id, {0: "failed", 1: "completed", 2: "completed"}),
        what="a0 dead-lettered, the others completed",
    )
    await _nothing_held(delivery, endpoint_id)


async def _statuses(deliveries: Any, endpoint_id: str, wanted: dict[int, str]) -> bool:
    found = {
        json.loads(bytes(d["body"]))["data"]["n"]: d["status"]
        async for d in deliveries.find({"endpoint_id": endpoint_id})
    }
    return found == wanted


async def _nothing_held(delivery: RunningService, endpoint_id: str) -> None:
    async def empty() -> bool:
        held = await delivery.client.get(
            f"/api/outgoing-webhooks/{endpoint_id}/held-keys", headers=admin_headers()
        )
        keys: list[Any] = held.json()["data"]
        return not keys

    await until(empty, what="no key held")


@pytest.fixture
async def two(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> DeliverySettings:
    """Settings for processes of one delivery service, started and stopped by the test."""
    return settings_for(infra, tmp_path_factory, kafka_partitions=2, lease_seconds=5)


async def _started(settings: DeliverySettings, stack: AsyncExitStack) -> RunningService:
    """A delivery process, stopped when `stack` closes (as `hookhub serve` stops it)."""
    return await stack.enter_async_context(serve(create_app(definition(), settings)))


async def test_order_holds_across_a_restart(two: DeliverySettings, sink: Sink) -> None:
    """The delivery service stops while a key's head is out again (its retry, held at the
    sink) and its successors wait in MongoDB; the next process sends the head again, then
    the rest, then what was published after the restart, in order."""
    workspace = "ws_fifo_restart"
    out = asyncio.Event()
    released = asyncio.Event()
    tries = 0

    async def answer(received: Received) -> int:
        nonlocal tries
        if _seen(received) == ("a", 0) and not released.is_set():
            tries += 1
            if tries == 1:
                return 500  # the key parks: its successors are queued in MongoDB
            out.set()
            await released.wait()
        return 200

    first = AsyncExitStack()
    delivery = await _started(two, first)
    try:
        path, _ = await _fifo_endpoint(delivery, sink, answer, workspace)
        for n in range(5):
            await _publish(delivery, workspace, "a", n)
        await asyncio.wait_for(out.wait(), 30)
    finally:
        await first.aclose()  # stops it: the head's attempt is cut off
    released.set()
    assert [_seen(r) for r in sink[0].at(path)] == [("a", 0), ("a", 0)]
    second = AsyncExitStack()
    delivery = await _started(two, second)
    try:
        await _publish(delivery, workspace, "a", 5)
        await until(
            lambda: {_seen(r)[1] for r in sink[0].at(path)} == set(range(6)),
            what="every event of key a after the restart",
            timeout=60,
        )
    finally:
        await second.aclose()
    _order_holds(sink[0].at(path), "a", 6)


async def test_order_holds_with_two_processes(two: DeliverySettings, sink: Sink) -> None:
    """A second process joins while a key's head is held at the sink (the partitions move
    between them), and the first stops later: nobody sends a successor before its head."""
    workspace = "ws_fifo_two_processes"
    out = asyncio.Event()
    released = asyncio.Event()

    async def answer(received: Received) -> int:
        if _seen(received) == ("a", 0) and not released.is_set():
            out.set()
            await released.wait()
        return 200

    first, second = AsyncExitStack(), AsyncExitStack()
    one = await _started(two, first)
    try:
        path, _ = await _fifo_endpoint(one, sink, answer, workspace)
        for n in range(3):
            await _publish(one, workspace, "a", n)
            await _publish(one, workspace, "b", n)
        await asyncio.wait_for(out.wait(), 30)
        other = await _started(two, second)
        for n in range(3, 6):
            await _publish(other, workspace, "a", n)
            await _publish(other, workspace, "b", n)
        await until(
            lambda: len([r for r in sink[0].at(path) if _seen(r)[0] == "b"]) >= 6,
            what="key b delivered meanwhile",
            timeout=60,
        )
        released.set()
        await until(
            lambda: {_seen(r)[1] for r in sink[0].at(path) if _seen(r)[0] == "a"} == set(range(6)),
            what="key a once its head was let go",
            timeout=60,
        )
        await first.aclose()  # its keys go to the other process
        for n in range(6, 9):
            await _publish(other, workspace, "a", n)
        await until(
            lambda: {_seen(r)[1] for r in sink[0].at(path) if _seen(r)[0] == "a"} == set(range(9)),
            what="key a after the first process stopped",
            timeout=60,
        )
    finally:
        released.set()
        await first.aclose()
        await second.aclose()
    _order_holds(sink[0].at(path), "a", 9)
    _order_holds(sink[0].at(path), "b", 6)
