"""Per-replica cache of incoming-webhook tokens, so the ingress needs no MongoDB round trip.

Keys are SHA-256 fingerprints of the tokens; the plain tokens are never held here.
"""

from __future__ import annotations

from services.gateway.incoming_webhooks.repository import IncomingWebhookRepository
from services.gateway.incoming_webhooks.service import HookSnapshot
from shared.kernel.cache import RefreshingCache
from shared.kernel.crypto import fingerprint
from shared.kernel.mongo import Document


class TokenCache(RefreshingCache[str, HookSnapshot]):
    def __init__(self, repository: IncomingWebhookRepository, *, refresh_seconds: float) -> None:
        super().__init__(
            changed_since=repository.changed_since,
            find=repository.find_by_token_hash,
            key=lambda doc: str(doc["token_hash"]),
            snapshot=snapshot,
            refresh_seconds=refresh_seconds,
            name="incoming-webhook tokens",
        )

    async def lookup_token(self, token: str) -> HookSnapshot | None:
        return await self.lookup(fingerprint(token))


def snapshot(doc: Document) -> HookSnapshot:
    return HookSnapshot(
        id=str(doc["_id"]),
        workspace_id=doc["workspace_id"],
        target_channel_id=doc["target_channel_id"],
        name=doc["name"],
        enabled=bool(doc.get("enabled", True)),
        default_username=doc.get("default_username"),
        default_icon_url=doc.get("default_icon_url"),
        template=doc.get("template"),
    )
