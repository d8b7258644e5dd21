"""Mattermost as a chat network: the bot account's posts through the REST API v4, its
events over the bot's WebSocket (held by sync like Discord's Gateway: `gateway.py`), and
its channels' history read through the API (catch-up, imports). The server is each
integration's own: its credential is built from the integration's `server_url` and
`bot_token` (`messages.credential`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.settings import Settings
from shared.providers.chat import Author, ChatProvider
from shared.providers.connections import Connections
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.mattermost.api import MattermostApi
from shared.providers.mattermost.gateway import MattermostGateway
from shared.providers.mattermost.messages import MattermostChat, credential
from shared.providers.networks import (
    ApiImport,
    ApiSource,
    AppValues,
    Network,
    Source,
    channel_conversation,
)

# What an import reads of a channel at most (its newest posts): `history`'s pages of 200.
IMPORT_LIMIT = 100_000


class MattermostNetwork(Network):
    name = "mattermost"

    def __init__(self) -> None:
        self._ping: float | None = 20.0

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> MattermostChat:
        self._ping = settings.mattermost_ping_seconds
        return MattermostChat(MattermostApi(client))

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        server = integration.config.get("server_url") or ""
        token = integration.secrets.get("bot_token") or ""
        if not server or not token:
            return None
        return credential(server, token)

    def gateway(self, chat: ChatProvider) -> MattermostGateway:
        assert isinstance(chat, MattermostChat)
        return MattermostGateway(chat, ping_seconds=self._ping)

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, MattermostChat)
        return MattermostApiSource(connections, chat, job)


NETWORK = MattermostNetwork()


class MattermostApiSource(ApiSource):
    provider = "mattermost"

    def __init__(self, connections: Connections, chat: MattermostChat, job: ApiImport) -> None:
        super().__init__(connections, job)
        self._chat = chat

    async def conversations(self) -> list[Conversation]:
        return [
            await channel_conversation(self._connections, self._integration_id, self._chat, c)
            for c in dict.fromkeys(self._job.ids("channel_ids"))
        ]

    async def users(self) -> dict[str, Author]:
        return {}  # authors are looked up by id as the records are brought in

    def pace(self) -> dict[str, Any] | None:
        # Mattermost's limit is the admin's (per token, off by default); a 429 says the wait.
        return {"page_size": 200, "seconds_per_request": None}

    async def read(
        self, token: str, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        """The channel's posts oldest first, from `oldest` or after the checkpoint's
        `create_at` (ms), up to `latest`."""
        job = self._job
        start = datetime.fromtimestamp(0, UTC) if job.oldest is None else job.oldest
        after_ms = int((after or {}).get("after_ms") or 0)
        if after_ms:
            start = max(start, datetime.fromtimestamp(after_ms / 1000, UTC))
        changes = await self._chat.history(token, conversation.id, start, IMPORT_LIMIT)
        for position, change in enumerate(changes):
            if job.latest is not None and change.occurred_at > job.latest:
                return
            yield HistoryRecord(
                checkpoint={"after_ms": int(change.occurred_at.timestamp() * 1000)},
                change=change,
                done=(position + 1) / len(changes),
                page_start=position % 200 == 0,
            )
