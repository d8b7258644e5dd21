"""The topic envelopes of SPEC §6: what they accept, refuse, and how they are keyed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shared.kernel.envelopes import (
    TOPIC_MODELS,
    ChatEvent,
    InboundMessage,
    ProviderEvent,
    Topic,
    encode_inbound,
)
from shared.kernel.ids import derived_id, new_id


def test_topic_names_are_the_published_ones() -> None:
    assert {t.value for t in Topic} == {
        "hookhub.chat.events",
        "hookhub.chat.inbound",
        "hookhub.provider.events",
        "hookhub.integration.events",
        "hookhub.operational.events",
    }
    assert set(TOPIC_MODELS) == set(Topic)


def test_chat_event_validation_and_key() -> None:
    raw = {
        "id": "evt_1",
        "type": "message.created",
        "workspace_id": "ws",
        "occurred_at": "2026-11-21T10:00:00Z",
        "data": {"channel_id": "ch_9"},
    }
    event = ChatEvent.model_validate(raw)
    assert event.partition_key() == b"ch_9"
    assert ChatEvent.model_validate({**raw, "data": {}}).partition_key() == b"ws"
    for broken in (
        {**raw, "type": "Message Created"},
        {**raw, "type": "message"},
        {**raw, "id": ""},
        {**raw, "unexpected": 1},
        {k: v for k, v in raw.items() if k != "workspace_id"},
    ):
        with pytest.raises(ValidationError):
            ChatEvent.model_validate(broken)


def test_inbound_message_round_trips_through_kafka_bytes() -> None:
    message = InboundMessage.model_validate(
        {
            "id": "evt_2",
            "type": "message.received",
            "workspace_id": "ws",
            "channel_id": "ch",
            "source": {"provider": "slack", "integration_id": "int_1"},
            "author": {"name": "ann"},
            "text": "hi",
        }
    )
    data = json.loads(message.to_kafka())
    assert "thread_id" not in data, "unset optionals are left out"
    assert InboundMessage.model_validate(data) == message
    assert message.partition_key() == b"ch"
    with pytest.raises(ValidationError):
        InboundMessage.model_validate({**data, "type": "message.sent"})


def test_provider_event_key_and_ids() -> None:
    event = ProviderEvent(
        id=derived_id("github", "int_1", "d-1"),
        provider="github",
        integration_id="int_1",
        workspace_id="ws",
        event_type="push",
        delivery_id="d-1",
        payload={"a": 1},
    )
    assert event.partition_key() == b"int_1"
    assert derived_id("github", "int_1", "d-1") == event.id, "deterministic for redeliveries"
    assert derived_id("github", "int_1", "d-2") != event.id
    first, second = new_id("evt"), new_id("evt")
    assert first != second and first.startswith("evt_") and len(first) == 30


@pytest.mark.parametrize(
    "received_at",
    [
        datetime(2026, 11, 22, 5, 20, 30, 123456, tzinfo=UTC),
        datetime(2026, 11, 22, 5, 20, 30, tzinfo=UTC),  # no fraction: none printed
        datetime(2026, 11, 22, 5, 20, 30, 1000, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 11, 22, 5, 20, 30, 500),  # naive
    ],
)
def test_the_spliced_envelope_is_the_models_own_json(received_at: datetime) -> None:
    raw = b'{"zen": "Keep it logically awesome.", "n": [1, 2.5, null]}'
    for payload_ref in (None, "gridfs:payloads/abc"):
        event = ProviderEvent(
            id=derived_id("github", "int_1", 'd-\u00e9\u2028"x"'),
            provider="github",
            integration_id="int_1",
            workspace_id="ws_é",
            event_type="push\n",
            delivery_id='d-é\u2028"x"\\',
            received_at=received_at,
            payload_ref=payload_ref,
        )
        spliced = event.to_kafka_with_raw_payload(raw)
        expected = event.model_dump_json(exclude_none=True, exclude={"payload"}).encode()
        assert spliced == expected[:-1] + b',"payload":' + raw + b"}"
        assert ProviderEvent.model_validate_json(spliced).payload == json.loads(raw)


def test_id_floor_and_id_time_follow_the_creation_time_in_an_id() -> None:
    import time

    from shared.kernel.ids import id_floor, id_time

    before = time.time()
    made = new_id("bkt")
    after = time.time()
    assert before - 0.001 <= id_time(made) <= after + 0.001
    assert id_floor("bkt", before - 1) < made < id_floor("bkt", after + 1)
    assert id_time(id_floor("bkt", 1_700_000_000.123)) == 1_700_000_000.123
    assert id_floor("bkt", 0) == "bkt_" + "0" * 26


def test_derived_timed_ids_are_deterministic_and_sort_by_their_moment() -> None:
    from datetime import UTC, datetime, timedelta

    from shared.kernel.ids import derived_timed_id, id_time

    moment = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
    made = derived_timed_id("dlv", moment, "evt_1", "ep_1")
    assert made == derived_timed_id("dlv", moment, "evt_1", "ep_1")
    assert made != derived_timed_id("dlv", moment, "evt_1", "ep_2")
    assert id_time(made) == moment.timestamp()
    later = [derived_timed_id("dlv", moment + timedelta(milliseconds=n), "evt_0") for n in (1, 2)]
    assert made < later[0] < later[1]


_ENCODED_CASES = [
    pytest.param({}, id="plain"),
    pytest.param({"avatar_url": "https://EXAMPLE.com", "author_external_id": "U1"}, id="avatar"),
    pytest.param(
        {"external_thread_id": "1.0", "thread_id": "msg_root", "message_id": "msg_9"},
        id="thread",
    ),
    pytest.param(
        {"blocks": [{"type": "rich_text", "x": None}], "attachments": [{"url": "u"}]},
        id="blocks",
    ),
    pytest.param({"text": 'héllo \u2028 <b>&amp;"</b> 🎉', "imported": True}, id="text"),
    pytest.param(
        {"text": "a\u202eb\x07\tc\r\nd\u2066e\u0085", "author_name": "Ann\u202e\x1b[31m"},
        id="unprintable",
    ),
    pytest.param(
        {"occurred_at": datetime(2024, 2, 29, 23, 59, 1, 5, tzinfo=timezone(timedelta(hours=2)))},
        id="offset",
    ),
    pytest.param({"external_channel_id": None, "external_message_id": None}, id="bare-source"),
    pytest.param({"visible_to": "u_ada", "thread_id": "m_1"}, id="ephemeral"),
    # orjson refuses integers over 64 bits; a provider's blocks may hold one.
    pytest.param({"blocks": [{"type": "x", "n": 2**70}]}, id="big-int"),
]


@pytest.mark.parametrize("changes", _ENCODED_CASES)
def test_encode_inbound_gives_the_models_bytes(changes: dict[str, object]) -> None:
    fields: dict[str, Any] = {
        "id": "msg_1",
        "type": "message.received",
        "workspace_id": "ws",
        "channel_id": "ch",
        "provider": "slack",
        "integration_id": "",
        "external_channel_id": "C1",
        "external_message_id": "2.0",
        "external_thread_id": None,
        "author_name": "Ann",
        "avatar_url": None,
        "author_external_id": None,
        "text": "hi",
        "attachments": [],
        "blocks": None,
        "thread_id": None,
        "occurred_at": datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
        **changes,
    }
    source = ("provider", "integration_id", "external_channel_id", "external_message_id",
              "external_thread_id")  # fmt: skip
    model = InboundMessage(
        **{k: v for k, v in fields.items() if k not in source and not k.startswith("author")
           and k != "avatar_url"},
        source={k: fields[k] for k in source},
        author={"name": fields["author_name"], "avatar_url": fields["avatar_url"],
                "external_id": fields["author_external_id"]},
    )  # fmt: skip
    encoded = encode_inbound(**fields)
    assert encoded.value == model.to_kafka()
    assert (encoded.id, encoded.key) == (model.id, model.partition_key())


def test_what_a_chat_message_shows_has_no_control_or_bidi_characters() -> None:
    """A name or text from Slack, Discord or Telegram (every inbound message is encoded
    here) loses right-to-left overrides, isolates, marks and control characters; tabs and
    line breaks stay, and so does every script."""
    encoded = encode_inbound(
        id="msg_1", type="message.received", workspace_id="ws", channel_id="ch",
        provider="slack", integration_id="", external_channel_id="C1",
        external_message_id="1.0", external_thread_id=None,
        author_name="\u202eAnn\u200f \u0627\u0644\x00",
        avatar_url=None, author_external_id="U1",
        text="line\u202e one\n\tline\u2067 two\x1b\u061c\u200d \U0001f389",
        attachments=[], blocks=None, thread_id=None,
        occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    value = json.loads(encoded.value)
    assert value["author"]["name"] == "Ann \u0627\u0644"
    assert value["text"] == "line one\n\tline two\u200d \U0001f389"


def test_encode_inbound_leaves_out_an_avatar_that_is_not_a_web_url() -> None:
    """The model would refuse the message; the encoder keeps it, without the avatar."""
    for bad in ("javascript:alert(1)", "not a url", "ftp://example.com/a.png"):
        encoded = encode_inbound(
            id="msg_1", type="message.received", workspace_id="ws", channel_id="ch",
            provider="slack", integration_id="", external_channel_id="C1",
            external_message_id="1.0", external_thread_id=None, author_name="Ann",
            avatar_url=bad, author_external_id="U1", text="", attachments=[], blocks=None,
            thread_id=None, occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
        )  # fmt: skip
        author = json.loads(encoded.value)["author"]
        assert author == {"name": "Ann", "external_id": "U1"}, bad
        with pytest.raises(ValidationError):
            InboundMessage.model_validate({**json.loads(encoded.value), "author": {
                "name": "Ann", "avatar_url": bad}})  # fmt: skip


def test_a_provider_event_time_without_a_zone_is_utc() -> None:
    """Written by another producer without a zone, `received_at` is read as UTC: consumers
    compare it with aware times (notifications: with a subscription's creation)."""
    from datetime import UTC, datetime

    from shared.kernel.envelopes import ProviderEvent

    fields = {
        "id": "pev_1",
        "provider": "github",
        "integration_id": "int_1",
        "workspace_id": "ws_1",
        "event_type": "push",
        "delivery_id": "d1",
    }
    naive = ProviderEvent.model_validate({**fields, "received_at": "2026-01-01T00:00:00"})
    assert naive.received_at == datetime(2026, 1, 1, tzinfo=UTC)
    aware = ProviderEvent.model_validate({**fields, "received_at": "2026-01-01T02:00:00+02:00"})
    assert aware.received_at == datetime(2026, 1, 1, tzinfo=UTC)
