"""Mattermost across a restart of sync (`hookhub serve sync` processes): the WebSocket's
point (`seq`, the time of the last event published) is kept in the lease document, so the
next process catches up what was posted and edited while none ran, and the map still
finds the copies of what was synced before."""

from __future__ import annotations

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
