"""The sync service's Prometheus metrics (names in docs/operations.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "hookhub_sync_messages",
            "Messages synced, by provider, direction (inbound|outbound) and outcome "
            "(done, failed, skipped, invalid; inbound also echo, ignored, unmapped, unknown)",
            ["provider", "direction", "outcome"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "hookhub_sync_provider_rate_limited",
            "429 answers from providers (each is waited out in its channel only)",
            ["provider"],
            registry=registry,
        )
        self.written = Counter(
            "hookhub_sync_jobs_written",
            "Outbound jobs written to the outbox because they could not finish at once, by "
            "provider and reason (paced: its channel's pace holds it over a second; retry: "
            "a 429 or a passing failure; slow: still running after 5 s; handover: a "
            "rebalance or a stop). A job that goes through at once is never written",
            ["provider", "reason"],
            registry=registry,
        )
        self.clicks = Counter(
            "hookhub_sync_network_clicks",
            "Clicks on cards' buttons in the networks (SPEC §20), by provider and outcome "
            "(queued; unknown: no card of ours is that message in that integration; "
            "invalid: the click names no usable user)",
            ["provider", "outcome"],
            registry=registry,
        )
        self.unknown = Counter(
            "hookhub_sync_unknown_messages",
            "Edits and deletes of messages the message map does not know (skipped, never "
            "posted as new), and chat posts naming an inbound_id it does not know (op post), "
            "by provider and operation",
            ["provider", "op"],
            registry=registry,
        )
        self.gateway_connections = Gauge(
            "hookhub_sync_discord_gateway_connections",
            "Discord Gateway sessions this replica holds and has ready (one per bot token "
            "across replicas)",
            registry=registry,
        )
        self.gateway_reconnects = Counter(
            "hookhub_sync_discord_gateway_reconnects",
            "Discord Gateway connections that ended, by reason (reconnect_requested, "
            "invalid_session, heartbeat_ack_missed, connect_failed, closed_<code>, ...)",
            ["reason"],
            registry=registry,
        )
        self.gateway_sessions = Counter(
            "hookhub_sync_discord_gateway_sessions",
            "Discord Gateway sessions started, by how (identified: new; resumed)",
            ["how"],
            registry=registry,
        )
        self.gateway_events = Counter(
            "hookhub_sync_discord_gateway_events",
            "Discord Gateway dispatches received, by type",
            ["type"],
            registry=registry,
        )
        self.gateway_heartbeat = Histogram(
            "hookhub_sync_discord_gateway_heartbeat_seconds",
            "Discord Gateway heartbeat → ACK latency",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.caught_up = Counter(
            "hookhub_sync_catch_up_messages",
            "Provider messages read from history after sync was down or a Discord session "
            "could not be resumed, by provider and outcome (recovered: brought to the chat; "
            "known: already there)",
            ["provider", "outcome"],
            registry=registry,
        )
        self.catch_up_failures = Counter(
            "hookhub_sync_catch_up_failures",
            "Tries of a mapping's catch-up that failed (the provider out of reach, Kafka or "
            "MongoDB away) and are tried again from the same point, by provider",
            ["provider"],
            registry=registry,
        )
        self.map_lookups = Counter(
            "hookhub_sync_map_lookups",
            "Message map lookups, by where they were answered (memory, mongodb)",
            ["source"],
            registry=registry,
        )


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "hookhub_notifications",
            "Provider events per subscription, by provider, event (SPEC §12 name) and outcome "
            "(sent: published; filtered: left out by the subscription; failed: the payload "
            "could not be rendered, counted once per event; duplicate: another delivery of "
            "what was already published, such as a Jira comment's second webhook)",
            ["provider", "event", "outcome"],
            registry=registry,
        )
        self.filtered = Counter(
            "hookhub_notifications_filtered",
            "Notifications left out, by provider and reason (quiet, event, excluded_event, "
            "repository, project, branch, label, author, bot, draft; template: skipped by "
            "the subscription's template)",
            ["provider", "reason"],
            registry=registry,
        )
        self.render = Histogram(
            "hookhub_notification_render_seconds",
            "Time to render one provider event into a notice, by provider",
            ["provider"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
            registry=registry,
        )
        self.batch = Histogram(
            "hookhub_notification_batch_seconds",
            "Time of a batch of provider events in the notifications consumer, by stage: "
            "render (the batch's events rendered), subscriptions (then waiting for the "
            "subscriptions' cache to cover the batch), templates, threads (roots read and "
            "claimed), publish (until Kafka acknowledged); batch: the whole",
            ["stage"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.age = Histogram(
            "hookhub_notification_event_age_seconds",
            "How long after the gateway took a provider event the notifications consumer "
            "began its batch (Kafka, the consumer's fetch, batches before it; clocks of two "
            "hosts)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
            registry=registry,
        )


class QueueCollector(Collector):
    """Queue depth and oldest waiting job per provider, of this replica's lanes."""

    def __init__(self, snapshot: Callable[[], dict[str, tuple[int, float]]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "hookhub_sync_queue_depth",
            "Outbox jobs this replica holds, waiting or in flight, by provider",
            labels=["provider"],
        )
        oldest = GaugeMetricFamily(
            "hookhub_sync_oldest_waiting_seconds",
            "Age of the oldest outbox job this replica holds, by provider",
            labels=["provider"],
        )
        for provider, (count, age) in sorted(self._snapshot().items()):
            depth.add_metric([provider], count)
            oldest.add_metric([provider], age)
        yield depth
        yield oldest
