"""Key rotation for secrets at rest: re-encrypt every sealed field under the first key.

Each collection that stores secrets declares where they are (`SEALED`). With
`HOOKHUB_ENCRYPTION_KEYS=new,old`, `hookhub keys rotate` rewrites them all under `new`; once
it has run, `old` can be removed from the setting without downtime (both decrypt meanwhile).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.kernel.crypto import SecretBox
from shared.kernel.mongo import Database, Document


@dataclass(frozen=True)
class Sealed:
    """Where a collection keeps ciphertext: `field` (a string), `field.*` (a dict's values),
    `field[].key` (the `key` of each dict in a list), or any of them under a dict's key
    (`destination.secrets.*`)."""

    collection: str
    path: str

    @property
    def field(self) -> str:
        """The document's top-level field the ciphertext is in."""
        return self.path.split(".", 1)[0].split("[]", 1)[0]

    @property
    def within(self) -> str:
        """The path inside that field ("" for the field itself)."""
        return self.path[len(self.field) :].removeprefix(".")


SEALED: tuple[Sealed, ...] = (
    Sealed("incoming_webhooks", "token_enc"),
    Sealed("integrations", "secrets.*"),
    Sealed("integrations", "tokens.*"),  # OAuth access and refresh tokens (shared.domain.oauth)
    Sealed("endpoints", "secrets[].secret"),
    Sealed("endpoints", "headers.*"),
    # A destination's credentials (services.delivery.destinations.catalog).
    Sealed("endpoints", "destination.secrets.*"),
    Sealed("provider_apps", "secrets.*"),
    Sealed("oauth_states", "code_verifier"),  # PKCE verifiers of connects in progress
    Sealed("pending_revocations", "tokens.*"),  # tokens still to revoke after a disconnect
    # Chat users' own OAuth tokens (shared.domain.account_links).
    Sealed("account_links", "tokens.*"),
)


def _rotate_at(value: Any, path: str, box: SecretBox) -> Any:
    """`value` with the ciphertext at `path` (`Sealed.within`) rewritten under the first key."""
    if value is None:
        return None
    if path == "":
        return box.rotate(value)
    if path == "*":
        return {k: None if v is None else box.rotate(v) for k, v in value.items()}
    if path.startswith("[]."):
        key = path.removeprefix("[].")
        return [{**item, key: box.rotate(item[key])} if item.get(key) else item for item in value]
    head, _, rest = path.partition(".")
    if not isinstance(value, dict) or value.get(head) is None:
        return value
    return {**value, head: _rotate_at(value[head], rest, box)}


async def rotate_all(db: Database, box: SecretBox) -> dict[str, int]:
    """Re-encrypt every sealed field; returns documents rewritten per collection."""
    counts: dict[str, int] = {}
    by_collection: dict[str, list[Sealed]] = {}
    for sealed in SEALED:
        by_collection.setdefault(sealed.collection, []).append(sealed)
    for collection, places in by_collection.items():
        fields = {sealed.field for sealed in places}
        rewritten = 0
        async for doc in db[collection].find({}, dict.fromkeys(fields, 1)):
            update: Document = {}
            for sealed in places:
                if doc.get(sealed.field):
                    current = update.get(sealed.field, doc[sealed.field])
                    update[sealed.field] = _rotate_at(current, sealed.within, box)
            if update:
                # Only if unchanged since read: a concurrent write already used the new key.
                await db[collection].update_one(
                    {"_id": doc["_id"], **{f: doc[f] for f in update}}, {"$set": update}
                )
                rewritten += 1
        counts[collection] = rewritten
    return counts
