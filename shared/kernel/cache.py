"""Per-replica caches of MongoDB documents, kept fresh from `updated_at`, off the request path.

Loaded at start, refreshed every few seconds (which is how a change made through another
replica arrives), updated at once for changes made through this replica. Deleted documents
stay as tombstones (`deleted_at` set) so every replica sees the deletion.

A refresh never undoes a change this replica applied while the refresh's query was out:
that query may have read the document before the change (a rotated secret would go back to
the old one until the next refresh). Such documents are left as applied; the next refresh
reads them again (its window overlaps the last one).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

import structlog

from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Each refresh asks for the changes since the previous one's query went out, less this
# overlap: a replica whose clock runs a little behind ours, or a write stamped a moment
# before it committed, is not missed.
_CLOCK_SKEW = timedelta(seconds=5)
_MAX_NEGATIVE_ENTRIES = 10_000


class ChangeFeed(Protocol):
    """A repository a cache can follow: documents changed since a time, one by id."""

    async def changed_since(self, since: datetime | None) -> list[Document]: ...

    async def find_any(self, doc_id: str) -> Document | None: ...


class RefreshingCache(Generic[K, V]):
    """Documents by a key of our choosing (a token fingerprint, an integration id, ...)."""

    def __init__(
        self,
        *,
        changed_since: Callable[[datetime | None], Awaitable[list[Document]]],
        find: Callable[[K], Awaitable[Document | None]],
        key: Callable[[Document], K],
        snapshot: Callable[[Document], V],
        refresh_seconds: float,
        name: str,
    ) -> None:
        self._changed_since = changed_since
        self._find = find
        self._key = key
        self._snapshot = snapshot
        self._refresh_seconds = refresh_seconds
        self._name = name
        self._by_key: dict[K, V] = {}
        self._key_of: dict[str, K] = {}
        self._unknown_until: dict[K, float] = {}
        # Ids whose tombstone this replica has seen (documents deleted since it started, or
        # looked up after their deletion): "deleted", as opposed to "not known here yet".
        self._gone: set[str] = set()
        # When the last refresh's query went out, by this replica's clock. Not the newest
        # `updated_at` seen: a thousand documents changed within the overlap of the newest
        # (mappings created in a burst) would be read again at every refresh, for good.
        self._watermark: datetime | None = None
        # Ids applied here while a refresh's query was out (None: no refresh is running).
        self._applied_during_refresh: set[str] | None = None
        self._reread_at: dict[K, float] = {}
        self.loaded = False
        # When the last refresh that finished began (monotonic): a change written before
        # that is in the cache (tests wait for a refresh begun after their write).
        self.last_refresh_began = 0.0
        # When the last refresh that finished began, by this replica's wall clock: every
        # change written before then (within the clock skew allowed for) is in the cache.
        self.refreshed_as_of: datetime | None = None
        self._refreshing = asyncio.Lock()
        # Raised by every change applied: views derived from `values()` rebuild when it moved.
        self.version = 0

    @classmethod
    def by_id(
        cls,
        repository: ChangeFeed,
        snapshot: Callable[[Document], V],
        *,
        refresh_seconds: float,
        name: str,
    ) -> RefreshingCache[str, V]:
        """The documents of `repository` by their `_id`."""
        return RefreshingCache(
            changed_since=repository.changed_since,
            find=repository.find_any,
            key=lambda doc: str(doc["_id"]),
            snapshot=snapshot,
            refresh_seconds=refresh_seconds,
            name=name,
        )

    def get(self, key: K) -> V | None:
        return self._by_key.get(key)

    async def lookup(self, key: K) -> V | None:
        """From memory; on a miss, ask MongoDB once (a document created a moment ago through
        another replica), then remember the miss for one refresh interval."""
        hit = self._by_key.get(key)
        if hit is not None:
            return hit
        if self._unknown_until.get(key, 0.0) > time.monotonic():
            return None
        doc = await self._find(key)
        if doc is not None:
            self.apply(doc)
        if key not in self._by_key:
            if len(self._unknown_until) >= _MAX_NEGATIVE_ENTRIES:
                self._unknown_until.clear()
            self._unknown_until[key] = time.monotonic() + self._refresh_seconds
        return self._by_key.get(key)

    def values(self) -> list[V]:
        return list(self._by_key.values())

    def gone(self, doc_id: str) -> bool:
        """Whether this replica has seen `doc_id` deleted (and not recreated since)."""
        return doc_id in self._gone

    async def reread(self, key: K, *, at_most_every: float = 1.0) -> V | None:
        """`key` read again from MongoDB, at most once per `at_most_every` seconds per key
        (None when asked again sooner, or when it is gone): for a caller that was refused
        with what the cache holds and may have been refused with a stale copy (a secret
        changed a moment ago through another service or replica)."""
        now = time.monotonic()
        if self._reread_at.get(key, -at_most_every) + at_most_every > now:
            return None
        if len(self._reread_at) >= _MAX_NEGATIVE_ENTRIES:
            self._reread_at.clear()
        self._reread_at[key] = now
        doc = await self._find(key)
        if doc is None:
            return None
        self.apply(doc)
        return self._by_key.get(key)

    def apply(self, doc: Document) -> None:
        """A document as this replica just wrote (or read) it."""
        if self._applied_during_refresh is not None:
            self._applied_during_refresh.add(str(doc["_id"]))
        self._apply(doc)

    def _apply(self, doc: Document) -> None:
        self.version += 1
        doc_id = str(doc["_id"])
        previous = self._key_of.pop(doc_id, None)
        if previous is not None:
            self._by_key.pop(previous, None)
        if doc.get("deleted_at") is None:
            key = self._key(doc)
            self._by_key[key] = self._snapshot(doc)
            self._key_of[doc_id] = key
            self._unknown_until.pop(key, None)
            self._gone.discard(doc_id)
        else:
            self._gone.add(doc_id)

    async def covering(self, moment: datetime) -> None:
        """Return once the cache holds every change written before `moment`: at once when
        a refresh begun after it has finished, else after one (for a consumer that must
        not miss a document created just before the event it handles)."""
        if self.refreshed_as_of is not None and self.refreshed_as_of >= moment:
            return
        async with self._refreshing:
            if self.refreshed_as_of is not None and self.refreshed_as_of >= moment:
                return
            await self._refresh()

    async def refresh(self) -> None:
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        since = self._watermark - _CLOCK_SKEW if self._watermark else None
        began = time.monotonic()
        started = utcnow()
        applied_meanwhile = self._applied_during_refresh = set()
        try:
            changed = await self._changed_since(since)
        finally:
            self._applied_during_refresh = None
        for doc in changed:
            if str(doc["_id"]) not in applied_meanwhile:
                self._apply(doc)
        self._watermark = started
        self.refreshed_as_of = started
        self.last_refresh_began = began
        self.loaded = True

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # MongoDB down: keep serving what we know
                log.warning("cache_refresh_failed", cache=self._name, error=repr(exc))
            await asyncio.sleep(self._refresh_seconds)

    async def ready(self) -> tuple[bool, str]:
        return self.loaded, "ok" if self.loaded else f"{self._name} cache not loaded yet"


class RecentIds:
    """Ids this replica handled lately (bounded, oldest forgotten first), asked before
    MongoDB: envelope ids the gateway published, map copies sync brought in."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    def add(self, item_id: str) -> None:
        self._ids[item_id] = None
        self._ids.move_to_end(item_id)
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


class Kept(Generic[K, V]):
    """Answers this replica need not ask for again so soon, each kept for its own while,
    the newest `capacity` of them (the oldest forgotten first): a provider's user, a
    repository's labels, whether anyone could read a card's offers. `entry` also gives one
    that is no longer fresh, for a caller that would rather show it than nothing."""

    def __init__(self, capacity: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._capacity = capacity
        self._clock = clock

    def entry(self, key: K) -> tuple[V, bool] | None:
        """The value kept for `key` and whether it is still fresh; None: none kept."""
        kept = self._kept.get(key)
        if kept is None:
            return None
        return kept[1], self._clock() < kept[0]

    def fresh(self, key: K) -> tuple[V] | None:
        """`(value,)` while it is fresh (a kept None is a value too), else None."""
        kept = self.entry(key)
        return (kept[0],) if kept is not None and kept[1] else None

    def put(self, key: K, value: V, seconds: float) -> None:
        self._kept[key] = (self._clock() + seconds, value)
        self._kept.move_to_end(key)
        while len(self._kept) > self._capacity:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()
