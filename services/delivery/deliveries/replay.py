"""Replay of what an endpoint missed (SPEC §17): its workspace's chat events of its types
published in a window, read back from Kafka's retained log, each made a delivery (marked
`replayed`) unless the endpoint has one of that event already.

A replay is a job (`delivery_replays`) run by one delivery process at a time. It reads
`hookhub.chat.events` as a consumer of no group: each partition from the first record at
`since` (Kafka's time index; a broker without one answers the log's start, and then the
records before `since` are read and passed over) to the partition's end when the job began
(what is published later is fanned out as usual). Records published outside the window
(their Kafka timestamp) or of another workspace or type are passed over. A batch of matching
events goes through fan-out as a consumed batch does (`FanOut.events`, one endpoint only):
deliveries the endpoint has already (by their id, which derives from event and endpoint)
are left alone, the rest sent from memory at the pace the endpoint takes them and written
once, with their first outcome. The job's positions are written once a batch's deliveries
are recorded: a process that dies mid-way leaves the job to another one (its heartbeat in
`delivery_workers`, as for deliveries: `shared.kernel.ownership`), which reads again from the
last positions written and finds what was made meanwhile already there.

What it cannot know: a delivery removed by retention (`HOOKHUB_DELIVERY_RETENTION`) looks
missed, so a window older than that is refused; records the topic's retention removed are
gone (the job says `truncated` when a partition's log starts after `since`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError, model_validator

from services.delivery.deliveries.service import Event, FanOut
from services.delivery.outgoing_webhooks.matching import matches
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.domain.retention import ExpiredDocuments
from shared.kernel import tracing
from shared.kernel.cache import RefreshingCache
from shared.kernel.envelopes import ChatEvent, Topic
from shared.kernel.errors import Conflict, Invalid, NotFound
from shared.kernel.ids import new_id, utcnow
from shared.kernel.kafka import partitions_of
from shared.kernel.mongo import Collection, Database, Document, Index
from shared.kernel.ownership import Ownership
from shared.kernel.settings import Settings

log = structlog.get_logger(__name__)

REPLAYS = "delivery_replays"
INDEXES = [
    Index(REPLAYS, [("endpoint_id", 1), ("_id", -1)]),  # an endpoint's, newest first
    Index(REPLAYS, [("finished_at", 1)]),  # kept as long as deliveries are
]
# Records read (and events fanned out) at a time, and so between two writes of positions.
BATCH_RECORDS = 500
# How often a process looks for replays whose process died, and how many it runs at once.
LOOK_SECONDS = 5.0
MOST_RUNNING = 2

State = Literal["running", "completed", "failed", "cancelled"]


class ReplayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime
    until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> ReplayCreate:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        if self.since >= utcnow():
            raise ValueError("since must be in the past")
        return self


class ReplayOut(BaseModel):
    id: str
    webhook_id: str
    workspace_id: str
    since: datetime
    until: datetime | None
    status: State
    # Records of the topic to read in all (known once the job has begun), and read so far.
    records: int | None = None
    read: int = 0
    # Events of the endpoint's workspace and types in the window; of them, those made a
    # delivery now, and those the endpoint had a delivery of already.
    matched: int = 0
    replayed: int = 0
    already_delivered: int = 0
    truncated: bool = False
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


def replay_out(doc: Document) -> ReplayOut:
    return ReplayOut.model_validate({**doc, "id": doc["_id"], "webhook_id": doc["endpoint_id"]})


class Stopped(Exception):
    """The job is no longer this process's to run (cancelled, or taken over)."""


@dataclass
class _Window:
    """Where each partition's reading is, and where it ends."""

    positions: dict[int, int]
    ends: dict[int, int]

    def left(self) -> list[int]:
        return [p for p, end in self.ends.items() if self.positions.get(p, end) < end]


class Replays:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        fan_out: FanOut,
        endpoints: RefreshingCache[str, EndpointSnapshot],
        ownership: Ownership,
        *,
        keep: timedelta,
    ) -> None:
        self.collection: Collection = db[REPLAYS]
        self._settings = settings
        self._fan_out = fan_out
        self._endpoints = endpoints
        self._ownership = ownership
        self._keep = keep
        self._running: dict[str, asyncio.Task[None]] = {}

    async def start(self, endpoint: Document, body: ReplayCreate) -> Document:
        """A new job for `endpoint` (its document), run by this process from now on."""
        if not endpoint.get("enabled", True):
            raise Conflict("the outgoing webhook is disabled: enable it, then replay")
        oldest = utcnow() - self._keep
        if body.since < oldest:
            raise Invalid(
                f"since is older than the delivery retention ({self._keep}): deliveries "
                "removed by it would look missed and be sent again"
            )
        await self._ownership.registered()
        now = utcnow()
        doc: Document = {
            "_id": new_id("rpl"),
            "endpoint_id": endpoint["_id"],
            "workspace_id": endpoint["workspace_id"],
            "since": body.since,
            "until": body.until,
            "status": "running",
            "owner": self._ownership.id,
            "read": 0,
            "matched": 0,
            "replayed": 0,
            "already_delivered": 0,
            "truncated": False,
            "created_at": now,
            "updated_at": now,
        }
        await self.collection.insert_one(doc)
        self._run(doc)
        return doc

    async def cancel(self, doc: Document) -> Document:
        if doc["status"] != "running":
            raise Conflict(f"the replay is {doc['status']}")
        now = utcnow()
        changed = {"status": "cancelled", "updated_at": now, "finished_at": now}
        await self.collection.update_one(
            {"_id": doc["_id"], "status": "running"}, {"$set": changed}
        )
        task = self._running.get(doc["_id"])
        if task is not None:
            task.cancel()
        return {**doc, **changed}

    async def run(self) -> None:
        """Takes over the running replays of processes that died or stopped."""
        while True:
            try:
                await self.take_over()
            except Exception as exc:
                log.warning("replay_take_over_failed", error=repr(exc))
            await asyncio.sleep(LOOK_SECONDS)

    async def take_over(self) -> int:
        """Runs the running replays whose process is not running (dead, stopped, or
        forgotten since), as many as there is room for; how many it took."""
        room = MOST_RUNNING - len(self._running)
        if room <= 0:
            return 0
        running = await self.collection.find({"status": "running"}).to_list()
        if not running:
            return 0
        alive = await self._ownership.alive(utcnow())
        taken = 0
        for doc in running:
            owner = doc.get("owner")
            if owner in alive or doc["_id"] in self._running or taken >= room:
                continue
            await self._ownership.registered()
            mine = await self.collection.find_one_and_update(
                {"_id": doc["_id"], "status": "running", "owner": owner},
                {"$set": {"owner": self._ownership.id}},
                return_document=True,
            )
            if mine is not None:
                log.info("replay_taken_over", replay_id=doc["_id"], owner=owner)
                self._run(mine)
                taken += 1
        return taken

    def retention(self) -> ExpiredDocuments:
        """Ended jobs are kept as long as deliveries are."""
        return ExpiredDocuments(self.collection, "finished_at", self._keep)

    async def page(self, endpoint_id: str, limit: int) -> list[Document]:
        query = {"endpoint_id": endpoint_id}
        return await self.collection.find(query).sort("_id", -1).limit(limit).to_list()

    async def get(self, endpoint_id: str, replay_id: str) -> Document:
        doc = await self.collection.find_one({"_id": replay_id, "endpoint_id": endpoint_id})
        if doc is None:
            raise NotFound(f"replay {replay_id} not found")
        return doc

    async def stop(self, _: float = 0.0) -> None:
        """Stops the jobs; their positions are those last written (the next owner reads on
        from there)."""
        for task in list(self._running.values()):
            task.cancel()
        for task in list(self._running.values()):
            with contextlib.suppress(BaseException):
                await task

    def _run(self, doc: Document) -> None:
        task = asyncio.ensure_future(self._job(doc))
        self._running[doc["_id"]] = task
        task.add_done_callback(lambda _: self._running.pop(doc["_id"], None))

    async def _job(self, doc: Document) -> None:
        try:
            await _Job(self, doc).run()
        except (Stopped, asyncio.CancelledError):
            return
        except Exception as exc:
            log.warning("replay_failed", replay_id=doc["_id"], error=repr(exc))
            with contextlib.suppress(Exception):
                await self._save(doc["_id"], {"status": "failed", "error": str(exc)}, end=True)

    async def _save(self, replay_id: str, fields: Document, *, end: bool = False) -> None:
        """`fields` set on the job, while it is still this process's and running."""
        now = utcnow()
        changes = {**fields, "updated_at": now, **({"finished_at": now} if end else {})}
        found = await self.collection.update_one(
            {"_id": replay_id, "status": "running", "owner": self._ownership.id},
            {"$set": changes},
        )
        if found.matched_count == 0:
            raise Stopped(replay_id)


class _Job:
    def __init__(self, replays: Replays, doc: Document) -> None:
        self._replays = replays
        self._doc = doc
        self._id: str = doc["_id"]
        self._since_ms = _ms(doc["since"])
        self._until_ms = _ms(doc["until"]) if doc.get("until") else None
        self._counts = {k: int(doc.get(k) or 0) for k in _COUNTS}

    async def run(self) -> None:
        settings = self._replays._settings
        topic = settings.topic(Topic.CHAT_EVENTS)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=BATCH_RECORDS,
        )
        await consumer.start()
        try:
            window = await self._window(consumer, topic)
            tps = {p: TopicPartition(topic, p) for p in window.ends}
            consumer.assign(list(tps.values()))
            for partition, position in window.positions.items():
                consumer.seek(tps[partition], position)
            while left := window.left():
                consumer.pause(*(tp for p, tp in tps.items() if p not in left))
                batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
                records = [
                    record
                    for tp, got in batch.items()
                    for record in got
                    if record.offset < window.ends[tp.partition]
                ]
                for tp, got in batch.items():
                    if got:
                        window.positions[tp.partition] = got[-1].offset + 1
                await self._fan_out(records)
                await self._replays._save(
                    self._id,
                    {"positions": _keyed(window.positions), **self._counts},
                )
            await self._replays._save(self._id, {"status": "completed", **self._counts}, end=True)
            log.info("replay_completed", replay_id=self._id, **self._counts)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _window(self, consumer: AIOKafkaConsumer, topic: str) -> _Window:
        """The job's positions and ends: found and written at its beginning, read back
        when another process takes it over."""
        if self._doc.get("ends") is not None:
            return _Window(_unkeyed(self._doc["positions"]), _unkeyed(self._doc["ends"]))
        tps = await partitions_of(consumer, topic)
        firsts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        at = await consumer.offsets_for_times(dict.fromkeys(tps, self._since_ms))
        positions: dict[int, int] = {}
        truncated = False
        for tp in tps:
            found = at.get(tp)
            start = ends[tp] if found is None else max(found.offset, firsts[tp])
            positions[tp.partition] = start
            # The log begins later than the window: what was before is gone.
            truncated = truncated or (firsts[tp] > 0 and start == firsts[tp] and ends[tp] > start)
        window = _Window(positions, {tp.partition: ends[tp] for tp in tps})
        records = sum(window.ends[p] - window.positions[p] for p in window.ends)
        await self._replays._save(
            self._id,
            {
                "positions": _keyed(window.positions),
                "ends": _keyed(window.ends),
                "records": records,
                "truncated": truncated,
            },
        )
        return window

    async def _fan_out(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        endpoint = self._replays._endpoints.get(self._doc["endpoint_id"])
        if endpoint is None or not endpoint.enabled:
            state = "deleted" if endpoint is None else "disabled"
            raise RuntimeError(f"the outgoing webhook was {state} during the replay")
        events = [e for e in map(self._event_of, records) if e is not None]
        self._counts["read"] += len(records)
        self._counts["matched"] += len(events)
        if not events:
            return
        fanned = await self._replays._fan_out.events(events, only=endpoint)
        await self._replays._fan_out.recorded(fanned)
        self._counts["replayed"] += fanned.made
        self._counts["already_delivered"] += len(events) - fanned.made

    def _event_of(self, record: ConsumerRecord[bytes, bytes]) -> Event | None:
        """The record's event, if the endpoint is owed it: in the window, of its workspace
        and types; a record that is not a chat event is passed over (the consumers
        dead-lettered it)."""
        if record.timestamp < self._since_ms or (
            self._until_ms is not None and record.timestamp >= self._until_ms
        ):
            return None
        endpoint = self._replays._endpoints.get(self._doc["endpoint_id"])
        try:
            raw: Any = orjson.loads(record.value or b"")
            if raw.get("workspace_id") != self._doc["workspace_id"] or endpoint is None:
                return None
            if not matches(endpoint.events, str(raw.get("type"))):
                return None
            event = ChatEvent.model_validate(raw)
        except (orjson.JSONDecodeError, AttributeError, ValidationError):
            return None
        # In a FIFO endpoint's key's order by its offset, as when it was first fanned out;
        # in the trace its record carries.
        trace = tracing.kept(tracing.record_context(record.headers)) or None
        return Event.of(event, record.offset, replayed=True, trace=trace)


_COUNTS = ("read", "matched", "replayed", "already_delivered")


def _ms(at: datetime) -> int:
    return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() * 1000)


def _keyed(offsets: dict[int, int]) -> dict[str, int]:
    """Partitions as MongoDB keys (strings)."""
    return {str(p): o for p, o in offsets.items()}


def _unkeyed(offsets: dict[str, int]) -> dict[int, int]:
    return {int(p): int(o) for p, o in offsets.items()}
