"""The notifications consumer's index of subscriptions: looking an event's repository up in it
leaves out only subscriptions whose `repositories` filter would leave the event out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.sync.notifications.directory import SubscriptionDirectory, snapshot
from services.sync.subscriptions.filters import filtered
from shared.kernel.cache import RefreshingCache
from shared.kernel.ids import utcnow
from shared.providers.notify import Notice

REPOSITORIES: list[list[str] | None] = [
    None,
    ["octo-org/api"],
    ["Octo-Org/API", "octo-org/web"],
    ["octo-org/*"],
    ["octo-org/web", "other/*"],
    ["other/tool"],
    ["octo-org/ap?"],
]


async def _nothing(_: Any) -> Any:
    return None


async def _directory(docs: list[dict[str, Any]]) -> SubscriptionDirectory:
    async def changed_since(_: Any) -> list[dict[str, Any]]:
        return docs

    cache = RefreshingCache(
        changed_since=changed_since,
        find=_nothing,
        key=lambda doc: str(doc["_id"]),
        snapshot=snapshot,
        refresh_seconds=60,
        name="subscriptions",
    )
    await cache.refresh()
    return SubscriptionDirectory(cache)


def _doc(n: int, integration: str, repositories: list[str] | None, enabled: bool = True) -> Any:
    created = utcnow() - timedelta(minutes=60 - n)
    return {
        "_id": f"sub_{n:03d}",
        "workspace_id": "ws",
        "integration_id": integration,
        "provider": "github",
        "channel_id": f"ch_{n}",
        "repositories": repositories,
        "enabled": enabled,
        "created_at": created,
        "updated_at": created,
        "deleted_at": None,
    }


async def test_an_events_repository_finds_every_subscription_that_may_take_it() -> None:
    docs = [_doc(n, "int_a", r) for n, r in enumerate(REPOSITORIES)]
    docs += [_doc(10 + n, "int_b", r) for n, r in enumerate(REPOSITORIES)]
    docs.append(_doc(30, "int_a", None, enabled=False))
    directory = await _directory(docs)
    everyone = [s for s in directory.cache.values() if s.integration_id == "int_a"]
    for repository in ("octo-org/api", "OCTO-ORG/api", "octo-org/web", "other/tool", "x/y", None):
        notice = Notice(event="push", text="", default=True, repository=repository)
        found = directory.of("int_a", repository)
        assert [s.id for s in found] == sorted(s.id for s in found)  # oldest first
        expected = {
            s.id for s in everyone if s.filters.enabled and filtered(s.filters, notice) is None
        }
        taken = {s.id for s in found if filtered(s.filters, notice) is None}
        assert taken == expected, repository
    assert directory.has("int_a") and not directory.has("int_c")
    assert "sub_030" not in {s.id for s in directory.of("int_a", None)}  # disabled
