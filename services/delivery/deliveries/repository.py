"""The `deliveries`, `delivery_attempts` and `delivery_workers` collections: every query on
them lives here.

A delivery's attempt log: its first attempt is kept in the delivery's own document
(`first_attempt`), written with the outcome it led to (for nearly every delivery, the one
write it costs: docs/operations.md); a later one is a document of `delivery_attempts`
whose `_id` is `<delivery id>:<attempt>`, so a delivery's attempts are found by `_id`
from its count of attempts and the log needs no index of its own. The timeline's counts
per minute are kept apart (deliveries/timeline.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from services.delivery.deliveries import fifo
from shared.domain import tenancy
from shared.kernel.mongo import (
    Collection,
    Database,
    Document,
    Index,
    insert_new,
    paginate,
)

DELIVERIES = "deliveries"
ATTEMPTS = "delivery_attempts"
WORKERS = "delivery_workers"
KEYS = "delivery_keys"  # which process sends each FIFO key's deliveries (deliveries/fifo.py)
# The `lease_owner` of a FIFO endpoint's open delivery written to MongoDB: in its key's
# queue, sent by whichever process holds the key, never claimed one by one.
QUEUED = "fifo"
STATUSES = ("pending", "active", "completed", "failed", "delayed", "cancelled")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The scheduler reads due deliveries a page at a time (at least this many), and at most this
# many pages a poll: enough to get past the full lanes' backlog to another endpoint's.
CLAIM_PAGE = 100
CLAIM_PAGES = 10

# The list (`page`) is newest first by `_id`, filtered by equality on `endpoint_id`,
# `status` or `event_type` (and a `created_at` range): each of them has an index of that
# field then `_id`, so `filter + sort + limit` reads the page off one index in order and
# stops there (equality, sort, range: MongoDB's ESR rule). Unfiltered, the `_id` index
# serves it. Two equalities use the first field's index and check the other on the way.
LIST_INDEXES = [
    Index(DELIVERIES, [("endpoint_id", 1), ("_id", -1)]),
    Index(DELIVERIES, [("status", 1), ("_id", -1)]),
    Index(DELIVERIES, [("event_type", 1), ("_id", -1)]),
]
INDEXES = [
    # What waits and what has ended, one index for both: the scheduler's due deliveries
    # (nobody's, `next_attempt_at` in a range), a process's (`lease_owner`), and, past the
    # two nulls every ended delivery has (`FINISHED`), when each ended: retention removes
    # them a window at a time (deliveries/retention.py). An index fewer than one for each
    # costs every insert ~45 µs less on the embedded server (docs/benchmarks.md).
    Index(DELIVERIES, [("lease_owner", 1), ("next_attempt_at", 1), ("ended_at", 1)]),
    *LIST_INDEXES,
    Index(DELIVERIES, [("workspace_id", 1), ("_id", -1)]),
    # An endpoint's failed deliveries created in a range (recover, whose query names
    # `status: "failed"`): partial, so the others (nearly every delivery) cost no entry in
    # it. The list's endpoint and status filter is served by `endpoint_id, _id`.
    Index(
        DELIVERIES,
        [("endpoint_id", 1), ("status", 1), ("created_at", 1)],
        {"partialFilterExpression": {"status": "failed"}},
    ),
    # A FIFO endpoint's queued deliveries, a key's in order (deliveries/fifo.py): partial,
    # so no other delivery has an entry (the embedded server charges every insert for it
    # all the same, ~45 µs: docs/operations.md).
    Index(
        DELIVERIES,
        [("endpoint_id", 1), ("ordering_key", 1), ("sequence", 1)],
        {"partialFilterExpression": {"lease_owner": QUEUED}},
    ),
    Index(KEYS, [("lease_owner", 1)]),
    Index(KEYS, [("waiting", 1)], {"partialFilterExpression": {"waiting": True}}),
]
# No longer needed, dropped where an older version made them: the attempt log is read by
# `_id`, the timeline from its own counts; the scheduler's and retention's are one.
RETIRED_INDEXES = [
    Index(ATTEMPTS, [("delivery_id", 1), ("attempt", 1)], retired=True),
    Index(ATTEMPTS, [("at", 1)], retired=True),
    Index(DELIVERIES, [("lease_owner", 1), ("next_attempt_at", 1)], retired=True),
    Index(DELIVERIES, [("ended_at", 1)], retired=True),
]
# Of the delivery's document: the attempt the delivery service keeps there.
FIRST_ATTEMPT = "first_attempt"


def attempt_ids(delivery: Document) -> list[str]:
    """The `_id`s its attempts can have in `delivery_attempts` (`<delivery id>:<n>`), from
    the first (an older version logged it there too) to one past the count on the delivery
    (a process that died between writing an attempt and its outcome): point reads of the
    `_id` index, where a range of `_id`s is a scan of the collection on the embedded
    server."""
    count = int(delivery.get("attempts") or 0)
    return [f"{delivery['_id']}:{n}" for n in range(1, count + 2)]


def schedule(*, next_attempt_at: datetime | None, owner: str | None = None) -> Document:
    """When a delivery is next attempted, and which delivery process holds it meanwhile.

    A held delivery is its owner's to send, for as long as the owner's heartbeat in
    `delivery_workers` is fresh; then any scheduler takes it over. One held by nobody is
    taken by a scheduler at `next_attempt_at`. Holding costs no write per delivery: a
    process's backlog of thousands is kept by one heartbeat.
    """
    return {"next_attempt_at": next_attempt_at, "lease_owner": owner}


# What every ended delivery has (the outcome that ends it writes it), and no open one:
# neither an owner nor a next attempt.
FINISHED = schedule(next_attempt_at=None)


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self._deliveries: Collection = db[DELIVERIES]
        self._attempts: Collection = db[ATTEMPTS]
        # Whose deliveries are whose (shared.kernel.ownership).
        self.workers: Collection = db[WORKERS]
        self.deliveries: Collection = self._deliveries

    async def insert_new(self, docs: list[Document]) -> list[Document]:
        """Insert the deliveries that do not exist yet; return those (a replayed event's
        deliveries exist already, so nothing is sent twice)."""
        return await insert_new(self._deliveries, docs)

    async def existing(self, ids: list[str]) -> set[str]:
        """Those of `ids` that are written (a replayed batch's deliveries): one read of the
        `_id` index."""
        found = await self._deliveries.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()
        return {doc["_id"] for doc in found}

    async def get(self, delivery_id: str) -> Document | None:
        return tenancy.note(await self._deliveries.find_one(tenancy.narrow({"_id": delivery_id})))

    async def attempts(self, delivery: Document) -> list[Document]:
        """The attempt log of `delivery` (its document), oldest first."""
        query = {"_id": {"$in": attempt_ids(delivery)}}
        logged = await self._attempts.find(query).to_list()
        first = delivery.get(FIRST_ATTEMPT)
        if first is not None:
            logged.append(first)
        return sorted(logged, key=lambda attempt: int(attempt["attempt"]))

    async def page(
        self, *, filters: Document, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        # Without the payload (`body`, up to a Kafka message each) and the first attempt's
        # answer (up to 16 KiB): the list shows neither.
        return await paginate(
            self._deliveries,
            tenancy.narrow(filters),
            limit=limit,
            cursor=cursor,
            projection={"body": 0, FIRST_ATTEMPT: 0},
        )

    async def claim(
        self,
        owner: str,
        now: datetime,
        dead: list[str],
        limit: int,
        *,
        full: Sequence[str] = (),
        room_of: Callable[[str], int] | None = None,
    ) -> list[Document]:
        """Take for `owner` the open deliveries nobody holds that are due, and those held by
        the `dead` workers: at most `limit`, none of the endpoints in `full`, and at most
        `room_of(endpoint)` of each other one. Conditional on the holder still being the
        same, so when two schedulers race, each delivery goes to one."""
        # Only the index's fields in each query: an attempt's outcome clears the owner in
        # the same write as the status, so what is owned is open, and finished deliveries
        # have neither an owner nor a next attempt. A `status` condition, or an `endpoint_id`
        # one to leave the full lanes out, made SecantusDB scan the whole collection (0.2 s
        # at 10,000 deliveries, 0.8 s at 30,000, holding its lock, on every poll while one
        # lane was full). The full lanes are passed over here instead, a page at a time.
        # Bounded on both sides too: with only `$lte` it walked every null `next_attempt_at`
        # (300 ms at 10,000 deliveries, on every poll).
        skipped = set(full)
        taken: Counter[str] = Counter()

        def pick(docs: list[Document], want: int) -> list[str]:
            picked: list[str] = []
            for doc in docs:
                if len(picked) == want:
                    break
                endpoint_id = doc.get("endpoint_id", "")
                if endpoint_id in skipped:
                    continue
                if room_of is None or taken[endpoint_id] < room_of(endpoint_id):
                    taken[endpoint_id] += 1
                    picked.append(doc["_id"])
            return picked

        ids: list[str] = []
        size = max(limit, CLAIM_PAGE)
        after: Document = {"$gte": EPOCH}
        for _ in range(CLAIM_PAGES):
            # Oldest due first. A page that is all full lanes' moves the bound past it, so
            # a slow endpoint's backlog of retries does not hide another's (those due at
            # the very instant the page ended on wait for the next poll).
            due = {"lease_owner": None, "next_attempt_at": {**after, "$lte": now}}
            page = await (
                self._deliveries.find(due, {"_id": 1, "endpoint_id": 1, "next_attempt_at": 1})
                .sort("next_attempt_at", 1)
                .limit(size)
                .to_list()
            )
            picked = pick(page, limit - len(ids))
            await self._take(owner, picked, due)
            ids += picked
            if len(ids) >= limit or len(page) < size:
                break
            after = {"$gt": page[-1]["next_attempt_at"]}
        if dead and len(ids) < limit:
            # Whatever their next attempt says. All of them: what the dead held is bounded
            # by their room, and the full lanes' must not hide the others'.
            orphans = {"lease_owner": {"$in": dead}}
            found = await self._deliveries.find(orphans, {"_id": 1, "endpoint_id": 1}).to_list()
            picked = pick(found, limit - len(ids))
            await self._take(owner, picked, orphans)
            ids += picked
        if not ids:
            return []
        claimed: Document = {"_id": {"$in": ids}, "lease_owner": owner}
        return await self._deliveries.find(claimed, {FIRST_ATTEMPT: 0}).to_list()

    async def _take(self, owner: str, picked: list[str], held: Document) -> None:
        """Make `owner` the holder of those of `picked` still as `held` says (still due, or
        still the dead worker's): between the find and this update another scheduler may
        have claimed one, sent it and cleared its owner (`completed`, or `delayed` until
        later); "held by nobody" alone would take it a second time. The claim reads back
        which it got. One update per condition: SecantusDB answers an `$or` beside
        `_id: {$in}` with a scan of the collection (23 s for 750 of 20,000 deliveries,
        against 2 s)."""
        if picked:
            await self._deliveries.update_many(
                {"_id": {"$in": picked}, **held}, {"$set": {"lease_owner": owner}}
            )

    async def held_by(self, owner: str, ids: list[str]) -> list[Document]:
        """Those of `ids` that `owner` holds and has not tried yet."""
        query = {"_id": {"$in": ids}, "lease_owner": owner, "attempts": 0, "status": "pending"}
        return await self._deliveries.find(query).to_list()

    async def count_scheduled(self, now: datetime) -> int:
        """Deliveries nobody holds that wait for a later attempt (retries, mostly)."""
        return await self._deliveries.count_documents(
            {"lease_owner": None, "next_attempt_at": {"$gt": now}}
        )

    async def wake(self, endpoint_id: str, now: datetime) -> int:
        """The endpoint's deliveries that nobody holds and that wait for a later attempt,
        made due now (a listener connected: delivery/listen); how many. Read by the
        endpoint's index: only its own deliveries are looked at."""
        result = await self._deliveries.update_many(
            {"endpoint_id": endpoint_id, "lease_owner": None, "next_attempt_at": {"$gt": now}},
            {"$set": {"next_attempt_at": now}},
        )
        return result.modified_count

    async def reopen(self, query: Document, fields: dict[str, Any]) -> int:
        """Open again (retry, recover): no longer ended, so retention keeps it."""
        update = {"$set": {**fields, "ended_at": None}}
        result = await self._deliveries.update_many(tenancy.narrow(query), update)
        return result.modified_count

    async def counts(self, endpoint_id: str | None) -> dict[str, int]:
        match: Document = tenancy.narrow({"endpoint_id": endpoint_id} if endpoint_id else {})
        rows = await (
            await self._deliveries.aggregate(
                [{"$match": match}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
            )
        ).to_list()
        counts = dict.fromkeys(STATUSES, 0)
        for row in rows:
            counts[row["_id"]] = row["n"]
        return counts


class KeyRepository:
    """`delivery_keys` and the FIFO deliveries queued in `deliveries` (deliveries/fifo.py).

    A key's document is `{_id: "<endpoint id> <key>", lease_owner, waiting}`: held by the
    process whose id is its `lease_owner` (kept by that process's heartbeat, as its
    deliveries are), and `waiting` while deliveries of the key are queued in MongoDB for
    its holder to load."""

    def __init__(self, db: Database) -> None:
        self._keys: Collection = db[KEYS]
        self._deliveries: Collection = db[DELIVERIES]

    async def acquire(self, owner: str, ids: list[str]) -> set[str]:
        """Those of `ids` now held by `owner`: made for it, or taken while held by nobody.
        Conditional: of two processes asking at once, one gets each key."""
        if not ids:
            return set()
        made = await insert_new(
            self._keys, [{"_id": key_id, "lease_owner": owner, "waiting": False} for key_id in ids]
        )
        got = {doc["_id"] for doc in made}
        rest = [key_id for key_id in ids if key_id not in got]
        if rest:
            await self._keys.update_many(
                {"_id": {"$in": rest}, "lease_owner": None}, {"$set": {"lease_owner": owner}}
            )
            taken = self._keys.find({"_id": {"$in": rest}, "lease_owner": owner}, {"_id": 1})
            got |= {doc["_id"] for doc in await taken.to_list()}
        return got

    async def take_over(self, owner: str, dead: list[str]) -> list[str]:
        """The keys the `dead` workers held, now `owner`'s (waiting: what they queued is
        loaded)."""
        found = await self._keys.find({"lease_owner": {"$in": dead}}, {"_id": 1}).to_list()
        ids = [doc["_id"] for doc in found]
        if not ids:
            return []
        await self._keys.update_many(
            {"_id": {"$in": ids}, "lease_owner": {"$in": dead}},
            {"$set": {"lease_owner": owner, "waiting": True}},
        )
        return await self._held_of(owner, ids)

    async def _held_of(self, owner: str, ids: list[str]) -> list[str]:
        found = self._keys.find({"_id": {"$in": ids}, "lease_owner": owner}, {"_id": 1})
        return [doc["_id"] for doc in await found.to_list()]

    async def waiting(self) -> list[Document]:
        """Keys with deliveries queued for their holder (or for whoever takes them)."""
        return await self._keys.find({"waiting": True}).to_list()

    async def mark_waiting(self, ids: list[str]) -> None:
        """Deliveries of these keys were queued (after they were written): their holder, or
        whoever takes a key held by nobody, loads them at its next sweep."""
        if ids:
            await self._keys.update_many({"_id": {"$in": ids}}, {"$set": {"waiting": True}})

    async def clear_waiting(self, owner: str, key_id: str) -> None:
        """Before its holder reads a key's queue: a delivery queued after that read marks
        it waiting again."""
        await self._keys.update_one(
            {"_id": key_id, "lease_owner": owner}, {"$set": {"waiting": False}}
        )

    async def release(self, owner: str, ids: list[str] | None = None) -> int:
        """`owner` no longer holds these keys (all of its own without `ids`). Those not
        waiting are removed (a key's document exists while someone holds it or something
        waits for it); the others are left for whoever takes them next."""
        held: Document = {"lease_owner": owner}
        if ids is not None:
            held["_id"] = {"$in": ids}
        removed = await self._keys.delete_many({**held, "waiting": {"$ne": True}})
        freed = await self._keys.update_many(held, {"$set": {"lease_owner": None}})
        return removed.deleted_count + freed.modified_count

    async def wake(self, endpoint_id: str, now: datetime) -> int:
        """The endpoint's queued deliveries that wait for a later attempt (its keys' parked
        heads) made due now, and their keys marked waiting, so that each key's holder loads
        its queue at its next sweep rather than at the head's time (a listener connected:
        delivery/listen); how many. Read by the queue's partial index."""
        query = {"endpoint_id": endpoint_id, "lease_owner": QUEUED, "next_attempt_at": {"$gt": now}}
        found = await self._deliveries.find(query, {"ordering_key": 1}).to_list()
        if not found:
            return 0
        result = await self._deliveries.update_many(
            {"_id": {"$in": [doc["_id"] for doc in found]}, "lease_owner": QUEUED},
            {"$set": {"next_attempt_at": now}},
        )
        keys = sorted({doc.get("ordering_key") or "" for doc in found})
        await self.mark_waiting([fifo.key_id(endpoint_id, key) for key in keys])
        return result.modified_count

    async def queued(self, endpoint_id: str, key: str, limit: int) -> list[Document]:
        """A key's deliveries queued in MongoDB, first in its order first."""
        query = {"endpoint_id": endpoint_id, "ordering_key": key, "lease_owner": QUEUED}
        found = self._deliveries.find(query, {FIRST_ATTEMPT: 0}).sort("sequence", 1)
        return await found.limit(limit).to_list()

    async def queued_keys(self, endpoint_ids: list[str], keys: list[str]) -> set[tuple[str, str]]:
        """Of these endpoints' keys, the (endpoint id, key) pairs with deliveries queued."""
        query = {
            "endpoint_id": {"$in": endpoint_ids},
            "ordering_key": {"$in": keys},
            "lease_owner": QUEUED,
        }
        found = self._deliveries.find(query, {"endpoint_id": 1, "ordering_key": 1})
        return {(doc["endpoint_id"], doc["ordering_key"]) for doc in await found.to_list()}

    async def held_keys(self, endpoint_id: str, limit: int) -> list[Document]:
        """An endpoint's queued deliveries, by key then order (the API's held keys):
        without their bodies."""
        query = {"endpoint_id": endpoint_id, "lease_owner": QUEUED}
        projection = {"body": 0, FIRST_ATTEMPT: 0}
        found = self._deliveries.find(query, projection).sort(
            [("ordering_key", 1), ("sequence", 1)]
        )
        return await found.limit(limit).to_list()
