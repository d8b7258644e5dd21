"""Ids from outside (`shared.kernel.ids.PrintableId`): what every provider and the suite use is an
id; NUL, bidi overrides, zero-width and other unseen characters, whitespace and overlong ones
are not, refused naming the field; and /openapi.json states the same rule as a pattern."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from services.delivery.outgoing_webhooks.schemas import OutgoingWebhookCreate
from services.gateway.incoming_webhooks.schemas import IncomingWebhookCreate, IncomingWebhookUpdate
from services.importer.schemas import ApiImportCreate
from services.oauth.connect.schemas import ConnectRequest
from services.oauth.integrations.schemas import IntegrationCreate
from services.sync.actions.schemas import ChatMessage
from services.sync.mappings.schemas import MappingCreate
from services.sync.subscriptions.schemas import SubscriptionCreate
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import MAX_ID_LENGTH, PrintableId, id_pattern, id_problem, new_id
from tests.support import service_app

VALID = [
    "ws_demo",
    # A fresh one; its name is fixed, so that every xdist worker collects the same tests.
    pytest.param(new_id("evt"), id="new_id"),
    "C0123ABCDEF",  # Slack channel
    "T024BE7LD",  # Slack team
    "1234567890123456789",  # Discord snowflake
    "-1001234567890",  # Telegram supergroup, as a string
    "-4012345678",  # Telegram group
    "PROJ",  # Jira project key
    "PROJ-123",  # Jira issue key
    "octocat/hello-world",  # GitHub repository
    "3f2504e0-4f89-11d3-9a0c-0305e82c3301",  # a UUID
    "général",  # any script
    "频道",
    "x" * MAX_ID_LENGTH,
]

INVALID = [
    ("ws\x00", "U+0000 (a control character) at position 2"),
    ("ws_\u202eemos", "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 3"),
    ("ws\u202e\x00", "U+202E (RIGHT-TO-LEFT OVERRIDE) at position 2"),
    ("ws\u200b1", "U+200B (ZERO WIDTH SPACE) at position 2"),
    ("ws\u2066x", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
    ("\ufeffws", "U+FEFF (ZERO WIDTH NO-BREAK SPACE) at position 0"),
    ("ws\U000e0041", "U+E0041 (TAG LATIN CAPITAL LETTER A)"),  # unseen, past the BMP
    ("ws 1", "U+0020 (SPACE) at position 2"),
    ("ws\t1", "U+0009 (a control character)"),
    ("ws\u00a01", "U+00A0 (NO-BREAK SPACE)"),
    ("ws\n", "U+000A (a control character)"),
    ("ws\x85", "U+0085 (a control character)"),
]


class _Model(BaseModel):
    the_id: PrintableId


@pytest.mark.parametrize("value", VALID)
def test_the_ids_providers_and_the_suite_use_are_ids(value: str) -> None:
    assert id_problem(value) is None
    assert _Model(the_id=value).the_id == value
    assert re.fullmatch(id_pattern(), value)


@pytest.mark.parametrize(("value", "named"), INVALID)
def test_unseen_characters_and_whitespace_are_refused_naming_the_character(
    value: str, named: str
) -> None:
    problem = id_problem(value)
    assert problem is not None and named in problem
    with pytest.raises(ValidationError) as refused:
        _Model(the_id=value)
    [error] = refused.value.errors()
    assert error["loc"] == ("the_id",) and named in error["msg"]


# A lone surrogate: JSON can spell it (pydantic refuses it as a string), UTF-8 cannot hold it.
@pytest.mark.parametrize("value", ["", "x" * (MAX_ID_LENGTH + 1), "ws\ud800"])
def test_empty_overlong_and_surrogate_ids_are_refused(value: str) -> None:
    assert id_problem(value) is not None
    with pytest.raises(ValidationError):
        _Model(the_id=value)


def test_the_documented_pattern_is_the_rule_on_the_basic_multilingual_plane() -> None:
    """Every character of the BMP: the pattern (which /openapi.json shows and schemathesis
    generates from) takes exactly what the validator takes."""
    pattern = re.compile(id_pattern())
    for code in range(0x10000):
        char = chr(code)
        assert (pattern.fullmatch(char) is not None) == (id_problem(char) is None), hex(code)


# Every model that takes an id hookhub stores or routes by, and where the id sits.
MODELS: list[tuple[type[BaseModel], dict[str, Any], tuple[str | int, ...]]] = [
    (IntegrationCreate, {"provider": "github"}, ("workspace_id",)),
    (ConnectRequest, {"provider": "github"}, ("workspace_id",)),
    (IncomingWebhookCreate, {"target_channel_id": "ch_1"}, ("workspace_id",)),
    (IncomingWebhookCreate, {"workspace_id": "ws_1"}, ("target_channel_id",)),
    (IncomingWebhookUpdate, {}, ("target_channel_id",)),
    (
        OutgoingWebhookCreate,
        {"url": "https://example.com/hook", "events": ["*"]},
        ("workspace_id",),
    ),
    (
        ChatEvent,
        {"type": "message.created", "workspace_id": "ws_1", "occurred_at": "2026-01-01T00:00Z"},
        ("id",),
    ),
    (
        ChatEvent,
        {"id": "evt_1", "type": "message.created", "occurred_at": "2026-01-01T00:00Z"},
        ("workspace_id",),
    ),
    (MappingCreate, {"channel_id": "ch_1"}, ("external_channel_id",)),
    (MappingCreate, {"external_channel_id": "C012"}, ("channel_id",)),
    (SubscriptionCreate, {}, ("channel_id",)),
    (ChatMessage, {"message_id": "m_1", "text": "x", "author": "a"}, ("channel_id",)),
    (ChatMessage, {"channel_id": "ch_1", "text": "x", "author": "a"}, ("message_id",)),
    (ApiImportCreate, {}, ("channel_ids", 0)),
    (ApiImportCreate, {}, ("guild_ids", 0)),
    (ApiImportCreate, {}, ("channel_map", "general")),
]


def _placed(where: tuple[str | int, ...], value: str) -> dict[str, Any]:
    name, *rest = where
    if not rest:
        return {str(name): value}
    return {str(name): [value] if isinstance(rest[0], int) else {rest[0]: value}}


@pytest.mark.parametrize(("model", "fields", "where"), MODELS, ids=lambda v: str(v))
@pytest.mark.parametrize("bad", ["ws\u202e\x00", "evt\x00", "x" * (MAX_ID_LENGTH + 1)])
def test_every_model_taking_an_id_from_outside_refuses_a_bad_one_naming_the_field(
    model: type[BaseModel], fields: dict[str, Any], where: tuple[str | int, ...], bad: str
) -> None:
    model.model_validate({**fields, **_placed(where, "ok_1")})
    with pytest.raises(ValidationError) as refused:
        model.model_validate({**fields, **_placed(where, bad)})
    assert [error["loc"] for error in refused.value.errors()] == [where]


def test_a_chat_event_s_channel_id_is_held_to_the_rule() -> None:
    """`data.channel_id` keys the event's partition and finds its mappings."""
    event = {"id": "evt_1", "type": "message.created", "workspace_id": "ws_1"}
    event |= {"occurred_at": "2026-01-01T00:00Z"}
    ChatEvent.model_validate({**event, "data": {"channel_id": "ch_1", "n": 5}})
    ChatEvent.model_validate({**event, "data": {"channel_id": 42}})  # not a string: as before
    with pytest.raises(ValidationError) as refused:
        ChatEvent.model_validate({**event, "data": {"channel_id": "ch\u202e1"}})
    [error] = refused.value.errors()
    assert error["loc"] == ("data",) and "data.channel_id holds U+202E" in error["msg"]


@pytest.mark.parametrize(
    ("service", "where"),
    [
        ("oauth", "IntegrationCreate.workspace_id"),
        ("oauth", "ConnectRequest.workspace_id"),
        ("oauth", "POST /api/workspaces/{workspace_id}/api-keys workspace_id"),
        ("oauth", "POST /api/workspaces/{workspace_id}/portal-sessions workspace_id"),
        ("gateway", "IncomingWebhookCreate.workspace_id"),
        ("gateway", "IncomingWebhookCreate.target_channel_id"),
        ("delivery", "ChatEvent.id"),
        ("delivery", "ChatEvent.workspace_id"),
        ("delivery", "OutgoingWebhookCreate.workspace_id"),
        ("sync", "MappingCreate.channel_id"),
        ("sync", "MappingCreate.external_channel_id"),
        ("sync", "SubscriptionCreate.channel_id"),
        ("sync", "ChatMessage.channel_id"),
        ("importer", "POST /api/imports workspace_id"),
    ],
)
def test_the_openapi_document_states_the_rule_where_ids_are_taken(service: str, where: str) -> None:
    """schemathesis (tests/e2e) generates from these: with the pattern and the length it
    sends ids the services take, and its other requests are refused for what they are."""
    document = service_app(service).openapi()
    schema = _schema_at(document, where)
    assert schema.get("pattern") == id_pattern(), (where, schema)
    assert schema.get("maxLength") == MAX_ID_LENGTH


def _schema_at(document: dict[str, Any], where: str) -> dict[str, Any]:
    if " " not in where:
        model, field = where.split(".")
        found: dict[str, Any] = document["components"]["schemas"][model]["properties"][field]
        return next((s for s in found.get("anyOf", []) if s.get("type") == "string"), found)
    method, path, name = where.split(" ")
    operation = document["paths"][path][method.lower()]
    for parameter in operation.get("parameters", []):
        if parameter["name"] == name:
            return dict(parameter["schema"])
    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    return dict(body["properties"][name])
