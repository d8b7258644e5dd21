"""Slack as a chat network: its bot's messages through the Web API, its export ZIP, and its
channels' history read through the API, at the app's `history_tier`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from weakref import WeakKeyDictionary

import httpx

from shared.kernel.settings import Settings
from shared.providers.chat import Author, ChatProvider
from shared.providers.connections import Connections
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
from shared.providers.slack import api
from shared.providers.slack.export import SlackExport
from shared.providers.slack.history import SlackHistory
from shared.providers.slack.limits import Tier
from shared.providers.slack.messages import SlackChat


class SlackNetwork(Network):
    name = "slack"
    exports = {"slack_export": ExportKind("slack", SlackExport.open, "Slack's export ZIP")}
    app_fields = ("client_id", "client_secret", "signing_secret", "history_tier")
    account_field = "team_id"
    export_account_is_integrations = True

    def __init__(self) -> None:
        # The imports' readers of a process's Slack: one per tier, shared by the jobs of
        # the replica, whose pacers so keep them together within the tier.
        self._readers: WeakKeyDictionary[SlackChat, dict[Tier, SlackHistory]] = WeakKeyDictionary()

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> SlackChat:
        # Catch-up, the search for a post after a crash and imports read the history:
        # paced to the app's tier, so that a start with a thousand mappings does not burst
        # past it.
        async def tier() -> str | None:
            return (await app(self.name)).get("history_tier")

        return SlackChat(api.SlackApi(client, api.base_url(settings)), tier)

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, SlackChat)
        tier = await chat.tier()
        readers = self._readers.setdefault(chat, {})
        if tier not in readers:
            readers[tier] = SlackHistory(chat.api, tier)
        return SlackApiSource(connections, chat, readers[tier], job)


NETWORK = SlackNetwork()


class SlackApiSource(ApiSource):
    provider = "slack"

    def __init__(
        self, connections: Connections, chat: SlackChat, history: SlackHistory, job: ApiImport
    ) -> None:
        super().__init__(connections, job)
        self._chat = chat
        self._history = history

    async def conversations(self) -> list[Conversation]:
        return [
            await channel_conversation(self._connections, self._integration_id, self._chat, c)
            for c in self._job.ids("channel_ids")
        ]

    async def users(self) -> dict[str, Author]:
        return await self._connections.call(self._integration_id, self._history.users)

    def pace(self) -> dict[str, Any] | None:
        tier = self._history.tier
        return {
            "tier": "limited" if tier.per_minute <= 1 else "tier3",
            "page_size": tier.page_size,
            "seconds_per_request": round(self._history.seconds_per_request(), 2),
            # A channel of 10,000 messages without threads, at this pace.
            "seconds_per_10000_messages": round(self._history.expected_seconds(10_000)),
        }

    def read(
        self, token: str, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        job = self._job
        return self._history.records(
            token, conversation.id, oldest=job.oldest, latest=job.latest, after=after
        )
