"""OAuth composition root: the integrations resource (connect/callback, refresh come next)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.oauth.integrations import endpoints as integrations
from services.oauth.integrations.service import IntegrationService
from services.oauth.providers import endpoints as providers
from shared.integrations import repository as integration_repository
from shared.providers import apps
from shared.providers.apps import ProviderAppRepository
from shared.providers.telegram.api import TelegramApi
from shared.runtime import Runtime, ServiceDefinition


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    client = httpx.AsyncClient(timeout=settings.provider_timeout_seconds, follow_redirects=False)
    repository = integration_repository.IntegrationRepository(runtime.db)
    app.state.integration_repository = repository
    app.state.provider_apps = ProviderAppRepository(runtime.db)
    app.state.integrations = IntegrationService(
        repository,
        runtime.secrets,
        TelegramApi(client, settings.telegram_api_base),
        settings.public_url,
    )

    async def stop(_: Runtime) -> None:
        await client.aclose()

    runtime.on_shutdown(stop)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="oauth",
        description="Connects workspaces to providers and keeps their tokens encrypted and fresh.",
        routers=[integrations.router, providers.router],
        indexes=[*integration_repository.INDEXES, *apps.INDEXES],
        setup=setup,
    )
