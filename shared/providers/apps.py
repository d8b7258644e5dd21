"""Provider apps: hookhub's own app at each provider (OAuth client, signing secret, public key).

Configured through `PUT /api/providers/{provider}` (stored encrypted; the API wins) or the
environment (`HOOKHUB_<PROVIDER>_CLIENT_ID`, `HOOKHUB_SLACK_SIGNING_SECRET`, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ReturnDocument

from shared.domain.account_links import LinkTokens
from shared.domain.integrations.repository import IntegrationRepository
from shared.domain.oauth.provider import AppCredentials
from shared.domain.oauth.tokens import LinkTokenKeeper, TokenKeeper
from shared.kernel.crypto import SecretBox
from shared.kernel.ids import utcnow
from shared.kernel.kafka import EventPublisher
from shared.kernel.mongo import Collection, Database, Document, Index
from shared.kernel.settings import Settings
from shared.providers import OAUTH_PROVIDERS
from shared.providers.catalog import CATALOG, NETWORKS

COLLECTION = "provider_apps"
INDEXES = [Index(COLLECTION, [("updated_at", 1)])]

# Which settings each provider's app has: an OAuth provider's, its client; a network's,
# what it says (`Network.app_fields`). All but the public ones are secrets (write-only).
FIELDS: dict[str, tuple[str, ...]] = {
    name: NETWORKS[name].app_fields if name in NETWORKS else ("client_id", "client_secret")
    for name in (*OAUTH_PROVIDERS, *NETWORKS)
}
PUBLIC_FIELDS = frozenset({"client_id", "history_tier"})


def from_environment(settings: Settings, provider: str) -> dict[str, str]:
    values = {
        name: str(getattr(settings, f"{provider}_{name}", "") or "") for name in FIELDS[provider]
    }
    return {name: value for name, value in values.items() if value}


def open_values(doc: Document | None, box: SecretBox) -> dict[str, str]:
    if doc is None or doc.get("deleted_at") is not None:
        return {}
    values = {name: box.decrypt(value) for name, value in (doc.get("secrets") or {}).items()}
    values.update({name: doc[name] for name in PUBLIC_FIELDS if doc.get(name)})
    return values


class ProviderAppRepository:
    def __init__(self, db: Database) -> None:
        self._apps: Collection = db[COLLECTION]

    async def get(self, provider: str) -> Document | None:
        return await self._apps.find_one({"_id": provider, "deleted_at": None})

    async def find_any(self, provider: str) -> Document | None:
        return await self._apps.find_one({"_id": provider})

    async def upsert(self, provider: str, fields: dict[str, Any]) -> Document:
        now = utcnow()
        doc = await self._apps.find_one_and_update(
            {"_id": provider},
            {
                "$set": {**fields, "updated_at": now, "deleted_at": None},
                "$setOnInsert": {"created_at": now},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return doc

    async def delete(self, provider: str) -> bool:
        now = utcnow()
        result = await self._apps.update_one(
            {"_id": provider, "deleted_at": None},
            {
                "$set": {
                    "deleted_at": now,
                    "updated_at": now,
                    "secrets": {},
                    **dict.fromkeys(PUBLIC_FIELDS),
                }
            },
        )
        return result.modified_count == 1

    async def changed_since(self, since: datetime | None) -> list[Document]:
        query: Document = {"updated_at": {"$gte": since}} if since else {"deleted_at": None}
        return await self._apps.find(query).to_list()


class AppDirectory:
    """hookhub's app settings per provider as every service sees them: the API's (stored
    encrypted) over the environment's. Read on each use: changes apply at once, and OAuth
    exchanges are rare."""

    def __init__(self, repository: ProviderAppRepository, box: SecretBox, settings: Settings):
        self._repository = repository
        self._box = box
        self._settings = settings

    async def values(self, provider: str) -> dict[str, str]:
        stored = open_values(await self._repository.get(provider), self._box)
        return {**from_environment(self._settings, provider), **stored}

    async def oauth_client(self, provider: str) -> AppCredentials | None:
        """The OAuth client id and secret, or None when either is missing."""
        values = await self.values(provider)
        if values.get("client_id") and values.get("client_secret"):
            return AppCredentials(values["client_id"], values["client_secret"])
        return None


# The providers whose integrations take a bot token in their settings (Telegram's; Slack's
# and Discord's bots given one).
BOT_TOKEN_PROVIDERS = frozenset(
    name for name, entry in CATALOG.items() if entry.setting("bot_token") is not None
)


def token_keeper(
    db: Database,
    box: SecretBox,
    settings: Settings,
    publisher: EventPublisher,
) -> TokenKeeper:
    """What any service needs to hand out tokens, with hookhub's providers: its database,
    keys and publisher."""
    return TokenKeeper(
        IntegrationRepository(db),
        AppDirectory(ProviderAppRepository(db), box, settings),
        box,
        settings,
        publisher,
        OAUTH_PROVIDERS,
        BOT_TOKEN_PROVIDERS,
    )


def link_token_keeper(
    db: Database,
    box: SecretBox,
    settings: Settings,
    publisher: EventPublisher,
) -> LinkTokenKeeper:
    """The same for chat users' own tokens (oauth account links, SPEC §20)."""
    return LinkTokenKeeper(
        LinkTokens(db),
        AppDirectory(ProviderAppRepository(db), box, settings),
        box,
        settings,
        publisher,
        OAUTH_PROVIDERS,
    )
