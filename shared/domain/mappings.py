"""The `mappings` collection: every query on it lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ReturnDocument, UpdateOne

from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, Document, Index

COLLECTION = "mappings"
# The directions that let messages in (provider → chat) and out (chat → provider).
INBOUND = frozenset({"both", "inbound"})
OUTBOUND = frozenset({"both", "outbound"})

INDEXES = [
    Index(COLLECTION, [("integration_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("updated_at", 1)]),
    # One live mapping per provider channel, also when two creates race.
    Index(COLLECTION, [("live_key", 1)], {"unique": True}),
]


@dataclass(frozen=True)
class Address:
    """Where a verified event said to call a provider channel back (Teams' serviceUrl),
    the channel's team, and when the event was (a replayed older event changes nothing)."""

    service_url: str
    external_team_id: str | None
    at: datetime


def live_key(integration_id: str, external_channel_id: str) -> str:
    return f"{integration_id}:{external_channel_id}"


class MappingRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def of_external(self, integration_id: str, external_channel_id: str) -> Document | None:
        return await self.collection.find_one(
            {"live_key": live_key(integration_id, external_channel_id)}
        )

    async def remove(self, mapping_id: str) -> Document | None:
        """The tombstone, its provider channel free to be mapped again."""
        return await self.soft_delete(mapping_id, live_key=f"deleted:{mapping_id}")

    async def integrations_mapped(self, providers: Sequence[str]) -> list[str]:
        """The integrations of these providers with a live mapping."""
        found = await self.collection.distinct(
            "integration_id", {"deleted_at": None, "provider": {"$in": list(providers)}}
        )
        return [str(integration_id) for integration_id in found]

    async def integrations_mapping(
        self, integration_ids: Sequence[str], external_channel_ids: Sequence[str]
    ) -> list[str]:
        """Those of the integrations with a live mapping of one of these provider channels."""
        found = await self.collection.distinct(
            "integration_id",
            {
                "integration_id": {"$in": list(integration_ids)},
                "external_channel_id": {"$in": list(external_channel_ids)},
                "deleted_at": None,
            },
        )
        return sorted(str(integration_id) for integration_id in found)

    async def inbound_of(self, integration_id: str) -> list[Document]:
        """The live, enabled mappings of an integration that let messages in."""
        return await self.collection.find(
            {
                "integration_id": integration_id,
                "deleted_at": None,
                "enabled": {"$ne": False},
                "direction": {"$in": sorted(INBOUND)},
            }
        ).to_list()

    async def record_error(self, mapping_id: str, code: str, message: str) -> Document | None:
        now = utcnow()
        return await self.collection.find_one_and_update(
            {"_id": mapping_id, "deleted_at": None},
            {
                "$set": {
                    "last_error": {"code": code, "message": message[:1000], "at": now},
                    "failing": True,
                    "updated_at": now,
                },
                "$inc": {"error_count": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    async def addressed(self, addresses: dict[str, Address]) -> None:
        """Mappings whose channel's service URL was heard: kept, unless a newer one is
        (another replica's), `updated_at` raised so every replica's cache refresh reads
        it. One write for the batch."""
        if not addresses:
            return
        now = utcnow()
        await self.collection.bulk_write(
            [
                UpdateOne(
                    {
                        "_id": mapping_id,
                        "deleted_at": None,
                        "service_url_at": {"$not": {"$gt": address.at}},
                    },
                    {
                        "$set": {
                            "service_url": address.service_url,
                            "service_url_at": address.at,
                            "external_team_id": address.external_team_id,
                            "updated_at": now,
                        }
                    },
                )
                for mapping_id, address in addresses.items()
            ],
            ordered=False,
        )

    async def synced(
        self, last: dict[str, datetime], inbound: dict[str, datetime] | None = None
    ) -> None:
        """Mappings that just synced a message: `last_synced_at` raised (and
        `inbound_seen_at`, the time of the newest provider message brought in), and
        `failing` cleared where it was set (two writes for the whole batch)."""
        if not last:
            return
        inbound = inbound or {}

        def raised(mapping_id: str, at: datetime) -> dict[str, datetime]:
            fields = {"last_synced_at": at}
            if mapping_id in inbound:
                fields["inbound_seen_at"] = inbound[mapping_id]
            return fields

        await self.collection.bulk_write(
            [UpdateOne({"_id": m}, {"$max": raised(m, at)}) for m, at in last.items()],
            ordered=False,
        )
        await self.collection.update_many(
            {"_id": {"$in": list(last)}, "failing": True},
            {"$set": {"failing": False, "updated_at": utcnow()}},
        )
