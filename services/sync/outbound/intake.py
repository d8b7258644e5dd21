"""Chat events in: the map's links recorded, the progress mark raised, the jobs handed to
this process's lanes unwritten; the batch's offsets committed once each job has finished
or been written to the outbox (services.sync.outbound.unwritten)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

import structlog

from services.sync.clicks.intake import ChatIntake
from services.sync.mappings.service import MappingDirectory
from services.sync.metrics import SyncMetrics
from services.sync.outbound.jobs import BadChatEvent, Job, Message, plan
from services.sync.outbound.lanes import Lanes
from services.sync.outbound.repository import OutboxRepository
from services.sync.outbound.unwritten import SPILL_SECONDS, WAIT_SECONDS, Unwritten
from shared.domain.message_map import NOTIFICATION, Copy, MessageMap
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document
from shared.kernel.ownership import Ownership

log = structlog.get_logger(__name__)


class Intake:
    def __init__(
        self,
        *,
        mappings: MappingDirectory,
        message_map: MessageMap,
        repository: OutboxRepository,
        ownership: Ownership,
        lanes: Lanes,
        unwritten: Unwritten,
        metrics: SyncMetrics,
        topic: str,
        asked: ChatIntake | None = None,
        posts_once: Callable[[str], bool] = lambda provider: False,
        finds_own_posts: Callable[[str], bool] = lambda provider: False,
        copy_wait_seconds: float = 5.0,
        spill_seconds: float = SPILL_SECONDS,
    ) -> None:
        self._copy_wait_seconds = copy_wait_seconds
        self._spill_seconds = spill_seconds
        self._topic = topic
        self._unwritten = unwritten
        self._mappings = mappings
        self._map = message_map
        self._repository = repository
        self._ownership = ownership
        self._lanes = lanes
        self._metrics = metrics
        self._asked = asked
        self._posts_once = posts_once
        self._finds_own_posts = finds_own_posts
        # Per partition of this process's (`{topic}:{partition}`): up to which offset its
        # events are perhaps posted (its progress mark when this process first acted on it).
        self._horizon: dict[str, int] = {}
        # The mappings whose first post among those events was marked `recovered`.
        self._looked_for: set[str] = set()

    def assigned(self) -> None:
        """Partitions (re)assigned: their progress marks are read again before they are
        acted on (another process may have raised them meanwhile)."""
        self._horizon.clear()
        self._looked_for.clear()

    async def revoked(self) -> None:
        """Partitions going to another process: every job held unwritten is written to the
        outbox (held by this process, which runs it) before they go, so that the next owner,
        reading their events again, finds the jobs there and leaves them; and every click
        handed over unwritten, to its queue."""
        await self._unwritten.spill_all()
        if self._asked is not None:
            await self._asked.revoked()

    def stopping(self) -> None:
        """The stop drains the consumer: what is held is written, for the release to hand on."""
        self._unwritten.spill("handover")

    async def events(self, events: list[ChatEvent]) -> Awaitable[object]:
        """The batch's jobs handed to the lanes; returns what the batch's offsets wait for
        (shared.kernel.consumers.consume_pipelined): its jobs finished or written."""
        # Clicks on cards and slash commands (SPEC §20), taken before the batch's jobs: its
        # offsets wait for them to be written too. As for posts, the partitions' marks are
        # raised over them before they are acted on, so that after a crash those read again
        # are known (and looked for in MongoDB before they are acted on again).
        asked = None
        if self._asked is not None and (asks := self._asked.asks(events)):
            await self._ownership.registered()
            positioned = [(event.id, event.position()) for event in asks]
            replayed = await self._replayed(positioned)
            await self._raise(positioned)
            asked = await self._asked.accept(asks, replayed)
        return _also(await self._jobs(events), asked)

    async def _jobs(self, events: list[ChatEvent]) -> Awaitable[object]:
        messages: list[Message] = []
        for event in events:
            try:
                message = Message.of(event)
            except BadChatEvent as exc:
                log.warning("chat_event_unusable", envelope_id=event.id, error=str(exc))
                self._metrics.messages.labels("-", "outbound", "invalid").inc()
                continue
            if message is not None and self._mappings.of_channel(
                message.workspace_id, message.channel_id
            ):
                messages.append(message)
        if not messages:
            return _nothing()
        await self._ownership.registered()
        # Read again, perhaps handed to an earlier holder's lanes: up to a partition's mark
        # as this process found it (read before this batch raises it).
        positioned = [(m.event_id, m.position) for m in messages]
        replayed = await self._replayed(positioned)
        # The copies the map holds, beside the mark's raise (before any job runs).
        sources, _ = await asyncio.gather(self._sources(messages), self._raise(positioned))
        # The chat named its id for messages it received from us: recorded before the jobs,
        # so that edits, deletes and replies that follow find the copy by the chat's id.
        await self._map.link(
            {m.inbound_id: m.message_id for m in messages if m.op == "post" and m.inbound_id}
        )
        docs = plan(messages, self._mappings.of_channel, sources, self._ownership, utcnow())
        if replayed:
            # A job the outbox holds is its holder's (this process's lanes, or the
            # scheduler's once its holder is gone): a replayed event leaves it.
            again = [doc["_id"] for doc in docs if doc["event_id"] in replayed]
            written = await self._repository.existing(again)
            docs = [doc for doc in docs if doc["_id"] not in written]
            self._recovered_posts(docs, replayed, {m.event_id: m.occurred_at for m in messages})
        if not docs:
            return _nothing()
        traces = {m.event_id: m.trace for m in messages if m.trace is not None}
        waits: dict[asyncio.Future[None], str] = {}
        for doc in docs:
            job = Job.from_doc(doc, traces.get(doc["event_id"]))
            settled = self._unwritten.settled(job.id)
            if settled is None:
                # Held before the lane takes it (it runs after this loop, at an await).
                settled = self._unwritten.hold(doc)
                paced = self._lanes.wait(job) > WAIT_SECONDS
                if self._lanes.submit(job):
                    if paced:  # its channel's pace holds it: no batch waits for it
                        self._unwritten.spill("paced", [job.id])
                elif self._lanes.stopping:  # written now, for the stop's release to hand on
                    self._unwritten.spill("handover", [job.id])
                else:  # a lane has it, so the outbox does (spilled, or claimed from there)
                    self._unwritten.forget(job.id)
            waits[settled] = job.id
        return self._settled(waits)

    async def _replayed(self, events: list[Positioned]) -> set[str]:
        """The events (`(id, position)` each) at or below their partition's mark as this
        process found it when it began to act on the partition (read then, once)."""
        keys = {self._key(position) for _, position in events if position is not None}
        unknown = [key for key in keys if key not in self._horizon]
        if unknown:
            marks = await self._repository.marks(unknown)
            self._horizon.update({key: marks.get(key, -1) for key in unknown})
        return {
            event_id
            for event_id, position in events
            if position is not None and position[1] <= self._horizon[self._key(position)]
        }

    async def _raise(self, events: list[Positioned]) -> None:
        """The batch's partitions' progress marks raised to its last offsets."""
        offsets: dict[str, int] = {}
        for _, position in events:
            if position is not None:
                key = self._key(position)
                offsets[key] = max(offsets.get(key, -1), position[1])
        if offsets:
            await self._repository.mark(offsets, self._ownership.id, utcnow())

    def _recovered_posts(
        self, docs: list[Document], replayed: set[str], occurred: Mapping[str, datetime | None]
    ) -> None:
        """Of each mapping's posts among events read again, only the first the map does not
        hold can have been made (services.sync.outbound.unwritten; those it holds are not
        here): marked `recovered`, looked for before it is made; on a network where a post
        made again is the same message (`posts_once`), none; on one whose lanes do not wait
        because our posts are found again (`finds_own_posts`), each of them. An edit or a
        delete that was in flight is simply made again.

        A recovered post is looked for from its event's time on (`queued_at`, the search's
        start less a slack, Sender._already_posted), not from now: the events come again
        after the partition's rebalance, and a lane that does not wait may have posted
        while MongoDB was away, both longer ago than the slack."""
        for doc in docs:
            if doc["op"] != "post" or doc["event_id"] not in replayed:
                continue
            if self._posts_once(doc["provider"]):
                continue  # made again, it is the same message
            if self._finds_own_posts(doc["provider"]):
                doc["recovered"] = True  # any of them may have been made unrecorded
            elif doc["mapping_id"] not in self._looked_for:
                self._looked_for.add(doc["mapping_id"])
                doc["recovered"] = True
            at = occurred.get(doc["event_id"])
            if doc.get("recovered") and at is not None and at < doc["queued_at"]:
                doc["queued_at"] = at

    def _key(self, position: tuple[int, int]) -> str:
        return f"{self._topic}:{position[0]}"

    async def _settled(self, waits: dict[asyncio.Future[None], str]) -> None:
        """Once the jobs are finished or written: those still running after
        `spill_seconds` are written to the outbox, then the writer's flush is waited for
        (the copies the finished made, the spilled jobs)."""
        if waits:
            _, late = await asyncio.wait(waits, timeout=self._spill_seconds)
            if late:
                spilled = self._unwritten.spill("slow", (waits[future] for future in late))
                if spilled:
                    log.info("sync_jobs_spilled", count=spilled)
        await self._unwritten.written()

    async def _sources(self, messages: list[Message]) -> dict[str, list[Copy]]:
        """The map's copies of the messages: those of messages that may have come from a
        provider (the chat says it received them, `inbound_id`; or they are edited or
        deleted), and those hookhub already posted (a post published again)."""
        keys = {m.inbound_id for m in messages if m.inbound_id}
        keys |= {m.message_id for m in messages}
        copies = await self._map.of_messages(keys)
        # The inbound side writes a copy while it publishes the envelope (Inbound.events),
        # so the chat's answer can come back first: a copy it names is waited for, briefly.
        # Notifications (`ntf_…`) are not waited for: a thread's root is in the map before
        # it is published, and the other notifications have no copy.
        told = {
            m.inbound_id
            for m in messages
            if m.op == "post" and m.inbound_id and not m.inbound_id.startswith(NOTIFICATION)
        }
        missing = told - {copy.inbound_id for copy in copies}
        deadline, pause = time.monotonic() + self._copy_wait_seconds, 0.005
        while missing and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
            found = await self._map.of_messages(missing)
            copies += found
            missing -= {copy.inbound_id for copy in found}
        if missing:
            # Not ours (another bridge's id?) or its inbound batch failed after publishing
            # (it comes back, but after this): bridged to every mapping of the channel.
            log.warning("inbound_copy_not_found", inbound_ids=sorted(missing)[:10])
            self._metrics.unknown.labels("-", "post").inc(len(missing))
        # A notification root's card actions are its item's (the networks' buttons).
        copies = await self._map.with_offers(copies)
        by_key: dict[str, list[Copy]] = defaultdict(list)
        for copy in copies:
            for key in {copy.chat_message_id, copy.inbound_id} & keys:
                if key:
                    by_key[key].append(copy)
        return by_key


async def _nothing() -> None:
    """A batch with nothing to wait for."""


# An event's id and its place in its topic (partition, offset), if known.
Positioned = tuple[str, tuple[int, int] | None]


async def _also(first: Awaitable[object], then: Awaitable[object] | None) -> None:
    """Both waited for (the batch's jobs, and its asks if it has any)."""
    await first
    if then is not None:
        await then
