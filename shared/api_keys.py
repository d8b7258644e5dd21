"""Workspace API keys (SPEC §13): issued per workspace, `hhk_` then 43 URL-safe characters
(256 random bits), stored as their SHA-256 fingerprint only, never the key. Every query on the
`api_keys` collection lives here. Revoking keeps a tombstone, for the per-replica caches
that will find keys by fingerprint to learn of it.

Issued and revoked through the oauth service; not accepted by the management API yet (the
scoping of every route to the key's workspace comes with it, SPEC §13)."""

from __future__ import annotations

import secrets

from shared.mongo import Database, Document, Index, TombstoneCollection

COLLECTION = "api_keys"
PREFIX = "hhk_"
# What a key's listing shows of it: `hhk_` and its first 8 characters.
SHOWN = len(PREFIX) + 8

INDEXES = [
    Index(COLLECTION, [("key_hash", 1)], {"unique": True}),
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
]


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


class ApiKeyRepository(TombstoneCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def find_by_hash(self, key_hash: str) -> Document | None:
        return await self.collection.find_one({"key_hash": key_hash})
