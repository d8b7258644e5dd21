"""OAuth composition root: integrations, provider apps, connect/callback, token refresh and
revocation (SPEC §3-§4)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.oauth.account_links import endpoints as account_link_routes
from services.oauth.api_keys import endpoints as api_key_routes
from services.oauth.api_keys import portal
from services.oauth.audit import endpoints as audit_routes
from services.oauth.catalog import endpoints as catalog
from services.oauth.connect import endpoints as connect
from services.oauth.connect import repository as state_repository
from services.oauth.connect.service import ConnectService
from services.oauth.integrations import endpoints as integrations
from services.oauth.integrations.service import IntegrationService
from services.oauth.providers import endpoints as providers
from services.oauth.revocations import repository as revocation_repository
from services.oauth.revocations.service import Revoker
from services.oauth.tasks import Maintenance
from services.oauth.usage import endpoints as usage_routes
from shared.domain import account_links, api_keys
from shared.domain.integrations import repository as integration_repository
from shared.domain.oauth.tokens import LinkTokenKeeper, TokenKeeper
from shared.kernel.http.tls import limits, tls
from shared.kernel.metrics import CountedGauge, count_by
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.providers import OAUTH_PROVIDERS, apps
from shared.providers.apps import BOT_TOKEN_PROVIDERS, AppDirectory, ProviderAppRepository
from shared.providers.chats import chat_providers
from shared.providers.discord import api as discord_api
from shared.providers.discord.api import DiscordApi
from shared.providers.slack.api import SlackApi, base_url
from shared.providers.telegram.api import TelegramApi

# How often the integrations are counted for `hookhub_integrations`.
_COUNT_SECONDS = 15.0


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    client = httpx.AsyncClient(
        verify=tls(),
        timeout=settings.provider_timeout_seconds,
        follow_redirects=False,
        limits=limits(),
    )
    repository = integration_repository.IntegrationRepository(runtime.db)
    provider_apps = ProviderAppRepository(runtime.db)
    directory = AppDirectory(provider_apps, runtime.secrets, settings)
    telegram = TelegramApi(client, settings.telegram_api_base)
    revoker = Revoker(
        revocation_repository.RevocationRepository(runtime.db),
        directory,
        runtime.secrets,
        settings,
        client,
        telegram,
    )
    keeper = TokenKeeper(
        repository,
        directory,
        runtime.secrets,
        settings,
        runtime.publisher,
        OAUTH_PROVIDERS,
        BOT_TOKEN_PROVIDERS,
    )
    app.state.integration_repository = repository
    app.state.api_key_repository = api_keys.ApiKeyRepository(runtime.db)
    links = account_links.AccountLinks(runtime.db)
    app.state.account_links = links
    # Chat users' own tokens (oauth account links), refreshed as the integrations' are.
    link_keeper = LinkTokenKeeper(
        account_links.LinkTokens(runtime.db),
        directory,
        runtime.secrets,
        settings,
        runtime.publisher,
        OAUTH_PROVIDERS,
    )
    app.state.link_token_keeper = link_keeper
    app.state.provider_apps = provider_apps
    app.state.token_keeper = keeper
    app.state.integrations = IntegrationService(
        repository,
        runtime.secrets,
        telegram,
        settings.public_url,
        revoker,
        runtime.publisher,
        slack=SlackApi(client, base_url(settings)),
        discord=DiscordApi(client, discord_api.base_url(settings)),
        chats=chat_providers(settings, client, directory.values),
    )
    app.state.connect = ConnectService(
        state_repository.StateRepository(runtime.db),
        repository,
        directory,
        runtime.secrets,
        settings,
        client,
        runtime.publisher,
        links=links,
        revoke=revoker.revoke_if_offered,
    )
    maintenance = Maintenance(
        repository,
        keeper,
        revoker,
        settings.oauth_poll_seconds,
        links=account_links.LinkTokens(runtime.db),
        link_keeper=link_keeper,
    )
    app.state.maintenance = maintenance

    # Alerts watch `status="error"` (deploy/monitoring): an integration whose grant is gone.
    integrations_gauge = CountedGauge(
        "hookhub_integrations",
        "Integrations (not deleted) by provider and status, all replicas",
        ["provider", "status"],
    )
    runtime.registry.register(integrations_gauge)

    async def count_integrations() -> dict[tuple[str, ...], int]:
        return await count_by(repository.collection, ["provider", "status"], {"deleted_at": None})

    async def start(_: Runtime) -> None:
        runtime.background("oauth-maintenance", maintenance.run)
        runtime.background(
            "integrations-count",
            lambda: integrations_gauge.keep_counted(count_integrations, _COUNT_SECONDS),
        )

    runtime.on_startup(start)
    runtime.on_shutdown("provider_client", lambda _: client.aclose(), minimum=0.05)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="oauth",
        description="Connects workspaces to providers and keeps their tokens encrypted and fresh.",
        routers=[
            integrations.router,
            providers.router,
            catalog.router,
            connect.router,
            api_key_routes.router,
            portal.router,
            portal.me_router,
            audit_routes.router,
            usage_routes.router,
            account_link_routes.router,
        ],
        indexes=[
            *integration_repository.INDEXES,
            *api_keys.INDEXES,
            *apps.INDEXES,
            *state_repository.INDEXES,
            *revocation_repository.INDEXES,
            *account_links.INDEXES,
        ],
        setup=setup,
    )
