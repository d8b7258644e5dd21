"""The Mattermost stand-in on loopback beside a sync `World`, with an integration whose
`server_url` is it (tests/sync/test_mattermost*.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.sandbox.mattermost import ADA, BOT, GRACE, FakeMattermost, new_id
from tests.support import serve
from tests.sync.conftest import World, connect, until


@dataclass
class Mattermost:
    fake: FakeMattermost
    integration_id: str

    def channel(self, *members: str) -> str:
        channel_id = new_id()
        self.fake.add_channel(
            channel_id,
            f"sync-{channel_id[:6]}",
            f"Sync {channel_id[:6]}",
            members=list(members or (BOT[0], ADA[0], GRACE[0])),
        )
        return channel_id

    async def pair(self, world: World) -> tuple[str, str]:
        """A new Mattermost channel mapped to a new chat channel: (channel id, chat channel)."""
        external, channel = self.channel(), world.new_id("ch_")
        await world.map(self.integration_id, external, channel)
        return external, channel

    async def connected(self) -> None:
        await until(lambda: self.fake.connections >= 1, what="the bot's WebSocket")


@contextlib.asynccontextmanager
async def served(world: World) -> AsyncIterator[Mattermost]:
    fake = FakeMattermost()
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        integration_id = await connect(
            world, "mattermost", server_url=fake.base_url, bot_token=fake.bot_token
        )
        yield Mattermost(fake, integration_id)
