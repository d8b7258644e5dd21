"""`hookhub listen` (SPEC §21, docs/listen.md): a laptop's listener, the real CLI code
against a real delivery service, broker and database, forwarding to a real local HTTP
server (the webhook sink). It forwards each delivery signed (verified with
`standardwebhooks`), a local 500 is an attempt like any and is retried, what was published
while it was stopped arrives once it is back; a malformed answer fails its delivery and
not the socket; the edge relays it; a second session replaces the first; a delivery sent
by another replica hops to the one holding the socket; Ctrl-C closes with 1000 and exits
0."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import standardwebhooks.webhooks
import websockets.asyncio.client
import websockets.exceptions
from pymongo import AsyncMongoClient

from services.delivery.app import definition
from services.delivery.destinations.base import Message
from services.delivery.listen import protocol
from services.delivery.listen import relay as relay_module
from services.delivery.listen.client import Options, listen
from services.delivery.listen.relay import HOP_HEADER
from services.delivery.listen.repository import COLLECTION as SESSIONS
from services.delivery.outgoing_webhooks.repository import COLLECTION as ENDPOINTS
from services.edge import create_edge_app, edge_protocol
from shared.domain import api_keys
from shared.domain.platform import create_app
from shared.kernel.crypto import fingerprint
from shared.kernel.embedded import free_port
from shared.kernel.ids import utcnow
from shared.kernel.mongo import Document
from shared.kernel.settings import DeliverySettings
from tests.delivery.test_deliveries import publish
from tests.support import RunningService, admin_headers, serve, until
from tests.webhook_sink import WebhookSink

WORKSPACE = "ws_listen"


@pytest.fixture(scope="module")
async def database(delivery_settings: DeliverySettings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(delivery_settings.mongo_uri)
    yield client[delivery_settings.mongo_db]
    await client.close()


async def new_key(database: Any, scopes: tuple[str, ...] = ("read", "write")) -> str:
    token, doc = api_keys.issue(api_keys.KEY, WORKSPACE, "laptop", list(scopes), None)
    await database[api_keys.COLLECTION].insert_one(doc)
    return token


@pytest.fixture(scope="module")
async def key(database: Any) -> str:
    return await new_key(database)


class Listener:
    """The CLI's code (`hookhub listen`) running in this process, until stopped."""

    def __init__(self, delivery: RunningService, key: str, forward_to: str, **given: Any):
        self.out, self.err = io.StringIO(), io.StringIO()
        self.stop = asyncio.Event()
        self.options = Options(
            origin=delivery.base_url,
            key=key,
            forward_to=forward_to,
            out=self.out,
            err=self.err,
            **given,
        )
        self.task: asyncio.Task[int] | None = None

    async def __aenter__(self) -> Listener:
        task = self.task = asyncio.create_task(listen(self.options, self.stop))
        await until(lambda: "Ready:" in self.out.getvalue() or task.done(), what="ready")
        assert "Ready:" in self.out.getvalue(), (self.out.getvalue(), self.err.getvalue())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert await self.stopped() == 0, self.err.getvalue()

    async def stopped(self) -> int:
        assert self.task is not None
        self.stop.set()
        return await asyncio.wait_for(self.task, 15)

    @property
    def endpoint_id(self) -> str:
        return str(re.findall(r"\b(ep_\w+)", self.out.getvalue())[0])

    @property
    def secret(self) -> str:
        return str(re.findall(r"(whsec_\S+)", self.out.getvalue())[0])


async def delivery_of(delivery: RunningService, endpoint_id: str, event_id: str) -> Any:
    listed = await delivery.client.get(
        "/api/deliveries", params={"webhook_id": endpoint_id, "limit": 100}, headers=admin_headers()
    )
    for row in listed.json()["data"]:
        if row["event_id"] == event_id:
            answer = await delivery.client.get(
                f"/api/deliveries/{row['id']}", headers=admin_headers()
            )
            return answer.json()
    return None


async def ended(delivery: RunningService, endpoint_id: str, event_id: str, attempts: int) -> Any:
    """The delivery of `event_id` once it is completed after `attempts` attempts."""

    async def done() -> Any:
        found = await delivery_of(delivery, endpoint_id, event_id)
        if found is not None and found["status"] == "completed":
            assert len(found["attempt_log"]) == attempts, found["attempt_log"]
            return found
        return None

    return await until(done, what=f"the delivery of {event_id} completed")


async def test_it_forwards_each_delivery_signed_and_its_answer_is_the_attempt(
    delivery: RunningService, sink: tuple[WebhookSink, str], key: str
) -> None:
    fake, base = sink
    fake.on(
        "/forwarded", 200, body=b'{"thanks": true}', headers={"content-type": "application/json"}
    )
    async with Listener(delivery, key, base + "/forwarded", events=["forwarded.*"]) as listener:
        event_id = await publish(delivery, "forwarded.created", WORKSPACE, text="hi")
        [received] = await fake.wait_for("/forwarded", 1)
        found = await ended(delivery, listener.endpoint_id, event_id, attempts=1)
    # The local server got what an HTTP endpoint gets, signed with the endpoint's secret.
    envelope = standardwebhooks.webhooks.Webhook(listener.secret).verify(
        received.body, received.headers
    )
    assert envelope["type"] == "forwarded.created" and envelope["data"] == {"text": "hi"}
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == found["msg_id"]
    [attempt] = found["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert json.loads(attempt["response_body"]) == {"thanks": True}
    assert attempt["response_headers"]["content-type"] == "application/json"
    assert attempt["request"]["method"] == "LISTEN"
    assert attempt["request"]["url"] == f"listen:{base}/forwarded"
    # One line per delivery: the event, its webhook-id, the local status, the time taken.
    [line] = [x for x in listener.out.getvalue().splitlines() if found["msg_id"] in x]
    assert re.search(r"\d\d:\d\d:\d\d  forwarded\.created  msg_\w+  → 200  \d+ ms$", line), line


async def test_a_local_500_is_an_attempt_that_is_retried(
    delivery: RunningService, sink: tuple[WebhookSink, str], key: str
) -> None:
    fake, base = sink
    fake.on("/flaky", 500, 200, body=b"local trouble")
    async with Listener(delivery, key, base + "/flaky", events=["flaky.*"]) as listener:
        patched = await delivery.client.patch(
            f"/api/outgoing-webhooks/{listener.endpoint_id}",
            json={"retry_schedule": [0]},
            headers=admin_headers(),
        )
        assert patched.status_code == 200, patched.text
        event_id = await publish(delivery, "flaky.happened", WORKSPACE)
        found = await ended(delivery, listener.endpoint_id, event_id, attempts=2)
    first, second = found["attempt_log"]
    assert (first["status_code"], first["response_body"], first["error"]) == (
        500,
        "local trouble",
        None,
    )
    assert second["status_code"] == 200
    sent = fake.at("/flaky")
    assert len(sent) == 2 and sent[0].headers["webhook-id"] == sent[1].headers["webhook-id"]
    assert "→ 500" in listener.out.getvalue() and "→ 200" in listener.out.getvalue()


async def away(
    delivery: RunningService, key: str, url: str, given: dict[str, Any], **changes: Any
) -> tuple[str, list[str]]:
    """A listening endpoint made by a listener that then stopped, given an hour between
    attempts (only the wake at reconnection brings its deliveries back sooner) and
    `changes`, and three events of its own published while nobody listens: (its id,
    their event ids)."""
    async with Listener(delivery, key, url, **given) as first:
        endpoint_id = first.endpoint_id
    patched = await delivery.client.patch(
        f"/api/outgoing-webhooks/{endpoint_id}",
        json={"retry_schedule": [3600], **changes},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    event_type = given["events"][0].replace("*", "created")
    return endpoint_id, [await publish(delivery, event_type, WORKSPACE, n=n) for n in range(3)]


async def test_what_was_published_while_it_was_stopped_arrives_once_it_is_back(
    delivery: RunningService, sink: tuple[WebhookSink, str], database: Any, key: str
) -> None:
    fake, base = sink
    given = {"events": ["away.*"], "name": "laptop"}
    endpoint_id, missed = await away(delivery, key, base + "/away", given)

    async def waiting() -> bool:
        for event_id in missed:
            found = await delivery_of(delivery, endpoint_id, event_id)
            if found is None or found["status"] != "delayed" or not found["attempt_log"]:
                return False
            assert found["attempt_log"][0]["error"].startswith(protocol.NO_LISTENER)
        return True

    await until(waiting, what="each missed delivery tried once, waiting for its retry")
    # Not the endpoint's failure: it is not failing (nor will its breaker open, or the
    # endpoint be disabled after days of a laptop away).
    stored = await database[ENDPOINTS].find_one({"_id": endpoint_id})
    assert stored["failing_since"] is None
    assert fake.at("/away") == []
    async with Listener(delivery, key, base + "/away", **given) as second:
        assert second.endpoint_id == endpoint_id  # the same key, events and name: found again
        assert "made before" in second.out.getvalue() and "whsec_" not in second.out.getvalue()
        received = await fake.wait_for("/away", 3)
        for event_id in missed:
            await ended(delivery, endpoint_id, event_id, attempts=2)
    assert sorted(json.loads(r.body)["data"]["n"] for r in received) == [0, 1, 2]


async def test_a_fifo_endpoint_s_parked_key_is_sent_in_order_once_it_is_back(
    delivery: RunningService, sink: tuple[WebhookSink, str], key: str
) -> None:
    """A FIFO listening endpoint's key parks behind its head's retry while nobody listens;
    the reconnection makes the head due (KeyRepository.wake) and its holder loads the key at
    its next sweep: all of it arrives, in order, not an hour later."""
    fake, base = sink
    given = {"events": ["ordered.*"], "name": "fifo laptop"}
    endpoint_id, missed = await away(delivery, key, base + "/ordered", given, ordering="fifo")

    async def parked() -> bool:
        head = await delivery_of(delivery, endpoint_id, missed[0])
        behind = [await delivery_of(delivery, endpoint_id, e) for e in missed[1:]]
        if head is None or head["status"] != "delayed" or None in behind:
            return False
        assert head["attempt_log"][0]["error"].startswith(protocol.NO_LISTENER)
        assert all(not found["attempt_log"] for found in behind)  # never sent before it
        return True

    await until(parked, what="the head tried once, the two behind it queued")
    async with Listener(delivery, key, base + "/ordered", **given):
        received = await fake.wait_for("/ordered", 3)
        await ended(delivery, endpoint_id, missed[0], attempts=2)
        for event_id in missed[1:]:
            await ended(delivery, endpoint_id, event_id, attempts=1)
    assert [json.loads(r.body)["data"]["n"] for r in received] == [0, 1, 2]


async def test_a_malformed_answer_fails_its_delivery_and_the_socket_stays(
    delivery: RunningService, key: str
) -> None:
    made = await delivery.client.post(
        "/api/listen/endpoints",
        json={"events": ["raw.*"], "name": "raw socket"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert made.status_code == 201, made.text
    endpoint_id = made.json()["id"]
    async with socket_of(delivery, key, endpoint_id) as socket:
        assert json.loads(await socket.recv())["type"] == "ready"
        first = await publish(delivery, "raw.one", WORKSPACE)
        frame = await next_frame(socket, "raw.one")
        await socket.send("not JSON at all")  # names no delivery: dropped
        await socket.send(json.dumps({"type": "answer", "id": frame["id"], "status": "teapot"}))
        found = await until(
            lambda: _attempted(delivery, endpoint_id, first), what="the malformed answer logged"
        )
        assert "status is not an HTTP status" in found["attempt_log"][0]["error"]
        second = await publish(delivery, "raw.two", WORKSPACE)
        frame = await next_frame(socket, "raw.two")
        await socket.send(protocol.answer(frame["id"], 204))
        await ended(delivery, endpoint_id, second, attempts=1)


async def next_frame(socket: Any, event_type: str) -> Any:
    """The next delivery frame of `event_type`; any other (a retry) answered 200."""
    while True:
        frame = json.loads(await socket.recv())
        if frame["event_type"] == event_type:
            return frame
        await socket.send(protocol.answer(frame["id"], 200))


async def _attempted(delivery: RunningService, endpoint_id: str, event_id: str) -> Any:
    found = await delivery_of(delivery, endpoint_id, event_id)
    return found if found is not None and found["attempt_log"] else None


def socket_of(
    delivery: RunningService, key: str, endpoint_id: str
) -> websockets.asyncio.client.connect:
    url = delivery.base_url.replace("http", "ws", 1) + f"/api/listen?endpoint_id={endpoint_id}"
    return websockets.asyncio.client.connect(
        url, additional_headers={"Authorization": f"Bearer {key}"}, open_timeout=10
    )


async def test_it_listens_through_the_single_origin(
    delivery: RunningService, sink: tuple[WebhookSink, str], key: str
) -> None:
    """`make run`'s way: through the edge, which relays the socket both ways, and a refused
    handshake's answer as the service gave it."""
    fake, base = sink
    app = create_edge_app({"delivery": delivery.base_url})
    async with serve(app, probe="/healthz", http=edge_protocol()) as edge:
        async with Listener(edge, key, base + "/edged", events=["edged.*"]) as listener:
            event_id = await publish(delivery, "edged.done", WORKSPACE)
            await fake.wait_for("/edged", 1)
            await ended(delivery, listener.endpoint_id, event_id, attempts=1)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with socket_of(edge, "hhk_unknown", listener.endpoint_id):
                pass
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["code"] == "invalid_token"


async def test_a_second_session_replaces_the_first_and_refusals_say_why(
    delivery: RunningService, database: Any, key: str
) -> None:
    made = await delivery.client.post(
        "/api/listen/endpoints",
        json={"events": ["twice.*"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    endpoint_id = made.json()["id"]
    async with socket_of(delivery, key, endpoint_id) as first:
        assert json.loads(await first.recv())["type"] == "ready"
        async with socket_of(delivery, key, endpoint_id) as second:
            assert json.loads(await second.recv())["type"] == "ready"
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await first.recv()
            assert first.close_code == protocol.REPLACED
    # The handshake's refusals, as the API answers them: no key, a read key, no such
    # endpoint, an endpoint that does not listen; and a GET without the upgrade.
    reader = await new_key(database, ("read",))
    other = await delivery.client.post(
        "/api/outgoing-webhooks",
        json={"workspace_id": WORKSPACE, "url": "http://127.0.0.1:9/x", "events": ["*"]},
        headers=admin_headers(),
    )
    for token, endpoint, status, code in [
        ("hhk_unknown", endpoint_id, 401, "invalid_token"),
        (reader, endpoint_id, 403, "read_only"),
        (key, "ep_nothing", 404, "not_found"),
        (key, other.json()["id"], 409, "not_listening"),
    ]:
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with socket_of(delivery, token, endpoint):
                pass
        assert refused.value.response.status_code == status
        assert json.loads(refused.value.response.body)["error"]["code"] == code
    plain = await delivery.client.get(
        "/api/listen",
        params={"endpoint_id": endpoint_id},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert plain.status_code == 426 and plain.json()["error"]["code"] == "upgrade_required"


async def test_a_revoked_key_s_listener_is_disconnected(
    delivery: RunningService, database: Any, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC §13: a revoked key is refused everywhere within 5 s, its open socket too (the
    recheck's 5 s made shorter here)."""
    monkeypatch.setattr(relay_module, "RECHECK_CALLER_SECONDS", 0.2)
    made = await delivery.client.post(
        "/api/listen/endpoints",
        json={"events": ["revoked.*"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    laptop = await new_key(database)
    async with socket_of(delivery, laptop, made.json()["id"]) as socket:
        assert json.loads(await socket.recv())["type"] == "ready"
        now = utcnow()
        revoked = await database[api_keys.COLLECTION].update_one(
            {"key_hash": fingerprint(laptop)},
            {"$set": {"deleted_at": now, "updated_at": now}},
        )
        assert revoked.modified_count == 1
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 15)
        assert socket.close_code == protocol.REFUSED


async def test_ctrl_c_closes_the_socket_normally_and_exits_0(
    delivery: RunningService, sink: tuple[WebhookSink, str], database: Any, key: str
) -> None:
    """The command itself, in a process of its own, as a developer runs it."""
    _, base = sink
    made = await delivery.client.post(
        "/api/listen/endpoints",
        json={"events": ["quit.*"]},
        headers={"Authorization": f"Bearer {key}"},
    )
    endpoint_id = made.json()["id"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "listen",
        "--endpoint",
        endpoint_id,
        "--forward-to",
        base + "/quit",
        "--url",
        delivery.base_url,
        env={**os.environ, "HOOKHUB_API_KEY": key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), 30)
    assert ready.startswith(b"Ready: " + endpoint_id.encode()), ready
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and out.strip() == b"Stopped.", (out, err)
    session = await until(
        lambda: database[SESSIONS].find_one({"_id": endpoint_id, "connected": False}),
        what="the session ended",
    )
    assert session["ended_reason"] == "the socket closed (1000)"


async def test_a_delivery_sent_by_another_replica_hops_to_the_socket(
    delivery: RunningService,
    delivery_settings: DeliverySettings,
    sink: tuple[WebhookSink, str],
    key: str,
) -> None:
    """The listener's socket on replica B; replica A (the module's) sends a delivery: it
    goes through B, with the token every replica derives, and comes back with the answer."""
    fake, base = sink
    port = free_port()
    settings = delivery_settings.model_copy(update={"internal_url": f"http://127.0.0.1:{port}"})
    async with serve(create_app(definition(), settings), port=port) as other:
        async with Listener(other, key, base + "/hopped", events=["hop.*"]) as listener:
            relay = delivery.app.state.listeners  # type: ignore[attr-defined]
            message = Message(
                body=b'{"type": "hop.made", "data": {}}',
                headers={"webhook-id": "msg_hop", "content-type": "application/json"},
                event_type="hop.made",
                event_id="evt_hop",
                msg_id="msg_hop",
                workspace_id=WORKSPACE,
                key=None,
                fifo=False,
                endpoint_id=listener.endpoint_id,
                timeout_seconds=10,
            )
            answer = await relay.deliver(message)
            assert (answer.status_code, answer.error, answer.reached) == (200, None, True)
            [received] = fake.at("/hopped")
            assert received.headers["webhook-id"] == "msg_hop"
            forged = await delivery.client.post(
                f"{other.base_url}/internal/listen/{listener.endpoint_id}",
                json={"session_id": "x", "message": {}},
                headers={HOP_HEADER: "not the token"},
            )
            assert forged.status_code == 403
        gone = await until(
            lambda: _unreached(relay, message), what="the other replicas told it ended"
        )
        assert gone.error == protocol.NO_LISTENER


async def _unreached(relay: Any, message: Message) -> Any:
    answer = await relay.deliver(message)
    return answer if not answer.reached else None
