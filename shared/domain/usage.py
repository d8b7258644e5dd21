"""Usage per workspace (SPEC §14): counters kept as the work happens, read by
`GET /api/usage` without looking at a single delivery.

Every service that does counted work holds one `UsageCounters`: a count is a dict addition
in memory, written with the others in one bulk write of `$inc` upserts every
`FLUSH_SECONDS` and at the stop (`shared.kernel.mongo.BatchedWriter`). A process killed without
its stop loses the counts of those last seconds at most; the work itself is not lost.

The collection `usage` holds two kinds of documents per workspace:

- **a bucket per UTC day** (`_id` `<YYYY-MM-DD>:<workspace>`, `day` the day's midnight):
  what happened that day. `events.<provider>`: events the gateway accepted and published
  (provider webhooks by provider, incoming webhooks as `incoming`); `messages_synced`:
  messages sync relayed, to a provider (a post made in a mapped channel) or from one into
  the chat (a new message published on `hookhub.chat.inbound`; edits and deletes are not
  messages of their own); `messages_imported`: messages an import published; `deliveries`:
  deliveries created; `attempts`: delivery attempts made; `activity`: the sum of all
  these, by which workspaces are ranked. The usage window reads the buckets of the
  retention window (`window`); the retention job removes older ones
  (`OldDays`, with the deliveries).
- **the running totals** (`_id` `kept:<workspace>`): `deliveries` and `attempts` kept,
  +1 for each one stored and -1 for each one the retention job removes (`keep`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.domain.integrations.repository import COLLECTION as INTEGRATIONS
from shared.kernel.ids import utcnow
from shared.kernel.metrics import count_by
from shared.kernel.mongo import BatchedWriter, Database, Document, Index
from shared.kernel.process import ServiceProcess

COLLECTION = "usage"
# The delivery service's outgoing webhooks, counted (never written) here.
ENDPOINTS = "endpoints"
FLUSH_SECONDS = 2.0

# What a day's bucket counts besides `events.<provider>`.
WINDOWED = frozenset({"messages_synced", "messages_imported", "deliveries", "attempts"})
# The running totals: what is stored now.
KEPT = frozenset({"deliveries", "attempts"})
ACTIVITY = "activity"
_KEPT_PREFIX = "kept:"

INDEXES = [
    # The retention job's delete, and the ranking of the window's workspaces.
    Index(COLLECTION, [("day", 1)]),
    # One workspace's window.
    Index(COLLECTION, [("workspace_id", 1), ("day", 1)]),
]


def day_of(moment: datetime) -> datetime:
    """Midnight (UTC) of the day holding `moment`."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


class UsageCounters:
    """A service's usage counts, on their way to MongoDB. Cheap to call on any hot path."""

    def __init__(self, db: Database, *, interval: float = FLUSH_SECONDS) -> None:
        self._writer = BatchedWriter(db, interval=interval)
        self._day: datetime | None = None
        self._day_name = ""

    def register(self, runtime: ServiceProcess) -> None:
        """Started with the service; its last counts written at the stop, in a step after
        those registered before this call (so register it after the steps whose work it
        counts: a dispatcher's attempts cut off at the stop are counted once they end)."""

        async def start(_: ServiceProcess) -> None:
            self._writer.start()

        runtime.on_startup(start)
        runtime.on_shutdown("usage_counts", self._writer.stop, minimum=0.02, cap=0.1)

    async def flush(self) -> None:
        """Write every count made before the call (what MongoDB refuses now is kept for the
        next flush)."""
        await self._writer.flush()

    def count(self, workspace_id: str, counter: str, n: int = 1) -> None:
        """`n` more of `counter` (one of WINDOWED) in today's bucket of the workspace."""
        if counter not in WINDOWED:
            raise ValueError(f"no usage counter {counter!r}")
        self._today(workspace_id, counter, n)

    def event(self, workspace_id: str, provider: str) -> None:
        """An event accepted from `provider` (`incoming` for an incoming webhook)."""
        if not provider or "." in provider or provider.startswith("$"):
            raise ValueError(f"no provider {provider!r}")
        self._today(workspace_id, f"events.{provider}", 1)

    def keep(self, workspace_id: str, counter: str, n: int) -> None:
        """`n` more (negative: fewer) of `counter` ("deliveries" or "attempts") stored."""
        if counter not in KEPT:
            raise ValueError(f"no kept usage counter {counter!r}")
        if workspace_id and n:
            self._writer.bump(
                COLLECTION,
                _KEPT_PREFIX + workspace_id,
                counter,
                by=n,
                create={"workspace_id": workspace_id},
            )

    def made(self, workspace_id: str, counter: str, n: int = 1) -> None:
        """`n` of `counter` made and stored: counted in today's bucket and kept."""
        self.count(workspace_id, counter, n)
        self.keep(workspace_id, counter, n)

    def _today(self, workspace_id: str, counter: str, n: int) -> None:
        if not workspace_id or n <= 0:
            return
        day = day_of(utcnow())
        if day != self._day:  # the day's name, made once a day rather than per event
            self._day, self._day_name = day, f"{day:%Y-%m-%d}"
        doc_id = f"{self._day_name}:{workspace_id}"
        create = {"workspace_id": workspace_id, "day": day}
        self._writer.bump(COLLECTION, doc_id, counter, by=n, create=create)
        self._writer.bump(COLLECTION, doc_id, ACTIVITY, by=n, create=create)


async def remove_buckets_before(db: Database, day: datetime) -> int:
    """Delete the day buckets of the days before the one holding `day` (the retention job
    passes now - the retention: what `window` no longer reads); how many went. The running
    totals are not buckets and stay."""
    result = await db[COLLECTION].delete_many({"day": {"$lt": day_of(day)}})
    return result.deleted_count


class OldDays:
    """The retention sweep of the day documents (shared.domain.retention): those before the
    window, in one `delete_many` (days times active workspaces: a few thousand at most)."""

    name = COLLECTION

    def __init__(self, db: Database, retention: timedelta) -> None:
        self.floor: datetime | None = None
        self._db = db
        self._retention = retention

    async def cutoff(self, now: datetime) -> datetime:
        return day_of(now - self._retention)

    async def remove(self, now: datetime, limit: int) -> dict[str, int]:
        self.floor = await self.cutoff(now)
        return {self.name: await remove_buckets_before(self._db, now - self._retention)}


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The days the windowed counts cover: from `since` (a UTC midnight) until now."""

    since: datetime
    until: datetime
    days: int


def window(retention: timedelta, now: datetime | None = None) -> Window:
    """The buckets the retention keeps: from the day holding now - `retention` to today."""
    now = now or utcnow()
    since = day_of(now - retention)
    return Window(since, now, (day_of(now) - since).days + 1)


@dataclass
class Usage:
    """One workspace's counts: over a window, and kept."""

    workspace_id: str
    integrations: dict[str, int] = field(default_factory=dict)  # by provider
    endpoints: int = 0
    events: dict[str, int] = field(default_factory=dict)
    messages_synced: int = 0
    messages_imported: int = 0
    deliveries: int = 0
    attempts: int = 0
    deliveries_kept: int = 0
    attempts_kept: int = 0

    @property
    def activity(self) -> int:
        return (
            sum(self.events.values())
            + self.messages_synced
            + self.messages_imported
            + self.deliveries
            + self.attempts
        )

    def add_bucket(self, doc: Document) -> None:
        for provider, n in (doc.get("events") or {}).items():
            self.events[provider] = self.events.get(provider, 0) + int(n)
        self.messages_synced += int(doc.get("messages_synced") or 0)
        self.messages_imported += int(doc.get("messages_imported") or 0)
        self.deliveries += int(doc.get("deliveries") or 0)
        self.attempts += int(doc.get("attempts") or 0)


async def usage_of(db: Database, workspace_ids: list[str], since: datetime) -> dict[str, Usage]:
    """The counts of each workspace: its integrations and outgoing webhooks (not deleted;
    counted on the `(workspace_id, _id)` index of each), its buckets since `since` (at most
    a window's days each) summed, and its running totals. Zeros for what it has none of."""
    found = {workspace_id: Usage(workspace_id) for workspace_id in workspace_ids}
    present = {"workspace_id": {"$in": workspace_ids}, "deleted_at": None}
    integrations = await count_by(db[INTEGRATIONS], ["workspace_id", "provider"], present)
    for (workspace_id, provider), n in integrations.items():
        found[workspace_id].integrations[provider] = n
    for (workspace_id,), n in (await count_by(db[ENDPOINTS], ["workspace_id"], present)).items():
        found[workspace_id].endpoints = n
    buckets = db[COLLECTION].find({"workspace_id": {"$in": workspace_ids}, "day": {"$gte": since}})
    async for doc in buckets:
        found[doc["workspace_id"]].add_bucket(doc)
    kept = db[COLLECTION].find({"_id": {"$in": [_KEPT_PREFIX + w for w in workspace_ids]}})
    async for doc in kept:
        usage = found[doc["workspace_id"]]
        usage.deliveries_kept = int(doc.get("deliveries") or 0)
        usage.attempts_kept = int(doc.get("attempts") or 0)
    return found


async def busiest(db: Database, since: datetime, limit: int) -> list[str]:
    """The `limit` workspaces with the most activity since `since`, the busiest first. One
    aggregation over the window's buckets: days times workspaces documents at most."""
    cursor = await db[COLLECTION].aggregate(
        [
            {"$match": {"day": {"$gte": since}}},
            {"$group": {"_id": "$workspace_id", "activity": {"$sum": f"${ACTIVITY}"}}},
            {"$sort": {"activity": -1, "_id": 1}},
            {"$limit": limit},
        ]
    )
    return [row["_id"] async for row in cursor if row["activity"] > 0]
