"""Per-replica cache of incoming-webhook tokens, so the ingress needs no MongoDB round trip.

Loaded at start, refreshed from `updated_at` every few seconds (which is how a change made
through another replica arrives), updated at once for changes made through this one. Keys
are SHA-256 fingerprints of the tokens; the plain tokens are never held here.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import structlog

from services.gateway.incoming_webhooks.repository import IncomingWebhookRepository
from services.gateway.incoming_webhooks.service import HookSnapshot
from shared.crypto import fingerprint
from shared.ids import utcnow
from shared.mongo import Document

log = structlog.get_logger(__name__)

# Changes are re-read with this overlap, so a replica whose clock runs a little behind
# cannot write an `updated_at` older than our watermark and be missed.
_CLOCK_SKEW = timedelta(seconds=5)
_MAX_NEGATIVE_ENTRIES = 10_000


class TokenCache:
    def __init__(self, repository: IncomingWebhookRepository, *, refresh_seconds: float) -> None:
        self._repository = repository
        self._refresh_seconds = refresh_seconds
        self._by_hash: dict[str, HookSnapshot] = {}
        self._hash_of: dict[str, str] = {}
        self._unknown_until: dict[str, float] = {}
        self._watermark: datetime | None = None
        self.loaded = False

    async def lookup(self, token: str) -> HookSnapshot | None:
        token_hash = fingerprint(token)
        hit = self._by_hash.get(token_hash)
        if hit is not None:
            return hit
        if self._unknown_until.get(token_hash, 0.0) > time.monotonic():
            return None
        # A hook created through another replica a moment ago is not here yet: ask once.
        doc = await self._repository.find_by_token_hash(token_hash)
        if doc is not None:
            self.apply(doc)
        if token_hash not in self._by_hash:
            if len(self._unknown_until) >= _MAX_NEGATIVE_ENTRIES:
                self._unknown_until.clear()
            self._unknown_until[token_hash] = time.monotonic() + self._refresh_seconds
        return self._by_hash.get(token_hash)

    def apply(self, doc: Document) -> None:
        hook_id = str(doc["_id"])
        previous = self._hash_of.pop(hook_id, None)
        if previous:
            self._by_hash.pop(previous, None)
        if doc.get("deleted_at") is None:
            self._by_hash[doc["token_hash"]] = snapshot(doc)
            self._hash_of[hook_id] = doc["token_hash"]
            self._unknown_until.pop(doc["token_hash"], None)

    async def refresh(self) -> None:
        since = self._watermark - _CLOCK_SKEW if self._watermark else None
        docs = await self._repository.changed_since(since)
        for doc in docs:
            self.apply(doc)
            if self._watermark is None or doc["updated_at"] > self._watermark:
                self._watermark = doc["updated_at"]
        if self._watermark is None:
            self._watermark = utcnow()
        self.loaded = True

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # MongoDB down: keep serving what we know
                log.warning("token_cache_refresh_failed", error=repr(exc))
            await asyncio.sleep(self._refresh_seconds)


def snapshot(doc: Document) -> HookSnapshot:
    return HookSnapshot(
        id=str(doc["_id"]),
        workspace_id=doc["workspace_id"],
        target_channel_id=doc["target_channel_id"],
        name=doc["name"],
        enabled=bool(doc.get("enabled", True)),
        default_username=doc.get("default_username"),
        default_icon_url=doc.get("default_icon_url"),
    )
