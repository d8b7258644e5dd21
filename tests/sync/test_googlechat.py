"""Google Chat both ways through the real services: the stand-in's Chat app POSTs its
signed events to the gateway (KeyedWebhooks: Google's certificates fetched before
verification), sync reads them off `hookhub.provider.events` and hands the chat the
messages; the chat's messages reach the space through the Chat API as the app's service
account. Interaction events carry new messages only (no edits or deletes inbound)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.sandbox.googlechat import pem, rsa_key
from tests.support import admin_headers
from tests.sync.conftest import World, in_channel, until
from tests.sync.googlechat_world import PROJECT, GoogleChat, connect


@pytest.fixture(scope="module")
async def gchat(world: World) -> AsyncIterator[GoogleChat]:
    async with contextlib.AsyncExitStack() as stack:
        yield await connect(world, stack, audience=PROJECT)


async def test_chat_messages_reach_the_space_with_a_thread_edits_and_deletes(
    world: World, gchat: GoogleChat
) -> None:
    fake, chat = gchat.fake, world.chat
    space, channel = await gchat.pair(world)

    await chat.publish(
        "message.created",
        {"message_id": "g1", "channel_id": channel, "text": "deploy <users/all> done"},
        actor={"id": "u_ada", "name": "Ada Lovelace"},
    )
    [root] = await until(lambda: gchat.stored(space), what="the post")
    assert root["text"] == "*Ada Lovelace*\ndeploy <\u200dusers/all> done"
    assert root["clientAssignedMessageId"].startswith("client-hookhub-")

    await chat.publish(
        "message.created",
        {"message_id": "g2", "channel_id": channel, "text": "in thread", "thread_id": "g1"},
    )
    _, reply = await until(lambda: len(gchat.stored(space)) == 2 and gchat.stored(space))
    assert reply["threadReply"] is True
    assert reply["thread"]["name"] == root["thread"]["name"]

    await chat.publish(
        "message.updated", {"message_id": "g1", "channel_id": channel, "text": "edited"}
    )
    await until(lambda: root["text"].endswith("\nedited"), what="the edit")
    await chat.publish("message.deleted", {"message_id": "g1", "channel_id": channel})
    await until(lambda: root["name"] not in fake.spaces[space].messages, what="the delete")


async def test_space_messages_reach_the_chat_with_thread_replies(
    world: World, gchat: GoogleChat
) -> None:
    fake, chat = gchat.fake, world.chat
    space, channel = await gchat.pair(world)

    answer = await fake.user_sends(space, "alice", "hello <there>")
    assert answer.status_code == 200, answer.text
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "hello <there>"
    assert received["author"]["name"] == "Alice"
    root_name = received["source"]["external_message_id"]
    thread = fake.spaces[space].messages[root_name]["thread"]["name"]

    # A reply names its thread, not its first message: the chat gets it in that thread.
    await fake.user_sends(space, "bob", "a reply", thread=thread)
    await fake.user_sends(space, "carol", "another", thread=thread)
    replies = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v, 2)
    assert [r["thread_id"] for r in replies] == [received["id"]] * 2

    # A reply in the thread of hookhub's post is in the chat's thread of its message.
    await chat.publish("message.created", {"message_id": "gr1", "channel_id": channel, "text": "q"})
    ours = await until(
        lambda: [m for m in gchat.stored(space) if m["sender"]["type"] == "BOT"], what="the post"
    )

    async def recorded() -> bool:
        # Sync records the copies it posted batched, a moment after the post.
        answer = await world.sync.get(
            "/api/messages/lookup",
            params={
                "provider": "googlechat",
                "external_channel_id": space,
                "external_message_id": ours[0]["name"],
            },
            headers={"Authorization": "Bearer " + world.sync_settings.admin_token},
        )
        return answer.status_code == 200 and bool(answer.json()["copies"])

    await until(recorded, what="the post's copy in the map")
    await fake.user_sends(space, "alice", "answer", thread=ours[0]["thread"]["name"])
    [answered] = await chat.received(lambda v: in_channel(channel)(v) and v["text"] == "answer")
    assert answered["thread_id"] == "gr1"


async def test_forged_or_stale_tokens_are_refused_and_nothing_is_published(
    world: World, gchat: GoogleChat
) -> None:
    fake, chat = gchat.fake, world.chat
    space, channel = await gchat.pair(world)
    now = time.time()
    forged = {
        "another key": fake.bearer(key=rsa_key()),
        "another audience": fake.bearer(audience="999999999"),
        "another issuer": fake.bearer(issuer="someone@example.iam.gserviceaccount.com"),
        "expired": fake.bearer(issued=now - 7200, lifetime=3600),
        "no JWT": "not-a-token",
    }
    names: list[str] = []
    for why, token in forged.items():
        event = fake.message_event(space, "alice", f"forged: {why}")
        names.append(event["message"]["name"])
        answer = await fake.deliver(event, bearer=token)
        assert answer.status_code == 401, (why, answer.status_code, answer.text)
    # An endpoint-URL audience (no `audience` setting): an ID token for chat@system only.
    async with contextlib.AsyncExitStack() as stack:
        by_url = await connect(world, stack)
        other_space, other_channel = by_url.space(), world.new_id("ch_")
        await world.map(by_url.integration, other_space, other_channel)
        # The URL the gateway was called at, as it knows itself (its public URL).
        gateway_url = world.gateway.app.state.runtime.settings.public_url  # type: ignore[attr-defined]
        audience = gateway_url.rstrip("/") + urlsplit(by_url.webhook_url).path
        event = fake.message_event(other_space, "alice", "forged: another email")
        names.append(event["message"]["name"])
        token = fake.bearer(audience=audience, email="mallory@example.com")
        answer = await fake.deliver(event, bearer=token)
        assert answer.status_code == 401, answer.text
        assert "mallory@example.com" in answer.text
        good = await fake.deliver(
            fake.message_event(other_space, "bob", "by url"), bearer=fake.bearer(audience=audience)
        )
        assert good.status_code == 200, good.text
        await chat.received(in_channel(other_channel))
    fake.endpoint_url = gchat.webhook_url

    assert (await fake.user_sends(space, "bob", "genuine")).status_code == 200
    [genuine] = await chat.received(in_channel(channel))
    assert genuine["text"] == "genuine"
    published = await gchat.events.settled()
    assert not [v for v in published if any(n in json.dumps(v) for n in names)]


async def test_hookhubs_own_post_coming_back_first_is_not_sent_to_the_chat(
    world: World, gchat: GoogleChat
) -> None:
    """Chat's event of the app's own post arrives before the create answers: the post's
    mark (its custom id) says it is ours, with no wait for the copy."""
    fake, chat = gchat.fake, world.chat
    space, channel = await gchat.pair(world)
    fake.echo_posts = True
    try:
        await chat.publish(
            "message.created", {"message_id": "e1", "channel_id": channel, "text": "mine"}
        )
        [post] = await until(lambda: gchat.stored(space), what="the post")
    finally:
        fake.echo_posts = False
    # The echo reached the gateway and was published (before the create answered).
    assert await gchat.events.wait_for(lambda v: post["name"] in json.dumps(v))
    await fake.user_sends(space, "alice", "after")
    received = await chat.received(in_channel(channel))
    assert [r["text"] for r in received] == ["after"]


async def test_a_rate_limited_space_holds_no_other(world: World, gchat: GoogleChat) -> None:
    fake, chat = gchat.fake, world.chat
    slow, slow_channel = await gchat.pair(world)
    fast, fast_channel = await gchat.pair(world)
    fake.limit(times=1, retry_after=1, space=slow)

    await chat.publish(
        "message.created", {"message_id": "s1", "channel_id": slow_channel, "text": "slow"}
    )
    await until(lambda: fake._limits == [] or any(slow in p for _, p in fake.calls), what="429")
    await chat.publish(
        "message.created", {"message_id": "f1", "channel_id": fast_channel, "text": "fast"}
    )
    await until(lambda: gchat.stored(fast), what="the other space's post")
    assert not gchat.stored(slow), "the limited space's post went first"
    await until(lambda: gchat.stored(slow), what="the limited space's post, once allowed")


async def test_a_service_account_key_google_refuses_is_a_422_at_create(
    world: World, gchat: GoogleChat
) -> None:
    """oauth checks the key at create: a token obtained is a key that works."""
    info = json.loads(gchat.fake.service_account_json())
    info["private_key"] = pem(rsa_key())  # a key the service account does not have
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "googlechat",
            "workspace_id": world.chat.workspace_id,
            "settings": {"service_account_json": json.dumps(info), "audience": PROJECT},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_setting"
    assert "invalid_grant" in answer.text


async def test_a_key_deleted_since_puts_the_integration_in_error(
    world: World, gchat: GoogleChat
) -> None:
    """The key was good at create; deleted in the Cloud console since, Google refuses its
    grant: the integration is in error (a PATCH of a new key is the way out), nothing
    posted."""
    fake, chat = gchat.fake, world.chat
    fake.key_ids.add("deleted-later")
    async with contextlib.AsyncExitStack() as stack:
        doomed = await connect(world, stack, key_id="deleted-later", audience=PROJECT)
    space, channel = doomed.space(), world.new_id("ch_")
    await world.map(doomed.integration, space, channel)
    fake.key_ids.discard("deleted-later")
    fake.expire_tokens()  # and the access tokens it gave
    await chat.publish("message.created", {"message_id": "k1", "channel_id": channel, "text": "x"})

    async def status() -> Any:
        answer = await world.oauth.client.get(
            f"/api/integrations/{doomed.integration}", headers=admin_headers()
        )
        body = answer.json()
        return body if body["status"] == "error" else None

    integration = await until(status, what="the integration in error")
    assert integration["last_error"].startswith("credentials_rejected:")
    assert not fake.spaces[space].messages
    fake.endpoint_url = gchat.webhook_url
