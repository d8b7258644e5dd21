"""Importer composition root: the imports API, and the runner that takes jobs under a lease
(SPEC §9)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.importer import endpoints, jobs, uploads
from services.importer.metrics import ImportMetrics, jobs_gauge
from services.importer.runner import Runner
from services.importer.service import ImportService
from shared.domain import mappings, message_map
from shared.domain.integrations import model as integration_model
from shared.domain.integrations import repository as integration_repository
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.retention import retain
from shared.domain.usage import UsageCounters
from shared.kernel.cache import RefreshingCache
from shared.kernel.ids import new_id
from shared.kernel.metrics import count_by
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.kernel.settings import ImporterSettings
from shared.providers.apps import AppDirectory, ProviderAppRepository, token_keeper
from shared.providers.chats import chat_providers, network_credential, provider_client
from shared.providers.connections import Connections

# Import traffic is slow and paced: a few connections are plenty.
_MAX_CONNECTIONS = 20
_COUNT_SECONDS = 10.0


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, ImporterSettings)
    client = provider_client(_MAX_CONNECTIONS, settings.provider_timeout_seconds)
    apps = AppDirectory(ProviderAppRepository(runtime.db), runtime.secrets, settings)
    providers = chat_providers(settings, client, apps.values)
    integrations_repo = integration_repository.IntegrationRepository(runtime.db)
    integrations: RefreshingCache[str, IntegrationSnapshot] = RefreshingCache.by_id(
        integrations_repo,
        lambda doc: integration_model.snapshot(doc, runtime.secrets),
        refresh_seconds=5.0,
        name="integrations",
    )
    tokens = token_keeper(runtime.db, runtime.secrets, settings, runtime.publisher)
    connections = Connections(
        providers,
        tokens,
        integrations,
        integrations_repo,
        runtime.publisher,
        credential=network_credential,
    )
    job_repository = jobs.JobRepository(
        runtime.db, timedelta(seconds=settings.import_lease_seconds)
    )

    service = ImportService(
        settings=settings,
        db=runtime.db,
        jobs=job_repository,
        connections=connections,
        mappings=mappings.MappingRepository(runtime.db),
    )
    metrics = ImportMetrics(runtime.registry)
    usage = UsageCounters(runtime.db)
    counted = jobs_gauge()
    runtime.registry.register(counted)
    runner = Runner(
        jobs=job_repository,
        open_job=service.open_job,
        completed=service.completed,
        message_map=message_map.MessageMap(runtime.db),
        publisher=runtime.publisher,
        metrics=metrics,
        owner=new_id("importer"),
        batch_size=settings.import_batch_size,
        progress_seconds=min(settings.import_progress_seconds, settings.import_lease_seconds / 3),
        poll_seconds=settings.import_poll_seconds,
        usage=usage,
    )
    app.state.import_service = service
    app.state.usage = usage
    app.state.import_jobs = job_repository

    async def start(_: Runtime) -> None:
        runtime.background("integration-cache", integrations.run)
        runtime.background(
            "import-jobs-count",
            lambda: counted.keep_counted(
                lambda: count_by(job_repository.collection, ["status"]), _COUNT_SECONDS
            ),
        )

        runtime.background("import-runner", lambda: runner.run(lambda: runtime.kafka_started))

    retain(
        runtime,
        uploads.EndedJobUploads(runtime.db, settings.import_upload_retention, service.scratch),
    )
    runtime.on_startup(start)
    runtime.on_shutdown("provider_client", lambda _: client.aclose())
    usage.register(runtime)
    runtime.ready_check("integration_cache", integrations.ready)


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="importer",
        description="Brings message history in from provider APIs and Slack export files.",
        routers=[endpoints.router],
        indexes=[*jobs.INDEXES, *uploads.INDEXES],
        setup=setup,
        settings_class=ImporterSettings,
    )
