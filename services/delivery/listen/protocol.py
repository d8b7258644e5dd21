"""The listen socket's framing, spoken by delivery and by `hookhub listen` (docs/listen.md).

Every frame is one JSON object in a text message, `type` first:

- `ready` (hookhub → listener, once, after the handshake): `session_id` and the `endpoint`
  it listens for (`id`, `name`, `events`, `workspace_id`).
- `delivery` (hookhub → listener, one per attempt): `id` (the attempt's, answered by
  it), `msg_id` (the `webhook-id`, the same on every retry), `event_type`, `event_id`,
  `headers` (what an HTTP endpoint would be sent: the Standard Webhooks signature among
  them), `body` (the envelope, as signed) and `timeout_seconds` (the endpoint's).
- `answer` (listener → hookhub, one per delivery): `id`, `status` (the local URL's, or
  null when it did not answer), `headers`, `body` (its first ANSWER_BODY_LIMIT bytes, as
  text) and `error` (why the local URL did not answer: refused, timed out).

A delivery frame is at most FRAME_LIMIT bytes (a larger delivery fails its attempt before
it is sent); an answer frame at most ANSWER_FRAME_LIMIT. An answer that is too large, not
JSON, not an object or of the wrong shape is its delivery's failed attempt when its `id`
can be read, and is dropped (the delivery then times out) when it cannot: never the
socket's end. Pings are the WebSocket protocol's own, both ways (uvicorn's and the
`websockets` client's, every PING_SECONDS): a laptop that stops answering is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from services.delivery.destinations.base import ANSWER_LIMIT, Answer, Message

FRAME_LIMIT = 16 * 1024 * 1024  # a delivery frame, the envelope with its headers
ANSWER_BODY_LIMIT = ANSWER_LIMIT  # of the local URL's answer, as the attempt log keeps it
ANSWER_FRAME_LIMIT = 64 * 1024
MAX_ANSWER_HEADERS = 50
PING_SECONDS = 20.0  # and as long again for the pong (uvicorn's default, and the client's)

# Close codes (RFC 6455 leaves 4000-4999 to applications). A listener reconnects after any
# other code, and stops after these: another session took its place, its key no longer lets
# it listen, or its endpoint is gone. 1000 is a listener that left (Ctrl-C).
REPLACED = 4000
REFUSED = 4001
GONE = 4004
FINAL = frozenset({1000, 1008, REPLACED, REFUSED, GONE})

NO_LISTENER = "no listener connected"


class Malformed(ValueError):
    """An answer frame that cannot be taken: `frame_id` when its delivery can be named."""

    def __init__(self, reason: str, frame_id: str | None = None) -> None:
        super().__init__(reason)
        self.frame_id = frame_id


def ready(session_id: str, endpoint: Mapping[str, Any]) -> str:
    return _text(
        {
            "type": "ready",
            "session_id": session_id,
            "endpoint": {
                "id": endpoint["_id"],
                "name": endpoint.get("name"),
                "events": list(endpoint.get("events") or []),
                "workspace_id": endpoint["workspace_id"],
            },
        }
    )


def delivery(frame_id: str, message: Message) -> str:
    return _text(
        {
            "type": "delivery",
            "id": frame_id,
            "msg_id": message.msg_id,
            "event_type": message.event_type,
            "event_id": message.event_id,
            "headers": dict(message.headers),
            # The §7 envelope is JSON, hence UTF-8: its text is the signed bytes.
            "body": message.body.decode("utf-8", "replace"),
            "timeout_seconds": message.timeout_seconds,
        }
    )


@dataclass(frozen=True)
class Delivery:
    """A delivery frame as the listener reads it."""

    id: str
    msg_id: str
    event_type: str
    headers: dict[str, str]
    body: bytes
    timeout_seconds: float


def read_delivery(frame: Any) -> Delivery | None:
    """The delivery a frame (parsed) asks for; None for any other (a later version's)."""
    if not isinstance(frame, dict) or frame.get("type") != "delivery":
        return None
    return Delivery(
        id=str(frame["id"]),
        msg_id=str(frame.get("msg_id") or ""),
        event_type=str(frame.get("event_type") or ""),
        headers={str(k): str(v) for k, v in (frame.get("headers") or {}).items()},
        body=str(frame.get("body") or "").encode(),
        timeout_seconds=float(frame.get("timeout_seconds") or 30.0),
    )


def answer(
    frame_id: str,
    status: int | None,
    headers: Mapping[str, str] | None = None,
    body: str = "",
    error: str | None = None,
) -> str:
    """The listener's answer to delivery `frame_id`, within ANSWER_FRAME_LIMIT."""
    kept = dict(list((headers or {}).items())[:MAX_ANSWER_HEADERS])
    frame = {
        "type": "answer",
        "id": frame_id,
        "status": status,
        "headers": kept,
        "body": body[:ANSWER_BODY_LIMIT],
        "error": None if error is None else error[:1000],
    }
    text = _text(frame)
    if len(text.encode()) > ANSWER_FRAME_LIMIT:  # headers of an unusual size: left out
        text = _text({**frame, "headers": {}})
    return text


def read_answer(text: str | bytes) -> tuple[str, Answer]:
    """The delivery an answer frame names and its answer, as the attempt logs it; raises
    Malformed (naming the delivery when it can) for anything else."""
    size = len(text.encode() if isinstance(text, str) else text)
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Malformed("an answer that is not JSON") from None
    if not isinstance(frame, dict):
        raise Malformed("an answer that is not a JSON object")
    frame_id = frame.get("id")
    named = frame_id if isinstance(frame_id, str) else None
    if frame.get("type") != "answer":
        raise Malformed(f"a frame of type {str(frame.get('type'))[:40]!r}, not an answer", named)
    if named is None:
        raise Malformed("an answer without its delivery's id")
    if size > ANSWER_FRAME_LIMIT:
        raise Malformed(f"an answer of {size} bytes, over {ANSWER_FRAME_LIMIT}", named)
    status = frame.get("status")
    if status is not None and (type(status) is not int or not 100 <= status <= 599):
        raise Malformed("an answer whose status is not an HTTP status (100-599) or null", named)
    body, error, headers = frame.get("body", ""), frame.get("error"), frame.get("headers", {})
    if not isinstance(body, str) or not (error is None or isinstance(error, str)):
        raise Malformed("an answer whose body or error is not text", named)
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise Malformed("an answer whose headers are not an object of text", named)
    if status is None and error is None:
        error = "the listener gave neither a status nor an error"
    return named, Answer(
        status,
        body[:ANSWER_BODY_LIMIT],
        None if error is None else error[:1000],
        {str(k).lower(): v for k, v in list(headers.items())[:MAX_ANSWER_HEADERS]},
    )


def _text(frame: Mapping[str, Any]) -> str:
    return orjson.dumps(frame).decode()
