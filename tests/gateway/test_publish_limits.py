"""An incoming-webhook message whose envelope Kafka will never take: 413, never the 503 that
makes a Slack-compatible client retry it for ever."""

from __future__ import annotations

import orjson

from tests.gateway.test_incoming_webhooks import create_hook
from tests.support import RunningService


async def test_a_message_too_large_for_kafka_is_a_413_naming_the_limit(
    gateway: RunningService,
) -> None:
    hook = await create_hook(gateway)
    # Under the ingress's 1 MiB, but `1e9` is written back as `1000000000.0` in the envelope.
    body = orjson.dumps({"text": "big", "blocks": [{"type": "section", "n": [0]}]})
    body = body.replace(b"[0]", b"[" + b"1e9," * 100_000 + b"1]")
    assert len(body) < 1024 * 1024
    answer = await gateway.client.post(
        hook["url"].removeprefix("http://hookhub.test"),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "HOOKHUB_KAFKA_MAX_MESSAGE_BYTES=1048576" in error["message"]
    assert "retry-after" not in answer.headers
