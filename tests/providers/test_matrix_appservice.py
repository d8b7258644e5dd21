"""Hookhub's appservice receiving the stand-in homeserver's transactions over loopback:
authenticated by the hs_token, each txnId processed once, and the events turned into the
chat contract's message changes (spec.matrix.org v1.17, Application Service API "Pushing
events", "Authorisation"; Client-Server API event modules).

Event contents marked "spec example" are the spec's own examples (matrix-org/matrix-spec
data/event-schemas/examples/*.yaml, content/client-server-api/modules/*.md), as a client
would send them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import yaml

from shared.kernel.errors import Invalid
from shared.providers.base import InboundRequest, ParsedWebhook
from shared.providers.catalog import CATALOG, check_settings, split_settings
from shared.providers.chat import (
    Author,
    OutboundPost,
    PermanentError,
    RateLimited,
    TokenRejected,
)
from shared.providers.matrix.api import MatrixApi, refusal
from shared.providers.matrix.appservice import (
    Registration,
    registration_for,
    registration_yaml,
)
from shared.providers.matrix.messages import MatrixChat
from shared.providers.matrix.webhooks import WEBHOOKS
from tests.providers.matrix_world import World, world

# spec example: data/event-schemas/examples/m.room.message$m.text.yaml
TEXT = {
    "body": "This is an example text message",
    "msgtype": "m.text",
    "format": "org.matrix.custom.html",
    "formatted_body": "<b>This is an example text message</b>",
}
# spec example: m.room.message$m.notice.yaml, m.room.message$m.emote.yaml
NOTICE = {
    "body": "This is an example notice",
    "msgtype": "m.notice",
    "format": "org.matrix.custom.html",
    "formatted_body": "This is an <strong>example</strong> notice",
}
EMOTE = {
    "body": "thinks this is an example emote",
    "msgtype": "m.emote",
    "format": "org.matrix.custom.html",
    "formatted_body": "thinks <b>this</b> is an example emote",
}


@pytest.fixture(scope="module")
async def w() -> AsyncIterator[World]:
    async with world() as made:
        yield made


@pytest.fixture(autouse=True)
def _fresh(w: World) -> None:
    w.reset()


async def _put(w: World, txn: str, headers: dict[str, str], query: str = "") -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.put(
            f"{w.registration.url}/_matrix/app/v1/transactions/{txn}{query}",
            json={"events": [{**_event(w), "event_id": f"$forged{txn}"}]},
            headers=headers,
        )


def _event(w: World) -> dict[str, object]:
    return {
        "type": "m.room.message",
        "room_id": w.fake.room.id,
        "sender": w.fake.user_id("alice"),
        "origin_server_ts": 1432735824653,
        "content": TEXT,
    }


async def test_a_wrong_or_missing_hs_token_is_refused_and_nothing_is_processed(w: World) -> None:
    w.fake.says("alice", TEXT)
    assert await w.fake.push(hs_token="not-the-hs-token") == 403
    wrong = await _put(w, "x1", {"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "M_FORBIDDEN"
    missing = await _put(w, "x2", {})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "M_UNAUTHORIZED"
    # Right in the header, wrong in the legacy query parameter: both must match.
    both = await _put(
        w, "x3", {"Authorization": f"Bearer {w.registration.hs_token}"}, "?access_token=nope"
    )
    assert both.status_code == 403
    assert w.delivered == []
    # The refused transaction, sent again with the right token, is processed then.
    assert await w.fake.push(again=True) == 200
    assert [c.text for c in w.changes()] == [TEXT["body"]]


async def test_the_legacy_access_token_query_parameter_is_taken(w: World) -> None:
    answer = await _put(w, "legacy-q", {}, f"?access_token={w.registration.hs_token}")
    assert answer.status_code == 200 and answer.json() == {}
    assert [c.external_message_id for c in w.changes()] == ["$forgedlegacy-q"]


async def test_the_legacy_transactions_path_is_served(w: World) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.put(
            f"{w.registration.url}/transactions/legacy-path",
            json={"events": [{**_event(w), "event_id": "$legacy"}]},
            headers={"Authorization": f"Bearer {w.registration.hs_token}"},
        )
    assert answer.status_code == 200
    assert [c.external_message_id for c in w.changes()] == ["$legacy"]


async def test_the_ping_answers_an_authenticated_homeserver(w: World) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        url = f"{w.registration.url}/_matrix/app/v1/ping"
        ok = await client.post(
            url,
            json={"transaction_id": "mautrix-go_1683636478256400935_123"},  # spec example
            headers={"Authorization": f"Bearer {w.registration.hs_token}"},
        )
        wrong = await client.post(url, json={}, headers={"Authorization": "Bearer no"})
    assert (ok.status_code, ok.json()) == (200, {})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (403, "M_FORBIDDEN")


def test_the_txn_id_and_its_events_are_the_delivery_id_on_both_paths() -> None:
    """What makes the gateway's Deduplicator publish a retried transaction once, and a
    txnId used again for other events (a homeserver's counter started over) again."""

    def parsed(path: str, events: list[dict[str, str]]) -> ParsedWebhook:
        return WEBHOOKS.parse(
            InboundRequest(
                headers={},
                body=json.dumps({"events": events}).encode(),
                received_at=datetime.now(UTC),
                url=f"https://hub.example/api/webhooks/matrix/int_1{path}?access_token=x",
                config={"namespace_prefix": "_bridge_"},
            )
        )

    events = [{"event_id": "$a", "type": "m.room.message"}]
    v1 = parsed("/_matrix/app/v1/transactions/t%201", events)
    legacy = parsed("/transactions/t%201", events)
    assert v1.delivery_id == legacy.delivery_id
    assert v1.delivery_id.startswith("t%201:")
    assert v1.payload == {"events": events, "prefix": "_bridge_"}
    other = parsed("/_matrix/app/v1/transactions/t%201", [{"event_id": "$b"}])
    assert other.delivery_id != v1.delivery_id


async def _put_events(w: World, txn: str, events: list[dict[str, object]]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return await client.put(
            f"{w.registration.url}/_matrix/app/v1/transactions/{txn}",
            json={"events": events},
            headers={"Authorization": f"Bearer {w.registration.hs_token}"},
        )


async def test_messages_replies_threads_edits_and_redactions_become_changes(w: World) -> None:
    fake = w.fake
    root = fake.says("alice", TEXT)
    notice = fake.says("bob", NOTICE)
    emote = fake.says("carol", EMOTE)
    # spec example (modules/threading.md): a thread reply names the root.
    threaded = fake.says(
        "bob",
        {
            "m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"]},
            "msgtype": "m.text",
            "body": "I'm doing okay, thank you! How about yourself?",
        },
    )
    # spec example (modules/threading.md, "Fallback for unthreaded clients").
    falling_back = fake.says(
        "alice",
        {
            "msgtype": "m.text",
            "body": "I'm doing great! Thanks for asking.",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root["event_id"],
                "m.in_reply_to": {"event_id": threaded["event_id"]},
                "is_falling_back": True,
            },
        },
    )
    # spec example (modules/rich_replies.md), with a pre-v1.13 fallback to strip.
    reply = fake.says(
        "carol",
        {
            "m.relates_to": {"m.in_reply_to": {"event_id": notice["event_id"]}},
            "msgtype": "m.text",
            "body": "> <@bob:sandbox.test> This is an example notice\n\nThat sounds like a great idea!",
        },
    )
    # spec example (modules/event_replacements.md).
    edit = fake.says(
        "alice",
        {
            "body": "* Hello! My name is bar",
            "msgtype": "m.text",
            "m.new_content": {"body": "Hello! My name is bar", "msgtype": "m.text"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": root["event_id"]},
        },
    )
    redaction = fake.redacts("bob", notice["event_id"])
    assert await fake.push() == 200

    got = {c.external_message_id + c.kind: c for c in w.changes()}
    assert len(got) == 8
    created = got[root["event_id"] + "created"]
    assert (created.text, created.subtype, created.external_thread_id) == (
        TEXT["body"],
        "m.text",
        None,
    )
    assert created.external_channel_id == fake.room.id
    assert created.sender.user_id == "@alice:sandbox.test" and created.ignored is None
    assert got[notice["event_id"] + "created"].subtype == "m.notice"
    assert got[emote["event_id"] + "created"].subtype == "m.emote"
    assert got[threaded["event_id"] + "created"].external_thread_id == root["event_id"]
    assert got[falling_back["event_id"] + "created"].external_thread_id == root["event_id"]
    replied = got[reply["event_id"] + "created"]
    assert replied.external_thread_id == notice["event_id"]
    assert replied.text == "That sounds like a great idea!"
    edited = got[root["event_id"] + "edited"]
    assert edited.text == "Hello! My name is bar" and edited.external_thread_id is None
    assert edit["event_id"] not in {c.external_message_id for c in w.changes()}
    deleted = got[notice["event_id"] + "deleted"]
    assert deleted.sender.user_id == "@bob:sandbox.test"
    assert redaction["content"] == {"redacts": notice["event_id"]}


async def test_our_puppets_posts_come_back_and_are_not_echoed(w: World) -> None:
    author = Author("Grace", external_id="u-grace")
    posted = await w.chat.post(w.token, w.fake.room.id, OutboundPost("from chat", author))
    await w.chat.delete(w.token, w.fake.room.id, posted.external_message_id)
    human = w.fake.says("alice", TEXT)
    assert {e["sender"] for e in w.fake.queue} >= {w.fake.bot, human["sender"]}
    assert await w.fake.push() == 200
    assert [c.external_message_id for c in w.changes()] == [human["event_id"]]


def test_spec_example_events_turn_into_changes_without_a_homeserver() -> None:
    chat = MatrixChat(MatrixApi(httpx.AsyncClient(), "https://hs.example"), "_hookhub_")
    # spec example: m.room.message$m.text.yaml on core/room_event.json
    event = {
        "type": "m.room.message",
        "content": TEXT,
        "event_id": "$143273582443PhrSn:example.org",
        "room_id": "!jEsUZKDJdhlrceRyVU:example.org",
        "sender": "@example:example.org",
        "origin_server_ts": 1432735824653,
        "unsigned": {"age": 1234, "membership": "join"},
    }
    [change] = chat.changes("m.room.message", event)
    assert change.occurred_at.timestamp() == 1432735824.653
    # spec example: m.room.redaction.yaml (room version 11: `redacts` in the content)
    redaction = {**event, "type": "m.room.redaction"}
    redaction["content"] = {"redacts": "$fukweghifu23:localhost", "reason": "Spamming"}
    [deleted] = chat.changes("m.room.redaction", redaction)
    assert (deleted.kind, deleted.external_message_id) == ("deleted", "$fukweghifu23:localhost")
    # Room versions before 11 put `redacts` beside the content.
    older = {**redaction, "content": {"reason": "Spamming"}, "redacts": "$old:localhost"}
    assert chat.changes("m.room.redaction", older)[0].external_message_id == "$old:localhost"
    # spec example: m.room.member.yaml: a state event is no message.
    member = {**event, "type": "m.room.member", "state_key": "@alice:example.org"}
    assert chat.changes("m.room.member", member) == []
    # An edit without m.new_content is not a valid replacement: ignored.
    invalid = {
        **event,
        "content": {**TEXT, "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}},
    }
    assert chat.changes("m.room.message", invalid) == []
    # A media message is named, not linked (spec example: m.room.message$m.image.yaml).
    image = {
        **event,
        "content": {
            "body": "filename.jpg",
            "msgtype": "m.image",
            "url": "mxc://example.org/JWEIFJgwEIhweiWJE",
        },
    }
    [named] = chat.changes("m.room.message", image)
    assert named.text == "[image: filename.jpg]" and "mxc://" not in named.text
    # Sent by the appservice's own users: marked, not bridged.
    ours = {**event, "sender": "@_hookhub_abc:example.org"}
    assert chat.changes("m.room.message", ours)[0].ignored


def test_the_registration_is_yaml_with_an_exclusive_namespace() -> None:
    registration = Registration(
        id="hookhub-int_1",
        url="https://hookhub.example/api/webhooks/matrix/int_1",
        as_token='tok"en\n  evil: true',
        hs_token="hs-token",
        prefix="_hookhub_",
    )
    loaded = yaml.safe_load(registration_yaml(registration))
    assert loaded == {
        "id": "hookhub-int_1",
        "url": "https://hookhub.example/api/webhooks/matrix/int_1",
        "as_token": 'tok"en\n  evil: true',
        "hs_token": "hs-token",
        "sender_localpart": "_hookhub_bot",
        "rate_limited": False,
        "namespaces": {
            "users": [{"exclusive": True, "regex": "@_hookhub_.*"}],
            "aliases": [],
            "rooms": [],
        },
    }

    # From an integration's settings (the catalog's), the prefix defaulted.
    settings = CATALOG["matrix"].examples()
    made = yaml.safe_load(registration_for("int_9", "https://h.example/m/int_9", settings))
    assert made["id"] == "hookhub-int_9" and made["url"] == "https://h.example/m/int_9"
    assert (made["as_token"], made["hs_token"]) == (settings["as_token"], settings["hs_token"])
    del settings["namespace_prefix"]
    made = yaml.safe_load(registration_for("int_9", "https://h.example/m/int_9", settings))
    assert made["namespaces"]["users"][0]["regex"] == "@_hookhub_.*"


def test_refusals_are_sorted_into_the_chat_contracts_errors() -> None:
    def refused(status: int, body: dict[str, object], **headers: str) -> Exception:
        return refusal("PUT /rooms/x/send", status, body, httpx.Headers(headers))

    # spec example: definitions/errors/rate_limited.yaml
    limited = refused(
        429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000}
    )
    assert isinstance(limited, RateLimited) and limited.retry_after == 2.0
    waited = refused(429, {"errcode": "M_LIMIT_EXCEEDED"}, **{"Retry-After": "7"})
    assert isinstance(waited, RateLimited) and waited.retry_after == 7.0
    assert isinstance(refused(401, {"errcode": "M_UNKNOWN_TOKEN"}), TokenRejected)
    forbidden = refused(403, {"errcode": "M_FORBIDDEN", "error": "not in room"})
    assert isinstance(forbidden, PermanentError) and forbidden.scope == "channel"
    exclusive = refused(400, {"errcode": "M_EXCLUSIVE"})
    assert isinstance(exclusive, PermanentError) and exclusive.scope == "integration"
    large = refused(413, {"errcode": "M_TOO_LARGE"})
    assert isinstance(large, PermanentError) and (large.error, large.scope) == (
        "msg_too_long",
        "message",
    )


def test_the_catalog_entry_seals_the_tokens_and_names_the_transactions_url() -> None:
    entry = CATALOG["matrix"]
    values = check_settings("matrix", entry.examples(), creating=True)
    secret, shown = split_settings("matrix", values)
    assert set(secret) == {"as_token", "hs_token"}
    assert set(shown) == {"homeserver_url", "namespace_prefix"}
    with pytest.raises(Invalid):
        check_settings("matrix", {**values, "homeserver_url": "ftp://x"}, creating=True)
    with pytest.raises(Invalid):
        check_settings("matrix", {**values, "namespace_prefix": "@evil.*"}, creating=True)
    url = "https://h.example/api/webhooks/matrix/int_1"
    steps = " ".join(entry.to_json(url)["setup"])
    assert f"{url}/_matrix/app/v1/transactions/" in steps
    assert entry.category == "chat" and "sync" in entry.capabilities
