"""The management API's front door (`shared.kernel.http.limits`): the admin token before the body,
and every body bounded.

The ASGI-level tests call each service's real app without a server, so they can count what
the app pulled from `receive`: a refused request must not have read its body. The socket
tests run a gateway under uvicorn, as `hookhub serve` does, and talk raw HTTP/1.1 so that a
client can stop sending half-way and still read the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.types import Message

from services.delivery.app import definition as delivery
from services.gateway.app import definition as gateway
from services.oauth.app import definition as oauth
from shared.domain.platform import create_app
from shared.kernel.http.app import ServiceApp
from shared.kernel.http.auth import Authenticated, authenticate
from shared.kernel.http.limits import max_body
from shared.kernel.runtime import ServiceDefinition
from shared.kernel.settings import GatewaySettings
from tests.infra import Infra
from tests.support import ADMIN_TOKEN, RunningService, make_settings, new_namespace, serve

LIMIT = 64 * 1024
CHUNK = 16 * 1024
HUGE = 200 * 1024 * 1024  # what the issue sent: 200 MB


def _app(definition: Callable[[], ServiceDefinition], infra: Infra, tmp_path: Path) -> ServiceApp:
    made = definition()
    settings = make_settings(
        made.settings_class, infra, new_namespace(), tmp_path, api_max_body_bytes=LIMIT
    )
    return create_app(made, settings)


class _Body:
    """A request body handed to the app chunk by chunk, counting what the app took."""

    def __init__(self, total: int, chunk: int = CHUNK) -> None:
        self.total = total
        self.chunk = chunk
        self.sent = 0
        self.calls = 0

    async def receive(self) -> Message:
        self.calls += 1
        size = min(self.chunk, self.total - self.sent)
        self.sent += size
        return {"type": "http.request", "body": b"x" * size, "more_body": self.sent < self.total}


async def _call(
    app: ServiceApp,
    method: str,
    path: str,
    body: _Body,
    headers: dict[str, str],
) -> tuple[int, dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, body.receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], orjson.loads(payload) if payload else {}


def _admin_routes_with_bodies(
    definition: ServiceDefinition, *, reading: bool = False
) -> list[tuple[str, str]]:
    """Every (method, path) of the service that requires the admin token and may take a body
    (`reading`: only those that declare one, which FastAPI reads before the dependencies)."""
    found = []
    for route in [route for router in definition.routers for route in router.routes]:
        if not isinstance(route, APIRoute) or (reading and route.body_field is None):
            continue
        calls = []
        pending = list(route.dependant.dependencies)
        while pending:
            dependency = pending.pop()
            calls.append(dependency.call)
            pending.extend(dependency.dependencies)
        if authenticate not in calls:
            continue
        path = re.sub(r"{[^}]+}", "x", route.path)
        found += [(m, path) for m in sorted(route.methods or ()) if m in ("POST", "PUT", "PATCH")]
    return found


SERVICES = [gateway, delivery, oauth]


@pytest.mark.parametrize("definition", SERVICES, ids=lambda d: d.__module__.split(".")[1])
async def test_no_token_is_refused_before_a_byte_of_the_body_is_read(
    definition: Callable[[], ServiceDefinition], infra: Infra, tmp_path: Path
) -> None:
    app = _app(definition, infra, tmp_path)
    routes = _admin_routes_with_bodies(definition())
    assert routes, "the service has admin routes that take a body"
    for method, path in routes:
        for headers in (
            {"content-type": "application/json", "content-length": str(HUGE)},
            {"content-type": "application/json", "transfer-encoding": "chunked"},
            {"content-length": str(HUGE), "authorization": "Bearer wrong"},
        ):
            body = _Body(HUGE)
            status, answer = await _call(app, method, path, body, headers)
            assert (status, body.calls) == (401, 0), (method, path, headers, answer)
            assert answer["error"]["code"] in ("missing_token", "invalid_token")


@pytest.mark.parametrize("definition", SERVICES, ids=lambda d: d.__module__.split(".")[1])
async def test_a_body_over_the_limit_is_refused_without_reading_past_it(
    definition: Callable[[], ServiceDefinition], infra: Infra, tmp_path: Path
) -> None:
    app = _app(definition, infra, tmp_path)
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
    routes = _admin_routes_with_bodies(definition(), reading=True)
    assert routes
    for method, path in routes:
        # Declared: refused from the header alone.
        declared = _Body(HUGE)
        status, answer = await _call(
            app, method, path, declared, {**auth, "content-length": str(LIMIT + 1)}
        )
        assert (status, declared.calls) == (413, 0), (method, path, answer)
        assert answer["error"]["code"] == "payload_too_large"
        assert f"{LIMIT}-byte limit (HOOKHUB_API_MAX_BODY_BYTES)" in answer["error"]["message"]
        # Chunked, and a Content-Length that lies: counted as it arrives, refused once past.
        for headers in ({"transfer-encoding": "chunked"}, {"content-length": "2"}):
            streamed = _Body(HUGE)
            status, answer = await _call(app, method, path, streamed, {**auth, **headers})
            assert status == 413, (method, path, headers, answer)
            assert answer["error"]["code"] == "payload_too_large"
            assert streamed.sent <= LIMIT + CHUNK, (method, path, streamed.sent)


async def test_a_content_length_that_is_not_a_number_is_a_400(infra: Infra, tmp_path: Path) -> None:
    app = _app(gateway, infra, tmp_path)
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-length": "-5"}
    status, answer = await _call(app, "POST", "/api/incoming-webhooks", _Body(10), auth)
    assert (status, answer["error"]["code"]) == (400, "bad_content_length")


# Over a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
async def served(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningService]:
    settings = make_settings(
        GatewaySettings,
        infra,
        new_namespace(),
        tmp_path_factory.mktemp("limits"),
        api_max_body_bytes=LIMIT,
    )
    async with serve(create_app(gateway(), settings)) as running:
        yield running


async def _raw(
    running: RunningService, head: str, parts: list[bytes]
) -> tuple[int, dict[str, Any], int]:
    """Send `head` and then `parts` one by one, stopping as soon as an answer arrives: the
    answer's status and JSON, and how many parts went out before it."""
    host, port = running.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
        sent = 0
        for part in parts:
            if answer.done():
                break
            writer.write(part)
            await writer.drain()
            sent += 1
            await asyncio.sleep(0.01)
        head_bytes = await asyncio.wait_for(answer, 10)
        status = int(head_bytes.split(b" ", 2)[1])
        length = int(re.search(rb"content-length: (\d+)", head_bytes, re.I)[1])  # type: ignore[index]
        body = await asyncio.wait_for(reader.readexactly(length), 10)
        return status, orjson.loads(body), sent
    finally:
        writer.close()


async def test_over_http_a_client_without_a_token_is_answered_before_it_sends_its_body(
    served: RunningService,
) -> None:
    head = (
        "POST /api/incoming-webhooks HTTP/1.1\nHost: x\nContent-Type: application/json\n"
        f"Content-Length: {HUGE}\n"
    )
    status, answer, sent = await _raw(served, head, [b"x" * CHUNK] * 100)
    # The 401 came while the client had sent a sliver of its 200 MB.
    assert (status, answer["error"]["code"]) == (401, "missing_token")
    assert sent < 100
    # A client that waits for `100 Continue` (curl, for large bodies) sends nothing at all.
    status, answer, sent = await _raw(served, head + "Expect: 100-continue\n", [])
    assert (status, sent) == (401, 0)


async def test_over_http_a_body_over_the_limit_is_a_413_whatever_its_framing(
    served: RunningService,
) -> None:
    auth = f"Authorization: Bearer {ADMIN_TOKEN}\n"
    head = "POST /api/incoming-webhooks HTTP/1.1\nHost: x\nContent-Type: application/json\n"
    status, answer, sent = await _raw(served, head + auth + f"Content-Length: {HUGE}\n", [])
    assert (status, answer["error"]["code"], sent) == (413, "payload_too_large", 0)
    chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
    status, answer, sent = await _raw(
        served, head + auth + "Transfer-Encoding: chunked\n", [chunk] * 100
    )
    assert (status, answer["error"]["code"]) == (413, "payload_too_large")
    assert sent < 100
    # Under the limit, the same route reads and validates the body as before.
    small = await served.client.post(
        "/api/incoming-webhooks",
        content=b"{not json",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert (small.status_code, small.json()["error"]["code"]) == (400, "malformed_json")


async def test_a_route_can_name_a_larger_limit_of_its_own(infra: Infra, tmp_path: Path) -> None:
    """An upload route: `max_body("<setting>")` instead of HOOKHUB_API_MAX_BODY_BYTES."""
    upload = APIRouter(prefix="/api/test-upload", dependencies=[Authenticated])

    @upload.post("", dependencies=[max_body("incoming_max_body_bytes")])
    async def take(body: dict[str, str]) -> dict[str, int]:
        return {"size": len(body["data"])}

    made = dataclasses.replace(gateway(), routers=[upload])
    settings = make_settings(
        GatewaySettings,
        infra,
        new_namespace(),
        tmp_path,
        api_max_body_bytes=LIMIT,
        incoming_max_body_bytes=4 * LIMIT,
    )
    app = create_app(made, settings)
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}

    class _Json(_Body):
        def __init__(self, size: int) -> None:
            self.payload = b'{"data": "' + b"x" * size + b'"}'
            super().__init__(len(self.payload))

        async def receive(self) -> Message:
            self.calls += 1
            chunk = self.payload[self.sent : self.sent + self.chunk]
            self.sent += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": self.sent < self.total}

    status, answer = await _call(app, "POST", "/api/test-upload", _Json(2 * LIMIT), auth)
    assert (status, answer) == (200, {"size": 2 * LIMIT})  # over the API's, under its own
    big = _Json(5 * LIMIT)
    status, answer = await _call(app, "POST", "/api/test-upload", big, auth)
    assert status == 413
    assert f"{4 * LIMIT}-byte limit (HOOKHUB_INCOMING_MAX_BODY_BYTES)" in answer["error"]["message"]
    assert big.sent <= 4 * LIMIT + CHUNK
    status, _ = await _call(app, "POST", "/api/test-upload", _Json(10), {})
    assert status == 401
