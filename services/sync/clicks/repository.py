"""The `chat_clicks` collection: each click on a card, once, until it is acted on; and
`chat_click_effects`: each action on an item, once, whoever clicks it.

A click (`message.action` on `hookhub.chat.events`) is written when the outbound consumer
reads it and claimed under a lease as every ask of the chat is (services.sync.clicks.queue;
SPEC §10: the click is the idempotency key). Its course:

- `queued` (due at `due_at`) → claimed by a sync replica for `LEASE`;
- `waiting_link`: the user has no account link for the provider; queued again once they
  have one (`relink`), for `LINK_WAIT` at most;
- ends `done`, `duplicate` (the action was already made on the item: said who did),
  `refused` (the provider said no, or nothing on the card), `failed` (the provider stayed
  away through every attempt), each with its `outcome` for the thread and the audit.

An effect is `(root, action)`: its document, claimed by an insert only one click wins,
says which click made it and who; a click that finds it taken is a duplicate, or waits
while the other is still running. A refusal or an outage releases it, so that another
click (or this one's retry) may try.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.sync.clicks.queue import KEPT, Queue, Unusable, asking_user, queued
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import derived_id
from shared.kernel.mongo import Database, Document, Index, insert_new

CLICKS = "chat_clicks"
EFFECTS = "chat_click_effects"

INDEXES = [
    Index(CLICKS, [("status", 1), ("due_at", 1)]),
    # Kept a week (TTL on `expires_at`), as the record of who clicked what.
    Index(CLICKS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
    Index(EFFECTS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
]

LINK_WAIT = timedelta(hours=24)
ENDED = ("done", "duplicate", "refused", "failed")


@dataclass(frozen=True)
class Click:
    id: str
    workspace_id: str
    channel_id: str
    message_id: str
    action_id: str
    actor_id: str
    actor_name: str
    attempts: int
    created_at: datetime
    # The card's provider, once known (set while the click waits for its user's link).
    provider: str | None = None

    @classmethod
    def from_doc(cls, doc: Document) -> Click:
        actor = doc.get("actor") or {}
        return cls(
            id=doc["_id"],
            workspace_id=doc["workspace_id"],
            channel_id=doc["channel_id"],
            message_id=doc["message_id"],
            action_id=doc["action_id"],
            actor_id=str(actor.get("id", "")),
            actor_name=str(actor.get("name") or actor.get("id") or "someone"),
            attempts=int(doc.get("attempts", 0)),
            created_at=doc["created_at"],
            provider=doc.get("provider"),
        )

    @property
    def who(self) -> str:
        return self.actor_name


ACTION = "message.action"
ACTION_ID_CHARS = 200


class BadClick(Unusable):
    """A `message.action` that lacks what a click needs: logged and counted, not kept."""


def click_doc(event: ChatEvent, now: datetime) -> Document:
    """A click's document from its `message.action` envelope (SPEC §20: `{message_id,
    channel_id, action_id, actor: {id, name, email?}}`). Raises BadClick."""
    data = event.data
    for name in ("message_id", "channel_id", "action_id"):
        value = data.get(name)
        if not isinstance(value, str) or not value or len(value) > ACTION_ID_CHARS:
            raise BadClick(f"message.action needs a string data.{name} (1-200 characters)")
    fields = {name: data[name] for name in ("channel_id", "message_id", "action_id")}
    return queued(event, now, {**fields, "actor": asking_user(event)})


def effect_id(root_id: str, action_id: str) -> str:
    return derived_id(root_id, action_id, prefix="eff")


class Clicks(Queue[Click]):
    def __init__(self, db: Database) -> None:
        super().__init__(db[CLICKS], Click.from_doc)
        self._clicks = db[CLICKS]
        self._effects = db[EFFECTS]

    async def waiting(self, now: datetime, limit: int) -> list[Click]:
        """Clicks waiting for their user's link, the expired ones ended first."""
        await self._clicks.update_many(
            {"status": "waiting_link", "created_at": {"$lte": now - LINK_WAIT}},
            {"$set": {"status": "failed", "outcome": {"text": "no account link within a day"}}},
        )
        docs = await self._clicks.find({"status": "waiting_link"}).limit(limit).to_list()
        return [Click.from_doc(doc) for doc in docs]

    async def requeue(self, ids: list[str], now: datetime) -> None:
        if ids:
            await self._clicks.update_many(
                {"_id": {"$in": ids}, "status": "waiting_link"},
                {"$set": {"status": "queued", "due_at": now}},
            )

    async def take_effect(self, root_id: str, click: Click, now: datetime) -> Document | None:
        """The action on the item claimed for this click; None if it is this click's
        already (a retry), else the document of the click that holds it."""
        doc = {
            "_id": effect_id(root_id, click.action_id),
            "click_id": click.id,
            "by": click.actor_name,
            "status": "running",
            "created_at": now,
            "expires_at": now + KEPT,
        }
        if await insert_new(self._effects, [doc]):
            return None
        held: Document | None = await self._effects.find_one({"_id": doc["_id"]})
        if held is None or held.get("click_id") == click.id:
            return None
        return held

    async def effect_done(self, root_id: str, click: Click, outcome: dict[str, Any]) -> None:
        await self._effects.update_one(
            {"_id": effect_id(root_id, click.action_id), "click_id": click.id},
            {"$set": {"status": "done", "outcome": outcome}},
        )

    async def release_effect(self, root_id: str, click: Click) -> None:
        await self._effects.delete_one(
            {"_id": effect_id(root_id, click.action_id), "click_id": click.id}
        )
