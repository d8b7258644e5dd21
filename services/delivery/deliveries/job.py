"""A delivery as the process holding it sees it: what the dispatcher sends, the FIFO runs
order (deliveries/fifo.py) and fan-out and the scheduler hand over (deliveries/service.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from shared.kernel.mongo import Document


@dataclass(slots=True)
class Age:
    """When a held job was handed to the lanes (`since`, and the dispatcher's `stalled`
    clock then: see `Dispatcher.behind`), and whether it is done with."""

    since: float
    stalled: float = 0.0
    done: bool = False


@dataclass
class Job:
    """A delivery held by this process (its lease is kept alive while it is)."""

    id: str
    endpoint_id: str
    workspace_id: str
    event_id: str
    event_type: str
    msg_id: str
    body: bytes
    attempts: int  # made so far, over the delivery's whole life (numbers the attempt log)
    tries: int  # made in the current round (indexes the retry schedule)
    manual: bool
    # Not in MongoDB yet (see dispatcher.py's doc): the delivery document its first outcome is
    # inserted as, and what its batch waits for. None once recorded.
    unrecorded: Document | None = None
    recorded: asyncio.Future[None] | None = None
    since: float = 0.0  # when it was handed to the lanes (time.monotonic())
    out: bool = False  # its attempt under way
    cut: bool = False  # let go of by the stop, unsent: not attempted
    age: Age | None = None  # in its endpoint's order of hand-over (`Dispatcher.behind`)
    # A FIFO endpoint's (deliveries/fifo.py): its key and place in the key's order, and
    # what it was last recorded as (`status`, `next_attempt_at`), which decides what its
    # key does next. None: not ordered.
    ordering_key: str | None = None
    sequence: int = 0
    outcome: str | None = None
    next_at: datetime | None = None
    # Its event's trace (`tracing.kept`), which each attempt goes on in: None outside any.
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def from_doc(cls, doc: Document) -> Job:
        return cls(
            id=doc["_id"],
            endpoint_id=doc["endpoint_id"],
            workspace_id=doc["workspace_id"],
            event_id=doc["event_id"],
            event_type=doc["event_type"],
            msg_id=doc["msg_id"],
            body=bytes(doc["body"]),
            attempts=int(doc.get("attempts", 0)),
            tries=int(doc.get("tries", 0)),
            manual=bool(doc.get("manual", False)),
            ordering_key=doc.get("ordering_key"),
            sequence=int(doc.get("sequence", 0)),
            traceparent=doc.get("traceparent"),
            tracestate=doc.get("tracestate"),
        )
