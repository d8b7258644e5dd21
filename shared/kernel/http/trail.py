"""The trail of every service's management API: the changes it answered, handed on.

One middleware in front of every service's routes, so that no route is recorded by
remembering to: a request whose method changes something (not GET, HEAD, OPTIONS), made
by a caller the authentication identified (`request.state.caller`, set by
`shared.kernel.http.auth.authenticate`), and answered 2xx, is handed as a `Change` (its route,
the JSON body it sent and the JSON answer, the caller, the time) to the service's
`ChangeRecorder`: the domain's audit log (shared.domain.audit.AuditRecorder), plugged in by the
service's platform (shared.kernel.http.app.Platform). The recorder says which routes it records
(their bodies are kept only for those) and is entered around the request, so that it can
watch what the request touched.

The change is handed on once the answer has been sent: the request waits neither for it
nor for what the recorder does with it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel.http.auth import READS, Caller
from shared.kernel.ids import utcnow

# The most of a JSON body or answer kept to read its names from (the guard refuses larger
# request bodies before this sees them; answers of changes are small).
_MAX_CAPTURE = 1024 * 1024


class _Capture:
    """A JSON body as it passes, up to _MAX_CAPTURE bytes."""

    def __init__(self) -> None:
        self.wanted: bool | None = None  # None until the first chunk: is it to be kept?
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if not self.wanted or not chunk:
            return
        self.size += len(chunk)
        if self.size > _MAX_CAPTURE:
            self.wanted, self.chunks = False, []
        else:
            self.chunks.append(chunk)

    def parsed(self) -> Any:
        if not self.wanted or not self.chunks:
            return None
        try:
            return orjson.loads(b"".join(self.chunks))
        except orjson.JSONDecodeError:
            return None


@dataclass(frozen=True)
class Change:
    """One change a request made, answered 2xx: `body` and `answer` parsed when JSON and
    kept (else None); `at` when the request began."""

    scope: Scope
    status: int
    caller: Caller
    body: Any
    answer: Any
    at: datetime


class ChangeRecorder(Protocol):
    def records(self, scope: Scope) -> bool:
        """Whether the changes of the route the router chose (`scope["route"]`) are
        recorded: their JSON bodies are kept only then."""
        ...

    def watch(self) -> AbstractContextManager[Callable[[Change], None]]:
        """Entered around a request that may change something: what it yields records the
        request's change, once answered (after the context is left)."""
        ...


class ChangeTrail:
    """ASGI middleware handing the changes the app's routes answered 2xx to `recorder`. It
    reads the route once the router chose it (`scope["route"]`), as `ManagementGuard`
    does."""

    def __init__(self, app: ASGIApp, recorder: ChangeRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS:
            await self.app(scope, receive, send)
            return
        body, answer = _Capture(), _Capture()
        status = 0
        # The change's time is its request's: recorded later, an entry must not sort (or
        # match `since`) after a request that began once this one was answered.
        at = utcnow()

        async def capturing_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                if body.wanted is None:
                    body.wanted = _is_json(scope["headers"]) and self.recorder.records(scope)
                body.add(message.get("body", b""))
            return message

        async def capturing_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answer.wanted = (
                    200 <= status < 300
                    and _is_json(message.get("headers", []))
                    and self.recorder.records(scope)
                )
            elif message["type"] == "http.response.body":
                answer.add(message.get("body", b""))
            await send(message)

        with self.recorder.watch() as record:
            await self.app(scope, capturing_receive, capturing_send)
        caller = (scope.get("state") or {}).get("caller")
        if 200 <= status < 300 and isinstance(caller, Caller):
            record(Change(scope, status, caller, body.parsed(), answer.parsed(), at))


def _is_json(headers: Any) -> bool:
    for key, value in headers:
        if key.lower() == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False
