"""Benchmark "incoming": Slack-compatible incoming webhooks accepted per second by one gateway.

One `hookhub serve gateway` process; one incoming webhook created through the management API;
then a small, realistic Slack-style JSON body POSTed to its URL. Each 200 `ok` means the
message was validated, turned into a `message.received` envelope and acknowledged by Kafka
(acks=all). The baseline gets the same body on the same path; so does the minimal correct
gateway (`bench/minimal.py`), which looks the path's token up in a dict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from bench import minimal
from bench.harness import (
    BenchError,
    BenchmarkResult,
    Harness,
    Measurement,
    Server,
    kafka_check,
)
from bench.loadgen import Target
from shared.kernel.embedded import ChildProcess
from shared.kernel.envelopes import Topic

# What a CI system or monitoring tool typically posts: mrkdwn text with a link, a bot name and
# an emoji icon: 246 bytes.
BODY = json.dumps(
    {
        "text": (
            "Deploy of *api-server* `v2.14.3` to *production* finished in 4m12s "
            ":white_check_mark:\n<https://ci.example.com/builds/8812|Build #8812> "
            "triggered by alice (3 commits)"
        ),
        "username": "deploy-bot",
        "icon_emoji": ":rocket:",
        "channel": "#deploys",
    },
    separators=(",", ":"),
).encode()
HEADERS = {"Content-Type": "application/json"}


class IncomingWebhooks:
    name = "incoming"
    title = "incoming webhooks"

    def run(self, harness: Harness) -> BenchmarkResult:
        infrastructure = harness.infrastructure()
        gateway = harness.start_service("gateway")
        url = create_webhook(gateway.url, infrastructure.admin_token)
        ours = measure(harness, gateway, url)
        notes = [
            f"body: {len(BODY)} bytes of Slack-style JSON to /api/webhooks/incoming/<token>",
            kafka_check(infrastructure, Topic.CHAT_INBOUND, ours.ok),
        ]
        gateway.stop()  # leaves the cores to the baselines

        path = urlsplit(url).path
        token = path.rpartition("/")[2]
        floor, floor_notes = minimal.measure(
            harness,
            "incoming",
            Target(url, BODY, HEADERS),
            minimal.token_scheme({token: "ch_bench"}),
            Topic.CHAT_INBOUND,
            ours,
        )
        baseline = harness.baseline()
        base = harness.load(
            "baseline (bare FastAPI)",
            Target(baseline.url + path, BODY, HEADERS),
            watch=[("baseline", baseline.child)],
        )
        return BenchmarkResult(
            self.name, self.title, ours, base, [*notes, *floor_notes], minimal=floor
        )


def measure(
    harness: Harness,
    gateway: Server,
    url: str,
    label: str = "hookhub gateway",
    more: Sequence[tuple[str, ChildProcess]] = (),
) -> Measurement:
    """The run's load on the incoming webhook at `url` of a running gateway, once one post
    was accepted; the CPU of the gateway, the broker, MongoDB and `more` processes."""
    post_once(url)
    return harness.load(label, Target(url, BODY, HEADERS), watch=watching(harness, gateway, more))


def watching(
    harness: Harness, service: Server, more: Sequence[tuple[str, ChildProcess]] = ()
) -> list[tuple[str, ChildProcess]]:
    """The processes whose CPU a load run on one service reports."""
    infrastructure = harness.infrastructure()
    return [
        (service.name, service.child),
        ("kafka", infrastructure.broker),
        ("mongo", infrastructure.mongo),
        *more,
    ]


def create_webhook(gateway_url: str, admin_token: str) -> str:
    response = httpx.post(
        gateway_url + "/api/incoming-webhooks",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"workspace_id": "ws_bench", "target_channel_id": "ch_bench", "name": "bench"},
        timeout=10,
    )
    if response.status_code != 201:
        raise BenchError(f"creating the incoming webhook: {response.status_code} {response.text}")
    url: str = response.json()["url"]
    return url


def post_once(url: str) -> None:
    response = httpx.post(url, content=BODY, headers=HEADERS, timeout=10)
    if response.status_code != 200 or response.text != "ok":
        raise BenchError(f"a single post was not accepted: {response.status_code} {response.text}")


BENCHMARK = IncomingWebhooks()
