"""The chat providers (Slack, Telegram, Discord) on one HTTP client, as sync and the
importer use them through `shared.providers.chat.ChatProvider`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from shared.kernel.http.tls import tls
from shared.kernel.settings import Settings
from shared.providers.chat import ChatProvider
from shared.providers.discord import api as discord_api
from shared.providers.discord.messages import DiscordChat
from shared.providers.slack import api as slack_api
from shared.providers.slack.messages import SlackChat
from shared.providers.telegram.api import TelegramApi
from shared.providers.telegram.messages import TelegramChat


class GatedClient(httpx.AsyncClient):
    """At most as many requests in flight as the pool has connections; the others wait
    here. httpcore matches every waiting request against every connection each time one
    frees up: with a thousand lanes posting at once, that matching took 43% of the sync
    process's CPU (py-spy, `make bench` sync)."""

    def __init__(self, in_flight: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = asyncio.Semaphore(in_flight)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        async with self._gate:
            return await super().send(request, **kwargs)


def provider_client(max_connections: int, timeout_seconds: float) -> GatedClient:
    return GatedClient(
        max_connections,
        verify=tls(),
        timeout=timeout_seconds,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )


def chat_providers(
    settings: Settings,
    client: httpx.AsyncClient,
    slack_history_tier: Callable[[], Awaitable[str | None]] | None = None,
) -> dict[str, ChatProvider]:
    """`slack_history_tier`: the Slack app's history tier, which Slack's history reads are
    paced to (Tier 3 without it)."""
    providers: list[ChatProvider] = [
        SlackChat(slack_api.SlackApi(client, slack_api.base_url(settings)), slack_history_tier),
        TelegramChat(TelegramApi(client, settings.telegram_api_base)),
        DiscordChat(discord_api.DiscordApi(client, discord_api.base_url(settings))),
    ]
    return {provider.name: provider for provider in providers}
