"""Pathological envelopes on every topic hookhub consumes stall nothing: the events of another
workspace behind them, in the same partition, all arrive, and every service stays ready."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from services.delivery.app import definition as delivery_definition
from services.sandbox.slack import TEAM_ID
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.ids import isoformat, utcnow
from shared.kernel.settings import DeliverySettings
from tests.infra import Infra
from tests.support import RunningService, admin_headers, make_settings, serve
from tests.sync.conftest import World, in_channel, until
from tests.webhook_sink import WebhookSink

OTHER = "ws_other"
HUGE = 18446744073709551616  # 2^64: past every 64-bit integer


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"a": value}
    return value


def _odd_keys() -> dict[str, Any]:
    return {"$where": "1", "a.b": 2, "nul\u0000key": 3, "$": {".": None}}


def _pathological_data(channel: str) -> list[dict[str, Any]]:
    """`data` of `message.created` events in a mapped channel, each bad in its own way."""
    base = {"channel_id": channel, "message_id": f"m_{uuid.uuid4().hex}"}
    return [
        {**base, "text": "huge", "n": HUGE},
        {**base, "text": "deep", "nested": _nested(150)},
        {**base, "text": "x" * 1_000_000},
        {**base, "text": "odd keys", **_odd_keys(), "attachments": [_odd_keys()]},
        {**base, "text": "odd attachments", "attachments": [{"url": HUGE, "name": _nested(60)}]},
    ]


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[tuple[WebhookSink, str]]:
    fake = WebhookSink()
    async with serve(fake.app(), probe="/healthz") as running:
        yield fake, running.base_url


@pytest.fixture(scope="module")
async def delivery(world: World, infra: Infra, tmp_path_factory: Any) -> AsyncIterator[Any]:
    """A delivery service beside the world's gateway, oauth and sync: same topics, same database."""
    settings = make_settings(
        DeliverySettings,
        infra,
        world.sync_settings.topic_namespace,
        tmp_path_factory.mktemp("delivery"),
        encryption_keys=world.sync_settings.encryption_keys,
        egress_allow_cidrs="127.0.0.0/8",
        scheduler_poll_seconds=0.2,
        cache_refresh_seconds=0.5,
    )
    async with serve(create_app(delivery_definition(), settings)) as running:
        yield running


async def _endpoint(delivery: RunningService, workspace_id: str, url: str) -> None:
    answer = await delivery.client.post(
        "/api/outgoing-webhooks",
        json={"workspace_id": workspace_id, "name": "all", "url": url, "events": ["*"]},
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text


async def _integration(world: World, workspace_id: str) -> str:
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "slack",
            "workspace_id": workspace_id,
            "settings": {
                "bot_token": world.slack.add_bot_token(),
                "signing_secret": world.slack.signing_secret,
            },
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    integration_id: str = answer.json()["id"]
    return integration_id


def _chat_event(workspace_id: str, data: dict[str, Any]) -> bytes:
    """A `message.created` as the chat product writes it, built by hand: the model refuses
    some of what is tested here."""
    return _dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "message.created",
            "workspace_id": workspace_id,
            "occurred_at": isoformat(utcnow()),
            "actor": {"id": "u_ada", "name": "Ada"},
            "data": data,
        }
    )


def _dumps(value: Any) -> bytes:
    """JSON as any producer may write it: integers of any size (orjson refuses them)."""
    return json.dumps(value, separators=(",", ":")).encode()


def _provider_event(
    provider: str, integration_id: str, workspace_id: str, event_type: str, payload: Any
) -> bytes:
    return _dumps(
        {
            "id": f"pev_{uuid.uuid4().hex}",
            "provider": provider,
            "integration_id": integration_id,
            "workspace_id": workspace_id,
            "event_type": event_type,
            "delivery_id": uuid.uuid4().hex,
            "received_at": isoformat(utcnow()),
            "payload": payload,
        }
    )


def _slack_message(world: World, channel: str, text: str, **extra: Any) -> dict[str, Any]:
    ts = world.slack.next_ts()
    event = {"type": "message", "user": "U0ADA", "text": text, "ts": ts, "team": TEAM_ID}
    return world.slack.event_callback(channel, {**event, **extra, "event_ts": ts})


async def test_pathological_envelopes_on_every_topic_stall_no_other_workspace(
    world: World, delivery: RunningService, sink: tuple[WebhookSink, str]
) -> None:
    received, sink_url = sink
    chat, slack = world.chat, world.slack
    slack.add_user("U0ADA", "Ada Lovelace")
    # Ours: a mapped channel and an endpoint for everything, where the pathological go.
    ours_external, ours_channel = await world.slack_pair()
    await _endpoint(delivery, chat.workspace_id, f"{sink_url}/ours")
    # Theirs: another workspace with its own Slack integration, mapping and endpoint.
    theirs = await _integration(world, OTHER)
    their_external, their_channel = world.slack_channel(), f"ch_{uuid.uuid4().hex[:8]}"
    answer = await world.sync.post(
        f"/api/integrations/{theirs}/mappings",
        json={"external_channel_id": their_external, "channel_id": their_channel},
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    await _endpoint(delivery, OTHER, f"{sink_url}/theirs")

    # Everything in one partition of each topic: the pathological first, then theirs.
    def send(topic: Topic, value: bytes) -> Any:
        return chat.producer.send_and_wait(world.sync_settings.topic(topic), value, partition=0)

    bad_slack = [
        _slack_message(world, ours_external, "huge", n=HUGE),
        _slack_message(world, ours_external, "deep", nested=_nested(150)),
        _slack_message(world, ours_external, "x" * 1_000_000),
        _slack_message(world, ours_external, "odd keys", **_odd_keys()),
        _slack_message(world, ours_external, "odd blocks", blocks=[_odd_keys(), {"n": HUGE}]),
    ]
    for data in _pathological_data(ours_channel):
        await send(Topic.CHAT_EVENTS, _chat_event(chat.workspace_id, data))
    for payload in bad_slack:
        await send(
            Topic.PROVIDER_EVENTS,
            _provider_event(
                "slack",
                world.slack_integration,
                chat.workspace_id,
                "event_callback.message",
                payload,
            ),
        )
    for payload in ({"n": HUGE}, _nested(150), {"big": "x" * 1_000_000}, _odd_keys()):
        await send(
            Topic.PROVIDER_EVENTS,
            _provider_event("github", "int_github_ours", chat.workspace_id, "push", payload),
        )

    their_text = f"theirs {uuid.uuid4().hex}"
    await send(
        Topic.CHAT_EVENTS,
        _chat_event(OTHER, {"channel_id": their_channel, "message_id": "m1", "text": their_text}),
    )
    await send(
        Topic.PROVIDER_EVENTS,
        _provider_event("github", "int_github_theirs", OTHER, "push", {"ref": "refs/heads/main"}),
    )
    await send(
        Topic.PROVIDER_EVENTS,
        _provider_event(
            "slack",
            theirs,
            OTHER,
            "event_callback.message",
            _slack_message(world, their_external, "from their Slack"),
        ),
    )

    # Theirs all arrive: delivered, posted to Slack, handed to the chat.
    delivered = await received.wait_for("/theirs", 3, timeout=60)
    types = sorted(orjson.loads(r.body)["type"] for r in delivered)
    assert types == ["github.push", "message.created", "slack.event_callback.message"], types
    posted = await until(lambda: slack.posts(their_external), timeout=60, what="their post")
    assert posted[0]["text"] == their_text
    [inbound] = await chat.received(in_channel(their_channel), timeout=60)
    assert inbound["text"] == "from their Slack"

    for service in (world.gateway.client, world.sync, delivery.client):
        ready = await service.get("/readyz")
        assert ready.status_code == 200, ready.text
