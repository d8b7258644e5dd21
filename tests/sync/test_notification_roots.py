"""Notification consumers on the real broker and database, driven batch by batch: two that
both find an item without a root at the same moment (two sync replicas during a rebalance, or
a replay beside the live consumer) make one root, the race held open by construction; an
alert group's lifecycle in a channel (SPEC §16) — resolved, reopened within the hour, a new
thread after it, late and repeated events — decided by the events' own times (set by the
tests: nothing waits); a resolution on another replica, and a replica whose partitions were
reassigned; how long an item was open by its provider's own times, its webhooks late;
notices that need a root."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import CollectorRegistry

from services.sync.clicks.offers import CardOffers
from services.sync.metrics import NotificationMetrics
from services.sync.notifications import directory
from services.sync.notifications import service as notifications_service
from services.sync.notifications.service import Notifications
from services.sync.subscriptions import repository as subscriptions
from shared.domain import message_map
from shared.domain.message_map import Copy, MessageMap
from shared.kernel.cache import RefreshingCache
from shared.kernel.envelopes import ProviderEvent, Topic
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import BatchedWriter, ensure_indexes
from shared.kernel.runtime import Runtime
from shared.kernel.settings import ServiceSettings
from shared.providers.acting import Offered
from shared.providers.alertmanager.notify import NOTIFIER as ALERTMANAGER
from shared.providers.github.acting import ACTING as GITHUB
from shared.providers.notify import Notice, Notifier
from tests.infra import Infra
from tests.support import KafkaTap, github_corpus, make_settings, new_namespace, until


@pytest.fixture
async def runtime(infra: Infra, tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    made = Runtime(settings=settings, service="sync")
    await made.start([], [Topic.CHAT_INBOUND])
    await until(lambda: made.kafka_started, what="kafka")
    await ensure_indexes(made.db, [*message_map.INDEXES, *subscriptions.INDEXES])
    yield made
    await made.stop()


class HeldMap(MessageMap):
    """A message map whose claims wait until `parties` claimers have arrived: each has
    decided by then that the root is missing."""

    def __init__(self, db: Any, barrier: asyncio.Barrier) -> None:
        super().__init__(db)
        self._barrier = barrier

    async def claim(self, copies: list[Copy], extra: dict[str, Any] | None = None) -> set[str]:
        await self._barrier.wait()
        return await super().claim(copies, extra)


def _payload(relative: str) -> dict[str, Any]:
    return dict(json.loads((github_corpus()[0].parents[1] / relative).read_text()))


def _event(
    integration_id: str,
    event_type: str,
    payload: dict[str, Any],
    provider: str = "github",
    delivery: str | None = None,
    at: datetime | None = None,
) -> ProviderEvent:
    """`provider`'s event (a new delivery id unless `delivery`), received at `at` (else
    now)."""
    delivery = delivery or new_id("dlv")
    return ProviderEvent(
        id=f"pev_{delivery}",
        provider=provider,
        integration_id=integration_id,
        workspace_id="ws_roots",
        event_type=event_type,
        delivery_id=delivery,
        received_at=at or utcnow(),
        payload=payload,
    )


async def _consumer(
    runtime: Runtime,
    the_map: MessageMap,
    notifiers: dict[str, Notifier] | None = None,
    metrics: NotificationMetrics | None = None,
    publisher: Any = None,
    offers: CardOffers | None = None,
) -> Notifications:
    cache: RefreshingCache[str, directory.SubscriptionSnapshot] = RefreshingCache.by_id(
        subscriptions.SubscriptionRepository(runtime.db),
        directory.snapshot,
        refresh_seconds=60,
        name="subscriptions",
    )
    await cache.refresh()
    return Notifications(
        subscriptions=directory.SubscriptionDirectory(cache),
        message_map=the_map,
        publisher=publisher or runtime.publisher,
        db=runtime.db,
        counts=BatchedWriter(runtime.db),
        metrics=metrics or NotificationMetrics(CollectorRegistry()),
        notifiers=notifiers,
        offers=offers,
    )


async def _subscribe(
    runtime: Runtime,
    provider: str,
    events: tuple[str, ...] | None = ("*",),
    integration_id: str | None = None,
) -> tuple[str, str]:
    """An integration's subscription to `events` (every event: `["*"]`; None: the
    provider's defaults), threaded: (integration, channel). A new integration unless
    `integration_id` names one."""
    integration_id, channel = integration_id or new_id("int"), new_id("ch")
    created = utcnow() - timedelta(minutes=1)
    await subscriptions.SubscriptionRepository(runtime.db).insert(
        {
            "_id": new_id("sub"),
            "workspace_id": "ws_roots",
            "integration_id": integration_id,
            "provider": provider,
            "channel_id": channel,
            "events": None if events is None else list(events),
            "threads": "item",
            "enabled": True,
            "created_at": created,
            "updated_at": created,
            "deleted_at": None,
        }
    )
    return integration_id, channel


async def test_two_consumers_racing_for_an_items_root_make_one(runtime: Runtime) -> None:
    integration_id, channel = await _subscribe(runtime, "github")
    barrier = asyncio.Barrier(2)
    one = await _consumer(runtime, HeldMap(runtime.db, barrier))
    two = await _consumer(runtime, HeldMap(runtime.db, barrier))
    # Two events about Codertocat/Hello-World#2, neither the first the channel sees of it.
    review = _event(
        integration_id,
        "pull_request_review",
        _payload("pull_request_review/submitted.payload.json"),
    )
    labeled = _event(integration_id, "pull_request", _payload("pull_request/labeled.payload.json"))
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await asyncio.gather(one.events([review]), two.events([labeled]))
        found = await tap.wait_for(lambda v: v["channel_id"] == channel, count=3)
    received = [v for v in found if v["type"] == "message.received"]
    edits = [v for v in found if v["type"] == "message.edited"]
    assert len(received) == 2 and len(edits) == 1, [v["type"] for v in found]
    [root] = [v for v in received if "thread_id" not in v]
    [reply] = [v for v in received if "thread_id" in v]
    assert reply["thread_id"] == root["id"] and edits[0]["message_id"] == root["id"]
    roots = await runtime.db[message_map.COLLECTION].find({"origin": "notification"}).to_list()
    assert [(r["channel_id"], r["external_message_id"], r["inbound_id"]) for r in roots] == [
        (channel, "Codertocat/Hello-World#2", root["id"])
    ]


# -- an alert group's lifecycle ------------------------------------------------------------

ALERT_SAMPLES = Path(__file__).parents[2] / "shared" / "providers" / "alertmanager" / "samples"
CIRCLECI_SAMPLES = ALERT_SAMPLES.parents[1] / "circleci" / "samples"


def _alert(
    integration_id: str, sample: str, at: datetime, delivery: str, started: datetime
) -> ProviderEvent:
    """Alertmanager's own sample (both name one group), received at `at`, its alerts
    started at `started`."""
    payload = json.loads((ALERT_SAMPLES / sample).read_text())
    for each in payload["alerts"]:
        each["startsAt"] = started.isoformat()
    return _event(integration_id, payload["status"], payload, "alertmanager", delivery, at)


def _fields(envelope: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in envelope["card"]["fields"]}


async def _channel(tap: KafkaTap, channel: str, count: int) -> list[dict[str, Any]]:
    found = await tap.wait_for(lambda v: v["channel_id"] == channel, count=count)
    assert len(found) >= count, [(v["type"], v["text"][:30]) for v in found]
    return found


async def test_an_alert_group_resolves_reopens_within_the_hour_and_later_starts_anew(
    runtime: Runtime,
) -> None:
    integration_id, channel = await _subscribe(runtime, "alertmanager")
    consumer = await _consumer(runtime, MessageMap(runtime.db))
    t = utcnow()
    minute = timedelta(minutes=1)
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await consumer.events([_alert(integration_id, "firing.json", t, "d1", t - 75 * minute)])
        await consumer.events(
            [_alert(integration_id, "resolved.json", t + 5 * minute, "d2", t - 75 * minute)]
        )
        # The resolution again after a restart (a process that has not published it): the
        # same message, the chat drops it; no second edit. A stopping process writes what
        # it holds, as one whose partitions are revoked does.
        await consumer.revoked()
        restarted = await _consumer(runtime, MessageMap(runtime.db))
        await restarted.events(
            [_alert(integration_id, "resolved.json", t + 5 * minute, "d2", t - 75 * minute)]
        )
        # Firing again 30 min after it resolved: its thread reopened.
        await restarted.events(
            [_alert(integration_id, "firing.json", t + 35 * minute, "d3", t + 34 * minute)]
        )
        # A firing received before the resolution, handled only now (a replay): history in
        # the thread, the root not turned back.
        await restarted.events(
            [_alert(integration_id, "firing.json", t + 2 * minute, "d0", t - 75 * minute)]
        )
        await restarted.events(
            [_alert(integration_id, "resolved.json", t + 45 * minute, "d4", t + 34 * minute)]
        )
        # Two hours after: a new thread, with a root of its own.
        await restarted.events(
            [_alert(integration_id, "firing.json", t + 165 * minute, "d5", t + 164 * minute)]
        )
        found = await _channel(tap, channel, 10)
    root, resolved, edit, again, fired, reopened, late, closed, closed_edit, anew = found[:10]
    assert "thread_id" not in root and root["card"]["state"] == "firing"
    assert _fields(root)["By"] == "Prometheus Alertmanager"
    assert resolved["thread_id"] == root["id"] and "RESOLVED" in resolved["text"]
    assert edit["type"] == "message.edited" and edit["message_id"] == root["id"]
    assert edit["card"]["state"] == "resolved" and _fields(edit)["Open for"] == "1 h 20 min"
    assert "Open for: 1 h 20 min" in edit["text"]
    # The redelivered resolution: its message again (same id), no edit.
    assert again["id"] == resolved["id"] and again["type"] == "message.received"
    assert fired["type"] == "message.received" and fired["thread_id"] == root["id"]
    assert fired["text"].startswith("Reopened 30 min after it resolved.")
    assert reopened["type"] == "message.edited" and reopened["message_id"] == root["id"]
    assert reopened["card"]["state"] == "firing" and "Open for" not in _fields(reopened)
    # The late firing edited nothing: the next edit is the second resolution's.
    assert late["type"] == "message.received" and late["thread_id"] == root["id"]
    assert "FIRING" in late["text"] and not late["text"].startswith("Reopened")
    assert closed["type"] == "message.received" and closed["thread_id"] == root["id"]
    assert closed_edit["type"] == "message.edited" and closed_edit["card"]["state"] == "resolved"
    assert _fields(closed_edit)["Open for"] == "11 min"
    assert anew["type"] == "message.received" and "thread_id" not in anew
    assert anew["card"]["state"] == "firing"
    await restarted.revoked()  # what it changed, written
    roots = await runtime.db[message_map.COLLECTION].find({"channel_id": channel}).to_list()
    assert len(roots) == 2
    first_root = next(r for r in roots if r["inbound_id"] == root["id"])
    assert first_root["lifecycle"]["generation"] == 1
    assert first_root["lifecycle"]["resolved_at"] is None


async def test_a_resolution_on_another_replica_edits_the_same_root_and_a_reassigned_one_rereads(
    runtime: Runtime,
) -> None:
    integration_id, channel = await _subscribe(runtime, "alertmanager")
    one = await _consumer(runtime, MessageMap(runtime.db))
    two = await _consumer(runtime, MessageMap(runtime.db))
    t = utcnow()
    hour = timedelta(hours=1)
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await one.events([_alert(integration_id, "firing.json", t, "r1", t)])
        # The integration's partition moved to the other replica: it resolves the same root.
        await two.events([_alert(integration_id, "resolved.json", t + hour, "r2", t)])
        # And back: the other writes what it changed as its partitions are revoked, the
        # first one's are assigned again, so it knows the thread resolved; firing two hours
        # later starts a new one (it still remembered it open).
        await two.revoked()
        one.assigned()
        await one.events([_alert(integration_id, "firing.json", t + 3 * hour, "r3", t + 3 * hour)])
        root, resolved, edit, anew = await _channel(tap, channel, 4)
    assert resolved["thread_id"] == root["id"] and edit["message_id"] == root["id"]
    assert edit["card"]["state"] == "resolved" and _fields(edit)["Open for"] == "1 h"
    assert anew["type"] == "message.received" and "thread_id" not in anew
    assert anew["id"] != root["id"]


STATUSPAGE_SAMPLE = ALERT_SAMPLES.parents[1] / "statuspage" / "samples" / "component_update.json"


def _component(
    integration_id: str, status: str, at: datetime, delivery: str, changed: datetime
) -> ProviderEvent:
    """Statuspage's component update (Zulip's capture) to `status`, made at `changed` (its
    `created_at`) and received at `at`."""
    payload = json.loads(STATUSPAGE_SAMPLE.read_text())
    update = payload["component_update"]
    update.update(new_status=status, created_at=changed.isoformat())
    update["old_status"] = "operational" if status != "operational" else "major_outage"
    return ProviderEvent(
        id=f"pev_{delivery}",
        provider="statuspage",
        integration_id=integration_id,
        workspace_id="ws_roots",
        event_type=f"component.{status}",
        delivery_id=delivery,
        received_at=at,
        payload=payload,
    )


async def test_a_late_outage_was_open_from_its_own_start_to_its_own_end(
    runtime: Runtime,
) -> None:
    """A Statuspage component down at 10:00 and operational at 11:23 by its updates' own
    times, both webhooks received four hours later (a backlog replayed), the resolution on
    another replica: open for 1 h 23 min, from the start the opening notice said (stored
    with the root) to the end the resolution says, not the seconds between their arrivals."""
    integration_id, channel = await _subscribe(runtime, "statuspage")
    one = await _consumer(runtime, MessageMap(runtime.db))
    two = await _consumer(runtime, MessageMap(runtime.db))
    t = utcnow().replace(microsecond=0)  # as MongoDB keeps it (milliseconds)
    began = t - timedelta(hours=4)
    ended = began + timedelta(hours=1, minutes=23)
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await one.events([_component(integration_id, "major_outage", t, "c1", began)])
        later = t + timedelta(seconds=1)
        await two.events([_component(integration_id, "operational", later, "c2", ended)])
        root, back, edit = await _channel(tap, channel, 3)
    assert back["thread_id"] == root["id"] and edit["message_id"] == root["id"]
    assert edit["card"]["state"] == "operational"
    assert _fields(edit)["Open for"] == "1 h 23 min" and "Open for: 1 h 23 min" in edit["text"]
    await two.revoked()  # what it changed, written
    stored = await runtime.db[message_map.COLLECTION].find_one({"inbound_id": root["id"]})
    assert stored is not None
    life = stored["lifecycle"]
    assert (life["began_at"], life["ended_at"]) == (began, ended)


class Recoveries:
    """Alertmanager's renderer, its resolutions made recoveries: meaningful only in the
    thread of the firing (`needs_root`), as a pipeline that passed again after failing."""

    name = "alertmanager"
    events = ALERTMANAGER.events
    generic_events = ALERTMANAGER.generic_events
    default_events = ALERTMANAGER.default_events
    filters = ALERTMANAGER.filters

    def notice(self, event_header: str | None, payload: Mapping[str, Any]) -> Notice:
        notice = ALERTMANAGER.notice(event_header, payload)
        return replace(notice, needs_root=notice.resolved is True)


async def test_a_notice_that_needs_a_root_waits_for_one(runtime: Runtime) -> None:
    integration_id, channel = await _subscribe(runtime, "alertmanager")
    registry = CollectorRegistry()
    consumer = await _consumer(
        runtime,
        MessageMap(runtime.db),
        {"alertmanager": Recoveries()},
        NotificationMetrics(registry),
    )
    t = utcnow()
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        # A recovery of a group the channel never saw firing: nothing.
        await consumer.events([_alert(integration_id, "resolved.json", t, "n1", t)])
        await consumer.events([_alert(integration_id, "firing.json", t, "n2", t)])
        await consumer.events([_alert(integration_id, "resolved.json", t, "n3", t)])
        found = await _channel(tap, channel, 3)
    root, recovered, edit = found[:3]
    assert "thread_id" not in root and root["card"]["state"] == "firing"
    assert recovered["thread_id"] == root["id"] and edit["card"]["state"] == "resolved"
    assert all(v["source"]["external_message_id"] != "n1" for v in found)
    filtered = registry.get_sample_value(
        "hookhub_notifications_filtered_total",
        {"provider": "alertmanager", "reason": "no_open_item"},
    )
    assert filtered == 1


def _circleci(integration_id: str, sample: str, delivery: str) -> ProviderEvent:
    payload = json.loads((CIRCLECI_SAMPLES / sample).read_text())
    return _event(integration_id, payload["type"], payload, "circleci", delivery)


async def test_a_success_is_posted_where_named_and_by_default_only_as_a_recovery(
    runtime: Runtime,
) -> None:
    """Zulip's capture of a GitHub-hosted project's workflow that succeeded, no failure
    before it: the channel whose subscription names `workflow.*` gets it (as Zulip shows
    every completion); the one on the defaults, where it would be a recovery, does not."""
    integration_id, named = await _subscribe(runtime, "circleci", ("workflow.*",))
    _, defaults = await _subscribe(runtime, "circleci", None, integration_id)
    registry = CollectorRegistry()
    consumer = await _consumer(
        runtime, MessageMap(runtime.db), metrics=NotificationMetrics(registry)
    )
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await consumer.events([_circleci(integration_id, "github_workflow_completed.json", "c1")])
        (posted,) = await _channel(tap, named, 1)
    assert posted["type"] == "message.received" and "thread_id" not in posted
    assert "Workflow [sample]" in posted["text"] and "succeeded on `main`" in posted["text"]
    filtered = registry.get_sample_value(
        "hookhub_notifications_filtered_total",
        {"provider": "circleci", "reason": "no_open_item"},
    )
    assert filtered == 1  # the defaults' subscription's: nothing in its channel
    assert all(v["channel_id"] != defaults for v in tap.values())


class HeldRechecks(MessageMap):
    """A message map whose reads by id (the roots' rechecks) wait until `release` is set."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.release = asyncio.Event()
        self.release.set()

    async def by_ids(self, ids: Any) -> dict[str, Copy]:
        await self.release.wait()
        return await super().by_ids(ids)


async def test_a_roots_chat_id_is_read_again_beside_the_consumer(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the chat names its own id for a root, later notifications refer to it by that
    id; the read that learns it never holds a batch (it is held here until released)."""
    monkeypatch.setattr(notifications_service, "ROOT_RECHECK_SECONDS", 0.0)
    integration_id, channel = await _subscribe(runtime, "github")
    the_map = HeldRechecks(runtime.db)
    consumer = await _consumer(runtime, the_map)
    events = [
        _event(integration_id, "pull_request", _payload("pull_request/opened.payload.json")),
        _event(integration_id, "pull_request", _payload("pull_request/labeled.payload.json")),
        _event(
            integration_id,
            "pull_request_review",
            _payload("pull_request_review/submitted.payload.json"),
        ),
    ]
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await consumer.events(events[:1])
        [root] = await _channel(tap, channel, 1)
        await runtime.db[message_map.COLLECTION].update_one(
            {"origin": "notification", "inbound_id": root["id"]},
            {"$set": {"chat_message_id": "chat-root-2"}},
        )
        the_map.release.clear()
        await asyncio.wait_for(consumer.events(events[1:2]), 60)
        the_map.release.set()
        while getattr(consumer, "_rechecking", None) is not None:  # the recheck, released, ends
            await asyncio.sleep(0.01)
        await consumer.events(events[2:])
        found = await _channel(tap, channel, 5)
    replies = [v for v in found if v["type"] == "message.received" and "thread_id" in v]
    edits = [v for v in found if v["type"] == "message.edited"]
    # While the read was held, by the root's envelope id; then by the chat's.
    assert [v["thread_id"] for v in replies] == [root["id"], "chat-root-2"]
    assert [v["message_id"] for v in edits] == [root["id"], "chat-root-2"]


class HeldAcks:
    """The runtime's publisher, whose publishes are handed to the producer at once and
    acknowledged only when released, each `release(n)` with the real publish, or failed."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher
        self.waiting: list[asyncio.Future[bool]] = []

    async def publish_encoded(self, topic: Any, envelopes: Any, **kwargs: Any) -> None:
        handed = kwargs.get("handed")
        if handed is not None:
            handed()
        verdict: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append(verdict)
        if not await verdict:
            raise KafkaTimeoutError("held, then failed")
        await self._publisher.publish_encoded(topic, envelopes)


async def test_a_batch_is_decided_while_the_one_before_waits_for_kafka(runtime: Runtime) -> None:
    """Pipelined: the second batch's notifications are decided and handed over from the
    threads as the first left them, before Kafka acknowledges the first; if the first is
    not acknowledged, neither batch counts, and both come again from what the map holds."""
    integration_id, channel = await _subscribe(runtime, "github")
    held = HeldAcks(runtime.publisher)
    registry = CollectorRegistry()
    consumer = await _consumer(
        runtime, MessageMap(runtime.db), metrics=NotificationMetrics(registry), publisher=held
    )
    opened = _event(integration_id, "pull_request", _payload("pull_request/opened.payload.json"))
    labeled = _event(integration_id, "pull_request", _payload("pull_request/labeled.payload.json"))
    first = await asyncio.wait_for(consumer.publish([opened]), 60)
    second = await asyncio.wait_for(consumer.publish([labeled]), 60)
    assert len(held.waiting) == 2 and not first.done() and not second.done()
    held.waiting[0].set_result(False)  # the first is not acknowledged
    with pytest.raises(KafkaTimeoutError):
        await first
    with pytest.raises(KafkaTimeoutError):
        await second  # after a failed one, nothing counts
    held.waiting[1].set_result(False)  # queued behind it in the stream: failed with it
    sent = {"provider": "github", "event": "pull_request.opened", "outcome": "sent"}
    assert registry.get_sample_value("hookhub_notifications_total", sent) is None
    # Both come again (the pipeline rewinds): one root, the second in its thread.
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        again = asyncio.ensure_future(consumer.events([opened]))
        while len(held.waiting) < 3:
            await asyncio.sleep(0.01)
        held.waiting[2].set_result(True)
        await asyncio.wait_for(again, 60)
        later = asyncio.ensure_future(consumer.events([labeled]))
        while len(held.waiting) < 4:
            await asyncio.sleep(0.01)
        held.waiting[3].set_result(True)
        await asyncio.wait_for(later, 60)
        found = await _channel(tap, channel, 3)
    [root] = [v for v in found if v["type"] == "message.received" and "thread_id" not in v]
    [reply] = [v for v in found if v["type"] == "message.received" and "thread_id" in v]
    assert reply["thread_id"] == root["id"]
    roots = await runtime.db[message_map.COLLECTION].count_documents({"origin": "notification"})
    assert roots == 1
    assert registry.get_sample_value("hookhub_notifications_total", sent) == 1


# -- what a root's card offers, kept beside it -------------------------------------------------


class GitHubCardOffers(CardOffers):
    """GitHub's offers on every card of the test's integrations (GitHub's actions need no
    setting of the integration, so every GitHub integration offers them)."""

    def __init__(self) -> None:
        pass

    async def prepare(self, integration_ids: Any, providers: Any) -> None:
        return None

    def of(self, integration_id: str, notice: Notice) -> Offered | None:
        target = GITHUB.target(notice)
        return None if target is None else Offered("github", GITHUB.offers(notice), target)


class ActingWrites(MessageMap):
    """A message map that notes the roots each `set_acting` writes."""

    def __init__(self, db: Any) -> None:
        super().__init__(db)
        self.written: list[list[str]] = []

    async def set_acting(
        self, acting: dict[str, Any], offers: Mapping[str, str | None] | None = None
    ) -> None:
        if acting:
            self.written.append(sorted(acting))
        await super().set_acting(acting, offers)


async def test_an_items_offers_are_written_once_for_all_its_roots_and_again_when_they_change(
    runtime: Runtime,
) -> None:
    """An item's roots (one per channel subscribed) share one document of what their cards
    offer (`card_offers`), each root's card under its id: a new item's is written once, with
    both roots' cards, before they are published (the insert of a root carries no offers: it
    did, in each root, and each change of state cost an update of every root). A later
    event that changes the offers or the card's state (the issue closed) writes them again;
    one that changes another field alone (an assignee) does not."""
    integration_id, channel = await _subscribe(runtime, "github")
    _, other = await _subscribe(runtime, "github", integration_id=integration_id)
    the_map = ActingWrites(runtime.db)
    consumer = await _consumer(runtime, the_map, offers=GitHubCardOffers())
    opened = _payload("issues/opened.payload.json")
    await consumer.events([_event(integration_id, "issues", opened)])
    roots = {
        doc["channel_id"]: doc
        for doc in await runtime.db[message_map.COLLECTION]
        .find({"channel_id": {"$in": [channel, other]}})
        .to_list()
    }
    root, second = roots[channel], roots[other]
    assert "acting" not in root and root["offers"] == second["offers"]
    assert the_map.written == [sorted([root["_id"], second["_id"]])]
    [offers] = await runtime.db[message_map.OFFERS].find({"_id": root["offers"]}).to_list()
    assert [a["id"] for a in offers["actions"]] == ["assign:me", "close"]
    for each in (root, second):
        shown = offers["shown"][each["_id"]]
        assert shown["source"] == each["inbound_id"]
        assert [a["id"] for a in shown["card"]["actions"]] == ["assign:me", "close"]
    # What a click and the networks' buttons read: each root's own card, the item's actions.
    [(copy, acting)] = (await the_map.cards([second["inbound_id"]])).values()
    assert copy.id == second["_id"] and acting["shown"]["source"] == second["inbound_id"]
    [with_actions] = await the_map.with_offers([copy])
    assert [a["id"] for a in with_actions.actions or ()] == ["assign:me", "close"]
    closed = {**opened, "action": "closed", "issue": {**opened["issue"], "state": "closed"}}
    await consumer.events([_event(integration_id, "issues", closed)])
    assert the_map.written[1:] == [sorted([root["_id"], second["_id"]])]
    acting = (await the_map.acting_of({root["_id"]: root["offers"]}))[root["_id"]]
    assert [a["id"] for a in acting["actions"]] == ["reopen"]
    assert acting["shown"]["card"]["state"] == "closed"
    assert acting["shown"]["source"] != root["inbound_id"]
    assert await runtime.db[message_map.OFFERS].count_documents({"_id": root["offers"]}) == 1
    # The closed issue assigned to someone else: its card edited (a field), its offers and
    # state as written, so the map is not written; reopened, it is.
    hubot = {**opened["issue"]["assignees"][0], "login": "hubot"}
    assigned = {
        **closed,
        "action": "assigned",
        "issue": {**closed["issue"], "assignee": hubot, "assignees": [hubot]},
    }
    async with KafkaTap.of(runtime.settings, Topic.CHAT_INBOUND) as tap:
        await consumer.events([_event(integration_id, "issues", assigned)])
        edits = await tap.wait_for(
            lambda v: v["type"] == "message.edited" and "hubot" in json.dumps(v["card"]), count=2
        )
    assert {edit["message_id"] for edit in edits} == {root["inbound_id"], second["inbound_id"]}
    assert len(the_map.written) == 2
    reopened = {**assigned, "action": "reopened", "issue": {**assigned["issue"], "state": "open"}}
    await consumer.events([_event(integration_id, "issues", reopened)])
    assert len(the_map.written) == 3
    acting = (await the_map.acting_of({second["_id"]: second["offers"]}))[second["_id"]]
    assert [a["id"] for a in acting["actions"]] == ["assign:me", "close"]


async def test_a_root_written_before_items_kept_their_offers_keeps_its_own(
    runtime: Runtime,
) -> None:
    """A root without `offers` (written before `card_offers`) is read and written as it
    was: its own `acting`."""
    integration_id, channel = await _subscribe(runtime, "github")
    the_map = MessageMap(runtime.db)
    old = Copy.new(
        workspace_id="ws_roots",
        channel_id=channel,
        provider="github",
        integration_id=integration_id,
        mapping_id=None,
        external_channel_id=channel,
        external_message_id="octo/widgets#1",
        origin="notification",
        inbound_id=new_id("ntf"),
    )
    acting = {"provider": "github", "target": {"number": 1}, "actions": [{"id": "close"}]}
    await the_map.claim([old], {old.id: {"acting": acting}})
    [found] = await the_map.of_messages([old.inbound_id or ""])
    assert found.offers_id is None and found.actions == ({"id": "close"},)
    assert (await the_map.cards([old.inbound_id or ""]))[old.inbound_id or ""][1] == acting
    reopen = {**acting, "actions": [{"id": "reopen"}]}
    await the_map.set_acting({old.id: reopen}, {old.id: None})
    assert (await the_map.acting_of({old.id: None}))[old.id] == reopen
    [doc] = await runtime.db[message_map.COLLECTION].find({"_id": old.id}).to_list()
    assert doc["acting"] == reopen and "offers" not in doc
