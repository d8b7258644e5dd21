"""Notifications (SPEC §12, §16): verified provider events (GitHub's, Jira's, an alert's, any
catalog provider's) → `message.received` on `hookhub.chat.inbound`, in the channel of each
subscription that takes them, threaded per item (a pull request, a Jira issue, an alert
group, an incident), the item's root edited to show its current state.

Per batch of provider events, in the batch's order:

1. **Subscriptions current.** When an event arrived after the subscription cache's last
   refresh began, the cache is refreshed first: a subscription created a moment before its
   first event (through another replica) is not missed (the batch is rendered meanwhile).
   A subscription takes the events that arrived (`received_at`) after it was created, while
   it is enabled.
2. **Rendered once per event** by the provider's notifier, only for an integration with an
   enabled subscription. An event that cannot be rendered is that event's problem: counted,
   logged with its delivery id, and the `last_error` of the subscriptions it was for; the
   batch goes on.
3. **Filtered** by each subscription (services.sync.subscriptions.filters): what one leaves
   out is counted (`filtered_count`, the metric by reason).
4. **Threads.** The first notification about an item in a channel is its root; the root is
   recorded in the message map (a copy with origin `notification`, one per channel and item:
   shared/domain/message_map.py) *before* it is published, by an insert that only one
   process can win, so two replicas (or a replay) never make two roots. Later notifications
   about the item carry `thread_id` = the root's chat id (the chat's own id once it named it
   through `inbound_id`, else the root's envelope id), each followed by a `message.edited`
   of the root to the item as it is now, with who changed it and, resolved, how long it was
   open. The item's lifecycle in the channel (services.sync.notifications.threads: resolved,
   reopened within HOOKHUB_SYNC_REOPEN_SECONDS, a new root after it, late events turning
   nothing back) is kept on its first root: read with the roots (one read per batch, for the
   items this process does not know), written where it changed by the batched writer of the
   counts (below), and at once before the consumer's partitions are revoked. What this
   process knows of threads is forgotten when they are assigned: another replica may have
   handled the integration meanwhile. A notice that needs its item's root (`needs_root`, or
   `needs_root_by_default` for a subscription without `events`) and finds none is filtered
   (`no_open_item`). 5. **Published**, then counted (`notified_count`, `filtered_count`,
   `last_notified_at`: written in bulk every few seconds, off the path). The consumer is
   pipelined: once a batch's envelopes are handed to the producer (in order, one stream),
   the next batch is decided from the threads as it left them while Kafka acknowledges it;
   its lifecycles and counts are handed to the writer only once it is acknowledged. A
   publish that fails fails the batches after it, and all of them come again, decided from
   the map (`_publish_failed`).

Envelope ids derive from (subscription, provider delivery id, part): a redelivered webhook,
or a batch handled again after a crash, publishes the same envelopes, which the chat drops.
Where a provider tells of one thing in two deliveries (Jira: a comment's `comment_created`
and the `jira:issue_updated` beside it), the notice names the `occurrence`, which takes the
delivery id's place: both make the same envelopes. This process publishes an envelope id
once (it remembers the ones it published lately, in memory); another replica's second copy
is the same envelope, which the chat drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

import orjson
import structlog

from services.sync.clicks.offers import CardOffers
from services.sync.clicks.reads import READERS, OfferReads, read_job
from services.sync.metrics import NotificationMetrics
from services.sync.notifications.directory import SubscriptionDirectory
from services.sync.notifications.post import Post, nobody
from services.sync.notifications.templates import PostTemplates
from services.sync.notifications.threads import (
    Cards,
    Lifecycle,
    Step,
    advance,
    duration,
    first,
)
from services.sync.subscriptions.filters import filtered
from services.sync.subscriptions.repository import COLLECTION as SUBSCRIPTIONS
from shared.domain import claim_check
from shared.domain.message_map import COLLECTION as MAP
from shared.domain.message_map import Copy, MessageMap, copy_id
from shared.kernel import tracing
from shared.kernel.cache import RecentIds
from shared.kernel.envelopes import Encoded, ProviderEvent, Topic, encode_inbound
from shared.kernel.errors import NotFound
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import BatchedWriter, Database, Document
from shared.kernel.produce import HandOver
from shared.providers.acting import Offered
from shared.providers.notifiers import NOTIFIERS
from shared.providers.notify import Card, Notice, Notifier, Unrenderable, card_text

log = structlog.get_logger(__name__)

# Thread roots remembered (the oldest forgotten first). A root does not change, except that
# the chat may name its own id for it (`inbound_id`): one whose chat id is not known yet is
# read again from the map (beside the consumer, not on its way) at most this often, so a
# thread refers to the root by the chat's id within that time (until then by the root's
# envelope id, which the chat also knows).
KNOWN_ROOTS = 100_000
ROOT_RECHECK_SECONDS = 30.0
# Notification ids this process published lately: a second delivery of the same occurrence
# (module docstring) is not published or counted again.
PUBLISHED_KEPT = 50_000
# How long after an item's thread resolved a notice that opens it again reopens that thread
# rather than starting a new one (SPEC §16; HOOKHUB_SYNC_REOPEN_SECONDS).
REOPEN_SECONDS = 3600.0
# What a `last_error` keeps of a reason.
ERROR_CHARS = 300


@dataclass
class Thread:
    """An item's thread in one channel, as this process knows it: the lifecycle (as decided
    and as stored), and the current thread's root (None: none yet)."""

    life: Lifecycle
    root: Copy | None
    stored: Lifecycle
    read_at: float
    # The text of the card this process last showed on the root (None: not known, as after
    # a restart): an event left out edits the root only to show something else.
    shown: str | None = None
    # What this process last wrote beside the root of what its card offers (`_offering`:
    # the actions, their target and the card's state; None: not known).
    offered: Document | None = None

    def copy(self) -> Thread:
        return Thread(self.life, self.root, self.stored, self.read_at, self.shown, self.offered)


@dataclass
class Threaded:
    """A batch's posts threaded: their envelopes, the posts left out for want of a root,
    and the threads as they are after it (remembered once it is handed to the producer)."""

    envelopes: list[Encoded]
    unrooted: list[Post]
    threads: dict[str, Thread]
    epoch: int
    # What the batch's root cards offer, by root (SPEC §20), kept beside each root.
    acting: dict[str, Document] = field(default_factory=dict)
    # Roots whose offers are read from their provider once they are on Kafka (Jira's
    # transitions: services.sync.clicks.reads), the latest card of each root.
    reads: dict[str, Document] = field(default_factory=dict)


# Why a subscription leaves out an event about an item whose root still follows it: only
# the event's kind (an assignee changed where only status changes are notified).
_CARD_ONLY = frozenset({"event", "excluded_event"})


def _with_edits(posts: list[Post], edits: list[Post], order: list[ProviderEvent]) -> list[Post]:
    """The batch's posts and card-only edits together in its events' order (a root follows
    its item's changes in the order they happened), without an edit of a root that a post
    or an earlier edit of the same event edits already."""
    if not edits:
        return posts
    place = {id(event): n for n, event in enumerate(order)}
    edited = {(post.event.id, post.root_id) for post in posts}
    kept = []
    for edit in edits:
        if (edit.event.id, edit.root_id) not in edited:
            edited.add((edit.event.id, edit.root_id))
            kept.append(edit)
    return sorted([*posts, *kept], key=lambda post: place[id(post.event)])


def _offering(acting: Document) -> Document:
    """What of a root's `acting` a click and the networks' buttons depend on: the actions,
    their target, and the state of the card shown (not its other fields)."""
    shown = acting.get("shown") or {}
    return {
        "actions": acting.get("actions"),
        "target": acting.get("target"),
        "state": (shown.get("card") or {}).get("state"),
    }


def _written(
    acting: dict[str, Document], claimed: dict[str, Document], threads: dict[str, Thread]
) -> dict[str, Document]:
    """Of what a batch's root cards offer, what is written to their items' offers: every
    root the batch claimed (inserted without them), and of the others those whose actions,
    target or card state differ from what this process last wrote (a card whose other
    fields changed, labels, an alert count: written once its state or offers change).
    The map's card of such a root (`shown`, from which a click's pending edit is made) is
    then older than the chat's, until the next change of state; the card's offers, which
    the clicks and the networks' buttons read, are the same. Each root's thread notes what
    was written (`Thread.offered`)."""
    held = {t.root.id: t for t in threads.values() if t.root is not None}
    written: dict[str, Document] = {}
    for rid, doc in [*claimed.items(), *acting.items()]:
        offering, thread = _offering(doc), held.get(rid)
        if rid not in claimed and thread is not None and thread.offered == offering:
            continue
        written.pop(rid, None)  # in the order last set: an item's offers are its last root's
        written[rid] = doc
        if thread is not None:
            thread.offered = offering
    return written


class _Made:
    """What a batch makes once for all the subscriptions that take an event (five channels
    of one webhook show the same card): its root cards (`cards`, threads.root_card's), each
    one's text, the item's offers by integration and notice, each card with those offers'
    actions, and each card's dict. By the `id` of what each is made from: the batch keeps
    those alive until its envelopes are made (its posts, and what is kept here)."""

    def __init__(self, offers: CardOffers | None) -> None:
        self._card_offers = offers
        self.cards: Cards = {}
        self._texts: dict[int, str] = {}
        self._offers: dict[tuple[str, int], tuple[Offered, Document] | None] = {}
        self._cards: dict[tuple[int, int], Card] = {}
        self._dicts: dict[int, tuple[Card, Document]] = {}
        # What the batch's root cards offer, by root (kept beside each root: `_written`),
        # and the roots whose offers are read from their provider once they are on Kafka.
        self.acting: dict[str, Document] = {}
        self.reads: dict[str, Document] = {}

    def text(self, step: Step) -> str | None:
        """The text of the root card a step shows (a new root's, or its edit's), if it
        shows one."""
        if step.card is None or not (step.edits_root or step.new_thread):
            return None
        shown = self._texts.get(id(step.card))
        if shown is None:
            shown = self._texts[id(step.card)] = card_text(step.card)
        return shown

    def offered(self, post: Post) -> tuple[Offered, Document] | None:
        """What the post's item offers where its integration can act, and as the map keeps
        it; None where it cannot."""
        if self._card_offers is None:
            return None
        key = (post.event.integration_id, id(post.notice))
        if key not in self._offers:
            found = self._card_offers.of(post.event.integration_id, post.notice)
            self._offers[key] = (found, found.to_doc()) if found is not None else None
        return self._offers[key]

    def acting_card(self, card: Card, offered: Offered) -> Card:
        """The card with the offers' actions."""
        key = (id(card), id(offered))
        found = self._cards.get(key)
        if found is None:
            found = self._cards[key] = card.with_actions(offered.actions)
        return found

    def as_dict(self, card: Card) -> Document:
        """The card's dict (the envelopes' and the map's, written and never changed)."""
        found = self._dicts.get(id(card))
        if found is None:
            found = self._dicts[id(card)] = (card, card.as_dict())
        return found[1]


def _root_id(thread: Thread) -> str | None:
    return thread.root.id if thread.root is not None else None


def _later_root_id(root: Copy, generation: int) -> str:
    """The id of a later thread's root, from the item's first root."""
    return copy_id(
        root.provider,
        root.integration_id,
        root.external_channel_id,
        f"{root.external_message_id}~{generation}",
    )


class _Stages:
    """A batch's time, stage by stage (`hookhub_notification_batch_seconds`): each stage from
    where the one before it ended; `end` the whole batch."""

    def __init__(self, metrics: NotificationMetrics) -> None:
        self._metrics = metrics
        self._began = self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self._metrics.batch.labels(stage).observe(now - self._last)
        self._last = now

    def end(self) -> None:
        self._metrics.batch.labels("batch").observe(time.perf_counter() - self._began)


def _traced(posts: list[Post], skipped: list[tuple[Post, str]]) -> None:
    """What became of each event, on its record's span (while its consumer still holds it
    open): a span event per subscription that took it or left it out, and why."""
    for post in posts:
        tracing.add_event(
            post.event.trace(),
            "notification",
            _post_attributes(post, {"hookhub.envelope_id": post.id}),
        )
    for post, reason in skipped:
        tracing.add_event(
            post.event.trace(),
            "notification filtered",
            _post_attributes(post, {"hookhub.reason": reason}),
        )


def _post_attributes(post: Post, extra: dict[str, str]) -> dict[str, str]:
    found = {
        "hookhub.subscription_id": post.subscription.id,
        "hookhub.channel_id": post.subscription.channel_id,
        "hookhub.notification": post.notice.event,
        **extra,
    }
    if post.notice.item is not None:
        found["hookhub.item"] = post.notice.item
    return found


class Notifications:
    def __init__(
        self,
        *,
        subscriptions: SubscriptionDirectory,
        message_map: MessageMap,
        publisher: EventPublisher,
        db: Database,
        counts: BatchedWriter,
        metrics: NotificationMetrics,
        notifiers: dict[str, Notifier] | None = None,
        templates: PostTemplates | None = None,
        reopen_seconds: float = REOPEN_SECONDS,
        offers: CardOffers | None = None,
        reads: OfferReads | None = None,
        read_now: Callable[[], None] = lambda: None,
    ) -> None:
        self._reads = reads
        self._read_now = read_now
        self._subscriptions = subscriptions
        self._map = message_map
        self._publisher = publisher
        self._db = db
        self._counts = counts
        self._metrics = metrics
        self._notifiers = dict(notifiers if notifiers is not None else NOTIFIERS)
        # Items' threads by their first root's id (module docstring, 4). Forgotten when the
        # consumer's partitions are assigned (`assigned`); `_epoch` counts the assignments.
        self._threads: OrderedDict[str, Thread] = OrderedDict()
        self._epoch = 0
        # Known roots whose chat id is read again (`_recheck_roots`), and the task reading.
        self._recheck: set[str] = set()
        self._rechecking: asyncio.Future[None] | None = None
        self._reopen_after = timedelta(seconds=reopen_seconds)
        self._published = RecentIds(PUBLISHED_KEPT)
        self._templates = templates
        self._offers = offers
        # The batches' publishes, in order (`_hand_over`); the last batch's second part,
        # which the next one's follows; a failed publish's counts flush, before a re-read.
        self._handing = HandOver(self._publish_failed)
        self._previous: asyncio.Future[None] | None = None
        self._reread: asyncio.Future[None] | None = None

    async def events(self, events: list[ProviderEvent]) -> None:
        """A batch through to its end: published, acknowledged, counted."""
        await (await self.publish(events))

    async def publish(self, events: list[ProviderEvent]) -> asyncio.Future[None]:
        """A batch in two parts (the consumer is pipelined, shared.kernel.consumers): its
        notifications decided and handed to the producer, in order, before the next batch
        is handled; then, in what is returned, Kafka's acknowledgement awaited and the
        batch's lifecycles and counts handed to the writer. Later batches are decided
        meanwhile, from the threads as this one left them; if its publish fails, so do the
        second parts after it, and what this process knows of threads is read again from
        the map (`_publish_failed`) before the batches come again."""
        if self._reread is not None:  # a failed publish's lifecycles, written first
            with contextlib.suppress(Exception):
                await self._reread
            self._reread = None
        ours = [e for e in events if e.provider in self._notifiers]
        if not ours:
            return self._then(None, [], [], [], None)
        stages = _Stages(self._metrics)
        now = utcnow()
        for event in ours:  # how long after the gateway took it this batch got to it
            self._metrics.age.observe(max(0.0, (now - event.received_at).total_seconds()))
        fresh = asyncio.ensure_future(
            self._subscriptions.covering(max(e.received_at for e in ours))
        )
        try:
            if not all(self._subscriptions.has(e.integration_id) for e in ours):
                await fresh  # which integrations have subscriptions is known after it
            # Rendered while the cache is refreshed (if it must be): what an event says does
            # not depend on the subscriptions, which of them take it does.
            notices = [
                (event, await self._render(event))
                for event in ours
                if self._subscriptions.has(event.integration_id)
            ]
            stages.done("render")
            await fresh
            stages.done("subscriptions")
        finally:
            fresh.cancel()
        posts: list[Post] = []
        skipped: list[tuple[Post, str]] = []
        edits: list[Post] = []
        for event, notice in notices:
            if notice is not None:
                self._match(event, notice, posts, skipped, edits)
        posts = self._once(posts)
        if self._templates is not None:  # subscriptions' templates (SPEC §16)
            posts = await self._templates.render(posts, skipped)
            stages.done("templates")
        threaded = _with_edits(posts, edits, [event for event, _ in notices])
        if not threaded:
            return self._then(None, [], [], skipped, stages)
        batch = await self._thread(threaded)
        stages.done("threads")
        # What new and edited roots' cards offer now, before they are published: the chat's
        # `message.updated` of a root makes the networks' buttons from it (SPEC §20).
        roots = [t.root for t in batch.threads.values() if t.root is not None]
        await self._map.set_acting(batch.acting, {root.id: root.offers_id for root in roots})
        published = await self._hand_over(batch.envelopes)
        changed = self._remember(batch)
        skipped += [(post, "no_open_item") for post in batch.unrooted]
        posts = [post for post in posts if post not in batch.unrooted]
        for post in posts:
            self._published.add(post.id)
        return self._then(published, changed, posts, skipped, stages, list(batch.reads.values()))

    async def _hand_over(self, envelopes: list[Encoded]) -> asyncio.Future[None]:
        """The envelopes handed to the producer, in order after the previous batch's (the
        stream: once one of its publishes fails, none after it goes out); what is returned
        completes once Kafka has acknowledged them."""
        return await self._handing(
            lambda stream, handed: self._publisher.publish_encoded(
                Topic.CHAT_INBOUND, envelopes, stream=stream, handed=handed
            )
        )

    def _publish_failed(self) -> None:
        """A publish failed (HandOver calls this once per stream): the batches from it on
        come again (the pipeline rewinds), decided from the threads as the map has them
        once the lifecycles of the batches Kafka did acknowledge are written."""
        # The second parts under way follow the failed one and fail; those of the batches
        # that come again do not.
        self._previous = None
        self._published = RecentIds(PUBLISHED_KEPT)
        self.assigned()
        self._reread = asyncio.ensure_future(self._counts.flush())

    def _then(
        self,
        published: asyncio.Future[None] | None,
        changed: list[tuple[str, Lifecycle]],
        posts: list[Post],
        skipped: list[tuple[Post, str]],
        stages: _Stages | None,
        reads: list[Document] | None = None,
    ) -> asyncio.Future[None]:
        """The batch's second part, after the previous batch's: a batch whose publish (or
        an earlier one's) failed writes and counts nothing."""
        if tracing.exported():
            _traced(posts, skipped)
        previous = self._previous
        finished = asyncio.ensure_future(
            self._finish(previous, published, changed, posts, skipped, stages, reads or [])
        )
        self._previous = finished
        return finished

    async def _finish(
        self,
        previous: asyncio.Future[None] | None,
        published: asyncio.Future[None] | None,
        changed: list[tuple[str, Lifecycle]],
        posts: list[Post],
        skipped: list[tuple[Post, str]],
        stages: _Stages | None,
        reads: list[Document],
    ) -> None:
        if previous is not None:
            await previous
        if published is not None:
            await published
        if stages is not None:
            stages.done("publish")
        # Roots whose offers are read (Jira's): their cards are on Kafka, the reads' edits
        # follow them. Only batches with such roots write here, and the reader is woken
        # only for jobs written (none where nobody could read: a claim of nothing is a
        # write under the server's lock, a batch's worth of them a second).
        if reads and self._reads is not None and await self._reads.want(reads):
            self._read_now()
        # Written with the counts, every few seconds, and before the partitions go to
        # another replica (`revoked`).
        for key, life in changed:
            self._counts.set_fields(MAP, key, {"lifecycle": life.to_doc()})
        # Counted once the batch is through (a batch that fails comes again, and counts then).
        for post, reason in skipped:
            provider = post.event.provider
            self._metrics.notifications.labels(provider, post.notice.event, "filtered").inc()
            self._metrics.filtered.labels(provider, reason).inc()
            self._counts.bump(SUBSCRIPTIONS, post.subscription.id, "filtered_count")
        now = utcnow()
        if stages is not None:
            stages.end()
        for post in posts:
            self._metrics.notifications.labels(post.event.provider, post.notice.event, "sent").inc()
            self._counts.bump(
                SUBSCRIPTIONS,
                post.subscription.id,
                "notified_count",
                set_max={"last_notified_at": now},
            )

    def _match(
        self,
        event: ProviderEvent,
        notice: Notice,
        posts: list[Post],
        skipped: list[tuple[Post, str]],
        edits: list[Post],
    ) -> None:
        """The posts one event makes, one per subscription that takes it, added to `posts`;
        those its subscriptions leave out to `skipped`, with the reason, and of those left
        out for their kind alone, the ones about an item to `edits` (`Post.card_only`: its
        root, if it has one, edited all the same)."""
        for subscription in self._subscriptions.of(event.integration_id, notice.repository):
            if subscription.created_at > event.received_at:
                continue  # created after the event arrived
            post = Post(event, subscription, notice)
            reason = filtered(subscription.filters, notice)
            if reason is None:
                posts.append(post)
                continue
            skipped.append((post, reason))
            if reason in _CARD_ONLY and post.root_id is not None:
                edits.append(replace(post, card_only=True))

    def _once(self, posts: list[Post]) -> list[Post]:
        """The posts whose envelopes this process has not published yet, each once: a second
        delivery of one occurrence, in this batch or a recent one, makes nothing more."""
        seen: set[str] = set()
        kept = []
        for post in posts:
            if post.id in self._published or post.id in seen:
                self._metrics.notifications.labels(
                    post.event.provider, post.notice.event, "duplicate"
                ).inc()
                continue
            seen.add(post.id)
            kept.append(post)
        return kept

    async def _render(self, event: ProviderEvent) -> Notice | None:
        provider = event.provider
        notifier = self._notifiers[provider]
        try:
            payload = event.payload
            if event.payload_ref:
                payload = orjson.loads(await claim_check.load(self._db, event.payload_ref))
            started = time.perf_counter()
            notice = notifier.notice(event.event_type, payload)
            self._metrics.render.labels(provider).observe(time.perf_counter() - started)
            return notice
        except (Unrenderable, NotFound, orjson.JSONDecodeError) as exc:
            code, reason = "unrenderable", str(exc)
        except Exception as exc:  # a renderer's bug meets one payload: that event's problem
            log.exception("notification_render_failed", delivery_id=event.delivery_id)
            code, reason = "render_failed", f"{type(exc).__name__}: {exc}"
        name = event.event_type.strip().lower()[:60] or "-"
        self._metrics.notifications.labels(provider, name, "failed").inc()
        log.warning(
            "notification_not_rendered",
            provider=provider,
            event_type=name,
            delivery_id=event.delivery_id,
            envelope_id=event.id,
            reason=reason,
        )
        error = {
            "code": code,
            "message": f"{name} delivery {event.delivery_id}: {reason}"[:ERROR_CHARS],
            "at": utcnow(),
        }
        for subscription in self._subscriptions.of(event.integration_id, None):
            if subscription.created_at <= event.received_at:
                self._counts.set_fields(SUBSCRIPTIONS, subscription.id, {"last_error": error})
        return None

    async def revoked(self) -> None:
        """The consumer's partitions are about to go to another replica, which reads the
        lifecycles this one changed: the batches out are let end and they are written
        first."""
        if self._previous is not None:
            await asyncio.wait({self._previous})
        await self._counts.flush()

    def assigned(self) -> None:
        """The consumer's partitions were (re)assigned: an integration this process handles
        now may have been handled by another replica meanwhile, which may have changed its
        items' lifecycles. What is known of threads is read again."""
        self._epoch += 1
        self._threads.clear()

    async def _thread(self, posts: list[Post]) -> Threaded:
        """The envelopes of the batch's posts, in order, threaded (module docstring, 4), and
        the posts that need a root their item does not have."""
        epoch = self._epoch
        threads = await self._known({p.root_id for p in posts if p.root_id is not None})
        if self._offers is not None:
            rooted = [p.event for p in posts if p.root_id is not None]
            await self._offers.prepare(
                (e.integration_id for e in rooted), (e.provider for e in rooted)
            )
        decided: list[tuple[Post, Step | None, Copy | None]] = []
        unrooted: list[Post] = []
        claims: dict[str, tuple[Copy, Lifecycle | None]] = {}
        claimed_acting: dict[str, Document] = {}
        # The batch's root cards and what is made of them, once for all the subscriptions
        # that take an event.
        made = _Made(self._offers)
        for post in posts:
            key, notice = post.root_id, post.notice
            if post.card_only:  # its item's root edited, if the channel has one
                assert key is not None
                thread = threads[key]
                if thread.root is None:
                    continue
                at, source, actor = post.event.received_at, post.source, post.actor_name
                step = advance(
                    thread.life, notice, at, source, actor, self._reopen_after, made.cards
                )
                # A filtered event starts no thread, and edits the root only to show a card
                # other than the one shown (a comment changes no field of it).
                shown = made.text(step)
                if not step.new_thread and shown is not None and shown != thread.shown:
                    thread.life, thread.shown = step.lifecycle, shown
                    decided.append((post, step, thread.root))
                continue
            if key is None:
                if post.needs_root:
                    unrooted.append(post)  # no thread to need (threads off, or no item)
                else:
                    decided.append((post, None, None))
                continue
            thread = threads[key]
            at, source, actor = post.event.received_at, post.source, post.actor_name
            if thread.root is None:
                if post.needs_root:
                    unrooted.append(post)
                    continue
                step = first(notice, at, source, actor, thread.life.generation, made.cards)
            else:
                step = advance(
                    thread.life, notice, at, source, actor, self._reopen_after, made.cards
                )
            if step.new_thread:
                root = post.root_copy(step.generation)
                # The first root carries the item's lifecycle; a later one's is written there.
                claims[root.id] = (root, step.lifecycle if step.generation == 0 else None)
                offered = made.offered(post)
                if offered is not None:  # written before the root is published
                    # Its card, if it has one, is added by `_envelopes` (`_actionable`) as
                    # the root's post is made; a root without one offers them all the same.
                    claimed_acting[root.id] = offered[1]
                thread.root = root
            thread.life = step.lifecycle
            thread.shown = made.text(step) or thread.shown
            decided.append((post, step, thread.root))
        lost = await self._claim(claims)
        for thread in threads.values():
            if thread.root is not None and thread.root.id in lost:
                thread.root = lost[thread.root.id]
            elif thread.root is not None and thread.root.id in claims:
                thread.stored = claims[thread.root.id][1] or thread.stored
        envelopes: list[Encoded] = []
        for post, taken, at_root in decided:
            held = lost.get(at_root.id, at_root) if at_root is not None else None
            envelopes += self._envelopes(post, taken, held, made)
        written = _written(made.acting, claimed_acting, threads)
        return Threaded(envelopes, unrooted, threads, epoch, written, made.reads)

    def _remember(self, batch: Threaded) -> list[tuple[str, Lifecycle]]:
        """Once a batch is handed to the producer: its threads remembered, for the next
        batch to decide from; the lifecycles it changed, for its second part to write once
        Kafka has acknowledged it (a batch that fails comes again and decides as it did)."""
        # Written when the item resolved, reopened or started a thread (its `course`): a
        # state that changed alone (acknowledged, merged) is remembered here only.
        changed = [
            (key, thread.life)
            for key, thread in batch.threads.items()
            if thread.life.course() != thread.stored.course()
        ]
        if batch.epoch != self._epoch:
            return changed  # reassigned meanwhile: read again
        for key, thread in batch.threads.items():
            thread.stored = thread.life
            self._threads[key] = thread
            self._threads.move_to_end(key)
        while len(self._threads) > KNOWN_ROOTS:
            self._threads.popitem(last=False)
        return changed

    async def _known(self, keys: set[str]) -> dict[str, Thread]:
        """The threads of these items (keys: their first roots' ids): from memory, else
        read from the map (one read, and one more for items on a later thread). A root whose
        chat id is not known yet is read again at most every ROOT_RECHECK_SECONDS."""
        now = time.monotonic()
        threads: dict[str, Thread] = {}
        for key in keys:
            held = self._threads.get(key)
            if held is None:
                continue
            if (
                held.root is not None
                and held.root.chat_message_id is None
                and now - held.read_at >= ROOT_RECHECK_SECONDS
            ):
                held.read_at = now
                self._recheck.add(key)
            threads[key] = held.copy()
        if self._recheck and self._rechecking is None:
            self._rechecking = asyncio.ensure_future(self._recheck_roots())
        missing = keys - set(threads)
        if not missing:
            return threads
        read = await self._map.roots(missing)
        later: dict[str, str] = {}
        for key in missing:
            found = read.get(key)
            if found is None:
                threads[key] = Thread(Lifecycle(), None, Lifecycle(), now)
                continue
            root, extra = found
            life = Lifecycle.from_doc(extra["lifecycle"], claimed_at=extra["created_at"])
            threads[key] = Thread(life, root, life, now)
            if life.generation:
                later[_later_root_id(root, life.generation)] = key
        if later:
            found_later = await self._map.by_ids(later)
            for rid, key in later.items():
                # None if its root is gone: the item's next notice makes one.
                threads[key].root = found_later.get(rid)
        return threads

    async def _recheck_roots(self) -> None:
        """The chat ids of known roots that had none, read beside the consumer, not on its
        way: until one is known a thread refers to its root by the root's envelope id, which
        the chat also knows. Only the root is taken from the read (what this process knows
        of the item's lifecycle is newer than the map's). A batch that remembers its threads
        after the read may put back the root without its id: read again a recheck later."""
        try:
            while self._recheck:
                keys, self._recheck = self._recheck, set()
                epoch = self._epoch
                wanted = {
                    thread.root.id: key
                    for key in keys
                    if (thread := self._threads.get(key)) is not None and thread.root is not None
                }
                found = await self._map.by_ids(wanted)
                if epoch != self._epoch:
                    continue  # reassigned meanwhile: what is known is read again anyway
                for rid, key in wanted.items():
                    thread = self._threads.get(key)
                    copy = found.get(rid)
                    # Still the same root (not a later thread's, begun meanwhile).
                    if copy is not None and thread is not None and _root_id(thread) == rid:
                        thread.root = copy
        except Exception as exc:  # MongoDB away: the next recheck reads them again
            log.warning("notification_roots_recheck_failed", error=repr(exc))
        finally:
            self._rechecking = None

    async def _claim(self, claims: dict[str, tuple[Copy, Lifecycle | None]]) -> dict[str, Copy]:
        """Roots claimed by an insert only one process wins: those another process (or this
        one, before a crash) claimed first, as they are. A root is written with its item's
        lifecycle (the first root); what its card offers is written to its item's offers
        with the batch's other roots' (`_written`)."""
        if not claims:
            return {}
        extra: dict[str, Document] = {
            rid: {"lifecycle": life.to_doc()}
            for rid, (_, life) in claims.items()
            if life is not None
        }
        lost = await self._map.claim([copy for copy, _ in claims.values()], extra)
        return await self._map.by_ids(lost) if lost else {}

    def _envelopes(
        self, post: Post, step: Step | None, root: Copy | None, made: _Made
    ) -> list[Encoded]:
        """One post's envelopes: in its item's thread (`root`, the thread's root) unless it
        is the root, and the root's edit. A root's card carries what can be done to its
        item now, kept beside the root in `made.acting` (and, where its provider's offers
        are read, the card noted in `made.reads`)."""
        notice = post.notice
        if post.card_only:
            assert step is not None and root is not None
            return self._root_edit(post, step, root, made)
        if step is None or root is None:
            return [self._encode(post, post.id, notice.text, notice.card, made)]
        if root.inbound_id == post.id:  # this post is the root
            card = self._actionable(post, root, step.card or notice.card, made, post.id)
            self._to_read(post, root, post.id, notice.text, card, made)
            return [self._encode(post, post.id, notice.text, card, made)]
        thread = root.chat_id
        text = notice.text
        if step.reopened_after is not None:
            text = f"Reopened {duration(step.reopened_after)} after it resolved.\n\n{text}"
        envelopes = [self._encode(post, post.id, text, notice.card, made, thread_id=thread)]
        return envelopes + self._root_edit(post, step, root, made)

    def _root_edit(self, post: Post, step: Step, root: Copy, made: _Made) -> list[Encoded]:
        """The root's edit a post makes, if its step edits the root (see `_envelopes`)."""
        thread = root.chat_id
        # A root another process claimed first (`new_thread`, lost) is edited as any other.
        shown = made.text(step)
        if shown is None or step.card is None or thread is None:
            return []
        card = self._actionable(post, root, step.card, made, post.edit_id)
        self._to_read(post, root, post.edit_id, shown, card, made)
        return [self._encode(post, post.edit_id, shown, card, made, edits=thread)]

    def _to_read(
        self, post: Post, root: Copy, source: str, text: str, card: Card | None, made: _Made
    ) -> None:
        """A root card whose provider's offers are read (Jira's transitions) noted, to be
        edited with them once it is on Kafka (services.sync.clicks.reads)."""
        offered = made.acting.get(root.id)
        if card is None or offered is None or offered["provider"] not in READERS:
            return
        fields = self._fields(post, text, thread_id=None, edits=root.chat_id)
        edit = {**fields, "card": made.as_dict(card)}
        made.reads[root.id] = read_job(root.id, root.offers_id, source, offered, edit)

    def _actionable(
        self, post: Post, root: Copy, card: Card | None, made: _Made, source: str
    ) -> Card | None:
        """The root's card with its item's actions (SPEC §20), where its integration can
        act; what they act on noted for the root, with the card it shows (`shown`, by the
        envelope `source` that shows it: the click worker edits it at once, marked
        pending, after an action the provider answered with the item's new state)."""
        offered = made.offered(post)
        if card is None or offered is None:
            return card
        card = made.acting_card(card, offered[0])
        made.acting.pop(root.id, None)  # in the order last set (`_written`)
        made.acting[root.id] = {
            **offered[1],
            "shown": {"source": source, "card": made.as_dict(card)},
        }
        return card

    def _encode(
        self,
        post: Post,
        envelope_id: str,
        text: str,
        card: Card | None,
        made: _Made,
        *,
        thread_id: str | None = None,
        edits: str | None = None,
    ) -> Encoded:
        return encode_inbound(
            id=envelope_id,
            type="message.edited" if edits is not None else "message.received",
            card=made.as_dict(card) if card is not None else None,
            trace=post.event.trace(),  # the chat's message goes on in the webhook's trace
            **self._fields(post, text, thread_id=thread_id, edits=edits),
        )

    def _fields(
        self, post: Post, text: str, *, thread_id: str | None, edits: str | None
    ) -> Document:
        """A notification's envelope fields but its id, type, card and trace."""
        event, subscription, notice = post.event, post.subscription, post.notice
        actor = notice.actor
        return {
            "workspace_id": subscription.workspace_id,
            "channel_id": subscription.channel_id,
            "provider": event.provider,
            "integration_id": event.integration_id,
            "external_channel_id": notice.repository or notice.project,
            "external_message_id": event.delivery_id,
            "external_thread_id": notice.item,
            "author_name": actor.name if actor else nobody(event.provider),
            "avatar_url": actor.avatar_url if actor else None,
            "author_external_id": actor.external_id if actor else None,
            "text": text,
            "attachments": [],
            "blocks": None,
            "thread_id": thread_id,
            "occurred_at": event.received_at,
            "message_id": edits,
        }
