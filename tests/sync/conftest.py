"""Sync between real services: the gateway (webhooks in), oauth (integrations), sync, on
the session's broker and database, with Slack, Telegram and Discord (REST and Gateway
WebSocket) faked on loopback. The chat
product is played by the tests: it publishes on `hookhub.chat.events` and reads
`hookhub.chat.inbound`."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.fernet import Fernet

from services.gateway.app import definition as gateway_definition
from services.oauth.app import definition as oauth_definition
from services.sandbox.atlassian import FakeAtlassian
from services.sandbox.discord import FakeDiscord
from services.sandbox.github import FakeGitHub
from services.sandbox.slack import FakeSlack
from services.sandbox.telegram import FakeTelegram
from services.sync.app import definition as sync_definition
from shared.domain.platform import create_app
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from shared.kernel.settings import GatewaySettings, ServiceSettings, SyncSettings
from tests.infra import Infra
from tests.support import (
    KafkaTap,
    RunningService,
    ServiceProcess,
    admin_headers,
    make_settings,
    new_namespace,
    serve,
)
from tests.support import until as until  # the sync tests import it from here

TELEGRAM_TOKEN = "7000000001:AAE-sync-test-bot-token-0000000000"
TELEGRAM_BOT_ID = 7000000001
DISCORD_TOKEN = "MTIwMDAwMDAwMDAwMDAwMDAx.GsyncT.discord-sync-test-bot-token-000000"
DISCORD_BOT_ID = "1200000000000000001"
DISCORD_APP_ID = "1200000000000000002"
DISCORD_GUILD = "1200000000000000003"


@dataclass
class Chat:
    """The chat product: publishes its events, reads what hookhub hands it."""

    settings: ServiceSettings
    producer: AIOKafkaProducer
    inbound: KafkaTap
    workspace_id: str = "ws_sync"

    async def publish(
        self,
        type: str,
        data: dict[str, Any],
        actor: dict[str, Any] | None = None,
        event_id: str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> ChatEvent:
        event = ChatEvent(
            id=event_id or f"evt_{uuid.uuid4().hex}",
            type=type,
            workspace_id=self.workspace_id,
            occurred_at=utcnow(),
            actor=actor or {"id": "u_ada", "name": "Ada Lovelace"},
            data=data,
        )
        await self.producer.send_and_wait(
            self.settings.topic(Topic.CHAT_EVENTS),
            event.to_kafka(),
            key=event.partition_key(),
            headers=headers,
        )
        return event

    async def received(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        found = await self.inbound.wait_for(predicate, count=count, timeout=timeout)
        assert len(found) >= count, f"{len(found)} of {count} inbound envelopes arrived"
        return found


@dataclass
class World:
    slack: FakeSlack
    telegram: FakeTelegram
    discord: FakeDiscord
    gateway: RunningService
    oauth: RunningService
    # The sync service's API: the in-process service's, or a `hookhub serve sync` process's.
    sync: httpx.AsyncClient
    chat: Chat
    sync_settings: SyncSettings
    telegram_base: str
    slack_integration: str = ""
    telegram_integration: str = ""
    discord_integration: str = ""
    counter: list[int] = field(default_factory=lambda: [0])
    # The in-process sync service's app (`with_sync`), for what its API does not show.
    sync_app: Any = None
    # GitHub's stand-in: its OAuth (chat users' account links) and the API cards act on.
    github: FakeGitHub | None = None
    # Jira's (Atlassian's) stand-in: its OAuth and the issues Jira cards act on.
    jira: FakeAtlassian | None = None

    def new_id(self, prefix: str) -> str:
        self.counter[0] += 1
        return f"{prefix}{self.counter[0]:04d}{uuid.uuid4().hex[:4].upper()}"

    def slack_channel(self, member: bool = True) -> str:
        channel = self.new_id("C")
        self.slack.add_channel(channel, channel.lower(), member=member)
        return channel

    def telegram_chat(self, kind: str = "supergroup") -> int:
        """A group (negative id; paced 20 a minute) or a private chat (positive; 1 a second)."""
        chat_id = 1001000000000 + self.counter[0] * 1000 + uuid.uuid4().int % 1000
        chat_id = chat_id if kind == "private" else -chat_id
        self.counter[0] += 1
        self.telegram.add_chat(chat_id, kind, f"chat {chat_id}")
        return chat_id

    async def slack_pair(self, **fields: Any) -> tuple[str, str]:
        """A new Slack channel mapped to a new chat channel: (external id, chat channel)."""
        external, channel = self.slack_channel(), self.new_id("ch_")
        await self.map(self.slack_integration, external, channel, **fields)
        return external, channel

    async def telegram_pair(self, kind: str = "supergroup") -> tuple[int, str]:
        """A new Telegram chat mapped to a new chat channel: (chat id, chat channel)."""
        chat_id, channel = self.telegram_chat(kind), self.new_id("ch_")
        await self.map(self.telegram_integration, chat_id, channel)
        return chat_id, channel

    def discord_channel(self, permissions: int | None = None) -> str:
        channel = self.discord.snowflake()
        extra = {} if permissions is None else {"permissions": permissions}
        self.discord.add_channel(channel, DISCORD_GUILD, f"sync-{channel[-6:]}", **extra)
        return channel

    async def discord_pair(self, **fields: Any) -> tuple[str, str]:
        """A new Discord channel mapped to a new chat channel: (channel id, chat channel)."""
        external, channel = self.discord_channel(), self.new_id("ch_")
        await self.map(self.discord_integration, external, channel, **fields)
        return external, channel

    async def map(
        self, integration_id: str, external_channel_id: str | int, channel_id: str, **fields: Any
    ) -> dict[str, Any]:
        answer = await self.sync.post(
            f"/api/integrations/{integration_id}/mappings",
            json={
                "external_channel_id": str(external_channel_id),
                "channel_id": channel_id,
                **fields,
            },
            headers=admin_headers(),
        )
        assert answer.status_code == 201, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def mapping(self, integration_id: str, mapping_id: str) -> dict[str, Any]:
        answer = await self.sync.get(
            f"/api/integrations/{integration_id}/mappings/{mapping_id}", headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def in_channel(channel_id: str, type: str = "message.received") -> Callable[[Any], bool]:
    """Inbound envelopes of one chat channel and type."""
    return lambda v: bool(v["channel_id"] == channel_id and v["type"] == type)


# The sync settings of the tests, as `hookhub serve sync` reads them from the environment.
SYNC_ENV = {
    "HOOKHUB_SYNC_LEASE_SECONDS": "3",
    "HOOKHUB_SYNC_POLL_SECONDS": "0.2",
    "HOOKHUB_SYNC_MAX_BACKOFF_SECONDS": "2",
    "HOOKHUB_CACHE_REFRESH_SECONDS": "0.5",
    # Pacing is tested on its own; elsewhere a second per write would only slow tests.
    "HOOKHUB_SYNC_PACE_FACTOR": "0.05",
    # Subscriptions' counts written at once, not every 10 s.
    "HOOKHUB_SYNC_NOTIFICATION_COUNTS_SECONDS": "0.2",
}


# The world's settings naming stand-ins that a `hookhub serve sync` process calls.
STAND_IN_SETTINGS = (
    "slack_api_base",
    "discord_api_base",
    "googlechat_api_base",
    "googlechat_token_url",
    "teams_login_base",
    "teams_service_url",
)


def sync_env(world: World, **overrides: str) -> dict[str, str]:
    """The environment of a `hookhub serve sync` process in this world."""
    settings = world.sync_settings
    return {
        **SYNC_ENV,
        **{f"HOOKHUB_{name.upper()}": getattr(settings, name) for name in STAND_IN_SETTINGS},
        "HOOKHUB_TELEGRAM_API_BASE": world.telegram_base,
        **overrides,
    }


@pytest.fixture(scope="module")
async def world(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with build_world(infra, tmp_path_factory.mktemp("sync"), with_sync=True) as built:
        yield built


@contextlib.asynccontextmanager
async def build_world(infra: Infra, data_dir: Path, *, with_sync: bool) -> AsyncIterator[World]:
    """Fakes, gateway, oauth and (`with_sync`) an in-process sync service; without it,
    tests start `hookhub serve sync` processes of their own (`sync_env`)."""
    slack, telegram = FakeSlack(), FakeTelegram()
    telegram.add_bot(TELEGRAM_TOKEN, TELEGRAM_BOT_ID, "hookhub_bot")
    # Heartbeats every second: a missed ACK or a dead connection shows within seconds.
    discord = FakeDiscord(heartbeat_interval_ms=1000)
    discord.add_bot(DISCORD_TOKEN, DISCORD_BOT_ID, "hookhub", DISCORD_APP_ID)
    discord.add_guild(DISCORD_GUILD, "sync tests")
    namespace, keys = new_namespace(), Fernet.generate_key().decode()
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(serve(slack.app(), probe="/healthz"))
        slack.base_url = running.base_url
        telegram_base = (
            await stack.enter_async_context(serve(telegram.app(), probe="/healthz"))
        ).base_url
        discord.base_url = (
            await stack.enter_async_context(serve(discord.app(), probe="/healthz"))
        ).base_url
        github = FakeGitHub()
        github.base_url = (
            await stack.enter_async_context(serve(github.app(), probe="/healthz"))
        ).base_url
        jira = FakeAtlassian()
        jira.base_url = (
            await stack.enter_async_context(serve(jira.app(), probe="/healthz"))
        ).base_url
        common: dict[str, Any] = {
            "encryption_keys": keys,
            "telegram_api_base": telegram_base,
            "discord_api_base": discord.base_url + "/api/v10",
            **slack.hookhub_settings(slack.base_url),
            **github.hookhub_settings(github.base_url),
            **jira.hookhub_settings(jira.base_url),
        }
        # Google Chat's stand-in (tests/sync/googlechat_world.py), where the services find it.
        from tests.sync import googlechat_world

        googlechat = await stack.enter_async_context(googlechat_world.stand_in())
        common.update(googlechat_world.settings(googlechat))
        # Microsoft Teams' stand-in (tests/sync/teams_world.py), where the services find it.
        from tests.sync import teams_world

        teams = await stack.enter_async_context(teams_world.stand_in())
        common.update(teams_world.settings(teams))
        gateway = await stack.enter_async_context(
            serve(
                create_app(
                    gateway_definition(),
                    make_settings(
                        GatewaySettings,
                        infra,
                        namespace,
                        data_dir,
                        cache_refresh_seconds=0.5,
                        **common,
                    ),
                )
            )
        )
        # GitHub sends the browser back to the oauth service's callback (its public URL).
        github.client.redirect_uri = gateway.base_url + "/api/auth/oauth/callback"
        jira.client.redirect_uri = github.client.redirect_uri
        oauth = await stack.enter_async_context(
            serve(
                create_app(
                    oauth_definition(),
                    make_settings(
                        ServiceSettings,
                        infra,
                        namespace,
                        data_dir,
                        public_url=gateway.base_url,
                        oauth_poll_seconds=3600,
                        **common,
                    ),
                )
            )
        )
        settings = make_settings(
            SyncSettings,
            infra,
            namespace,
            data_dir,
            **common,
            **{key.removeprefix("HOOKHUB_").lower(): value for key, value in SYNC_ENV.items()},
            # What a Mattermost card's buttons call back: hookhub's URL, the gateway's.
            public_url=gateway.base_url,
        )
        sync_app = None
        if with_sync:
            running_sync = await stack.enter_async_context(
                serve(create_app(sync_definition(), settings))
            )
            sync, sync_app = running_sync.client, running_sync.app
        else:
            sync = await stack.enter_async_context(http_client("http://127.0.0.1:9"))
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        stack.push_async_callback(producer.stop)
        tap = await stack.enter_async_context(KafkaTap.of(settings, Topic.CHAT_INBOUND))
        world = World(
            slack,
            telegram,
            discord,
            gateway,
            oauth,
            sync,
            Chat(settings, producer, tap),
            settings,
            telegram_base,
            sync_app=sync_app,
            github=github,
            jira=jira,
        )
        world.slack_integration = await _slack_integration(world)
        world.telegram_integration = await _telegram_integration(world)
        world.discord_integration = await _discord_integration(world)
        yield world


async def connect(world: World, provider: str, **settings: str) -> str:
    """A new integration of the chat's workspace, through oauth's API: its id."""
    answer = await world.oauth.client.post(
        "/api/integrations",
        json={"provider": provider, "workspace_id": world.chat.workspace_id, "settings": settings},
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    integration_id: str = answer.json()["id"]
    return integration_id


async def _slack_integration(world: World) -> str:
    slack = world.slack
    token = slack.add_bot_token()
    integration_id = await connect(
        world, "slack", bot_token=token, signing_secret=slack.signing_secret
    )
    slack.events_url = f"{world.gateway.base_url}/api/webhooks/slack/{integration_id}"
    return integration_id


async def _telegram_integration(world: World) -> str:
    return await connect(world, "telegram", bot_token=TELEGRAM_TOKEN)


async def _discord_integration(world: World) -> str:
    return await connect(world, "discord", bot_token=DISCORD_TOKEN)


def http_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=tls(), base_url=base_url, timeout=15.0)


@pytest.fixture(scope="module")
async def bare(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with build_world(infra, tmp_path_factory.mktemp("sync-processes"), with_sync=False) as w:
        yield w


async def start_sync(world: World, log: Path, **env: str) -> ServiceProcess:
    """A `hookhub serve sync` process of this world, ready; `world.sync` is its API."""
    process = ServiceProcess.start("sync", world.sync_settings, log, **sync_env(world, **env))
    try:
        await process.ready()
    except BaseException:
        process.process.kill()  # not left behind in the consumer groups of the next test
        process.process.wait(10)
        raise
    world.sync = httpx.AsyncClient(
        verify=tls(), base_url=process.base_url, headers=admin_headers(), timeout=15
    )
    return process
