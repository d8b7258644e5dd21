"""Where an import job reads: an export file (Slack's export ZIP, Telegram Desktop's
`result.json`, DiscordChatExporter's JSON; kept in GridFS, copied to a local file to be
read), Slack's Web API, or Discord's REST API. Each is a `Source` the runner
reads the same way: its conversations, its users, and each conversation's records in order
from a checkpoint (shared.providers.history)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from shared.domain.integrations.model import IntegrationSnapshot
from shared.providers.chat import Author, ChannelInfo, ChatProvider, TokenRejected
from shared.providers.connections import Connections
from shared.providers.discord.export import DiscordExport
from shared.providers.discord.messages import DiscordChat
from shared.providers.exports import ExportLimits, ExportReader
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.slack.export import SlackExport
from shared.providers.slack.history import SlackHistory
from shared.providers.telegram.export import TelegramExport

# Records taken from an export's iterator per thread hop (it reads and parses files).
_EXPORT_CHUNK = 500


@dataclass(frozen=True)
class ExportKind:
    """What `POST /api/imports` takes as its `source`: whose messages the file holds, and
    the reader that checks and opens it (raising `ExportRefused`)."""

    provider: str
    open: Callable[[Path, ExportLimits], ExportReader]
    description: str  # what the file is, for an error that lists the sources


EXPORTS: dict[str, ExportKind] = {
    "slack_export": ExportKind("slack", SlackExport.open, "Slack's export ZIP"),
    "telegram_export": ExportKind(
        "telegram",
        TelegramExport.open,
        "Telegram Desktop's result.json of a chat or of the whole account, bare or zipped",
    ),
    "discord_export": ExportKind(
        "discord",
        DiscordExport.open,
        "DiscordChatExporter's JSON: one channel's file bare, or a ZIP of several",
    ),
}
DEFAULT_EXPORT = "slack_export"


class Source(Protocol):
    provider: str
    # The provider account the messages belong to (Slack team, Discord guild): part of
    # every envelope id, as in live sync (shared.domain.message_map.inbound_message_id).
    account: str

    async def conversations(self) -> list[Conversation]: ...

    async def users(self) -> dict[str, Author]: ...

    def size(self, conversation: Conversation) -> int:
        """A conversation's weight for the job's percent (bytes, or 1 when unknown)."""
        ...

    def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]: ...

    def pace(self) -> dict[str, Any] | None:
        """How fast the provider lets it read, for the job's report (None: unpaced)."""
        ...

    def left_out(self) -> tuple[list[dict[str, Any]], int]:
        """Files of an export left out whole, for the report (the first ones, and how many
        in all): a ZIP's `.json` member that is not one of the export's files."""
        ...

    async def close(self) -> None: ...


class ExportSource:
    """Any opened export (`ExportReader`) as a job's source: whose messages they are is the
    reader's; the account is the job's (the export's team or guild, or the integration's
    account when the job has one, as live sync has it)."""

    def __init__(self, export: ExportReader, account: str) -> None:
        self._export = export
        self.provider = export.provider
        self.account = account

    async def conversations(self) -> list[Conversation]:
        return list(self._export.conversations)

    async def users(self) -> dict[str, Author]:
        return await asyncio.to_thread(self._export.users)

    def size(self, conversation: Conversation) -> int:
        return max(1, self._export.size(conversation))

    async def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        # The export is read (files opened, inflated, parsed) in a worker thread a chunk
        # at a time, the next chunk while the loop turns this one into envelopes and
        # publishes them.
        iterator: Iterator[HistoryRecord] = self._export.records(conversation, after)
        loop = asyncio.get_running_loop()

        def take() -> list[HistoryRecord]:
            return list(islice(iterator, _EXPORT_CHUNK))

        ahead = loop.run_in_executor(None, take)
        try:
            while chunk := await ahead:
                ahead = loop.run_in_executor(None, take)
                for record in chunk:
                    yield record
        finally:
            # One thread at a time in the iterator: the read in flight ends before it goes.
            if not ahead.done():
                await asyncio.wait([ahead])

    def pace(self) -> dict[str, Any] | None:
        return None

    def left_out(self) -> tuple[list[dict[str, Any]], int]:
        files, total = self._export.left_out()
        return [f.as_dict() for f in files], total

    async def close(self) -> None:
        await asyncio.to_thread(self._export.close)


class SlackApiSource:
    provider = "slack"

    def __init__(
        self,
        *,
        connections: Connections,
        integration: IntegrationSnapshot,
        history: SlackHistory,
        channel_ids: list[str],
        oldest: datetime | None,
        latest: datetime | None,
    ) -> None:
        self._connections = connections
        self._integration = integration
        self._history = history
        self._channel_ids = channel_ids
        self._oldest = oldest
        self._latest = latest
        self.account = integration.account_id or integration.id

    async def conversations(self) -> list[Conversation]:
        provider = self._connections.provider(self._integration)
        found = []
        for channel_id in self._channel_ids:
            info = await self._connections.call(
                self._integration.id, partial(_channel_info, provider, channel_id=channel_id)
            )
            found.append(Conversation(id=info.id, name=info.name or info.id))
        return found

    async def users(self) -> dict[str, Author]:
        return await self._connections.call(self._integration.id, self._history.users)

    def size(self, conversation: Conversation) -> int:
        return 1

    def left_out(self) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    def pace(self) -> dict[str, Any] | None:
        tier = self._history.tier
        return {
            "tier": "limited" if tier.per_minute <= 1 else "tier3",
            "page_size": tier.page_size,
            "seconds_per_request": round(self._history.seconds_per_request(), 2),
            # A channel of 10,000 messages without threads, at this pace.
            "seconds_per_10000_messages": round(self._history.expected_seconds(10_000)),
        }

    async def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        def read(token: str, after: dict[str, Any] | None) -> AsyncIterator[HistoryRecord]:
            return self._history.records(
                token, conversation.id, oldest=self._oldest, latest=self._latest, after=after
            )

        async for record in _with_fresh_token(self._connections, self._integration.id, read, after):
            yield record

    async def close(self) -> None:
        return None


class DiscordApiSource:
    provider = "discord"

    def __init__(
        self,
        *,
        connections: Connections,
        integration: IntegrationSnapshot,
        chat: DiscordChat,
        channel_ids: list[str],
        guild_ids: list[str],
        oldest: datetime | None,
        latest: datetime | None,
    ) -> None:
        self._connections = connections
        self._integration = integration
        self._chat = chat
        self._channel_ids = channel_ids
        self._guild_ids = guild_ids
        self._oldest = oldest
        self._latest = latest
        self.account = integration.account_id or integration.id

    async def conversations(self) -> list[Conversation]:
        found: dict[str, Conversation] = {}
        for guild_id in self._guild_ids:
            channels = await self._connections.call(
                self._integration.id, partial(_text_channels, self._chat, guild_id=guild_id)
            )
            found.update({c.id: c for c in channels})
        for channel_id in self._channel_ids:
            if channel_id not in found:
                info = await self._connections.call(
                    self._integration.id, partial(_channel_info, self._chat, channel_id=channel_id)
                )
                found[info.id] = Conversation(id=info.id, name=info.name or info.id)
        return list(found.values())

    async def users(self) -> dict[str, Author]:
        return {}  # every Discord message names its author

    def left_out(self) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    def pace(self) -> dict[str, Any] | None:
        # Discord's buckets are learnt from its headers as the pages are read.
        return {"page_size": 100, "seconds_per_request": None}

    def size(self, conversation: Conversation) -> int:
        return 1

    async def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        def read(token: str, after: dict[str, Any] | None) -> AsyncIterator[HistoryRecord]:
            return self._chat.import_records(
                token, conversation.id, oldest=self._oldest, latest=self._latest, after=after
            )

        async for record in _with_fresh_token(self._connections, self._integration.id, read, after):
            yield record

    async def close(self) -> None:
        return None


async def _with_fresh_token(
    connections: Connections,
    integration_id: str,
    read: Callable[[str, dict[str, Any] | None], AsyncIterator[HistoryRecord]],
    after: dict[str, Any] | None,
) -> AsyncIterator[HistoryRecord]:
    """`read(token, after)`; when the provider rejects the token (a rotating token expired
    during a long import), once more with a refreshed one from where it stopped."""
    token = await connections.token(integration_id)
    refreshed = False
    while True:
        try:
            async for record in read(token, after):
                after = record.checkpoint
                yield record
            return
        except TokenRejected:
            if refreshed:
                raise
            refreshed = True
            token = await connections.token(integration_id, rejected=token)


async def _channel_info(provider: ChatProvider, token: str, *, channel_id: str) -> ChannelInfo:
    return await provider.channel(token, channel_id)


async def _text_channels(chat: DiscordChat, token: str, *, guild_id: str) -> list[Conversation]:
    return await chat.text_channels(token, guild_id)
