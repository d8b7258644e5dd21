"""Sync processes that take over from each other, each test in a world of its own (its
own topics and consumer groups): two replicas holding one Discord Gateway connection, the
other taking over a kill -9 or a scale-down's SIGTERM; Slack messages written while sync
was down, caught up."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.kernel.http.tls import tls
from tests.infra import Infra
from tests.support import ServiceProcess
from tests.sync.conftest import World, build_world, start_sync, until

pytestmark = pytest.mark.e2e


@pytest.fixture
async def bare(infra: Infra, tmp_path: Path) -> AsyncIterator[World]:
    async with build_world(infra, tmp_path / "world", with_sync=False) as world:
        yield world


async def _holds_gateway(process: ServiceProcess) -> bool:
    async with httpx.AsyncClient(verify=tls(), timeout=5) as client:
        text = (await client.get(f"{process.base_url}/metrics")).text
    return "hookhub_sync_discord_gateway_connections 1.0" in text


async def _holding(replicas: list[ServiceProcess]) -> list[ServiceProcess]:
    return [r for r in replicas if await _holds_gateway(r)]


async def test_two_replicas_hold_one_discord_connection_and_the_other_takes_over_a_kill(
    bare: World, tmp_path: Path
) -> None:
    world, discord = bare, bare.discord
    ada = "1300000000000000077"
    discord.add_user(ada, "ada", global_name="Ada")
    replicas = [
        await start_sync(world, tmp_path / "one.log"),
        await start_sync(world, tmp_path / "two.log"),
    ]
    try:
        external, channel = world.discord_channel(), world.new_id("ch_")
        await world.map(world.discord_integration, external, channel)
        await until(lambda: discord.connections == 1, what="a Gateway connection")
        await asyncio.sleep(2.0)  # both replicas have polled several times by now
        assert discord.connections == 1 and discord.identifies == 1
        await discord.user_sends(external, ada, "before")
        await world.chat.received(lambda v: v["channel_id"] == channel)

        # The holder's gauge: set as its session became ready.
        [holder] = await until(lambda: _holding(replicas), what="the holder's gauge")
        holder.process.send_signal(signal.SIGKILL)
        holder.process.wait(10)
        # Written while nobody holds the connection: Discord keeps them for the Resume.
        await discord.user_sends(external, ada, "during 1")
        await discord.user_sends(external, ada, "during 2")
        # The lease (HOOKHUB_SYNC_LEASE_SECONDS=3 here) runs out, the other replica resumes.
        await until(lambda: discord.resumes >= 1, timeout=30, what="the takeover's Resume")
        await discord.user_sends(external, ada, "after")
        got = await world.chat.received(lambda v: v["channel_id"] == channel, count=4, timeout=30)
        await asyncio.sleep(1.0)
        await world.chat.inbound.poll()
        mine = [v for v in world.chat.inbound.values() if v["channel_id"] == channel]
        assert [v["text"] for v in got[:4]] == ["before", "during 1", "during 2", "after"]
        assert len(mine) == 4, [v["text"] for v in mine]  # "before" was not published again
        assert discord.identifies == 1 and discord.connections == 1
    finally:
        await asyncio.gather(*(r.stop() for r in replicas if r.process.poll() is None))
        await world.sync.aclose()


async def test_a_replica_scaled_down_hands_its_discord_connection_over_at_once(
    bare: World, tmp_path: Path
) -> None:
    """SIGTERM (a scale-down) releases the Gateway lease with the session: the other
    replica resumes within seconds, not after the lease (a minute here) runs out."""
    world, discord = bare, bare.discord
    ada = "1300000000000000078"
    discord.add_user(ada, "ada", global_name="Ada")
    long_lease = {"HOOKHUB_SYNC_LEASE_SECONDS": "60"}
    replicas = [
        await start_sync(world, tmp_path / "one.log", **long_lease),
        await start_sync(world, tmp_path / "two.log", **long_lease),
    ]
    try:
        external, channel = world.discord_channel(), world.new_id("ch_")
        await world.map(world.discord_integration, external, channel)
        await until(lambda: discord.connections == 1, what="a Gateway connection")
        await discord.user_sends(external, ada, "before")
        await world.chat.received(lambda v: v["channel_id"] == channel)
        # The holder's gauge: set as its session became ready.
        [holder] = await until(lambda: _holding(replicas), what="the holder's gauge")
        [other] = [r for r in replicas if r is not holder]

        took = await holder.stop()
        assert took < world.sync_settings.shutdown_seconds, f"stopped in {took:.1f} s"
        released = [
            line for line in holder.log_lines() if line.get("event") == "discord_gateway_released"
        ]
        assert released, "the stopping replica did not hand its lease back"
        await until(lambda: discord.resumes >= 1, timeout=20, what="the other replica's Resume")
        await discord.user_sends(external, ada, "after")
        got = await world.chat.received(lambda v: v["channel_id"] == channel, count=2, timeout=20)
        assert [v["text"] for v in got[:2]] == ["before", "after"]
        assert discord.identifies == 1, "the session was resumed, not started again"
        # Its gauge is set as its session reports ready (RESUMED), which may come after the
        # events it replays: "after" can reach the chat first.
        await until(lambda: _holds_gateway(other), what="the other replica's gauge")
    finally:
        await asyncio.gather(*(r.stop() for r in replicas if r.process.poll() is None))
        await world.sync.aclose()


async def test_slack_messages_written_while_sync_was_down_are_caught_up_from_history(
    bare: World, tmp_path: Path
) -> None:
    world, slack = bare, bare.slack
    slack.add_user("U0ADA", "Ada Lovelace")
    first = await start_sync(world, tmp_path / "first.log")
    external, channel = world.slack_channel(), world.new_id("ch_")
    await world.map(world.slack_integration, external, channel)
    await slack.post_as_user(external, "U0ADA", "live")
    await world.chat.received(lambda v: v["channel_id"] == channel)
    await first.stop()
    await world.sync.aclose()

    # Sync down, and Slack's deliveries lost with it (the gateway down too, or Slack gave
    # up retrying): the messages are only in the channel's history.
    events_url, slack.events_url = slack.events_url, None
    missed = [await slack.post_as_user(external, "U0ADA", f"missed {n}") for n in range(3)]
    slack.events_url = events_url

    second = await start_sync(world, tmp_path / "second.log")
    try:
        got = await world.chat.received(lambda v: v["channel_id"] == channel, count=4, timeout=30)
        assert [v["text"] for v in got] == ["live", "missed 0", "missed 1", "missed 2"]
        assert [v["source"]["external_message_id"] for v in got[1:]] == missed
        await asyncio.sleep(1.0)
        await world.chat.inbound.poll()
        mine = [v for v in world.chat.inbound.values() if v["channel_id"] == channel]
        assert len(mine) == 4  # "live" was in the history too, and not published again
    finally:
        await second.stop()
        await world.sync.aclose()
