"""The chat product's part, played by the sandbox (the page's "Chat" tab): what hookhub hands
the chat on `hookhub.chat.inbound` for the sandbox's workspace, kept by channel (edits and
deletes applied), and the chat's own answers to it, sent as the chat product sends them,
through `POST /api/events` with the admin token:

- **What hookhub made is announced.** A message hookhub itself made (a notification, its
  card and its thread's replies, a click's outcome, a command's answer: every one whose
  `source.provider` is not a network) is kept and announced as the chat's own
  (`message.created`, its id the chat's id of it, with `inbound_id` for a notification,
  and `message.updated` for an edit), so a channel mapped to networks shows it there, a
  card with its buttons: what a chat product does, and what a newcomer has no chat product
  for. A message brought
  in from a network is shown and not announced: passing it on is the walk-through's part
  (docs/sandbox.md, "One chat channel bridged to every network").
- **A click** on a card's button is `message.action` as the chat product sends it, as one
  of the chat's users (`CHAT_USERS`, the page's "You are").
- **The chat's users write**: a message, a reply in a thread, its edit and its delete are
  `message.created`, `message.updated` and `message.deleted`, kept here as the chat's own
  (they are not on `hookhub.chat.inbound`): what sync posts to every mapped network. A
  network's message **passed on** is announced as the chat's own (`message.created` naming
  it by `inbound_id`, under its author), and so are its author's later edit and delete:
  the other networks of its channel get it, the one it came from does not.

The topic is read from its beginning (the embedded broker keeps it for the stack's run), by
no consumer group: nothing of hookhub's consumers is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.sandbox.acted import CHAT_USERS, email_of
from shared.domain.message_map import NOTIFICATION
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from shared.providers.catalog import NETWORKS

log = structlog.get_logger(__name__)
# How many messages a channel keeps (the oldest dropped).
KEPT = 500


class ChatRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ChatProduct:
    """`bootstrap` and `topic`: where `hookhub.chat.inbound` is (None: not read, the chat
    shows nothing); `origin` and `admin_token`: where the chat's events go."""

    def __init__(
        self,
        bootstrap: str | None,
        topic: str,
        origin: str,
        admin_token: str,
        workspace_id: str,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.origin, self.admin_token, self.workspace_id = origin, admin_token, workspace_id
        # channel → message id → the message as the page shows it (oldest first).
        self.channels: dict[str, dict[str, dict[str, Any]]] = {}
        self.reading = False
        self._task: asyncio.Task[None] | None = None

    # -- what the page shows --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "reading": self.reading,
            "users": [{"id": k, "name": v} for k, v in CHAT_USERS.items()],
            "channels": [{"id": c, "name": c} for c in self.channels],
        }

    def messages(self, channel: str) -> list[dict[str, Any]]:
        found = self.channels.get(channel)
        if found is None:
            raise ChatRefused(404, "not_found", f"no chat channel {channel} has a message yet")
        return list(found.values())

    # -- reading hookhub.chat.inbound -----------------------------------------------------

    def start(self) -> None:
        if self.bootstrap and self._task is None:
            self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _read(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker away: read again from where it was
                self.reading = False
                log.warning("sandbox_chat_read_failed", error=repr(exc))
                await asyncio.sleep(2)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partitions: set[int] | None = None
            while not partitions:  # the services make the topic as they start
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    await asyncio.sleep(1)
            assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            self.reading = True
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        await self.take(record.value)
        finally:
            await consumer.stop()

    async def take(self, raw: bytes | None) -> None:
        """One record of the topic: kept if it is the workspace's, announced if hookhub made
        it."""
        try:
            envelope = orjson.loads(raw or b"")
        except orjson.JSONDecodeError:
            return
        if not isinstance(envelope, dict) or envelope.get("workspace_id") != self.workspace_id:
            return
        kind, channel = envelope.get("type"), str(envelope.get("channel_id") or "")
        source = envelope.get("source") or {}
        ours = source.get("provider") not in NETWORKS
        kept = self.channels.setdefault(channel, {})
        if kind == "message.received":
            kept[envelope["id"]] = _shown(envelope)
            while len(kept) > KEPT:
                kept.pop(next(iter(kept)))
            if ours:
                await self._announced(envelope)
        elif kind == "message.edited":
            found = kept.get(str(envelope.get("message_id")))
            if found is not None:
                found.update(text=envelope.get("text", ""), card=envelope.get("card"), edited=True)
                if ours or found.get("passed_on"):
                    await self._announced(envelope)
        elif kind == "message.deleted":
            gone = kept.pop(str(envelope.get("message_id")), None)
            if gone is not None and gone.get("passed_on"):
                with contextlib.suppress(ChatRefused):
                    await self._publish(
                        "message.deleted",
                        f"evt_sbx_{envelope['id']}",
                        gone["actor"],
                        {"message_id": gone["id"], "channel_id": channel},
                    )

    async def _announced(self, envelope: Mapping[str, Any]) -> None:
        """Announced, or said in the log why not (read on all the same: the rest of the
        topic is not held up by one refusal)."""
        with contextlib.suppress(ChatRefused):
            await self._announce(envelope)

    async def _announce(self, envelope: Mapping[str, Any]) -> None:
        """The chat product's own message of what hookhub made (`message.created`, its id
        the envelope's), or its edit (`message.updated`)."""
        data: dict[str, Any] = {
            "channel_id": envelope["channel_id"],
            "text": envelope.get("text") or "",
        }
        if envelope["type"] == "message.received":
            kind, event_id = "message.created", f"evt_sbx_{envelope['id']}"
            data["message_id"] = envelope["id"]
            if envelope["id"].startswith(NOTIFICATION):
                # A notification: named as what the chat received (its root's card is
                # kept beside it in the map). hookhub's replies have no copy to name.
                data["inbound_id"] = envelope["id"]
            if envelope.get("thread_id"):
                data["thread_id"] = envelope["thread_id"]
        else:
            kind, event_id = "message.updated", f"evt_sbx_{envelope['id']}"
            data["message_id"] = envelope["message_id"]
            passed = self.channels.get(envelope["channel_id"], {}).get(data["message_id"])
            if passed and passed.get("passed_on"):  # a network's message: under its author
                await self._publish(kind, event_id, passed["actor"], data)
                return
        author = (envelope.get("author") or {}).get("name") or "hookhub"
        await self._publish(kind, event_id, {"id": "hookhub", "name": author}, data)

    # -- the chat's users -----------------------------------------------------------------

    async def click(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A chat user clicks a card's button: `message.action` as the chat sends it."""
        channel, message, action, user = (
            _required(body, "channel"),
            _required(body, "message"),
            _required(body, "action"),
            _required(body, "user"),
        )
        user_id = _user(user)
        self._kept(channel, message)
        event_id = f"evt_sbx_click_{utcnow().timestamp():.6f}".replace(".", "_")
        status = await self._publish(
            "message.action",
            event_id,
            self._actor(user_id),
            {"message_id": message, "channel_id": channel, "action_id": action},
        )
        return {"event_id": event_id, "delivered": status}

    async def write(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A chat user writes in a channel (`thread`: a message of it, the reply going into
        its thread): `message.created`, the message kept as the chat's own."""
        channel, text = _required(body, "channel"), _required(body, "text")
        user_id = _user(_required(body, "user"))
        thread = body.get("thread") or None
        kept = self.channels.setdefault(channel, {})
        if thread is not None:
            root = self._kept(channel, str(thread))
            thread = root["thread"] or root["id"]  # threads are flat: a reply's is its root's
        message_id = "m_sbx_" + uuid.uuid4().hex[:12]
        data = {"message_id": message_id, "channel_id": channel, "text": text}
        if thread:
            data["thread_id"] = thread
        status = await self._publish(
            "message.created", f"evt_{message_id}", self._actor(user_id), data
        )
        kept[message_id] = {
            "id": message_id,
            "user": {"id": user_id, "name": CHAT_USERS[user_id]},
            "text": text,
            "thread": thread,
            "card": None,
            "edited": False,
            "from": None,
            "from_hookhub": False,
            "mine": True,
            "passed_on": False,
        }
        return {"id": message_id, "delivered": status}

    async def edit(self, message: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Its author edits a message the chat's user wrote: `message.updated`."""
        channel, text = _required(body, "channel"), _required(body, "text")
        found = self._own(channel, message)
        event_id = f"evt_sbx_edit_{uuid.uuid4().hex[:12]}"
        data = {"message_id": message, "channel_id": channel, "text": text}
        status = await self._publish(
            "message.updated", event_id, self._actor(found["user"]["id"]), data
        )
        found.update(text=text, edited=True)
        return {"id": message, "delivered": status}

    async def delete(self, message: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Its author deletes a message the chat's user wrote: `message.deleted`."""
        channel = _required(body, "channel")
        found = self._own(channel, message)
        event_id = f"evt_sbx_delete_{uuid.uuid4().hex[:12]}"
        data = {"message_id": message, "channel_id": channel}
        status = await self._publish(
            "message.deleted", event_id, self._actor(found["user"]["id"]), data
        )
        self.channels[channel].pop(message, None)
        return {"id": message, "delivered": status}

    async def pass_on(self, message: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A network's message announced as the chat's own (`message.created` with
        `inbound_id`, under its author's name): the channel's other networks get it."""
        channel = _required(body, "channel")
        found = self._kept(channel, message)
        if found["from_hookhub"] or found.get("mine") or not found.get("from"):
            raise ChatRefused(
                422, "not_from_a_network", f"{message} came from no network: nothing to pass on"
            )
        actor = {"id": f"{found['from']}:{found['user']['id']}", "name": found["user"]["name"]}
        data = {"message_id": message, "channel_id": channel, "text": found["text"]}
        data["inbound_id"] = message
        if found["thread"]:
            data["thread_id"] = found["thread"]
        status = await self._publish("message.created", f"evt_sbx_pass_{message}", actor, data)
        found.update(passed_on=True, actor=actor)
        return {"id": message, "delivered": status}

    def _kept(self, channel: str, message: str) -> dict[str, Any]:
        found = self.channels.get(channel, {}).get(message)
        if found is None:
            raise ChatRefused(404, "not_found", f"no message {message} in chat channel {channel}")
        return found

    def _own(self, channel: str, message: str) -> dict[str, Any]:
        """A message the chat's user wrote (422 for one from a network or from hookhub)."""
        found = self._kept(channel, message)
        if not found.get("mine"):
            raise ChatRefused(
                422,
                "not_the_chats",
                f"{message} came from {found.get('from') or 'hookhub'}: only its author there "
                "changes it",
            )
        return found

    @staticmethod
    def _actor(user_id: str) -> dict[str, str]:
        name = CHAT_USERS[user_id]
        return {"id": user_id, "name": name, "email": email_of(name)}

    async def _publish(
        self, kind: str, event_id: str, actor: Mapping[str, Any], data: Mapping[str, Any]
    ) -> int:
        event = {
            "id": event_id,
            "type": kind,
            "workspace_id": self.workspace_id,
            "occurred_at": utcnow().isoformat().replace("+00:00", "Z"),
            "actor": dict(actor),
            "data": dict(data),
        }
        try:
            async with httpx.AsyncClient(verify=tls(), timeout=10.0) as client:
                answer = await client.post(
                    self.origin + "/api/events",
                    json=event,
                    headers={"Authorization": f"Bearer {self.admin_token}"},
                )
        except httpx.HTTPError as exc:
            log.warning("sandbox_chat_publish_failed", type=kind, error=repr(exc))
            raise ChatRefused(502, "not_delivered", f"hookhub did not answer: {exc!r}") from None
        if answer.status_code != 202:
            log.warning("sandbox_chat_refused", type=kind, status=answer.status_code)
            raise ChatRefused(
                502, "not_delivered", f"hookhub answered {answer.status_code}: {answer.text[:300]}"
            )
        return answer.status_code


def _shown(envelope: Mapping[str, Any]) -> dict[str, Any]:
    source = envelope.get("source") or {}
    author = envelope.get("author") or {}
    return {
        "id": envelope["id"],
        "user": {"id": author.get("external_id"), "name": author.get("name")},
        "text": envelope.get("text") or "",
        "thread": envelope.get("thread_id"),
        "card": envelope.get("card"),
        "edited": False,
        "from": source.get("provider"),
        "from_hookhub": source.get("provider") not in NETWORKS,
        "mine": False,
        "passed_on": False,
    }


def _user(user: str) -> str:
    """A chat user by id or name."""
    user_id = next((k for k, v in CHAT_USERS.items() if user in (k, v)), None)
    if user_id is None:
        raise ChatRefused(404, "not_found", f"no chat user {user!r}; the state lists them")
    return user_id


def _required(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ChatRefused(422, "invalid", f"{name} is required (a string)")
    return value
