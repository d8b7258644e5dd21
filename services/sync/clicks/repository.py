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

An effect is `(root, action)`: its document, claimed by an insert only one click wins
(a round's clicks' in one insert), says which click holds it and who clicked; a click
that finds it taken is a duplicate once the holder is `done`, or waits while the holder
is still at it. A refusal or an outage releases it, so that another click (or this one's
retry) may try. The holder's own status says whether it was made: the effect is written
once, when it is claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
class Via:
    """Where a bridged network's click came from (its document's `via`): the network, the
    integration the gateway verified it for, the interaction, the clicked message, who
    clicked (their id there) and, sealed, what the network gives to answer them alone
    (`shared.providers.chat.Click.reply`)."""

    provider: str
    integration_id: str | None = None
    external_channel_id: str | None = None
    external_message_id: str | None = None
    user_id: str | None = None
    reply: str | None = None

    @classmethod
    def from_doc(cls, doc: Document | None) -> Via | None:
        if not doc or not doc.get("provider"):
            return None
        fields = ("integration_id", "external_channel_id", "external_message_id", "user_id")
        found = {name: str(doc[name]) for name in fields if doc.get(name)}
        reply = doc.get("reply")
        return cls(str(doc["provider"]), reply=reply if isinstance(reply, str) else None, **found)


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
    # The network a bridged network's click came from (`via.provider`); None: the chat's.
    network: str | None = None
    via: Via | None = None

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
            network=(doc.get("via") or {}).get("provider"),
            via=Via.from_doc(doc.get("via")),
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

    async def take_effects(
        self, wanted: Sequence[tuple[str, Click]], now: datetime
    ) -> dict[str, Held]:
        """The actions on items claimed for these clicks (`(root id, click)` each) in one
        insert. The answer names the clicks that did not get theirs, each with who holds
        it; a click holding it already (run again after its lease ran out) gets it, unless it
        ended (`Held.own`)."""
        docs: list[Document] = [
            {
                "_id": effect_id(root_id, click.action_id),
                "click_id": click.id,
                "by": click.actor_name,
                "created_at": now,
                "expires_at": now + KEPT,
            }
            for root_id, click in wanted
        ]
        won = {doc["click_id"] for doc in await insert_new(self._effects, docs)}
        lost = [doc for doc in docs if doc["click_id"] not in won]
        if not lost:
            return {}
        effects = {d["_id"]: d for d in await self._effects.find(_among(lost, "_id")).to_list()}
        holders = {
            d["_id"]: d.get("status")
            for d in await self._clicks.find(
                _among(list(effects.values()), "click_id"), {"status": 1}
            ).to_list()
        }
        held: dict[str, Held] = {}
        for doc in lost:
            effect = effects.get(doc["_id"])
            if effect is None:  # let go since the insert: try again
                held[doc["click_id"]] = Held(by=None, done=False)
            elif effect["click_id"] == doc["click_id"]:
                # Its own: made already if the click ended (its event published twice), else
                # perhaps not (the process acting on it gone mid-call): made again.
                if holders.get(doc["click_id"]) in ENDED:
                    held[doc["click_id"]] = Held(by=effect.get("by"), done=True, own=True)
            else:  # a holder gone (a week later) made it
                done = holders.get(effect["click_id"], "done") == "done"
                held[doc["click_id"]] = Held(by=effect.get("by"), done=done)
        return held

    async def release_effects(self, released: Sequence[tuple[str, Click]]) -> None:
        """The actions these clicks held (`(root id, click)` each) let go: not made."""
        if released:
            await self._effects.delete_many(
                {
                    "_id": {"$in": [effect_id(root, c.action_id) for root, c in released]},
                    "click_id": {"$in": [c.id for _, c in released]},
                }
            )


@dataclass(frozen=True)
class Held:
    """An action on an item a click holds: who clicked it, whether it is made, and whether
    by this very click (`own`: it was acted on and recorded before)."""

    by: str | None
    done: bool
    own: bool = False


def _among(docs: list[Document], name: str) -> Document:
    return {"_id": {"$in": [doc[name] for doc in docs]}}
