"""Chat networks (SPEC §19): the providers whose channels sync bridges to hookhub's chat.

A network is one provider folder, `shared/providers/<network>/`: its `ChatProvider`
(`messages.py`, on `shared.providers.chat`), and a `Network` in its `network.py` that its
catalog entry carries (`Entry.network`, with `sync` in its capabilities). Sync, the
importer, catch-up and the gateway take the networks from the catalog
(`catalog.NETWORKS`) and ask each what it can do: `history` in its capabilities (sync's
catch-up and imports through its API read it), `import` with an API source (imports
through its API, no catch-up: Google Chat's), its export files, its app's settings. None
of them names a network; adding one is adding its folder (docs/sync.md, Adding a network).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.settings import Settings
from shared.providers.chat import Author, ChatProvider, MessageChange, TokenRejected
from shared.providers.connections import Connections
from shared.providers.exports import ExportLimits, ExportReader
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.sockets import Gateway

# The network's app settings (`PUT /api/providers/{provider}` over the environment), read
# on each use: `shared.providers.apps.AppDirectory.values`.
AppValues = Callable[[str], Awaitable[Mapping[str, str]]]


@dataclass(frozen=True)
class ExportKind:
    """What `POST /api/imports` takes as its `source`: whose messages the file holds, and
    the reader that checks and opens it (raising `ExportRefused`)."""

    provider: str
    open: Callable[[Path, ExportLimits], ExportReader]
    description: str  # what the file is, for an error that lists the sources


@dataclass(frozen=True)
class ApiImport:
    """An import job through a network's API, as `POST /api/integrations/{id}/import` made
    it: the channels (and the network's own `Network.import_params`) and the time span."""

    integration: IntegrationSnapshot
    params: Mapping[str, Any]
    oldest: datetime | None
    latest: datetime | None

    def ids(self, name: str) -> list[str]:
        return list(self.params.get(name) or [])


class Source(Protocol):
    """Where an import job reads: an export file, or a network's API."""

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


class ApiSource:
    """What an import through a network's API has of every network's: the job, its
    integration's account, a refreshed token when one is rejected on the way. A network's
    source adds its conversations, users, pace and `read`."""

    provider: str

    def __init__(self, connections: Connections, job: ApiImport) -> None:
        self._connections = connections
        self._job = job
        self._integration_id = job.integration.id
        self.account = job.integration.account_id or job.integration.id

    def read(
        self, token: str, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        """The conversation's records from `after`, with `token`."""
        raise NotImplementedError

    async def records(
        self, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        def read(token: str, after: dict[str, Any] | None) -> AsyncIterator[HistoryRecord]:
            return self.read(token, conversation, after)

        async for record in with_fresh_token(self._connections, self._integration_id, read, after):
            yield record

    def size(self, conversation: Conversation) -> int:
        return 1

    def left_out(self) -> tuple[list[dict[str, Any]], int]:
        return [], 0

    async def close(self) -> None:
        return None


class HistorySource(ApiSource):
    """An import through a network's API that reads each of the job's `channel_ids` with
    `ChatProvider.history` (oldest first, at most `limit`): from `oldest`, or after the
    checkpoint's `after_ms`, up to `latest`. A network's source says its page size and may
    complete each message (`complete`: Matrix names its senders)."""

    page_size: int
    limit = 100_000  # the most messages of one channel an import reads

    def __init__(self, connections: Connections, chat: ChatProvider, job: ApiImport) -> None:
        super().__init__(connections, job)
        self._chat = chat

    async def conversations(self) -> list[Conversation]:
        return [
            await channel_conversation(self._connections, self._integration_id, self._chat, c)
            for c in dict.fromkeys(self._job.ids("channel_ids"))
        ]

    async def users(self) -> dict[str, Author]:
        return {}  # authors come with the messages (or `complete`)

    def pace(self) -> dict[str, Any] | None:
        # The network's limit, where there is one, comes as a 429 that says the wait.
        return {"page_size": self.page_size, "seconds_per_request": None}

    async def complete(self, token: str, change: MessageChange) -> MessageChange:
        return change

    async def read(
        self, token: str, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        job = self._job
        start = datetime.fromtimestamp(0, UTC) if job.oldest is None else job.oldest
        after_ms = int((after or {}).get("after_ms") or 0)
        if after_ms:
            start = max(start, datetime.fromtimestamp(after_ms / 1000, UTC))
        changes = await self._chat.history(token, conversation.id, start, self.limit)
        for position, change in enumerate(changes):
            if job.latest is not None and change.occurred_at > job.latest:
                return
            yield HistoryRecord(
                checkpoint={"after_ms": int(change.occurred_at.timestamp() * 1000)},
                change=await self.complete(token, change),
                done=(position + 1) / len(changes),
                page_start=position % self.page_size == 0,
            )


class Network:
    """One chat network, beyond its `ChatProvider`. The defaults are a network's that
    sync only; its folder overrides what it has (exports, an API import, an app)."""

    name: str
    # The export files of it that the importer reads, by `POST /api/imports`'s `source`.
    exports: Mapping[str, ExportKind] = {}
    # Its app's settings at hookhub (`PUT /api/providers/{provider}`, the environment's
    # `HOOKHUB_<NETWORK>_<FIELD>`): all but client_id and history_tier are secrets.
    app_fields: tuple[str, ...] = ()
    # Lists an API import takes besides `channel_ids` (Discord's `guild_ids`).
    import_params: tuple[str, ...] = ()
    # The field of an export job's upload that keeps the account the export names
    # (Slack's `team_id`), if it names one.
    account_field: str | None = None
    # Whether the account an export names is an integration's account (a Slack team): the
    # export then goes to that account's integration or to none, and an integration named
    # for it must be of that account. Else (a Discord bot's account is the bot, not the
    # guild) the workspace's integrations of the network are looked among.
    export_account_is_integrations: bool = False
    # Why its channels' history cannot be read, for a network without `history`.
    no_history: str = "the network's API gives no message history: there is nothing to import"
    # Whether a post made again with the same chat message is the same message (its API
    # takes a key of ours and answers a repeat with the first post): sync's lanes then do
    # not wait for each post's copy to be written, and a post read again after a crash is
    # simply made again (services.sync.outbound.unwritten).
    posts_once: bool = False
    # Whether its `find_post` finds a post of ours again by the tag it carries, at a cost a
    # recovery may pay for each post read again (no rate limit that a burst of them would
    # spend for the workspace, as Slack's history has): sync's lanes then do not wait for
    # each post's copy either, and after a crash every post read again that the map does
    # not hold is looked for before it is made (services.sync.outbound.unwritten).
    finds_own_posts: bool = False

    @property
    def lanes_wait(self) -> bool:
        """Whether sync's lanes wait for each post's copy to be written before the next
        post: unless a post made again is the same message or is found again."""
        return not (self.posts_once or self.finds_own_posts)

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> ChatProvider:
        """Its `ChatProvider`, calling the network through `client`."""
        raise NotImplementedError

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        """Where an import through its API reads: for a network with `history`, or with
        `import` and this method (`reads_api`)."""
        raise NotImplementedError(f"{self.name} has no history to import")

    @property
    def reads_api(self) -> bool:
        """Whether an import can read it through its API: it has its own `api_source`."""
        return type(self).api_source is not Network.api_source

    def import_refusal(self, integration: IntegrationSnapshot) -> str | None:
        """Why this integration cannot be imported through the API as it is set (a setting
        the import needs: Google Chat's `import_as`), or None. Said before a job exists."""
        return None

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        """What its `ChatProvider` takes as `token` for this integration, when the network
        builds it from the integration's own settings (Mattermost's server URL with its bot
        token, a Matrix homeserver with its appservice token, Teams' app credentials) rather
        than taking the token TokenKeeper keeps (`bot_token`, an OAuth access token): None.
        A credential the network refuses puts the integration in error: a new one is a
        PATCH of its settings."""
        return None

    def gateway(self, chat: ChatProvider) -> Gateway | None:
        """The connection sync holds per integration for the network's events, when they
        come over one of its own (Discord's Gateway) rather than as webhooks."""
        return None


async def with_fresh_token(
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


async def channel_conversation(
    connections: Connections, integration_id: str, chat: ChatProvider, channel_id: str
) -> Conversation:
    """A channel as an API import's conversation."""

    async def read(token: str) -> Conversation:
        info = await chat.channel(token, channel_id)
        return Conversation(id=info.id, name=info.name or info.id)

    return await connections.call(integration_id, read)


# The defaults, for a provider with no network of its own (every chat network has one).
PLAIN_NETWORK = Network()
