"""Account links (SPEC §20 "Who acts"): which provider account a chat user acts as when
they click an action on a card. One document per (workspace, provider, chat user) in the
`account_links` collection; every query on it lives here.

A link is of one of two kinds (`LinkKind`): `mapping`, a provider
user the workspace names for the chat user (PagerDuty's `From` email, Opsgenie's user
name), for providers that act for a named user with the integration's own token; or
`oauth`, the user's own consent and token (GitHub, GitLab, Jira; its sealed token is kept
in the document and never leaves it: `AccountLink` does not carry it).

The oauth service writes links (`/api/account-links`); sync's click worker reads the
clicking users' links in one query (`of_users`). What a request asks is confined to its
workspace (shared.domain.tenancy). A deletion removes the document: no cache feeds on the
collection, and the `_id`, derived from the link's address, is the same when the user is
linked again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.domain import tenancy
from shared.kernel.ids import derived_id, utcnow_ms
from shared.kernel.mongo import Database, Document, Index, paginate

# How a chat user is known to a provider when they act (SPEC §20 "Who acts"): `mapping`, a
# provider user the workspace names for them and the integration's token acts for;
# `oauth`, the user's own consent and token (shared.providers.acting).
LinkKind = Literal["mapping", "oauth"]

COLLECTION = "account_links"
ID_PREFIX = "lnk"

# The providers whose actions name the acting user with the integration's own token, and
# so are linked by a mapping. The acting registry (shared/providers/acting.py, being built)
# will provide it: the providers whose `Acting.link` is "mapping".
MAPPING_PROVIDERS = ("alertmanager", "grafana", "opsgenie", "pagerduty", "sentry")

INDEXES = [
    # One link per chat user and provider in a workspace; `of_users` reads by it.
    Index(
        COLLECTION,
        [("workspace_id", 1), ("provider", 1), ("chat_user_id", 1)],
        {"unique": True},
    ),
    # A workspace's links in the list's order.
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
]


def link_id(workspace_id: str, provider: str, chat_user_id: str) -> str:
    """A link's id: the same for the same address, so a second PUT replaces the first."""
    return derived_id(workspace_id, provider, chat_user_id, prefix=ID_PREFIX)


@dataclass(frozen=True)
class AccountLink:
    """A link as it may be shown and acted on: never its sealed token."""

    id: str
    workspace_id: str
    provider: str
    chat_user_id: str
    kind: LinkKind
    provider_user: str
    name: str | None
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    created_by: Mapping[str, str]

    @classmethod
    def of(cls, doc: Document) -> AccountLink:
        return cls(
            id=doc["_id"],
            workspace_id=doc["workspace_id"],
            provider=doc["provider"],
            chat_user_id=doc["chat_user_id"],
            kind=doc["kind"],
            provider_user=doc["provider_user"],
            name=doc.get("name"),
            external_id=doc.get("external_id"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            created_by=dict(doc.get("created_by") or {}),
        )

    def to_public(self) -> dict[str, Any]:
        """What the API shows of it: all it holds (a link's token is not among it)."""
        return asdict(self)


class AccountLinks:
    """The `account_links` collection, confined to the request's workspace."""

    def __init__(self, db: Database) -> None:
        self.collection = db[COLLECTION]

    async def put(
        self,
        workspace_id: str,
        provider: str,
        chat_user_id: str,
        *,
        kind: LinkKind,
        provider_user: str,
        created_by: Mapping[str, str],
        name: str | None = None,
        external_id: str | None = None,
    ) -> tuple[AccountLink, bool]:
        """The link made or replaced (its `created_at` and `created_by` kept), and whether
        it is new. 403 when the request may not act in `workspace_id`."""
        tenancy.may_create_in(workspace_id)
        now = utcnow_ms()
        address = {"workspace_id": workspace_id, "provider": provider, "chat_user_id": chat_user_id}
        fields = {
            "kind": kind,
            "provider_user": provider_user,
            "name": name,
            "external_id": external_id,
            "updated_at": now,
        }
        made = {**address, "created_at": now, "created_by": dict(created_by)}
        doc_id = link_id(workspace_id, provider, chat_user_id)
        try:
            before = await self._upsert(doc_id, fields, made)
        except DuplicateKeyError:  # two first PUTs at once: the other inserted it
            before = await self._upsert(doc_id, fields, made)
        kept = before if before is not None else made
        return AccountLink.of({**kept, **fields, "_id": doc_id}), before is None

    async def _upsert(self, doc_id: str, fields: Document, made: Document) -> Document | None:
        """The document as it was before (None: just inserted)."""
        return await self.collection.find_one_and_update(
            {"_id": doc_id},
            {"$set": fields, "$setOnInsert": made},
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )

    async def get(self, workspace_id: str, provider: str, chat_user_id: str) -> AccountLink | None:
        doc = await self.collection.find_one(
            tenancy.narrow({"_id": link_id(workspace_id, provider, chat_user_id)})
        )
        return AccountLink.of(tenancy.note(doc)) if doc is not None else None

    async def of_users(
        self, workspace_id: str, provider: str, chat_user_ids: Sequence[str]
    ) -> dict[str, AccountLink]:
        """The links of these chat users to `provider`, by chat user id (the unlinked are
        absent): one query, for a batch of clicks."""
        if not chat_user_ids:
            return {}
        query = {
            "workspace_id": workspace_id,
            "provider": provider,
            "chat_user_id": {"$in": sorted(set(chat_user_ids))},
        }
        docs = await self.collection.find(tenancy.narrow(query)).to_list()
        return {doc["chat_user_id"]: AccountLink.of(doc) for doc in docs}

    async def list(
        self,
        workspace_id: str | None = None,
        provider: str | None = None,
        chat_user_id: str | None = None,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[AccountLink], str | None]:
        """A page of links (in `_id` order, which is not their age: ids are derived) and
        the next page's cursor. A confined request sees its own workspace's whatever
        `workspace_id` asks."""
        filters = {"workspace_id": workspace_id, "provider": provider, "chat_user_id": chat_user_id}
        query = {name: value for name, value in filters.items() if value}
        docs, next_cursor = await paginate(
            self.collection, tenancy.narrow(query), limit=limit, cursor=cursor
        )
        return [AccountLink.of(doc) for doc in docs], next_cursor

    async def delete(self, workspace_id: str, provider: str, chat_user_id: str) -> bool:
        """Whether there was such a link (in the request's workspace) to delete."""
        doc = await self.collection.find_one_and_delete(
            tenancy.narrow({"_id": link_id(workspace_id, provider, chat_user_id)})
        )
        return tenancy.note(doc) is not None
