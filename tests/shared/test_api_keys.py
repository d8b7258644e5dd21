"""KeyChecker (shared/domain/api_keys.py) on the real database: two replicas' checkers, a key issued,
then revoked through one replica's repository: the other refuses it after its next cache
refresh (by construction: a refresh begun after the change), never by a database read per
request; an expired key is refused at once; `last_used_at` is written in bulk, once per key
and interval, not per check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.domain import api_keys
from shared.kernel.crypto import fingerprint
from shared.kernel.ids import new_id, utcnow
from shared.kernel.mongo import BatchedWriter, Database, ensure_indexes
from shared.kernel.runtime import Runtime
from shared.kernel.settings import ServiceSettings
from tests.infra import Infra
from tests.support import make_settings, new_namespace


@pytest.fixture
async def db(infra: Infra, tmp_path: Path) -> AsyncIterator[Database]:
    settings = make_settings(ServiceSettings, infra, new_namespace(), tmp_path)
    runtime = Runtime(settings=settings, service="oauth")
    await ensure_indexes(runtime.db, api_keys.INDEXES)
    yield runtime.db
    await runtime.stop()


async def _issue(db: Database, workspace: str, **fields: Any) -> str:
    key = api_keys.new_key()
    now = utcnow()
    await api_keys.ApiKeyRepository(db).insert(
        {
            "_id": new_id("key"),
            "workspace_id": workspace,
            "name": "bot",
            "prefix": key[: api_keys.SHOWN],
            "key_hash": fingerprint(key),
            "scopes": ["read"],
            "created_at": now,
            "last_used_at": None,
            "expires_at": None,
            "updated_at": now,
            "deleted_at": None,
            **fields,
        }
    )
    return key


async def test_two_replicas_refuse_a_revoked_key_after_their_next_refresh(db: Database) -> None:
    repository = api_keys.ApiKeyRepository(db)
    writer = BatchedWriter(db, interval=3600)
    one, two = (api_keys.KeyChecker(repository, writer, refresh_seconds=5) for _ in range(2))
    key = await _issue(db, "ws_a")
    expired = await _issue(db, "ws_a", expires_at=utcnow() - timedelta(seconds=1))
    await one.cache.refresh()
    await two.cache.refresh()
    for checker in (one, two):
        found = await checker.check(key)
        assert found is not None and found.workspace_id == "ws_a"
        assert found.scopes == frozenset({"read"})
        assert await checker.check(expired) is None  # expired: refused without a refresh
        assert (
            await checker.check("hhk_" + "x" * 43) is None and await checker.check("Bearer") is None
        )
    doc = await repository.find_by_hash(fingerprint(key))
    assert doc is not None
    await repository.soft_delete(doc["_id"])
    # Until its refresh a replica still knows the key; the first refresh after the
    # revocation (at most 5 s later: HOOKHUB_CACHE_REFRESH_SECONDS) ends it.
    assert await two.check(key) is not None
    await two.cache.refresh()
    assert await two.check(key) is None
    await one.cache.refresh()
    assert await one.check(key) is None


async def test_last_used_is_written_once_per_key_and_interval(db: Database) -> None:
    repository = api_keys.ApiKeyRepository(db)
    writer = BatchedWriter(db, interval=3600)
    checker = api_keys.KeyChecker(repository, writer, refresh_seconds=5)
    key = await _issue(db, "ws_b")
    await checker.cache.refresh()
    for _ in range(100):
        assert await checker.check(key) is not None
    doc = await repository.find_by_hash(fingerprint(key))
    assert doc is not None and doc["last_used_at"] is None  # nothing written per check
    await writer.stop()  # the bulk write
    doc = await repository.find_by_hash(fingerprint(key))
    assert doc is not None and doc["last_used_at"] is not None
