"""Gateway composition root: ingress routes, token cache, batched status counters."""

from __future__ import annotations

from fastapi import FastAPI

from services.gateway.incoming_webhooks import endpoints as incoming
from services.gateway.incoming_webhooks import repository as incoming_repository
from services.gateway.incoming_webhooks.cache import TokenCache
from shared.mongo import BatchedCounters
from shared.runtime import Runtime, ServiceDefinition
from shared.settings import GatewaySettings


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    repository = incoming_repository.IncomingWebhookRepository(runtime.db)
    cache = TokenCache(repository, refresh_seconds=settings.cache_refresh_seconds)
    counters = BatchedCounters(runtime.db)
    app.state.incoming_repository = repository
    app.state.incoming_cache = cache
    app.state.counters = counters

    async def start(_: Runtime) -> None:
        counters.start()
        runtime.background("incoming-token-cache", cache.run)

    async def stop(_: Runtime) -> None:
        await counters.stop()

    async def cache_loaded() -> tuple[bool, str]:
        return cache.loaded, "ok" if cache.loaded else "token cache not loaded yet"

    runtime.on_startup(start)
    runtime.on_shutdown(stop)
    runtime.ready_check("token_cache", cache_loaded)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="gateway",
        description="Verifies inbound webhooks and puts them on Kafka.",
        routers=[incoming.management, incoming.ingress],
        indexes=incoming_repository.INDEXES,
        setup=setup,
        settings_class=GatewaySettings,
    )
