"""The connections of sync to networks that send their events over one of their own
(`Network.gateway`: Discord's Gateway): one per integration (bot token) with an inbound
mapping, held by exactly one replica. What follows says Discord; Mattermost's WebSocket
(shared/providers/mattermost/gateway.py) keeps in `seq` the time of its last event published
and catches up with `posts?since=` where Discord resumes, and names its events' envelopes
with its gateway's `event_key`.

Which replica holds an integration's connection is decided by a lease in MongoDB
(`sync_gateways`, one document per integration): taken when free or expired, renewed every
third of `HOOKHUB_SYNC_LEASE_SECONDS`, handed back at a stop. The same document keeps the
session (`session_id`, `resume_url`, `seq`), so that whoever holds the lease next resumes
the session where it stopped and Discord replays what was dispatched meanwhile. The
sequence stored is that of the last dispatch whose envelopes are published: a replica that
dies loses nothing, and what it had published but not recorded comes again as a replay,
which the map recognises (`Inbound.events(replayed=True)`).

Dispatches are handed to the inbound pipeline in batches (what arrived while the previous
batch was handed to the producer), not one by one: one Kafka round trip per batch, not per
message. A batch's acknowledgement and map write are waited for behind the next batches, in
order, before the stored sequence passes it.
A session that cannot be resumed (op 9 `d: false`, close 4007/4009, a session too old) is
replaced by a new one, and the channels' gap is read from history (catch-up). A close code
that no reconnect can cure (4004 bad token, 4014 intents) puts the integration in `error`
with what to do, and the connection is not tried again until the integration changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import structlog
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.sync.mappings.service import MappingDirectory
from services.sync.metrics import SyncMetrics
from shared.kernel.envelopes import ProviderEvent
from shared.kernel.errors import HookhubError
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.mongo import Database, Document
from shared.kernel.produce import Stream
from shared.providers.chat import RateLimited, RegistersCommand
from shared.providers.connections import Connections
from shared.providers.sockets import (
    Connection,
    Gateway,
    GatewayFatal,
    GatewayLost,
    Observer,
    SessionState,
)

log = structlog.get_logger(__name__)

COLLECTION = "sync_gateways"
MAX_BACKOFF_SECONDS = 60.0
# After a fatal close with an unchanged token, the next try (no reconnect loop, but a fix
# made in the developer portal is found without a restart).
RETRY_FATAL = timedelta(minutes=10)
PUBLISH_WAIT_SECONDS = 5.0
# Dispatches published whose map copies may still be being written: a burst is published
# at the pace of the Gateway and Kafka while its copies follow in a few group inserts
# (MessageMap.insert); a successor resumes from the last batch written (what follows is
# published again, with the same ids, which the chat drops). Bounds the memory they hold.
MAX_UNWRITTEN = 20_000
STOP_WAIT_SECONDS = 1.0
_jitter = random.Random()  # noqa: S311 (spreading retries in time, not secrets)


class Publish(Protocol):
    """Publishes a batch (Inbound.publish); what it returns completes once the batch's
    copies are in the map."""

    def __call__(
        self,
        events: list[ProviderEvent],
        replayed: bool = False,
        *,
        stream: Stream | None = None,
        handed: Callable[[], None] | None = None,
    ) -> Awaitable[asyncio.Future[None]]: ...


_Outcome = asyncio.Future[None] | Exception
Dispatch = tuple[str, dict[str, Any], int, bool]
CatchUp = Callable[[str], Coroutine[Any, Any, object]]
# A batch handed to the producer: its dispatches, their events, whether replayed, and the
# task publishing it.
_Handed = tuple[list[Dispatch], list[ProviderEvent], bool, asyncio.Task[_Outcome]]


class LeaseLost(Exception):
    pass


class GatewayStore:
    """`sync_gateways`: the lease and the resumable session of each integration."""

    def __init__(self, db: Database, lease: timedelta) -> None:
        self._collection = db[COLLECTION]
        self.lease = lease

    async def take(self, integration_id: str, owner: str) -> Document | None:
        """The document, now held by `owner`, or None while another holds it."""
        now = utcnow()
        try:
            return await self._collection.find_one_and_update(
                {
                    "_id": integration_id,
                    "$or": [{"owner": owner}, {"owner": None}, {"expires_at": {"$lt": now}}],
                },
                {"$set": {"owner": owner, "expires_at": now + self.lease, "taken_at": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # it exists, held by another
            return None

    async def renew(self, integration_id: str, owner: str, state: SessionState) -> None:
        now = utcnow()
        done = await self._collection.update_one(
            {"_id": integration_id, "owner": owner},
            {"$set": {"expires_at": now + self.lease, **_session(state)}},
        )
        if done.matched_count == 0:
            raise LeaseLost(integration_id)

    async def release(self, integration_id: str, owner: str, state: SessionState) -> None:
        await self._collection.update_one(
            {"_id": integration_id, "owner": owner},
            {"$set": {"owner": None, "expires_at": utcnow(), **_session(state)}},
        )

    async def refused(self, integration_id: str, owner: str, code: int, token: str) -> None:
        """A fatal close: not tried again by any replica with the same token until
        `RETRY_FATAL` has passed (the fix may be made in the developer portal)."""
        await self._collection.update_one(
            {"_id": integration_id, "owner": owner},
            {
                "$set": {
                    "owner": None,
                    "fatal": {"code": code, "token": _fingerprint(token), "at": utcnow()},
                }
            },
        )

    async def free(self, integration_ids: set[str]) -> dict[str, Document | None]:
        """Those whose lease nobody holds (never taken, handed back or expired), each with
        its fatal refusal if it has one."""
        if not integration_ids:
            return {}
        docs = await self._collection.find(
            {"_id": {"$in": list(integration_ids)}}, {"owner": 1, "expires_at": 1, "fatal": 1}
        ).to_list()
        now, held = utcnow(), set()
        refusals: dict[str, Document | None] = {}
        for doc in docs:
            if doc.get("owner") and doc["expires_at"] >= now:
                held.add(doc["_id"])
            refusals[doc["_id"]] = doc.get("fatal")
        return {i: refusals.get(i) for i in integration_ids - held}

    async def clear_fatal(self, integration_id: str) -> None:
        await self._collection.update_one({"_id": integration_id}, {"$set": {"fatal": None}})


def _session(state: SessionState) -> dict[str, Any]:
    return {"session_id": state.session_id, "resume_url": state.resume_url, "seq": state.seq}


@dataclass
class Held:
    """One integration's connection on this replica."""

    integration_id: str
    task: asyncio.Task[None] | None = None
    state: SessionState = field(default_factory=SessionState)
    # The sequence of the last dispatch whose envelopes are published: what is stored.
    published_seq: int | None = None
    connection: Connection | None = None
    connected: bool = False
    stopping: bool = False
    commanded: bool = False  # hookhub's command is the bot's (`_register_command`)


class Gateways:
    """The connections of one network's integrations (`network`, through its `gateway`)."""

    def __init__(
        self,
        *,
        network: str,
        gateway: Gateway,
        store: GatewayStore,
        connections: Connections,
        mappings: MappingDirectory,
        publish: Publish,
        catch_up: CatchUp,
        metrics: SyncMetrics,
        owner: str,
        poll_seconds: float,
    ) -> None:
        self._store = store
        self._connections = connections
        self._mappings = mappings
        self._network = network
        self._gateway = gateway
        self._inbound_publish = publish
        self._catch_up = catch_up
        self._metrics = metrics
        self._owner = owner
        self._poll = poll_seconds
        self._held: dict[str, Held] = {}
        # Catch-ups of new sessions (each retries until done) and their commands' registration:
        # ended at a stop.
        self._catch_ups: set[asyncio.Task[object]] = set()

    def wanted(self) -> set[str]:
        return {
            m.integration_id
            for m in self._mappings.all()
            if m.provider == self._network and m.inbound
        }

    async def run(self) -> None:
        while True:
            try:
                await self._round()
            except Exception as exc:  # the next round tries again
                log.warning("discord_gateways_round_failed", error=repr(exc))
            await asyncio.sleep(self._poll)

    async def _round(self) -> None:
        wanted = self.wanted()
        for integration_id in list(self._held):
            held = self._held[integration_id]
            if integration_id not in wanted or (held.task is not None and held.task.done()):
                await self._drop(integration_id)
        # One read for every connection held elsewhere: only a free or expired lease is
        # worth a write to take it.
        free = await self._store.free(wanted - set(self._held))
        for integration_id, refusal in free.items():
            if not await self._usable(integration_id, refusal):
                continue
            doc = await self._store.take(integration_id, self._owner)
            if doc is None:
                continue
            held = Held(
                integration_id,
                state=SessionState(doc.get("session_id"), doc.get("resume_url"), doc.get("seq")),
            )
            held.published_seq = held.state.seq
            held.task = asyncio.create_task(
                self._hold(held), name=f"discord-gateway-{integration_id}"
            )
            self._held[integration_id] = held
            log.info("discord_gateway_taken", integration_id=integration_id)
        self._count_connected()

    def _count_connected(self) -> None:
        """The gauge of sessions held and ready: set as one becomes ready or ends, and at
        each round (a round held up by a slow MongoDB had left it behind for seconds)."""
        self._metrics.gateway_connections.set(sum(h.connected for h in self._held.values()))

    async def _usable(self, integration_id: str, refusal: Document | None) -> bool:
        try:
            integration = await self._connections.integration(integration_id)
            token = await self._connections.token(integration_id)
        except HookhubError:
            return False
        if not integration.enabled:
            return False
        if refusal is not None:
            if refusal["token"] == _fingerprint(token) and utcnow() - refusal["at"] < RETRY_FATAL:
                return False
            # A new token, or time for the fix made in the developer portal to be tried.
            await self._store.clear_fatal(integration_id)
        return True

    async def stop(self) -> None:
        """Every connection closed resumably and its lease handed back with the session,
        so that another replica resumes at once."""
        await asyncio.gather(*(self._drop(i) for i in list(self._held)))
        for task in list(self._catch_ups):  # a gap left unread: the next catch-up's
            task.cancel()
        if self._catch_ups:
            await asyncio.wait(set(self._catch_ups))

    async def _drop(self, integration_id: str) -> None:
        held = self._held.pop(integration_id)
        held.stopping = True
        if held.connection is not None:
            await held.connection.close()
        if held.task is not None:
            # It ends by itself once the connection is closed and what it received is
            # published; cancelled only if that takes too long.
            done, _ = await asyncio.wait({held.task}, timeout=STOP_WAIT_SECONDS)
            if not done:
                held.task.cancel()
                # (asyncio.wait, not `await task`: a cancel of this task must not be taken
                # for the held task's and swallowed.)
                await asyncio.wait({held.task})
            if not held.task.cancelled() and held.task.exception() is not None:
                log.error(
                    "discord_gateway_failed",
                    integration_id=integration_id,
                    error=repr(held.task.exception()),
                )
        with contextlib.suppress(Exception):
            await self._store.release(integration_id, self._owner, _stored(held))
        log.info("discord_gateway_released", integration_id=integration_id)

    # -- one integration ------------------------------------------------------------------

    async def _hold(self, held: Held) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keep_lease(held))
                group.create_task(self._connect(held))
        except* LeaseLost:
            log.warning("discord_gateway_lease_lost", integration_id=held.integration_id)
        except* GatewayFatal as fatal:
            exc = fatal.exceptions[0]
            assert isinstance(exc, GatewayFatal)
            await self._refused(held, exc)
        finally:
            held.connected = False
            self._count_connected()

    async def _keep_lease(self, held: Held) -> None:
        every = self._store.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self._store.renew(held.integration_id, self._owner, _stored(held))
            except LeaseLost:
                if held.connection is not None:
                    await held.connection.close()
                raise
            except Exception as exc:  # MongoDB away: the lease may still be ours
                log.warning("discord_gateway_renew_failed", error=repr(exc))

    async def _connect(self, held: Held) -> None:
        failures = 0
        while True:
            queue: asyncio.Queue[Dispatch] = asyncio.Queue()
            publishing: asyncio.Task[None] | None = None
            try:
                integration = await self._connections.integration(held.integration_id)
                publishing = asyncio.create_task(
                    self._publish(held, integration.workspace_id, queue)
                )
                await self._session(held, queue)
            except GatewayLost as lost:
                self._metrics.gateway_reconnects.labels(_reason(lost.reason)).inc()
                log.info(
                    "discord_gateway_lost",
                    integration_id=held.integration_id,
                    reason=lost.reason,
                    resumable=lost.resumable,
                )
                failures = failures + 1 if "connect_failed" in lost.reason else 0
            except RateLimited as exc:  # no new session yet (Discord: /gateway/bot's 429)
                await asyncio.sleep(exc.retry_after)
            except HookhubError as exc:  # no token, the REST side refused or unreachable
                log.warning(
                    "discord_gateway_not_started",
                    integration_id=held.integration_id,
                    error=exc.message,
                )
                failures += 1
            finally:
                held.connected = False
                held.connection = None
                self._count_connected()
                # What was received is published before going on (bounded: at a stop, what
                # is left comes again to whoever resumes the session).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.join(), PUBLISH_WAIT_SECONDS)
                if publishing is not None:
                    publishing.cancel()
            if held.stopping:
                return
            if failures:
                await asyncio.sleep(
                    min(MAX_BACKOFF_SECONDS, 2 ** (failures - 1)) * _jitter.uniform(0.5, 1)
                )

    async def _session(self, held: Held, queue: asyncio.Queue[Dispatch]) -> None:
        token = await self._connections.token(held.integration_id)
        state = held.state
        if state.resumable:
            url = state.resume_url
        else:
            url = await self._gateway.url(token)
        assert url
        resuming = state.resumable
        replaying = resuming

        async def ready(resumed: bool) -> None:
            nonlocal replaying
            replaying = False
            held.connected = True
            self._count_connected()
            kind = "resumed" if resumed else "identified"
            self._metrics.gateway_sessions.labels(kind).inc()
            log.info("discord_gateway_ready", integration_id=held.integration_id, how=kind)
            try:
                await self._store.renew(held.integration_id, self._owner, _stored(held))
            except LeaseLost:
                raise
            except Exception as exc:  # written at the next renewal
                log.warning("discord_gateway_session_not_saved", error=repr(exc))
            if not resumed:
                # A new session: what was sent while there was none is read from history.
                held.published_seq = None
                self._beside(self._catch_up(held.integration_id))
                if not held.commanded:
                    self._beside(self._register_command(held))

        def dispatch(kind: str, data: dict[str, Any], seq: int) -> None:
            self._metrics.gateway_events.labels(kind).inc()
            queue.put_nowait((kind, data, seq, replaying))

        connection = self._gateway.connect(
            token,
            state,
            dispatch,
            Observer(ready=ready, heartbeat_latency=self._metrics.gateway_heartbeat.observe),
        )
        held.connection = connection
        await connection.run(url)

    def _beside(self, work: Coroutine[Any, Any, object]) -> None:
        """Work of a new session run beside it: held until done, and ended at a stop."""
        task = asyncio.create_task(work)
        self._catch_ups.add(task)
        task.add_done_callback(self._catch_ups.discard)
        task.add_done_callback(_log_failure)

    async def _register_command(self, held: Held) -> None:
        """hookhub's command made for the bot where its network needs it (Discord's
        application command): once while a process holds the connection, tried again at its
        next new session if it failed."""
        network = self._connections.providers.get(self._network)
        if not isinstance(network, RegistersCommand):
            return
        try:
            made = await self._connections.call(held.integration_id, network.register_command)
        except Exception as exc:  # Discord away, a token refused: said, not fatal
            log.warning(
                "sync_command_not_registered", integration_id=held.integration_id, error=repr(exc)
            )
            return
        held.commanded = True
        if made:
            log.info("sync_command_registered", integration_id=held.integration_id)

    async def _publish(self, held: Held, workspace_id: str, queue: asyncio.Queue[Dispatch]) -> None:
        """Dispatches to the chat, in batches (what arrived while the last was handed on),
        in order. A batch is handed to the producer and the next one formed at once: its
        acknowledgement by Kafka and its map write (up to MAX_UNWRITTEN dispatches behind)
        settle in `_settle`, which advances the stored sequence past them in order.

        Order per channel when a publish fails: the batches go out as one ordered stream
        (shared.kernel.produce.Stream). Once one of them fails, nothing later of the stream is
        sent; here no batch is handed on until `_settle` has published every earlier one
        again (in order, each acknowledged before the next), and the next goes out on a
        new stream."""
        writing: asyncio.Queue[_Handed] = asyncio.Queue()
        unwritten = _Unwritten(MAX_UNWRITTEN)
        stream = Stream()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._settle(held, writing, queue, unwritten))
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if stream.failed is not None:
                    await unwritten.drained()  # every earlier batch published again
                    stream = Stream()
                events = self._events(held, workspace_id, batch)
                replayed = any(item[3] for item in batch)
                handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                publishing = group.create_task(
                    self._hand(events, replayed, stream, functools.partial(_resolve, handed))
                )
                either: set[asyncio.Future[Any]] = {publishing, handed}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                early = publishing.result() if publishing.done() else None
                if isinstance(early, Exception):
                    # Failed before the producer had it: nothing later may go out first.
                    stream.fail(early)
                await writing.put((batch, events, replayed, publishing))
                await unwritten.add(len(batch))

    async def _hand(
        self,
        events: list[ProviderEvent],
        replayed: bool,
        stream: Stream,
        handed: Callable[[], None],
    ) -> _Outcome:
        """One batch's publish: its map write's future once Kafka acknowledged it, or why
        it failed (returned, not raised: the task group must not end on it)."""
        try:
            return await self._inbound_publish(events, replayed, stream=stream, handed=handed)
        except Exception as exc:
            return exc

    async def _settle(
        self,
        held: Held,
        writing: asyncio.Queue[_Handed],
        queue: asyncio.Queue[Dispatch],
        unwritten: _Unwritten,
    ) -> None:
        while True:
            batch, events, replayed, publishing = await writing.get()
            outcome = await publishing
            if isinstance(outcome, BaseException):
                # Not acknowledged (or not handed on): the batch again, before anything
                # later is (the same envelope ids; the map's copies of what went out are
                # not taken for a replay's).
                log.warning(
                    "discord_dispatches_not_published", error=repr(outcome), size=len(events)
                )

                async def publish(
                    events: list[ProviderEvent] = events, replayed: bool = replayed
                ) -> asyncio.Future[None]:
                    return await self._inbound_publish(events, replayed)

                outcome = await self._until_done(publish, size=len(events))
            await asyncio.wait({outcome})
            if outcome.cancelled() or outcome.exception() is not None:
                # Published, not written: the whole batch again (the same envelope ids).

                async def again(events: list[ProviderEvent] = events) -> asyncio.Future[None]:
                    written_again = await self._inbound_publish(events, True)
                    await written_again
                    return written_again

                await self._until_done(again, size=len(events))
            held.published_seq = batch[-1][2]
            unwritten.done(len(batch))
            for _ in batch:
                queue.task_done()

    def _events(self, held: Held, workspace_id: str, batch: list[Dispatch]) -> list[ProviderEvent]:
        key = getattr(self._gateway, "event_key", None)  # (sockets.Gateway: optional)
        return [
            _event(self._network, held.integration_id, workspace_id, kind, data, key)
            for kind, data, _, _ in batch
            if kind in self._gateway.messages
        ]

    async def _until_done(
        self, attempt: Callable[[], Awaitable[asyncio.Future[None]]], size: int
    ) -> asyncio.Future[None]:
        """Kafka or MongoDB away: tried again (the Gateway keeps sending; what it sends
        waits in the queue), never dropped."""
        pause = 0.5
        while True:
            try:
                return await attempt()
            except Exception as exc:
                log.warning("discord_dispatches_not_published", error=repr(exc), size=size)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)

    async def _refused(self, held: Held, exc: GatewayFatal) -> None:
        log.error("discord_gateway_refused", integration_id=held.integration_id, code=exc.code)
        self._metrics.gateway_reconnects.labels(f"closed_{exc.code}").inc()
        await self._connections.refused(
            held.integration_id, f"{self._network}_gateway_{exc.code}", exc.advice, whole=True
        )
        token = await self._connections.token(held.integration_id)
        await self._store.refused(held.integration_id, self._owner, exc.code, token)


def _stored(held: Held) -> SessionState:
    """The session as a successor may resume it: up to the last published dispatch."""
    state = held.state
    return SessionState(state.session_id, state.resume_url, held.published_seq)


def _event(
    network: str,
    integration_id: str,
    workspace_id: str,
    kind: str,
    data: dict[str, Any],
    key: Callable[[str, dict[str, Any]], tuple[str, str]] | None = None,
) -> ProviderEvent:
    """A dispatch as the inbound pipeline takes provider events. The id derives from the
    message and its version (Discord's, or what the network's `event_key` says), so a
    replayed dispatch is the same envelope."""
    if key is not None:
        message, version = key(kind, data)
    else:
        message = str(data.get("id") or ",".join(map(str, data.get("ids") or [])))
        version = str(data.get("edited_timestamp") or "")
    # Built, not validated: every field is made here (a model's validation per dispatch
    # was a tenth of the path in a burst). Every field given: for one left out,
    # model_construct calls its default factory after inspecting its signature, which
    # was half of this function's time.
    return ProviderEvent.model_construct(
        id=derived_id(network, integration_id, kind, message, version),
        provider=network,
        integration_id=integration_id,
        workspace_id=workspace_id,
        event_type=kind,
        delivery_id=derived_id(kind, message, version, prefix="dsp"),
        received_at=utcnow(),
        payload=data,
        payload_ref=None,
    )


def _fingerprint(token: str) -> str:
    """Which token was refused, without keeping it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _reason(reason: str) -> str:
    """A metric label: the reason without the exception's text."""
    return reason.split(":", 1)[0]


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("discord_catch_up_failed", error=repr(task.exception()))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Unwritten:
    """How many dispatches are published but not yet settled; `add` waits while over the
    limit (the batch just added may take it over: a batch is never split), `drained` until
    there are none."""

    def __init__(self, limit: int) -> None:
        self.count = 0
        self._limit = limit
        self._room = asyncio.Event()
        self._room.set()
        self._none = asyncio.Event()
        self._none.set()

    async def drained(self) -> None:
        await self._none.wait()

    async def add(self, dispatches: int) -> None:
        self.count += dispatches
        if self.count:
            self._none.clear()
        while self.count > self._limit:
            self._room.clear()
            await self._room.wait()

    def done(self, dispatches: int) -> None:
        self.count -= dispatches
        if self.count == 0:
            self._none.set()
        if self.count <= self._limit:
            self._room.set()
