"""Microsoft Teams in the sync tests' world: its stand-in on loopback (started by
`build_world`, tests/sync/conftest.py, so the services' settings point at it: the Bot
Framework's OpenID metadata, Microsoft's login and the Connector), and per module a bot
and an integration of it, made through oauth's API with the bot's app id and password,
whose webhook URL is the bot's messaging endpoint."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.sandbox.teams import TEAM_ID, Bot, Channel, FakeTeams
from shared.kernel.envelopes import Topic
from tests.support import KafkaTap, admin_headers, serve

# The stand-ins the worlds started, by the login base the services were given.
STAND_INS: dict[str, FakeTeams] = {}


@contextlib.asynccontextmanager
async def stand_in() -> AsyncIterator[FakeTeams]:
    fake = FakeTeams()
    async with serve(fake.app(), probe="/healthz") as running:
        fake.base_url = running.base_url
        STAND_INS[fake.base_url] = fake
        try:
            yield fake
        finally:
            STAND_INS.pop(fake.base_url, None)


def settings(fake: FakeTeams) -> dict[str, str]:
    """The services' settings naming the stand-in for Microsoft."""
    return {
        "teams_openid_metadata_url": fake.metadata_url,
        "teams_login_base": fake.base_url,
        "teams_service_url": fake.service_url,
    }


@dataclass
class Teams:
    """The stand-in, the bot, hookhub's integration of it, and a tap on the provider
    events topic (what the gateway published)."""

    fake: FakeTeams
    bot: Bot
    integration: str
    webhook_url: str
    events: KafkaTap

    def channel(self, team: str = TEAM_ID) -> str:
        """A new channel of `team` (the stand-in's Contoso unless said)."""
        channel_id = f"19:{uuid.uuid4().hex}@thread.tacv2"
        self.fake.channels[channel_id] = Channel(channel_id, channel_id[3:11], team)
        return channel_id

    async def pair(self, world: Any, team: str = TEAM_ID) -> tuple[str, str]:
        """A new channel of `team` mapped to a new chat channel: (channel, chat channel)."""
        external, channel = self.channel(team), world.new_id("ch_")
        await world.map(self.integration, external, channel)
        return external, channel

    def stored(self, channel: str) -> list[dict[str, Any]]:
        return list(self.fake.channels[channel].messages.values())


async def connect(world: Any, stack: contextlib.AsyncExitStack) -> Teams:
    """A new bot and a teams integration of the world's workspace; the integration's
    webhook URL is the bot's messaging endpoint."""
    fake = STAND_INS[world.sync_settings.teams_login_base]
    bot = fake.add_bot()
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "teams",
            "workspace_id": world.chat.workspace_id,
            "settings": {"app_id": bot.app_id, "app_password": bot.password},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    bot.endpoint = body["webhook_url"]
    events = await stack.enter_async_context(
        KafkaTap.of(world.sync_settings, Topic.PROVIDER_EVENTS)
    )
    return Teams(fake, bot, body["id"], body["webhook_url"], events)
