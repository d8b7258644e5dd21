"""The `chat_commands` collection: each slash command, once, until it is answered.

A command (`command.invoked` on `hookhub.chat.events`) is written when the outbound
consumer reads it (one typed in a network, when the inbound consumer reads it:
services.sync.commands.networks) and claimed under a lease as every ask of the chat is
(services.sync.clicks.queue): the same command read again is the same document, run once.
Its course: `queued` → `running` (claimed) → `done` once answered; an outage (MongoDB,
Kafka) queues it again, and after every attempt it ends `failed`. Its `answer` is kept as
soon as it is decided, so that a command run again after its change was made publishes
that answer rather than deciding again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.sync.clicks.queue import Queue, Unusable, asking_user, queued
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import id_problem
from shared.kernel.mongo import Database, Document, Index

COMMANDS = "chat_commands"
COMMAND = "command.invoked"
# The longest command text taken (a subscription's filters fit many times over).
TEXT_CHARS = 2_000

INDEXES = [
    Index(COMMANDS, [("status", 1), ("due_at", 1)]),
    Index(COMMANDS, [("expires_at", 1)], {"expireAfterSeconds": 0}),
]


@dataclass(frozen=True)
class Command:
    id: str
    workspace_id: str
    # None: typed in a network channel that is mapped to no chat channel.
    channel_id: str | None
    text: str
    actor_id: str
    attempts: int
    # The answer decided (set before it is published), and whether it is said to the
    # user alone. An answer that holds a ticket is not kept.
    answer: str | None = None
    answer_private: bool = False
    actor_name: str | None = None
    # Typed in a network (`{provider, integration_id, interaction_id, external_channel_id,
    # reply, private_answers}`): answered there too (services.sync.commands.networks).
    via: Document | None = None

    @property
    def channel(self) -> str:
        """The chat channel it runs in (one typed where there is none is answered so before
        anything runs)."""
        if self.channel_id is None:
            raise ValueError(f"command {self.id} runs in no chat channel")
        return self.channel_id

    @classmethod
    def from_doc(cls, doc: Document) -> Command:
        return cls(
            id=doc["_id"],
            workspace_id=doc["workspace_id"],
            channel_id=doc.get("channel_id"),
            text=doc["text"],
            actor_id=str(doc["actor"]["id"]),
            attempts=int(doc.get("attempts", 0)),
            answer=doc.get("answer"),
            answer_private=bool(doc.get("answer_private")),
            actor_name=doc["actor"].get("name"),
            via=doc.get("via"),
        )


class BadCommand(Unusable):
    """A `command.invoked` that lacks what a command needs: logged and counted, not kept."""


def command_doc(event: ChatEvent, now: datetime) -> Document:
    """A command's document from its `command.invoked` envelope (SPEC §20: `data:
    {channel_id, text}`, `actor: {id, name}`). Raises Unusable."""
    channel, text = event.data.get("channel_id"), event.data.get("text")
    if not isinstance(channel, str) or id_problem(channel) is not None:
        raise BadCommand("command.invoked needs an id as data.channel_id")
    if not isinstance(text, str) or len(text) > TEXT_CHARS:
        raise BadCommand(f"command.invoked needs a string data.text (up to {TEXT_CHARS})")
    return queued(event, now, {"channel_id": channel, "text": text, "actor": asking_user(event)})


class Commands(Queue[Command]):
    def __init__(self, db: Database) -> None:
        super().__init__(db[COMMANDS], Command.from_doc)
        self._commands = db[COMMANDS]

    async def answered(self, command: Command, answer: str, private: bool) -> None:
        """The answer decided, kept before it is published."""
        await self._commands.update_one(
            {"_id": command.id}, {"$set": {"answer": answer, "answer_private": private}}
        )
