"""The `integrations` collection: every query on it lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from shared.domain.integrations.model import Status
from shared.domain.tenancy import WorkspaceCollection
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Database, Document, Index

COLLECTION = "integrations"

INDEXES = [
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    Index(COLLECTION, [("provider", 1), ("account.id", 1)]),
    Index(COLLECTION, [("updated_at", 1)]),
    # The refresh loop's query: connected integrations whose token is due.
    Index(COLLECTION, [("status", 1), ("oauth.refresh_at", 1)]),
    # One bot is one integration (a Telegram bot, a Discord bot user), also when two creates
    # race: `bot_key` is set while the integration holds the bot, cleared when it lets go.
    Index(
        COLLECTION,
        [("bot_key", 1)],
        {"unique": True, "partialFilterExpression": {"bot_key": {"$type": "string"}}},
    ),
]

_NO_LEASE = {"oauth.lease_owner": None, "oauth.lease_until": None}


class IntegrationRepository(WorkspaceCollection):
    def __init__(self, db: Database) -> None:
        super().__init__(db, COLLECTION)

    async def clear_default(self, provider: str, workspace_id: str, keep: str) -> None:
        await self.collection.update_many(
            {
                "provider": provider,
                "workspace_id": workspace_id,
                "is_default": True,
                "_id": {"$ne": keep},
                "deleted_at": None,
            },
            {"$set": {"is_default": False, "updated_at": utcnow()}},
        )

    async def unset(self, integration_id: str, fields: list[str]) -> None:
        """Forget these fields (settings PATCHed to null)."""
        await self.collection.update_one(
            {"_id": integration_id, "deleted_at": None},
            {"$unset": dict.fromkeys(fields, ""), "$set": {"updated_at": utcnow()}},
        )

    async def keep_secrets(self, integration_id: str, sealed: dict[str, str]) -> bool:
        """Sealed settings a provider's handshake handed over, set only where the integration
        holds none of them yet; False when it already does (or is gone)."""
        result = await self.collection.update_one(
            {
                "_id": integration_id,
                "deleted_at": None,
                **{f"secrets.{name}": {"$exists": False} for name in sealed},
            },
            {
                "$set": {
                    **{f"secrets.{name}": value for name, value in sealed.items()},
                    "updated_at": utcnow(),
                }
            },
        )
        return result.matched_count == 1

    async def find_account(
        self, workspace_id: str, provider: str, account_id: str
    ) -> Document | None:
        return await self.collection.find_one(
            {
                "workspace_id": workspace_id,
                "provider": provider,
                "account.id": account_id,
                "deleted_at": None,
            }
        )

    async def bot_holder(
        self, key: str, provider: str, account_id: str, *, besides: str | None = None
    ) -> Document | None:
        """The live integration that holds this bot, whichever workspace it is in (not the
        request's: a bot is one integration everywhere): by `bot_key`, or, for one made
        before the key was kept, by its bot token's account."""
        return await self.collection.find_one(
            {
                "_id": {"$ne": besides},
                "deleted_at": None,
                "status": {"$ne": Status.DISCONNECTED.value},
                "$or": [
                    {"bot_key": key},
                    {
                        "provider": provider,
                        "account.id": account_id,
                        "bot_key": {"$exists": False},
                        "secrets.bot_token": {"$exists": True},
                    },
                ],
            },
            {"_id": 1, "workspace_id": 1},
        )

    async def of_provider(self, workspace_id: str, provider: str) -> list[str]:
        """The ids of the workspace's integrations of this provider, oldest first."""
        found = await self.collection.find(
            {"workspace_id": workspace_id, "provider": provider, "deleted_at": None}, {"_id": 1}
        ).to_list()
        return sorted(str(doc["_id"]) for doc in found)

    async def ids_of(self, provider: str) -> list[str]:
        """The ids of the integrations of `provider` the request may see, deleted ones too
        (their copies stay in the message map): what a look-up by one of the provider's
        messages reads the map's `_id`s of (shared.domain.message_map.copy_id)."""
        found = await self.collection.find(
            self.scope.narrow({"provider": provider}), {"_id": 1}
        ).to_list()
        return [str(doc["_id"]) for doc in found]

    # -- token refresh leases (shared.domain.oauth.tokens) ---------------------------------------

    async def take_refresh_lease(
        self, integration_id: str, owner: str, now: datetime, until: datetime
    ) -> Document | None:
        """The document as it is once `owner` holds its refresh lease; None if another
        process holds an unexpired one, or the integration is not connected."""
        return await self.collection.find_one_and_update(
            {
                "_id": integration_id,
                "deleted_at": None,
                "status": Status.CONNECTED.value,
                "$or": [{"oauth.lease_until": None}, {"oauth.lease_until": {"$lt": now}}],
            },
            {"$set": {"oauth.lease_owner": owner, "oauth.lease_until": until}},
            return_document=ReturnDocument.AFTER,
        )

    async def release_refresh_lease(self, integration_id: str, owner: str) -> None:
        await self.collection.update_one(
            {"_id": integration_id, "oauth.lease_owner": owner}, {"$set": _NO_LEASE}
        )

    async def write_under_lease(
        self, integration_id: str, owner: str, fields: dict[str, Any]
    ) -> Document | None:
        """`$set` while `owner` holds the lease, releasing it in the same write."""
        return await self.collection.find_one_and_update(
            {"_id": integration_id, "oauth.lease_owner": owner},
            {"$set": {**fields, **_NO_LEASE, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )

    async def due_for_refresh(self, now: datetime, limit: int) -> list[str]:
        cursor = self.collection.find(
            {
                "status": Status.CONNECTED.value,
                "deleted_at": None,
                "oauth.refresh_at": {"$lte": now},
            },
            {"_id": 1},
        )
        return [str(doc["_id"]) for doc in await cursor.limit(limit).to_list()]

    async def record_error(
        self, integration_id: str, message: str, *, status: Status | None = None
    ) -> Document | None:
        """A provider refused work done for this integration: `last_error`, `error_count`,
        and the status when the refusal concerns the whole connection."""
        fields: dict[str, Any] = {"last_error": message[:1000], "updated_at": utcnow()}
        if status is not None:
            fields["status"] = status.value
        return await self.collection.find_one_and_update(
            {"_id": integration_id, "deleted_at": None},
            {"$set": fields, "$inc": {"error_count": 1}},
            return_document=ReturnDocument.AFTER,
        )
