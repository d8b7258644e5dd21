"""The delivery service's API at its edges: events too large for Kafka, and what an endpoint
receives during a secret rotation."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
import standardwebhooks.webhooks

from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.kernel.ids import utcnow
from tests.delivery.test_deliveries import Sink, endpoint, path, publish
from tests.support import RunningService, admin_headers


def _event(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "type": "message.created",
        "workspace_id": "ws_rot",
        "occurred_at": utcnow().isoformat(),
        "data": data,
    }


async def test_an_event_too_large_for_kafka_is_a_413_naming_the_limit_never_a_503(
    delivery: RunningService,
) -> None:
    # A body over the API's limit: refused before it is read.
    body = orjson.dumps(_event({"text": "x" * (1024 * 1024 + 1)}))
    answer = await delivery.client.post(
        "/api/events",
        content=body,
        headers={**admin_headers(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert "HOOKHUB_API_MAX_BODY_BYTES" in answer.json()["error"]["message"]
    assert "retry-after" not in answer.headers

    # A body under it whose envelope is not: `1e9` is written back as `1000000000.0`.
    body = orjson.dumps(_event({"n": [0]})).replace(b"[0]", b"[" + b"1e9," * 100_000 + b"1]")
    assert len(body) < 1024 * 1024
    answer = await delivery.client.post(
        "/api/events",
        content=body,
        headers={**admin_headers(), "Content-Type": "application/json"},
    )
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "HOOKHUB_KAFKA_MAX_MESSAGE_BYTES=1048576" in error["message"]
    assert "retry-after" not in answer.headers


def _compat(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_during_a_rotation_every_delivery_is_signed_with_both_secrets_at_once(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    p = path()
    hook = await endpoint(delivery, sink, p, workspace_id="ws_rot")
    secrets = [hook["secret"]]
    for round_ in range(1, 4):
        rotated = await delivery.client.post(
            f"/api/outgoing-webhooks/{hook['id']}/rotate-secret", headers=admin_headers()
        )
        assert rotated.status_code == 200, rotated.text
        secrets.append(rotated.json()["secret"])
        # Published at once: the replica that rotated signs with the new secret already.
        await publish(delivery, "message.created", "ws_rot", round=round_)
        request = (await fake.wait_for(p, round_))[-1]
        entries = request.headers["webhook-signature"].split(" ")
        assert len(entries) == len(secrets), entries
        for secret in secrets:
            standardwebhooks.webhooks.Webhook(secret).verify(request.body, request.headers)
        # The compat header stays on the secret its receivers have: the first one.
        assert request.headers["x-webhook-signature"] == _compat(secrets[0], request.body)


async def test_the_compat_header_moves_to_the_new_secret_when_the_grace_period_ends(
    delivery: RunningService, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The grace period ends when the test moves the signing clock past it, however long
    # the first delivery took (a 2 s grace could end before it went out).
    later = [timedelta(0)]
    signing_secrets = EndpointSnapshot.signing_secrets
    monkeypatch.setattr(
        EndpointSnapshot,
        "signing_secrets",
        lambda endpoint, now: signing_secrets(endpoint, now + later[0]),
    )
    fake, _ = sink
    p = path()
    created = await endpoint(delivery, sink, p, workspace_id="ws_rot")
    old = created["secret"]
    rotated = await delivery.client.post(
        f"/api/outgoing-webhooks/{created['id']}/rotate-secret",
        json={"grace_seconds": 3600},
        headers=admin_headers(),
    )
    new = rotated.json()["secret"]
    await publish(delivery, "message.created", "ws_rot")
    [during] = await fake.wait_for(p, 1)
    assert during.headers["x-webhook-signature"] == _compat(old, during.body)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    later[0] = timedelta(seconds=3601)
    await publish(delivery, "message.created", "ws_rot")
    after = (await fake.wait_for(p, 2))[-1]
    assert after.headers["x-webhook-signature"] == _compat(new, after.body)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    standardwebhooks.webhooks.Webhook(new).verify(after.body, after.headers)
