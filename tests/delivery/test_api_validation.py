"""What the outgoing-webhook and delivery API refuses (4xx, never a 500), and retry's rules.

Each case here answered 500 or was accepted and stored before: a PATCH with `null` or
5e-324, a custom header that would never be sent, a completed delivery resent unasked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from services.delivery.outgoing_webhooks.repository import COLLECTION as ENDPOINTS
from shared.kernel.mongo import Document
from shared.kernel.settings import DeliverySettings
from tests.delivery.test_deliveries import Sink, endpoint, path, publish
from tests.support import RunningService, admin_headers


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "internal.example"},
        {"webhook-signature": "v1,forged"},
        {"Webhook-Id": "msg_1"},
        {"X-Webhook-Signature": "x"},
        {"svix-signature": "v1,x"},
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"TraceState": "vendor=1"},
        {"Content-Type": "text/plain"},
        {"Content-Length": "5"},
        {"Transfer-Encoding": "chunked"},
        {"Connection": "close"},
        {"": "empty name"},
        {"X Tenant": "space in the name"},
        {"X-Tenant:": "colon"},
        {"X-Tenant": "a\r\nX-Injected: 1"},
        {"X-Tenant": "line\nfeed"},
        {"X-Tenant": "nul\x00"},
        {"X-Tenant": "bell\x07"},
        {"X-Tenant": "caf\u00e9"},
        {"X-Tenant": "\U00101a3a"},
        {"X-Tenant": "a", "x-tenant": "b"},
        {"X-Long": "v" * 4001},
    ],
)
async def test_headers_that_would_never_be_sent_are_refused(
    delivery: RunningService, sink: Sink, headers: dict[str, str]
) -> None:
    body = {"workspace_id": "ws_v", "url": sink[1] + path(), "events": ["*"], "headers": headers}
    created = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert created.status_code == 422, created.text
    assert created.json()["error"]["code"] == "invalid"

    existing = await endpoint(delivery, sink, path(), workspace_id="ws_v")
    patched = await delivery.client.patch(
        f"/api/outgoing-webhooks/{existing['id']}",
        json={"headers": headers},
        headers=admin_headers(),
    )
    assert patched.status_code == 422, patched.text
    fetched = await delivery.client.get(
        f"/api/outgoing-webhooks/{existing['id']}", headers=admin_headers()
    )
    assert fetched.json()["headers_configured"] == []


async def test_headers_hookhub_does_not_set_are_kept(delivery: RunningService, sink: Sink) -> None:
    headers = {"X-Tenant": "acme", "Authorization": "Bearer abc\tdef", "x-a.b_c~!": ""}
    created = await endpoint(delivery, sink, path(), workspace_id="ws_v", headers=headers)
    assert created["headers_configured"] == list(headers)


async def test_a_patch_cannot_take_an_endpoint_past_50_headers(
    delivery: RunningService, sink: Sink
) -> None:
    full = {f"X-H{i}": "v" for i in range(50)}
    created = await endpoint(delivery, sink, path(), workspace_id="ws_v", headers=full)
    url = f"/api/outgoing-webhooks/{created['id']}"
    more = await delivery.client.patch(
        url, json={"headers": {"X-More": "v"}}, headers=admin_headers()
    )
    assert more.status_code == 422, more.text
    swapped = await delivery.client.patch(
        url, json={"headers": {"X-H0": None, "X-More": "v"}}, headers=admin_headers()
    )
    assert swapped.status_code == 200, swapped.text
    assert len(swapped.json()["headers_configured"]) == 50


@pytest.mark.parametrize(
    "patch",
    [
        {"name": None},
        {"url": None},
        {"events": None},
        {"enabled": None},
        {"headers": None},
        {"retry_schedule": None},
        {"timeout_seconds": None},
        {"max_concurrency": None},
        {"name": ""},
        {"url": ""},
        {"rate_limit_per_second": 5e-324},
        {"rate_limit_per_second": 0},
        {"timeout_seconds": 0},
    ],
)
async def test_a_patch_with_null_empty_or_tiny_values_is_refused_and_changes_nothing(
    delivery: RunningService, sink: Sink, patch: dict[str, Any]
) -> None:
    created = await endpoint(delivery, sink, path(), workspace_id="ws_null")
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{created['id']}", json=patch, headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    fetched = await delivery.client.get(
        f"/api/outgoing-webhooks/{created['id']}", headers=admin_headers()
    )
    assert fetched.status_code == 200, fetched.text
    listed = await delivery.client.get(
        "/api/outgoing-webhooks", params={"workspace_id": "ws_null"}, headers=admin_headers()
    )
    assert listed.status_code == 200, listed.text


async def test_null_clears_the_rate_limit(delivery: RunningService, sink: Sink) -> None:
    created = await endpoint(delivery, sink, path(), rate_limit_per_second=5)
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{created['id']}",
        json={"rate_limit_per_second": None},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rate_limit_per_second"] is None


@pytest.mark.parametrize(
    "odd_id", ["%11", "%C2%AB%F4%89%B4%81%15", "%0B%C3%96%3CH%0Fx%C3%93%3F", "%00", "a%0Ab"]
)
async def test_ids_with_control_or_non_ascii_characters_are_not_found(
    delivery: RunningService, odd_id: str
) -> None:
    for method, route, body in (
        ("GET", "/api/outgoing-webhooks/{}", None),
        ("DELETE", "/api/outgoing-webhooks/{}", None),
        ("POST", "/api/outgoing-webhooks/{}/test", None),
        ("POST", "/api/outgoing-webhooks/{}/rotate-secret", None),
        ("POST", "/api/outgoing-webhooks/{}/recover", {"since": "2020-01-01T00:00:00Z"}),
        ("GET", "/api/deliveries/{}", None),
        ("POST", "/api/deliveries/{}/retry", None),
    ):
        answer = await delivery.client.request(
            method, route.format(odd_id), json=body, headers=admin_headers()
        )
        assert answer.status_code == 404, (method, route, answer.text)
        assert answer.json()["error"]["code"] == "not_found"


async def test_a_completed_delivery_is_resent_only_when_forced(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    p = path()
    created = await endpoint(delivery, sink, p, workspace_id="ws_force")
    await publish(delivery, "channel.created", workspace="ws_force")
    await fake.wait_for(p, 1)
    done = await _completed(delivery, created["id"])

    refused = await delivery.client.post(
        f"/api/deliveries/{done['id']}/retry", headers=admin_headers()
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "delivery_completed"
    await asyncio.sleep(0.5)
    assert len(fake.at(p)) == 1

    forced = await delivery.client.post(
        f"/api/deliveries/{done['id']}/retry",
        params={"force": "true"},
        headers=admin_headers(),
    )
    assert forced.status_code == 202, forced.text
    first, second = await fake.wait_for(p, 2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def _completed(delivery: RunningService, webhook_id: str) -> dict[str, Any]:
    for _ in range(100):
        listed = (
            await delivery.client.get(
                "/api/deliveries",
                params={"webhook_id": webhook_id, "status": "completed"},
                headers=admin_headers(),
            )
        ).json()["data"]
        if listed:
            found: dict[str, Any] = listed[0]
            return found
        await asyncio.sleep(0.1)
    pytest.fail(f"no completed delivery for {webhook_id}")


# -- an endpoint's circuit breaker (SPEC §17) -----------------------------------------------

BREAKER_DEFAULTS = {"enabled": True, "failure_ratio": 0.5, "window": 20, "cool_down_seconds": None}


@pytest.mark.parametrize(
    ("tuning", "field"),
    [
        ({"failure_ratio": 0}, "failure_ratio"),  # would open on nothing
        ({"failure_ratio": -0.5}, "failure_ratio"),
        ({"failure_ratio": 1.5}, "failure_ratio"),
        ({"failure_ratio": "half"}, "failure_ratio"),
        ({"window": 0}, "window"),
        ({"window": 1001}, "window"),
        ({"window": 2.5}, "window"),
        ({"cool_down_seconds": 0}, "cool_down_seconds"),  # a probe loop
        ({"cool_down_seconds": 86401}, "cool_down_seconds"),
        ({"enabled": "sometimes"}, "enabled"),
        ({"ratio": 0.5}, "ratio"),  # a misspelt field is not ignored
    ],
)
async def test_a_circuit_breaker_out_of_range_is_refused_naming_its_field(
    delivery: RunningService, sink: Sink, tuning: dict[str, Any], field: str
) -> None:
    body = {"workspace_id": "ws_v", "url": sink[1] + path(), "events": ["*"]}
    created = await delivery.client.post(
        "/api/outgoing-webhooks", json={**body, "circuit_breaker": tuning}, headers=admin_headers()
    )
    assert created.status_code == 422, created.text
    locs = [detail["loc"] for detail in created.json()["error"]["details"]]
    assert ["body", "circuit_breaker", field] in locs, locs

    existing = await endpoint(delivery, sink, path(), workspace_id="ws_v")
    url = f"/api/outgoing-webhooks/{existing['id']}"
    patched = await delivery.client.patch(
        url, json={"circuit_breaker": tuning}, headers=admin_headers()
    )
    assert patched.status_code == 422, patched.text
    locs = [detail["loc"] for detail in patched.json()["error"]["details"]]
    assert ["body", "circuit_breaker", field] in locs, locs
    fetched = await delivery.client.get(url, headers=admin_headers())
    assert fetched.json()["circuit_breaker"] == BREAKER_DEFAULTS


async def test_a_patch_tunes_the_breaker_field_by_field_and_an_older_endpoint_has_the_defaults(
    delivery: RunningService, delivery_settings: DeliverySettings, sink: Sink
) -> None:
    created = await endpoint(
        delivery, sink, path(), circuit_breaker={"window": 10, "cool_down_seconds": 60}
    )
    assert created["circuit_breaker"] == {**BREAKER_DEFAULTS, "window": 10, "cool_down_seconds": 60}
    url = f"/api/outgoing-webhooks/{created['id']}"

    async def patch(tuning: dict[str, Any]) -> dict[str, Any]:
        answer = await delivery.client.patch(
            url, json={"circuit_breaker": tuning}, headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        shown: dict[str, Any] = answer.json()["circuit_breaker"]
        read = await delivery.client.get(url, headers=admin_headers())
        assert read.json()["circuit_breaker"] == shown
        return shown

    tuned = {**BREAKER_DEFAULTS, "window": 10, "cool_down_seconds": 60, "failure_ratio": 0.8}
    assert await patch({"failure_ratio": 0.8}) == tuned
    assert await patch({"cool_down_seconds": None}) == {**tuned, "cool_down_seconds": None}
    refused = await delivery.client.patch(
        url, json={"circuit_breaker": {"window": None}}, headers=admin_headers()
    )
    assert refused.status_code == 422, refused.text

    # An endpoint stored before the setting existed: today's defaults, and a PATCH of one
    # field keeps them for the others.
    client: AsyncMongoClient[Document] = AsyncMongoClient(delivery_settings.mongo_uri)
    try:
        endpoints = client[delivery_settings.mongo_db][ENDPOINTS]
        await endpoints.update_one({"_id": created["id"]}, {"$unset": {"circuit_breaker": ""}})
    finally:
        await client.close()
    read = await delivery.client.get(url, headers=admin_headers())
    assert read.json()["circuit_breaker"] == BREAKER_DEFAULTS
    assert await patch({"enabled": False}) == {**BREAKER_DEFAULTS, "enabled": False}

    # The OpenAPI document says so: the setting read, and taken on create and PATCH.
    schemas = (await delivery.client.get("/openapi.json")).json()["components"]["schemas"]
    assert "circuit_breaker" in schemas["OutgoingWebhookOut"]["required"]
    tuning = schemas["CircuitBreaker"]["properties"]
    assert {name: prop.get("default") for name, prop in tuning.items()} == BREAKER_DEFAULTS
    assert tuning["failure_ratio"]["exclusiveMinimum"] == 0
    assert (tuning["window"]["minimum"], tuning["window"]["maximum"]) == (1, 1000)
    patched = schemas["CircuitBreakerUpdate"]["properties"]
    assert patched.keys() == tuning.keys()
    assert "default" not in patched["window"]  # left out: kept
