"""Account links (SPEC §20 "Who acts"): which provider account a chat user acts as when
they click an action on a card. One document per (workspace, provider, chat user) in the
`account_links` collection; every query on it lives here.

A link is of one of two kinds (`LinkKind`): `mapping`, a provider
user the workspace names for the chat user (PagerDuty's `From` email, Opsgenie's user
name), for providers that act for a named user with the integration's own token; or
`oauth`, the user's own consent and token (GitHub, GitLab, Jira). An `oauth` link's
document holds `tokens` (sealed) and `oauth` (their timing, the refresh lease) in the
fields and shapes an integration's have (shared.domain.oauth.tokens), `status`
(`connected`, or `error` once the provider refused the grant for good) and `account` (what
the provider said of the user: Jira's sites); `AccountLink` carries none of the tokens, and
`LinkTokens` is how the token keeper reads and refreshes them.

The oauth service writes links (`/api/account-links`); sync's click worker reads the
clicking users' links in one query (`of_users`). What a request asks is confined to its
workspace (shared.domain.tenancy). A deletion removes the document: no cache feeds on the
collection, and the `_id`, derived from the link's address, is the same when the user is
linked again.

A **ticket** (`account_link_tickets`) is what a chat user who is not linked is handed to
link themselves (sync's ephemeral reply to their click, `/hookhub link`): a random string,
stored by fingerprint for a day, naming the workspace, provider and chat user (and their
name, as the chat said it); the oauth service's public `/api/auth/oauth/link/{ticket}`
shows whom it links and, confirmed, spends it (once) on that provider's consent.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.domain import tenancy
from shared.kernel.crypto import fingerprint
from shared.kernel.ids import derived_id, utcnow, utcnow_ms
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
# The providers whose actions are made with the clicking user's own OAuth token, and so are
# linked by the user's consent (`POST /api/account-links/{provider}/connect`).
OAUTH_LINK_PROVIDERS = ("github", "gitlab", "jira")

TICKETS = "account_link_tickets"
# As long as a click waits for its user to link (services.sync.clicks).
TICKET_TTL = timedelta(days=1)
CONNECTED, ERROR = "connected", "error"
_NO_LEASE = {"oauth.lease_owner": None, "oauth.lease_until": None}

INDEXES = [
    # One link per chat user and provider in a workspace; `of_users` reads by it.
    Index(
        COLLECTION,
        [("workspace_id", 1), ("provider", 1), ("chat_user_id", 1)],
        {"unique": True},
    ),
    # A workspace's links in the list's order.
    Index(COLLECTION, [("workspace_id", 1), ("_id", -1)]),
    # The oauth service's refresh loop: oauth links whose token is due (`LinkTokens`).
    Index(COLLECTION, [("status", 1), ("oauth.refresh_at", 1)]),
    # Clean-up only: a ticket's expiry is checked on use.
    Index(TICKETS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
]


def ticket_url(public_url: str, ticket: str) -> str:
    """Where a chat user opens their ticket (the oauth service's public page)."""
    return f"{public_url.rstrip('/')}/api/auth/oauth/link/{ticket}"


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
    # What an oauth link learnt of the user at the provider (Jira: the sites they reach).
    account: Mapping[str, Any] = field(default_factory=dict)
    # `error` once the provider refused an oauth link's token after a refresh (the user's
    # next click asks them to link again), with why; a mapping is always `connected`.
    status: str = CONNECTED
    last_error: str | None = None

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
            account=dict(doc.get("account") or {}),
            status=doc.get("status") or CONNECTED,
            last_error=doc.get("last_error"),
        )

    def to_public(self) -> dict[str, Any]:
        """What the API shows of it: all it holds (a link's token is not among it)."""
        return asdict(self)


class AccountLinks:
    """The `account_links` collection, confined to the request's workspace."""

    def __init__(self, db: Database) -> None:
        self.collection = db[COLLECTION]
        self.tickets = db[TICKETS]

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
        link, before = await self._put(
            workspace_id,
            provider,
            chat_user_id,
            {
                "kind": kind,
                "provider_user": provider_user,
                "name": name,
                "external_id": external_id,
            },
            created_by,
        )
        return link, before is None

    async def connect(
        self,
        workspace_id: str,
        provider: str,
        chat_user_id: str,
        *,
        provider_user: str,
        name: str | None,
        external_id: str | None,
        account: Mapping[str, Any],
        tokens: Mapping[str, str],
        oauth: Mapping[str, Any],
        created_by: Mapping[str, str],
    ) -> tuple[AccountLink, dict[str, str]]:
        """An `oauth` link made or replaced with the user's consent: its sealed `tokens`
        and their `oauth` timing (shared.domain.oauth.tokens.token_state), `connected`. The
        link, and the sealed tokens it held before (to be revoked), if any."""
        fields = {
            "kind": "oauth",
            "provider_user": provider_user,
            "name": name,
            "external_id": external_id,
            "account": dict(account),
            "tokens": dict(tokens),
            "oauth": {**oauth, "refreshed_at": None, **_lease_free()},
            "status": CONNECTED,
        }
        link, before = await self._put(workspace_id, provider, chat_user_id, fields, created_by)
        return link, dict((before or {}).get("tokens") or {})

    async def _put(
        self,
        workspace_id: str,
        provider: str,
        chat_user_id: str,
        fields: Document,
        created_by: Mapping[str, str],
    ) -> tuple[AccountLink, Document | None]:
        tenancy.may_create_in(workspace_id)
        now = utcnow_ms()
        address = {"workspace_id": workspace_id, "provider": provider, "chat_user_id": chat_user_id}
        fields = {**fields, "updated_at": now}
        made = {**address, "created_at": now, "created_by": dict(created_by)}
        doc_id = link_id(workspace_id, provider, chat_user_id)
        try:
            before = await self._upsert(doc_id, fields, made)
        except DuplicateKeyError:  # two first PUTs at once: the other inserted it
            before = await self._upsert(doc_id, fields, made)
        kept = before if before is not None else made
        return AccountLink.of({**kept, **fields, "_id": doc_id}), before

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
            # An oauth link whose grant the provider refused for good acts no more.
            "status": {"$ne": ERROR},
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
        return await self.remove(workspace_id, provider, chat_user_id) is not None

    async def remove(self, workspace_id: str, provider: str, chat_user_id: str) -> Document | None:
        """The link deleted, as it was (an oauth link's sealed tokens, to be revoked)."""
        doc = await self.collection.find_one_and_delete(
            tenancy.narrow({"_id": link_id(workspace_id, provider, chat_user_id)})
        )
        return tenancy.note(doc)

    # -- tickets -------------------------------------------------------------------------

    async def issue_ticket(
        self, workspace_id: str, provider: str, chat_user_id: str, chat_user_name: str | None = None
    ) -> str:
        """A new ticket for this chat user to link themselves to `provider` (once, within a
        day). `chat_user_name`: how the page it opens names them (as the chat said)."""
        ticket = secrets.token_urlsafe(32)
        now = utcnow()
        await self.tickets.insert_one(
            {
                # By fingerprint: a database dump holds no usable ticket.
                "_id": fingerprint(ticket),
                "workspace_id": workspace_id,
                "provider": provider,
                "chat_user_id": chat_user_id,
                "chat_user_name": chat_user_name,
                "created_at": now,
                "expires_at": now + TICKET_TTL,
            }
        )
        return ticket

    async def ticket(self, ticket: str) -> Document | None:
        """The ticket's address (workspace, provider, chat user) while it is unexpired and
        unused: to be shown, not spent."""
        return _unexpired(await self.tickets.find_one({"_id": fingerprint(ticket)}))

    async def take_ticket(self, ticket: str) -> Document | None:
        """The ticket spent (at most once: the first to take it, whoever else tries) and its
        address, while it was unexpired."""
        return _unexpired(await self.tickets.find_one_and_delete({"_id": fingerprint(ticket)}))

    async def drop_ticket(self, ticket: str) -> None:
        """A ticket never handed to its user (the message that would carry it could not be
        said to them alone): nobody can spend it."""
        await self.tickets.delete_one({"_id": fingerprint(ticket)})

    async def mark_broken(self, link_id: str, reason: str) -> None:
        """An oauth link whose token the provider refused again after a refresh: `error`,
        as a grant refused for good (its user's next click asks them to link again)."""
        await self.collection.update_one(
            {"_id": link_id, "kind": "oauth"},
            {
                "$set": {
                    "status": ERROR,
                    "last_error": reason,
                    "oauth.last_refresh_error": reason,
                    "oauth.refresh_at": None,
                    "updated_at": utcnow_ms(),
                }
            },
        )

    async def forget_tickets(self, workspace_id: str, provider: str, chat_user_id: str) -> None:
        """Once linked, the user's tickets are of no more use."""
        await self.tickets.delete_many(
            {"workspace_id": workspace_id, "provider": provider, "chat_user_id": chat_user_id}
        )


def _unexpired(doc: Document | None) -> Document | None:
    return doc if doc is not None and doc["expires_at"] > utcnow() else None


def _lease_free() -> dict[str, None]:
    return {"lease_owner": None, "lease_until": None}


class LinkTokens:
    """The oauth links' tokens as shared.domain.oauth.tokens.TokenKeeper reads, refreshes
    and leases them (the calls IntegrationRepository answers for integrations), by link id.
    Not confined to a request's workspace: the click worker and the refresh loop ask."""

    def __init__(self, db: Database) -> None:
        self.collection = db[COLLECTION]

    async def get(self, link: str) -> Document | None:
        return await self.collection.find_one({"_id": link, "kind": "oauth"})

    async def update(self, link: str, fields: Document) -> Document | None:
        return await self.collection.find_one_and_update(
            {"_id": link, "kind": "oauth"},
            {"$set": {**fields, "updated_at": utcnow_ms()}},
            return_document=ReturnDocument.AFTER,
        )

    async def take_refresh_lease(
        self, link: str, owner: str, now: datetime, until: datetime
    ) -> Document | None:
        return await self.collection.find_one_and_update(
            {
                "_id": link,
                "kind": "oauth",
                "status": CONNECTED,
                "$or": [{"oauth.lease_until": None}, {"oauth.lease_until": {"$lt": now}}],
            },
            {"$set": {"oauth.lease_owner": owner, "oauth.lease_until": until}},
            return_document=ReturnDocument.AFTER,
        )

    async def release_refresh_lease(self, link: str, owner: str) -> None:
        await self.collection.update_one(
            {"_id": link, "oauth.lease_owner": owner}, {"$set": _NO_LEASE}
        )

    async def write_under_lease(self, link: str, owner: str, fields: Document) -> Document | None:
        return await self.collection.find_one_and_update(
            {"_id": link, "oauth.lease_owner": owner},
            {"$set": {**fields, **_NO_LEASE, "updated_at": utcnow_ms()}},
            return_document=ReturnDocument.AFTER,
        )

    async def due_for_refresh(self, now: datetime, limit: int) -> list[str]:
        cursor = self.collection.find(
            {"status": CONNECTED, "oauth.refresh_at": {"$lte": now}}, {"_id": 1}
        )
        return [str(doc["_id"]) for doc in await cursor.limit(limit).to_list()]
