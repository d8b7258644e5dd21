"""Chat events → outbox jobs: which mappings a chat message goes to, and what to do there.

Pure: takes the events, the channel's mappings and the copies the map knows; returns the
job documents and the links to record. The rules (SPEC §8):

- `message.created` goes to every outbound mapping of its channel, except the mappings the
  message came in through (a message the chat received from Slack, named by
  `data.inbound_id`, is bridged to the channel's other mappings, never back to Slack), and
  those where hookhub's copy of it is in the map already (the chat published it twice).
- `message.updated|deleted` go to the mappings that hold a copy hookhub posted; a copy
  some provider user wrote is theirs, not ours to edit. Whether the map knows the copy is
  decided when the job runs (a post still queued ahead of it may create it).
- An ephemeral message (`visible_to`: one chat user's, its id `eph_…`) is never bridged:
  a chat product that tells of one anyway (`data.inbound_id`) is not listened to.
- A notification's root card (its copy in the map, `origin` notification) that its item
  can be acted on from carries the card's actions to every network (SPEC §20): its post
  and its edits, which so show the actions its item offers now as the network's buttons.
- What hookhub wrote itself (a notification, `ntf_…`, or its root's copy; the replies of
  clicks and commands, named so too) is CommonMark, which each network writes in its own
  markup (`markup`, shared.providers.markup); the chat's own messages are plain text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from services.sync.mappings.service import MappingSnapshot
from shared.domain.message_map import EPHEMERAL, NOTIFICATION, Copy
from shared.kernel import tracing
from shared.kernel.envelopes import ChatEvent
from shared.kernel.ids import derived_id
from shared.kernel.mongo import Document
from shared.kernel.ownership import Ownership

log = structlog.get_logger(__name__)

Op = Literal["post", "edit", "delete"]
# Where a chat event was read: (partition, offset); None when not read from Kafka.
Position = tuple[int, int] | None
OPS: dict[str, Op] = {
    "message.created": "post",
    "message.updated": "edit",
    "message.deleted": "delete",
}
MAX_TEXT = 40_000
MAX_ATTACHMENTS = 20


@dataclass(frozen=True)
class Job:
    """One write to one provider channel, as the lane that runs it needs it."""

    id: str
    seq: int
    op: Op
    mapping_id: str
    integration_id: str
    provider: str
    external_channel_id: str
    workspace_id: str
    channel_id: str
    message_id: str
    thread_id: str | None
    text: str
    author_name: str
    author_avatar_url: str | None
    attachments: tuple[Mapping[str, str], ...]
    queued_at: datetime
    recovered: bool = False
    # The card's actions, for a notification root that offers them (`OutboundPost.actions`).
    actions: tuple[Mapping[str, Any], ...] | None = None
    # "commonmark": hookhub's own text (`OutboundPost.markup`); else the chat's plain text.
    markup: str = "plain"
    # The trace of the chat event it is for (shared.kernel.tracing): its provider calls' parent.
    trace: Any = field(default=None, compare=False)

    @classmethod
    def from_doc(cls, doc: Document, trace: Any = None) -> Job:
        """`trace`: its chat event's, when this process read the event; else the one the
        job keeps (`traceparent`, written when spans are exported)."""
        return cls(
            id=doc["_id"],
            seq=int(doc["seq"]),
            op=doc["op"],
            mapping_id=doc["mapping_id"],
            integration_id=doc["integration_id"],
            provider=doc["provider"],
            external_channel_id=doc["external_channel_id"],
            workspace_id=doc["workspace_id"],
            channel_id=doc["channel_id"],
            message_id=doc["message_id"],
            thread_id=doc.get("thread_id"),
            text=doc.get("text") or "",
            author_name=doc.get("author_name") or "",
            author_avatar_url=doc.get("author_avatar_url"),
            attachments=tuple(doc.get("attachments") or ()),
            queued_at=doc["queued_at"],
            recovered=bool(doc.get("recovered", False)),
            actions=None if doc.get("actions") is None else tuple(doc["actions"]),
            markup=str(doc.get("markup") or "plain"),
            trace=trace if trace is not None else tracing.from_traceparent(doc.get("traceparent")),
        )


class BadChatEvent(ValueError):
    """A message event without what sync needs (`message_id`, `channel_id`)."""


@dataclass(frozen=True)
class Message:
    """What a chat message event says, checked."""

    op: Op
    event_id: str
    workspace_id: str
    channel_id: str
    message_id: str
    thread_id: str | None
    inbound_id: str | None
    text: str
    author_name: str
    author_avatar_url: str | None
    attachments: tuple[dict[str, str], ...]
    trace: Any = field(default=None, compare=False)  # the event's (shared.kernel.tracing)
    position: Position = None
    # When the chat says it happened: no post of it was made before (a recovery's search
    # starts there, services.sync.outbound.intake).
    occurred_at: datetime | None = None

    @classmethod
    def of(cls, event: ChatEvent) -> Message | None:
        """None for events sync does not handle (and the chat's echo of an ephemeral
        message); BadChatEvent for message events that lack what it needs."""
        op = OPS.get(event.type)
        if op is None:
            return None
        data, actor = event.data, event.actor or {}
        if str(data.get("inbound_id") or "").startswith(EPHEMERAL):
            return None
        message_id, channel_id = data.get("message_id"), data.get("channel_id")
        if not _id(message_id) or not _id(channel_id):
            raise BadChatEvent(f"{event.type} needs string data.message_id and data.channel_id")
        text = data.get("text")
        return cls(
            op=op,
            event_id=event.id,
            workspace_id=event.workspace_id,
            channel_id=str(channel_id),
            message_id=str(message_id),
            thread_id=str(data["thread_id"]) if _id(data.get("thread_id")) else None,
            inbound_id=str(data["inbound_id"]) if _id(data.get("inbound_id")) else None,
            text=text[:MAX_TEXT] if isinstance(text, str) else "",
            author_name=_text(actor.get("name")) or _text(actor.get("id")) or "Unknown",
            author_avatar_url=_url(actor.get("avatar_url")),
            attachments=_attachments(data.get("attachments")),
            trace=event.trace(),
            position=event.position(),
            # A time without a zone (another producer's) is UTC, as hookhub's are.
            occurred_at=event.occurred_at
            if event.occurred_at.tzinfo is not None
            else event.occurred_at.replace(tzinfo=UTC),
        )


def _id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def _text(value: Any) -> str | None:
    return value.strip()[:200] or None if isinstance(value, str) else None


def _url(value: Any) -> str | None:
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2048:
        return value
    return None


def _attachments(value: Any) -> tuple[dict[str, str], ...]:
    found: list[dict[str, str]] = []
    for item in value if isinstance(value, list) else []:
        url = _url(item.get("url")) if isinstance(item, dict) else None
        if url is None:
            continue
        entry = {"url": url}
        name = _text(item.get("name")) or _text(item.get("title"))
        if name:
            entry["name"] = name
        found.append(entry)
    return tuple(found[:MAX_ATTACHMENTS])


def job_id(message: Message, mapping_id: str) -> str:
    """The same job for the same work: one post and one delete per message and mapping
    (a chat product that publishes `message.created` twice gets one post), one edit per
    event."""
    if message.op == "edit":
        return derived_id("edit", message.event_id, mapping_id, prefix="job")
    parts = (message.op, message.workspace_id, message.channel_id, message.message_id, mapping_id)
    return derived_id(*parts, prefix="job")


def plan(
    messages: Iterable[Message],
    mappings_of: Callable[[str, str], list[MappingSnapshot]],
    sources: Mapping[str, list[Copy]],
    ownership: Ownership,
    now: datetime,
) -> list[Document]:
    """The jobs for a batch of message events, in the batch's order (`seq`).

    `sources`: the copies the map holds of the messages (by chat id and by inbound id):
    mappings holding a copy a provider user wrote get nothing, and a post goes to none that
    holds hookhub's copy of it already (the chat published it again)."""
    docs: list[Document] = []
    base = time.time_ns()
    exported = tracing.exported()
    for message in messages:
        # Kept with the job for whichever process runs it (the one that read the event
        # hands its jobs the trace in memory): only where spans are exported.
        traceparent = tracing.traceparent(message.trace) if exported else None
        passed = {
            copy.mapping_id
            for key in (message.message_id, message.inbound_id)
            if key
            for copy in sources.get(key, [])
            if copy.origin != "outbound"
        }
        actions = _card_actions(message, sources)
        commonmark = _hookhubs(message, sources)
        if message.op == "post":
            passed |= {
                copy.mapping_id
                for copy in sources.get(message.message_id, [])
                if copy.origin == "outbound"
            }
        for mapping in mappings_of(message.workspace_id, message.channel_id):
            if not mapping.outbound or mapping.id in passed:
                continue
            docs.append(
                {
                    "_id": job_id(message, mapping.id),
                    "seq": base + len(docs),
                    "op": message.op,
                    "mapping_id": mapping.id,
                    "integration_id": mapping.integration_id,
                    "provider": mapping.provider,
                    "external_channel_id": mapping.external_channel_id,
                    "workspace_id": message.workspace_id,
                    "channel_id": message.channel_id,
                    "message_id": message.message_id,
                    "thread_id": message.thread_id,
                    "text": message.text,
                    "author_name": message.author_name,
                    "author_avatar_url": message.author_avatar_url,
                    "attachments": list(message.attachments),
                    "event_id": message.event_id,
                    "status": "queued",
                    "queued_at": now,
                    # Held by this process until finished; see shared.kernel.ownership.
                    "lease_owner": ownership.id,
                    "next_attempt_at": now,
                    **({"traceparent": traceparent} if traceparent else {}),
                    **({"actions": actions} if actions is not None else {}),
                    **({"markup": "commonmark"} if commonmark else {}),
                }
            )
    return docs


def _card_actions(message: Message, sources: Mapping[str, list[Copy]]) -> list[Any] | None:
    """The actions of the card the message is, if it is a notification root that offers
    them (its copy keeps them beside it in the map)."""
    if message.op == "delete":
        return None
    for key in (message.message_id, message.inbound_id):
        for copy in sources.get(key, []) if key else ():
            if copy.origin == "notification" and copy.actions is not None:
                return [dict(action) for action in copy.actions]
    return None


def _hookhubs(message: Message, sources: Mapping[str, list[Copy]]) -> bool:
    """Whether hookhub wrote the message (CommonMark): the chat tells of a notification
    (`inbound_id` `ntf_…`), or of a message whose copy in the map is a notification's
    root (an edit of it)."""
    if message.inbound_id is not None and message.inbound_id.startswith(NOTIFICATION):
        return True
    return any(
        copy.origin == "notification"
        for key in (message.message_id, message.inbound_id)
        if key
        for copy in sources.get(key, [])
    )
