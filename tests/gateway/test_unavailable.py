"""Kafka or MongoDB going away: 503 and nothing acknowledged, or serve on from the cache.

These stop and restart servers, so each test starts its own embedded broker or database
(real servers, never mocks) instead of touching the session's shared ones.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from services.gateway.app import definition
from services.oauth.app import definition as oauth_definition
from services.sandbox.telegram import FakeTelegram
from shared.domain.platform import create_app
from shared.kernel.embedded import free_port, start_broker, start_mongo
from shared.kernel.envelopes import Topic
from shared.kernel.kafka import PUBLIC_TOPICS, ensure_topics
from shared.kernel.settings import GatewaySettings, ServiceSettings
from tests.gateway.signing import provider_cases
from tests.infra import Infra
from tests.support import KafkaTap, admin_headers, make_settings, new_namespace, serve


async def _hook(client: httpx.AsyncClient) -> str:
    answer = await client.post(
        "/api/incoming-webhooks",
        json={"workspace_id": "ws", "target_channel_id": "ch_1"},
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    return httpx.URL(answer.json()["url"]).path


async def test_kafka_down_answers_503_and_acknowledges_nothing(
    infra: Infra, tmp_path: Path
) -> None:
    """For incoming webhooks and every provider: 503 while Kafka is away, and what was
    refused never shows up later (the producer's batches expire, they are not sent late)."""
    fake = FakeTelegram()
    fake.add_bot("1:ok", 1, "bot")
    port = free_port()
    broker = start_broker(port, tmp_path / "logs")
    private = Infra("embedded", f"127.0.0.1:{port}", infra.mongo_uri)
    settings = make_settings(
        GatewaySettings, private, new_namespace(), tmp_path, kafka_publish_timeout_seconds=2.0
    )
    cases = provider_cases()
    try:
        async with (
            serve(fake.app(), probe="/healthz") as telegram,
            serve(create_app(definition(), settings)) as gateway,
            serve(
                create_app(
                    oauth_definition(),
                    ServiceSettings.model_validate(
                        {**settings.model_dump(), "telegram_api_base": telegram.base_url}
                    ),
                )
            ) as oauth,
        ):
            hook_path = await _hook(gateway.client)
            paths = {}
            for name, case in cases.items():
                created = await oauth.client.post(
                    "/api/integrations",
                    json={"provider": name, "workspace_id": "ws", "settings": case.settings},
                    headers=admin_headers(),
                )
                assert created.status_code == 201, created.text
                paths[name] = f"/api/webhooks/{name}/{created.json()['id']}"
            assert (
                await gateway.client.post(hook_path, json={"text": "before"})
            ).status_code == 200

            broker.kill()
            # Each is answered once its publish has timed out (2 s): sent together, they
            # wait it out together.
            down = {
                name: case.valid("d0d0d0" + name.encode().hex()[:6]) for name, case in cases.items()
            }
            refused, *answers = await asyncio.gather(
                gateway.client.post(hook_path, json={"text": "while-down"}),
                *(
                    gateway.client.post(paths[name], content=one.body, headers=one.headers)
                    for name, one in down.items()
                ),
            )
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "kafka_unavailable"
            assert refused.headers["retry-after"]
            for name, answer in zip(down, answers, strict=True):
                assert answer.status_code == 503, (name, answer.text)
            metrics = (await gateway.client.get("/metrics")).text
            for name in cases:
                assert (
                    f'hookhub_gateway_webhooks_total{{outcome="unavailable",provider="{name}"}} 1.0'
                    in metrics
                ), name
            ready = await gateway.client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["kafka"] != "ok"

            # Back again (empty: the embedded broker keeps topics in memory).
            broker = start_broker(port, tmp_path / "logs")
            await ensure_topics(settings, [settings.topic(t) for t in PUBLIC_TOPICS])
            for _ in range(100):
                answer = await gateway.client.post(hook_path, json={"text": "after"})
                if answer.status_code == 200:
                    break
                assert answer.status_code == 503
                await asyncio.sleep(0.2)
            assert answer.status_code == 200
            for name, case in cases.items():
                signed = case.valid("a0a0a0" + name.encode().hex()[:6])
                answer = await gateway.client.post(
                    paths[name], content=signed.body, headers=signed.headers
                )
                assert answer.status_code == 200, (name, answer.text)
            await asyncio.sleep(3)  # room for a late send of a refused message, were there one
            seen = ""
            for topic in (Topic.CHAT_INBOUND, Topic.PROVIDER_EVENTS):
                async with KafkaTap(private.kafka_bootstrap, settings.topic(topic)) as tap:
                    seen += json.dumps(await tap.settled())
            assert "while-down" not in seen
            assert "d0d0d0" not in seen
            assert "after" in seen
            assert seen.count("a0a0a0") >= len(cases)
    finally:
        broker.stop()


async def test_mongo_down_management_503_and_ingress_serves_known_tokens(
    infra: Infra, tmp_path: Path
) -> None:
    port = free_port()
    mongo = start_mongo(port, tmp_path / "mongo", tmp_path / "logs")
    private = Infra("embedded", infra.kafka_bootstrap, f"mongodb://127.0.0.1:{port}")
    settings = make_settings(
        GatewaySettings, private, new_namespace(), tmp_path, mongo_timeout_seconds=1.0
    )
    try:
        async with serve(create_app(definition(), settings)) as gateway:
            path = await _hook(gateway.client)
            # A clean stop: an outage, not a crash (SecantusDB may lose the last second of
            # writes to kill -9 unless run with --sync-on-commit; see docs/operations.md).
            mongo.stop()

            # Those that ask the database are answered once it has timed out (1 s): sent
            # together, they wait it out together.
            listing, known, unknown, ready = await asyncio.gather(
                gateway.client.get("/api/incoming-webhooks", headers=admin_headers()),
                gateway.client.post(path, json={"text": "from the cache"}),
                gateway.client.post("/api/webhooks/incoming/hhwh_unknown", json={"text": "?"}),
                gateway.client.get("/readyz"),
            )
            assert listing.status_code == 503
            assert listing.json()["error"]["code"] == "database_unavailable"
            assert known.status_code == 200, known.text
            assert unknown.status_code == 503, "cannot tell unknown from new while blind"
            assert ready.status_code == 503
            assert ready.json()["checks"]["mongo"].startswith("unreachable")

            async with KafkaTap(infra.kafka_bootstrap, settings.topic(Topic.CHAT_INBOUND)) as tap:
                [message] = await tap.wait_for(lambda v: v["text"] == "from the cache")
            assert message["channel_id"] == "ch_1"

            mongo = start_mongo(port, tmp_path / "mongo", tmp_path / "logs")
            deadline = time.monotonic() + 40
            while True:
                try:
                    listing = await gateway.client.get(
                        "/api/incoming-webhooks", headers=admin_headers(), timeout=15
                    )
                except httpx.TimeoutException:  # the server still coming back: ask again
                    assert time.monotonic() < deadline, "no answer since the database restarted"
                    continue
                if listing.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert [hook["id"] for hook in listing.json()["data"]], "data survived the restart"
    finally:
        mongo.stop()
