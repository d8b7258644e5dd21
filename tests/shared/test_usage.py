"""The usage counters (shared.domain.usage) against the real MongoDB-protocol server: counted in
memory, written in one bulk write of summed `$inc` upserts, kept totals going down as well
as up, day buckets removed by the retention, the window and the ranking read back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from shared.domain import usage
from shared.domain.usage import COLLECTION, UsageCounters
from shared.kernel.mongo import Database
from tests.infra import Infra
from tests.support import new_namespace

TODAY = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


class Commands(monitoring.CommandListener):
    """The write commands the client sent, by name."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in {"update", "insert", "delete"}:
            self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def watched(infra: Infra) -> AsyncIterator[tuple[Database, Commands]]:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongo_uri, tz_aware=True, event_listeners=[commands]
    )
    name = f"hookhub_{new_namespace()}"
    yield client[name], commands
    await client.drop_database(name)
    await client.close()


def at(moment: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counts made from now on are made at `moment`."""
    monkeypatch.setattr(usage, "utcnow", lambda: moment)


async def test_many_counts_are_one_bulk_write_of_summed_increments(
    watched: tuple[Database, Commands], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, commands = watched
    at(TODAY, monkeypatch)
    counters = UsageCounters(db)
    for _ in range(1000):
        counters.event("ws_a", "github")
    for _ in range(250):
        counters.event("ws_a", "incoming")
    for _ in range(40):
        counters.made("ws_a", "deliveries")
    counters.made("ws_a", "attempts", 7)
    counters.count("ws_b", "messages_synced", 5)
    counters.count("ws_b", "messages_imported", 300)
    counters.keep("ws_b", "deliveries", 12)
    counters.keep("ws_b", "deliveries", -2)  # removed by the retention in the same flush
    assert commands.sent == [], "counting writes nothing"

    await counters.flush()

    [update] = commands.sent
    assert update["update"] == COLLECTION
    sent = {u["q"]["_id"]: u for u in update["updates"]}
    assert set(sent) == {"2026-03-10:ws_a", "2026-03-10:ws_b", "kept:ws_a", "kept:ws_b"}
    assert all(u["upsert"] for u in sent.values())
    assert sent["2026-03-10:ws_a"]["u"]["$inc"] == {
        "events.github": 1000,
        "events.incoming": 250,
        "deliveries": 40,
        "attempts": 7,
        "activity": 1297,
    }
    assert sent["kept:ws_a"]["u"]["$inc"] == {"deliveries": 40, "attempts": 7}
    assert sent["kept:ws_b"]["u"]["$inc"] == {"deliveries": 10}
    assert await db[COLLECTION].find_one({"_id": "2026-03-10:ws_b"}) == {
        "_id": "2026-03-10:ws_b",
        "workspace_id": "ws_b",
        "day": datetime(2026, 3, 10, tzinfo=UTC),
        "messages_synced": 5,
        "messages_imported": 300,
        "activity": 305,
    }

    # The next flush adds to what is there; a negative keep takes off.
    counters.event("ws_a", "github")
    counters.keep("ws_a", "deliveries", -15)
    counters.keep("ws_a", "attempts", -7)
    await counters.flush()
    assert len(commands.sent) == 2
    bucket = await db[COLLECTION].find_one({"_id": "2026-03-10:ws_a"})
    assert bucket is not None and bucket["events"] == {"github": 1001, "incoming": 250}
    kept = await db[COLLECTION].find_one({"_id": "kept:ws_a"})
    assert kept == {"_id": "kept:ws_a", "workspace_id": "ws_a", "deliveries": 25, "attempts": 0}

    await counters.flush()  # nothing counted since: nothing sent
    assert len(commands.sent) == 2


async def test_unknown_counters_are_refused_and_nothing_is_counted_for_no_workspace(
    db: Database,
) -> None:
    counters = UsageCounters(db)
    with pytest.raises(ValueError):
        counters.count("ws_a", "messages")
    with pytest.raises(ValueError):
        counters.keep("ws_a", "messages_synced", 1)
    with pytest.raises(ValueError):
        counters.event("ws_a", "git.hub")
    counters.count("", "deliveries")
    counters.keep("", "deliveries", 1)
    await counters.flush()
    assert await db[COLLECTION].count_documents({}) == 0


async def test_the_window_reads_the_days_the_retention_keeps(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = UsageCounters(db)
    for days_ago in (0, 1, 2, 30, 31):
        at(TODAY - timedelta(days=days_ago), monkeypatch)
        counters.event("ws_a", "slack")
        counters.made("ws_a", "deliveries")
    await counters.flush()

    window = usage.window(timedelta(days=30), TODAY)
    assert window == usage.Window(datetime(2026, 2, 8, tzinfo=UTC), TODAY, 31)
    [found] = (await usage.usage_of(db, ["ws_a"], window.since)).values()
    assert found.events == {"slack": 4}  # 31 days ago is before the window
    assert found.deliveries == 4
    assert found.deliveries_kept == 5  # kept until the retention job removes them

    # The retention job, on the same cut-off: the bucket of 31 days ago goes, no other.
    assert await usage.remove_buckets_before(db, TODAY - timedelta(days=30)) == 1
    assert await db[COLLECTION].count_documents({"day": {"$exists": True}}) == 4
    assert await db[COLLECTION].count_documents({"_id": "kept:ws_a"}) == 1
    [again] = (await usage.usage_of(db, ["ws_a"], window.since)).values()
    assert again.events == found.events

    assert usage.window(timedelta(hours=12), TODAY).days == 1
    assert usage.window(timedelta(hours=16), TODAY).days == 2


async def test_the_busiest_workspaces_of_the_window_come_first(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = UsageCounters(db)
    at(TODAY - timedelta(days=40), monkeypatch)
    counters.count("ws_old", "messages_imported", 10_000)  # busy, before the window
    at(TODAY - timedelta(days=1), monkeypatch)
    counters.count("ws_b", "messages_imported", 3)
    counters.count("ws_c", "attempts", 1)
    at(TODAY, monkeypatch)
    counters.count("ws_b", "messages_synced", 2)
    counters.event("ws_a", "github")
    counters.keep("ws_kept", "deliveries", 50)  # nothing done in the window
    await counters.flush()

    since = usage.window(timedelta(days=30), TODAY).since
    assert await usage.busiest(db, since, 10) == ["ws_b", "ws_a", "ws_c"]
    assert await usage.busiest(db, since, 2) == ["ws_b", "ws_a"]
    found = await usage.usage_of(db, ["ws_b", "ws_nobody"], since)
    assert found["ws_b"].activity == 5
    assert found["ws_nobody"] == usage.Usage("ws_nobody")
