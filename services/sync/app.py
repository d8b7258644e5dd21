"""Sync composition root: mappings, the message map, the outbox and its lanes, inbound,
notifications and their subscriptions, actions."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta

from fastapi import FastAPI

from services.sync import gateway as network_gateways
from services.sync.actions import endpoints as action_routes
from services.sync.actions import idempotency as action_requests
from services.sync.actions.metrics import ActionMetrics
from services.sync.actions.service import Actions
from services.sync.catchup import CatchUp
from services.sync.clicks import reads as offer_reads_module
from services.sync.clicks import repository as click_repository
from services.sync.clicks.intake import Asked, ChatIntake
from services.sync.clicks.networks import NetworkClicks
from services.sync.clicks.offers import CardOffers
from services.sync.clicks.reads import OfferReader, OfferReads
from services.sync.clicks.worker import ACTING_CONNECTIONS, ClickWorker, egress_checked
from services.sync.commands import repository as command_repository
from services.sync.commands.networks import NetworkCommands
from services.sync.commands.worker import CommandWorker
from services.sync.inbound.service import Inbound
from services.sync.mappings import endpoints as mapping_routes
from services.sync.mappings.service import (
    LastSynced,
    MappingDirectory,
    MappingService,
    MappingSnapshot,
)
from services.sync.mappings.service import snapshot as mapping_snapshot
from services.sync.messages import endpoints as message_routes
from services.sync.metrics import NotificationMetrics, QueueCollector, SyncMetrics
from services.sync.notifications import directory as subscription_directory
from services.sync.notifications.service import Notifications
from services.sync.notifications.templates import PostTemplates
from services.sync.outbound import repository as outbox_repository
from services.sync.outbound.intake import Intake
from services.sync.outbound.jobs import Job
from services.sync.outbound.lanes import Lanes, Scheduler
from services.sync.outbound.sender import Sender
from services.sync.outbound.unwritten import Unwritten
from services.sync.subscriptions import endpoints as subscription_routes
from services.sync.subscriptions import repository as subscription_repository
from services.sync.subscriptions.service import SubscriptionService
from services.sync.templates import endpoints as template_routes
from shared.domain import mappings as mapping_repository
from shared.domain import message_map
from shared.domain.account_links import AccountLinks
from shared.domain.integrations import model as integration_model
from shared.domain.integrations import repository as integration_repository
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.retention import ExpiredDocuments, retain
from shared.domain.templates import TemplateMetrics, Templates
from shared.domain.usage import UsageCounters
from shared.kernel import consumers
from shared.kernel.cache import RefreshingCache
from shared.kernel.envelopes import PROVIDER_HEADER, ChatEvent, ProviderEvent, Topic
from shared.kernel.jsbox import Sandbox
from shared.kernel.mongo import BatchedWriter
from shared.kernel.ownership import Ownership
from shared.kernel.runtime import Runtime, ServiceDefinition
from shared.kernel.settings import SyncSettings
from shared.providers.apps import (
    AppDirectory,
    ProviderAppRepository,
    link_token_keeper,
    token_keeper,
)
from shared.providers.catalog import NETWORKS
from shared.providers.chat import Recalls
from shared.providers.chats import chat_providers, network_credential, provider_client
from shared.providers.connections import Connections
from shared.providers.github import issues as github_issues
from shared.providers.jira import issues as jira_issues
from shared.providers.networks import PLAIN_NETWORK, Network
from shared.providers.notifiers import NOTIFIERS


def setup(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, SyncSettings)
    client = provider_client(settings.sync_max_connections, settings.provider_timeout_seconds)
    app.state.provider_client = client  # one client for every provider call (its spans)
    apps = AppDirectory(ProviderAppRepository(runtime.db), runtime.secrets, settings)
    providers = chat_providers(settings, client, apps.values)
    metrics = SyncMetrics(runtime.registry)
    integrations_repo = integration_repository.IntegrationRepository(runtime.db)
    integrations: RefreshingCache[str, IntegrationSnapshot] = RefreshingCache.by_id(
        integrations_repo,
        lambda doc: integration_model.snapshot(doc, runtime.secrets),
        refresh_seconds=settings.cache_refresh_seconds,
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
    app.state.connections = connections
    app.state.integration_repository = integrations_repo
    mappings_repo = mapping_repository.MappingRepository(runtime.db)
    mapping_cache: RefreshingCache[str, MappingSnapshot] = RefreshingCache.by_id(
        mappings_repo,
        mapping_snapshot,
        refresh_seconds=settings.cache_refresh_seconds,
        name="mappings",
    )
    mappings = MappingDirectory(mapping_cache)
    # Where a network's events said to call a channel back (Teams' serviceUrl), as the
    # mappings keep it: for the next process and the other replicas (docs/sync.md).
    for name, provider in providers.items():
        if isinstance(provider, Recalls):
            provider.recall = functools.partial(mappings.service_url, name)
    the_map = message_map.MessageMap(runtime.db)
    outbox = outbox_repository.OutboxRepository(runtime.db)
    ownership = Ownership(
        outbox.workers, outbox.jobs, timedelta(seconds=settings.sync_lease_seconds)
    )
    # Outcomes and the copies they made, one bulk write for every lane every 50 ms; a lane
    # waits for its outcome's write before its next job (see Sender.recorded).
    writer = BatchedWriter(runtime.db, interval=0.05)
    # Jobs run before they are written: only those that cannot finish at once go to the
    # outbox (services.sync.outbound.unwritten).
    unwritten = Unwritten(writer, metrics)
    # Mappings that synced a message in either direction, and when (`last_synced_at`).
    synced = LastSynced(mappings_repo, mappings)
    # Messages relayed either way, per workspace (shared.domain.usage).
    usage = UsageCounters(runtime.db)
    app.state.usage = usage

    def network_of(provider: str) -> Network:
        """A provider's network; the defaults for one without (none reaches the lanes)."""
        return NETWORKS.get(provider, PLAIN_NETWORK)

    sender = Sender(
        connections=connections,
        message_map=the_map,
        mappings=mappings,
        mapping_repository=mappings_repo,
        writer=writer,
        unwritten=unwritten,
        metrics=metrics,
        synced=synced,
        usage=usage,
        finds_own_posts=lambda provider: network_of(provider).finds_own_posts,
    )

    def pace(job: Job) -> float:
        return settings.sync_pace_factor * providers[job.provider].pace_seconds(
            job.external_channel_id
        )

    lanes = Lanes(
        sender,
        pace,
        max_backoff_seconds=settings.sync_max_backoff_seconds,
        unwritten=unwritten,
        unwaited=lambda provider: not network_of(provider).lanes_wait,
    )
    runtime.registry.register(QueueCollector(lanes.depth))
    # Clicks on cards and slash commands (SPEC §20): taken from the chat's events by the
    # outbound consumer, each run by a worker beside it (services.sync.clicks, .commands).
    clicks = click_repository.Clicks(runtime.db)
    # Issues made from messages and cards' actions, counted alike (`hookhub_actions_total`).
    action_metrics = ActionMetrics(runtime.registry)
    links = AccountLinks(runtime.db)
    app.state.clicks = clicks
    # The providers' APIs acted on: addresses that may come from outside, each request held
    # to the egress rules; a client of its own, so the networks' calls are not checked twice.
    acting_client = egress_checked(
        provider_client(ACTING_CONNECTIONS, settings.provider_timeout_seconds), settings
    )
    user_tokens = link_token_keeper(runtime.db, runtime.secrets, settings, runtime.publisher)
    click_worker = ClickWorker(
        clicks=clicks,
        message_map=the_map,
        links=links,
        connections=connections,
        client=acting_client,
        publisher=runtime.publisher,
        audit=app.state.audit,
        settings=settings,
        owner=ownership.id,
        metrics=action_metrics,
        user_tokens=user_tokens,
        box=runtime.secrets,
    )
    # Cards' offers their webhooks do not carry (Jira's transitions), read beside the
    # notifications consumer and shown by editing the root (services.sync.clicks.reads).
    offer_reads = OfferReads(runtime.db)
    offer_reader = OfferReader(
        reads=offer_reads,
        db=runtime.db,
        message_map=the_map,
        connections=connections,
        tokens=tokens,
        user_tokens=user_tokens,
        client=acting_client,
        publisher=runtime.publisher,
        settings=settings,
        owner=ownership.id,
    )
    scheduler = Scheduler(outbox, lanes, ownership, poll_seconds=settings.sync_poll_seconds)
    inbound = Inbound(
        connections=connections,
        mappings=mappings,
        message_map=the_map,
        publisher=runtime.publisher,
        db=runtime.db,
        metrics=metrics,
        synced=synced,
        usage=usage,
    )
    app.state.inbound = inbound
    # Clicks on cards' buttons in the networks (SPEC §20): on the chat's click queue.
    network_clicks = NetworkClicks(
        connections=connections,
        message_map=the_map,
        clicks=clicks,
        wake=click_worker.wake,
        metrics=metrics,
        box=runtime.secrets,
    )

    async def provider_events(events: list[ProviderEvent]) -> asyncio.Future[None]:
        """A batch's clicks and commands written (before its offsets commit), then its
        messages."""
        await network_clicks.accept(events)
        await network_commands.accept(events)
        return await inbound.handed_over(events)

    catch_up = CatchUp(
        connections=connections,
        repository=mappings_repo,
        inbound=inbound,
        synced=synced,
        metrics=metrics,
        max_messages=settings.sync_catch_up_max_messages,
    )
    gateway_store = network_gateways.GatewayStore(
        runtime.db, timedelta(seconds=settings.sync_lease_seconds)
    )
    # The networks whose events come over a connection of their own (Discord's Gateway).
    gateways = {
        name: network_gateways.Gateways(
            network=name,
            gateway=gateway,
            store=gateway_store,
            connections=connections,
            mappings=mappings,
            publish=inbound.publish,
            catch_up=catch_up.integration,
            metrics=metrics,
            owner=ownership.id,
            poll_seconds=settings.sync_poll_seconds,
        )
        for name, network in NETWORKS.items()
        if (gateway := network.gateway(providers[name])) is not None
    }

    app.state.mapping_service = MappingService(mappings_repo, connections, mapping_cache)
    app.state.mapping_repository = mappings_repo
    app.state.message_map = the_map
    subscriptions_repo = subscription_repository.SubscriptionRepository(runtime.db)
    subscription_cache: RefreshingCache[str, subscription_directory.SubscriptionSnapshot] = (
        RefreshingCache.by_id(
            subscriptions_repo,
            subscription_directory.snapshot,
            refresh_seconds=settings.cache_refresh_seconds,
            name="subscriptions",
        )
    )
    subscriptions = subscription_directory.SubscriptionDirectory(subscription_cache)
    # Subscriptions' templates (SPEC §16): user JavaScript, in a sandbox for the consumer,
    # and one of its own for the API's checks and test runs, which so never take the
    # consumer's turns.
    template_metrics = TemplateMetrics(runtime.registry)
    sandbox = Sandbox()
    templates = Templates(sandbox, template_metrics)
    tried = Sandbox(concurrency=1)
    app.state.templates = Templates(tried, template_metrics)
    app.state.subscription_service = SubscriptionService(
        subscriptions_repo, connections, subscriptions.apply, app.state.templates
    )
    commands = command_repository.Commands(runtime.db)
    app.state.commands = commands
    command_worker = CommandWorker(
        commands=commands,
        subscriptions=app.state.subscription_service,
        repository=subscriptions_repo,
        connections=connections,
        links=links,
        publisher=runtime.publisher,
        audit=app.state.audit,
        owner=ownership.id,
        public_url=settings.public_url,
        box=runtime.secrets,
    )
    # hookhub's command typed in the networks (SPEC §20): on the same command queue.
    network_commands = NetworkCommands(
        connections=connections,
        mappings=mappings,
        commands=commands,
        wake=command_worker.wake,
        metrics=metrics,
        box=runtime.secrets,
    )
    intake = Intake(
        mappings=mappings,
        message_map=the_map,
        repository=outbox,
        ownership=ownership,
        lanes=lanes,
        unwritten=unwritten,
        metrics=metrics,
        topic=settings.topic(Topic.CHAT_EVENTS),
        asked=ChatIntake(
            [
                Asked(
                    click_repository.ACTION,
                    click_repository.click_doc,
                    clicks,
                    click_worker.wake,
                    hand=click_worker.hand,
                    spill=click_worker.spill,
                ),
                Asked(
                    command_repository.COMMAND,
                    command_repository.command_doc,
                    commands,
                    command_worker.wake,
                ),
            ],
            metrics,
            spill_seconds=settings.sync_spill_seconds,
        ),
        posts_once=lambda provider: network_of(provider).posts_once,
        finds_own_posts=lambda provider: network_of(provider).finds_own_posts,
        spill_seconds=settings.sync_spill_seconds,
    )
    # Subscriptions' counts, written every few seconds, spread over half of them: an update
    # of every subscription notified meanwhile, a burst that slowed notifications (#47).
    counts = BatchedWriter(
        runtime.db, interval=settings.sync_notification_counts_seconds, spread=True
    )
    notifications = Notifications(
        subscriptions=subscriptions,
        message_map=the_map,
        publisher=runtime.publisher,
        db=runtime.db,
        counts=counts,
        metrics=NotificationMetrics(runtime.registry),
        templates=PostTemplates(templates, db=runtime.db, counts=counts),
        reopen_seconds=settings.sync_reopen_seconds,
        offers=CardOffers(connections),
        reads=offer_reads,
        read_now=offer_reader.wake,
    )
    app.state.subscription_repository = subscriptions_repo
    app.state.actions = Actions(
        integrations=integrations_repo,
        connections=connections,
        github=github_issues.GitHubIssues.for_settings(client, settings),
        jira=jira_issues.JiraIssues.for_settings(client, settings),
        store=action_requests.IdempotencyStore(runtime.db),
        publisher=runtime.publisher,
        metrics=action_metrics,
    )

    # Both consumers are idempotent by themselves (job and envelope ids derive from what
    # they are about), so they take whole batches and skip the envelope ledger. Both are
    # pipelined. Outbound: a batch's jobs are handed to the lanes before the next batch is
    # handled, its offsets committed once they finished or were written to the outbox.
    # Inbound: a batch's envelopes are published before the next batch is handled, its
    # map copies written while later batches go on (its offsets committed once they are).
    def stopping_outbound() -> None:
        """The outbound consumer drains at the stop: its held jobs written for the release,
        and the asks' workers (which it feeds) stopped after their rounds."""
        intake.stopping()
        click_worker.stop()
        command_worker.stop()
        offer_reader.stop()

    runtime.consume_pipelined(
        Topic.CHAT_EVENTS,
        "outbound",
        ChatEvent,
        intake.events,
        # Read ahead: enough for every lane to have work, few enough that a channel's last
        # job runs within the 5 s its batch waits (docs/benchmarks.md, footnote 21).
        max_pending=2_000,
        on_drain=stopping_outbound,
        on_assigned=intake.assigned,
        on_revoked=intake.revoked,
    )
    runtime.consume_pipelined(
        Topic.PROVIDER_EVENTS,
        "inbound",
        ProviderEvent,
        provider_events,
        wanted=consumers.header_in(PROVIDER_HEADER, providers),
    )
    # GitHub's and Jira's events as notifications: a group of its own on the same topic, so
    # that neither holds the other up. Idempotent by derived ids, as the others. Pipelined:
    # a batch is decided while the one before it waits for Kafka's acknowledgement.
    runtime.consume_pipelined(
        Topic.PROVIDER_EVENTS,
        "notifications",
        ProviderEvent,
        notifications.publish,
        wanted=consumers.header_in(PROVIDER_HEADER, NOTIFIERS),
        on_assigned=notifications.assigned,
        on_revoked=notifications.revoked,
    )

    async def start(_: Runtime) -> None:
        writer.start()
        counts.start()
        await asyncio.gather(
            integrations.refresh(), mapping_cache.refresh(), subscription_cache.refresh()
        )
        runtime.background("integration-cache", integrations.run)
        runtime.background("mapping-cache", mapping_cache.run)
        runtime.background("subscription-cache", subscription_cache.run)
        runtime.background("sync-scheduler", scheduler.run)
        runtime.background("sync-heartbeat", ownership.keep_alive)
        runtime.background("sync-clicks", click_worker.run)
        runtime.background("sync-commands", command_worker.run)
        runtime.background("sync-offer-reads", offer_reader.run)
        runtime.background("sync-last-synced", synced.run)
        for name, connections_of in gateways.items():
            runtime.background(f"{name}-gateways", connections_of.run)
        runtime.background("sync-catch-up", lambda: catch_up.at_start(ownership))

    async def stop_lanes(seconds: float) -> None:
        cut = await lanes.stop(seconds)
        if cut:
            await outbox.mark_recovered([job.id for job in cut])

    retain(
        runtime,
        ExpiredDocuments(
            runtime.db[outbox_repository.OUTBOX], "finished_at", outbox_repository.KEEP_FINISHED
        ),
    )
    runtime.on_startup(start)
    # The Gateway sessions first: handed on resumable, another replica resumes them at once.
    runtime.on_shutdown(
        "gateways", lambda _: asyncio.gather(*(g.stop() for g in gateways.values())), cap=0.2
    )
    runtime.on_shutdown("sync_lanes", stop_lanes, cap=0.4)
    # Outcomes before the release: what finished is not handed over to be sent again.
    outcomes_left: list[int] = []  # what the step left unwritten, once it has run

    async def write_outcomes(seconds: float) -> None:
        outcomes_left.append(await writer.stop(seconds))

    async def release(seconds: float) -> None:
        # A job whose outcome was left unwritten (or that the step, abandoned, never said)
        # may have been posted: with its owner cleared it would be taken as due and posted
        # again blind. Held by a stopped worker, its taker marks it `recovered` and looks
        # for the post first.
        await ownership.release(seconds, clear=outcomes_left == [0])

    runtime.on_shutdown("sync_outcomes", write_outcomes)
    runtime.on_shutdown("subscription_counts", counts.stop, cap=0.1)
    runtime.on_shutdown("sync_last_synced", lambda _: synced.write(everything=True), cap=0.1)
    runtime.on_shutdown("sync_release", release)
    usage.register(runtime)
    runtime.on_shutdown("provider_client", lambda _: client.aclose(), minimum=0.02)
    runtime.on_shutdown("acting_client", lambda _: acting_client.aclose(), minimum=0.02)
    runtime.on_shutdown("template_sandboxes", lambda _: _close(sandbox, tried), minimum=0.02)
    runtime.ready_check("integration_cache", integrations.ready)
    runtime.ready_check("mapping_cache", mapping_cache.ready)
    runtime.ready_check("subscription_cache", subscription_cache.ready)


async def _close(*sandboxes: Sandbox) -> None:
    await asyncio.gather(*(sandbox.close() for sandbox in sandboxes))


def definition() -> ServiceDefinition:
    return ServiceDefinition(
        name="sync",
        description=(
            "Keeps channels in sync with Slack, Discord and Telegram both ways, and posts "
            "GitHub and Jira events into channels."
        ),
        routers=[
            mapping_routes.router,
            subscription_routes.router,
            subscription_routes.events_router,
            message_routes.router,
            action_routes.router,
            template_routes.router,
        ],
        indexes=[
            *mapping_repository.INDEXES,
            *subscription_repository.INDEXES,
            *message_map.INDEXES,
            *outbox_repository.INDEXES,
            *integration_repository.INDEXES,
            *action_requests.INDEXES,
            *click_repository.INDEXES,
            *offer_reads_module.INDEXES,
            *command_repository.INDEXES,
        ],
        setup=setup,
        settings_class=SyncSettings,
    )
