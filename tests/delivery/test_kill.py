"""kill -9 the delivery process while 1,000 events flow to a loopback sink: none is lost.

The sink answers the first HELD_FROM requests and holds every later one unanswered until
the kill, so that the process is killed mid-stream by construction (whatever the
machine's speed), with attempts in flight. Duplicates are allowed (at-least-once) but must
share their `webhook-id`, so a receiver can drop them.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path

import pytest

from tests.delivery.killing import kill_mid_stream
from tests.infra import Infra
from tests.support import serve
from tests.webhook_sink import Received, WebhookSink

EVENTS = 1000
HELD_FROM = 300  # the sink's requests from this one on wait for the kill


@pytest.mark.timeout(300)
async def test_kill_9_mid_stream_loses_nothing(infra: Infra, tmp_path: Path) -> None:
    sink = WebhookSink()
    killed = asyncio.Event()

    async def answer(request: Received) -> int:
        if next(i for i, r in enumerate(sink.at("/sink")) if r is request) >= HELD_FROM:
            await killed.wait()
        return 200

    async def arrived() -> int:
        return len({json.loads(r.body)["data"]["seq"] for r in sink.at("/sink")})

    sink.on("/sink", answer=answer)
    async with serve(sink.app(), probe="/healthz") as receiver:
        log = await kill_mid_stream(
            infra,
            tmp_path,
            {"url": receiver.base_url + "/sink"},
            events=EVENTS,
            held=lambda: len(sink.at("/sink")) > HELD_FROM,
            killed=killed,
            arrived=arrived,
        )

    ids_by_seq: dict[int, set[str]] = defaultdict(set)
    for request in sink.at("/sink"):
        ids_by_seq[json.loads(request.body)["data"]["seq"]].add(request.headers["webhook-id"])
    missing = sorted(set(range(EVENTS)) - set(ids_by_seq))
    assert not missing, f"{len(missing)} events never arrived (first: {missing[:5]}); see {log}"
    assert all(len(ids) == 1 for ids in ids_by_seq.values()), (
        "a duplicate must share its webhook-id"
    )
