"""kill -9 the delivery process while 1,000 events flow to a loopback sink: none is lost.

The sink answers the first HELD_FROM requests and holds every later one unanswered until
the kill, so that the process is killed mid-stream by construction (whatever the
machine's speed), with attempts in flight. Duplicates are allowed (at-least-once) but must
share their `webhook-id`, so a receiver can drop them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from shared.kernel.http.tls import tls
from shared.kernel.kafka import PUBLIC_TOPICS, ensure_topics
from shared.kernel.settings import DeliverySettings
from tests.infra import Infra
from tests.support import (
    ServiceProcess,
    admin_headers,
    make_settings,
    new_namespace,
    produce_chat_events,
    serve,
)
from tests.webhook_sink import Received, WebhookSink

EVENTS = 1000
HELD_FROM = 300  # the sink's requests from this one on wait for the kill


@pytest.mark.timeout(300)
async def test_kill_9_mid_stream_loses_nothing(infra: Infra, tmp_path: Path) -> None:
    settings = make_settings(DeliverySettings, infra, new_namespace(), tmp_path, kafka_partitions=3)
    await ensure_topics(settings, [settings.topic(t) for t in PUBLIC_TOPICS])
    sink = WebhookSink()
    log = tmp_path / "delivery.log"
    env = {
        "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
        "HOOKHUB_LEASE_SECONDS": "5",
        "HOOKHUB_SCHEDULER_POLL_SECONDS": "0.2",
        "HOOKHUB_LOG_LEVEL": "WARNING",
    }
    killed = asyncio.Event()

    async def answer(request: Received) -> int:
        if next(i for i, r in enumerate(sink.at("/sink")) if r is request) >= HELD_FROM:
            await killed.wait()
        return 200

    sink.on("/sink", answer=answer)
    async with serve(sink.app(), probe="/healthz") as receiver:
        service = ServiceProcess.start("delivery", settings, log, **env)
        try:
            await service.ready()
            async with httpx.AsyncClient(
                verify=tls(), base_url=service.base_url, timeout=10
            ) as client:
                created = await client.post(
                    "/api/outgoing-webhooks",
                    json={
                        "workspace_id": "ws_kill",
                        "url": receiver.base_url + "/sink",
                        "events": ["*"],
                        "retry_schedule": [1, 1, 2, 5],
                    },
                    headers=admin_headers(),
                )
                assert created.status_code == 201, created.text

            await produce_chat_events(
                settings,
                "ws_kill",
                ({"seq": seq, "channel_id": f"ch_{seq % 7}"} for seq in range(EVENTS)),
            )

            await sink.wait_for("/sink", HELD_FROM + 1, timeout=60)
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(10)
            killed.set()  # answers to no one; the next process's requests are answered
            received_at_kill = len(sink.at("/sink"))
            assert received_at_kill < EVENTS, "killed too late to prove anything"

            service = ServiceProcess.start("delivery", settings, log, **env)
            await service.ready()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                seqs = {json.loads(r.body)["data"]["seq"] for r in sink.at("/sink")}
                if len(seqs) == EVENTS:
                    break
                await asyncio.sleep(0.5)
        finally:
            killed.set()
            await service.stop()

    ids_by_seq: dict[int, set[str]] = defaultdict(set)
    for request in sink.at("/sink"):
        ids_by_seq[json.loads(request.body)["data"]["seq"]].add(request.headers["webhook-id"])
    missing = sorted(set(range(EVENTS)) - set(ids_by_seq))
    assert not missing, f"{len(missing)} events never arrived (first: {missing[:5]}); see {log}"
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), (
        "a duplicate must share its webhook-id"
    )
