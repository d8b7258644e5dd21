"""A delivery process killed (SIGKILL) mid-stream and started again: what
tests/delivery/test_kill.py and the destinations' kill test share. Each holds its
receiver's answers from some request on until `killed` is set, so that the kill comes
mid-stream by construction, whatever the machine's speed."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

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
    until,
)

WORKSPACE = "ws_kill"
ENV = {
    "HOOKHUB_EGRESS_ALLOW_CIDRS": "127.0.0.0/8",
    "HOOKHUB_LEASE_SECONDS": "5",
    "HOOKHUB_SCHEDULER_POLL_SECONDS": "0.2",
    "HOOKHUB_LOG_LEVEL": "WARNING",
}


async def kill_mid_stream(
    infra: Infra,
    tmp_path: Path,
    target: dict[str, Any],
    *,
    events: int,
    held: Callable[[], bool],
    killed: asyncio.Event,
    arrived: Callable[[], Awaitable[int]],
    env: dict[str, str] | None = None,
) -> Path:
    """`events` chat events (`data.seq` numbering them) to one endpoint (`target`: its
    `url` or `destination`) of a delivery process killed once `held()` (its receiver holds
    what comes after), then started again; returns once `arrived()` (the distinct events
    its receiver has) reaches `events` or three minutes pass. The process's log's path."""
    settings = make_settings(DeliverySettings, infra, new_namespace(), tmp_path, kafka_partitions=3)
    await ensure_topics(settings, [settings.topic(t) for t in PUBLIC_TOPICS])
    log = tmp_path / "delivery.log"
    environment = {**ENV, **(env or {})}
    service = ServiceProcess.start("delivery", settings, log, **environment)
    try:
        await service.ready()
        async with httpx.AsyncClient(verify=tls(), base_url=service.base_url, timeout=10) as client:
            created = await client.post(
                "/api/outgoing-webhooks",
                json={
                    "workspace_id": WORKSPACE,
                    "events": ["*"],
                    "retry_schedule": [1, 1, 2, 5],
                    **target,
                },
                headers=admin_headers(),
            )
            assert created.status_code == 201, created.text
        await produce_chat_events(
            settings,
            WORKSPACE,
            ({"seq": seq, "channel_id": f"ch_{seq % 7}"} for seq in range(events)),
        )
        await until(held, timeout=60, what="the receiver holding the later requests")
        service.process.send_signal(signal.SIGKILL)
        service.process.wait(10)
        killed.set()  # answers to no one; the next process's requests are answered
        assert await arrived() < events, "killed too late to prove anything"
        service = ServiceProcess.start("delivery", settings, log, **environment)
        await service.ready()
        deadline = time.monotonic() + 180
        while await arrived() < events and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        killed.set()
        await service.stop()
    return log
