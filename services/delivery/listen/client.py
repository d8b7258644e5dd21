"""`hookhub listen`: the developer's side of the listen socket (docs/listen.md).

It makes or finds the listening endpoint (`--events`) or takes the one named
(`--endpoint`), connects its WebSocket to hookhub with a workspace key, and forwards each
delivery that comes down it to the local URL, as hookhub would have sent it (the same
headers and signed body), answering with the local URL's status, headers and the first
16 KiB of its body, which hookhub logs as the attempt. One line per delivery says when,
which event, its `webhook-id`, the local status and how long the local URL took.

A dropped socket is connected again (after 1, 2, 4 … 15 seconds), and hookhub then sends
at once what waited meanwhile. It stops for good when hookhub says so: another listener
took the endpoint over, the key may no longer listen, or the endpoint was deleted. Ctrl-C
lets the deliveries under way answer (2 s at most), closes the socket normally (1000) and
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TextIO
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
import websockets.asyncio.client
import websockets.exceptions
from websockets.asyncio.client import ClientConnection

from services.delivery.listen import protocol
from shared.kernel.egress import header_fields, read_prefix
from shared.kernel.version import __version__

USER_AGENT = f"hookhub-listen/{__version__}"
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)
FINISH_SECONDS = 2.0  # what a Ctrl-C leaves the deliveries under way to answer
# The local URL is given a second less than hookhub waits, so that its time-out is
# answered (and logged as the local URL's) before hookhub's own.
TIME_MARGIN = 1.0


@dataclass
class Options:
    origin: str  # hookhub's, http(s)://host[:port]
    key: str  # a workspace key that can write (or the admin token, with `workspace_id`)
    forward_to: str
    endpoint_id: str | None = None
    events: list[str] | None = None
    name: str = "hookhub listen"
    workspace_id: str | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


# How a connection ended: Ctrl-C; after it was up; or before (hookhub not reachable).
Ended = Literal["stopped", "dropped", "unreached"]


class Refused(Exception):
    """hookhub refused the listener for good (a key, an endpoint): the reason, for people."""


def run(options: Options) -> int:
    """The command: listens until Ctrl-C (0) or until hookhub refuses it for good (1)."""

    async def main() -> int:
        stop = asyncio.Event()
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def interrupted() -> None:
            if stop.is_set() and task is not None:  # a second Ctrl-C: leave at once
                task.cancel()
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupted)
        return await listen(options, stop)

    try:
        return asyncio.run(main())
    except asyncio.CancelledError:
        return 130


async def listen(options: Options, stop: asyncio.Event) -> int:
    """Listens until `stop` is set (0) or hookhub refuses the listener for good (1)."""
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as http:
        try:
            endpoint_id = options.endpoint_id or await _endpoint(http, options)
        except Refused as exc:
            _say(options.err, f"hookhub refused: {exc}")
            return 1
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            _say(options.err, f"cannot reach hookhub at {options.origin}: {_described(exc)}")
            return 1
        failures = 0
        while not stop.is_set():
            try:
                ended = await _connected(http, options, endpoint_id, stop)
            except Refused as exc:
                _say(options.err, f"hookhub refused: {exc}")
                return 1
            if ended == "stopped" or stop.is_set():
                break
            if ended == "dropped":  # it was connected: the backoff starts over
                failures = 0
            wait = BACKOFF[min(failures, len(BACKOFF) - 1)]
            failures += 1
            _say(options.err, f"connecting again in {wait:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
    _say(options.out, "Stopped.")
    return 0


async def _endpoint(http: aiohttp.ClientSession, options: Options) -> str:
    """The listening endpoint for `--events`, made or found again (POST /api/listen/endpoints)."""
    body: dict[str, Any] = {"events": options.events, "name": options.name}
    if options.workspace_id:
        body["workspace_id"] = options.workspace_id
    async with http.post(
        options.origin.rstrip("/") + "/api/listen/endpoints",
        json=body,
        headers={"Authorization": f"Bearer {options.key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as answer:
        found = await answer.json(content_type=None)
        if answer.status not in (200, 201):
            raise Refused(_error_of(answer.status, found))
    endpoint_id = str(found["id"])
    events = ", ".join(found.get("events") or [])
    if found.get("created"):
        _say(options.out, f"Made the listening endpoint {endpoint_id} ({events}).")
        _say(options.out, f"Its signing secret, shown this once: {found.get('secret')}")
    else:
        _say(
            options.out,
            f"Listening endpoint {endpoint_id} ({events}), made before: its signing secret "
            "was shown then (POST /api/outgoing-webhooks/{id}/rotate-secret makes another).",
        )
    return endpoint_id


async def _connected(
    http: aiohttp.ClientSession, options: Options, endpoint_id: str, stop: asyncio.Event
) -> Ended:
    """One connection, for as long as it lasts."""
    query = urlencode({"endpoint_id": endpoint_id, "forward_to": options.forward_to})
    origin = urlsplit(options.origin.rstrip("/"))
    scheme = "wss" if origin.scheme == "https" else "ws"
    url = f"{scheme}://{origin.netloc}{origin.path}/api/listen?{query}"
    try:
        socket = await websockets.asyncio.client.connect(
            url,
            additional_headers={"Authorization": f"Bearer {options.key}"},
            user_agent_header=USER_AGENT,
            max_size=protocol.FRAME_LIMIT + protocol.ANSWER_FRAME_LIMIT,
            ping_interval=protocol.PING_SECONDS,
            ping_timeout=protocol.PING_SECONDS,
            close_timeout=FINISH_SECONDS,
            open_timeout=15,
        )
    except websockets.exceptions.InvalidStatus as refused:
        status = refused.response.status_code
        said = _json(bytes(refused.response.body))
        if status < 500 and status != 429:
            raise Refused(_error_of(status, said)) from None
        _say(options.err, f"hookhub cannot take the listener now: {_error_of(status, said)}")
        return "unreached"
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
        _say(options.err, f"cannot reach hookhub at {options.origin}: {_described(exc)}")
        return "unreached"
    return await _session(socket, http, options, stop)


async def _session(
    socket: ClientConnection, http: aiohttp.ClientSession, options: Options, stop: asyncio.Event
) -> Ended:
    forwards: set[asyncio.Task[None]] = set()

    async def receive() -> None:
        async for text in socket:
            try:
                frame = orjson.loads(text)
                delivery = protocol.read_delivery(frame)
            except (ValueError, KeyError, TypeError, AttributeError):  # not a frame we know
                continue
            if isinstance(frame, dict) and frame.get("type") == "ready":
                endpoint = frame.get("endpoint") or {}
                _say(
                    options.out,
                    f"Ready: {endpoint.get('id')} ({', '.join(endpoint.get('events') or [])}) "
                    f"→ {options.forward_to}. Ctrl-C to stop.",
                )
                continue
            if delivery is None:  # a frame this version does not know
                continue
            task = asyncio.create_task(_forward(http, socket, options, delivery))
            forwards.add(task)
            task.add_done_callback(forwards.discard)

    receiving = asyncio.create_task(receive())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if stop.is_set():
        receiving.cancel()
        if forwards:  # their answers still go up, within a bound
            await asyncio.wait(set(forwards), timeout=FINISH_SECONDS)
        for task in forwards:
            task.cancel()
        await socket.close(1000, "the listener left")
        with contextlib.suppress(asyncio.CancelledError, websockets.exceptions.WebSocketException):
            await receiving
        return "stopped"
    for task in forwards:
        task.cancel()
    with contextlib.suppress(websockets.exceptions.WebSocketException):
        receiving.result()
    code, reason = socket.close_code or 1006, socket.close_reason or ""
    if code in protocol.FINAL:
        raise Refused(f"the socket was closed ({code}: {reason or 'no reason given'})")
    _say(options.err, f"disconnected ({code}{': ' + reason if reason else ''})")
    return "dropped"


async def _forward(
    http: aiohttp.ClientSession,
    socket: ClientConnection,
    options: Options,
    delivery: protocol.Delivery,
) -> None:
    """One delivery sent to the local URL as hookhub sends it; its answer sent back."""
    started = time.perf_counter()
    status: int | None = None
    headers: dict[str, str] = {}
    body = ""
    error: str | None = None
    limit = max(delivery.timeout_seconds - TIME_MARGIN, 1.0)
    try:
        async with http.post(
            options.forward_to,
            data=delivery.body,
            headers=delivery.headers,
            allow_redirects=False,
            skip_auto_headers=("User-Agent", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=limit),
        ) as response:
            status = response.status
            headers = header_fields(response.headers.items())
            body = await read_prefix(response.content, protocol.ANSWER_BODY_LIMIT)
    except TimeoutError:
        error = f"timeout after {limit:g}s at {options.forward_to}"
    except (aiohttp.ClientError, OSError) as exc:
        error = f"{options.forward_to}: {_described(exc)}"
    elapsed = (time.perf_counter() - started) * 1000
    with contextlib.suppress(websockets.exceptions.ConnectionClosed):
        await socket.send(protocol.answer(delivery.id, status, headers, body, error))
    outcome = str(status) if status is not None else f"error: {error}"
    _say(
        options.out,
        f"{datetime.now():%H:%M:%S}  {delivery.event_type}  {delivery.msg_id}  "
        f"→ {outcome}  {elapsed:.0f} ms",
    )


def _error_of(status: int, said: Any) -> str:
    error = said.get("error") if isinstance(said, dict) else None
    if isinstance(error, dict):
        return f"{status} {error.get('code')}: {error.get('message')}"
    return f"HTTP {status}"


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _described(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _say(stream: TextIO, line: str) -> None:
    print(line, file=stream, flush=True)
