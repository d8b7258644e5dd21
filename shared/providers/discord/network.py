"""Discord as a chat network: its bot's messages through the REST API (and webhooks for
authors' names), DiscordChatExporter's files, and its channels' history read through the
API, by channel or by whole guild (`guild_ids`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from shared.kernel.settings import Settings
from shared.providers.chat import Author, ChatProvider
from shared.providers.connections import Connections
from shared.providers.discord import api
from shared.providers.discord.export import DiscordExport
from shared.providers.discord.gateway import DiscordGateway
from shared.providers.discord.messages import DiscordChat
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.networks import (
    ApiImport,
    ApiSource,
    AppValues,
    ExportKind,
    Network,
    Source,
    channel_conversation,
)


class DiscordNetwork(Network):
    name = "discord"
    exports = {
        "discord_export": ExportKind(
            "discord",
            DiscordExport.open,
            "DiscordChatExporter's JSON: one channel's file bare, or a ZIP of several",
        )
    }
    app_fields = ("client_id", "client_secret", "public_key")
    import_params = ("guild_ids",)
    account_field = "guild_id"

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> DiscordChat:
        return DiscordChat(api.DiscordApi(client, api.base_url(settings)))

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, DiscordChat)
        return DiscordApiSource(connections, chat, job)

    def gateway(self, chat: ChatProvider) -> DiscordGateway:
        assert isinstance(chat, DiscordChat)
        return DiscordGateway(chat.api)


NETWORK = DiscordNetwork()


class DiscordApiSource(ApiSource):
    provider = "discord"

    def __init__(self, connections: Connections, chat: DiscordChat, job: ApiImport) -> None:
        super().__init__(connections, job)
        self._chat = chat

    async def conversations(self) -> list[Conversation]:
        found: dict[str, Conversation] = {}
        for guild_id in self._job.ids("guild_ids"):

            async def text_channels(token: str, guild_id: str = guild_id) -> list[Conversation]:
                return await self._chat.text_channels(token, guild_id)

            channels = await self._connections.call(self._integration_id, text_channels)
            found.update({c.id: c for c in channels})
        for channel_id in self._job.ids("channel_ids"):
            if channel_id not in found:
                found[channel_id] = await channel_conversation(
                    self._connections, self._integration_id, self._chat, channel_id
                )
        return list(found.values())

    async def users(self) -> dict[str, Author]:
        return {}  # every Discord message names its author

    def pace(self) -> dict[str, Any] | None:
        # Discord's buckets are learnt from its headers as the pages are read.
        return {"page_size": 100, "seconds_per_request": None}

    def read(
        self, token: str, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        job = self._job
        return self._chat.import_records(
            token, conversation.id, oldest=job.oldest, latest=job.latest, after=after
        )
