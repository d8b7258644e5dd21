"""Where an import job reads: an export file (Slack's export ZIP, Telegram Desktop's
`result.json`, DiscordChatExporter's JSON; kept in GridFS, copied to a local file to be
read), or a network's API (its `Network.api_source`). Each is a `Source` the runner reads
the same way: its conversations, its users, and each conversation's records in order from
a checkpoint (shared.providers.history)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from itertools import islice
from typing import Any

from shared.providers.catalog import NETWORKS
from shared.providers.chat import Author
from shared.providers.exports import ExportReader
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.networks import ExportKind

# Records taken from an export's iterator per thread hop (it reads and parses files).
_EXPORT_CHUNK = 500

DEFAULT_EXPORT = "slack_export"


def exports() -> dict[str, ExportKind]:
    """What `POST /api/imports` takes as its `source`: every network's export files."""
    return {
        source: kind for network in NETWORKS.values() for source, kind in network.exports.items()
    }


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
