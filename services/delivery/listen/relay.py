"""Where a listening endpoint's deliveries go: to the socket of the laptop listening, held
by this replica or another one (docs/listen.md, "Replicas").

A socket lands on whichever delivery replica the load balancer picked, while an endpoint's
deliveries are sent by whichever replica fanned them out or claimed their retry. So each
replica keeps, in memory, the sessions it holds (`Session`, by endpoint) and a refreshing
cache of every endpoint's latest session (`listen_sessions`: its session id, the worker
holding it and that replica's internal address). A delivery goes:

- to the socket here, when this replica holds the endpoint's current session;
- else through one HTTP hop to the replica that does (`POST /internal/listen/{id}` at its
  `HOOKHUB_INTERNAL_URL`, with a token every replica derives from the admin token), which
  sends it down its socket and answers with the listener's answer;
- else nowhere: `no listener connected`, an attempt that is retried on the endpoint's
  schedule and does not count against it (`Answer.unreached`).

A session's holder is known to be alive by the delivery workers' heartbeats (the leases of
`shared.kernel.ownership`, the ones deliveries are held by): the session of a replica that
died is not hopped to once its heartbeat is stale, and the laptop, whose socket went with
it, reconnects to another. MongoDB is read when a session starts and ends, by the cache's
refresh and by the heartbeat check, never per delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.delivery.destinations.base import Answer, Message
from services.delivery.listen import protocol
from services.delivery.listen.repository import SessionRepository
from services.delivery.listen.session import Close, Send, Session
from services.delivery.outgoing_webhooks.service import EndpointSnapshot
from shared.kernel.cache import RefreshingCache
from shared.kernel.crypto import constant_time_equal
from shared.kernel.http.auth import Access, Caller
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document
from shared.kernel.ownership import Ownership

log = structlog.get_logger(__name__)

HOP_PATH = "/internal/listen/{endpoint_id}"
HOP_HEADER = "x-hookhub-hop"
WATCH_SECONDS = 1.0  # how often the sessions held here are looked over
RECHECK_CALLER_SECONDS = 5.0  # a revoked key's socket is closed within this (SPEC §13)
HOP_CONNECT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class SessionView:
    """An endpoint's latest session, as every replica's cache holds it."""

    endpoint_id: str
    session_id: str
    owner: str
    address: str
    forward_to: str
    connected: bool
    connected_at: datetime


def view(doc: Document) -> SessionView:
    return SessionView(
        endpoint_id=str(doc["_id"]),
        session_id=doc["session_id"],
        owner=doc["owner"],
        address=doc["address"],
        forward_to=doc.get("forward_to") or "",
        connected=bool(doc.get("connected")),
        connected_at=doc["connected_at"],
    )


def hop_token(admin_token: str) -> str:
    """What a replica shows another when it hands it a delivery: derived from the admin
    token every replica is given, so that there is no second secret to deploy."""
    return hmac.new(admin_token.encode(), b"hookhub listen hop", hashlib.sha256).hexdigest()


class Listeners:
    """The listening endpoints' relay (destinations/base.Relay): the sessions this replica
    holds and the way to every other one's."""

    def __init__(
        self,
        repository: SessionRepository,
        *,
        ownership: Ownership,
        address: str,
        admin_token: str,
        endpoints: RefreshingCache[str, EndpointSnapshot],
        access: Callable[[], Access],
        wake: Callable[[str], Awaitable[int]],
        registry: CollectorRegistry,
        refresh_seconds: float = 1.0,
    ) -> None:
        self._repository = repository
        self._ownership = ownership
        self.address_here = address.rstrip("/")
        self._token = hop_token(admin_token)
        self._endpoints = endpoints
        self._access = access
        self._wake = wake
        self._refresh_seconds = refresh_seconds
        self.cache: RefreshingCache[str, SessionView] = RefreshingCache.by_id(
            repository, view, refresh_seconds=refresh_seconds, name="listen_sessions"
        )
        self._local: dict[str, Session] = {}
        self._dead: set[str] = set()  # delivery workers whose heartbeat is stale
        self._http: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.hops = Counter(
            "hookhub_listen_hops_total",
            "Deliveries handed to the replica holding their listener's socket, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.sessions = Gauge(
            "hookhub_listen_sessions",
            "Listeners (`hookhub listen`) connected to this replica",
            registry=registry,
        )
        self.sessions.set_function(lambda: len(self._local))

    # -- the relay ------------------------------------------------------------------------

    def address(self, endpoint_id: str) -> str:
        seen = self.cache.get(endpoint_id)
        if seen is None or not seen.connected or not seen.forward_to:
            return "listen:"
        return f"listen:{seen.forward_to}"

    async def deliver(self, message: Message) -> Answer:
        endpoint_id = message.endpoint_id
        seen = self.cache.get(endpoint_id) or await self.cache.lookup(endpoint_id)
        if seen is None or not seen.connected or seen.owner in self._dead:
            return Answer.unreached(protocol.NO_LISTENER)
        here = self._local.get(endpoint_id)
        if here is not None and here.session_id == seen.session_id:
            return await here.deliver(message)
        if seen.owner == self._ownership.id:  # ended here a moment ago
            return Answer.unreached(protocol.NO_LISTENER)
        return await self._hop(seen, message)

    async def _hop(self, seen: SessionView, message: Message) -> Answer:
        url = seen.address.rstrip("/") + HOP_PATH.format(endpoint_id=seen.endpoint_id)
        body = {"session_id": seen.session_id, "message": _message_doc(message)}
        try:
            async with self._client().post(
                url,
                json=body,
                headers={HOP_HEADER: self._token},
                timeout=aiohttp.ClientTimeout(
                    total=message.timeout_seconds + 1, sock_connect=HOP_CONNECT_SECONDS
                ),
            ) as response:
                found = await response.json(content_type=None) if response.status == 200 else None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            self.hops.labels("unreachable").inc()
            return Answer.unreached(
                f"{protocol.NO_LISTENER}: the delivery replica holding its socket "
                f"({seen.address}) did not answer: {type(exc).__name__}"
            )
        if not isinstance(found, dict):
            self.hops.labels("refused").inc()
            return Answer.unreached(f"{protocol.NO_LISTENER}: the hop was refused")
        self.hops.labels("answered").inc()
        return Answer(
            found.get("status_code"),
            str(found.get("body") or ""),
            found.get("error"),
            dict(found.get("headers") or {}),
            bool(found.get("reached", True)),
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            # Kept under the other replica's keep-alive, or a hop could go out on a
            # connection it is closing (services/edge.py says the same of its pool).
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0)
            )
        return self._http

    # -- a hop from another replica -------------------------------------------------------

    def hop_allowed(self, token: str | None) -> bool:
        return token is not None and constant_time_equal(token, self._token)

    async def hopped(self, endpoint_id: str, body: Any) -> Answer:
        """A delivery another replica handed over: down the socket held here, if it still
        is the session that replica saw."""
        here = self._local.get(endpoint_id)
        if not isinstance(body, dict) or here is None or here.session_id != body.get("session_id"):
            return Answer.unreached(protocol.NO_LISTENER)
        message = _message_of(endpoint_id, body.get("message"))
        try:
            async with asyncio.timeout(message.timeout_seconds):
                return await here.deliver(message)
        except TimeoutError:
            return Answer.refused(f"timeout after {message.timeout_seconds:g}s")

    # -- sessions held here ---------------------------------------------------------------

    async def open(
        self,
        endpoint: Document,
        *,
        forward_to: str,
        caller: Caller,
        authorization: str,
        send: Send,
        close: Close,
    ) -> Session:
        """A listener connected here: it is now the endpoint's session (one at a time: the
        one it replaces is closed, here or by its replica's watch), and the endpoint's
        deliveries waiting for a retry are made due."""
        endpoint_id = endpoint["_id"]
        session = Session(
            endpoint_id=endpoint_id,
            workspace_id=endpoint["workspace_id"],
            session_id="lsn_" + uuid.uuid4().hex,
            forward_to=forward_to,
            authorization=authorization,
            connected_at=utcnow(),
            send=send,
            close=close,
        )
        doc = await self._repository.connected(
            endpoint_id,
            workspace_id=session.workspace_id,
            session_id=session.session_id,
            owner=self._ownership.id,
            address=self.address_here,
            forward_to=forward_to,
            caller={"kind": caller.kind, "id": caller.id},
        )
        replaced = self._local.get(endpoint_id)
        self._local[endpoint_id] = session
        self.cache.apply(doc)
        if replaced is not None:
            self._in_background(self._close(replaced, protocol.REPLACED, "a newer session"))
        self._in_background(self._wake_waiting(endpoint_id))
        log.info("listen_connected", endpoint_id=endpoint_id, session_id=session.session_id)
        return session

    async def _wake_waiting(self, endpoint_id: str) -> None:
        """The endpoint's retries made due, now and once more after every replica's cache
        has the session (a delivery another replica tried meanwhile failed unreached)."""
        for pause in (0.0, 2 * self._refresh_seconds):
            await asyncio.sleep(pause)
            try:
                woken = await self._wake(endpoint_id)
            except Exception as exc:  # they arrive on their schedule all the same
                log.warning("listen_wake_failed", endpoint_id=endpoint_id, error=repr(exc))
                continue
            if woken:
                log.info("listen_retries_woken", endpoint_id=endpoint_id, count=woken)

    async def closed(self, session: Session, why: str) -> None:
        """The socket of `session` is gone: what waits on it is retried, and the endpoint
        has no session any more (unless a newer one has taken its place)."""
        session.end(why)
        if self._local.get(session.endpoint_id) is session:
            del self._local[session.endpoint_id]
        try:
            doc = await self._repository.ended(
                session.endpoint_id, session.session_id, utcnow(), why
            )
        except Exception as exc:  # the others learn it from the heartbeat, or the next one
            log.warning("listen_end_unwritten", endpoint_id=session.endpoint_id, error=repr(exc))
            return
        if doc is not None:
            self.cache.apply(doc)
        log.info("listen_disconnected", endpoint_id=session.endpoint_id, why=why)

    async def _close(self, session: Session, code: int, reason: str) -> None:
        session.end(reason)
        with contextlib.suppress(Exception):  # closed already
            await session.close(code, reason)

    # -- the watch ------------------------------------------------------------------------

    async def watch(self) -> None:
        """Every WATCH_SECONDS: the sessions held here that were replaced, whose endpoint is
        gone or no longer listens, or whose caller may no longer listen, closed; and which
        delivery workers are dead (their sessions are not hopped to)."""
        heartbeats = callers = 0.0
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            now = time.monotonic()
            try:
                if now >= heartbeats:
                    heartbeats = now + self._ownership.lease.total_seconds() / 3
                    self._dead = set(await self._ownership.dead(utcnow()))
                recheck = now >= callers
                if recheck:
                    callers = now + RECHECK_CALLER_SECONDS
                for session in list(self._local.values()):
                    await self._look_over(session, recheck)
            except Exception as exc:  # MongoDB away: looked over again at the next turn
                log.warning("listen_watch_failed", error=repr(exc))

    async def _look_over(self, session: Session, recheck: bool) -> None:
        seen = self.cache.get(session.endpoint_id)
        newer = seen is not None and seen.session_id != session.session_id
        if newer and seen is not None and seen.connected_at >= session.connected_at:
            await self._close(session, protocol.REPLACED, "replaced by a newer session")
            return
        endpoint = self._endpoints.get(session.endpoint_id)
        if self._endpoints.gone(session.endpoint_id) or (
            endpoint is not None and not _listens(endpoint)
        ):
            await self._close(session, protocol.GONE, "the endpoint was deleted or changed")
            return
        if recheck:
            try:
                caller = await self._access().identify_header(session.authorization)
            except Exception:  # unknown, revoked or expired (or the admin token changed)
                caller = None
            if caller is None or not caller.can_write:
                await self._close(session, protocol.REFUSED, "the key may no longer listen")

    # -- the stop -------------------------------------------------------------------------

    async def stop(self, _: float | None = None) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._http is not None:
            await self._http.close()

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _listens(endpoint: EndpointSnapshot) -> bool:
    return endpoint.destination is not None and endpoint.destination.type == "listen"


def _message_doc(message: Message) -> Document:
    return {
        "body": message.body.decode("utf-8", "replace"),
        "headers": dict(message.headers),
        "event_type": message.event_type,
        "event_id": message.event_id,
        "msg_id": message.msg_id,
        "workspace_id": message.workspace_id,
        "key": message.key,
        "fifo": message.fifo,
        "timeout_seconds": message.timeout_seconds,
    }


def _message_of(endpoint_id: str, doc: Any) -> Message:
    doc = doc if isinstance(doc, dict) else {}
    return Message(
        body=str(doc.get("body") or "").encode(),
        headers={str(k): str(v) for k, v in (doc.get("headers") or {}).items()},
        event_type=str(doc.get("event_type") or ""),
        event_id=str(doc.get("event_id") or ""),
        msg_id=str(doc.get("msg_id") or ""),
        workspace_id=str(doc.get("workspace_id") or ""),
        key=doc.get("key"),
        fifo=bool(doc.get("fifo")),
        endpoint_id=endpoint_id,
        timeout_seconds=min(float(doc.get("timeout_seconds") or 30.0), 120.0),
    )
