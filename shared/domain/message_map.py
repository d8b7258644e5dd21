"""The message map: for each chat message, every provider copy of it (SPEC §8). Sync writes
it and reads it; the importer writes imported history into it. Every query on the
`message_map` collection lives here.

One document per provider copy, its `_id` derived from the copy's provider coordinates
(provider, integration, channel, message id), so two processes recording the same copy
write one document, and a lookup from a provider event is a read by `_id`:

- `chat_message_id`: the chat's id of the message, once known. A message that came from a
  provider is known first by its inbound envelope id (`inbound_id`); the chat product names
  its own id later, in `message.created` with `data.inbound_id`, and `link` records it.
- `origin`: `outbound` (hookhub posted it), `inbound` (a provider user wrote it, sync
  brought it in), `import` (brought in from history) or `notification` (the root of a
  notification thread, SPEC §12: its provider coordinates are the item it is about,
  `external_message_id` `owner/repo#42` or `BUG-15`, in the chat channel it was posted to,
  `external_channel_id` = the chat channel, so that a channel has one root per item).
  An item's first root also keeps its `lifecycle` in the channel (SPEC §16,
  services.sync.notifications.threads): which thread is current (a later one's copy has
  `external_message_id` `<item>~<generation>`), the item's state and who set it, when it
  opened and resolved.
- `external_thread_id`: the provider id of the thread's root, for replies. Threads are
  flat: for a reply to a reply (Telegram and Discord reply chains) it is the chain's first
  message, not the parent, so a reply to this copy finds its thread's root here.
- `external_thread_key`: for a network that names threads apart from their first message
  (Google Chat's `thread.name`), the thread's name: on a thread's first message, a reply
  whose provider does not know the root finds it by this (`thread_roots`). Set only there.
- `offers`: on a notification root, the id of its item's document in `card_offers` (below).

What a notification root's card offers (SPEC §20) is kept once per item, in `card_offers`
(`_id` derived from the integration and the item, `offers_id`): the provider, the target and
the actions, which every root of the item shares (one per channel and thread), and under
`shown.<root id>` the card each root shows now and the envelope that showed it (a click's
pending edit is made from it). A change of the item's state is one write there, not one
update of the map per root (an alert subscribed to in five channels has five roots). Roots
written before it (no `offers`) keep theirs in their own `acting`, which is still read and
written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pymongo import UpdateMany, UpdateOne

from shared.kernel.ids import derived_id, utcnow
from shared.kernel.mongo import Collection, Database, Document, GroupInserter, Index, insert_new

COLLECTION = "message_map"
OFFERS = "card_offers"

INDEXES = [
    Index(COLLECTION, [("chat_message_id", 1), ("mapping_id", 1)]),
    Index(COLLECTION, [("inbound_id", 1)]),
    Index(COLLECTION, [("channel_id", 1), ("chat_message_id", 1)]),
    # Threads' first messages by the network's name of the thread: only the copies with one
    # (the others leave the field out, `Copy.to_doc`). Sparse, not partial over `$type:
    # "string"`, as it was: a server takes a partial index for a query only when it can
    # prove the query's matches are the index's, which MongoDB's planner never proves
    # against a `$type` filter (its expression_algebra's `isSubsetOf` knows comparisons,
    # `$in` and `$exists`), nor did the embedded server: each look-up by thread key
    # scanned the whole map (310 ms at 20,000 copies; 0.9 ms sparse).
    Index(COLLECTION, [("external_thread_key", 1)], {"sparse": True}),
]

Origin = Literal["outbound", "inbound", "import", "notification"]


def copy_id(
    provider: str, integration_id: str, external_channel_id: str, external_message_id: str
) -> str:
    return derived_id(
        provider, integration_id, external_channel_id, external_message_id, prefix="cpy"
    )


def inbound_message_id(
    provider: str, account_id: str, external_channel_id: str, external_message_id: str
) -> str:
    """The envelope id of a provider message brought to the chat (`message.received`),
    live or imported: the same message always gets the same id (SPEC §9), so a re-import
    or an overlap of import and sync is a duplicate the chat product drops. `account_id`
    is the provider account (Slack team, Telegram bot, Discord guild)."""
    return derived_id(provider, account_id, external_channel_id, external_message_id, prefix="msg")


def offers_id(integration_id: str, item: str) -> str:
    """The id of what an item's cards offer (`card_offers`): one for every root of it."""
    return derived_id(integration_id, item, prefix="ofr")


# Envelope ids of notifications (SPEC §12) start so: a thread's root is in the map before
# its envelope is published, the other notifications have no copy.
NOTIFICATION = "ntf_"


# Envelope ids of ephemeral messages (`visible_to`: one chat user's eyes only) start so:
# no map holds them, and a chat product that told of one anyway (`message.created` with it
# as `data.inbound_id`) is not bridged (services.sync.outbound.jobs).
EPHEMERAL = "eph_"


def ephemeral_id(*parts: str) -> str:
    """An ephemeral message's envelope id, derived from what it answers (a retry, the same)."""
    return derived_id(*parts, prefix=EPHEMERAL[:-1])


def notification_id(subscription_id: str, delivery_id: str, part: str) -> str:
    """A notification's envelope id: a redelivered webhook gets the same ids."""
    return derived_id(subscription_id, delivery_id, part, prefix=NOTIFICATION[:-1])


@dataclass(frozen=True)
class Copy:
    """One provider copy of a chat message."""

    id: str
    workspace_id: str
    channel_id: str
    chat_message_id: str | None
    inbound_id: str | None
    provider: str
    integration_id: str
    mapping_id: str | None
    external_channel_id: str
    external_message_id: str
    external_thread_id: str | None
    origin: Origin
    external_thread_key: str | None = None
    # A notification root's card actions as its `acting` keeps them (`[{id, label, style}]`,
    # SPEC §20), read with the copy; None for any other copy, and for a root that offers
    # nothing to act on. Written with `acting`, never by `to_doc`; a root's with `offers_id`
    # are read from its item's offers (`MessageMap.with_offers`).
    actions: tuple[dict[str, Any], ...] | None = dataclasses.field(default=None, compare=False)
    # A notification root's item's offers (`card_offers`), if it was written with one.
    offers_id: str | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def new(
        cls,
        *,
        workspace_id: str,
        channel_id: str,
        provider: str,
        integration_id: str,
        mapping_id: str | None,
        external_channel_id: str,
        external_message_id: str,
        origin: Origin,
        chat_message_id: str | None = None,
        inbound_id: str | None = None,
        external_thread_id: str | None = None,
        external_thread_key: str | None = None,
        offers_id: str | None = None,
    ) -> Copy:
        return cls(
            id=copy_id(provider, integration_id, external_channel_id, external_message_id),
            workspace_id=workspace_id,
            channel_id=channel_id,
            chat_message_id=chat_message_id,
            inbound_id=inbound_id,
            provider=provider,
            integration_id=integration_id,
            mapping_id=mapping_id,
            external_channel_id=external_channel_id,
            external_message_id=external_message_id,
            external_thread_id=external_thread_id,
            origin=origin,
            external_thread_key=external_thread_key,
            offers_id=offers_id,
        )

    @classmethod
    def from_doc(cls, doc: Document) -> Copy:
        return cls(
            id=doc["_id"],
            workspace_id=doc["workspace_id"],
            channel_id=doc["channel_id"],
            chat_message_id=doc.get("chat_message_id"),
            inbound_id=doc.get("inbound_id"),
            provider=doc["provider"],
            integration_id=doc["integration_id"],
            mapping_id=doc.get("mapping_id"),
            external_channel_id=doc["external_channel_id"],
            external_message_id=doc["external_message_id"],
            external_thread_id=doc.get("external_thread_id"),
            origin=doc["origin"],
            external_thread_key=doc.get("external_thread_key"),
            actions=_actions(doc),
            offers_id=doc.get("offers"),
        )

    def to_doc(self, now: datetime) -> Document:
        doc: Document = {
            "_id": self.id,
            "workspace_id": self.workspace_id,
            "channel_id": self.channel_id,
            "chat_message_id": self.chat_message_id,
            "inbound_id": self.inbound_id,
            "provider": self.provider,
            "integration_id": self.integration_id,
            "mapping_id": self.mapping_id,
            "external_channel_id": self.external_channel_id,
            "external_message_id": self.external_message_id,
            "external_thread_id": self.external_thread_id,
            "origin": self.origin,
            "created_at": now,
        }
        if self.external_thread_key is not None and self.external_thread_id is None:
            doc["external_thread_key"] = self.external_thread_key
        if self.offers_id is not None:
            doc["offers"] = self.offers_id
        return doc

    @property
    def chat_id(self) -> str | None:
        """How the chat knows this message: its own id, else the inbound envelope id it
        received the message under (SPEC §8 "Threads")."""
        return self.chat_message_id or self.inbound_id


def _actions(doc: Document) -> tuple[dict[str, Any], ...] | None:
    """A root's actions kept in its own `acting` (a root written before `card_offers`)."""
    acting = doc.get("acting")
    if doc.get("origin") != "notification" or not isinstance(acting, dict):
        return None
    return tuple(a for a in acting.get("actions") or () if isinstance(a, dict))


def _root_acting(root_id: str, offers: Document) -> Document:
    """One root's `acting` (provider, target, actions and the card it shows, `shown`) from
    its item's offers."""
    acting = {key: offers.get(key) for key in ("provider", "target", "actions")}
    shown = (offers.get("shown") or {}).get(root_id)
    return {**acting, "shown": shown} if isinstance(shown, dict) else acting


class MessageMap:
    def __init__(self, db: Database) -> None:
        self._collection: Collection = db[COLLECTION]
        self._offers: Collection = db[OFFERS]
        # Copies are known from memory until written (Inbound), so they may wait 20 ms to
        # go in one insert with the others of a burst.
        self._inserter = GroupInserter(self._collection, interval=0.02)

    async def by_ids(self, ids: Iterable[str]) -> dict[str, Copy]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        docs = await self._collection.find({"_id": {"$in": wanted}}).to_list()
        return {doc["_id"]: Copy.from_doc(doc) for doc in docs}

    async def thread_roots(self, keys: Iterable[str]) -> list[Copy]:
        """The first messages of threads by the network's names of them
        (`external_thread_key`): the caller matches provider, integration and channel."""
        wanted = list(set(keys))
        if not wanted:
            return []
        docs = await self._collection.find({"external_thread_key": {"$in": wanted}}).to_list()
        return [Copy.from_doc(doc) for doc in docs]

    async def roots(self, ids: Iterable[str]) -> dict[str, tuple[Copy, Document]]:
        """Notification roots by id, each with its `lifecycle` and `created_at` (when it was
        claimed)."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        docs = await self._collection.find({"_id": {"$in": wanted}}).to_list()
        return {
            doc["_id"]: (
                Copy.from_doc(doc),
                {"lifecycle": doc.get("lifecycle"), "created_at": doc.get("created_at")},
            )
            for doc in docs
        }

    async def of_messages(self, chat_ids: Iterable[str]) -> list[Copy]:
        """Every copy of these chat messages, by the chat's id or the inbound id."""
        wanted = list(set(chat_ids))
        if not wanted:
            return []
        # One query per index, not an `$or` of both: the embedded server scans the whole
        # collection for the `$or` (2.8 s for 100 ids among 5,000 copies, 3 ms each way).
        found: dict[str, Document] = {}
        for field in ("chat_message_id", "inbound_id"):
            for doc in await self._collection.find({field: {"$in": wanted}}).to_list():
                found[doc["_id"]] = doc
        return [Copy.from_doc(doc) for doc in found.values()]

    async def cards(self, chat_ids: Iterable[str]) -> dict[str, tuple[Copy, Document]]:
        """The notification roots the chat knows by these ids (their ids or envelope ids),
        each with what can be done to its item (`acting`: provider, target, actions and the
        card shown, SPEC §20), by the id asked with: one query per index, the rest checked
        here (with more conditions the embedded server scans the collection, its explain's
        `COLLSCAN`), and one of the items' offers."""
        wanted = list(set(chat_ids))
        found: dict[str, Document] = {}
        for field in ("chat_message_id", "inbound_id"):
            if not wanted:
                break
            async for doc in self._collection.find({field: {"$in": wanted}}):
                if doc.get("origin") == "notification":
                    found.setdefault(doc[field], doc)
            wanted = [chat_id for chat_id in wanted if chat_id not in found]
        acting = await self._acting(found.values())
        return {
            chat_id: (Copy.from_doc(doc), acting[doc["_id"]])
            for chat_id, doc in found.items()
            if doc["_id"] in acting
        }

    async def _acting(self, roots: Iterable[Document]) -> dict[str, Document]:
        """Roots' `acting` by root id, from their items' offers (or, for a root written
        before them, its own); a root whose item offers nothing is left out."""
        roots = list(roots)
        ids = {doc["offers"] for doc in roots if isinstance(doc.get("offers"), str)}
        offers = (
            {doc["_id"]: doc async for doc in self._offers.find({"_id": {"$in": list(ids)}})}
            if ids
            else {}
        )
        acting: dict[str, Document] = {}
        for doc in roots:
            kept = offers.get(doc.get("offers"))
            if kept is not None:
                acting[doc["_id"]] = _root_acting(doc["_id"], kept)
            elif isinstance(doc.get("acting"), dict):
                acting[doc["_id"]] = doc["acting"]
        return acting

    async def with_offers(self, copies: list[Copy]) -> list[Copy]:
        """The copies, a notification root's with its item's actions (`Copy.actions`)."""
        ids = {c.offers_id for c in copies if c.origin == "notification" and c.offers_id}
        if not ids:
            return copies
        cursor = self._offers.find({"_id": {"$in": list(ids)}}, {"actions": 1})
        offers = {doc["_id"]: doc async for doc in cursor}
        return [
            dataclasses.replace(
                copy,
                actions=tuple(
                    a for a in offers[copy.offers_id].get("actions") or () if isinstance(a, dict)
                ),
            )
            if copy.offers_id in offers
            else copy
            for copy in copies
        ]

    async def copy_in(self, chat_id: str, mapping_id: str) -> Copy | None:
        """The copy of chat message `chat_id` (its id or inbound id) in one mapping."""
        for field in ("chat_message_id", "inbound_id"):
            doc = await self._collection.find_one({field: chat_id, "mapping_id": mapping_id})
            if doc is not None:
                return Copy.from_doc(doc)
        return None

    async def lookup_external(
        self,
        provider: str,
        external_channel_id: str,
        external_message_id: str,
        integration_ids: Iterable[str],
    ) -> list[Copy]:
        """Every copy of the chat message that one provider message is a copy of, where the
        provider message is a copy under one of `integration_ids`: read by `_id` (a copy's
        is derived from the four), not by the three fields, which no index holds (a scan of
        the whole map for each look-up)."""
        wanted = [
            copy_id(provider, integration_id, external_channel_id, external_message_id)
            for integration_id in set(integration_ids)
        ]
        if not wanted:
            return []
        found = await self._collection.find({"_id": {"$in": wanted}}).to_list()
        ids = {
            chat_id
            for doc in found
            for chat_id in (doc.get("chat_message_id"), doc.get("inbound_id"))
            if chat_id
        }
        return await self.of_messages(ids)

    async def link(self, links: dict[str, str]) -> None:
        """Record the chat's message id of messages it received: {inbound_id: chat id}."""
        if links:
            await self._collection.bulk_write(
                [
                    UpdateMany({"inbound_id": inbound}, {"$set": {"chat_message_id": chat}})
                    for inbound, chat in links.items()
                ],
                ordered=False,
            )

    async def acting_of(self, roots: Mapping[str, str | None]) -> dict[str, Document]:
        """What roots' cards offer now (`set_acting`'s), by root id; `roots`: each root's
        `offers_id` (None: a root written before `card_offers`, read from the map)."""
        docs = [{"_id": rid, "offers": offers} for rid, offers in roots.items() if offers]
        if own := [rid for rid, offers in roots.items() if offers is None]:
            docs += await self._collection.find({"_id": {"$in": own}}, {"acting": 1}).to_list()
        return await self._acting(docs)

    async def set_acting(
        self, acting: dict[str, Document], offers: Mapping[str, str | None] | None = None
    ) -> None:
        """What roots' cards offer now, by root id (`offers`: each root's `offers_id`):
        written before the edits that show them are published, so that the chat's
        `message.updated` of a root, and a click right after it, find its current actions
        (the networks' buttons are made from them). One write per item: its provider,
        target and actions as the last of its roots here has them (the same webhook's, for
        every root of it), and each root's card; a root with no `offers_id` (written before
        `card_offers`) keeps them in its own `acting`."""
        offers = offers or {}
        items: dict[str, Document] = {}
        own: list[UpdateOne] = []
        for rid, doc in acting.items():
            item = offers.get(rid)
            if item is None:
                own.append(UpdateOne({"_id": rid}, {"$set": {"acting": doc}}))
                continue
            fields = items.setdefault(item, {})
            fields.update({key: doc.get(key) for key in ("provider", "target", "actions")})
            if isinstance(doc.get("shown"), dict):
                fields[f"shown.{rid}"] = doc["shown"]
        if items:
            await self._offers.bulk_write(
                [UpdateOne({"_id": i}, {"$set": f}, upsert=True) for i, f in items.items()],
                ordered=False,
            )
        if own:
            await self._collection.bulk_write(own, ordered=False)

    async def claim(self, copies: list[Copy], extra: dict[str, Document] | None = None) -> set[str]:
        """Insert the copies now, each unless a copy with its id exists (another process
        claimed it first, or this one before a restart): the ids of those that existed.
        `extra`: more fields of some copies, by id (a root's `lifecycle`)."""
        now, extra = utcnow(), extra or {}
        docs = [{**copy.to_doc(now), **extra.get(copy.id, {})} for copy in copies]
        inserted = {doc["_id"] for doc in await insert_new(self._collection, docs)}
        return {copy.id for copy in copies} - inserted

    async def insert(self, copies: Iterable[Copy]) -> None:
        """Record copies now, for callers that must read them back at once: concurrent
        callers' copies share bulk inserts (a burst of batches costs a few writes)."""
        now = utcnow()
        await self._inserter.insert([copy.to_doc(now) for copy in copies])
