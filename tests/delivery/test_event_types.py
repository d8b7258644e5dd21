"""The event type catalog (SPEC §17): its API and scoping, schemas refused at the door, and
enforcement at POST /api/events and on `hookhub.chat.events`."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from services.delivery.event_types.catalog import Catalog
from shared.domain import api_keys
from shared.kernel.envelopes import Topic
from shared.kernel.ids import utcnow
from shared.kernel.kafka import DEAD_LETTER_TOPIC
from shared.kernel.mongo import Document
from shared.kernel.settings import DeliverySettings
from tests.delivery.test_deliveries import Sink, endpoint, path
from tests.support import KafkaTap, RunningService, admin_headers

CHANNEL_SCHEMA = {
    "type": "object",
    "properties": {"channel_id": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["channel_id", "count"],
}


def kind() -> str:
    """A type name of its own per test: the catalog is the module's database's."""
    return f"etest.t{uuid.uuid4().hex[:10]}"


async def key_of(settings: DeliverySettings, workspace: str, scopes: list[str]) -> dict[str, str]:
    """A workspace API key's headers (issued into the database as the oauth service would)."""
    token, key = api_keys.issue(api_keys.KEY, workspace, "catalog test", scopes, None)
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongo_uri)
    try:
        await client[settings.mongo_db][api_keys.COLLECTION].insert_one(key)
    finally:
        await client.close()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def keys(delivery_settings: DeliverySettings) -> AsyncIterator[dict[str, dict[str, str]]]:
    yield {
        "a": await key_of(delivery_settings, "ws_cat_a", ["read", "write"]),
        "b": await key_of(delivery_settings, "ws_cat_b", ["read", "write"]),
        "a_read": await key_of(delivery_settings, "ws_cat_a", ["read"]),
    }


async def create(
    delivery: RunningService, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    answer = await delivery.client.post(
        "/api/event-types", json=body, headers=headers or admin_headers()
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def enforced(delivery: RunningService, sink: Sink, workspace: str) -> tuple[str, str]:
    """An endpoint of `workspace` taking every event (its path), and a new global type
    enforcing CHANNEL_SCHEMA (its name)."""
    hook, name = path(), kind()
    await endpoint(delivery, sink, hook, workspace_id=workspace)
    await create(delivery, name=name, schema=CHANNEL_SCHEMA, enforce=True)
    return hook, name


def event(event_type: str, workspace: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "workspace_id": workspace,
        "occurred_at": utcnow().isoformat(),
        "data": data,
    }


async def produce(settings: DeliverySettings, channel: str, events: list[dict[str, Any]]) -> None:
    """`events` straight to `hookhub.chat.events`, as the chat product writes them: one key,
    so one partition, in this order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in events:
            await producer.send_and_wait(
                settings.topic(Topic.CHAT_EVENTS), json.dumps(value).encode(), key=channel.encode()
            )
    finally:
        await producer.stop()


def catalog_of(delivery: RunningService) -> Catalog:
    found = cast(Any, delivery.app).state.event_type_catalog
    assert isinstance(found, Catalog)
    return found


def sample(delivery: RunningService, name: str, **labels: str) -> float:
    registry = cast(Any, delivery.app).state.runtime.registry
    return float(registry.get_sample_value(name, labels) or 0)


async def test_a_global_type_round_trips_and_a_workspace_shadows_it_for_itself_alone(
    delivery: RunningService, keys: dict[str, dict[str, str]]
) -> None:
    name = kind()
    example = {"channel_id": "ch_1", "count": 2}
    made = await create(
        delivery,
        name=name,
        description="a count in a channel",
        schema=CHANNEL_SCHEMA,
        examples=[example],
    )
    assert made["workspace_id"] is None and made["schema"] == CHANNEL_SCHEMA
    assert made["examples"] == [example] and made["enforce"] is False
    again = await delivery.client.post(
        "/api/event-types", json={"name": name}, headers=admin_headers()
    )
    assert again.status_code == 409, again.text

    # Workspace a shadows it with its own; b still sees the global one.
    own = await create(
        delivery, keys["a"], name=name, workspace_id="ws_cat_a", schema={"type": "object"}
    )
    seen_by_a = (await delivery.client.get(f"/api/event-types/{name}", headers=keys["a"])).json()
    seen_by_b = (await delivery.client.get(f"/api/event-types/{name}", headers=keys["b"])).json()
    assert seen_by_a["id"] == own["id"] and seen_by_b["id"] == made["id"]
    admin_view = await delivery.client.get(
        f"/api/event-types/{name}", params={"workspace_id": "ws_cat_a"}, headers=admin_headers()
    )
    assert admin_view.json()["id"] == own["id"]

    listed_a = await delivery.client.get("/api/event-types", headers=keys["a"])
    ids_a = [t["id"] for t in listed_a.json()["data"]]
    assert own["id"] in ids_a and made["id"] not in ids_a  # shadowed
    listed_b = await delivery.client.get(
        "/api/event-types", params={"workspace_id": "ws_cat_a"}, headers=keys["b"]
    )
    ids_b = [t["id"] for t in listed_b.json()["data"]]
    assert made["id"] in ids_b and own["id"] not in ids_b  # b's view, whatever it asks

    # b can neither change a's type nor the global one, nor create in a.
    patched = await delivery.client.patch(
        f"/api/event-types/{name}",
        json={"description": "b's"},
        params={"workspace_id": "ws_cat_a"},
        headers=keys["b"],
    )
    assert patched.status_code == 403 and patched.json()["error"]["code"] == "admin_only"
    deleted = await delivery.client.delete(f"/api/event-types/{name}", headers=keys["b"])
    assert deleted.status_code == 403
    into_a = await delivery.client.post(
        "/api/event-types", json={"name": kind(), "workspace_id": "ws_cat_a"}, headers=keys["b"]
    )
    assert into_a.status_code == 403, into_a.text
    global_by_key = await delivery.client.post(
        "/api/event-types", json={"name": kind()}, headers=keys["b"]
    )
    assert global_by_key.json()["error"]["code"] == "admin_only"
    only_a = kind()
    await create(delivery, keys["a"], name=only_a, workspace_id="ws_cat_a")
    for method in ("GET", "DELETE"):
        hidden = await delivery.client.request(
            method, f"/api/event-types/{only_a}", headers=keys["b"]
        )
        assert hidden.status_code == 404, (method, hidden.text)
    read_only = await delivery.client.patch(
        f"/api/event-types/{only_a}", json={"deprecated": True}, headers=keys["a_read"]
    )
    assert read_only.status_code == 403

    # a changes and deletes its own; the global one is back for it.
    changed = await delivery.client.patch(
        f"/api/event-types/{name}", json={"deprecated": True}, headers=keys["a"]
    )
    assert changed.json()["deprecated"] is True and changed.json()["id"] == own["id"]
    gone = await delivery.client.delete(f"/api/event-types/{name}", headers=keys["a"])
    assert gone.status_code == 204
    back = (await delivery.client.get(f"/api/event-types/{name}", headers=keys["a"])).json()
    assert back["id"] == made["id"] and back["deprecated"] is False
    # The name is free again for a.
    await create(delivery, keys["a"], name=name, workspace_id="ws_cat_a")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"schema": {"type": "objekt"}}, "schema.type: 'objekt' is not valid"),
        ({"schema": {"properties": {"n": {"minimum": "1"}}}}, "schema.properties.n.minimum:"),
        (
            {"schema": {"$schema": "http://json-schema.org/draft-07/schema#"}},
            "is not JSON Schema 2020-12",
        ),
        ({"schema": {"$ref": "https://example.com/s.json"}}, "references must be local"),
        ({"schema": {"$ref": "#/$defs/missing"}}, "points nowhere"),
        ({"schema": {"maximum": 2**70}}, "schema.maximum: integer outside 64 bits"),
        (
            {
                "schema": {
                    "properties": {"x": {"$ref": "#/$defs/a"}},
                    "$defs": {"a": {"$ref": "#/$defs/a"}},
                },
                "examples": [{"x": 1}],
            },
            "references loop without end",
        ),
        (
            {"schema": CHANNEL_SCHEMA, "examples": [{"channel_id": "c", "count": "2"}]},
            "examples[0]: data.count: '2' is not of type 'integer'",
        ),
    ],
)
async def test_a_schema_that_cannot_be_applied_is_refused_naming_the_problem(
    delivery: RunningService, body: dict[str, Any], named: str
) -> None:
    name = kind()
    answer = await delivery.client.post(
        "/api/event-types", json={"name": name, **body}, headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["error"]["message"]
    assert (
        await delivery.client.get(f"/api/event-types/{name}", headers=admin_headers())
    ).status_code == 404
    # And as a change of a type that exists: refused, the type left as it was.
    await create(delivery, name=name, schema=CHANNEL_SCHEMA)
    patched = await delivery.client.patch(
        f"/api/event-types/{name}", json=body, headers=admin_headers()
    )
    assert patched.status_code == 422, patched.text
    kept = (await delivery.client.get(f"/api/event-types/{name}", headers=admin_headers())).json()
    assert kept["schema"] == CHANNEL_SCHEMA and kept["examples"] == []


async def test_an_enforced_schema_refuses_an_event_at_the_api_naming_the_path(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    hook, name = await enforced(delivery, sink, "ws_cat_api")
    before = sample(
        delivery, "hookhub_delivery_events_refused_total", source="api", reason="schema"
    )
    bad = event(name, "ws_cat_api", {"channel_id": "ch_api", "count": "x"})
    answer = await delivery.client.post("/api/events", json=bad, headers=admin_headers())
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_event"
    assert error["message"].startswith("data.count: 'x' is not of type 'integer'")
    missing = event(name, "ws_cat_api", {"channel_id": "ch_api"})
    answer = await delivery.client.post("/api/events", json=missing, headers=admin_headers())
    assert answer.json()["error"]["message"].startswith("data: 'count' is a required property")
    assert (
        sample(delivery, "hookhub_delivery_events_refused_total", source="api", reason="schema")
        == before + 2
    )

    good = event(name, "ws_cat_api", {"channel_id": "ch_api", "count": 3})
    answer = await delivery.client.post("/api/events", json=good, headers=admin_headers())
    assert answer.status_code == 202, answer.text
    [received] = await fake.wait_for(hook, 1)
    assert json.loads(received.body)["data"] == good["data"]
    # Not enforced any more: the schema documents only.
    await delivery.client.patch(
        f"/api/event-types/{name}", json={"enforce": False}, headers=admin_headers()
    )
    answer = await delivery.client.post("/api/events", json=bad, headers=admin_headers())
    assert answer.status_code == 202, answer.text


async def test_an_event_on_kafka_that_fails_is_dead_lettered_counted_and_the_partition_goes_on(
    delivery: RunningService, delivery_settings: DeliverySettings, sink: Sink
) -> None:
    fake, _ = sink
    hook, name = await enforced(delivery, sink, "ws_cat_kafka")
    labels = {"consumer": "delivery.fanout", "reason": "refused"}
    before = sample(delivery, "hookhub_consumer_dead_letters_total", **labels)
    channel = "ch_cat_" + uuid.uuid4().hex[:8]
    datas: list[dict[str, Any]] = [
        {"channel_id": channel, "count": "x"},
        {"channel_id": channel},
        {"channel_id": channel, "count": 1},
    ]
    await produce(delivery_settings, channel, [event(name, "ws_cat_kafka", data) for data in datas])
    [received] = await fake.wait_for(hook, 1)  # the valid one, behind the two refused
    assert json.loads(received.body)["data"] == datas[2]
    assert sample(delivery, "hookhub_consumer_dead_letters_total", **labels) == before + 2
    async with KafkaTap.of(delivery_settings, DEAD_LETTER_TOPIC) as tap:
        ours = await tap.holding(channel.encode(), 2)  # written before they were counted
    reasons = [dict(record.headers)["hookhub-reason"].decode() for record in ours]
    assert reasons[0].startswith("data.count: 'x' is not of type 'integer'"), reasons
    assert reasons[1].startswith("data: 'count' is a required property"), reasons


@pytest.fixture
def strict(delivery: RunningService) -> Iterator[Catalog]:
    """The module's service in strict mode (HOOKHUB_EVENT_TYPES_STRICT, read into
    `Catalog.strict` at start: tests/shared covers the setting) for one test."""
    catalog = catalog_of(delivery)
    catalog.strict = True
    try:
        yield catalog
    finally:
        catalog.strict = False


async def test_strict_mode_refuses_types_the_catalog_does_not_hold(
    delivery: RunningService, delivery_settings: DeliverySettings, sink: Sink, strict: Catalog
) -> None:
    fake, _ = sink
    hook = path()
    await endpoint(delivery, sink, hook, workspace_id="ws_cat_strict")
    known, unknown = kind(), kind()
    await create(delivery, name=known)
    answer = await delivery.client.post(
        "/api/events", json=event(unknown, "ws_cat_strict", {}), headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "unknown_event_type"
    assert unknown in answer.json()["error"]["message"]

    before = sample(
        delivery, "hookhub_delivery_events_refused_total", source="kafka", reason="unknown_type"
    )
    channel = "ch_strict_" + uuid.uuid4().hex[:8]
    await produce(
        delivery_settings,
        channel,
        [event(t, "ws_cat_strict", {"channel_id": channel}) for t in (unknown, known)],
    )
    [received] = await fake.wait_for(hook, 1)
    assert json.loads(received.body)["type"] == known
    assert (
        sample(
            delivery, "hookhub_delivery_events_refused_total", source="kafka", reason="unknown_type"
        )
        == before + 1
    )


def test_strict_mode_is_the_setting_and_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DeliverySettings.model_construct().event_types_strict is False
    monkeypatch.setenv("HOOKHUB_EVENT_TYPES_STRICT", "true")
    assert DeliverySettings(admin_token="x").event_types_strict is True


async def test_the_global_catalog_is_served_for_the_asyncapi_document_without_workspaces(
    delivery: RunningService, keys: dict[str, dict[str, str]]
) -> None:
    shared, own = kind(), kind()
    await create(
        delivery, name=shared, schema=CHANNEL_SCHEMA, examples=[{"channel_id": "c", "count": 1}]
    )
    await create(delivery, keys["a"], name=own, workspace_id="ws_cat_a")
    answer = await delivery.client.get("/asyncapi/event-types")
    assert answer.status_code == 200
    names = {entry["name"]: entry for entry in answer.json()["data"]}
    assert shared in names and own not in names
    assert names[shared]["schema"] == CHANNEL_SCHEMA
