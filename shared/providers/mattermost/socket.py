"""Mattermost's WebSocket: one connection of the bot account per integration, as Mattermost
documents it (developers.mattermost.com, "WebSocket API"), built like Discord's Gateway
module (`shared.providers.discord.gateway`).

`SocketConnection.run` opens one connection to `/api/v4/websocket` and keeps it until it
ends: the `authentication_challenge` action (`{"seq": 1, "action":
"authentication_challenge", "data": {"token"}}`), answered `{"status": "OK", "seq_reply":
1}` → the `hello` event → events `{"event", "data", "broadcast", "seq"}`, handed to
`on_event` in order. The server counts `seq` from 0 on each connection; a number skipped
means an event lost, and the connection is given up so that the catch-up reads the gap.
It ends by raising:

- `SocketLost(reason)`: reconnect, then catch up (the server replays nothing to a new
  connection: what was posted, edited or deleted meanwhile is read with `posts?since=`).
- `SocketFatal(advice)`: the token is refused: no reconnect loop. The server does not say
  so on the socket (it drops the connection instead of answering the challenge, as a
  network drop would); `Listener` asks `verify` (the REST API's `GET /users/me`) after a
  connection that ended before it was authenticated, and a `TokenRejected` there is fatal.

`SocketState.since_ms` is the server time of the last post event seen (its `update_at`, or
`delete_at`): where the catch-up starts after a drop. `Listener` keeps one integration's
connection: it reconnects after a drop with a growing pause and, once authenticated, calls
`catch_up(since_ms)` before it reads the new connection's events; a catch-up that fails
(a 429, the server away) closes the connection and is tried again on the next one, from
the same `since_ms` (a 429's wait is kept).

Which replica holds the connection is not decided here, as it is not in the Discord module:
sync's `GatewayKeeper` (services/sync/gateway.py) holds a lease per integration in MongoDB
(`sync_gateways`) and keeps the session there; for Mattermost it would keep `since_ms` in
the same document, so that whoever takes the lease over catches up from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shared.providers.chat import (
    PermanentError,
    ProviderUnreachable,
    RateLimited,
    TokenRejected,
)

log = structlog.get_logger(__name__)

POST_EVENTS = frozenset({"posted", "post_edited", "post_deleted"})
MAX_BACKOFF_SECONDS = 60.0
_jitter = random.Random()  # noqa: S311 (spreading reconnects in time, not secrets)

OnEvent = Callable[[str, dict[str, Any], int], Awaitable[None] | None]
CatchUp = Callable[[int | None], Awaitable[None]]


@dataclass
class SocketState:
    """Kept by the caller (in MongoDB, beside the lease) for whichever process connects next."""

    since_ms: int | None = None

    def seen(self, event: str, data: dict[str, Any]) -> None:
        """Moves `since_ms` on to the time of a post event."""
        if event not in POST_EVENTS:
            return
        post = post_of(data)
        if post is None:
            return
        stamps = [post.get(k) for k in ("update_at", "edit_at", "delete_at", "create_at")]
        moment = max((s for s in stamps if type(s) is int), default=None)
        if moment is not None and (self.since_ms is None or moment > self.since_ms):
            self.since_ms = moment


class SocketLost(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SocketFatal(Exception):
    def __init__(self, advice: str) -> None:
        super().__init__(advice)
        self.advice = advice


REFUSED = (
    "Mattermost refused the bot token on its WebSocket: give a current personal access token "
    "of the bot account (Integrations → Bot Accounts → the bot → Create New Token)"
)


def post_of(data: dict[str, Any]) -> dict[str, Any] | None:
    """The post of a `posted`/`post_edited`/`post_deleted` event: `data.post` is the post as
    a JSON string (a dict is taken as it is)."""
    raw = data.get("post")
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        post = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return post if isinstance(post, dict) else None


class SocketConnection:
    def __init__(
        self,
        token: str,
        state: SocketState,
        on_event: OnEvent,
        *,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        max_size: int = 8 * 1024 * 1024,
    ) -> None:
        self._token = token
        self.state = state
        self._on_event = on_event
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._max_size = max_size
        self._ws: ClientConnection | None = None
        self.authenticated = False

    async def run(
        self, url: str, authenticated: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Connect to `url` (`wss://server/api/v4/websocket`), authenticate, await
        `authenticated()` (the catch-up), then hand on events until the connection ends;
        never returns normally."""
        try:
            async with connect(
                url,
                open_timeout=self._open_timeout,
                ping_interval=self._ping_interval,
                max_size=self._max_size,
                max_queue=1024,
                compression=None,
                proxy=None,
            ) as ws:
                self._ws = ws
                await self._authenticate(ws)
                if authenticated is not None:
                    await authenticated()
                await self._events(ws)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if not self.authenticated:
                # The server drops the connection on a token it does not know (gorilla's
                # Close: no close frame), which a network drop also looks like: the caller
                # asks the REST API whether the token still holds (`Listener`'s `verify`).
                raise SocketLost(f"closed_before_authenticated_{code or 'abnormally'}") from exc
            raise SocketLost(f"closed_{code or 'abnormally'}") from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise SocketLost(f"connect_failed: {exc!r}") from exc
        finally:
            self._ws = None

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close(1000, "hookhub: closing")

    async def _authenticate(self, ws: ClientConnection) -> None:
        challenge = {"seq": 1, "action": "authentication_challenge", "data": {"token": self._token}}
        await ws.send(orjson.dumps(challenge).decode())
        async with asyncio.timeout(self._open_timeout):
            while True:
                payload = _decoded(await ws.recv())
                if payload.get("seq_reply") == 1:
                    if payload.get("status") != "OK":
                        raise SocketFatal(REFUSED)
                    self.authenticated = True
                    return
                # Anything else before the answer (none is expected) is not ours to read.

    async def _events(self, ws: ClientConnection) -> None:
        expected: int | None = None
        while True:
            payload = _decoded(await ws.recv())
            event, data, seq = payload.get("event"), payload.get("data"), payload.get("seq")
            if not isinstance(event, str) or type(seq) is not int:
                continue  # a reply to an action of ours (none after the challenge)
            if expected is not None and seq != expected:
                await self.close()
                raise SocketLost(f"seq_gap: expected {expected}, got {seq}")
            expected = seq + 1
            if not isinstance(data, dict):
                data = {}
            result = self._on_event(event, data, seq)
            if result is not None:
                await result
            self.state.seen(event, data)


class Listener:
    """One integration's connection, kept: reconnects after a drop (1 s, doubling to a
    minute, with jitter) and catches up once authenticated again. `run` returns only by a
    `SocketFatal` (raised) or a cancel."""

    def __init__(
        self,
        url: str,
        token: str,
        state: SocketState,
        on_event: OnEvent,
        catch_up: CatchUp,
        *,
        verify: Callable[[], Awaitable[object]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ping_interval: float | None = 20.0,
    ) -> None:
        self._url = url
        self._token = token
        self.state = state
        self._on_event = on_event
        self._catch_up = catch_up
        self._verify = verify
        self._sleep = sleep
        self._ping_interval = ping_interval
        self.connections = 0
        self.lost: list[str] = []
        self.connection: SocketConnection | None = None

    async def run(self) -> None:
        failures = 0
        while True:
            connection = SocketConnection(
                self._token, self.state, self._on_event, ping_interval=self._ping_interval
            )
            self.connection = connection
            at_least = 0.0
            try:
                await connection.run(self._url, self._authenticated)
            except SocketLost as lost:
                self.lost.append(lost.reason)
                log.info("mattermost_socket_lost", reason=lost.reason)
                failures = 0 if connection.authenticated else failures + 1
                if not connection.authenticated and self._verify is not None:
                    try:
                        await self._verify()
                    except TokenRejected as exc:
                        raise SocketFatal(f"{REFUSED} ({exc})") from exc
                    except (RateLimited, ProviderUnreachable):
                        pass  # asked again after the next try
            except TokenRejected as exc:  # the catch-up's reads refused the token
                raise SocketFatal(f"{REFUSED} ({exc})") from exc
            except (RateLimited, ProviderUnreachable, PermanentError) as exc:
                # The catch-up could not read (the connection is closed with it): `since_ms`
                # has not moved, so the next connection's catch-up reads the same gap. (A
                # channel the bot lost is for `catch_up` to record and skip, not to raise.)
                reason = f"catch_up_failed: {type(exc).__name__}"
                self.lost.append(reason)
                log.warning("mattermost_socket_catch_up_failed", error=repr(exc))
                failures += 1
                at_least = exc.retry_after if isinstance(exc, RateLimited) else 0.0
            pause = min(MAX_BACKOFF_SECONDS, 2.0**failures) * _jitter.uniform(0.5, 1.0)
            await self._sleep(max(pause, at_least))

    async def _authenticated(self) -> None:
        self.connections += 1
        await self._catch_up(self.state.since_ms)


def _decoded(raw: str | bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("mattermost_socket_undecodable", size=len(raw))
        return {}
    return payload if isinstance(payload, dict) else {}
