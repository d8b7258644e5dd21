"""Matrix both ways through the real services, hookhub as the homeserver's application
service: the stand-in homeserver PUTs its transactions to the integration's webhook URL
(the registration's `url`), the gateway verifies the hs_token and publishes each
transaction once (its txnId the delivery id), sync reads them off
`hookhub.provider.events`; the chat's messages reach the room as puppets of hookhub's
namespace through the Client-Server API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import admin_headers, serve
from tests.sync.conftest import World, in_channel, until
from tests.sync.matrix_world import Matrix, connected


@pytest.fixture(scope="module")
async def matrix(world: World) -> AsyncIterator[Matrix]:
    async with connected(world) as made:
        yield made


async def test_room_messages_threads_edits_and_redactions_reach_the_chat(
    world: World, matrix: Matrix
) -> None:
    fake, chat = matrix.fake, world.chat
    room, channel = await matrix.pair(world)

    root = fake.says("alice", {"msgtype": "m.text", "body": "hello @room"}, room)
    assert await fake.push() == 200
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "hello @room"
    assert received["author"]["name"] == "Alice"

    fake.says(
        "bob",
        {
            "msgtype": "m.text",
            "body": "in thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"]},
        },
        room,
    )
    await fake.push()
    [reply] = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    assert reply["thread_id"] == received["id"]

    fake.says(
        "alice",
        {
            "msgtype": "m.text",
            "body": "* hello again",
            "m.new_content": {"msgtype": "m.text", "body": "hello again"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": root["event_id"]},
        },
        room,
    )
    await fake.push()
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["text"] == "hello again"

    fake.redacts("alice", root["event_id"], room)
    await fake.push()
    await chat.received(in_channel(channel, "message.deleted"))


async def test_chat_messages_reach_the_room_as_puppets_with_threads_edits_and_redactions(
    world: World, matrix: Matrix
) -> None:
    chat = world.chat
    room, channel = await matrix.pair(world)

    await chat.publish(
        "message.created",
        {"message_id": "m1", "channel_id": channel, "text": "deploy done"},
        actor={"id": "u_ada", "name": "Ada Lovelace"},
    )
    [root] = await until(lambda: matrix.puppets(room), what="the post")
    assert root["text"] == "deploy done"
    assert root["user"]["name"] == "Ada Lovelace"
    assert root["user"]["id"].startswith("@_hookhub_")

    await chat.publish(
        "message.created",
        {"message_id": "m2", "channel_id": channel, "text": "in thread", "thread_id": "m1"},
        actor={"id": "u_ada", "name": "Ada Lovelace"},
    )
    _, reply = await until(lambda: len(matrix.puppets(room)) == 2 and matrix.puppets(room))
    assert reply["thread"] == root["id"]

    await chat.publish(
        "message.updated", {"message_id": "m1", "channel_id": channel, "text": "edited"}
    )
    await until(lambda: matrix.puppets(room)[0]["text"] == "edited", what="the edit")
    await chat.publish("message.deleted", {"message_id": "m1", "channel_id": channel})
    await until(
        lambda: [m["id"] for m in matrix.puppets(room)] == [reply["id"]], what="the redaction"
    )


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


async def test_a_puppet_has_its_authors_avatar_fetched_within_the_egress_policy(
    world: World, matrix: Matrix
) -> None:
    fake, chat = matrix.fake, world.chat
    room, channel = await matrix.pair(world)

    async def png(_: Request) -> Response:
        return Response(PNG, media_type="image/png")

    async def html(_: Request) -> Response:
        return Response("<html>", media_type="text/html")

    avatars = Starlette(routes=[Route("/ada.png", png), Route("/page", html)])
    async with serve(avatars, probe="/ada.png") as running:
        await chat.publish(
            "message.created",
            {"message_id": "a1", "channel_id": channel, "text": "with a face"},
            actor={
                "id": "u_avatar",
                "name": "Ada Avatar",
                "avatar_url": running.base_url + "/ada.png",
            },
        )
        await chat.publish(
            "message.created",
            {"message_id": "a2", "channel_id": channel, "text": "no face"},
            actor={
                "id": "u_page",
                "name": "Not An Image",
                "avatar_url": running.base_url + "/page",
            },
        )
        posts = await until(lambda: len(matrix.puppets(room)) == 2 and matrix.puppets(room))
    by_name = {p["user"]["name"]: p["user"]["id"] for p in posts}
    uri = fake.profiles[by_name["Ada Avatar"]].get("avatar_url", "")
    assert uri.startswith("mxc://")
    assert fake.media[uri.rsplit("/", 1)[1]] == (PNG, "image/png")
    assert "avatar_url" not in fake.profiles[by_name["Not An Image"]]


async def test_wrong_or_missing_hs_tokens_are_refused_and_a_repeated_txn_is_published_once(
    world: World, matrix: Matrix
) -> None:
    fake, chat = matrix.fake, world.chat
    room, channel = await matrix.pair(world)
    url = matrix.webhook_url + "/_matrix/app/v1/transactions/forged-1"
    forged = {"events": [fake.says("alice", {"msgtype": "m.text", "body": "forged"}, room)]}
    fake.queue.clear()
    async with httpx.AsyncClient(timeout=10) as client:
        wrong = await client.put(url, json=forged, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403, wrong.text
        assert wrong.json()["error"]["code"] == "M_FORBIDDEN"
        missing = await client.put(url, json=forged)
        assert missing.status_code == 401, missing.text
        # Both given (Bearer and the legacy query parameter): both must match.
        both = await client.put(
            url + "?access_token=nope",
            json=forged,
            headers={"Authorization": f"Bearer {matrix.hs_token}"},
        )
        assert both.status_code == 403, both.text
        posted = await client.post(url, json=forged)
        assert posted.status_code == 405, posted.text
        ping = await client.post(
            matrix.webhook_url + "/_matrix/app/v1/ping",
            json={"transaction_id": "p1"},
            headers={"Authorization": f"Bearer {matrix.hs_token}"},
        )
        assert (ping.status_code, ping.json()) == (200, {})

    fake.says("bob", {"msgtype": "m.text", "body": "once"}, room)
    assert await fake.push() == 200
    assert await fake.push(again=True) == 200
    [txn_id, _, _] = fake.pushed[-1]
    # The legacy path, the same txnId: still the same transaction.
    async with httpx.AsyncClient(timeout=10) as client:
        legacy = await client.put(
            f"{matrix.webhook_url}/transactions/{txn_id}",
            json={"events": fake.pushed[-1][1]},
            headers={"Authorization": f"Bearer {matrix.hs_token}"},
        )
        assert legacy.status_code == 200, legacy.text
    [once] = await chat.received(in_channel(channel))
    assert once["text"] == "once"
    published = await matrix.events.settled()
    assert not [v for v in published if "forged" in json.dumps(v)]
    assert len([v for v in published if '"once"' in json.dumps(v)]) == 1


async def test_our_puppets_events_are_not_sent_back_even_before_the_send_returned(
    world: World, matrix: Matrix
) -> None:
    fake, chat = matrix.fake, world.chat
    room, channel = await matrix.pair(world)
    fake.echo_sends = True
    try:
        await chat.publish(
            "message.created", {"message_id": "e1", "channel_id": channel, "text": "mine"}
        )
        [post] = await until(lambda: matrix.puppets(room), what="the post")
    finally:
        fake.echo_sends = False
    # The puppet's event reached the gateway and was published before the send answered.
    assert await matrix.events.wait_for(lambda v: post["id"] in json.dumps(v))
    fake.says("carol", {"msgtype": "m.text", "body": "after"}, room)
    await fake.push()
    received = await chat.received(in_channel(channel))
    assert [r["text"] for r in received] == ["after"]


async def test_a_rate_limited_room_holds_no_other(world: World, matrix: Matrix) -> None:
    fake, chat = matrix.fake, world.chat
    slow, slow_channel = await matrix.pair(world)
    fast, fast_channel = await matrix.pair(world)
    fake.rate_limit(times=1, retry_after_ms=1000, room=slow.id)

    await chat.publish(
        "message.created", {"message_id": "s1", "channel_id": slow_channel, "text": "slow"}
    )
    await until(lambda: all(limit.times == 0 for limit in fake._limits), what="the 429")
    await chat.publish(
        "message.created", {"message_id": "f1", "channel_id": fast_channel, "text": "fast"}
    )
    await until(lambda: matrix.puppets(fast), what="the other room's post")
    assert not matrix.puppets(slow), "the limited room's post went first"
    await until(lambda: matrix.puppets(slow), what="the limited room's post, once allowed")


async def test_the_registration_file_names_the_webhook_url_and_only_writers_read_it(
    world: World, matrix: Matrix
) -> None:
    path = f"/api/integrations/{matrix.integration}/registration"
    answer = await world.oauth.client.get(path, headers=admin_headers())
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/yaml")
    assert answer.headers["cache-control"] == "no-store"
    registration = yaml.safe_load(answer.text)
    assert registration["url"] == matrix.webhook_url
    assert registration["hs_token"] == matrix.hs_token
    assert registration["as_token"] == matrix.fake.appservice.as_token  # type: ignore[union-attr]
    assert registration["namespaces"]["users"][0]["exclusive"] is True
    anonymous = await world.oauth.client.get(path)
    assert anonymous.status_code == 401, anonymous.text
    # The workspace's keys: one that may only read is refused the tokens, a writer not;
    # another workspace's writer does not see the integration at all.
    keys = {}
    for workspace, scopes in (
        (world.chat.workspace_id, ["read"]),
        (world.chat.workspace_id, ["read", "write"]),
        ("ws_elsewhere", ["read", "write"]),
    ):
        made = await world.oauth.client.post(
            f"/api/workspaces/{workspace}/api-keys",
            json={"name": "k", "scopes": scopes},
            headers=admin_headers(),
        )
        assert made.status_code == 201, made.text
        keys[(workspace, len(scopes))] = {"Authorization": f"Bearer {made.json()['key']}"}
    reader = await world.oauth.client.get(path, headers=keys[(world.chat.workspace_id, 1)])
    assert reader.status_code == 403, reader.text
    assert matrix.hs_token not in reader.text
    writer = await world.oauth.client.get(path, headers=keys[(world.chat.workspace_id, 2)])
    assert writer.status_code == 200, writer.text
    stranger = await world.oauth.client.get(path, headers=keys[("ws_elsewhere", 2)])
    assert stranger.status_code in (403, 404), stranger.text
    assert matrix.hs_token not in stranger.text


async def test_an_as_token_the_homeserver_refuses_is_a_422_at_create(
    world: World, matrix: Matrix
) -> None:
    """oauth asks whoami with the settings: a token the homeserver does not know is no
    integration."""
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "matrix",
            "workspace_id": world.chat.workspace_id,
            "settings": {
                "homeserver_url": matrix.fake_url,
                "as_token": "not-the-registrations-as-token",
                "hs_token": "some-hs-token-of-enough-length",
            },
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_setting"


async def test_an_as_token_replaced_since_puts_the_integration_in_error(world: World) -> None:
    """Good at create; the homeserver's registration got a new as_token since: the
    integration is in error (a PATCH of the new token is the way out), nothing posted."""
    chat = world.chat
    async with connected(world) as doomed:
        room, channel = doomed.room(), world.new_id("ch_")
        await world.map(doomed.integration, room.id, channel)
        assert doomed.fake.appservice is not None
        doomed.fake.appservice.as_token = "rotated-on-the-homeserver"
        await chat.publish(
            "message.created", {"message_id": "k1", "channel_id": channel, "text": "x"}
        )

        async def status() -> Any:
            answer = await world.oauth.client.get(
                f"/api/integrations/{doomed.integration}", headers=admin_headers()
            )
            body = answer.json()
            return body if body["status"] == "error" else None

        integration = await until(status, what="the integration in error")
        assert integration["last_error"].startswith("credentials_rejected:")
        assert not doomed.puppets(room)
