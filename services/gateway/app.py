"""Gateway composition root: incoming webhooks, provider webhooks, caches, batched writes."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from services.gateway.incoming_webhooks import endpoints as incoming
from services.gateway.incoming_webhooks import repository as incoming_repository
from services.gateway.incoming_webhooks.cache import TokenCache
from services.gateway.provider_webhooks import endpoints as provider
from services.gateway.provider_webhooks import repository as seen_repository
from services.gateway.provider_webhooks.service import AppSecrets, Deduplicator
from services.gateway.provider_webhooks.window import SeenWindow
from shared.domain import claim_check
from shared.domain.integrations import model as integration_model
from shared.domain.integrations import repository as integration_repository
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.retention import ExpiredDocuments, retain
from shared.domain.templates import TemplateMetrics, Templates
from shared.domain.usage import UsageCounters
from shared.kernel.cache import RecentIds, RefreshingCache
from shared.kernel.envelopes import Topic
from shared.kernel.http.tls import limits, tls
from shared.kernel.jsbox import Sandbox
from shared.kernel.mongo import BatchedWriter
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.kernel.settings import GatewaySettings
from shared.providers import apps
from shared.providers.catalog import NETWORKS


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, GatewaySettings)
    writer = BatchedWriter(runtime.db)
    app.state.counters = writer
    usage = UsageCounters(runtime.db)
    app.state.usage = usage

    hooks = incoming_repository.IncomingWebhookRepository(runtime.db)
    tokens = TokenCache(hooks, refresh_seconds=settings.cache_refresh_seconds)
    app.state.incoming_repository = hooks
    app.state.incoming_cache = tokens
    # Incoming webhooks' templates (SPEC §16): user JavaScript, in this process's sandbox.
    sandbox = Sandbox()
    app.state.templates = Templates(sandbox, TemplateMetrics(runtime.registry))

    integrations_repo = integration_repository.IntegrationRepository(runtime.db)
    integrations: RefreshingCache[str, IntegrationSnapshot] = RefreshingCache.by_id(
        integrations_repo,
        lambda doc: integration_model.snapshot(doc, runtime.secrets),
        refresh_seconds=settings.cache_refresh_seconds,
        name="integrations",
    )
    seen = seen_repository.SeenDeliveries(runtime.db, writer)
    window = (
        SeenWindow(
            seen,
            max_ids=settings.dedupe_memory_max_ids,
            poll_seconds=settings.dedupe_memory_poll_seconds,
            registry=runtime.registry,
        )
        if settings.dedupe_memory_max_ids
        else None
    )
    apps_repo = apps.ProviderAppRepository(runtime.db)
    provider_apps: RefreshingCache[str, dict[str, str]] = RefreshingCache.by_id(
        apps_repo,
        lambda doc: apps.open_values(doc, runtime.secrets),
        refresh_seconds=settings.cache_refresh_seconds,
        name="provider apps",
    )
    app.state.integration_cache = integrations
    app.state.provider_app_cache = provider_apps
    app.state.dedupe_window = window
    app.state.provider_ingress = provider.ProviderIngress(
        runtime,
        integrations,
        Deduplicator(RecentIds(), seen, timedelta(seconds=settings.dedupe_window_seconds), window),
        writer,
        usage,
        AppSecrets(
            {p: apps.from_environment(settings, p) for p in NETWORKS},
            provider_apps.get,
        ),
        runtime.registry,
        integrations_repo,
    )

    # What providers that sign with published keys fetch them with (`KeyedWebhooks`).
    client = httpx.AsyncClient(
        verify=tls(),
        timeout=settings.provider_timeout_seconds,
        follow_redirects=False,
        limits=limits(),
    )
    for keyed in app.state.provider_ingress.keyed.values():
        keyed.start(settings, client)

    async def start(_: Runtime) -> None:
        writer.start()
        runtime.background("incoming-token-cache", tokens.run)
        runtime.background("integration-cache", integrations.run)
        runtime.background("provider-app-cache", provider_apps.run)
        if window is not None:
            runtime.background("dedupe-window", window.run)

    retain(
        runtime,
        # Buckets of seen ids once their newest has left the dedupe window.
        ExpiredDocuments(runtime.db[seen_repository.COLLECTION], "expires_at"),
        claim_check.ReadBodies(runtime.db, settings, settings.topic(Topic.PROVIDER_EVENTS)),
    )
    runtime.on_startup(start)
    runtime.on_shutdown("dedupe_writes", writer.stop)
    runtime.on_shutdown("provider_keys_client", lambda _: client.aclose(), minimum=0.05)
    runtime.on_shutdown("template_sandbox", lambda _: sandbox.close(), minimum=0.02)
    usage.register(runtime)
    runtime.ready_check("token_cache", tokens.ready)
    runtime.ready_check("integration_cache", integrations.ready)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="gateway",
        description="Verifies inbound webhooks and puts them on Kafka.",
        routers=[incoming.management],
        # In this order: `/api/webhooks/incoming/{token}` (and its format routes) must win over
        # `/api/webhooks/{provider}/{integration_id}`.
        ingress=[*incoming.INGRESS, *provider.INGRESS],
        indexes=[
            *incoming_repository.INDEXES,
            *seen_repository.INDEXES,
            *claim_check.INDEXES,
            *integration_repository.INDEXES,
            *apps.INDEXES,
        ],
        setup=setup,
        settings_class=GatewaySettings,
    )
