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
    """Where a collection keeps ciphertext: `field` (a string), `field.*` (a dict's values)
    or `field[].key` (the `key` of each dict in a list)."""

    collection: str
    path: str


SEALED: tuple[Sealed, ...] = (
    Sealed("incoming_webhooks", "token_enc"),
    Sealed("integrations", "secrets.*"),
    Sealed("integrations", "tokens.*"),  # OAuth access and refresh tokens (shared.domain.oauth)
    Sealed("endpoints", "secrets[].secret"),
    Sealed("endpoints", "headers.*"),
    Sealed("provider_apps", "secrets.*"),
    Sealed("oauth_states", "code_verifier"),  # PKCE verifiers of connects in progress
    Sealed("pending_revocations", "tokens.*"),  # tokens still to revoke after a disconnect
)


def _rotate_value(value: Any, path: str, box: SecretBox) -> Any:
    if value is None:
        return None
    if path.endswith(".*"):
        return {k: box.rotate(v) for k, v in value.items()}
    if "[]." in path:
        key = path.split("[].", 1)[1]
        return [{**item, key: box.rotate(item[key])} for item in value]
    return box.rotate(value)


async def rotate_all(db: Database, box: SecretBox) -> dict[str, int]:
    """Re-encrypt every sealed field; returns documents rewritten per collection."""
    counts: dict[str, int] = {}
    by_collection: dict[str, list[str]] = {}
    for sealed in SEALED:
        by_collection.setdefault(sealed.collection, []).append(sealed.path)
    for collection, paths in by_collection.items():
        fields = [p.split(".", 1)[0].split("[]", 1)[0] for p in paths]
        rewritten = 0
        async for doc in db[collection].find({}, dict.fromkeys(fields, 1)):
            update: Document = {}
            for path, field in zip(paths, fields, strict=True):
                if doc.get(field):
                    update[field] = _rotate_value(doc[field], path, box)
            if update:
                # Only if unchanged since read: a concurrent write already used the new key.
                await db[collection].update_one(
                    {"_id": doc["_id"], **{f: doc[f] for f in update}}, {"$set": update}
                )
                rewritten += 1
        counts[collection] = rewritten
    return counts
