"""Mattermost's WebSocket as sync holds it (shared.providers.sockets, services/sync/gateway.py):
one connection of the bot per integration, held by one sync replica under the lease that
holds Discord's Gateway sessions.

What the lease document keeps (`SessionState`) means here: `seq` is not the socket's
sequence (the server counts that from 0 on each connection and replays nothing) but the
server time, in ms, of the last post event published (`SocketState.since_ms`); a
successor, or this holder after a drop, connects again and first reads every channel the
bot is in with `posts?since=` from there (`MattermostChat.posts_since`), handing what it
finds on as the `posted`/`post_edited`/`post_deleted` events it would have been, with the
same envelope ids (`event_key`), before the live events. `session_id` and `resume_url`
only say that there is such a point (`SessionState.resumable`). With none (the first
connection of an integration), the connection reports a new session and sync's catch-up
reads the mapped channels' history from where each was last seen.

A token refused: the server drops the socket without answering the challenge, which a
network drop also looks like; a connection that ends before it is authenticated asks
`GET /users/me`, and a 401 there is `GatewayFatal` (the integration in error).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from shared.providers.chat import PermanentError, ProviderUnreachable, RateLimited, TokenRejected
from shared.providers.mattermost.api import websocket_url
from shared.providers.mattermost.messages import MattermostChat, split_credential
from shared.providers.mattermost.socket import (
    POST_EVENTS,
    REFUSED,
    SocketConnection,
    SocketFatal,
    SocketLost,
    SocketState,
    post_of,
)
from shared.providers.sockets import Dispatch, GatewayFatal, GatewayLost, Observer, SessionState

log = structlog.get_logger(__name__)

# The code of a refused token on the integration's error (`mattermost_gateway_401`).
REFUSED_CODE = 401
_EVENTS = {"created": "posted", "edited": "post_edited", "deleted": "post_deleted"}


def event_key(kind: str, data: dict[str, Any]) -> tuple[str, str]:
    """The post and its version an event is about: the same for a live event and for the
    catch-up's copy of it (so both are one envelope)."""
    post = post_of(data) or {}
    post_id = str(post.get("id") or "")
    if kind == "post_deleted":
        version = "deleted"  # once; whether the event's copy of the post has delete_at or not
    elif kind == "post_edited":
        version = f"edited:{post.get('edit_at') or post.get('update_at') or ''}"
    else:
        version = ""
    return post_id, version


def moment_of(data: dict[str, Any]) -> int | None:
    state = SocketState()
    state.seen("posted", data)
    return state.since_ms


class MattermostGateway:
    messages = POST_EVENTS

    def __init__(self, chat: MattermostChat, *, ping_seconds: float | None = 20.0) -> None:
        self.chat = chat
        self._ping = ping_seconds

    async def url(self, token: str) -> str:
        server, _ = split_credential(token)
        return websocket_url(server)

    def connect(
        self, token: str, state: SessionState, dispatch: Dispatch, observer: Observer
    ) -> MattermostConnection:
        return MattermostConnection(self.chat, token, state, dispatch, observer, self._ping)

    def event_key(self, kind: str, data: dict[str, Any]) -> tuple[str, str]:
        return event_key(kind, data)


class MattermostConnection:
    def __init__(
        self,
        chat: MattermostChat,
        token: str,
        state: SessionState,
        dispatch: Dispatch,
        observer: Observer,
        ping_seconds: float | None,
    ) -> None:
        self.state = state
        self._chat = chat
        self._token = token
        self._dispatch = dispatch
        self._observer = observer
        _, secret = split_credential(token)
        self._socket = SocketConnection(
            secret, SocketState(state.seq), self._on_event, ping_interval=ping_seconds
        )
        # What the catch-up handed on: the same events coming live after it are skipped.
        self._caught: set[tuple[str, str, str]] = set()

    async def run(self, url: str) -> None:
        try:
            await self._socket.run(url, lambda: self._authenticated(url))
        except SocketFatal as fatal:
            raise GatewayFatal(REFUSED_CODE, fatal.advice) from fatal
        except SocketLost as lost:
            if not self._socket.authenticated:
                await self._verify()
                # Counted as a failure by the holder (a growing pause): a server that keeps
                # dropping the socket before it answers is not hammered.
                raise GatewayLost(f"connect_failed: {lost.reason}", resumable=True) from lost
            raise GatewayLost(lost.reason, resumable=True) from lost
        except TokenRejected as exc:  # the catch-up's reads refused the token
            raise GatewayFatal(REFUSED_CODE, f"{REFUSED} ({exc.message})") from exc
        except (ProviderUnreachable, PermanentError) as exc:
            # The catch-up could not read: `seq` has not moved, the next connection reads
            # the same gap. (A RateLimited goes up as it is: the holder waits it out.)
            raise GatewayLost(
                f"connect_failed: catch_up {type(exc).__name__}", resumable=True
            ) from exc

    async def close(self) -> None:
        await self._socket.close()

    async def _verify(self) -> None:
        try:
            await self._chat.identity(self._token)
        except TokenRejected as exc:
            raise GatewayFatal(REFUSED_CODE, f"{REFUSED} ({exc.message})") from exc
        except (RateLimited, ProviderUnreachable, PermanentError):
            pass  # asked again after the next try

    async def _authenticated(self, url: str) -> None:
        since = self.state.seq
        self.state.session_id = "since"
        self.state.resume_url = url
        if since is None:
            await _maybe(self._observer.ready(False))  # sync's catch-up reads the history
            return
        server, secret = split_credential(self._token)
        channel_ids = await self._chat.api.my_channel_ids(server, secret)
        for channel_id in channel_ids:
            try:
                # From a millisecond before: another change in the same millisecond as the
                # last one published is not missed (`since` selects `update_at > since`);
                # the last one comes again with the same envelope id, which the map (a new
                # post) or the chat (an edit, a delete) recognises.
                posts, _ = await self._chat.posts_since(self._token, channel_id, since - 1)
            except PermanentError as exc:
                if isinstance(exc, TokenRejected):
                    raise
                log.warning("mattermost_catch_up_refused", channel=channel_id, error=exc.message)
                continue
            for kind, post in posts:
                event, data = _EVENTS[kind], {"post": post}
                key = event_key(event, data)
                self._caught.add((event, *key))
                await self._hand(event, data)
        log.info("mattermost_caught_up", channels=len(channel_ids), events=len(self._caught))
        await _maybe(self._observer.ready(True))

    async def _on_event(self, event: str, data: dict[str, Any], seq: int) -> None:
        if event not in POST_EVENTS:
            return
        if self._caught and (event, *event_key(event, data)) in self._caught:
            return
        await self._hand(event, data)

    async def _hand(self, event: str, data: dict[str, Any]) -> None:
        moment = moment_of(data)
        seq = moment if moment is not None else (self.state.seq or 0)
        await _maybe(self._dispatch(event, data, seq))
        if self.state.seq is None or seq > self.state.seq:
            self.state.seq = seq


async def _maybe(result: Any) -> None:
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        await result
