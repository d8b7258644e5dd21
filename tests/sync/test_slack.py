"""Slack both ways through the real services: posts, edits, deletes and thread replies from
the chat to Slack and from Slack to the chat, with no echo of our own posts."""

from __future__ import annotations

from services.sandbox.slack import BOT_ID
from tests.support import admin_headers
from tests.sync.conftest import World, in_channel, until


async def test_chat_messages_reach_slack_with_edits_deletes_and_thread_replies(
    world: World,
) -> None:
    slack, chat = world.slack, world.chat
    external, channel = await world.slack_pair()

    await chat.publish(
        "message.created",
        {"message_id": "m1", "channel_id": channel, "text": "Deploy <done> & dusted"},
        actor={"id": "u_ada", "name": "Ada Lovelace", "avatar_url": "https://a.test/ada.png"},
    )
    root = (await until(lambda: slack.posts(external), what="the post"))[0]
    assert root["text"] == "Deploy &lt;done&gt; &amp; dusted"  # Slack's escaping of & < >
    post_call = slack.calls_of("chat.postMessage")[-1].args
    assert post_call["username"] == "Ada Lovelace"
    assert post_call["icon_url"] == "https://a.test/ada.png"

    await chat.publish(
        "message.created",
        {"message_id": "m2", "channel_id": channel, "text": "a reply", "thread_id": "m1"},
    )
    reply = (await until(lambda: slack.posts(external)[1:], what="the reply"))[0]
    assert reply["thread_ts"] == root["ts"]

    await chat.publish(
        "message.updated", {"message_id": "m1", "channel_id": channel, "text": "Deploy done"}
    )
    await until(
        lambda: (slack.message(external, root["ts"]) or {}).get("text") == "Deploy done",
        what="the edit",
    )
    await chat.publish("message.deleted", {"message_id": "m2", "channel_id": channel})
    await until(lambda: slack.message(external, reply["ts"]) is None, what="the delete")

    lookup = await world.sync.get(
        "/api/messages/lookup",
        params={"channel_id": channel, "message_id": "m1"},
        headers=admin_headers(),
    )
    assert lookup.status_code == 200, lookup.text
    copies = lookup.json()["copies"]
    assert [(c["provider"], c["external_message_id"], c["origin"]) for c in copies] == [
        ("slack", root["ts"], "outbound")
    ]
    mapping = (
        await world.sync.get(
            f"/api/integrations/{world.slack_integration}/mappings", headers=admin_headers()
        )
    ).json()["data"]
    assert any(m["external_channel_id"] == external and m["status"] == "ok" for m in mapping)


async def test_slack_messages_reach_the_chat_with_authors_mentions_threads_edits_deletes(
    world: World,
) -> None:
    slack, chat = world.slack, world.chat
    slack.add_user("U0ADA", "Ada Lovelace", display_name="ada")
    slack.add_user("U0BOB", "Bob Babbage")
    external, channel = await world.slack_pair()

    root_ts = await slack.post_as_user(
        external, "U0ADA", "hi <@U0BOB>, see <https://x.test/a?b=1&amp;c=2|the doc> &lt;3"
    )
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "hi @Bob Babbage, see the doc (https://x.test/a?b=1&c=2) <3"
    assert received["author"]["name"] == "ada"
    assert received["author"]["avatar_url"].startswith("https://avatars.slack-edge.com/")
    assert received["source"] == {
        "provider": "slack",
        "integration_id": world.slack_integration,
        "external_channel_id": external,
        "external_message_id": root_ts,
    }
    assert "thread_id" not in received

    await slack.post_as_user(external, "U0BOB", "in the thread", thread_ts=root_ts)
    replies = await chat.received(lambda v: in_channel(channel)(v) and "thread_id" in v)
    assert replies[0]["thread_id"] == received["id"]  # the root's envelope id

    await slack.edit_as_user(external, root_ts, "hello again")
    [edited] = await chat.received(in_channel(channel, "message.edited"))
    assert edited["message_id"] == received["id"] and edited["text"] == "hello again"

    await slack.delete_as_user(external, root_ts)
    [deleted] = await chat.received(in_channel(channel, "message.deleted"))
    assert deleted["message_id"] == received["id"]


async def test_our_own_posts_never_come_back_even_when_the_echo_beats_the_api_answer(
    world: World,
) -> None:
    slack, chat = world.slack, world.chat
    external, channel = await world.slack_pair()

    slack.echo_before_answer = True
    try:
        await chat.publish(
            "message.created", {"message_id": "early", "channel_id": channel, "text": "one"}
        )
        await until(lambda: slack.posts(external), what="the post")
    finally:
        slack.echo_before_answer = False
    await chat.publish(
        "message.created", {"message_id": "late", "channel_id": channel, "text": "two"}
    )
    await until(lambda: len(slack.posts(external)) == 2, what="the second post")
    await slack.settled()
    echoes = [
        d
        for d in slack.deliveries
        if d.body["event"].get("channel") == external and d.body["event"].get("bot_id") == BOT_ID
    ]
    assert len(echoes) == 2 and all(d.status == 200 for d in echoes)

    # A person's message after the echoes: once it is through, the echoes would be too.
    await slack.post_as_user(external, "U0ADA", "a person")
    await chat.received(in_channel(channel))
    await chat.inbound.poll()
    assert [v["text"] for v in chat.inbound.values() if v["channel_id"] == channel] == ["a person"]


async def test_an_edit_right_behind_its_message_is_not_lost(world: World) -> None:
    """Both events may reach sync in one batch: the edit must find the copy the batch made."""
    slack, chat = world.slack, world.chat
    external, channel = await world.slack_pair()
    for n in range(5):
        ts = await slack.post_as_user(external, "U0ADA", f"draft {n}")
        await slack.edit_as_user(external, ts, f"final {n}")
    edited = await chat.received(in_channel(channel, "message.edited"), count=5)
    assert sorted(v["text"] for v in edited) == [f"final {n}" for n in range(5)]


async def test_files_shared_in_slack_reach_the_chat_as_attachment_links(world: World) -> None:
    slack, chat = world.slack, world.chat
    external, channel = await world.slack_pair()
    await slack.post_as_user(
        external, "U0ADA", "the report", files=[{"name": "q3.pdf", "mimetype": "application/pdf"}]
    )
    [received] = await chat.received(in_channel(channel))
    assert received["text"] == "the report"
    [attachment] = received["attachments"]
    assert attachment["name"] == "q3.pdf" and attachment["mime_type"] == "application/pdf"
    assert attachment["url"].startswith("https://acme.slack.com/files/U0ADA/")
