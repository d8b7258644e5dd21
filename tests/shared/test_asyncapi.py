"""The AsyncAPI document the edge serves: valid, complete, and the envelopes' own schemas.

Validated against the official AsyncAPI 3.0.0 JSON schema, vendored in schemas/ (from the
npm package @asyncapi/specs 6.11.1, `schemas/3.0.0-without-$id.json`; Apache-2.0, its
LICENSE and NOTICE beside it), so the check runs offline.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from services.asyncapi import CHANNELS, Channel, render_html, with_event_types
from services.cli import SERVICES, load_definition
from services.edge import create_edge_app
from shared.kernel.kafka import topic_names
from shared.kernel.settings import Settings
from tests.support import RunningService, consumed, serve

NAMES = Settings.model_construct()  # topic and group names without a test namespace
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json").read_text())


@pytest.fixture(scope="module")
async def edge() -> AsyncIterator[RunningService]:
    async with serve(create_edge_app({}), probe="/healthz") as running:
        yield running


@pytest.fixture(scope="module")
async def document(edge: RunningService) -> dict[str, Any]:
    answer = await edge.client.get("/asyncapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    return body


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_document_is_valid_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert schema_errors(document) == []


def test_the_schema_check_can_fail(document: dict[str, Any]) -> None:
    """The vendored schema does refuse what is not AsyncAPI 3.0.0."""
    broken = copy.deepcopy(document)
    first = next(iter(broken["operations"].values()))
    first["action"] = "publish"  # AsyncAPI 2's word; 3.0 has send and receive
    del broken["info"]["version"]
    errors = schema_errors(broken)
    assert any("'publish'" in error for error in errors), errors
    assert any("'version' is a required property" in error for error in errors), errors


def by_address(document: dict[str, Any], action: str) -> dict[str, list[str]]:
    """Channel address → names of the operations with that action on it."""
    found: dict[str, list[str]] = {}
    for name, operation in document["operations"].items():
        if operation["action"] == action:
            channel = document["channels"][operation["channel"]["$ref"].rsplit("/", 1)[-1]]
            found.setdefault(channel["address"], []).append(name)
    return found


def test_every_topic_hookhub_uses_is_written_in_the_document(document: dict[str, Any]) -> None:
    """The topics `hookhub topics ensure` creates (public, dead letters, every service's
    internal ones): each has a send operation."""
    internal = [topic for name in SERVICES for topic in load_definition(name).internal_topics]
    expected = set(topic_names(NAMES, internal))
    assert len(expected) >= 6
    assert set(by_address(document, "send")) == expected


def test_every_consumer_group_of_the_services_is_a_receive_operation(
    document: dict[str, Any],
) -> None:
    """What the services' code really subscribes: each (group, topic) is a receive
    operation named after its group, on that topic; and nothing more."""
    subscribed = {pair for name in SERVICES for pair in consumed(name)}
    assert len(subscribed) >= 4
    received = {
        (group, address)
        for address, groups in by_address(document, "receive").items()
        for group in groups
    }
    assert received == subscribed


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/components/schemas/"), ref
    schema: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.topic)
def test_a_topic_s_payload_is_its_envelope_model_s_schema(
    document: dict[str, Any], channel: Channel
) -> None:
    payloads = [
        message["payload"]["$ref"]
        for name, message in document["components"]["messages"].items()
        if name.split(":")[0]
        in {channel.topic, *(NAMES.consumer_group(*reader) for reader in channel.readers)}
    ]
    assert len(payloads) == 1 + len(channel.readers)
    if not (isinstance(channel.payload, type) and issubclass(channel.payload, BaseModel)):
        assert all(resolve(document, ref)["format"] == "binary" for ref in payloads)
        return
    model = channel.payload.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = model.pop("$defs", {})
    for ref in payloads:
        assert resolve(document, ref) == model
    for name, schema in definitions.items():
        assert document["components"]["schemas"][name] == schema


async def test_the_page_lists_every_topic_as_escaped_html(
    edge: RunningService, document: dict[str, Any]
) -> None:
    answer = await edge.client.get("/asyncapi")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert "<script" not in answer.text
    for channel in CHANNELS:
        assert f"<code>{channel.topic}</code>" in answer.text
    assert '"additionalProperties": false' in answer.text.replace("&quot;", '"')

    hostile = copy.deepcopy(document)
    hostile["info"]["title"] = "<script>alert(1)</script>"
    next(iter(hostile["channels"].values()))["address"] = "<img src=x>"
    page = render_html(hostile)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x&gt;" in page


CATALOG = [
    {
        "name": "message.created",
        "description": "<b>a message</b>",
        "schema": {
            "type": "object",
            "properties": {"channel_id": {"$ref": "#/$defs/id"}},
            "required": ["channel_id"],
            "$defs": {"id": {"type": "string"}},
        },
        "examples": [{"channel_id": "ch_1"}],
        "deprecated": False,
        "enforce": True,
    }
]


@pytest.fixture(scope="module")
async def edge_with_catalog() -> AsyncIterator[RunningService]:
    """The edge in front of a stand-in for delivery that serves a global catalog."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def catalog(_: Request) -> Response:
        return JSONResponse({"data": CATALOG})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    upstream = Starlette(
        routes=[Route("/asyncapi/event-types", catalog), Route("/healthz", healthz)]
    )
    async with serve(upstream, probe="/healthz") as delivery:
        edge = create_edge_app({"delivery": delivery.base_url})
        async with serve(edge, probe="/healthz") as running:
            yield running


async def test_the_global_event_type_catalog_is_a_message_of_the_chat_events_channel(
    edge_with_catalog: RunningService,
) -> None:
    answer = await edge_with_catalog.client.get("/asyncapi.json")
    document = answer.json()
    assert schema_errors(document) == []
    [sending] = [
        key
        for key, channel in document["channels"].items()
        if channel["address"] == "hookhub.chat.events"
        and "EventType.message.created" in channel["messages"]
    ]
    assert sending == "hookhub.chat.events"
    message = document["components"]["messages"]["EventType.message.created"]
    [example] = message["examples"]
    payload = document["components"]["schemas"]["EventType.message.created"]
    assert payload["schemaFormat"] == "application/schema+json;version=draft-2020-12"
    # The schema's own references still resolve, embedded in the envelope's.
    validator = jsonschema.Draft202012Validator(payload["schema"])
    assert validator.is_valid(example["payload"])
    assert not validator.is_valid({**example["payload"], "data": {"channel_id": 7}})
    page = await edge_with_catalog.client.get("/asyncapi")
    assert 'id="EventType.message.created"' in page.text  # its payload schema, as text


def test_without_a_catalog_the_document_is_the_topics_alone(document: dict[str, Any]) -> None:
    assert with_event_types(document, []) is document
    assert not any(key.startswith("EventType.") for key in document["components"]["messages"])
