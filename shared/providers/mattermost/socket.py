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
- `SocketFatal(advice)`: the token is refused. The server does not say so on the socket
  (it drops the connection instead of answering the challenge, as a network drop would);
  whoever holds the connection asks the REST API (`GET /users/me`) after a connection that
  ended before it was authenticated (`MattermostConnection` in `gateway.py`).

`SocketState.since_ms` is the server time of the last post event seen (its `update_at`, or
`delete_at`). Which replica holds the connection, reconnecting and catching up after a drop
are sync's Gateways' and `gateway.py`'s (`MattermostGateway`), as for Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

log = structlog.get_logger(__name__)

POST_EVENTS = frozenset({"posted", "post_edited", "post_deleted"})

OnEvent = Callable[[str, dict[str, Any], int], Awaitable[None] | None]


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
                # asks the REST API whether the token still holds (`gateway.MattermostConnection`).
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


def _decoded(raw: str | bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        log.warning("mattermost_socket_undecodable", size=len(raw))
        return {}
    return payload if isinstance(payload, dict) else {}
