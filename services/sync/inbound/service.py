"""Provider events → `message.received|edited|deleted` on `hookhub.chat.inbound`.

Per batch of provider events: the message changes each holds (the provider module says),
those in mapped channels only, minus our own posts coming back (the provider's marks of
our bot, and the map: a copy hookhub posted), with authors and mentions made readable and
replies pointed at the chat's thread. The copies of new messages are written to the map
once their envelopes are published (before the batch's offsets are committed);
the chat product's `message.created` with `data.inbound_id` comes back after the publish,
and the outbound intake waits for a copy it is told of but does not find yet. Envelope ids
are derived from the provider's ids, so a replayed batch publishes the same envelopes
again, which the chat product drops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from pymongo.errors import PyMongoError

from services.sync.mappings.service import LastSynced, MappingDirectory, MappingSnapshot
from services.sync.metrics import SyncMetrics
from shared.domain import claim_check
from shared.domain.integrations.model import IntegrationSnapshot
from shared.domain.message_map import Copy, MessageMap, copy_id, inbound_message_id
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.cache import RecentIds
from shared.kernel.envelopes import Encoded, ProviderEvent, Topic, encode_change
from shared.kernel.errors import HookhubError
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Database
from shared.kernel.produce import HandOver, Stream
from shared.providers.chat import Author, BotIdentity, ChatProvider, MessageChange
from shared.providers.connections import Connections

log = structlog.get_logger(__name__)

# Between attempts to write a batch's copies while MongoDB is away: about 30 s in all.
WRITE_RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
# Ids of the copies of new messages this process brought in lately (published and written),
# remembered: a message that both a catch-up's history read and a live event carry is
# brought in once, whichever comes first (a person's new message is otherwise not looked
# up in the map).
RECENT_COPIES = 20_000

# The outbox's names for the same operations, for the metrics' `op` label.
OPS = {"created": "post", "edited": "edit", "deleted": "delete"}
TYPES: dict[str, Any] = {
    "created": "message.received",
    "edited": "message.edited",
    "deleted": "message.deleted",
}


@dataclass(frozen=True)
class Item:
    event: ProviderEvent
    integration: IntegrationSnapshot
    provider: ChatProvider
    change: MessageChange
    mapping: MappingSnapshot

    def copy_id(self, external_message_id: str) -> str:
        return copy_id(
            self.provider.name,
            self.integration.id,
            self.change.external_channel_id,
            external_message_id,
        )

    @functools.cached_property
    def own_copy_id(self) -> str:
        """The map's id of this message's copy: asked for up to three times per item."""
        return self.copy_id(self.change.external_message_id)

    @property
    def account(self) -> str:
        return self.integration.account_id or self.integration.id


class Inbound:
    def __init__(
        self,
        *,
        connections: Connections,
        mappings: MappingDirectory,
        message_map: MessageMap,
        publisher: EventPublisher,
        db: Database,
        metrics: SyncMetrics,
        synced: LastSynced,
        usage: UsageCounters,
    ) -> None:
        self._connections = connections
        self._mappings = mappings
        self._map = message_map
        self._publisher = publisher
        self._db = db
        self._metrics = metrics
        self._synced = synced
        self._usage = usage
        # Copies being written (Inbound.publish), by id.
        self._writing: dict[str, Copy] = {}
        self._recent = RecentIds(RECENT_COPIES)
        # The pipelined consumer's publishes, in order (`handed_over`).
        self._hand_over = HandOver()

    async def events(self, events: list[ProviderEvent], replayed: bool = False) -> None:
        """`replayed`: the events may have been handled before (a Discord session resumed
        after its holder died): new messages the map already holds are skipped."""
        await (await self.publish(events, replayed))

    async def handed_over(self, events: list[ProviderEvent]) -> asyncio.Future[None]:
        """For the pipelined consumer: returns once the batch's envelopes are handed to the
        producer (shared.kernel.produce.HandOver), so the next batch is decided while Kafka
        acknowledges this one (a batch had waited a fifth of its time for that); what is
        returned completes once they are acknowledged and their copies written."""
        whole = await self._hand_over(
            lambda stream, handed: self.publish(events, stream=stream, handed=handed)
        )
        return asyncio.ensure_future(_both(whole))

    async def publish(
        self,
        events: list[ProviderEvent],
        replayed: bool = False,
        *,
        stream: Stream | None = None,
        handed: Callable[[], None] | None = None,
    ) -> asyncio.Future[None]:
        """The envelopes published; what is returned completes once the new copies are in
        the map too. Until then later batches see those copies from memory, so a caller
        may go on with its next batch meanwhile (the Discord Gateway does). `handed` and
        `stream`: as EventPublisher.publish_encoded's (the Gateway goes on with its next
        batch once this one is handed to the producer)."""
        items = [item for event in events for item in await self._items(event)]
        _, written = await self._process(items, replayed, stream=stream, handed=handed)
        return written

    async def recovered(
        self,
        integration: IntegrationSnapshot,
        mapping: MappingSnapshot,
        changes: list[MessageChange],
    ) -> int:
        """Messages read from a channel's history (catch-up), through the same pipeline as
        live events; those the map already holds are skipped. How many were new."""
        provider = self._connections.provider(integration)
        items = []
        for change in changes:
            if change.ignored:
                continue
            event = ProviderEvent(
                id=derived_id(
                    "catch_up", provider.name, integration.id, change.external_message_id
                ),
                provider=provider.name,
                integration_id=integration.id,
                workspace_id=integration.workspace_id,
                event_type="catch_up",
                delivery_id=change.external_message_id,
            )
            items.append(Item(event, integration, provider, change, mapping))
        done, written = await self._process(items, replayed=True)
        await written
        return sum(1 for item in done if item.change.kind == "created")

    async def _process(
        self,
        items: list[Item],
        replayed: bool,
        *,
        stream: Stream | None = None,
        handed: Callable[[], None] | None = None,
    ) -> tuple[list[Item], asyncio.Future[None]]:
        if not items:
            if handed is not None:
                handed()
            return [], _done()
        items = await self._rooted(items)
        # One read for the batch, of the copies it needs: edits and deletes (of what?),
        # replies (their root), and what a bot or app sent (our own post coming back?). A
        # person's new message in a channel is none of these: most batches read nothing.
        wanted = [
            item.own_copy_id
            for item in items
            if item.change.kind != "created" or _from_a_bot(item.change) or replayed
        ]
        wanted += [
            item.copy_id(item.change.external_thread_id)
            for item in items
            if item.change.external_thread_id
        ]
        known = await self._lookup(wanted)
        # Threads are flat: a reply to a reply is in the thread of the chain's first
        # message, which its parent's copy names (`external_thread_id`). Those roots are
        # read too, in one more read, only for a batch with a reply to a reply.
        roots = {
            item.copy_id(root)
            for item in items
            if (root := self._root(item, known)) and root != item.change.external_thread_id
        }
        known.update(await self._lookup(roots - known.keys()))
        envelopes: list[Encoded] = []
        done: list[Item] = []
        copies: list[Copy] = []
        try:
            for item in items:
                envelope = await self._decided(item, known, replayed)
                if envelope is None:
                    continue
                envelopes.append(envelope)
                done.append(item)
                if item.change.kind == "created":
                    copy = self._copy(item, envelope.id, self._root(item, known))
                    copies.append(copy)
                    known[copy.id] = copy  # an edit of it later in this batch finds it
                    # Claimed at once, with no await since the check: another batch
                    # carrying the same message (a catch-up's history read beside the
                    # socket's own catch-up) skips it, even while this one still looks up
                    # the authors of its later items (it brought Mattermost's message in
                    # twice, once each, when claimed only after the whole batch).
                    self._writing[copy.id] = copy
            # The copies are written once the envelopes are published, never before or
            # while: a copy in the map says its message is in the chat (a replay or a
            # catch-up skips it), so a failed publish, or a process killed before Kafka's
            # acknowledgement, must leave none there; killed after it, the replay publishes
            # the same envelope again, which the chat drops. Until written the copies are
            # known from memory.
            await self._publish(envelopes, stream, handed)
        except BaseException:
            for copy in copies:  # not in the chat: the batch comes again and brings them
                self._writing.pop(copy.id, None)
            raise
        written = asyncio.ensure_future(self._write(copies))
        now = utcnow()
        for item in done:
            self._metrics.messages.labels(item.provider.name, "inbound", "done").inc()
            seen = item.change.occurred_at if item.change.kind == "created" else None
            self._synced.saw(item.mapping.id, now, inbound=seen)
            if item.change.kind == "created":  # a message brought in (not an edit, a delete)
                self._usage.count(item.integration.workspace_id, "messages_synced")
        return done, written

    async def _decided(self, item: Item, known: dict[str, Copy], replayed: bool) -> Encoded | None:
        """The item's envelope, or None: ours coming back, unknown, or a new message in the
        chat already (before its author was looked up, or by another batch meanwhile)."""
        if item.change.kind == "created" and self._brought_in(item, known, replayed):
            self._metrics.messages.labels(item.provider.name, "inbound", "known").inc()
            return None
        # Its author and mentions may be looked up at the provider: in its event's trace.
        with tracing.calls_within(item.event.trace()):
            envelope = await self._envelope(item, known)
        if envelope is None:
            return None
        if item.change.kind == "created" and self._brought_in(item, known, replayed):
            # By another batch while this one looked up an author.
            self._metrics.messages.labels(item.provider.name, "inbound", "known").inc()
            return None
        return envelope

    async def _rooted(self, items: list[Item]) -> list[Item]:
        """New messages that name the thread they are in but not its first message (a
        Google Chat reply whose root its provider has not seen: after a restart, on another
        replica; `reply_by_key`) pointed at that first message, as the map keeps it by the
        thread's name. One read, only for a batch with such a reply: a message that starts
        a thread reads nothing (every Google Chat message names a thread; the read for each
        was 1% of the relay's rate, `make bench` sync-googlechat-inbound)."""

        def place(item: Item) -> tuple[str, str, str, str | None]:
            change = item.change
            return (
                item.provider.name,
                item.integration.id,
                change.external_channel_id,
                change.external_thread_key,
            )

        keyed = [
            item
            for item in items
            if item.change.kind == "created"
            and item.change.reply_by_key
            and item.change.external_thread_key
            and not item.change.external_thread_id
        ]
        if not keyed:
            return items
        roots = await self._map.thread_roots(
            item.change.external_thread_key or "" for item in keyed
        )
        asked = {id(item) for item in keyed}
        found = {
            (c.provider, c.integration_id, c.external_channel_id, c.external_thread_key): c
            for c in roots
        }
        pointed = []
        for item in items:
            root = found.get(place(item)) if id(item) in asked else None
            if root is not None and root.external_message_id != item.change.external_message_id:
                # In the root's thread: the reply's copy keeps no key (the root's does).
                change = dataclasses.replace(
                    item.change,
                    external_thread_id=root.external_message_id,
                    external_thread_key=None,
                    reply_by_key=False,
                )
                item = dataclasses.replace(item, change=change)
            pointed.append(item)
        return pointed

    async def _lookup(self, ids: Iterable[str]) -> dict[str, Copy]:
        """Copies by id: from the map, and those this process is writing."""
        wanted = list(ids)
        known = await self._map.by_ids(wanted)
        known.update({i: self._writing[i] for i in wanted if i in self._writing})
        return known

    def _brought_in(self, item: Item, known: dict[str, Copy], replayed: bool) -> bool:
        """Whether this new message is in the chat already: brought in by this process
        lately (a catch-up and a live event may carry the same message), or, for a replay,
        held by the map."""
        if item.own_copy_id in self._recent or item.own_copy_id in self._writing:
            return True
        held = known.get(item.own_copy_id) if replayed else None
        return held is not None and held.origin != "outbound"

    async def _write(self, copies: list[Copy]) -> None:
        """The copies into the map; a MongoDB outage is waited out for about half a minute
        (later batches go on meanwhile, from memory) before the batch fails and comes again."""
        try:
            for pause in (*WRITE_RETRY_PAUSES, None):
                try:
                    await self._map.insert(copies)
                    for copy in copies:
                        self._recent.add(copy.id)
                    return
                except PyMongoError as exc:
                    if pause is None:
                        raise
                    log.warning("message_map_write_retry", error=repr(exc), retry_in=pause)
                    await asyncio.sleep(pause)
        finally:
            for copy in copies:
                self._writing.pop(copy.id, None)

    async def _items(self, event: ProviderEvent) -> list[Item]:
        provider = self._connections.providers.get(event.provider)
        if provider is None:
            return []
        try:
            integration = await self._connections.integration(event.integration_id)
        except HookhubError:
            return []
        payload = event.payload
        if event.payload_ref:
            payload = orjson.loads(await claim_check.load(self._db, event.payload_ref))
        try:
            changes = provider.changes(event.event_type, payload)
        except Exception:  # a provider module must not stop the partition on one payload
            log.exception("provider_changes_failed", envelope_id=event.id)
            return []
        items = []
        for change in changes:
            mapped = [
                m
                for m in self._mappings.of_external(integration.id, change.external_channel_id)
                if m.inbound
            ]
            if mapped:  # a verified event: where to call its channel back, kept
                self._synced.addressed(mapped[0], change)
            outcome = "unmapped" if not mapped else "ignored" if change.ignored else None
            if outcome:
                self._metrics.messages.labels(provider.name, "inbound", outcome).inc()
                continue
            items.append(Item(event, integration, provider, change, mapped[0]))
        return items

    async def _envelope(self, item: Item, known: dict[str, Copy]) -> Encoded | None:
        change, provider, integration = item.change, item.provider, item.integration
        if await self._is_own(item):
            self._metrics.messages.labels(provider.name, "inbound", "echo").inc()
            return None
        existing = known.get(item.own_copy_id)
        if existing is not None and existing.origin == "outbound":
            self._metrics.messages.labels(provider.name, "inbound", "echo").inc()
            return None
        message_id = None
        if change.kind == "created":
            envelope_id = inbound_message_id(
                provider.name, item.account, change.external_channel_id, change.external_message_id
            )
        else:
            if existing is None:
                # An edit or delete of a message the chat never got from us: nothing to change.
                self._metrics.unknown.labels(provider.name, OPS[change.kind]).inc()
                self._metrics.messages.labels(provider.name, "inbound", "unknown").inc()
                return None
            envelope_id = derived_id(item.event.id, change.kind, change.external_message_id)
            message_id = existing.chat_id

        async def users(user_id: str) -> Author | None:
            return await self._connections.author(integration, user_id)

        author = change.author
        if author is None and change.sender.user_id:
            author = await users(change.sender.user_id)
        author = author or Author(name=change.sender.user_id or change.sender.bot_id or "unknown")
        return encode_change(
            change,
            author,
            id=envelope_id,
            type=TYPES[change.kind],
            workspace_id=integration.workspace_id,
            channel_id=item.mapping.channel_id,
            provider=provider.name,
            integration_id=integration.id,
            text=await provider.render(change.text, users) if change.kind != "deleted" else "",
            thread_id=self._thread(item, known),
            message_id=message_id,
            trace=item.event.trace(),
        )

    async def _is_own(self, item: Item) -> bool:
        try:
            identity: BotIdentity = await self._connections.identity(item.integration)
        except HookhubError as exc:
            # Without the bot's identity, the map alone recognises our posts.
            log.warning(
                "bot_identity_unknown", integration_id=item.integration.id, error=exc.message
            )
            return False
        return item.provider.is_own(item.change, identity)

    @staticmethod
    def _root(item: Item, known: dict[str, Copy]) -> str | None:
        """The provider id of the message that started the reply chain this message is in
        (None for a message that replies to nothing): threads are flat (SPEC §8), so a
        reply to a reply is in its parent's thread. The parent's copy names that thread's
        root; a parent the map does not hold (written before the mapping) is the root."""
        parent_id = item.change.external_thread_id
        if not parent_id or parent_id == item.change.external_message_id:
            return None
        parent = known.get(item.copy_id(parent_id))
        if parent is not None and parent.external_thread_id not in (None, parent_id):
            return parent.external_thread_id
        return parent_id

    def _thread(self, item: Item, known: dict[str, Copy]) -> str | None:
        """The chat's id of the thread's root (SPEC §8 "Threads"): its `message_id` if the
        chat named it, else the id of its `message.received` envelope."""
        root_id = self._root(item, known)
        if root_id is None:
            return None
        root = known.get(item.copy_id(root_id))
        if root is not None and root.chat_id:
            return root.chat_id
        return inbound_message_id(
            item.provider.name, item.account, item.change.external_channel_id, root_id
        )

    def _copy(self, item: Item, envelope_id: str, root: str | None) -> Copy:
        """The copy of a message brought in; `external_thread_id`: its chain's first
        message (a reply to this reply finds the root there)."""
        return Copy.new(
            workspace_id=item.integration.workspace_id,
            channel_id=item.mapping.channel_id,
            provider=item.provider.name,
            integration_id=item.integration.id,
            mapping_id=item.mapping.id,
            external_channel_id=item.change.external_channel_id,
            external_message_id=item.change.external_message_id,
            external_thread_id=root,
            origin="inbound",
            inbound_id=envelope_id,
            external_thread_key=item.change.external_thread_key,
        )

    async def _publish(
        self,
        envelopes: list[Encoded],
        stream: Stream | None = None,
        handed: Callable[[], None] | None = None,
    ) -> None:
        """Together and in order: the producer keeps each chat channel's (one partition)."""
        await self._publisher.publish_encoded(
            Topic.CHAT_INBOUND, envelopes, stream=stream, handed=handed
        )


def _from_a_bot(change: MessageChange) -> bool:
    sender = change.sender
    return bool(sender.is_bot or sender.bot_id or sender.app_id)


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def _both(whole: asyncio.Future[asyncio.Future[None]]) -> None:
    """A publish acknowledged, then the copies it returned the writing of."""
    await (await whole)
