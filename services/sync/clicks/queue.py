"""What the chat asks of hookhub off the outbound consumer's path (SPEC §20): clicks on
cards (services.sync.clicks) and slash commands (services.sync.commands).

Each is written by the outbound consumer when it reads it, before its batch's offsets are
committed (services.sync.clicks.intake): its envelope id is its `_id`, so the same event
read again is the same document, run once. A worker in each sync replica claims the due
ones under a lease (`lease_owner`, `lease_until`; one that dies mid-way leaves them to the
next claim after the lease), acts on them and settles each: ended, or queued again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

import structlog
from pymongo import UpdateOne

from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import id_problem, new_id, utcnow
from shared.kernel.mongo import Collection, Document, insert_new

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)
# An ask that meets an outage (no answer, 5xx, MongoDB or Kafka away) is tried so often,
# waiting so long (seconds) before attempts 2..6.
ATTEMPTS = 6
BACKOFF = (2.0, 5.0, 15.0, 60.0, 300.0)
# Kept a week (TTL on `expires_at`), as the record of who asked what.
KEPT = timedelta(days=7)
IDLE_SECONDS = 1.0


class Unusable(ValueError):
    """A chat event that lacks what it asks needs: logged and counted, not kept."""


class Queued(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=Queued)


def queued(event: ChatEvent, now: datetime, fields: Document) -> Document:
    """The document of an event's ask, queued now: its own `fields` and the queue's."""
    return queued_as(event.id, event.workspace_id, now, fields)


def queued_as(ask_id: str, workspace_id: str, now: datetime, fields: Document) -> Document:
    """The document of an ask, queued now, whatever brought it (a chat event, a network's
    interaction: services.sync.clicks.networks), its id its key."""
    return {
        "_id": ask_id,
        "workspace_id": workspace_id,
        **fields,
        "status": "queued",
        "attempts": 0,
        "due_at": now,
        "created_at": now,
        "expires_at": now + KEPT,
    }


def asking_user(event: ChatEvent) -> Document:
    """`{id, name}` of the chat user who asks (`actor.id`, an id; `actor.name`, if any)."""
    actor = event.actor or {}
    who = actor.get("id")
    if not isinstance(who, str) or not who or id_problem(who) is not None:
        raise Unusable(f"{event.type} needs the chat user as actor.id")
    shown = actor.get("name")
    return {"id": who, "name": shown if isinstance(shown, str) else None}


def next_attempt(attempts: int, retry_after: float | None = None) -> datetime | None:
    """When an ask tried `attempts` times is tried again (not before `retry_after` seconds,
    when the other side said so); None once it has had every attempt."""
    if attempts >= ATTEMPTS:
        return None
    wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    return utcnow() + timedelta(seconds=max(wait, retry_after or 0.0))


@dataclass(frozen=True)
class Settled:
    """An ask's next state: ended with its outcome, or queued again at `due_at`; with
    `fields` (those not None) beside them."""

    id: str
    status: str
    outcome: dict[str, Any]
    due_at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def changes(self) -> Document:
        changes: Document = {"status": self.status, "outcome": self.outcome}
        if self.due_at is not None:
            changes["due_at"] = self.due_at
        changes.update({name: value for name, value in self.fields.items() if value is not None})
        return changes

    def update(self) -> UpdateOne:
        return UpdateOne(
            {"_id": self.id},
            {"$set": self.changes(), "$unset": {"lease_owner": "", "lease_until": ""}},
        )

    def applied(self, doc: Document) -> Document:
        """`doc`, an ask not written yet, as it is once settled."""
        settled = {**doc, **self.changes()}
        settled.pop("lease_owner", None)
        settled.pop("lease_until", None)
        return settled


class Queue(Generic[T]):
    """A collection of asks: written once each, claimed under a lease, settled."""

    def __init__(self, collection: Collection, of: Callable[[Document], T]) -> None:
        self._queue = collection
        self._of = of

    async def accept(self, docs: list[Document]) -> int:
        """The asks not written yet, written queued; how many were new."""
        return len(await insert_new(self._queue, docs))

    async def unknown(self, docs: list[Document]) -> list[Document]:
        """The asks not written yet (one read)."""
        if not docs:
            return []
        ids = [doc["_id"] for doc in docs]
        found = await self._queue.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()
        known = {doc["_id"] for doc in found}
        return [doc for doc in docs if doc["_id"] not in known]

    async def record(self, unwritten: Sequence[tuple[Document, Settled]]) -> None:
        """Asks that were not written, written as they are settled (one insert); any that
        is there after all (written by an earlier reading of its event) is updated."""
        docs = [settled.applied(doc) for doc, settled in unwritten]
        inserted = {doc["_id"] for doc in await insert_new(self._queue, docs)}
        await self.settle_all([s for _, s in unwritten if s.id not in inserted])

    async def claim(self, owner: str, now: datetime, limit: int) -> list[T]:
        """Due asks (queued, or held by a lease that ran out), leased to `owner`."""
        claimed: list[T] = []
        for due in (
            {"status": "queued", "due_at": {"$lte": now}},
            {"status": "running", "lease_until": {"$lte": now}},
        ):
            claimed += await self._claim(due, owner, now, limit - len(claimed))
        return claimed

    async def _claim(self, due: Document, owner: str, now: datetime, limit: int) -> list[T]:
        """One update of the due asks found, each marked with this claim's token, then one
        read of those it won (another replica may win some between the two): a claim is
        three round trips whatever its size. One `find_one_and_update` each cost the
        embedded server ~10 ms an ask (docs/benchmarks.md, footnote 23)."""
        if limit <= 0:
            return []
        ids = [doc["_id"] for doc in await self._queue.find(due, {"_id": 1}).limit(limit).to_list()]
        if not ids:
            return []
        token = new_id("clm")
        await self._queue.update_many(
            {"_id": {"$in": ids}, **due},
            {
                "$set": {
                    "status": "running",
                    "lease_owner": owner,
                    "lease_until": now + LEASE,
                    "claim": token,
                },
                "$inc": {"attempts": 1},
            },
        )
        won = await self._queue.find({"_id": {"$in": ids}, "claim": token}).to_list()
        return [self._of(doc) for doc in won]

    async def settle(
        self,
        item: T,
        status: str,
        outcome: dict[str, Any],
        due_at: datetime | None = None,
        **fields: Any,
    ) -> None:
        """The ask's next state: ended with its outcome, or queued again at `due_at`; with
        `fields` that are not None."""
        await self.settle_all([Settled(item.id, status, outcome, due_at, fields)])

    async def settle_all(self, settled: Sequence[Settled]) -> None:
        """Several asks' next states in one bulk write (a round's, written together)."""
        if settled:
            await self._queue.bulk_write([s.update() for s in settled], ordered=False)


class Worker:
    """The loop of a worker over a queue: a round now when woken (new asks accepted), else
    every `IDLE_SECONDS`; a round that did something is followed by another at once."""

    # The log event of a round that failed (MongoDB away).
    round_failed = "sync_asks_round_failed"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """New asks were accepted: look now rather than at the next idle tick."""
        self._wake.set()

    def stop(self) -> None:
        """No round after the one under way (the stop drains the consumers first): an idle
        worker ends at once, rather than be cut off mid-query by the stop's cancel."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                done = await self.round()
            except Exception as exc:  # MongoDB away: the next round tries again
                log.warning(self.round_failed, error=repr(exc))
                done = 0
            if not done and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)

    async def round(self) -> int:
        """One round of work; how much it did (0: idle until woken)."""
        raise NotImplementedError
