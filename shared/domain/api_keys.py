"""Workspace API keys and portal sessions (SPEC §13): issued per workspace, `hhk_` (a key)
or `hhp_` (a portal session's token) then 43 URL-safe characters (256 random bits), stored
as their SHA-256 fingerprint only, never the key. Both live in the `api_keys` collection
(`kind` tells them apart): a portal session is a key that expires within a week and is
ended with the workspace's other sessions by expire-all. Every query on the collection
lives here, and `KeyChecker`, which finds a key by its fingerprint.

Issued and revoked through the oauth service; accepted by every service's management API
(shared.kernel.http.auth)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.cache import RefreshingCache
from shared.kernel.crypto import fingerprint
from shared.kernel.http.auth import Caller
from shared.kernel.ids import new_id, utcnow, utcnow_ms
from shared.kernel.mongo import (
    BatchedWriter,
    Database,
    Document,
    Index,
    paginate,
)
from shared.kernel.process import ServiceProcess

COLLECTION = "api_keys"
PREFIX = "hhk_"
PORTAL_PREFIX = "hhp_"
PREFIXES = (PREFIX, PORTAL_PREFIX)
KEY = "key"
PORTAL = "portal"
# What a key's listing shows of it: `hhk_` and its first 8 characters.
SHOWN = len(PREFIX) + 8

INDEXES = [
    Index(COLLECTION, [("key_hash", 1)], {"unique": True}),
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]


def new_key(prefix: str = PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def issue(
    kind: str,
    workspace_id: str,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
) -> tuple[str, Document]:
    """A new key (`KEY`) or portal session's token (`PORTAL`) and the document that stands
    for it: its fingerprint and what it shows of itself, never the key."""
    key = new_key(PORTAL_PREFIX if kind == PORTAL else PREFIX)
    now = utcnow_ms()
    return key, {
        "_id": new_id("pts" if kind == PORTAL else "key"),
        "kind": kind,
        "workspace_id": workspace_id,
        "name": name,
        "prefix": key[:SHOWN],
        "key_hash": fingerprint(key),
        "scopes": scopes,
        "created_at": now,
        "last_used_at": None,
        "expires_at": expires_at,
        "updated_at": now,
        "deleted_at": None,
    }


class ApiKeyRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def find_by_hash(self, key_hash: str) -> Document | None:
        return await self.collection.find_one({"key_hash": key_hash})

    async def page_of_kind(
        self, kind: str, workspace_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Document], str | None]:
        """A workspace's keys (`KEY`) or portal sessions (`PORTAL`); keys written before
        portal sessions existed have no `kind`."""
        query: Document = {"deleted_at": None, "workspace_id": workspace_id}
        query["kind"] = {"$in": [KEY, None]} if kind == KEY else kind
        return await paginate(self.collection, query, limit=limit, cursor=cursor)

    async def end_portal_sessions(self, workspace_id: str) -> int:
        """Every open portal session of the workspace ended (tombstoned: every replica's
        cache learns of it at its next refresh)."""
        now = utcnow()
        result = await self.collection.update_many(
            {"workspace_id": workspace_id, "kind": PORTAL, "deleted_at": None},
            {"$set": {"deleted_at": now, "updated_at": now}},
        )
        return result.modified_count


@dataclass(frozen=True)
class KeySnapshot:
    """What authenticating with a key needs of it."""

    id: str
    workspace_id: str
    scopes: frozenset[str]
    expires_at: datetime | None
    kind: str = KEY

    def usable(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


def snapshot(doc: Document) -> KeySnapshot:
    expires = doc.get("expires_at")
    if expires is not None and expires.tzinfo is None:  # MongoDB gives naive UTC times back
        expires = expires.replace(tzinfo=UTC)
    return KeySnapshot(
        id=doc["_id"],
        workspace_id=doc["workspace_id"],
        scopes=frozenset(doc.get("scopes") or ()),
        expires_at=expires,
        kind=doc.get("kind") or KEY,
    )


class KeyChecker:
    """Keys found by fingerprint in a per-replica cache, never by a MongoDB read per request
    (a stream of made-up keys costs a dict lookup each): a key issued or revoked through
    another replica is known here after the cache's next refresh, which must come within
    5 s (SPEC §13). Each key's `last_used_at` is written in bulk, at most once a minute per
    key, not once per request."""

    LAST_USED_EVERY_SECONDS = 60.0

    def __init__(
        self, repository: ApiKeyRepository, writer: BatchedWriter, *, refresh_seconds: float
    ) -> None:
        self.cache: RefreshingCache[str, KeySnapshot] = RefreshingCache(
            changed_since=repository.changed_since,
            find=repository.find_by_hash,
            key=lambda doc: str(doc["key_hash"]),
            snapshot=snapshot,
            refresh_seconds=refresh_seconds,
            name="api keys",
        )
        self._writer = writer
        self._noted: dict[str, float] = {}

    async def check(self, key: str) -> KeySnapshot | None:
        """The key's snapshot if it is one hookhub issued, not revoked and not expired.

        A key this replica does not know yet (issued through another one a moment ago) is
        looked for in MongoDB once, and its absence remembered for one refresh interval:
        only a well-formed key gets that far, and a valid one is then served from memory."""
        if not well_formed(key):
            return None
        digest = fingerprint(key)
        found = self.cache.get(digest) or await self.cache.lookup(digest)
        now = utcnow()
        if found is None or not found.usable(now):
            return None
        moment = time.monotonic()
        if moment - self._noted.get(found.id, -self.LAST_USED_EVERY_SECONDS) >= (
            self.LAST_USED_EVERY_SECONDS
        ):
            self._noted[found.id] = moment
            self._writer.set_fields(COLLECTION, found.id, {"last_used_at": now})
        return found


_BODY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def well_formed(key: str) -> bool:
    """`hhk_` or `hhp_` then the 43 characters `new_key` makes."""
    return len(key) == len(PREFIX) + 43 and key.startswith(PREFIXES) and _BODY.issuperset(key[4:])


class Credentials:
    """Keys and portal sessions as the kernel's `Access` asks for them
    (shared.kernel.http.auth.Credentials): the per-replica cache of their fingerprints, refreshed
    in the background from the service's start, so that a request costs no MongoDB read (one
    for a key this replica has not seen yet, issued a moment ago elsewhere). `writer` takes
    their `last_used_at`."""

    def __init__(self, runtime: ServiceProcess, writer: BatchedWriter) -> None:
        self.keys = KeyChecker(
            ApiKeyRepository(runtime.db),
            writer,
            refresh_seconds=runtime.settings.api_key_refresh_seconds,
        )

        async def start(_: ServiceProcess) -> None:
            runtime.background("api-key-cache", self.keys.cache.run)

        runtime.on_startup(start)

    def recognises(self, token: str) -> bool:
        return token.startswith(PREFIXES)

    async def identify(self, token: str) -> Caller | None:
        found = await self.keys.check(token)
        if found is None:
            return None
        return Caller(
            kind="portal" if found.kind == PORTAL else "key",
            id=found.id,
            workspace_id=found.workspace_id,
            can_write="write" in found.scopes,
            expires_at=found.expires_at,
        )
