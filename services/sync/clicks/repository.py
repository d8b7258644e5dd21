"""The `chat_clicks` collection: each click on a card, once, until it is acted on; and
`chat_click_effects`: each action on an item, once, whoever clicks it.

A click (`message.action` on `hookhub.chat.events`) is written when the outbound consumer
reads it, before its batch's offsets are committed: the click's envelope id is its `_id`,
so the same click read again is the same document (SPEC §10: the click is the idempotency
key). Its course:

- `queued` (due at `due_at`) → claimed by a sync replica for `LEASE` (`lease_owner`,
  `lease_until`; a replica that dies mid-call leaves it to the next claim after the lease);
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

from pymongo import ReturnDocument

from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import derived_id, id_problem
from shared.kernel.mongo import Database, Document, Index, insert_new

CLICKS = "chat_clicks"
EFFECTS = "chat_click_effects"

INDEXES = [
    Index(CLICKS, [("status", 1), ("due_at", 1)]),
    # Kept a week (TTL on `expires_at`), as the record of who clicked what.
    Index(CLICKS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
    Index(EFFECTS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
]

LEASE = timedelta(seconds=60)
LINK_WAIT = timedelta(hours=24)
KEPT = timedelta(days=7)
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


class BadClick(ValueError):
    """A `message.action` that lacks what a click needs: logged and counted, not kept."""


def click_doc(event: ChatEvent, now: datetime) -> Document:
    """A click's document from its `message.action` envelope (SPEC §20: `{message_id,
    channel_id, action_id, actor: {id, name, email?}}`). Raises BadClick."""
    data, actor = event.data, event.actor or {}
    for name in ("message_id", "channel_id", "action_id"):
        value = data.get(name)
        if not isinstance(value, str) or not value or len(value) > ACTION_ID_CHARS:
            raise BadClick(f"message.action needs a string data.{name} (1-200 characters)")
    who = actor.get("id")
    if not isinstance(who, str) or not who or id_problem(who) is not None:
        raise BadClick("message.action needs the clicking user as actor.id")
    shown = actor.get("name")
    return {
        "_id": event.id,
        "workspace_id": event.workspace_id,
        "channel_id": data["channel_id"],
        "message_id": data["message_id"],
        "action_id": data["action_id"],
        "actor": {"id": who, "name": shown if isinstance(shown, str) else None},
        "status": "queued",
        "attempts": 0,
        "due_at": now,
        "created_at": now,
        "expires_at": now + KEPT,
    }


def effect_id(root_id: str, action_id: str) -> str:
    return derived_id(root_id, action_id, prefix="eff")


class Clicks:
    def __init__(self, db: Database) -> None:
        self._clicks = db[CLICKS]
        self._effects = db[EFFECTS]

    async def accept(self, docs: list[Document]) -> int:
        """The clicks not written yet, written queued; how many were new."""
        return len(await insert_new(self._clicks, docs))

    async def claim(self, owner: str, now: datetime, limit: int) -> list[Click]:
        """Due clicks (queued, or held by a lease that ran out), leased to `owner`."""
        claimed: list[Click] = []
        for due in (
            {"status": "queued", "due_at": {"$lte": now}},
            {"status": "running", "lease_until": {"$lte": now}},
        ):
            claimed += await self._claim(due, owner, now, limit - len(claimed))
        return claimed

    async def _claim(self, due: Document, owner: str, now: datetime, limit: int) -> list[Click]:
        claimed: list[Click] = []
        if limit <= 0:
            return claimed
        for doc in await self._clicks.find(due, {"_id": 1}).limit(limit).to_list():
            taken = await self._clicks.find_one_and_update(
                {"_id": doc["_id"], **due},
                {
                    "$set": {"status": "running", "lease_owner": owner},
                    "$max": {"lease_until": now + LEASE},
                    "$inc": {"attempts": 1},
                },
                return_document=ReturnDocument.AFTER,
            )
            if taken is not None:
                claimed.append(Click.from_doc(taken))
        return claimed

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

    async def settle(
        self,
        click: Click,
        status: str,
        outcome: dict[str, Any],
        due_at: datetime | None = None,
        provider: str | None = None,
    ) -> None:
        """The click's next state: ended with its outcome, waiting for a link (of
        `provider`), or queued again at `due_at` (an outage)."""
        fields: Document = {"status": status, "outcome": outcome}
        if due_at is not None:
            fields["due_at"] = due_at
        if provider is not None:
            fields["provider"] = provider
        await self._clicks.update_one(
            {"_id": click.id}, {"$set": fields, "$unset": {"lease_owner": "", "lease_until": ""}}
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
