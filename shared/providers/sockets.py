"""A network's own connection for its events (Discord's Gateway), as sync holds one per
integration (services/sync/gateway.py): where to connect, the connection, and what it says
as it goes. A network whose events come over one says so with `Network.gateway`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

Dispatch = Callable[[str, dict[str, Any], int], Awaitable[None] | None]


@dataclass
class SessionState:
    """What a Resume needs; kept by the caller (in MongoDB) for whichever process resumes."""

    session_id: str | None = None
    resume_url: str | None = None
    seq: int | None = None

    @property
    def resumable(self) -> bool:
        return bool(self.session_id and self.resume_url and self.seq is not None)

    def forget(self) -> None:
        self.session_id = self.resume_url = None
        self.seq = None


class GatewayLost(Exception):
    def __init__(self, reason: str, resumable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.resumable = resumable


class GatewayFatal(Exception):
    def __init__(self, code: int, advice: str) -> None:
        super().__init__(advice)
        self.code = code
        self.advice = advice


@dataclass
class Observer:
    """What a connection reports as it goes (the caller's metrics and state)."""

    ready: Callable[[bool], Awaitable[None] | None] = lambda resumed: None
    heartbeat_latency: Callable[[float], None] = lambda seconds: None


class Connection(Protocol):
    state: SessionState

    async def run(self, url: str) -> None:
        """Connect to `url` and keep the connection until it ends, by raising
        `GatewayLost` (reconnect) or `GatewayFatal` (no reconnect can help)."""
        ...

    async def close(self) -> None:
        """Closed resumably: whoever holds it next resumes the session."""
        ...


class Gateway(Protocol):
    """A gateway may also have `event_key(kind, data) -> (message id, version)`: what its
    dispatches' envelope ids derive from (without it, Discord's `id`/`edited_timestamp`)."""

    # The dispatches that are message changes (the others are only counted).
    messages: frozenset[str]

    async def url(self, token: str) -> str:
        """Where a new session connects (RateLimited while the network allows no new one)."""
        ...

    def connect(
        self, token: str, state: SessionState, dispatch: Dispatch, observer: Observer
    ) -> Connection: ...
