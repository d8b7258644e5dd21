"""Matrix as a chat network: hookhub as an application service of the integration's own
homeserver (shared/providers/matrix/appservice.py).

- Credential: the homeserver's URL, the registration's `as_token` and the namespace
  prefix, from the integration's own settings (`credential()`): one string, split again
  by `MatrixChats`, which keeps one `MatrixChat` (its puppet registry and caches) per
  homeserver and prefix, the least recently used dropped past `matrix_max_chats`.
- Events: the homeserver PUTs transactions to the integration's webhook URL (the
  registration's `url`), verified by the gateway with the `hs_token`
  (`MatrixWebhooks`), one envelope per transaction whose delivery id is its txnId; sync
  reads them off `hookhub.provider.events` as Telegram's.
- History: `GET /rooms/{roomId}/messages` (catch-up, and imports through the API with
  `channel_ids`, room ids)."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

import aiohttp
import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.egress import EgressPolicy, GuardedClient, check_url
from shared.kernel.errors import Invalid
from shared.kernel.settings import Settings
from shared.providers.chat import (
    Author,
    BotIdentity,
    ChannelInfo,
    ChatProvider,
    Invocation,
    MessageChange,
    OutboundPost,
    PermanentError,
    Posted,
    UserLookup,
    check_reachable,
)
from shared.providers.connections import Connections
from shared.providers.matrix.api import MatrixApi
from shared.providers.matrix.messages import MAX_AVATAR_BYTES, AvatarFetcher, MatrixChat
from shared.providers.networks import (
    ApiImport,
    AppValues,
    HistorySource,
    Network,
    Source,
)

DEFAULT_PREFIX = "_hookhub_"
# Integrations' MatrixChats kept at once (each holds its puppets' profiles and rooms):
# HOOKHUB_MATRIX_MAX_CHATS.
MAX_CHATS = 512


def credential(homeserver_url: str, as_token: str, prefix: str) -> str:
    """The one string sync passes as the `token` of a Matrix integration."""
    return json.dumps(
        {"homeserver_url": homeserver_url.rstrip("/"), "as_token": as_token, "prefix": prefix},
        sort_keys=True,
    )


@functools.lru_cache(maxsize=1024)
def split_credential(value: str) -> tuple[str, str, str]:
    """The credential's homeserver, as_token and prefix: its JSON parsed once, not for
    every call (a refused one is not kept)."""
    try:
        data = json.loads(value)
        return str(data["homeserver_url"]), str(data["as_token"]), str(data["prefix"])
    except (ValueError, KeyError, TypeError):
        raise PermanentError(
            "a Matrix credential names the homeserver, the as_token and the prefix",
            "bad_credential",
            "integration",
        ) from None


class MatrixChats:
    """The chat contract for every Matrix integration: each call's `token` (the
    credential) says which homeserver and namespace, and picks that integration's
    `MatrixChat`."""

    name = "matrix"

    def __init__(
        self,
        client: httpx.AsyncClient,
        fetch_avatar: AvatarFetcher | None = None,
        max_chats: int = MAX_CHATS,
        policy: EgressPolicy | None = None,
    ) -> None:
        """`policy`: the egress rules an integration's homeserver URL is held to (it is the
        user's: a private address is refused unless allow-listed); None checks none."""
        self._client = client
        self._fetch_avatar = fetch_avatar
        self._policy = policy
        self._max = max_chats
        self._chats: OrderedDict[tuple[str, str], MatrixChat] = OrderedDict()

    def open(self, token: str) -> tuple[MatrixChat, str]:
        """The integration's MatrixChat and its as_token."""
        homeserver, as_token, prefix = split_credential(token)
        key = (homeserver, prefix)
        chat = self._chats.get(key)
        if chat is None:
            if self._policy is not None:
                check_reachable(homeserver, self._policy, "the Matrix homeserver URL")
            chat = MatrixChat(MatrixApi(self._client, homeserver), prefix, self._fetch_avatar)
            self._chats[key] = chat
            while len(self._chats) > self._max:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(key)
        return chat, as_token

    def pace_seconds(self, external_channel_id: str) -> float:
        return 0.2  # MatrixChat.pace_seconds says why

    async def identity(self, token: str) -> BotIdentity:
        chat, as_token = self.open(token)
        return await chat.identity(as_token)

    async def channel(self, token: str, external_channel_id: str) -> ChannelInfo:
        chat, as_token = self.open(token)
        return await chat.channel(as_token, external_channel_id)

    async def post(self, token: str, external_channel_id: str, post: OutboundPost) -> Posted:
        chat, as_token = self.open(token)
        return await chat.post(as_token, external_channel_id, post)

    async def edit(
        self, token: str, external_channel_id: str, external_message_id: str, post: OutboundPost
    ) -> None:
        chat, as_token = self.open(token)
        await chat.edit(as_token, external_channel_id, external_message_id, post)

    async def delete(self, token: str, external_channel_id: str, external_message_id: str) -> None:
        chat, as_token = self.open(token)
        await chat.delete(as_token, external_channel_id, external_message_id)

    async def user(self, token: str, external_user_id: str) -> Author | None:
        chat, as_token = self.open(token)
        return await chat.user(as_token, external_user_id)

    async def find_post(
        self,
        token: str,
        external_channel_id: str,
        tag: str,
        since: datetime,
        thread_external_id: str | None = None,
    ) -> Posted | None:
        chat, as_token = self.open(token)
        return await chat.find_post(as_token, external_channel_id, tag, since, thread_external_id)

    async def history(
        self, token: str, external_channel_id: str, since: datetime, limit: int
    ) -> list[MessageChange]:
        chat, as_token = self.open(token)
        return await chat.history(as_token, external_channel_id, since, limit)

    # A command's answer is the appservice bot's reply in the room: Matrix shows no event
    # to one member alone.
    private_answers = False

    def commands(self, event_type: str, payload: Mapping[str, Any]) -> list[Invocation]:
        """The `!hookhub` commands of a transaction (MatrixChat.invocation)."""
        events = payload.get("events") if event_type == "transaction" else None
        if not isinstance(events, list):
            return []
        parser = _parser(_prefix(payload))
        found = (parser.invocation(e) for e in events if isinstance(e, Mapping))
        return [invocation for invocation in found if invocation is not None]

    async def answer(
        self,
        token: str,
        external_channel_id: str,
        reply: Mapping[str, str],
        text: str,
        private: bool,
    ) -> None:
        chat, as_token = self.open(token)
        await chat.answer(as_token, external_channel_id, reply, text, private)

    def changes(self, event_type: str, payload: Mapping[str, Any]) -> list[MessageChange]:
        """A transaction as the gateway published it: `{"events": [...], "prefix": ...}`.
        The events of the namespace (the prefix the gateway read off the integration) come
        out `ignored`; `is_own` also tells them, by the appservice's identity."""
        events = payload.get("events")
        if not isinstance(events, list):
            return []
        parser = _parser(_prefix(payload))
        out: list[MessageChange] = []
        for event in events:
            if isinstance(event, Mapping):
                change = parser.change(event)
                if change is not None:
                    out.append(change)
        return out

    def is_own(self, change: MessageChange, identity: BotIdentity) -> bool:
        user = change.sender.user_id
        if user is None:
            return False
        if user == identity.user_id:
            return True
        server = (identity.user_id or "").partition(":")[2]
        prefix = identity.app_id or DEFAULT_PREFIX
        return user.startswith(f"@{prefix}") and (not server or user.endswith(":" + server))

    async def render(self, text: str, users: UserLookup) -> str:
        return text


_PARSERS: dict[str, MatrixChat] = {}


def _prefix(transaction: Mapping[str, Any]) -> str:
    """The namespace prefix the gateway read off the integration, with the transaction."""
    prefix = transaction.get("prefix")
    return prefix if isinstance(prefix, str) and prefix else DEFAULT_PREFIX


def _parser(prefix: str) -> MatrixChat:
    """A MatrixChat that only reads events (no homeserver): one per prefix."""
    parser = _PARSERS.get(prefix)
    if parser is None:
        try:
            parser = MatrixChat(MatrixApi(cast(httpx.AsyncClient, None), "http://unused"), prefix)
        except ValueError:
            return _parser(DEFAULT_PREFIX)
        if len(_PARSERS) < 64:
            _PARSERS[prefix] = parser
    return parser


class GuardedAvatars:
    """An `AvatarFetcher` keeping to the egress policy: a chat author's avatar URL comes
    from outside, so it is fetched as deliveries are (`GuardedClient`: public addresses,
    plus `HOOKHUB_EGRESS_ALLOW_CIDRS`; no redirects), an image of at most
    `MAX_AVATAR_BYTES`; anything else is no avatar."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._client: GuardedClient | None = None

    async def __call__(self, url: str) -> tuple[bytes, str] | None:
        try:
            check_url(url, self._policy)
        except Invalid:
            return None
        if self._client is None:  # made inside the running event loop
            self._client = GuardedClient(self._policy, 4)
        try:
            async with self._client.post(
                url, body=b"", headers={}, time_limit=10.0, method="GET"
            ) as answer:
                media_type = (answer.headers.get("content-type") or "").split(";")[0].strip()
                if answer.status != 200 or not media_type.startswith("image/"):
                    return None
                data = await answer.content.read(MAX_AVATAR_BYTES + 1)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None
        return None if len(data) > MAX_AVATAR_BYTES else (data, media_type)


class MatrixNetwork(Network):
    name = "matrix"
    # The send's txnId derives from the chat message (messages.txn_id): the homeserver
    # answers a retransmission with the first event's id (client-server API, "Transaction
    # identifiers", scoped to the device and endpoint; Synapse keeps them about 30 minutes).
    posts_once = True

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> MatrixChats:
        policy = EgressPolicy.from_setting(settings.egress_allow_cidrs)
        return MatrixChats(
            client, GuardedAvatars(policy), max_chats=settings.matrix_max_chats, policy=policy
        )

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, MatrixChats)
        return MatrixApiSource(connections, chat, job)

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        """The homeserver (a setting), the as_token (a secret) and the namespace prefix."""
        homeserver = integration.config.get("homeserver_url") or ""
        as_token = integration.secrets.get("as_token") or ""
        if not homeserver or not as_token:
            return ""  # refused by the first call: the integration is in error
        prefix = integration.config.get("namespace_prefix") or DEFAULT_PREFIX
        return credential(homeserver, as_token, prefix)


NETWORK = MatrixNetwork()


class MatrixApiSource(HistorySource):
    """`POST /api/integrations/{id}/import` with `channel_ids` (room ids): each room's
    messages through `GET /rooms/{roomId}/messages`, as the appservice's own user, 100 a
    page (an appservice is registered with `rate_limited: false`), each sender named by
    its profile."""

    provider = "matrix"
    page_size = 100

    def __init__(self, connections: Connections, chat: MatrixChats, job: ApiImport) -> None:
        super().__init__(connections, chat, job)
        self._chats = chat
        # Senders' display names (GET /profile), each asked once a job.
        self._authors: dict[str, Author | None] = {}

    async def complete(self, token: str, change: MessageChange) -> MessageChange:
        sender = change.sender.user_id
        if change.author is not None or not sender:
            return change
        if sender not in self._authors:
            self._authors[sender] = await self._chats.user(token, sender)
        author = self._authors[sender]
        return change if author is None else dataclasses.replace(change, author=author)
