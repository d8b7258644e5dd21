"""Mattermost as a chat network: the bot account's posts through the REST API v4, its
events over the bot's WebSocket (held by sync like Discord's Gateway: `gateway.py`), and
its channels' history read through the API (catch-up, imports). The server is each
integration's own: its credential is built from the integration's `server_url` and
`bot_token` (`messages.credential`)."""

from __future__ import annotations

import httpx

from shared.domain.integrations.model import IntegrationSnapshot
from shared.kernel.egress import EgressPolicy
from shared.kernel.settings import Settings
from shared.providers.chat import ChatProvider
from shared.providers.connections import Connections
from shared.providers.mattermost.api import MattermostApi
from shared.providers.mattermost.gateway import MattermostGateway
from shared.providers.mattermost.messages import MattermostChat, credential
from shared.providers.networks import (
    ApiImport,
    AppValues,
    HistorySource,
    Network,
    Source,
)


class MattermostNetwork(Network):
    name = "mattermost"
    # Our posts carry their chat message's id (`props.hookhub_tag`) and a channel's posts
    # since a moment are one read (`posts?since=`), unlimited unless the administrator
    # limits the token (MattermostChat.find_post).
    finds_own_posts = True

    def __init__(self) -> None:
        self._ping: float | None = 20.0

    def chat(self, settings: Settings, client: httpx.AsyncClient, app: AppValues) -> MattermostChat:
        self._ping = settings.mattermost_ping_seconds
        policy = EgressPolicy.from_setting(settings.egress_allow_cidrs)
        return MattermostChat(MattermostApi(client, policy), settings.public_url)

    def credential(self, integration: IntegrationSnapshot) -> str | None:
        server = integration.config.get("server_url") or ""
        token = integration.secrets.get("bot_token") or ""
        if not server or not token:
            return None
        return credential(server, token, integration.id)

    def gateway(self, chat: ChatProvider) -> MattermostGateway:
        assert isinstance(chat, MattermostChat)
        return MattermostGateway(chat, ping_seconds=self._ping)

    async def api_source(
        self, chat: ChatProvider, connections: Connections, job: ApiImport
    ) -> Source:
        assert isinstance(chat, MattermostChat)
        return MattermostApiSource(connections, chat, job)


NETWORK = MattermostNetwork()


class MattermostApiSource(HistorySource):
    """A channel's posts, by pages of 200 (Mattermost's limit is the admin's, per token, off
    by default)."""

    provider = "mattermost"
    page_size = 200
