"""Mattermost across a restart of sync (`hookhub serve sync` processes): the WebSocket's
point (`seq`, the time of the last event published) is kept in the lease document, so the
next process catches up what was posted and edited while none ran, and the map still
finds the copies of what was synced before; and a kill -9 while posts are made that no
copy records yet makes none of them twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.sandbox.mattermost import ADA, GRACE
from tests.sync.conftest import World, in_channel, start_sync, until
from tests.sync.mattermost_world import Mattermost, served

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def mattermost(bare: World) -> AsyncIterator[Mattermost]:
    async with served(bare) as served_one:
        yield served_one


async def test_a_restart_catches_up_what_was_said_meanwhile_and_keeps_the_map(
    bare: World, mattermost: Mattermost, tmp_path: Path
) -> None:
    world, fake, chat = bare, mattermost.fake, bare.chat
    first = await start_sync(world, tmp_path / "first.log")
    try:
        external, channel = await mattermost.pair(world)
        await mattermost.connected()
        before = await fake.user_posts(ADA[0], external, "before the restart")
        [received] = await chat.received(in_channel(channel))
        await chat.publish(
            "message.created", {"message_id": "r1", "channel_id": channel, "text": "ours"}
        )
        [ours] = await until(
            lambda: [p for p in fake.live_posts(external) if p["message"] == "ours"],
            what="our post",
        )
    finally:
        await first.stop()
        await world.sync.aclose()
    await until(lambda: fake.connections == 0, what="the socket closed with the process")

    # Said while no sync runs: only the stored point can bring the edit.
    missed = await fake.user_posts(GRACE[0], external, "while sync was down")
    await fake.user_edits(before["id"], "edited while sync was down")

    second = await start_sync(world, tmp_path / "second.log")
    try:
        [edited] = await chat.received(in_channel(channel, "message.edited"))
        assert edited["message_id"] == received["id"]
        got = await chat.received(in_channel(channel), count=2)
        assert [v["source"]["external_message_id"] for v in got] == [before["id"], missed["id"]]
        # The map kept our post's copy: the chat's edit reaches it.
        await chat.publish(
            "message.updated", {"message_id": "r1", "channel_id": channel, "text": "ours, edited"}
        )
        await until(
            lambda: (fake.post(ours["id"]) or {}).get("message") == "ours, edited",
            what="the edit of a post made before the restart",
        )
    finally:
        await second.stop()
        await world.sync.aclose()


async def test_a_kill_9_with_a_post_made_and_unanswered_makes_each_once_after_the_restart(
    bare: World, mattermost: Mattermost, tmp_path: Path
) -> None:
    """Mattermost's lanes do not wait for their copies (`Network.finds_own_posts`): a kill
    may leave posts the server made and the map lacks. The next process reads the events
    again and looks for each post the map lacks in the channel's posts since its event
    (by the tag in its props), so none is made twice. The server's own deduplication by
    `pending_post_id` (30 s) is turned off here: a restart after its window has only the
    search."""
    world, fake = bare, mattermost.fake
    fake.pending_ttl_seconds = 0.0
    # The batch waits a minute before it writes its posts to the outbox: none is at the kill.
    first = await start_sync(world, tmp_path / "first.log", HOOKHUB_SYNC_SPILL_SECONDS="60")
    try:
        external, channel = await mattermost.pair(world)
        held = fake.hold_answers(external, after=2)
        texts = [f"u{n}" for n in range(4)]
        for n, text in enumerate(texts):
            await world.chat.publish(
                "message.created", {"message_id": f"u{n}", "channel_id": channel, "text": text}
            )
        # The third post is made at Mattermost, its answer held: its sender never learns it.
        await asyncio.wait_for(held.reached.wait(), 30)
        assert [p["message"] for p in fake.live_posts(external)] == texts[:3]
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        held.release()

        second = await start_sync(world, tmp_path / "second.log")
        try:
            await until(lambda: len(fake.live_posts(external)) >= 4, timeout=60, what="u3")
            # The edit of the post whose answer was lost reaches the post the server made.
            await world.chat.publish(
                "message.updated", {"message_id": "u2", "channel_id": channel, "text": "edited"}
            )
            await until(
                lambda: "edited" in [p["message"] for p in fake.live_posts(external)],
                what="the edit",
            )
            assert [p["message"] for p in fake.live_posts(external)] == ["u0", "u1", "edited", "u3"]
        finally:
            await second.stop()
    finally:
        fake.pending_ttl_seconds = 30.0
        await world.sync.aclose()
