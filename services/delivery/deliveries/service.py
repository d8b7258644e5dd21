"""Fan-out and scheduling: an event becomes one delivery per matching endpoint, durably.

Delivery ids derive from (event, endpoint). A consumed batch's deliveries go to the lanes
unrecorded (not in MongoDB: the batch's uncommitted offsets owe them) and are written once,
with their first outcome (`Dispatcher.owe`); the batch's offsets are committed once every
one is recorded. A replayed batch finds those already written (one read) and makes only
the others again; what was sent but not recorded when the process died is sent again, with
the same `webhook-id`. Deliveries written before they are sent (beyond the room, a slow
endpoint past `hold_seconds`, a test send) are held by the process that wrote them
(`lease_owner`), which keeps everything it holds with one heartbeat, or by nobody. The
scheduler hands due deliveries (retries, and anything a dead process held) to the
dispatcher, taking each with a conditional update so two processes never send the same one
at once.

A process holds at most `Dispatcher.max_held` deliveries in memory (their bodies in the
lanes' queues). Fan-out waits for room before each piece it writes (`room_wait` a batch), so
a Kafka backlog after an outage stays in Kafka; what it makes beyond the room after that,
or beyond a slow endpoint's share, is written held by nobody and due now, and the scheduler
claims only as much as there is room for, to whichever process has room first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.delivery.deliveries.dispatcher import Dispatcher
from services.delivery.deliveries.fifo import key_of
from services.delivery.deliveries.job import Job
from services.delivery.deliveries.ordering import Ordering
from services.delivery.deliveries.repository import QUEUED, DeliveryRepository, schedule
from services.delivery.outgoing_webhooks.matching import about_itself, matches
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.cache import RefreshingCache
from shared.kernel.envelopes import ChatEvent, Envelope
from shared.kernel.ids import derived_id, derived_timed_id, isoformat, utcnow
from shared.kernel.mongo import Document
from shared.kernel.ownership import Ownership
from shared.kernel.signing import webhook_body

log = structlog.get_logger(__name__)

CLAIM_LIMIT = 1000  # the most one poll claims, however much room there is
# Deliveries built and written at a time (half the room at most), fewer when their bodies
# (a copy each in the write) add up to more than FANOUT_PIECE_BYTES. Fan-out waits for room
# for FANOUT_STEP at least: not a write for every delivery a lane lets go of.
FANOUT_PIECE = 500
FANOUT_PIECE_BYTES = 8 << 20
FANOUT_STEP = 50
UPKEEP_SECONDS = 10.0


def delivery_doc(
    *,
    endpoint: EndpointSnapshot,
    event_id: str,
    event_type: str,
    occurred_at: datetime,
    body: bytes,
    now: datetime,
    owner: str | None,
    manual: bool = False,
    replayed: bool = False,
    order: tuple[str, int] | None = None,
    trace: Mapping[str, str] | None = None,
) -> Document:
    """A delivery's document; given `order` (its key and sequence), a FIFO endpoint's, in
    its key's queue once written (deliveries/fifo.py); given `trace` (`tracing.kept`), its
    event's trace, which each of its attempts goes on in."""
    ordered: Document = {}
    if order is not None:
        ordered = {"ordering_key": order[0], "sequence": order[1]}
        owner = QUEUED
    return {
        # The same for a replayed event (so it is not sent twice), and listed newest first.
        "_id": derived_timed_id("dlv", occurred_at, event_id, endpoint.id),
        # Standard Webhooks' webhook-id: one per event, the same on every retry and endpoint.
        "msg_id": derived_id(event_id, prefix="msg"),
        "endpoint_id": endpoint.id,
        "workspace_id": endpoint.workspace_id,
        "event_id": event_id,
        "event_type": event_type,
        # When the event happened: what the list is ordered by (the `_id`'s time).
        "occurred_at": occurred_at,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "tries": 0,
        "manual": manual,
        # Made by a replay of what the endpoint missed (deliveries/replay.py).
        **({"replayed": True} if replayed else {}),
        # Held by the process that wrote it until it is sent; if that process dies, the
        # scheduler of another one takes over once the heartbeat is stale. Held by nobody
        # (`owner` None) when the writer had no room: any process's scheduler takes it.
        **schedule(next_attempt_at=now, owner=owner),
        "created_at": now,
        "updated_at": now,
        **ordered,
        **(trace or {}),
    }


@dataclass(frozen=True)
class Event:
    """What fan-out needs of a chat or provider event."""

    id: str
    workspace_id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any] | Any
    replayed: bool = False  # read back from Kafka for one endpoint (deliveries/replay.py)
    ordering_key: str | None = None
    # Its place in its key's order: its Kafka offset (one key's events are in one
    # partition); else the time fan-out saw it.
    sequence: int | None = None
    # Its trace (`tracing.kept`: traceparent, tracestate), kept on its deliveries.
    trace: Mapping[str, str] | None = None

    @classmethod
    def of(
        cls,
        event: ChatEvent,
        sequence: int | None,
        *,
        replayed: bool = False,
        trace: Mapping[str, str] | None = None,
    ) -> Event:
        """A chat event's, at `sequence` in its key's order (its Kafka offset), in the trace
        it was consumed in unless `trace` says another."""
        return cls(
            event.id,
            event.workspace_id,
            event.type,
            event.occurred_at,
            event.data,
            replayed=replayed,
            ordering_key=event.ordering_key,
            sequence=sequence,
            trace=trace if trace is not None else traced(event),
        )


def traced(envelope: Envelope) -> dict[str, str] | None:
    """The trace an envelope was consumed in, to keep on its deliveries; None outside any."""
    return tracing.kept(envelope.trace()) or None


@dataclass
class Fanned:
    """What fan-out made of a batch: how many deliveries were new, and the unrecorded ones'
    records, which its offsets wait for (`FanOut.recorded`)."""

    made: int = 0
    owed: list[asyncio.Future[None]] = field(default_factory=list)


class FanOut:
    def __init__(
        self,
        endpoints: RefreshingCache[str, EndpointSnapshot],
        repository: DeliveryRepository,
        dispatcher: Dispatcher,
        ownership: Ownership,
        usage: UsageCounters,
        *,
        registry: CollectorRegistry,
        room_wait: float = 0.0,
        ordering: Ordering | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._ordering = ordering
        self._stamp = 0  # the last sequence given an event read from no partition
        self.room_wait = room_wait
        self._repository = repository
        self._dispatcher = dispatcher
        self._ownership = ownership
        self._usage = usage
        self.unheld = Counter(
            "hookhub_delivery_written_unheld",
            "Deliveries fan-out wrote for any process to take, this one holding its most",
            registry=registry,
        )

    async def event(
        self,
        *,
        event_id: str,
        workspace_id: str,
        event_type: str,
        occurred_at: datetime,
        data: Mapping[str, Any] | Any,
        only: EndpointSnapshot | None = None,
    ) -> list[Document]:
        """The deliveries one event made (those a replay had made already are not among
        them), in the current trace (the request's that asked)."""
        created: list[Document] = []
        trace = tracing.kept(tracing.current()) or None
        event = Event(event_id, workspace_id, event_type, occurred_at, data, trace=trace)
        docs = self._built([event], only, ordered=False)  # sent at once, outside any order
        while piece := self._piece(docs, self._most)[0]:  # asked for: no waiting
            created += await self._write(piece)
        return created

    async def events(
        self,
        events: list[Event],
        fanned: Fanned | None = None,
        *,
        only: EndpointSnapshot | None = None,
    ) -> Fanned:
        """Every delivery of every event in the batch not made already, handed over a piece
        at a time: to the lanes unrecorded, or beyond this process's room written pending
        for any process. Before each piece, fan-out waits until this process has room to
        hold at least `FANOUT_STEP` more (for up to `room_wait` seconds in all), and the
        piece is as large as the room then: a backlog is taken at the pace the lanes send
        it, the rest of it left in Kafka meanwhile, not in MongoDB for the scheduler to
        claim. The batch's offsets wait for `recorded(fanned)`. With `only`, the events are
        that endpoint's alone (a replay's)."""
        fanned = fanned if fanned is not None else Fanned()
        deadline = time.monotonic() + self.room_wait
        step = min(self._most, FANOUT_STEP)
        built = self._built(events, only)
        passed: set[str] = set()  # see `_unwritten`
        # MongoDB is asked which are written once for the most a piece can be (one read per
        # consumed batch, nearly always), not once for each piece the room cuts.
        while chunk := self._piece(built, FANOUT_PIECE)[0]:
            docs = iter(await self._unwritten(chunk, passed))
            # One delivery built before waiting: a batch that makes none waits for nothing.
            # It also waits for its endpoint's share of the room, unless that endpoint's
            # lane is behind (a slow endpoint: the rest of its deliveries are written for
            # any process), and for a FIFO key that moves more slowly than it is fed
            # (`Runs.waits`).
            following = next(docs, None)
            while following is not None:
                endpoint_id, key = following["endpoint_id"], following.get("ordering_key")
                await self._dispatcher.room(step, deadline, endpoint_id, key)
                most = max(step, min(self._most, self._dispatcher.free))
                piece, following = self._piece(chain([following], docs), most, deadline)
                if following is None:
                    following = next(docs, None)
                await self._hand_over(piece, fanned, passed)
        return fanned

    async def _unwritten(self, docs: list[Document], passed: set[str]) -> list[Document]:
        """Those of `docs` MongoDB does not have (a replayed batch's deliveries it has): one
        read of the `_id` index. Those this process has meanwhile (held, or recorded and on
        their way to MongoDB) are added to `passed`, noted before the read: by the time
        their piece is handed over they may be written and gone, which the read did not
        see (`_hand_over`)."""
        ids = [doc["_id"] for doc in docs]
        passed.update(delivery_id for delivery_id in ids if self._dispatcher.has(delivery_id))
        written = await self._repository.existing(ids)
        return [doc for doc in docs if doc["_id"] not in written]

    async def recorded(self, fanned: Fanned) -> None:
        """Until every delivery `fanned` made is in MongoDB (see `Dispatcher.owe`)."""
        await self._dispatcher.recorded(fanned.owed)

    @property
    def _most(self) -> int:
        """The most deliveries in a piece: `FANOUT_PIECE`, or half the room."""
        return min(FANOUT_PIECE, max(1, self._dispatcher.max_held // 2))

    def _built(
        self, events: list[Event], only: EndpointSnapshot | None = None, *, ordered: bool = True
    ) -> Iterator[Document]:
        """The batch's deliveries, built as they are written: a backlog after an outage (500
        events to 50 endpoints, say) is not held in memory whole, whose peak a Python
        process keeps for good (its allocator does not give fragmented memory back)."""
        for event in events:
            targets = [only] if only is not None else self._targets(event)
            if not targets:
                continue
            body = webhook_body(event.type, isoformat(event.occurred_at), event.data)
            now = utcnow()
            for endpoint in targets:
                yield delivery_doc(
                    endpoint=endpoint,
                    event_id=event.id,
                    event_type=event.type,
                    occurred_at=event.occurred_at,
                    body=body,
                    now=now,
                    owner=self._ownership.id,
                    replayed=event.replayed,
                    order=self._order(event) if ordered and endpoint.fifo else None,
                    trace=event.trace,
                )

    def _order(self, event: Event) -> tuple[str, int]:
        """A FIFO endpoint's delivery's key and sequence."""
        sequence = event.sequence
        if sequence is None:
            sequence = self._stamp = max(self._stamp + 1, time.time_ns())
        return key_of(event.ordering_key, event.data), sequence

    def _piece(
        self, docs: Iterator[Document], most: int, deadline: float | None = None
    ) -> tuple[list[Document], Document | None]:
        """The next `most` of `docs`, fewer once their bodies (a copy each in the write) add
        up to `FANOUT_PIECE_BYTES`; given the room wait's `deadline`, fewer also before
        one whose endpoint's share is taken while its lane is moving, or whose FIFO key
        moves more slowly than it is fed (that one returned second, for the next piece,
        which waits for the lane or the key)."""
        piece: list[Document] = []
        taken: Tally[str] = Tally()
        size = 0
        for doc in docs:
            endpoint_id = doc["endpoint_id"]
            if (
                piece
                and deadline is not None
                and time.monotonic() < deadline
                and (
                    self._dispatcher.lane_waits(endpoint_id, taken[endpoint_id])
                    or self._dispatcher.key_waits(endpoint_id, doc.get("ordering_key"))
                )
            ):
                return piece, doc
            taken[endpoint_id] += 1
            piece.append(doc)
            size += len(doc["body"])
            if len(piece) >= most or size >= FANOUT_PIECE_BYTES:
                break
        return piece, None

    async def _hand_over(self, docs: list[Document], fanned: Fanned, passed: set[str]) -> None:
        """`docs` (not written when read, see `_unwritten`) to the lanes unrecorded, as many
        as this process has room for; the rest written pending. Those of `passed` that it
        no longer has are left: had when they were read, they are written by now; handed
        over by an earlier piece (an event twice in the batch), they are owed already."""
        await self._ownership.registered()  # its id is the owner of those written held
        has = self._dispatcher.has
        docs = [doc for doc in docs if doc["_id"] not in passed or has(doc["_id"])]
        passed.update(doc["_id"] for doc in docs)
        ordered = [doc for doc in docs if "ordering_key" in doc]
        if ordered and self._ordering is not None:
            docs = [doc for doc in docs if "ordering_key" not in doc]
            fanned.made += sum(1 for doc in ordered if not self._dispatcher.has(doc["_id"]))
            await self._ordering.hand_over(ordered, fanned.owed)
        with self._dispatcher.room_for(len(docs)) as room:
            held, unheld = self._shared(docs, room)
            created = await self._repository.insert_new(unheld) if unheld else []
            for doc in created:
                self._usage.made(doc["workspace_id"], "deliveries")
            self.unheld.inc(len(created))
            # Those here already (an event that came twice, its delivery sent a moment ago
            # and not yet in MongoDB) are owed, not made again.
            made = sum(1 for doc in held if not self._dispatcher.has(doc["_id"]))
            fanned.owed += [self._dispatcher.owe(doc) for doc in held]
            fanned.made += len(created) + made

    def _shared(self, docs: list[Document], room: int) -> tuple[list[Document], list[Document]]:
        """`docs` split into those this process holds (`room` at most) and those it writes
        held by nobody and due now, for the scheduler of whichever process has room: beyond
        its room (its lanes slower than the backlog comes for `room_wait`), or beyond an
        endpoint's share of the room (see `Dispatcher`)."""
        now = utcnow()
        taken: Tally[str] = Tally()
        held: list[Document] = []
        unheld: list[Document] = []
        for doc in docs:
            endpoint_id = doc["endpoint_id"]
            if len(held) < room and taken[endpoint_id] < self._dispatcher.lane_room(endpoint_id):
                taken[endpoint_id] += 1
                held.append(doc)
            else:
                doc.update(schedule(next_attempt_at=now))
                unheld.append(doc)
        return held, unheld

    async def _write(self, docs: list[Document]) -> list[Document]:
        """One bulk write, before any is sent; those this process has room for held by it
        and handed to its lanes."""
        await self._ownership.registered()
        with self._dispatcher.room_for(len(docs)) as room:
            self._shared(docs, room)
            # Those a replayed event had made already are not among them: counted once.
            try:
                created = await self._repository.insert_new(docs)
            except Exception:
                mine = self._ownership.id
                self._dispatcher.unanswered.update(
                    doc["_id"] for doc in docs if doc["lease_owner"] == mine
                )
                raise
            # Made by this write after all (MongoDB had not written them): handed to the
            # lanes below, so not for the scheduler to take back.
            self._dispatcher.unanswered.difference_update(doc["_id"] for doc in created)
            for doc in created:
                self._usage.made(doc["workspace_id"], "deliveries")
                if doc["lease_owner"] is None:
                    self.unheld.inc()
                else:
                    self._dispatcher.submit(Job.from_doc(doc))
        return created

    def _targets(self, event: Event) -> list[EndpointSnapshot]:
        return [
            e
            for e in self._endpoints.values()
            if e.workspace_id == event.workspace_id
            and e.enabled
            and matches(e.events, event.type)
            and not about_itself(e.id, event.type, event.data)
        ]


class Scheduler:
    def __init__(
        self,
        repository: DeliveryRepository,
        dispatcher: Dispatcher,
        ownership: Ownership,
        *,
        poll_seconds: float,
        registry: CollectorRegistry,
        ordering: Ordering | None = None,
    ) -> None:
        self._repository = repository
        self._ordering = ordering
        self._dispatcher = dispatcher
        self._ownership = ownership
        self._poll = poll_seconds
        self.scheduled = Gauge(
            "hookhub_delivery_scheduled",
            "Deliveries waiting for a later attempt (retries), held by no process",
            registry=registry,
        )

    async def run(self) -> None:
        # By the clock, not by polls: while a backlog comes in, polls follow each other
        # sooner than the interval.
        upkeep = 0.0  # when the retries are next counted and dead workers forgotten
        while True:
            filled = False
            try:
                filled = await self.poll()
                if self._ordering is not None and self._ordering.wanted():
                    await self._ordering.sweep(await self._ownership.dead(utcnow()))
                if time.monotonic() >= upkeep:
                    upkeep = time.monotonic() + UPKEEP_SECONDS
                    self.scheduled.set(await self._repository.count_scheduled(utcnow()))
                    await self.take_back()
                    await self._ownership.forget_dead(utcnow())
            except Exception as exc:
                log.warning("scheduler_poll_failed", error=repr(exc))
            await self._pause(filled)

    async def poll(self) -> bool:
        """Claim what is due, as much as this process has room for (nothing when it is
        full). True when the claim took all it asked for: more may be waiting."""
        # Half the free room at most: fan-out, which hands what it writes to the lanes at
        # once, keeps the other half while the claim is out (seconds, after an outage).
        half = (self._dispatcher.free + 1) // 2
        with self._dispatcher.room_for(min(CLAIM_LIMIT, half)) as room:
            if not room:
                return False
            now = utcnow()
            dead = await self._ownership.dead(now)
            claimed = await self._repository.claim(
                self._ownership.id,
                now,
                dead,
                limit=room,
                full=self._dispatcher.full_lanes(),
                room_of=self._dispatcher.claim_room,
            )
            if claimed and dead:
                log.info("deliveries_claimed", count=len(claimed), dead_workers=len(dead))
            for doc in claimed:
                job = Job.from_doc(doc)
                # A FIFO delivery claimed is a manual retry or a recover: never in its key's
                # queue (QUEUED, which claims leave alone), so sent outside its order.
                job.ordering_key = None
                self._dispatcher.submit(job)
        return len(claimed) == room

    async def take_back(self) -> int:
        """Hand to the lanes the deliveries a failed fan-out write made all the same, held by
        this process and so by nobody else, never sent (a replay of the batch finds them
        written and leaves them); how many."""
        unanswered = list(self._dispatcher.unanswered)
        if not unanswered:
            return 0
        found = await self._repository.held_by(self._ownership.id, unanswered)
        self._dispatcher.unanswered.difference_update(unanswered)
        for doc in found:
            self._dispatcher.submit(Job.from_doc(doc))
        if found:
            log.warning("deliveries_taken_back", count=len(found))
        return len(found)

    async def _pause(self, filled: bool) -> None:
        """The poll interval; after a claim that took all it asked for, only until the lanes
        have sent all they hold, if that is sooner: a backlog's next piece is not left
        waiting."""
        if not filled:
            await asyncio.sleep(self._poll)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._dispatcher.drained(), self._poll)
