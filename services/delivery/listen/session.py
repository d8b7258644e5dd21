"""One listener's socket as the replica holding it sees it: deliveries sent as frames, each
waiting for the answer that names it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from services.delivery.destinations.base import Answer, Message
from services.delivery.listen import protocol

log = structlog.get_logger(__name__)

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


@dataclass(eq=False)
class Session:
    """A connected listener: the socket's `send` and `close`, and who opened it (its
    `authorization`, checked again while it lasts, never stored)."""

    endpoint_id: str
    workspace_id: str
    session_id: str
    forward_to: str
    authorization: str = field(repr=False)
    connected_at: datetime
    send: Send = field(repr=False)
    close: Close = field(repr=False)
    _pending: dict[str, asyncio.Future[Answer]] = field(default_factory=dict, repr=False)
    _sending: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _ended: str | None = None  # why, once ended

    async def deliver(self, message: Message) -> Answer:
        """Sends one attempt and waits for its answer (the caller bounds the wait: the
        dispatcher by the endpoint's timeout, a hop by the time it was given)."""
        if self._ended is not None:
            return Answer.unreached(self._ended)
        frame_id = uuid.uuid4().hex
        text = protocol.delivery(frame_id, message)
        if len(text) > protocol.FRAME_LIMIT:  # bytes ≥ characters: checked on the bytes below
            size = len(text.encode())
            if size > protocol.FRAME_LIMIT:
                return Answer.refused(
                    f"the delivery is {size} bytes, over the listen socket's "
                    f"{protocol.FRAME_LIMIT}-byte frame limit"
                )
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = answered
        try:
            try:
                async with self._sending:
                    await self.send(text)
            except Exception as exc:  # the socket went away under us
                log.info("listen_send_failed", endpoint_id=self.endpoint_id, error=repr(exc))
                return Answer.unreached(f"{protocol.NO_LISTENER}: the socket closed")
            return await answered
        finally:
            self._pending.pop(frame_id, None)

    def answered(self, text: str | bytes) -> None:
        """An answer frame from the listener: its delivery's attempt ends with it. What
        cannot be read fails the delivery it names, and names none otherwise."""
        try:
            frame_id, answer = protocol.read_answer(text)
        except protocol.Malformed as exc:
            log.warning(
                "listen_answer_malformed",
                endpoint_id=self.endpoint_id,
                frame_id=exc.frame_id,
                reason=str(exc),
            )
            if exc.frame_id is None:
                return
            frame_id, answer = exc.frame_id, Answer.refused(f"the listener sent {exc}")
        waiting = self._pending.get(frame_id)
        if waiting is None or waiting.done():  # timed out here already, or never sent
            log.info("listen_answer_unknown", endpoint_id=self.endpoint_id, frame_id=frame_id)
            return
        waiting.set_result(answer)

    def end(self, why: str) -> None:
        """The socket is gone: what waits for an answer ends unreached (retried)."""
        if self._ended is None:
            self._ended = f"{protocol.NO_LISTENER}: {why}"
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_result(Answer.unreached(self._ended))

    @property
    def ended(self) -> bool:
        return self._ended is not None

    @property
    def in_flight(self) -> int:
        return len(self._pending)
