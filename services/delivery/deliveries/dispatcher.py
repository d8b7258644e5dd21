"""Sends deliveries: one lane per endpoint, so a slow or dead endpoint only ever delays itself.

Each lane has `max_concurrency` workers and an optional rate limit, and the process has at
most `max_in_flight` attempts out over all its lanes. Every attempt is signed, sent through
the egress-guarded client, logged (batched), and decided: completed, retried later (the
scheduler picks it up when due), dead-lettered, or the endpoint disabled. A delivery keeps
its room in the process until its outcome is in MongoDB.

A delivery fan-out makes from a consumed batch comes here *unrecorded*: not in MongoDB yet,
owed by the batch's uncommitted Kafka offsets. Its first outcome is inserted with the whole
delivery (one write, not an insert and an update), and the batch waits for that
(`recorded`). One not ended within `hold_seconds` (a slow endpoint, a long queue) is written
pending, held by this process, and counts as recorded: a slow endpoint never holds a
partition's commit; its outcome is then an update, as for any delivery that exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter as CounterOf
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from opentelemetry.trace import Span
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.delivery.deliveries.circuit import DEFAULT_TUNING, Breaker, Circuit, State, Tuning
from services.delivery.deliveries.fifo import Runs
from services.delivery.deliveries.job import Age, Job
from services.delivery.deliveries.policy import Verdict, decide
from services.delivery.deliveries.repository import (
    ATTEMPTS,
    DELIVERIES,
    FIRST_ATTEMPT,
    QUEUED,
    schedule,
)
from services.delivery.deliveries.timeline import AttemptMinutes
from services.delivery.destinations.base import SIGNING_HEADERS, Answer, Destination, Message
from services.delivery.destinations.catalog import DestinationSpec
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from services.delivery.transformations.service import (
    TRANSFORMATION_ERROR,
    Cancelled,
    Outgoing,
    TransformationFailure,
    Transformer,
)
from shared.domain.usage import UsageCounters
from shared.kernel import tracing
from shared.kernel.cache import RefreshingCache
from shared.kernel.consumers import REVOKE_WAIT_SECONDS
from shared.kernel.egress import GuardedClient, describe_failure, header_fields, read_prefix
from shared.kernel.envelopes import Envelope
from shared.kernel.ids import isoformat, utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.logging import info_line
from shared.kernel.mongo import BatchedWriter, Document
from shared.kernel.shutdown import WORK_SHARE
from shared.kernel.signing import delivery_headers
from shared.kernel.version import __version__

log = structlog.get_logger(__name__)

RESPONSE_BODY_LIMIT = 16 * 1024
DEAD_LETTER_TOPIC = "hookhub.delivery.dead-letters"
USER_AGENT = f"hookhub/{__version__}"
# In an attempt's log, the value of a header the endpoint was given (as_sent).
HIDDEN_HEADER = "(the endpoint's header: its value is not shown)"
RECHECK_LATER = timedelta(minutes=5)  # the endpoint is disabled or unknown here
AFTER_A_CRASH = timedelta(seconds=30)  # an attempt raised something unexpected
LANE_SHARE = 0.25  # of a process's room and attempts in flight, the most one endpoint takes
# A destination's `messaging.system` (OpenTelemetry's well-known values where there is one;
# else its type).
MESSAGING_SYSTEMS = {
    "sqs": "aws_sqs",
    "pubsub": "gcp_pubsub",
    "rabbitmq": "rabbitmq",
    "kafka": "kafka",
}


class CutOff(Exception):
    """An unrecorded delivery the stop let go of: its batch's offsets are not committed, so
    the partition's next owner fans the batch out again."""


class DeadLetter(Envelope):
    """On `hookhub.delivery.dead-letters`: a delivery that used up its schedule."""

    delivery_id: str
    endpoint_id: str
    workspace_id: str
    event_id: str
    event_type: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None
    failed_at: datetime

    def partition_key(self) -> bytes:
        return self.endpoint_id.encode()


@dataclass(frozen=True, slots=True)
class Attempted:
    """An attempt's outcome, for `on_attempted` (services/delivery/operational/watch.py)."""

    endpoint: EndpointSnapshot
    job: Job
    number: int  # of the delivery's attempts
    verdict: Verdict
    status_code: int | None
    error: str | None
    # The outcome is the endpoint's: False when its transformation failed and nothing was sent.
    reached: bool = True


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = max(rate, 1.0)
        self._last = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(max(self.rate, 1.0), self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self.rate)


class Lane:
    """One endpoint's queue, workers and connection pool, or its destination's client.

    The pool is the lane's own, as large as its concurrency: endpoints that hang cannot
    take the connections of one that answers, and finding a free connection looks at this
    endpoint's few, not at every endpoint's. A destination's client (SPEC §21) is made
    once for the lane and closed with it: a changed destination gets a new lane.
    """

    def __init__(
        self,
        endpoint_id: str,
        concurrency: int,
        rate: float | None,
        client: GuardedClient,
        destination: Destination | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.endpoint_id = endpoint_id
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.concurrency = concurrency
        self.bucket = TokenBucket(rate) if rate else None
        self.client = client
        self.destination = destination
        self.fingerprint = fingerprint  # of the destination its client was made for
        self.workers: list[asyncio.Task[None]] = []

    async def close(self) -> None:
        await self.client.close()
        if self.destination is not None:
            try:
                await self.destination.close()
            except Exception as exc:  # a broker gone: nothing of ours is left open
                log.warning(
                    "destination_close_failed", endpoint_id=self.endpoint_id, error=repr(exc)
                )


class Dispatcher:
    def __init__(
        self,
        *,
        endpoints: RefreshingCache[str, EndpointSnapshot],
        client_for: Callable[[int], GuardedClient],
        writer: BatchedWriter,
        publisher: EventPublisher,
        on_gone: Callable[[str, str], None],
        registry: CollectorRegistry,
        failure_window: timedelta,
        on_failing: Callable[[str, datetime | None], None],
        usage: UsageCounters,
        minutes: AttemptMinutes,
        max_held: int,
        max_in_flight: int,
        hold_seconds: float = 2.0,
        max_unwritten: int = 64,
        on_circuit: Callable[[str, Circuit], None] = lambda _id, _circuit: None,
        circuit_cool_down: timedelta = timedelta(seconds=30),
        circuit_max_cool_down: timedelta = timedelta(minutes=10),
        transformer: Transformer | None = None,
        on_attempted: Callable[[Attempted], None] = lambda _: None,
        destination_for: Callable[[DestinationSpec, str], Destination] | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._destination_for = destination_for
        self._transformer = transformer
        self._on_attempted = on_attempted
        self._client_for = client_for
        self._writer = writer
        self._minutes = minutes
        self._usage = usage
        self._publisher = publisher
        self._on_gone = on_gone
        self._on_failing = on_failing
        self._failure_window = failure_window
        self._lanes: dict[str, Lane] = {}
        self.runs = Runs()  # FIFO keys' deliveries, only each head in a lane (fifo.py)
        self._breakers: dict[str, Breaker] = {}  # by endpoint id (deliveries/circuit.py)
        self._on_circuit = on_circuit
        self._cool_down = circuit_cool_down
        self._max_cool_down = circuit_max_cool_down
        self._failing_since: dict[str, datetime] = {}
        self._lookups: dict[str, list[str]] = {}  # endpoint id → deliveries set aside
        # Replaced lanes' pools closing, endpoint lookups: held until done, or the loop may
        # collect them.
        self._background: set[asyncio.Task[None]] = set()
        self.held: set[str] = set()
        # Deliveries a fan-out wrote held by this process in a write that raised: MongoDB
        # may have written them all the same (a timeout after the write), held by no lane
        # then. The scheduler looks them up (`Scheduler.take_back`).
        self.unanswered: set[str] = set()
        self.max_held = max_held
        # One endpoint's share of the room: an endpoint that answers only at its timeout,
        # with a backlog, would otherwise fill it and slow every other endpoint here to its
        # pace. The rest of its backlog waits in MongoDB (the claim skips full lanes).
        self.lane_limit = max(1, int(max_held * LANE_SHARE))
        self._per_lane: CounterOf[str] = CounterOf()  # held, by endpoint id
        self._reserved = 0  # room promised to a claim or fan-out whose write is under way
        # Let go of, their outcomes with the writer and not yet in MongoDB: they keep their
        # room until written, so what MongoDB cannot write yet (after an outage, or while it
        # is saturated) holds fan-out and claims back and the writer's buffer stays bounded;
        # else the lanes would take on work as fast as they send, whatever MongoDB keeps up
        # with. Counted by the flush that writes them (`BatchedWriter.next_flush`), so each
        # frees its room the moment that flush ends.
        self._unwritten = 0
        self._outcomes: dict[asyncio.Future[None], int] = {}
        # Outcomes sent and not yet written, at most: past it the lanes send nothing until
        # the writer catches up. What a kill -9 can have sent unrecorded (with the attempts
        # out), so what the next owner sends again: MongoDB's pace, not the room's, decides
        # how many there are.
        self.max_unwritten = max_unwritten
        self._writable = asyncio.Event()  # fewer than `max_unwritten` wait for the writer
        self._writable.set()
        # Seconds the lanes have spent waiting for the writer in all, and since when they
        # wait now (None while `_writable` is set): not a lane's time to move (`behind`).
        self._stalled_for = 0.0
        self._stalled_since: float | None = None
        # Outcomes waiting that make the writer flush at once: half the bound, so that one
        # flush is written while the next fills; a flush of more costs MongoDB no more per
        # outcome than the interval's.
        self._hurry_at = max(1, min(max_held // 4, max_unwritten // 2))
        self._drained = asyncio.Event()  # nothing held
        self._drained.set()
        self._freed = asyncio.Event()  # something let go since it was cleared
        self.waiting = 0  # fan-outs waiting for room
        # Attempts out at once, over every lane: a lane's worker takes a slot for each. A lane
        # has at most a quarter of them (however large its endpoint's `max_concurrency`), so
        # one hanging endpoint cannot take them all.
        self._slots = asyncio.Semaphore(max_in_flight)
        self.lane_slots = max(1, int(max_in_flight * LANE_SHARE))
        self._busy: set[asyncio.Task[Any]] = set()  # workers with a slot, in an attempt
        self._stopping = False
        # Unrecorded jobs by delivery id, oldest first (see the module's doc).
        self._unrecorded: dict[str, Job] = {}
        self.hold_seconds = hold_seconds
        self._recheck = hold_seconds / 4
        # Each endpoint's held jobs in the order handed over, those let go of dropped from
        # the front: how long its oldest has waited (`behind`).
        self._ages: dict[str, deque[Age]] = {}
        self._owing = True  # takes unrecorded jobs; not once the stop has begun
        # Fan-out consumers whose partitions were revoked and not yet assigned again: what
        # they hand over meanwhile is written at once (`revoked`).
        self._revoked: set[str] = set()
        self.outcomes = Counter(
            "hookhub_delivery_attempts_total",
            "Delivery attempts by outcome",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "hookhub_delivery_attempt_seconds",
            "Delivery attempt duration",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.circuit_changes = Counter(
            "hookhub_delivery_circuit_changes_total",
            "Endpoint circuits that changed state in this process, by the state they took",
            ["state"],
            registry=registry,
        )
        self.circuits_open = Gauge(
            "hookhub_delivery_circuits_open",
            "Endpoints whose circuit is open or half open in this process: no attempts but a probe",
            registry=registry,
        )
        self.circuits_open.set_function(
            lambda: sum(1 for b in self._breakers.values() if b.state is not State.CLOSED)
        )
        self.dead_letters = Counter(
            "hookhub_delivery_dead_letters_total", "Deliveries dead-lettered", registry=registry
        )
        self.in_memory = Gauge(
            "hookhub_delivery_held",
            "Deliveries queued or in flight in this process",
            registry=registry,
        )
        self.in_memory.set_function(lambda: len(self.held))
        self.unwritten = Gauge(
            "hookhub_delivery_outcomes_unwritten",
            "Deliveries attempted whose outcome is not yet in MongoDB (they keep their room)",
            registry=registry,
        )
        self.unwritten.set_function(lambda: self._unwritten)
        self.in_flight = Gauge(
            "hookhub_delivery_in_flight",
            "Attempts out at once in this process (HOOKHUB_DELIVERY_MAX_IN_FLIGHT at most)",
            registry=registry,
        )
        self.in_flight.set_function(lambda: len(self._busy))
        self.held_limit = Gauge(
            "hookhub_delivery_held_limit",
            "The most deliveries this process holds in memory (HOOKHUB_DELIVERY_MAX_HELD)",
            registry=registry,
        )
        self.held_limit.set(max_held)
        self.written_held = Counter(
            "hookhub_delivery_written_held",
            "Deliveries not ended within HOOKHUB_DELIVERY_HOLD_SECONDS of their fan-out, written "
            "pending and held by this process so that their batch's offsets are committed",
            registry=registry,
        )

    @contextlib.contextmanager
    def room_for(self, wanted: int) -> Iterator[int]:
        """How many of `wanted` deliveries this process may take on, kept for them until the
        block ends: the claim or write that takes them awaits MongoDB, and the scheduler and
        both fan-out consumers would otherwise each count the same free room. Submit the
        taken ones inside the block."""
        room = min(wanted, self.free)
        self._reserved += room
        try:
            yield room
        finally:
            self._reserved -= room

    @property
    def free(self) -> int:
        """Room neither held nor promised; none once stopping (what a claim took then would
        only be handed back)."""
        if self._stopping:
            return 0
        taken = len(self.held) + self._reserved + self._unwritten
        return max(0, self.max_held - taken)

    def lane_room(self, endpoint_id: str) -> int:
        """How many more of one endpoint's deliveries this process may hold."""
        return max(0, self.lane_limit - self._per_lane[endpoint_id])

    def full_lanes(self) -> list[str]:
        """The endpoints a claim leaves alone: those whose share of the room is taken, and
        those whose circuit is open until a later probe (their deliveries stay in MongoDB
        as they are meanwhile: nothing is claimed only to be set aside again)."""
        full = [e for e, held in self._per_lane.items() if held >= self.lane_limit]
        now = utcnow()
        for endpoint_id in self._circuits_not_closed():
            circuit = self._circuit(endpoint_id)
            due = circuit.next_probe_at is None or circuit.next_probe_at <= now
            if circuit.state is State.HALF_OPEN or not due:
                full.append(endpoint_id)
        return full

    def claim_room(self, endpoint_id: str) -> int:
        """How many of one endpoint's due deliveries a claim takes: its lane's room, or one
        (the probe) while its circuit is open."""
        room = self.lane_room(endpoint_id)
        return min(room, 1) if self._circuit(endpoint_id).state is not State.CLOSED else room

    def _circuit(self, endpoint_id: str) -> Circuit:
        """The endpoint's circuit: this process's, brought up to another replica's later
        change, or as written on the endpoint when this process has no breaker for it."""
        if not self._tuning(endpoint_id).enabled:
            return Circuit()  # off: nothing held, whatever was written before
        shared = self._shared_circuit(endpoint_id)
        breaker = self._breakers.get(endpoint_id)
        if breaker is None:
            return shared if shared is not None else Circuit()
        breaker.adopt(shared)
        return breaker.circuit

    def _tuning(self, endpoint_id: str) -> Tuning:
        endpoint = self._endpoints.get(endpoint_id)
        return endpoint.circuit_breaker if endpoint is not None else DEFAULT_TUNING

    def _shared_circuit(self, endpoint_id: str) -> Circuit | None:
        endpoint = self._endpoints.get(endpoint_id)
        return endpoint.circuit if endpoint is not None else None

    def _circuits_not_closed(self) -> set[str]:
        """This process's open circuits and those another replica wrote open."""
        ids = {e for e, breaker in self._breakers.items() if breaker.state is not State.CLOSED}
        for endpoint in self._endpoints.values():
            if endpoint.circuit is not None and endpoint.circuit.state is not State.CLOSED:
                ids.add(endpoint.id)
        return ids

    async def room(
        self,
        wanted: int,
        deadline: float,
        endpoint_id: str | None = None,
        key: str | None = None,
    ) -> None:
        """Until `wanted` deliveries fit (`max_held` at most) and, given `endpoint_id`, one
        more of that endpoint's fits its share unless its lane is `behind`, and given a FIFO
        `key` too, one more of that key's is not to wait for it (`key_waits`); or the
        process stops, or the `time.monotonic()` `deadline` passes."""
        wanted = min(wanted, self.max_held)

        def short() -> bool:
            if self.free < wanted:
                return True
            if endpoint_id is None:
                return False
            return self.lane_waits(endpoint_id, 0) or self.key_waits(endpoint_id, key)

        if not short():
            return
        self.waiting += 1
        try:
            while short() and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._freed.clear()
                # Looked at again now and then: a lane that stops moving is `behind`.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), min(remaining, self._recheck))
        finally:
            self.waiting -= 1

    def lane_waits(self, endpoint_id: str, taken: int) -> bool:
        """Whether one more of an endpoint's deliveries, after `taken` more, is beyond its
        share of the room while its lane is moving (not `behind`): worth waiting for, where
        one behind is written for any process (the claim skips full lanes)."""
        return taken >= self.lane_room(endpoint_id) and not self.behind(endpoint_id)

    def key_waits(self, endpoint_id: str, key: str | None) -> bool:
        """Whether one more delivery of a FIFO key held here is worth waiting for: the key
        moves, more slowly than fan-out feeds it (`Runs.waits`)."""
        return key is not None and self.runs.waits(endpoint_id, key, self.hold_seconds)

    def behind(self, endpoint_id: str) -> bool:
        """Whether the oldest delivery this endpoint's lane holds was handed over more than
        `hold_seconds` ago, not counting the time the lanes waited for the writer meanwhile:
        it sends slower than it is given work (a slow endpoint). While MongoDB cannot keep
        up, no lane moves, and none is behind: writing a backlog into MongoDB for the
        scheduler (what fan-out does with a slow endpoint's) would only slow it further;
        it waits in Kafka instead."""
        ages = self._ages.get(endpoint_id)
        if ages is None:
            return False
        now = time.monotonic()
        oldest = ages[0]
        waited = now - oldest.since - (self._stalled(now) - oldest.stalled)
        return waited >= self.hold_seconds

    def _stalled(self, now: float) -> float:
        """Seconds the lanes have waited for the writer, up to `now`."""
        since = self._stalled_since
        return self._stalled_for + (now - since if since is not None else 0.0)

    async def drained(self) -> None:
        """Until nothing is held (returns at once if nothing is)."""
        await self._drained.wait()

    def submit(self, job: Job) -> None:
        if job.id in self.held or self._stopping:
            # Already queued here (a scheduler claim racing the intake), or stopping: the
            # delivery waits in MongoDB for whoever holds it next.
            return
        endpoint = self._endpoints.get(job.endpoint_id)
        if endpoint is None:
            self._not_here(job)
            if job.ordering_key is not None:
                self.runs.parked(job)  # its key waits for it
            return
        self.held.add(job.id)
        job.since = job.since or time.monotonic()
        job.age = Age(job.since, self._stalled(time.monotonic()))
        self._ages.setdefault(job.endpoint_id, deque()).append(job.age)
        self._per_lane[job.endpoint_id] += 1
        self._drained.clear()
        lane = self._lane(endpoint)
        if job.ordering_key is None or self.runs.add(job):
            lane.queue.put_nowait(job)

    def has(self, delivery_id: str) -> bool:
        """Whether the delivery is here: held (queued or out), or recorded and on its way to
        MongoDB (a read of MongoDB does not find it yet)."""
        return delivery_id in self.held or self._writer.inserting(DELIVERIES, delivery_id)

    def owe(self, doc: Document) -> asyncio.Future[None]:
        """Hand the lanes a delivery that is not in MongoDB yet (room taken for it, see
        `room_for`); done once it is recorded (its document handed to the writer: wait for
        `recorded`), failed with `CutOff` if the stop lets go of it first."""
        known = self._unrecorded.get(doc["_id"])
        if known is not None and known.recorded is not None:
            return known.recorded  # a batch read again while its first reading's job is here
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._owing or self._stopping:
            _cut(recorded)
            return recorded
        if self.has(doc["_id"]):
            # Held (claimed: written) or recorded and not yet in MongoDB (an event that came
            # twice, its first delivery sent a moment ago): `recorded` waits for the writer.
            recorded.set_result(None)
            return recorded
        job = Job.from_doc(doc)
        job.unrecorded, job.recorded, job.since = doc, recorded, time.monotonic()
        self._unrecorded[job.id] = job
        self.submit(job)
        if self._revoked and job.unrecorded is not None:
            # Its batch's partition may be another member's by now: written held at once.
            self._record(job, {"status": "pending"})
        return recorded

    async def recorded(self, owed: list[asyncio.Future[None]]) -> None:
        """Until every one of `owed` is recorded and in MongoDB; raises `CutOff` if the stop
        let go of one."""
        for recorded in owed:
            await recorded
        if owed:
            await self._writer.written()

    async def hold(self) -> None:
        """Writes pending, held by this process, the unrecorded jobs handed over more than
        `hold_seconds` ago: one sweep for all of them, a few times per bound."""
        while True:
            await asyncio.sleep(self.hold_seconds / 4)
            self.write_held(time.monotonic() - self.hold_seconds)

    def write_held(self, before: float) -> int:
        """The unrecorded jobs handed over before `before` written pending (or `active`,
        their attempt under way), held by this process; how many."""
        old = []
        for job in self._unrecorded.values():  # oldest first
            if job.since > before:
                break
            old.append(job)
        for job in old:
            self._record(job, {"status": "active" if job.out else "pending"})
        self.written_held.inc(len(old))
        return len(old)

    async def revoked(self, consumer: str) -> None:
        """`consumer`'s partitions go to another member (a rebalance, no crash): every
        unrecorded job is written as at the hold bound (pending, or `active` if out, held by
        this process), and waited for, so that the new owner, reading its batches again,
        finds them written and leaves them; this process goes on sending them. Until it is
        `assigned` again, what it hands over is written at once."""
        self._revoked.add(consumer)
        if not self.write_held(float("inf")):
            return
        if not await self._writer.written_within(REVOKE_WAIT_SECONDS):
            # MongoDB is down: the new owner may send these again (at least once).
            log.warning("delivery_revoke_unwritten", consumer=consumer)

    def assigned(self, consumer: str) -> None:
        """`consumer` has its partitions (again): unrecorded jobs are owed by them."""
        self._revoked.discard(consumer)

    def stop_owing(self) -> None:
        """The stop has begun: the unrecorded jobs' batches are not committed (their next
        owner fans them out again), so none is waited for. Those queued are never sent;
        those out are recorded if they end before the stop cuts them off (the next owner
        finds them written and leaves them)."""
        self._owing = False
        for job in self._unrecorded.values():
            if job.recorded is not None and not job.recorded.done():
                _cut(job.recorded)
            if not job.out:
                job.cut = True
        # Not written pending by the sweep either; one out is still inserted with its outcome.
        self._unrecorded.clear()

    def _record(self, job: Job, fields: Document) -> None:
        """`fields` set on the delivery: an update, or for an unrecorded job its document
        inserted whole with them (one write; its usage counted then)."""
        if job.ordering_key is not None:
            fields = self._ordered(job, fields)
        doc = job.unrecorded
        if doc is None:
            self._writer.set_fields(DELIVERIES, job.id, fields)
            return
        job.unrecorded = None
        self._unrecorded.pop(job.id, None)
        self._writer.insert_once(
            DELIVERIES, job.id, {**{k: v for k, v in doc.items() if k != "_id"}, **fields}
        )
        self._usage.made(job.workspace_id, "deliveries")
        if job.recorded is not None and not job.recorded.done():
            job.recorded.set_result(None)

    @staticmethod
    def _ordered(job: Job, fields: Document) -> Document:
        """A FIFO delivery's `fields`: one still to be tried stays in its key's queue (not
        for the scheduler's claims), and what it is recorded as is noted for its key."""
        if "status" in fields:
            job.outcome = fields["status"]
            job.next_at = fields.get("next_attempt_at")
        if fields.get("next_attempt_at") is not None and fields.get("lease_owner", QUEUED) is None:
            return {**fields, "lease_owner": QUEUED}
        return fields

    def _next_in_order(self, job: Job) -> None:
        """A FIFO head let go: its key's next one to its lane, or, the head to be tried
        later, the ones behind it queued in MongoDB with it (their room freed)."""
        following, behind = self.runs.ended(job)
        if following is not None:
            lane = self._lanes.get(following.endpoint_id)
            if lane is not None:
                lane.queue.put_nowait(following)
        for parked in behind:
            parked.ordering_key = None  # its key is done with it here
            if parked.unrecorded is not None:
                self._record(parked, {"status": "pending"})  # its document has QUEUED
            self._let_go(parked)

    def _let_go(self, job: Job) -> None:
        """`job` is done with here; its room is free once what it handed the writer (its
        outcome) is written."""
        if job.age is not None:
            job.age.done = True
            ages = self._ages.get(job.endpoint_id)
            while ages and ages[0].done:
                ages.popleft()
            if not ages:
                self._ages.pop(job.endpoint_id, None)
        self._freed.set()  # its lane's share (the process's room: once written, below)
        if job.id in self.held:
            self.held.discard(job.id)
            self._per_lane[job.endpoint_id] -= 1
            if self._per_lane[job.endpoint_id] <= 0:
                del self._per_lane[job.endpoint_id]
            written = self._writer.next_flush()
            if written not in self._outcomes:
                self._outcomes[written] = 0
                written.add_done_callback(self._written)
            self._outcomes[written] += 1
            self._unwritten += 1
            if self._unwritten >= self.max_unwritten and self._writable.is_set():
                self._writable.clear()
                self._stalled_since = time.monotonic()
            if self._unwritten >= self._hurry_at:
                self._writer.hurry()
        if not self.held:
            self._drained.set()
        if job.ordering_key is not None:
            self._next_in_order(job)

    def _written(self, flush: asyncio.Future[None]) -> None:
        """A flush wrote the outcomes counted on it: their room is free."""
        self._unwritten -= self._outcomes.pop(flush, 0)
        self._freed.set()
        if self._unwritten < self.max_unwritten and not self._writable.is_set():
            self._writable.set()
            self._stalled_for = self._stalled(time.monotonic())
            self._stalled_since = None

    def _lane(self, endpoint: EndpointSnapshot) -> Lane:
        lane = self._lanes.get(endpoint.id)
        rate = endpoint.rate_limit_per_second
        if (
            lane is None
            or lane.concurrency != endpoint.max_concurrency
            or (lane.bucket.rate if lane.bucket else None) != rate
            or lane.fingerprint != _fingerprint(endpoint)
        ):
            if lane is not None:
                for worker in lane.workers:
                    worker.cancel()
                self._close_later(lane)
            spec = endpoint.destination
            replacement = Lane(
                endpoint.id,
                endpoint.max_concurrency,
                endpoint.rate_limit_per_second,
                self._client_for(1 if spec is not None else endpoint.max_concurrency),
                # Made once for the lane, connected at its first send (destinations/).
                destination=(
                    self._destination_for(spec, endpoint.id)
                    if spec is not None and self._destination_for is not None
                    else None
                ),
                fingerprint=_fingerprint(endpoint),
            )
            if lane is not None:  # keep what was queued
                while not lane.queue.empty():
                    replacement.queue.put_nowait(lane.queue.get_nowait())
            lane = replacement
            with tracing.detached():  # a lane works for every event, not the first one's
                lane.workers = [
                    asyncio.create_task(self._work(lane), name=f"lane-{endpoint.id}")
                    for _ in range(min(endpoint.max_concurrency, self.lane_slots))
                ]
            self._lanes[endpoint.id] = lane
        return lane

    async def _work(self, lane: Lane) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            job = await lane.queue.get()
            if job.cut:  # its batch is read again by the partition's next owner
                self._let_go(job)
                continue
            breaker = self.breaker(lane.endpoint_id)
            probe = False
            try:
                # Sent no sooner than the writer has room for its outcome (`max_unwritten`).
                await self._writable.wait()
                # Nor while the endpoint's circuit is open: then it is set aside until the
                # next probe, its retries unspent and its room free (deliveries/circuit.py).
                admission = await breaker.admit()
                if admission.later is not None:
                    self._set_aside(job, admission.later - utcnow())
                else:
                    probe = admission.probe
                    if lane.bucket:  # a rate-limited lane waits for its turn without a slot
                        await lane.bucket.take()
                    async with self._slots:
                        self._busy.add(me)  # a stop lets an attempt end, and cuts a wait off
                        await self.attempt(job, lane, probe=probe)
            except asyncio.CancelledError:
                # The lane is being replaced (new concurrency or rate) or the process stops:
                # hand the job to the lane that replaced this one, still held by us.
                current = self._lanes.get(lane.endpoint_id)
                if current is not None and current is not lane:
                    current.queue.put_nowait(job)
                else:
                    self._cut_off(job)
                raise
            except Exception:
                log.exception("delivery_attempt_crashed", delivery_id=job.id)
                self._set_aside(job, AFTER_A_CRASH)
                self._let_go(job)
            else:
                self._let_go(job)
            finally:
                self._busy.discard(me)
                if probe:
                    breaker.unprobed()  # no-op once its outcome is recorded

    def _cut_off(self, job: Job) -> None:
        """An attempt the stop did not wait for: not an outcome, so no attempt is logged and
        the delivery stays open, due now, for whichever process takes it over. One not in
        MongoDB yet stays unwritten: its batch was not committed (`stop_owing`)."""
        self._let_go(job)
        if job.unrecorded is not None:
            self._unrecorded.pop(job.id, None)
            if job.recorded is not None and not job.recorded.done():
                _cut(job.recorded)
        elif self._stopping:
            status = "delayed" if job.attempts else "pending"
            self._writer.set_fields(DELIVERIES, job.id, {"status": status})

    async def stop(self, seconds: float) -> None:
        """Take no more jobs; attempts in flight get most of `seconds` to end, then are cut
        off (see `_cut_off`). Queued jobs stay with their deliveries in MongoDB, which the
        caller hands over (`Ownership.release`); unrecorded ones are let go of (`stop_owing`)."""
        self.stop_owing()
        self._stopping = True
        workers = [worker for lane in self._lanes.values() for worker in lane.workers]
        for worker in workers:
            if worker not in self._busy:
                worker.cancel()  # idle, waiting on its queue
        if workers:
            _, late = await asyncio.wait(workers, timeout=seconds * WORK_SHARE)
            for worker in late:
                worker.cancel()
            if late:
                log.warning("delivery_attempts_cut_off", count=len(late))
            await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.gather(*(lane.close() for lane in self._lanes.values()))
        await asyncio.gather(*self._background, return_exceptions=True)

    def _close_later(self, lane: Lane) -> None:
        """A replaced lane's pool, once its cancelled workers have let go of it."""

        async def close() -> None:
            await asyncio.gather(*lane.workers, return_exceptions=True)
            await lane.close()

        self._in_background(close())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def breaker(self, endpoint_id: str) -> Breaker:
        """The endpoint's circuit breaker in this process (deliveries/circuit.py)."""
        breaker = self._breakers.get(endpoint_id)
        if breaker is None:

            def changed(circuit: Circuit) -> None:
                self.circuit_changes.labels(circuit.state.value).inc()
                log.info("delivery_circuit", endpoint_id=endpoint_id, **circuit.doc())
                self._on_circuit(endpoint_id, circuit)

            breaker = self._breakers[endpoint_id] = Breaker(
                cool_down=self._cool_down,
                max_cool_down=self._max_cool_down,
                shared=lambda: self._shared_circuit(endpoint_id),
                on_change=changed,
                tuning=lambda: self._tuning(endpoint_id),
            )
        return breaker

    async def attempt(self, job: Job, lane: Lane, *, probe: bool = False) -> Verdict:
        endpoint = self._endpoints.get(job.endpoint_id)
        if endpoint is None:
            self._not_here(job)
            return Verdict.RETRY
        if not endpoint.enabled:
            # Kept as it is: a re-enabled endpoint's deliveries can be recovered.
            self._set_aside(job, RECHECK_LATER)
            return Verdict.RETRY
        # A CLIENT span in its event's trace (SPEC §18), its transformation and log lines in it.
        with tracing.client_span("POST", job.traceparent, job.tracestate) as span:
            if span is not None:
                tracing.annotate(
                    delivery_id=job.id,
                    endpoint_id=job.endpoint_id,
                    workspace_id=job.workspace_id,
                    event_type=job.event_type,
                    envelope_id=job.event_id,
                    attempt=job.attempts + 1,
                )
            return await self._attempt(job, lane, endpoint, span, probe)

    async def _attempt(
        self,
        job: Job,
        lane: Lane,
        endpoint: EndpointSnapshot,
        span: Span | None,
        probe: bool,
    ) -> Verdict:
        if _fingerprint(endpoint) != lane.fingerprint:
            # Its destination changed since its lane was made: the next hand-over makes
            # the lane anew (`_lane`), with a client for what it is now.
            self._set_aside(job, timedelta(seconds=1))
            return Verdict.RETRY
        now = utcnow()
        number = job.attempts + 1
        job.out = True
        if job.unrecorded is None:
            # `active` while the request is out. Folded into the outcome's update when the
            # attempt ends before the writer's next flush, as it nearly always does. (An
            # unrecorded delivery is written once, with its outcome.)
            self._writer.set_fields(DELIVERIES, job.id, {"status": "active"})
        error: str | None = None
        destination = lane.destination
        if destination is None:
            outgoing = Outgoing("POST", endpoint.url, job.body, endpoint.headers)
        else:  # a transformation's payload is sent; its url, method and headers are not
            outgoing = Outgoing("POST", destination.address, job.body, {})
        if endpoint.transformation is not None and self._transformer is not None:
            # In the sandbox's process, within its limits: before signing, so the signature
            # is over what is sent; a failure fails this attempt, retried on schedule.
            transformed = await self._transformer.apply(
                endpoint.transformation, job.event_type, outgoing, scope=job.workspace_id
            )
            if isinstance(transformed, Cancelled):
                self._cancelled(job)
                return Verdict.CANCELLED
            if isinstance(transformed, TransformationFailure):
                error = transformed.error
            else:
                outgoing = transformed
        headers = delivery_headers(
            msg_id=job.msg_id,
            timestamp=int(time.time()),
            body=outgoing.body,
            secrets=endpoint.signing_secrets(now),
            event_type=job.event_type,
            user_agent=USER_AGENT,
            extra=outgoing.headers,
        )
        if span is not None and destination is not None and endpoint.destination is not None:
            kind = endpoint.destination.type
            tracing.sending(span, MESSAGING_SYSTEMS.get(kind, kind), destination.address)
        elif span is not None:
            tracing.requesting(span, outgoing.method, outgoing.url)
            if endpoint.propagate_trace:  # the attempt's own context (carried: as it came)
                headers.update(tracing.kept(tracing.current()))
        started = time.perf_counter()
        status_code: int | None = None
        response_headers: dict[str, str] = {}
        response_body = ""
        reached = True  # False: nothing left (a listening endpoint with no listener)
        # What the receiver was sent, for the attempt's log; nothing when the transformation
        # failed before sending.
        request = None if error is not None else as_sent(outgoing, headers, job.body, endpoint)
        try:
            if error is None and destination is not None:
                assert endpoint.destination is not None and request is not None
                request["method"] = endpoint.destination.type.upper()
                request["headers"] = {k: v for k, v in headers.items() if k in SIGNING_HEADERS}
                answer = await _sent(destination, job, outgoing.body, headers, endpoint)
                status_code, response_body, error = answer.status_code, answer.body, answer.error
                response_headers, reached = answer.headers, answer.reached
            elif error is None:
                async with lane.client.post(
                    outgoing.url,
                    method=outgoing.method,
                    body=outgoing.body,
                    headers=headers,
                    time_limit=endpoint.timeout_seconds,
                ) as response:
                    status_code = response.status
                    response_headers = header_fields(response.headers.items())
                    response_body = await read_prefix(response.content, RESPONSE_BODY_LIMIT)
        except TimeoutError:
            error = f"timeout after {endpoint.timeout_seconds:g}s"
        except aiohttp.ClientError as exc:
            error = describe_failure(exc)[:1000]
        duration = time.perf_counter() - started
        decision = decide(
            status_code=status_code,
            attempt=job.tries + 1,
            schedule=list(endpoint.retry_schedule),
            now=utcnow(),
            retry_after=response_headers.get("retry-after"),
            manual=job.manual,
        )
        self.latency.observe(duration)
        outcome = _outcome(status_code, error) if reached else "unreached"
        self.outcomes.labels(outcome).inc()
        if span is not None:
            failure = None if outcome == "success" else error or f"HTTP {status_code}"
            tracing.responded(span, status_code, failure, str(status_code or outcome))
        # The endpoint's health is the endpoint's: a transformation's error never reached it,
        # nor did a message for a laptop that is away (destinations/base.py).
        endpoint_failed = reached and (error is None or not error.startswith(TRANSFORMATION_ERROR))
        # Before the breaker hears of it: a change of circuit it makes names this answer.
        self._on_attempted(
            Attempted(endpoint, job, number, decision.verdict, status_code, error, endpoint_failed)
        )
        if endpoint_failed:
            self.breaker(job.endpoint_id).record(
                failed=status_code is None or not 200 <= status_code < 300,
                timed_out=error is not None and error.startswith("timeout"),
                probe=probe,
            )
        logged: Document = {
            "attempt": number,
            "at": now,
            "status_code": status_code,
            "response_headers": response_headers,
            "response_body": response_body,
            "duration_ms": round(duration * 1000, 2),
            "error": error,
            "next_attempt_at": decision.next_attempt_at,
            "request": request,
        }
        fields: dict[str, Any] = {
            "attempts": number,
            "tries": job.tries + 1,
            "last_attempt_at": now,
            "last_status_code": status_code,
            "last_error": error,
            "updated_at": utcnow(),
            **schedule(next_attempt_at=decision.next_attempt_at),  # held by nobody now
        }
        if number == 1:
            # Kept in the delivery's document, written with the outcome (repository.py).
            fields[FIRST_ATTEMPT] = logged
        else:
            logged.update(
                delivery_id=job.id, endpoint_id=job.endpoint_id, workspace_id=job.workspace_id
            )
            self._writer.insert_once(ATTEMPTS, f"{job.id}:{number}", logged)
        self._usage.made(job.workspace_id, "attempts")
        self._minutes.count(job.workspace_id, job.endpoint_id, now, status_code)
        if decision.verdict is Verdict.COMPLETED:
            ended = utcnow()
            fields.update(status="completed", completed_at=ended, ended_at=ended)
            self._healthy(endpoint)
        elif decision.verdict is Verdict.RETRY:
            fields.update(status="delayed")
            if endpoint_failed:
                self._failing(endpoint, now)
        else:
            fields.update(status="failed", manual=False, ended_at=utcnow())
            await self._dead_letter(job, number, status_code, error)
            if decision.verdict is Verdict.GONE:
                self._on_gone(endpoint.id, "the endpoint answered 410 Gone")
            elif endpoint_failed:
                self._failing(endpoint, now)
        self._record(job, fields)
        info_line(
            "delivery_attempt",
            {
                "delivery_id": job.id,
                "endpoint_id": job.endpoint_id,
                "attempt": number,
                "status_code": status_code,
                "error": error,
                "verdict": decision.verdict.value,
                "duration_ms": logged["duration_ms"],
            },
        )
        return decision.verdict

    def _cancelled(self, job: Job) -> None:
        """Its transformation returned `{cancel: true}`: ended, no attempt made or logged."""
        self.outcomes.labels("cancelled").inc()
        ended = utcnow()
        fields = {"status": "cancelled", "updated_at": ended, "ended_at": ended}
        self._record(job, {**fields, "manual": False, **schedule(next_attempt_at=None)})
        log.info("delivery_cancelled", delivery_id=job.id, endpoint_id=job.endpoint_id)

    def _not_here(self, job: Job) -> None:
        """The endpoint is not in this replica's cache: deleted, or created through another
        replica a moment ago. A deleted endpoint's delivery is closed. Any other is set
        aside while the endpoint is looked up, and closed then if the lookup finds its
        tombstone (a process started after the deletion does not load tombstones)."""
        if self._endpoints.gone(job.endpoint_id):
            self._record(job, _closed())
            return
        self._set_aside(job, RECHECK_LATER)
        waiting = self._lookups.get(job.endpoint_id)
        if waiting is None:
            waiting = self._lookups[job.endpoint_id] = []
            self._in_background(self._look_up(job.endpoint_id))
        waiting.append(job.id)

    async def _look_up(self, endpoint_id: str) -> None:
        try:
            await self._endpoints.lookup(endpoint_id)
        except Exception as exc:  # MongoDB down: the recheck asks again
            log.warning("endpoint_lookup_failed", endpoint_id=endpoint_id, error=repr(exc))
        finally:
            waiting = self._lookups.pop(endpoint_id, [])
        if self._endpoints.gone(endpoint_id):
            for delivery_id in waiting:
                self._writer.set_fields(DELIVERIES, delivery_id, _closed())

    def _set_aside(self, job: Job, delay: timedelta) -> None:
        """Not sent now: no process holds it, and the scheduler tries it again later."""
        fields = {"status": "delayed", **schedule(next_attempt_at=utcnow() + delay)}
        self._record(job, fields)

    def _healthy(self, endpoint: EndpointSnapshot) -> None:
        if self._failing_since.pop(endpoint.id, None) is not None:
            self._on_failing(endpoint.id, None)

    def _failing(self, endpoint: EndpointSnapshot, now: datetime) -> None:
        since = self._failing_since.setdefault(endpoint.id, now)
        if since == now:
            self._on_failing(endpoint.id, now)
        elif now - since > self._failure_window:
            self._on_gone(endpoint.id, f"failing continuously since {isoformat(since)}")

    async def _dead_letter(
        self, job: Job, attempts: int, status: int | None, error: str | None
    ) -> None:
        self.dead_letters.inc()
        letter = DeadLetter(
            id=job.id,
            delivery_id=job.id,
            endpoint_id=job.endpoint_id,
            workspace_id=job.workspace_id,
            event_id=job.event_id,
            event_type=job.event_type,
            attempts=attempts,
            last_status_code=status,
            last_error=error,
            failed_at=utcnow(),
        )
        try:
            await self._publisher.publish(DEAD_LETTER_TOPIC, letter)
        except Exception as exc:  # the delivery is `failed` and queryable either way
            log.warning("dead_letter_publish_failed", delivery_id=job.id, error=repr(exc))


def _closed() -> Document:
    """A deleted endpoint's delivery: failed, not dead-lettered (nobody is left to deliver
    it to, or to retry it for)."""
    return {
        "status": "failed",
        "last_error": "the outgoing webhook was deleted",
        "manual": False,
        "updated_at": utcnow(),
        "ended_at": utcnow(),
        **schedule(next_attempt_at=None),
    }


def _fingerprint(endpoint: EndpointSnapshot) -> str | None:
    return endpoint.destination.fingerprint if endpoint.destination is not None else None


async def _sent(
    destination: Destination,
    job: Job,
    body: bytes,
    headers: Mapping[str, str],
    endpoint: EndpointSnapshot,
) -> Answer:
    """The destination's answer to one attempt, within the endpoint's time limit; what its
    client raises is an error without a status (retried, as a connection error is)."""
    message = Message(
        body=body,
        headers=headers,
        event_type=job.event_type,
        event_id=job.event_id,
        msg_id=job.msg_id,
        workspace_id=job.workspace_id,
        key=job.ordering_key,
        fifo=endpoint.fifo,
        endpoint_id=job.endpoint_id,
        timeout_seconds=endpoint.timeout_seconds,
    )
    try:
        async with asyncio.timeout(endpoint.timeout_seconds):
            return await destination.send(message)
    except TimeoutError:
        raise
    except Exception as exc:
        log.warning("destination_send_raised", delivery_id=job.id, error=repr(exc))
        return Answer.refused(f"{type(exc).__name__}: {exc}")


def _cut(recorded: asyncio.Future[None]) -> None:
    recorded.set_exception(CutOff())
    recorded.exception()  # retrieved: a batch that is not waited for logs nothing


def as_sent(
    outgoing: Outgoing, headers: Mapping[str, str], payload: bytes, endpoint: EndpointSnapshot
) -> Document:
    """An attempt's request as it went out, for its log (the signature too, as Svix shows
    it): the values of the endpoint's own headers left out (write-only: sealed at rest,
    never returned); the body only where it is not the delivery's payload as it is (a
    transformation's), so an attempt of an untransformed delivery costs its headers alone."""
    own = {name.lower() for name in endpoint.headers}
    return {
        "method": outgoing.method,
        "url": outgoing.url,
        "headers": {
            name: HIDDEN_HEADER if name.lower() in own else value for name, value in headers.items()
        },
        "body": None
        if outgoing.body is payload or outgoing.body == payload
        else outgoing.body.decode("utf-8", "replace"),
    }


def _outcome(status_code: int | None, error: str | None) -> str:
    if error is not None and error.startswith(TRANSFORMATION_ERROR):
        return TRANSFORMATION_ERROR
    if status_code is None:
        return "timeout" if error and error.startswith("timeout") else "connection_error"
    if 200 <= status_code < 300:
        return "success"
    return f"http_{status_code // 100}xx"
