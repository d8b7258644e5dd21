"""Where a network's verified events say to call a channel back (Teams' serviceUrl), as sync
keeps it: `LastSynced.addressed` writes only what the mapping does not hold yet, the newest
said first; `MappingDirectory.service_url` answers the newest one of the channel's team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from services.sync.mappings.service import LastSynced, MappingDirectory, MappingSnapshot, snapshot
from shared.domain.mappings import Address, MappingRepository
from shared.kernel.cache import RefreshingCache
from shared.providers.chat import MessageChange

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TEAM = "19:team@thread.tacv2"


def doc(mapping_id: str, channel: str, **fields: Any) -> dict[str, Any]:
    return {
        "_id": mapping_id,
        "workspace_id": "ws",
        "integration_id": "int",
        "provider": "teams",
        "external_channel_id": channel,
        "channel_id": f"ch_{mapping_id}",
        "direction": "both",
        "deleted_at": None,
        **fields,
    }


def directory(*docs: dict[str, Any]) -> MappingDirectory:
    async def nothing(_: Any) -> Any:
        return None

    cache: RefreshingCache[str, MappingSnapshot] = RefreshingCache.by_id(
        cast(Any, type("Feed", (), {"changed_since": nothing, "find_any": nothing})()),
        snapshot,
        refresh_seconds=60,
        name="mappings",
    )
    for one in docs:
        cache.apply(one)
    return MappingDirectory(cache)


def said(channel: str, url: str, at: datetime, team: str | None = TEAM) -> MessageChange:
    return MessageChange(
        kind="created",
        external_channel_id=channel,
        external_message_id="1",
        occurred_at=at,
        service_url=url,
        external_team_id=team,
    )


def test_the_newest_service_url_of_the_channels_team_is_answered() -> None:
    mappings = directory(
        doc(
            "a",
            "19:a@thread.tacv2",
            service_url="https://old/",
            service_url_at=T0,
            external_team_id=TEAM,
        ),
        doc(
            "b",
            "19:b@thread.tacv2",
            service_url="https://new/",
            service_url_at=T0 + timedelta(hours=1),
            external_team_id=TEAM,
        ),
        doc("c", "19:c@thread.tacv2"),
        doc("d", "19:d@thread.tacv2", service_url="https://own/", service_url_at=T0),
    )
    assert mappings.service_url("teams", "19:a@thread.tacv2") == "https://new/"
    assert mappings.service_url("teams", TEAM) == "https://new/"  # its General channel
    assert mappings.service_url("teams", "19:d@thread.tacv2") == "https://own/"  # no team
    assert mappings.service_url("teams", "19:c@thread.tacv2") is None
    assert mappings.service_url("slack", "19:a@thread.tacv2") is None


class Written:
    def __init__(self) -> None:
        self.batches: list[dict[str, Address]] = []

    async def addressed(self, addresses: dict[str, Address]) -> None:
        self.batches.append(dict(addresses))

    async def synced(self, *_: Any) -> None:
        return None


async def test_a_service_url_is_written_once_when_the_mapping_holds_another() -> None:
    held = doc(
        "a",
        "19:a@thread.tacv2",
        service_url="https://held/",
        service_url_at=T0,
        external_team_id=TEAM,
    )
    mappings = directory(held)
    written = Written()
    synced = LastSynced(cast(MappingRepository, written), mappings)
    mapping = snapshot(held)

    synced.addressed(mapping, said("19:a@thread.tacv2", "https://held/", T0))  # held already
    await synced.write()
    assert written.batches == []

    synced.addressed(mapping, said("19:a@thread.tacv2", "https://new/", T0 + timedelta(2)))
    synced.addressed(mapping, said("19:a@thread.tacv2", "https://older/", T0 + timedelta(1)))
    await synced.write()
    await synced.write()
    assert written.batches == [{"a": Address("https://new/", TEAM, T0 + timedelta(2))}]
