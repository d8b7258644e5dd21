"""Slack both ways through the real services: posts, edits, deletes and thread replies from
the chat to Slack and from Slack to the chat, with no echo of our own posts."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.trace import SpanKind

from services.gateway.provider_webhooks.service import envelope_for
from services.sandbox.slack import BOT_ID
from services.sync.outbound.jobs import Job
from shared.kernel import tracing
from shared.kernel.envelopes import ProviderEvent, Topic
from shared.kernel.ids import utcnow
from shared.providers import WEBHOOK_PROVIDERS
from shared.providers.base import InboundRequest
from tests.spans import Caller, hex_ids, recorded
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


def attributes_of(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_chat_events_trace_reaches_slacks_api(world: World) -> None:
    """Spans exported (recorded here, and the httpx instrumentation on the sync service's
    provider client for this test alone): the Slack call that posts a chat message is in
    the trace of the chat's event, under its job's span."""
    slack, chat = world.slack, world.chat
    external, channel = await world.slack_pair()
    caller = Caller.new()
    client = world.sync_app.state.provider_client
    chat_events = world.sync_settings.topic(Topic.CHAT_EVENTS)

    def posted(span: Any) -> bool:
        attributes = span.attributes or {}
        url = str(attributes.get("url.full") or attributes.get("http.url") or "")
        return bool(span.kind is SpanKind.CLIENT and url.endswith("/chat.postMessage"))

    with recorded() as spans:
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=spans.provider)
        try:
            await chat.publish(
                "message.created",
                {"message_id": "m1", "channel_id": channel, "text": "traced"},
                headers=[("traceparent", caller.traceparent.encode())],
            )
            await until(lambda: slack.posts(external), what="the post")
            # The call's span, its job's and the event's, each ended by then.
            found = await spans.finished(
                caller.trace_id,
                lambda found: (
                    any(posted(s) for s in found)
                    and {"sync post", f"{chat_events} process"} <= {s.name for s in found}
                ),
                "the call's, the job's and the event's spans",
            )
            # A job that must wait (a 429) is written to the outbox with its event's trace,
            # for a process that takes it over; one done at once leaves nothing there.
            slack.rate_limit("chat.postMessage", external)
            waiting = Caller.new()
            await chat.publish(
                "message.created",
                {"message_id": "m2", "channel_id": channel, "text": "limited"},
                headers=[("traceparent", waiting.traceparent.encode())],
            )
            outbox = world.sync_app.state.runtime.db.sync_outbox
            spilled = await until(
                lambda: outbox.find_one({"message_id": "m2"}), what="the job spilled on a 429"
            )
        finally:
            HTTPXClientInstrumentor.uninstrument_client(client)
    by_id = {hex_ids(s)[1]: s for s in found}
    [call] = [s for s in found if posted(s)]
    job = by_id[hex_ids(call)[2] or ""]
    assert job.name == "sync post"
    mappings = await world.sync.get(
        f"/api/integrations/{world.slack_integration}/mappings", headers=admin_headers()
    )
    [mapping] = [m for m in mappings.json()["data"] if m["external_channel_id"] == external]
    attributes = attributes_of(job)
    assert str(attributes.pop("hookhub.job_id")).startswith("job_")
    assert attributes == {
        "hookhub.provider": "slack",
        "hookhub.integration_id": world.slack_integration,
        "hookhub.workspace_id": chat.workspace_id,
        "hookhub.mapping_id": mapping["id"],
    }
    event = by_id[hex_ids(job)[2] or ""]
    assert event.kind is SpanKind.CONSUMER and hex_ids(event)[2] == caller.span_id
    assert (event.attributes or {})["hookhub.event_type"] == "message.created"
    assert await outbox.find_one({"_id": attributes_of(job)["hookhub.job_id"]}) is None
    assert spilled["traceparent"].startswith(f"00-{waiting.trace_id}-")
    assert tracing.traceparent(Job.from_doc(spilled).trace) == spilled["traceparent"]
    await until(lambda: len(slack.posts(external)) == 2, what="the limited post, later")


async def test_a_message_two_batches_carry_at_once_is_brought_in_once(world: World) -> None:
    """Two batches with the same new message (a catch-up's history read beside the live
    event or the socket's own catch-up): the first claims it before it awaits anything
    else, so the second, handled while the first looks up a later item's author, skips
    it. Held by construction: the later author's `users.info` waits until released."""
    slack, chat = world.slack, world.chat
    slack.add_user("U0ADA", "Ada Lovelace", display_name="ada")
    slack.add_user("U0NEW", "Nova Newcomer")
    external, channel = await world.slack_pair()
    await slack.post_as_user(external, "U0ADA", "Ada's name is looked up and kept")
    await chat.received(in_channel(channel))
    inbound = world.sync_app.state.inbound
    integration = await world.sync_app.state.connections.integration(world.slack_integration)

    def event(user: str, ts: str, text: str) -> ProviderEvent:
        body = slack.event_callback(
            external, {"type": "message", "user": user, "text": text, "ts": ts, "event_ts": ts}
        )
        request = InboundRequest(headers={}, body=orjson.dumps(body), received_at=utcnow())
        return envelope_for(integration, WEBHOOK_PROVIDERS["slack"].parse(request), request)

    twice, later = slack.next_ts(), slack.next_ts()
    held = slack.hold("users.info")
    first = asyncio.ensure_future(
        inbound.events([event("U0ADA", twice, "carried twice"), event("U0NEW", later, "later")])
    )
    await held.reached.wait()  # the first batch is looking up U0NEW, after "carried twice"
    await inbound.events([event("U0ADA", twice, "carried twice")])
    held.release()
    await first
    found = await chat.inbound.settled(in_channel(channel))
    assert [v["source"]["external_message_id"] for v in found[1:]] == [twice, later]
