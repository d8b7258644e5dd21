"""Chat events in: the map's links recorded, the jobs written (one bulk write per batch)
before the batch's offsets are committed, then handed to this process's lanes."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import structlog

from services.sync.mappings.service import MappingDirectory
from services.sync.metrics import SyncMetrics
from services.sync.outbound.jobs import BadChatEvent, Job, Message, plan
from services.sync.outbound.lanes import Lanes
from services.sync.outbound.repository import OutboxRepository
from shared.domain.message_map import NOTIFICATION, Copy, MessageMap
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import utcnow
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
        metrics: SyncMetrics,
        copy_wait_seconds: float = 5.0,
    ) -> None:
        self._copy_wait_seconds = copy_wait_seconds
        self._mappings = mappings
        self._map = message_map
        self._repository = repository
        self._ownership = ownership
        self._lanes = lanes
        self._metrics = metrics

    async def events(self, events: list[ChatEvent]) -> None:
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
            return
        sources = await self._sources(messages)
        # The chat named its id for messages it received from us: recorded before the jobs,
        # so that edits, deletes and replies that follow find the copy by the chat's id.
        await self._map.link(
            {m.inbound_id: m.message_id for m in messages if m.op == "post" and m.inbound_id}
        )
        docs = plan(messages, self._mappings.of_channel, sources, self._ownership, utcnow())
        if not docs:
            return
        await self._ownership.registered()
        try:
            created = await self._repository.insert_new(docs)
        except Exception:
            # MongoDB may have written them all the same: the scheduler looks (`take_back`).
            self._lanes.unanswered.update(doc["_id"] for doc in docs)
            raise
        # Made now (the failed write had not): handed over here, not to be taken back.
        self._lanes.unanswered.difference_update(doc["_id"] for doc in created)
        traces = {m.event_id: m.trace for m in messages if m.trace is not None}
        for doc in created:
            self._lanes.submit(Job.from_doc(doc, traces.get(doc["event_id"])))

    async def _sources(self, messages: list[Message]) -> dict[str, list[Copy]]:
        """The map's copies of messages that may have come from a provider: those the chat
        says it received (`inbound_id`), and those edited or deleted."""
        keys = {m.inbound_id for m in messages if m.inbound_id}
        keys |= {m.message_id for m in messages if m.op != "post"}
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
        by_key: dict[str, list[Copy]] = defaultdict(list)
        for copy in copies:
            for key in {copy.chat_message_id, copy.inbound_id} & keys:
                if key:
                    by_key[key].append(copy)
        return by_key
