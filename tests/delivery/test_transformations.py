"""Endpoints' transformations (SPEC §17), end to end: the webhook rewritten (payload, header,
url, method) and signed as sent, cancelled, or the attempt failed with `transformation_error`
(a throw, an endless loop, unbounded allocation, a URL the egress guard refuses), retried on
schedule with the corrected code; the check at save and the test route."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from services.delivery.deliveries.dispatcher import HIDDEN_HEADER
from shared.kernel.signing import verify
from tests.delivery.test_deliveries import endpoint, publish
from tests.support import RunningService, admin_headers, until
from tests.webhook_sink import WebhookSink

Sink = tuple[WebhookSink, str]

REWRITE = """
function handler(webhook) {
  webhook.payload.data.seen_by = "transformation";
  webhook.payload.data.tenant = webhook.headers["X-Tenant"];
  webhook.headers["X-Extra"] = webhook.event_type;
  webhook.url = webhook.url + "/moved";
  webhook.method = "PUT";
  return webhook;
}
"""
# Bad for the events whose data says so, fine for the others.
BAD = """
function handler(webhook) {
  const how = webhook.payload.data.how;
  if (how === "throw") throw new Error("no " + webhook.event_type);
  if (how === "loop") while (true) {}
  if (how === "hog") { const a = []; while (true) a.push(new Array(1e6).fill(1)); }
  if (how === "private") webhook.url = "http://10.0.0.1/steal";
  if (how === "metadata") webhook.url = "http://169.254.169.254/latest/meta-data/";
  if (how === "signature") webhook.headers["Webhook-Signature"] = "v1,forged";
  if (how === "trace") webhook.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  if (how === "method") webhook.method = "DELETE";
  return webhook;
}
"""


def hook_path() -> str:
    return "/tx/" + uuid.uuid4().hex[:8]


def workspace() -> str:
    return "ws_tx_" + uuid.uuid4().hex[:6]


async def delivery_of(delivery: RunningService, webhook_id: str, **params: str) -> Any:
    async def found() -> Any:
        listed = (
            await delivery.client.get(
                "/api/deliveries",
                params={"webhook_id": webhook_id, **params},
                headers=admin_headers(),
            )
        ).json()["data"]
        return listed[0] if listed else None

    return await until(found, what=f"a delivery of {webhook_id} {params}")


async def attempts_of(delivery: RunningService, delivery_id: str, count: int) -> list[Any]:
    async def logged() -> Any:
        detail = (
            await delivery.client.get(f"/api/deliveries/{delivery_id}", headers=admin_headers())
        ).json()
        return detail["attempt_log"] if len(detail["attempt_log"]) >= count else None

    found: list[Any] = await until(logged, what=f"{count} attempts of {delivery_id}")
    return found


async def test_a_webhook_is_rewritten_and_signed_as_sent(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    ws, p = workspace(), hook_path()
    hook = await endpoint(
        delivery,
        sink,
        p,
        workspace_id=ws,
        headers={"X-Tenant": "acme"},
        transformation={"code": REWRITE, "enabled": True},
    )
    assert hook["transformation"] == {"code": REWRITE, "enabled": True}
    await publish(delivery, "message.created", workspace=ws, text="hi")
    [received] = await fake.wait_for(p + "/moved", 1)
    assert received.method == "PUT"
    body = orjson.loads(received.body)
    assert body["type"] == "message.created"
    assert body["data"] == {"text": "hi", "seen_by": "transformation", "tenant": "acme"}
    assert received.headers["x-extra"] == "message.created"
    assert received.headers["x-tenant"] == "acme"
    # Signed over the body as transformed: a receiver verifies it as any other.
    assert verify(hook["secret"], received.headers, received.body)
    assert not fake.at(p)
    # The attempt's log keeps what was sent, the signature too; the value of the endpoint's
    # own header (write-only) is not kept.
    rewritten = await delivery_of(delivery, hook["id"])
    [attempt] = await attempts_of(delivery, rewritten["id"], 1)
    request = attempt["request"]
    assert (request["method"], request["url"]) == ("PUT", hook["url"] + "/moved")
    assert request["body"] == received.body.decode()
    assert request["headers"].pop("x-tenant") == HIDDEN_HEADER
    assert request["headers"] == {k: received.headers[k] for k in request["headers"]}
    assert {"webhook-signature", "x-extra", "content-type"} <= set(request["headers"])

    # Disabled, it is kept and not run.
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{hook['id']}",
        json={"transformation": {"code": REWRITE, "enabled": False}},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    await publish(delivery, "message.created", workspace=ws, text="plain")
    [plain] = await fake.wait_for(p, 1)
    assert plain.method == "POST" and orjson.loads(plain.body)["data"] == {"text": "plain"}

    # Untransformed: the body sent is the delivery's payload, not kept a second time.
    async def other() -> Any:
        listed = await delivery.client.get(
            "/api/deliveries", params={"webhook_id": hook["id"]}, headers=admin_headers()
        )
        return [d for d in listed.json()["data"] if d["id"] != rewritten["id"]]

    [untouched] = await until(other, what="the untransformed delivery")
    [kept] = await attempts_of(delivery, untouched["id"], 1)
    assert kept["request"]["method"] == "POST" and kept["request"]["body"] is None


async def test_a_cancelled_delivery_ends_unsent(delivery: RunningService, sink: Sink) -> None:
    fake, _ = sink
    ws, p = workspace(), hook_path()
    code = "function handler(w) {\n  return w.payload.data.quiet ? {cancel: true} : w;\n}"
    hook = await endpoint(
        delivery, sink, p, workspace_id=ws, transformation={"code": code, "enabled": True}
    )
    await publish(delivery, "message.created", workspace=ws, quiet=True)
    cancelled = await delivery_of(delivery, hook["id"], status="cancelled")
    assert cancelled["attempts"] == 0 and cancelled["next_attempt_at"] is None
    await publish(delivery, "message.created", workspace=ws, quiet=False)
    [sent] = await fake.wait_for(p, 1)
    assert orjson.loads(sent.body)["data"] == {"quiet": False}
    assert len(fake.at(p)) == 1  # the cancelled one never went

    async def counts() -> Any:
        stats = (
            await delivery.client.get(
                "/api/webhooks/stats", params={"webhook_id": hook["id"]}, headers=admin_headers()
            )
        ).json()
        return (stats["cancelled"], stats["completed"]) == (1, 1)

    await until(counts, what="one cancelled and one completed in the stats")


async def test_a_failing_transformation_fails_the_attempt_and_is_retried(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    ws, p = workspace(), hook_path()
    hook = await endpoint(
        delivery,
        sink,
        p,
        workspace_id=ws,
        retry_schedule=[1, 1, 1],
        transformation={"code": BAD, "enabled": True},
    )
    hows = ["throw", "loop", "hog", "private", "metadata", "signature", "trace", "method"]
    for how in hows:
        await publish(delivery, f"bad.{how}", workspace=ws, how=how)
    errors: dict[str, str] = {}
    for how in hows:
        failed = await delivery_of(delivery, hook["id"], event_type=f"bad.{how}")
        # The first of them: on a busy machine the next (a second later) may be in too.
        first, *_ = await attempts_of(delivery, failed["id"], 1)
        assert first["status_code"] is None and first["next_attempt_at"] is not None
        assert first["request"] is None  # nothing was sent
        errors[how] = first["error"]
    assert all(error.startswith("transformation_error: ") for error in errors.values()), errors
    assert "no bad.throw" in errors["throw"] and "(line 4," in errors["throw"]
    assert "ran over its 50 ms" in errors["loop"]
    assert "32 MB" in errors["hog"] or "ran over" in errors["hog"]
    assert "10.0.0.1" in errors["private"] and "refused url" in errors["private"]
    assert "refused url" in errors["metadata"]
    assert "webhook-signature" in errors["signature"].lower()
    assert "traceparent" in errors["trace"]  # hookhub's, sent only to those that ask
    assert "method" in errors["method"]
    assert not fake.at(p)  # nothing went out; the endpoint's circuit is untouched
    hook_now = (
        await delivery.client.get(f"/api/outgoing-webhooks/{hook['id']}", headers=admin_headers())
    ).json()
    assert hook_now["circuit"]["state"] == "closed" and hook_now["enabled"]

    # Corrected, the next attempt of each uses the new code.
    fixed = "function handler(w) {\n  w.payload.data.fixed = true;\n  return w;\n}"
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{hook['id']}",
        json={"transformation": {"code": fixed, "enabled": True}},
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    sent = await fake.wait_for(p, len(hows), timeout=30)
    assert sorted(orjson.loads(r.body)["data"]["how"] for r in sent) == sorted(hows)
    assert all(orjson.loads(r.body)["data"]["fixed"] is True for r in sent)


async def test_the_next_deliveries_are_not_held_by_a_bad_one(
    delivery: RunningService, sink: Sink
) -> None:
    fake, _ = sink
    ws, p = workspace(), hook_path()
    # The looping one is next tried in a minute: the others go meanwhile, in its lane.
    hook = await endpoint(
        delivery,
        sink,
        p,
        workspace_id=ws,
        retry_schedule=[60],
        max_concurrency=1,
        transformation={"code": BAD, "enabled": True},
    )
    await publish(delivery, "first.bad", workspace=ws, how="loop")
    for n in range(5):
        await publish(delivery, "then.good", workspace=ws, n=n)
    sent = await fake.wait_for(p, 5)
    assert sorted(orjson.loads(r.body)["data"]["n"] for r in sent) == list(range(5))
    bad = await delivery_of(delivery, hook["id"], event_type="first.bad")
    assert bad["status"] == "delayed" and bad["last_error"].startswith("transformation_error")


async def test_code_is_checked_at_save(delivery: RunningService, sink: Sink) -> None:
    broken = "function handler(w) {\n  return w +;\n}"
    body = {
        "workspace_id": "ws_tx",
        "url": sink[1] + hook_path(),
        "events": ["*"],
        "transformation": {"code": broken},
    }
    answer = await delivery.client.post(
        "/api/outgoing-webhooks", json=body, headers=admin_headers()
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["line"], error["column"]) == ("transformation_error", 2, 13)
    answer = await delivery.client.post(
        "/api/outgoing-webhooks",
        json={**body, "transformation": {"code": "var x = 1;"}},
        headers=admin_headers(),
    )
    assert answer.status_code == 422 and "handler" in answer.json()["error"]["message"]
    hook = await endpoint(delivery, sink, hook_path(), workspace_id="ws_tx")
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{hook['id']}",
        json={"transformation": {"code": broken}},
        headers=admin_headers(),
    )
    assert answer.status_code == 422 and answer.json()["error"]["line"] == 2
    answer = await delivery.client.patch(
        f"/api/outgoing-webhooks/{hook['id']}",
        json={"transformation": None},
        headers=admin_headers(),
    )
    assert answer.status_code == 200 and answer.json()["transformation"] is None


async def test_the_test_route(delivery: RunningService) -> None:
    async def tried(**body: Any) -> Any:
        return await delivery.client.post(
            "/api/transformations/test", json=body, headers=admin_headers()
        )

    payload = {"type": "message.created", "data": {"text": "hi"}}
    answer = await tried(code=REWRITE.replace('["X-Tenant"]', "['x']"), payload=payload)
    assert answer.status_code == 200, answer.text
    webhook = answer.json()["webhook"]
    assert webhook["method"] == "PUT" and webhook["url"].endswith("/moved")
    assert webhook["payload"]["data"]["seen_by"] == "transformation"
    assert webhook["headers"] == {"X-Extra": "webhook.test"}

    cancel = await tried(code="function handler() { return {cancel: true}; }", payload=payload)
    assert cancel.json() == {"cancel": True, "webhook": None}

    thrown = await tried(code=BAD, payload={"data": {"how": "throw"}}, event_type="x.y")
    assert thrown.status_code == 422
    error = thrown.json()["error"]
    assert (error["code"], error.get("line")) == ("transformation_error", 4), error
    assert "no x.y" in error["message"]

    unauthenticated = await delivery.client.post(
        "/api/transformations/test", json={"code": REWRITE, "payload": payload}
    )
    assert unauthenticated.status_code == 401
