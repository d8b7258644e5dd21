"""Google Chat as a chat network: a Chat app on hookhub's HTTP endpoint, posting through
the Chat API as its service account.

- Credential: the integration's own service account key (`service_account_json`), not a
  token TokenKeeper keeps: `credential()` hands it to `GoogleChatChat` as `token`, and the
  access tokens are had from it (`auth.AccessTokens`).
- Events: Chat's interaction events, POSTed to the integration's webhook URL and verified
  by the gateway (`GoogleChatWebhooks`, a `KeyedWebhooks`: Google's certificates fetched
  before `verify`); sync reads them off `hookhub.provider.events` as Telegram's.
- History: listing a space's messages (`spaces.messages.list`) takes a user's authorization;
  a Chat app's own (`chat.app.messages.readonly`) is a Developer Preview. So there is no
  `history` (no catch-up: live sync hears only the messages that @mention the app, and a
  catch-up would bring what live sync never would), but there is an `import`: with the
  integration's `import_as` set, the service account acts as that Workspace user through
  domain-wide delegation of `chat.messages.readonly`
  (developers.google.com/workspace/chat/authenticate-authorize-chat-user, "Authenticate
  and authorize using domain-wide delegation") and an import lists the spaces that user is
  a member of (`GoogleChatApiSource`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.settings import Settings
from shared.providers.chat import Author, ChatProvider, MessageChange, PermanentError
from shared.providers.connections import Connections
from shared.providers.googlechat.api import GoogleChatApi
from shared.providers.googlechat.auth import AccessTokens, Endpoints
from shared.providers.googlechat.messages import GoogleChatChat, rfc3339
from shared.providers.history import Conversation, HistoryRecord
from shared.providers.networks import (
    ApiImport,
    AppValues,
    HistorySource,
    Network,
    Source,
    channel_conversation,
)

SERVICE_ACCOUNT = "service_account_json"
# The Workspace user an import acts as (domain-wide delegation of chat.messages.readonly).
IMPORT_AS = "import_as"


def endpoints(settings: Settings) -> Endpoints:
    """Where Google is for these settings (the sandbox's stand-in, or Google's own)."""
    return Endpoints(
        api_base=settings.googlechat_api_base,
        token_url=settings.googlechat_token_url,
        oauth2_certs_url=settings.googlechat_oauth2_certs_url,
        chat_certs_url=settings.googlechat_chat_certs_url,
    )


class GoogleChatNetwork(Network):
    name = "googlechat"
    # `requestId` is the chat message's id: "Specifying an existing request ID returns the
    # message created with that ID instead of creating a new message" (spaces.messages.create).
    posts_once = True
    no_history = (
        "Google Chat lists a space's messages to a Workspace user: set the integration's "
        "import_as to a user the service account may act as (domain-wide delegation of "
        "chat.messages.readonly)"
    )

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> GoogleChatChat:
        where = endpoints(settings)
        return GoogleChatChat(
            GoogleChatApi(client, where.api_base, AccessTokens(client, where.token_url))
        )

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        """The service account key file (a secret setting): what every call is made with."""
        return integration.secrets.get(SERVICE_ACCOUNT) or ""

    def import_refusal(self, integration: IntegrationSnapshot) -> str | None:
        if integration.config.get(IMPORT_AS):
            return None
        return (
            "a Google Chat import reads the spaces as a Workspace user: set the integration's "
            f"{IMPORT_AS} (PATCH its settings) to a member of the spaces to import, whom the "
            "service account may act as through domain-wide delegation of "
            "https://www.googleapis.com/auth/chat.messages.readonly"
        )

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, GoogleChatChat)
        return GoogleChatApiSource(connections, chat, job)


NETWORK = GoogleChatNetwork()


class GoogleChatApiSource(HistorySource):
    """`POST /api/integrations/{id}/import` with `channel_ids` (space names, `spaces/…`):
    each space's messages through `spaces.messages.list` as the integration's `import_as`,
    oldest first, 1000 a page (the most it takes), from the checkpoint's `createTime`
    (`create_time > "…"`). Hookhub's own posts in the space (`is_own`: our custom id's mark,
    or the app's user) come out ignored, as the importer skips them.

    Authors: with user authentication a message's sender may carry only `name` (`users/…`)
    and `type` (developers.google.com/workspace/chat/api/reference/rest/v1/User). A sender
    without `displayName` is named by the app's `spaces.members.list` of the space (app
    authentication always gives `displayName`;
    developers.google.com/workspace/chat/list-members),
    read once a space; one the app cannot see keeps `users/…` as its name. A space the app
    is not in is still read (the user's membership is what the listing needs), named by its
    `spaces/…` name."""

    provider = "googlechat"
    page_size = 1000

    def __init__(self, connections: Connections, chat: GoogleChatChat, job: ApiImport) -> None:
        super().__init__(connections, chat, job)
        self._gchat = chat
        self._as_user = job.integration.config.get(IMPORT_AS) or ""
        self._members: dict[str, dict[str, Author]] = {}  # space → user name → author

    async def conversations(self) -> list[Conversation]:
        """Each space as the app sees it (`spaces.get`), else by its name: the user may be
        in spaces the app is not (its listing then shows what the user may read)."""
        out: list[Conversation] = []
        for space in dict.fromkeys(self._job.ids("channel_ids")):
            try:
                out.append(
                    await channel_conversation(
                        self._connections, self._integration_id, self._chat, space
                    )
                )
            except PermanentError as exc:
                if exc.scope == "integration":
                    raise
                out.append(Conversation(id=space, name=space))
        return out

    async def read(
        self, token: str, conversation: Conversation, after: dict[str, Any] | None
    ) -> AsyncIterator[HistoryRecord]:
        job = self._job
        since = (after or {}).get("after") or (rfc3339(job.oldest) if job.oldest else None)
        identity = await self._gchat.identity(token)
        start: datetime | None = job.oldest
        end = job.latest or datetime.now(UTC)
        pages = self._gchat.listed(
            token, conversation.id, as_user=self._as_user, after=since, page_size=self.page_size
        )
        async for listed in pages:
            change = listed.change
            if job.latest is not None and change.occurred_at > job.latest:
                return
            start = start or change.occurred_at
            if self._gchat.is_own(change, identity):
                change = replace(change, ignored="posted by hookhub")
            span = max(1.0, (end - start).total_seconds())
            yield HistoryRecord(
                checkpoint={"after": listed.create_time},
                change=await self.complete(token, change),
                done=min(1.0, max(0.0, (change.occurred_at - start).total_seconds() / span)),
                page_start=listed.page_start,
            )

    async def complete(self, token: str, change: MessageChange) -> MessageChange:
        author, user = change.author, change.sender.user_id
        if user is None or (author is not None and author.name != user):
            return change  # named by the message itself
        space = change.external_channel_id
        if space not in self._members:
            self._members[space] = await self._member_names(token, space)
        named = self._members[space].get(user)
        return change if named is None else replace(change, author=named)

    async def _member_names(self, token: str, space: str) -> dict[str, Author]:
        """The space's members as the app sees them; none when it cannot (not a member)."""
        try:
            memberships = await self._gchat.api.list_members(token, space)
        except PermanentError as exc:
            if exc.scope == "integration":
                raise
            return {}
        names: dict[str, Author] = {}
        for membership in memberships:
            member = membership.get("member")
            member = member if isinstance(member, dict) else {}
            user, name = member.get("name"), member.get("displayName")
            if isinstance(user, str) and user and isinstance(name, str) and name:
                avatar = member.get("avatarUrl")
                names[user] = Author(
                    name=name,
                    avatar_url=avatar if isinstance(avatar, str) else None,
                    external_id=user,
                )
        return names
