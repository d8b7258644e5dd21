"""Outgoing webhooks end to end: API, fan-out, the signed request, retries, dead letters."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import itertools
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import standardwebhooks.webhooks
import svix.webhooks
from aiokafka import AIOKafkaProducer

from services.delivery.app import definition
from shared.domain.platform import create_app
from shared.kernel.embedded import free_port
from shared.kernel.envelopes import ProviderEvent, Topic
from shared.kernel.ids import utcnow
from shared.kernel.kafka import DEAD_LETTER_TOPIC
from shared.kernel.settings import DeliverySettings
from shared.kernel.signing import verify
from tests.infra import Infra
from tests.support import (
    KafkaTap,
    RunningService,
    admin_headers,
    make_settings,
    new_namespace,
    refreshed,
    serve,
)
from tests.webhook_sink import WebhookSink

Sink = tuple[WebhookSink, str]


async def endpoint(
    delivery: RunningService, sink: Sink, path: str, **fields: Any
) -> dict[str, Any]:
    body = {"workspace_id": "ws_d", "url": sink[1] + path, "events": ["*"], **fields}
    answer = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def publish(
    delivery: RunningService,
    event_type: str,
    workspace: str = "ws_d",
    *,
    headers: dict[str, str] | None = None,  # the caller's own (a `traceparent`)
    **data: Any,
) -> str:
    event_id = "evt_" + uuid.uuid4().hex
    event = {
        "id": event_id,
        "type": event_type,
        "workspace_id": workspace,
        "occurred_at": utcnow().isoformat(),
        "data": data,
    }
    answer = await delivery.client.post(
        "/api/events", json=event, headers={**admin_headers(), **(headers or {})}
    )
    assert answer.status_code == 202, answer.text
    return event_id


def path() -> str:
    return "/hook/" + uuid.uuid4().hex[:8]


async def test_endpoint_api_secrets_and_validation(delivery: RunningService, sink: Sink) -> None:
    created = await endpoint(delivery, sink, path(), headers={"X-Tenant": "acme"})
    assert created["secret"].startswith("whsec_")
    assert created["retry_schedule"] == [5, 10, 20]
    assert created["timeout_seconds"] == 30
    fetched = (
        await delivery.client.get(
            f"/api/outgoing-webhooks/{created['id']}", headers=admin_headers()
        )
    ).json()
    assert "secret" not in fetched
    assert fetched["headers_configured"] == ["X-Tenant"]
    listed = (
        await delivery.client.get(
            "/api/outgoing-webhooks", params={"workspace_id": "ws_d"}, headers=admin_headers()
        )
    ).json()
    assert created["id"] in [e["id"] for e in listed["data"]]
    assert created["secret"] not in json.dumps(listed)

    bad: dict[str, Any]
    for bad in (
        {"url": "http://10.0.0.1/hook"},
        {"url": "http://169.254.169.254/latest"},
        {"url": "ftp://example.com"},
        {"events": []},
        {"events": ["message.**"]},
        {"secret": "whsec_short"},
        {"retry_schedule": [-1]},
    ):
        body = {"workspace_id": "ws_d", "url": "https://example.com/h", "events": ["*"], **bad}
        answer = await delivery.client.post(
            "/api/outgoing-webhooks", json=body, headers=admin_headers()
        )
        assert answer.status_code == 422, (bad, answer.text)
    assert (await delivery.client.get("/api/outgoing-webhooks")).status_code == 401


async def test_header_values_are_write_only_and_a_patch_merges_them_by_name(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    hook = path()
    created = await endpoint(
        delivery,
        sink,
        hook,
        workspace_id="ws_headers",
        headers={"Authorization": "Bearer receiver-secret", "X-Tenant": "acme"},
    )
    url = f"/api/outgoing-webhooks/{created['id']}"
    fetched = await delivery.client.get(url, headers=admin_headers())
    listed = await delivery.client.get(
        "/api/outgoing-webhooks", params={"workspace_id": "ws_headers"}, headers=admin_headers()
    )
    for answer in (json.dumps(created), fetched.text, listed.text):
        assert "receiver-secret" not in answer and "acme" not in answer
    assert fetched.json()["headers_configured"] == ["Authorization", "X-Tenant"]

    # A PATCH without `headers` keeps them; with it, each named header is set, replaced
    # (whatever the case of its name) or removed (null); the others are kept.
    renamed = await delivery.client.patch(url, json={"name": "renamed"}, headers=admin_headers())
    assert renamed.json()["headers_configured"] == ["Authorization", "X-Tenant"]
    patched = await delivery.client.patch(
        url,
        json={"headers": {"authorization": None, "x-tenant": "globex", "X-Api-Key": "key-2"}},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["headers_configured"] == ["x-tenant", "X-Api-Key"]
    assert "key-2" not in patched.text

    sent = await delivery.client.post(f"{url}/test", headers=admin_headers())
    assert sent.status_code == 202, sent.text
    [request] = await fake.wait_for(hook, 1)
    assert request.headers["x-tenant"] == "globex"
    assert request.headers["x-api-key"] == "key-2"
    assert "authorization" not in request.headers


async def test_events_are_fanned_out_by_type_and_signed_verifiably(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    all_path, message_path, exact_path, other_path, other_ws = (
        path(),
        path(),
        path(),
        path(),
        path(),
    )
    everything = await endpoint(delivery, sink, all_path, headers={"X-Tenant": "acme"})
    await endpoint(delivery, sink, message_path, events=["message.*"])
    await endpoint(delivery, sink, exact_path, events=["channel.created"])
    await endpoint(delivery, sink, other_path, events=["user.joined"])
    await endpoint(delivery, sink, other_ws, workspace_id="ws_other")

    event_id = await publish(delivery, "message.created", channel_id="ch_1", text="hello")
    [request] = await fake.wait_for(all_path, 1)
    assert len(await fake.wait_for(message_path, 1)) == 1
    await asyncio.sleep(1.0)
    assert fake.at(exact_path) == [] and fake.at(other_path) == [] and fake.at(other_ws) == []

    body = json.loads(request.body)
    assert body["type"] == "message.created"
    assert body["data"] == {"channel_id": "ch_1", "text": "hello"}
    assert body["timestamp"]
    headers = request.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("hookhub/")
    assert headers["x-webhook-event"] == "message.created"
    assert headers["x-tenant"] == "acme"
    assert headers["webhook-id"].startswith("msg_")
    secret = everything["secret"]
    standardwebhooks.webhooks.Webhook(secret).verify(request.body, headers)
    svix.webhooks.Webhook(secret).verify(request.body, headers)
    assert verify(secret, headers, request.body)
    assert (
        headers["x-webhook-signature"]
        == "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    )
    assert event_id not in request.body.decode(), (
        "the body carries the event's data, not its envelope"
    )


async def test_a_duplicate_event_id_is_delivered_once(delivery: RunningService, sink: Sink) -> None:
    fake, _ = sink
    p = path()
    await endpoint(delivery, sink, p)
    event = {
        "id": "evt_dup_" + uuid.uuid4().hex,
        "type": "user.joined",
        "workspace_id": "ws_d",
        "occurred_at": utcnow().isoformat(),
        "data": {},
    }
    for _ in range(3):
        assert (
            await delivery.client.post("/api/events", json=event, headers=admin_headers())
        ).status_code == 202
    await fake.wait_for(p, 1)
    await asyncio.sleep(1.5)
    assert len(fake.at(p)) == 1


async def test_deliveries_are_listed_newest_first(delivery: RunningService, sink: Sink) -> None:
    fake, _ = sink
    p = path()
    hook = await endpoint(delivery, sink, p)
    start = utcnow()
    # Published out of order: the list follows when the events happened.
    for minutes in (2, 0, 3, 1):
        event = {
            "id": "evt_" + uuid.uuid4().hex,
            "type": "user.joined",
            "workspace_id": "ws_d",
            "occurred_at": (start + timedelta(minutes=minutes)).isoformat(),
            "data": {"minutes": minutes},
        }
        answer = await delivery.client.post("/api/events", json=event, headers=admin_headers())
        assert answer.status_code == 202, answer.text
    await fake.wait_for(p, 4)
    for _ in range(100):
        listed = await _deliveries(delivery, hook["id"], "completed")
        if len(listed) == 4:
            break
        await asyncio.sleep(0.1)
    order = []
    for item in listed:
        detail = await delivery.client.get(f"/api/deliveries/{item['id']}", headers=admin_headers())
        order.append(detail.json()["payload"]["data"]["minutes"])
    assert order == [3, 2, 1, 0]


async def test_retries_follow_the_schedule_with_a_stable_webhook_id(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    p = path()
    fake.on(p, 500, 503, 200)
    hook = await endpoint(delivery, sink, p, retry_schedule=[1, 2])
    await publish(delivery, "message.updated")
    requests = await fake.wait_for(p, 3, timeout=20)
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert 0.7 <= gaps[0] <= 2.5, gaps  # 1 s ± 20 % jitter, plus the scheduler's poll
    assert 1.5 <= gaps[1] <= 3.5, gaps
    assert int(requests[2].headers["webhook-timestamp"]) >= int(
        requests[0].headers["webhook-timestamp"]
    )

    listed = await _deliveries(delivery, hook["id"], "completed")
    detail = (
        await delivery.client.get(f"/api/deliveries/{listed[0]['id']}", headers=admin_headers())
    ).json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 503, 200]
    assert detail["attempt_log"][0]["next_attempt_at"] is not None
    assert detail["payload"]["type"] == "message.updated"


async def test_retry_after_is_honoured(delivery: RunningService, sink: Sink) -> None:
    fake, _ = sink
    p = path()
    fake.on(p, 429, 200, headers={"Retry-After": "3"})
    await endpoint(delivery, sink, p, retry_schedule=[0])
    await publish(delivery, "message.deleted")
    requests = await fake.wait_for(p, 2, timeout=15)
    assert requests[1].at - requests[0].at >= 2.9


async def test_gone_disables_and_exhaustion_dead_letters_then_manual_retry_and_recover(
    delivery: RunningService, sink: Sink, delivery_settings: DeliverySettings
) -> None:
    fake, _ = sink
    gone_path, dead_path = path(), path()
    fake.on(gone_path, 410)
    gone = await endpoint(delivery, sink, gone_path)
    fake.on(dead_path, 500)
    dead = await endpoint(delivery, sink, dead_path, retry_schedule=[0, 0])
    await publish(delivery, "channel.created")

    await fake.wait_for(gone_path, 1)
    for _ in range(50):
        state = (
            await delivery.client.get(
                f"/api/outgoing-webhooks/{gone['id']}", headers=admin_headers()
            )
        ).json()
        if not state["enabled"]:
            break
        await asyncio.sleep(0.1)
    assert state["enabled"] is False
    assert "410" in state["disabled_reason"]

    assert len(await fake.wait_for(dead_path, 3, timeout=15)) == 3
    failed = await _deliveries(delivery, dead["id"], "failed")
    assert failed[0]["attempts"] == 3
    async with KafkaTap.of(delivery_settings, "hookhub.delivery.dead-letters") as tap:
        [letter] = await tap.wait_for(lambda v: v["endpoint_id"] == dead["id"])
    assert letter["attempts"] == 3 and letter["last_status_code"] == 500

    fake.on(dead_path, 200)
    retried = await delivery.client.post(
        f"/api/deliveries/{failed[0]['id']}/retry", headers=admin_headers()
    )
    assert retried.status_code == 202
    assert len(await fake.wait_for(dead_path, 4)) == 4
    assert (await _deliveries(delivery, dead["id"], "completed"))[0]["attempts"] == 4

    fake.on(dead_path, 500)
    await publish(delivery, "channel.created")
    await fake.wait_for(dead_path, 7, timeout=15)
    await _deliveries(delivery, dead["id"], "failed")
    fake.on(dead_path, 200)
    since = "2000-01-01T00:00:00Z"
    recovered = await delivery.client.post(
        f"/api/outgoing-webhooks/{dead['id']}/recover",
        json={"since": since},
        headers=admin_headers(),
    )
    assert recovered.json() == {"recovered": 1}
    assert len(await fake.wait_for(dead_path, 8)) == 8

    for _ in range(50):  # the attempt's outcome is written in the next batch (0.5 s)
        stats = (
            await delivery.client.get(
                "/api/webhooks/stats", params={"webhook_id": dead["id"]}, headers=admin_headers()
            )
        ).json()
        if stats["completed"] == 2:
            break
        await asyncio.sleep(0.1)
    assert stats == {
        "total": 2,
        "pending": 0,
        "active": 0,
        "completed": 2,
        "failed": 0,
        "delayed": 0,
        "cancelled": 0,
    }


async def test_rotation_signs_with_both_secrets_during_grace(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    p = path()
    hook = await endpoint(delivery, sink, p)
    rotated = (
        await delivery.client.post(
            f"/api/outgoing-webhooks/{hook['id']}/rotate-secret", headers=admin_headers()
        )
    ).json()
    assert rotated["secret"] != hook["secret"]
    await refreshed(cast(Any, delivery.app).state.endpoint_cache)  # it has the new secret
    await publish(delivery, "message.created")
    [request] = await fake.wait_for(p, 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (hook["secret"], rotated["secret"]):
        standardwebhooks.webhooks.Webhook(secret).verify(request.body, request.headers)


async def test_provider_events_are_subscribable(
    delivery: RunningService, sink: Sink, delivery_settings: DeliverySettings
) -> None:
    fake, _ = sink
    p = path()
    await endpoint(delivery, sink, p, events=["github.push"])
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=delivery_settings.kafka_bootstrap)
    await producer.start()
    try:
        for event_type in ("push", "issues"):
            event = ProviderEvent(
                id="evt_" + uuid.uuid4().hex,
                provider="github",
                integration_id="int_x",
                workspace_id="ws_d",
                event_type=event_type,
                delivery_id=str(uuid.uuid4()),
                payload={"ref": "refs/heads/main"},
            )
            await producer.send_and_wait(
                delivery_settings.topic(Topic.PROVIDER_EVENTS), event.to_kafka(), key=b"int_x"
            )
    finally:
        await producer.stop()
    [request] = await fake.wait_for(p, 1)
    body = json.loads(request.body)
    assert body["type"] == "github.push"
    assert body["data"] == {"ref": "refs/heads/main"}
    await asyncio.sleep(1.0)
    assert len(fake.at(p)) == 1


async def test_a_hanging_endpoint_does_not_delay_a_healthy_one(
    delivery: RunningService, sink: Sink
) -> None:
    """The slow endpoint answers nothing until the healthy one has had every event (its
    attempts cannot time out before: 120 s), so none of those waited behind it."""
    fake, _ = sink
    slow, fast = path(), path()
    hanging = asyncio.Event()
    fake.on(slow, 200, gate=hanging)
    await endpoint(
        delivery, sink, slow, timeout_seconds=120, max_concurrency=2, retry_schedule=[60]
    )
    await endpoint(delivery, sink, fast)
    try:
        for _ in range(20):
            await publish(delivery, "message.created")
        assert len(await fake.wait_for(slow, 2, timeout=30)) == 2, "the slow one took two"
        requests = await fake.wait_for(fast, 20, timeout=30)
        assert len(requests) == 20, "the healthy endpoint got every event"
        assert len(fake.at(slow)) == 2, "the slow one is limited to its own concurrency"
    finally:
        hanging.set()


async def test_many_hanging_endpoints_cannot_take_a_healthy_ones_connections(
    delivery: RunningService, sink: Sink
) -> None:
    """Eleven endpoints hanging with ten requests each hold 110 connections: more than one
    shared pool of 100 would have, so the healthy endpoint's requests would queue. They
    answer nothing until released (their attempts cannot time out before: 120 s), so the
    healthy endpoint's requests arriving at all is none of them waiting behind them."""
    fake, _ = sink
    workspace = "ws_pool_" + uuid.uuid4().hex[:8]
    released = asyncio.Event()
    hanging = [path() for _ in range(11)]
    for slow in hanging:
        fake.on(slow, 200, gate=released)
        await endpoint(
            delivery, sink, slow, workspace_id=workspace, timeout_seconds=120, retry_schedule=[60]
        )
    fast = path()
    await endpoint(delivery, sink, fast, workspace_id=workspace)
    try:
        for _ in range(10):
            await publish(delivery, "message.created", workspace=workspace)
        requests = await fake.wait_for(fast, 10, timeout=30)
        assert len(requests) == 10, "the healthy endpoint got every event"
        # The hanging ones were all sent too, and hold their connections still.
        for _ in range(600):
            holding = sum(len(fake.at(slow)) for slow in hanging)
            if holding >= 100:
                break
            await asyncio.sleep(0.05)
        assert holding >= 100, f"only {holding} requests of the hanging endpoints arrived"
        assert not released.is_set()
    finally:
        released.set()


async def test_invalid_events_are_refused_over_http(delivery: RunningService) -> None:
    for bad in (
        {"id": "x", "type": "Bad Type", "workspace_id": "w", "occurred_at": "2026-01-01T00:00:00Z"},
        {"type": "message.created"},
    ):
        answer = await delivery.client.post("/api/events", json=bad, headers=admin_headers())
        assert answer.status_code == 422


async def test_an_event_on_kafka_whose_ids_are_not_ids_is_dead_lettered_and_counted(
    delivery: RunningService, delivery_settings: DeliverySettings, sink: Sink
) -> None:
    """Written straight to Kafka, past the API: the envelope is at fault, never its
    partition. Dead-lettered with the reason, counted, and the event behind it delivered."""
    fake, _ = sink
    hook = path()
    await endpoint(delivery, sink, hook, workspace_id="ws_kafka_ids")
    registry = cast(Any, delivery.app).state.runtime.registry
    labels = {"consumer": "delivery.fanout", "reason": "undecodable"}

    def counted() -> float:
        return float(registry.get_sample_value("hookhub_consumer_dead_letters_total", labels) or 0)

    before = counted()
    channel = "ch_kafka_" + uuid.uuid4().hex[:8]
    values = [
        {"id": "evt\x00" + uuid.uuid4().hex, "workspace_id": "ws_kafka_ids"},
        {"id": "evt_" + uuid.uuid4().hex, "workspace_id": "ws_kafka_ids\u202e"},
        {"id": "evt_" + uuid.uuid4().hex, "workspace_id": "ws_kafka_ids"},
    ]
    producer = AIOKafkaProducer(bootstrap_servers=delivery_settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:  # one key, so one partition, in this order
            event = {**value, "type": "message.created", "occurred_at": utcnow().isoformat()}
            await producer.send_and_wait(
                delivery_settings.topic(Topic.CHAT_EVENTS),
                json.dumps({**event, "data": {"channel_id": channel}}).encode(),
                key=channel.encode(),
            )
    finally:
        await producer.stop()
    [received] = await fake.wait_for(hook, 1)  # the good one: the only one with valid ids
    assert json.loads(received.body)["data"] == {"channel_id": channel}
    # The good event came after them in their partition: both were dead-lettered by then.
    assert counted() == before + 2
    async with KafkaTap.of(delivery_settings, DEAD_LETTER_TOPIC) as tap:
        ours = await tap.holding(channel.encode(), 2)  # written before they were counted
    reasons = [dict(record.headers)["hookhub-reason"].decode() for record in ours]
    assert len(reasons) == 2, reasons
    assert "id\n" in reasons[0] and "U+0000" in reasons[0]
    assert "workspace_id\n" in reasons[1] and "U+202E" in reasons[1]


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("id", "evt\x00", "U+0000 (a control character) at position 3"),
        ("id", "e" * 201, "at most 200 characters"),
        ("workspace_id", "ws\u202e\x00", "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 2"),
        ("workspace_id", "w" * 201, "at most 200 characters"),
    ],
)
async def test_an_event_whose_ids_are_not_ids_is_refused_naming_the_field(
    delivery: RunningService, field: str, value: str, named: str
) -> None:
    """An event id with a NUL was accepted (202) and delivered as every delivery's event id."""
    event = {"id": "evt_ids", "type": "message.created", "workspace_id": "ws_ids"}
    event |= {"occurred_at": "2026-01-01T00:00:00Z", field: value}
    answer = await delivery.client.post("/api/events", json=event, headers=admin_headers())
    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["error"]["details"]
    assert detail["loc"] == ["body", field] and named in detail["message"]


async def test_events_no_consumer_could_carry_are_refused_with_where(
    delivery: RunningService,
) -> None:
    """Accepted, they once stopped fan-out for every workspace (orjson, and MongoDB, hold
    integers of 64 bits); nesting is bounded at 64 levels."""
    event = {"id": "evt_x", "type": "message.created", "workspace_id": "w"}
    deep: Any = 1
    for _ in range(65):
        deep = {"a": deep}
    for data, where in (
        ({"n": 18446744073709551616}, "data.n: integer outside 64 bits"),
        ({"list": [1, -(2**63) - 1]}, "data.list.1: integer outside 64 bits"),
        ({"deep": deep}, "nested deeper than 64 levels"),
    ):
        body = json.dumps({**event, "occurred_at": "2026-01-01T00:00:00Z", "data": data})
        answer = await delivery.client.post(
            "/api/events",
            content=body,
            headers={**admin_headers(), "content-type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        [detail] = answer.json()["error"]["details"]
        assert detail["loc"] == ["body", "data"] and where in detail["message"], answer.text
    # Nested past what a JSON parser follows, it is refused as too deep too (once "There
    # was an error parsing the body").
    for opening, closing in ((b"[", b"]"), (b'{"a":', b"}")):
        too_deep = b'{"data": ' + opening * 100_000 + b"1" + closing * 100_000 + b"}"
        answer = await delivery.client.post(
            "/api/events",
            content=too_deep,
            headers={**admin_headers(), "content-type": "application/json"},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == {
            "code": "too_deep",
            "message": "the body is nested deeper than 64 levels",
        }
    # A lone UTF-16 surrogate (in a value, a key, the type) is no text any consumer could
    # write: once a 500 from the envelope's serializer.
    for body in (
        json.dumps({**event, "occurred_at": "2026-01-01T00:00:00Z", "data": {"t": "\ud800"}}),
        json.dumps({**event, "occurred_at": "2026-01-01T00:00:00Z", "data": {"\udfff": 1}}),
        json.dumps({**event, "type": "\ud800", "occurred_at": "2026-01-01T00:00:00Z"}),
    ):
        answer = await delivery.client.post(
            "/api/events",
            content=body,
            headers={**admin_headers(), "content-type": "application/json"},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "malformed_json"
        assert "lone UTF-16 surrogate" in answer.json()["error"]["message"]
    fine = {"n": 2**63 - 1, "deep": deep["a"]["a"], "pair": "\U0001f600"}  # 64 levels
    answer = await delivery.client.post(
        "/api/events",
        json={**event, "id": "evt_y", "occurred_at": "2026-01-01T00:00:00Z", "data": fine},
        headers=admin_headers(),
    )
    assert answer.status_code == 202, answer.text


async def _deliveries(
    delivery: RunningService, webhook_id: str, status: str
) -> list[dict[str, Any]]:
    for _ in range(100):
        listed = (
            await delivery.client.get(
                "/api/deliveries",
                params={"webhook_id": webhook_id, "status": status},
                headers=admin_headers(),
            )
        ).json()["data"]
        if listed:
            return listed  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    pytest.fail(f"no {status} delivery for {webhook_id}")


async def test_redirects_are_not_followed(delivery: RunningService, sink: Sink) -> None:
    fake, _ = sink
    p = path()
    fake.on(p, 302, headers={"Location": "http://10.0.0.1/internal"})
    hook = await endpoint(delivery, sink, p, retry_schedule=[])
    await publish(delivery, "message.created")
    failed = await _deliveries(delivery, hook["id"], "failed")
    detail = (
        await delivery.client.get(f"/api/deliveries/{failed[0]['id']}", headers=admin_headers())
    ).json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [302]
    assert len(fake.at(p)) == 1


async def test_the_attempt_log_keeps_the_response_head_and_16_kib_of_its_body(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    big, zipped = path(), path()
    text = "".join(f"line {n:05d}: the receiver said something long\n" for n in range(2_000))
    fake.on(big, 200, body=text.encode(), headers={"X-Receiver": "yes"})
    fake.on(zipped, 503, body=gzip.compress(b"overloaded"), headers={"Content-Encoding": "gzip"})
    bomb = path()  # 64 MiB of zeros in 64 KiB: only what the log keeps is inflated
    fake.on(bomb, 200, body=gzip.compress(bytes(64 << 20)), headers={"Content-Encoding": "gzip"})
    for p, status in ((big, "completed"), (zipped, "failed"), (bomb, "completed")):
        hook = await endpoint(delivery, sink, p, retry_schedule=[])
        await publish(delivery, "message.created")
        listed = await _deliveries(delivery, hook["id"], status)
        detail = (
            await delivery.client.get(f"/api/deliveries/{listed[0]['id']}", headers=admin_headers())
        ).json()
        [attempt] = detail["attempt_log"]
        if p == big:
            assert attempt["status_code"] == 200
            assert attempt["response_body"] == text[: 16 * 1024]
            assert attempt["response_headers"]["x-receiver"] == "yes"
            assert attempt["response_headers"]["content-length"] == str(len(text))
        elif p == zipped:  # decoded as the receiver meant it
            assert (attempt["status_code"], attempt["response_body"]) == (503, "overloaded")
            assert attempt["response_headers"]["content-encoding"] == "gzip"
        else:
            assert attempt["response_body"] == "\x00" * (16 * 1024)


def _own_settings(infra: Infra, tmp_path: Path, **extra: Any) -> DeliverySettings:
    """Settings for a test that runs its own delivery process(es), in a fresh namespace."""
    return make_settings(
        DeliverySettings,
        infra,
        new_namespace(),
        tmp_path,
        egress_allow_cidrs="127.0.0.0/8",
        scheduler_poll_seconds=0.2,
        **extra,
    )


async def test_an_endpoint_failing_past_the_window_is_disabled(
    infra: Infra, tmp_path: Path, sink: Sink
) -> None:
    fake, _ = sink
    settings = _own_settings(infra, tmp_path, failure_window_seconds=2)
    p = path()
    fake.on(p, 500)
    async with serve(create_app(definition(), settings)) as service:
        hook = await endpoint(service, sink, p, retry_schedule=[1] * 10)
        await publish(service, "message.created")
        for _ in range(100):
            state = (
                await service.client.get(
                    f"/api/outgoing-webhooks/{hook['id']}", headers=admin_headers()
                )
            ).json()
            if not state["enabled"]:
                break
            await asyncio.sleep(0.1)
        assert state["enabled"] is False
        assert state["disabled_reason"].startswith("failing continuously since")
        received = fake.at(p)
        attempts = len(received)
        # Disabled by a failure at least the window (2 s) after the streak's first: how
        # many attempts that took depends on the machine's pace (retries a second apart:
        # 3 mostly, 2 when the first retry came late), never more than a few.
        assert 2 <= attempts <= 6, attempts
        assert received[-1].at - received[0].at >= 2.0 - 0.2, [r.at for r in received]
        await asyncio.sleep(2.5)
        assert len(fake.at(p)) <= attempts + 1, "a disabled endpoint is not hammered"


async def _deleted_endpoints_delivery(delivery: RunningService, webhook_id: str) -> dict[str, Any]:
    failed = await _deliveries(delivery, webhook_id, "failed")
    detail: dict[str, Any] = (
        await delivery.client.get(f"/api/deliveries/{failed[0]['id']}", headers=admin_headers())
    ).json()
    return detail


async def test_a_deleted_endpoints_open_deliveries_are_closed_not_retried(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    p = path()
    fake.on(p, 500)
    hook = await endpoint(delivery, sink, p, retry_schedule=[1] * 10)
    await publish(delivery, "message.created")
    await fake.wait_for(p, 1)
    gone = await delivery.client.delete(
        f"/api/outgoing-webhooks/{hook['id']}", headers=admin_headers()
    )
    assert gone.status_code == 204
    detail = await _deleted_endpoints_delivery(delivery, hook["id"])
    assert detail["last_error"] == "the outgoing webhook was deleted"
    assert detail["next_attempt_at"] is None
    sent = len(fake.at(p))
    await asyncio.sleep(2.5)  # past two more retries of the schedule
    assert len(fake.at(p)) == sent


async def test_a_process_started_after_the_deletion_closes_them_too(
    infra: Infra, tmp_path: Path, sink: Sink
) -> None:
    """A process loads no tombstones at start: it looks the unknown endpoint up instead."""
    fake, _ = sink
    settings = _own_settings(infra, tmp_path)
    p = path()
    fake.on(p, 500)
    async with serve(create_app(definition(), settings)) as first:
        hook = await endpoint(first, sink, p, retry_schedule=[3])
        await publish(first, "message.created")
        await fake.wait_for(p, 1)
        await _deliveries(first, hook["id"], "delayed")  # the retry is 3 s away
        deleted = await first.client.delete(
            f"/api/outgoing-webhooks/{hook['id']}", headers=admin_headers()
        )
        assert deleted.status_code == 204
    async with serve(create_app(definition(), settings)) as second:
        detail = await _deleted_endpoints_delivery(second, hook["id"])
        assert detail["last_error"] == "the outgoing webhook was deleted"
    assert len(fake.at(p)) == 1


async def test_a_name_is_judged_where_it_connects_after_the_allow_list_narrows(
    infra: Infra, tmp_path: Path, sink: Sink
) -> None:
    """`localhost` passed at creation while loopback was allowed; with the allow-list
    narrowed, the delivery service refuses the address the name resolves to, sends
    nothing, and logs why."""
    fake, base_url = sink
    open_settings = _own_settings(infra, tmp_path)
    narrowed = open_settings.model_copy(update={"egress_allow_cidrs": "203.0.113.0/24"})
    p = path()
    local_url = base_url.replace("127.0.0.1", "localhost")
    async with serve(create_app(definition(), open_settings)) as before:
        hook = await endpoint(before, (fake, local_url), p, retry_schedule=[])
    async with serve(create_app(definition(), narrowed)) as after:
        await publish(after, "message.created")
        failed = await _deliveries(after, hook["id"], "failed")
        detail = (
            await after.client.get(f"/api/deliveries/{failed[0]['id']}", headers=admin_headers())
        ).json()
    [attempt] = detail["attempt_log"]
    assert attempt["status_code"] is None
    assert f"localhost:{local_url.rsplit(':', 1)[1]}" in attempt["error"]
    assert "egress refused: 127.0.0.1 is not a public address" in attempt["error"]
    assert fake.at(p) == []


async def test_a_refused_connection_says_so_with_the_host_and_port(
    delivery: RunningService, sink: Sink
) -> None:
    """What a new user's endpoint at `http://localhost:9` showed was aiohttp's "Cannot
    connect to host localhost:9 ssl:default [...]": a TLS setting, on a plain refusal."""
    closed = free_port()  # bound and closed again: nothing listens there
    hook = await endpoint(
        delivery, (sink[0], f"http://localhost:{closed}"), path(), retry_schedule=[]
    )
    await publish(delivery, "message.created")
    [failed] = await _deliveries(delivery, hook["id"], "failed")
    detail = (
        await delivery.client.get(f"/api/deliveries/{failed['id']}", headers=admin_headers())
    ).json()
    [attempt] = detail["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"] == detail["last_error"] == f"connection refused by localhost:{closed}"


async def test_metrics(delivery: RunningService, sink: Sink) -> None:
    fake, _ = sink
    p = path()
    await endpoint(delivery, sink, p)
    await publish(delivery, "message.created")
    await fake.wait_for(p, 1)
    text = (await delivery.client.get("/metrics")).text
    assert 'hookhub_delivery_attempts_total{outcome="success"}' in text
    assert "hookhub_delivery_attempt_seconds_bucket" in text
    assert "hookhub_delivery_scheduled" in text
    assert "hookhub_delivery_dead_letters_total" in text
    assert 'hookhub_kafka_consumer_lag{group="' in text


async def test_invalid_envelopes_on_the_topic_are_dead_lettered_with_the_reason(
    delivery: RunningService, delivery_settings: DeliverySettings
) -> None:
    from aiokafka import AIOKafkaProducer

    marker = uuid.uuid4().hex
    producer = AIOKafkaProducer(bootstrap_servers=delivery_settings.kafka_bootstrap)
    await producer.start()
    try:
        bad = json.dumps(
            {"id": f"evt_{marker}", "type": "message.created"}
        ).encode()  # no workspace
        await producer.send_and_wait(delivery_settings.topic(Topic.CHAT_EVENTS), bad)
    finally:
        await producer.stop()
    async with KafkaTap.of(delivery_settings, "hookhub.dead-letters") as tap:
        await tap.wait_for(lambda _: False, timeout=0.1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            marker.encode() in r.value for r in tap.records
        ):
            await tap.poll()
    [letter] = [r for r in tap.records if marker.encode() in r.value]
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["hookhub-consumer"] == "delivery.fanout"
    assert "workspace_id" in headers["hookhub-reason"]


async def _replay_done(delivery: RunningService, hook_id: str, replay_id: str) -> dict[str, Any]:
    url = f"/api/outgoing-webhooks/{hook_id}/replays/{replay_id}"
    deadline = time.monotonic() + 30
    while True:
        state: dict[str, Any] = (await delivery.client.get(url, headers=admin_headers())).json()
        if state["status"] != "running" or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


async def test_a_replay_sends_what_a_disabled_endpoint_missed_and_nothing_twice(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    hook, marks = path(), path()
    since = utcnow() - timedelta(seconds=1)
    ws = "ws_replay_" + uuid.uuid4().hex[:6]
    created = await endpoint(delivery, sink, hook, workspace_id=ws, events=["replay.*"])
    url = f"/api/outgoing-webhooks/{created['id']}"
    # Events of this workspace have no channel: one partition, read in publication order,
    # so the marker's arrival says the events published before it were fanned out.
    await endpoint(delivery, sink, marks, workspace_id=ws, events=["marker.*"])
    before = [await publish(delivery, "replay.before", ws) for _ in range(2)]
    await fake.wait_for(hook, 2)

    answer = await delivery.client.patch(url, json={"enabled": False}, headers=admin_headers())
    assert answer.status_code == 200, answer.text
    missed = [await publish(delivery, "replay.missed", ws, n=n) for n in range(3)]
    await publish(delivery, "other.kind", ws)  # not of the endpoint's types
    await publish(delivery, "replay.missed", "ws_elsewhere")  # not its workspace's
    await publish(delivery, "marker.sent", ws)
    assert len(await fake.wait_for(marks, 1)) == 1
    refused = await delivery.client.post(
        url + "/replay", json={"since": since.isoformat()}, headers=admin_headers()
    )
    assert refused.status_code == 409, refused.text  # disabled: enable it first
    answer = await delivery.client.patch(url, json={"enabled": True}, headers=admin_headers())
    assert answer.status_code == 200, answer.text
    after = await publish(delivery, "replay.after", ws)
    assert len(await fake.wait_for(hook, 3)) == 3

    answer = await delivery.client.post(
        url + "/replay", json={"since": since.isoformat()}, headers=admin_headers()
    )
    assert answer.status_code == 202, answer.text
    done = await _replay_done(delivery, created["id"], answer.json()["id"])
    assert done["status"] == "completed", done
    assert (done["matched"], done["replayed"], done["already_delivered"]) == (6, 3, 3)
    assert done["read"] >= 8 and done["records"] >= done["read"]
    # Each missed event once, after the rest: nothing sent twice.
    got = [json.loads(r.body)["data"] for r in fake.at(hook)]
    assert len(got) == 6 and sorted(data.get("n") for data in got[3:]) == [0, 1, 2]
    replayed = (await delivery.client.get(url + "/replays", headers=admin_headers())).json()
    assert [r["id"] for r in replayed] == [done["id"]]
    listed = (
        await delivery.client.get(
            "/api/deliveries", params={"webhook_id": created["id"]}, headers=admin_headers()
        )
    ).json()["data"]
    assert sorted(d["event_id"] for d in listed if d["replayed"]) == sorted(missed)
    assert {d["event_id"] for d in listed if not d["replayed"]} == {*before, after}

    # A replay whose process died is taken over from its last positions; what it finds
    # delivered is left alone.
    replays = cast(Any, delivery.app).state.replays
    now = utcnow()
    orphan = {
        "_id": "rpl_orphan_" + uuid.uuid4().hex[:8],
        "endpoint_id": created["id"],
        "workspace_id": ws,
        "since": since,
        "until": now,
        "status": "running",
        "owner": "wkr_gone",
        **dict.fromkeys(("read", "matched", "replayed", "already_delivered"), 0),
        "truncated": False,
        "created_at": now,
        "updated_at": now,
    }
    await replays.collection.insert_one(orphan)
    taken = await _replay_done(delivery, created["id"], orphan["_id"])
    assert (taken["status"], taken["replayed"], taken["already_delivered"]) == ("completed", 0, 6)
    assert len(fake.at(hook)) == 6

    for bad in (
        {"since": (utcnow() - timedelta(days=400)).isoformat()},  # older than retention
        {"since": since.isoformat(), "until": since.isoformat()},
        {"since": (utcnow() + timedelta(hours=1)).isoformat()},
        {"since": since.isoformat(), "extra": 1},
    ):
        answer = await delivery.client.post(url + "/replay", json=bad, headers=admin_headers())
        assert answer.status_code == 422, (bad, answer.text)
