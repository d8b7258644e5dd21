"""Discord's Gateway: one WebSocket connection of a bot's session, as Discord documents it
(docs.discord.com/developers/events/gateway).

`GatewayConnection.run` opens one connection and keeps it until it ends: Hello (op 10) →
heartbeats every `heartbeat_interval` (the first after a random part of it, so that many
clients do not beat together) → Identify (op 2) for a new session or Resume (op 6) for a
known one → dispatches (op 0) handed to `on_dispatch` in order, each with its sequence
number. It ends by raising:

- `GatewayLost(reason, resumable)`: reconnect. `resumable` says whether the session can be
  resumed (`resume_gateway_url`, session id and last sequence) or a new one must be
  identified (op 9 with `d: false`, close codes 4007 and 4009).
- `GatewayFatal(code, advice)`: a close code after which reconnecting cannot help (4004 bad
  token, 4014 intents not enabled in the developer portal, ...): no reconnect loop.

`DiscordGateway` is what sync's holder of connections (services/sync/gateway.py) asks of
it (shared.providers.sockets). The caller decides where to connect, keeps `SessionState` where a
successor can resume, and paces identifies by the session-start limit. WebSockets come
from the `websockets` library: it only speaks the WebSocket protocol, so the REST side
keeps the one HTTP stack (httpx).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shared.providers.chat import RateLimited
from shared.providers.discord.api import DiscordApi
from shared.providers.sockets import (
    Dispatch,
    GatewayFatal,
    GatewayLost,
    Observer,
    SessionState,
)

log = structlog.get_logger(__name__)

GATEWAY_VERSION = 10
# GUILDS | GUILD_MESSAGES | MESSAGE_CONTENT (privileged: enabled in the developer portal).
INTENTS = (1 << 0) | (1 << 9) | (1 << 15)

# Close codes that end the session for good (Discord: "reconnect: false").
FATAL = {
    4004: "Discord refused the bot token (4004 Authentication failed): give the bot's "
    "current token (Developer Portal → your application → Bot → Reset Token)",
    4010: "Discord refused the shard (4010 Invalid shard)",
    4011: "Discord requires sharding for this bot (4011 Sharding required): it is in too "
    "many guilds for one connection",
    4012: "Discord refused the Gateway version (4012 Invalid API version)",
    4013: "Discord refused the intents (4013 Invalid intents)",
    4014: "Discord refused the intents (4014 Disallowed intents): enable the Message "
    "Content Intent in the Developer Portal (your application → Bot → Privileged Gateway "
    "Intents), then save",
}
# Close codes after which the session cannot be resumed: identify a new one.
NEW_SESSION = {4007, 4009}
# A close code other than 1000/1001, so that Discord keeps the session for a Resume.
RESUMABLE_CLOSE = 4900
_jitter = random.Random()  # noqa: S311 (spreading clients in time, not secrets)
_HEARTBEATS_STOPPED = "discord-heartbeats-stopped"


class GatewayConnection:
    def __init__(
        self,
        token: str,
        state: SessionState,
        on_dispatch: Dispatch,
        *,
        intents: int = INTENTS,
        observer: Observer | None = None,
        open_timeout: float = 10.0,
        max_size: int = 8 * 1024 * 1024,
    ) -> None:
        self._token = token
        self.state = state
        self._on_dispatch = on_dispatch
        self._intents = intents
        self._observer = observer or Observer()
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._acked = True
        self._beat_sent = 0.0
        self._ws: ClientConnection | None = None

    async def run(self, url: str) -> None:
        """Connect to `url` (the Gateway's, or the session's `resume_gateway_url`) and keep
        the connection until it ends; never returns normally."""
        resuming = self.state.resumable
        try:
            async with connect(
                _with_query(url),
                open_timeout=self._open_timeout,
                ping_interval=None,  # Discord's own heartbeats keep the connection alive
                max_size=self._max_size,
                # Frames read ahead while the last batch is published (websockets stops
                # reading the socket past it; its default, 16, kept batches to a few
                # dispatches in a burst and their fixed cost per batch bounded the rate).
                max_queue=1024,
                compression=None,
                proxy=None,
            ) as ws:
                self._ws = ws
                await self._session(ws, resuming)
        except ConnectionClosed as exc:
            raise self._closed(exc.rcvd.code if exc.rcvd else None) from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise GatewayLost(f"connect_failed: {exc!r}", resumable=resuming) from exc
        finally:
            self._ws = None

    async def close(self) -> None:
        """End the connection keeping the session resumable (a stop, a lease handed on)."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(RESUMABLE_CLOSE, "hookhub: handing the session on")

    async def _session(self, ws: ClientConnection, resuming: bool) -> None:
        hello = await self._receive(ws, within=self._open_timeout)
        if hello.get("op") != 10:
            raise GatewayLost(f"expected Hello, got op {hello.get('op')}", resumable=resuming)
        interval = float(hello["d"]["heartbeat_interval"]) / 1000
        beating = asyncio.create_task(self._heartbeats(ws, interval), name="discord-heartbeats")
        # Frames are read here directly (no task and wait per frame: in a burst that was a
        # tenth of the dispatch path). Heartbeats that stop end a read by a cancel; while a
        # frame is handled, they are seen once it is (what it raises goes first).
        reader = asyncio.current_task()
        assert reader is not None
        reading = False

        def stopped(task: asyncio.Task[None]) -> None:
            if reading and not task.cancelled() and task.exception() is not None:
                reader.cancel(_HEARTBEATS_STOPPED)

        beating.add_done_callback(stopped)
        try:
            if resuming:
                await self._send(
                    ws,
                    {
                        "op": 6,
                        "d": {
                            "token": self._token,
                            "session_id": self.state.session_id,
                            "seq": self.state.seq,
                        },
                    },
                )
            else:
                await self._send(ws, self._identify())
            while True:
                if beating.done():
                    beating.result()  # raises why the heartbeats stopped
                reading = True
                try:
                    payload = await self._receive(ws)
                finally:
                    reading = False
                await self._handle(ws, payload)
        except asyncio.CancelledError as cancelled:
            if cancelled.args == (_HEARTBEATS_STOPPED,) and reader.uncancel() == 0:
                beating.result()  # raises why the heartbeats stopped
            raise
        finally:
            beating.remove_done_callback(stopped)
            beating.cancel()
            await asyncio.wait({beating})  # never raises, and a cancel of ours goes on
            if not beating.cancelled():
                beating.exception()  # its end is told by the receive side

    async def _handle(self, ws: ClientConnection, payload: dict[str, Any]) -> None:
        op = payload.get("op")
        if op == 0:
            seq, kind, data = payload.get("s"), payload.get("t"), payload.get("d")
            if isinstance(seq, int):
                self.state.seq = seq
            if kind == "READY" and isinstance(data, dict):
                self.state.session_id = str(data["session_id"])
                self.state.resume_url = str(data["resume_gateway_url"])
                await _maybe(self._observer.ready(False))
            elif kind == "RESUMED":
                await _maybe(self._observer.ready(True))
            if isinstance(kind, str) and isinstance(data, dict) and isinstance(seq, int):
                await _maybe(self._on_dispatch(kind, data, seq))
        elif op == 1:  # the Gateway asks for a heartbeat now
            await self._beat(ws)
        elif op == 11:
            self._acked = True
            self._observer.heartbeat_latency(time.monotonic() - self._beat_sent)
        elif op == 7:
            await self.close()
            raise GatewayLost("reconnect_requested", resumable=True)
        elif op == 9:
            resumable = payload.get("d") is True
            await self.close()
            if not resumable:
                self.state.forget()
                # Discord: wait a random 1 to 5 s before identifying again.
                await asyncio.sleep(_jitter.uniform(1, 5))
            raise GatewayLost("invalid_session", resumable=resumable)

    async def _heartbeats(self, ws: ClientConnection, interval: float) -> None:
        await asyncio.sleep(interval * _jitter.random())
        while True:
            if not self._acked:
                # A zombied connection: close it (not with 1000, so the session survives).
                await self.close()
                raise GatewayLost("heartbeat_ack_missed", resumable=True)
            await self._beat(ws)
            await asyncio.sleep(interval)

    async def _beat(self, ws: ClientConnection) -> None:
        self._acked = False
        self._beat_sent = time.monotonic()
        await self._send(ws, {"op": 1, "d": self.state.seq})

    def _identify(self) -> dict[str, Any]:
        return {
            "op": 2,
            "d": {
                "token": self._token,
                "intents": self._intents,
                "properties": {"os": "linux", "browser": "hookhub", "device": "hookhub"},
            },
        }

    @staticmethod
    async def _send(ws: ClientConnection, payload: dict[str, Any]) -> None:
        await ws.send(orjson.dumps(payload).decode())

    @staticmethod
    async def _receive(ws: ClientConnection, within: float | None = None) -> dict[str, Any]:
        if within is None:
            raw = await ws.recv()
        else:
            async with asyncio.timeout(within):
                raw = await ws.recv()
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("discord_gateway_undecodable", size=len(raw))
            return {}
        return payload if isinstance(payload, dict) else {}

    def _closed(self, code: int | None) -> Exception:
        if code in FATAL:
            return GatewayFatal(code, FATAL[code])
        if code in NEW_SESSION:
            self.state.forget()
            return GatewayLost(f"closed_{code}", resumable=False)
        return GatewayLost(f"closed_{code or 'abnormally'}", resumable=self.state.resumable)


def _with_query(url: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url.rstrip('/')}{separator}v={GATEWAY_VERSION}&encoding=json"


async def _maybe(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


class DiscordGateway:
    """Discord's Gateway as sync holds a bot's connection to it."""

    # The dispatches sync turns into chat messages; the rest (presence, guilds, typing)
    # are only counted.
    messages = frozenset(
        {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
    )

    def __init__(self, api: DiscordApi) -> None:
        self._api = api

    async def url(self, token: str) -> str:
        """`GET /gateway/bot`, waiting out the session-start limit when it is spent."""
        info = await self._api.gateway_bot(token)
        limit = info.get("session_start_limit") or {}
        if limit.get("remaining") == 0:
            wait = float(limit.get("reset_after") or 0) / 1000
            log.warning("discord_session_start_limit", wait_seconds=wait)
            raise RateLimited("Discord's session start limit is spent", retry_after=wait)
        return str(info["url"])

    def connect(
        self, token: str, state: SessionState, dispatch: Dispatch, observer: Observer
    ) -> GatewayConnection:
        return GatewayConnection(token, state, dispatch, observer=observer)
