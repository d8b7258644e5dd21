"""Notifications end to end (SPEC §12): signed GitHub and Jira webhooks through the gateway,
the sync service's notifications consumer, messages on `hookhub.chat.inbound`; threads per
item with the root edited, filters counted, bad payloads and late subscriptions, a restart
and two replicas."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import hmac
import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from markdown_it import MarkdownIt
from opentelemetry.trace import SpanKind

from services.sandbox.alertmanager import FakeAlertmanager
from services.sandbox.pagerduty import FakePagerDuty
from services.sync.commands.worker import answer_id
from shared.domain.message_map import ephemeral_id
from shared.kernel import tracing
from shared.kernel.envelopes import PROVIDER_HEADER, ProviderEvent, Topic
from shared.kernel.http.tls import tls
from shared.kernel.ids import utcnow
from tests.gateway import signing
from tests.otlp_receiver import OtlpReceiver, Span
from tests.spans import Caller, hex_ids, ids, recorded, traceparent_of
from tests.support import ServiceProcess, admin_headers, github_corpus, served
from tests.sync.conftest import World, connect, start_sync, until

SECRET = "notify-secret"
JIRA_PAYLOADS = Path(__file__).parents[1] / "providers" / "jira_payloads"
PAGERDUTY = Path(__file__).parents[2] / "shared" / "providers" / "pagerduty" / "samples"


def corpus(relative: str) -> dict[str, Any]:
    return dict(json.loads((github_corpus()[0].parents[1] / relative).read_text()))


def pr_story() -> list[tuple[str, dict[str, Any]]]:
    """Codertocat/Hello-World#2 opened, reviewed, commented on, labeled, merged."""
    opened = corpus("pull_request/opened.payload.json")
    review = corpus("pull_request_review/submitted.payload.json")
    comment = corpus("issue_comment/created.payload.json")
    comment["issue"]["number"] = 2
    comment["issue"]["pull_request"] = {"html_url": opened["pull_request"]["html_url"]}
    labeled = corpus("pull_request/labeled.payload.json")
    merged = corpus("pull_request/closed.payload.json")
    merged["pull_request"]["merged"] = True
    merged["pull_request"]["merged_at"] = "2019-05-15T15:20:40Z"
    return [
        ("pull_request", opened),
        ("pull_request_review", review),
        ("issue_comment", comment),
        ("pull_request", labeled),
        ("pull_request", merged),
    ]


def retitled(payloads: list[tuple[str, dict[str, Any]]], number: int, repo: str) -> list[Any]:
    """The same story about another pull request (`repo`#`number`)."""
    out = []
    for event, payload in copy.deepcopy(payloads):
        key = "pull_request" if "pull_request" in payload and event != "issue_comment" else "issue"
        payload[key]["number"] = number
        payload["repository"]["full_name"] = repo
        out.append((event, payload))
    return out


async def send_github(
    world: World,
    integration_id: str,
    event: str,
    payload: Any,
    delivery: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    body = json.dumps(payload).encode()
    delivery = delivery or str(uuid.uuid4())
    signed = signing.github(SECRET, event, body, delivery)
    answer = await world.gateway.client.post(
        f"/api/webhooks/github/{integration_id}",
        content=body,
        headers={**signed.headers, **(headers or {})},
    )
    assert answer.status_code == 200, answer.text
    return delivery


async def publish_github(
    world: World,
    integration_id: str,
    payload: Any,
    delivery: str,
    received_at: Any,
    headers: list[tuple[str, bytes]] | None = None,
) -> ProviderEvent:
    """A GitHub event on `hookhub.provider.events` as if the gateway had taken it then."""
    event = ProviderEvent(
        id=f"pev_{uuid.uuid4().hex}",
        provider="github",
        integration_id=integration_id,
        workspace_id=world.chat.workspace_id,
        event_type="pull_request",
        delivery_id=delivery,
        received_at=received_at,
        payload=payload,
    )
    await world.chat.producer.send_and_wait(
        world.sync_settings.topic(Topic.PROVIDER_EVENTS),
        event.to_kafka(),
        key=event.partition_key(),
        headers=headers,
    )
    return event


async def subscribe(world: World, integration_id: str, **body: Any) -> dict[str, Any]:
    answer = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={"channel_id": world.new_id("ch_"), **body},
        headers=admin_headers(),
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def read_subscription(world: World, sub: dict[str, Any]) -> dict[str, Any]:
    answer = await world.sync.get(
        f"/api/integrations/{sub['integration_id']}/subscriptions/{sub['id']}",
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def subscription_when(world: World, sub: dict[str, Any], check: Any, what: str) -> Any:
    """The subscription as read once `check` holds of it (the tests write counts every 0.2 s)."""

    async def read() -> dict[str, Any] | None:
        got = await read_subscription(world, sub)
        return got if check(got) else None

    return await until(read, what=what)


async def in_channel(world: World, channel: str, count: int) -> list[dict[str, Any]]:
    """The first `count` inbound envelopes of a channel (received and edited), in order."""
    return await world.chat.received(lambda v: v["channel_id"] == channel, count=count)


def story_checks(envelopes: list[dict[str, Any]]) -> dict[str, Any]:
    """One root, four notifications in its thread, the root edited after each of them to
    the pull request as it is then (merged at the end)."""
    received = [v for v in envelopes if v["type"] == "message.received"]
    edits = [v for v in envelopes if v["type"] == "message.edited"]
    assert len({v["id"] for v in received}) == 5, [v["text"][:40] for v in received]
    root = received[0]
    assert "thread_id" not in root and "opened" in root["text"]
    assert root["card"]["state"] == "open" and root["card"]["title"].startswith("#2 ")
    assert [v.get("thread_id") for v in received[1:]] == [root["id"]] * 4
    texts = [v["text"] for v in received[1:]]
    assert "approved" in texts[0] or "reviewed" in texts[0]
    assert "commented on" in texts[1]
    assert "added the label" in texts[2]
    assert "merged" in texts[3]
    assert {v["message_id"] for v in edits} == {root["id"]}
    last = max(edits, key=lambda v: envelopes.index(v))
    assert last["card"]["state"] == "merged" and "merged" in last["text"]
    assert root["source"]["provider"] == "github"
    assert root["author"]["name"] == "Codertocat"
    return root


async def test_a_pull_requests_story_is_one_root_with_four_in_its_thread(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(
        world, integration_id, events=["pull_request.*", "pull_request_review.*", "issue_comment.*"]
    )
    for event, payload in pr_story():
        await send_github(world, integration_id, event, payload)
    envelopes = await in_channel(world, sub["channel_id"], count=9)
    story_checks(envelopes)
    # The counts reach the subscription (written every 0.2 s in the tests).
    await subscription_when(
        world,
        sub,
        lambda s: s["notified_count"] == 5 and s["last_notified_at"] is not None,
        "the counts",
    )


async def test_redelivered_webhooks_are_the_same_envelopes(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id)
    payload = corpus("pull_request/opened.payload.json")
    delivery = await send_github(world, integration_id, "pull_request", payload)
    first = await in_channel(world, sub["channel_id"], count=1)
    await send_github(world, integration_id, "pull_request", payload, delivery=delivery)
    later = corpus("pull_request/reopened.payload.json")
    await send_github(world, integration_id, "pull_request", later)
    envelopes = await in_channel(world, sub["channel_id"], count=2)
    ids = [v["id"] for v in envelopes if v["type"] == "message.received"]
    assert ids[0] == first[0]["id"]
    # The redelivery, if the gateway passed it on at all, is the same envelope again.
    assert len(set(ids)) == 2, ids


async def test_filtered_events_are_counted_and_drafts_wait_for_ready(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(
        world,
        integration_id,
        events=["pull_request.*"],
        branches=["main"],
        authors={"bots": False},
    )
    other = await subscribe(world, integration_id, events=["pull_request.opened"])
    draft = corpus("pull_request/opened.payload.json")
    draft["pull_request"]["draft"] = True
    draft["pull_request"]["base"]["ref"] = "main"
    await send_github(world, integration_id, "pull_request", draft)  # quiet: a draft
    on_master = corpus("pull_request/opened.payload.json")  # base master: not main
    await send_github(world, integration_id, "pull_request", on_master)
    by_bot = corpus("pull_request/opened.payload.json")
    by_bot["pull_request"]["base"]["ref"] = "main"
    by_bot["sender"]["login"], by_bot["sender"]["type"] = "dependabot[bot]", "Bot"
    await send_github(world, integration_id, "pull_request", by_bot)
    ready = corpus("pull_request/ready_for_review.payload.json")
    ready["pull_request"]["base"]["ref"] = "main"
    await send_github(world, integration_id, "pull_request", ready)
    [message] = await in_channel(world, sub["channel_id"], count=1)
    assert "ready for review" in message["text"]
    # The other subscription took both openings that were not drafts, on its own.
    theirs = await world.chat.received(
        lambda v: v["channel_id"] == other["channel_id"] and v["type"] == "message.received",
        count=2,
    )
    assert [v["text"].split(" ")[:2] for v in theirs] == [
        ["Codertocat", "opened"],
        ["dependabot\\[bot\\]", "opened"],
    ]
    await subscription_when(
        world,
        sub,
        lambda s: (s["filtered_count"], s["notified_count"]) == (3, 1),
        "the filtered count",
    )
    # And by reason, in the metrics (the module's world shares them: at least these three).
    metrics = (await world.sync.get("/metrics")).text
    for reason in ("draft", "branch", "bot"):
        line = f'hookhub_notifications_filtered_total{{provider="github",reason="{reason}"}}'
        assert line in metrics, reason
        assert float(metrics.split(line, 1)[1].split()[0]) >= 1


async def test_a_malformed_payload_is_recorded_and_stops_nothing(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id, events=["pull_request.*", "issues.*"])
    await send_github(world, integration_id, "pull_request", {"action": "opened", "number": "x"})
    await send_github(
        world, integration_id, "issues", {"action": "opened", "issue": [], "repository": 7}
    )
    await send_github(
        world, integration_id, "pull_request", corpus("pull_request/reopened.payload.json")
    )
    [message] = await in_channel(world, sub["channel_id"], count=1)
    assert "reopened" in message["text"]
    got = await subscription_when(
        world, sub, lambda s: s["last_error"] is not None, "the last error"
    )
    assert got["last_error"]["code"] == "unrenderable"
    assert "delivery" in got["last_error"]["message"]


async def test_hostile_titles_stay_data(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id)
    payload = corpus("pull_request/opened.payload.json")
    payload["pull_request"]["title"] = (
        "<script>x</script> [x](javascript:alert(1)) `` ` @everyone <!channel> <@U024BE7LH> "
        "\u202eevil\u202c"
    )
    payload["pull_request"]["body"] = "@channel ```\n</code> [y](javascript:z)"
    payload["pull_request"]["labels"][0]["name"] = "<!here> \u202ebug"
    payload["sender"]["login"] = "\u202eCodertocat"
    await send_github(world, integration_id, "pull_request", payload)
    [message] = await in_channel(world, sub["channel_id"], count=1)
    text = message["text"]
    html = MarkdownIt("commonmark").render(text)
    assert "<script" not in html and "javascript:" not in html.split("href=")[-1].split(">")[0]
    assert 'href="javascript' not in html and "<code>" not in html.split("<blockquote>")[-1]
    assert "@everyone" not in text and "@channel" not in text
    # Cards are plain text, defused as the text is: nothing a chat or a browser would read
    # as a mention, a tag or a direction change.
    card = message["card"]
    shown = [card["title"], card["state"], *(f["value"] for f in card["fields"])]
    for value in [*shown, message["author"]["name"], text]:
        for live in ("<script", "@everyone", "<!channel>", "<@U024BE7LH>", "<!here>", "\u202e"):
            assert live not in value, (live, value)
    assert card["title"].replace("\u200d", "").startswith("#2 <script>x</script>")
    assert message["author"]["name"] == "Codertocat"


async def test_a_subscription_takes_only_events_that_arrived_after_it(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id)
    payload = corpus("pull_request/opened.payload.json")

    await publish_github(world, integration_id, payload, "before", utcnow() - timedelta(minutes=5))
    await publish_github(world, integration_id, payload, "after", utcnow())
    [message] = await in_channel(world, sub["channel_id"], count=1)
    assert message["source"]["external_message_id"] == "after"
    await asyncio.sleep(0.5)  # nothing else comes for that channel
    await world.chat.inbound.poll()
    assert [
        v["source"]["external_message_id"]
        for v in world.chat.inbound.values()
        if v["channel_id"] == sub["channel_id"]
    ] == ["after"]


def jira_sign(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-hub-signature": f"sha256={digest}",
        "x-atlassian-webhook-identifier": str(uuid.uuid4()),
    }


async def send_jira(world: World, integration_id: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    answer = await world.gateway.client.post(
        f"/api/webhooks/jira/{integration_id}", content=body, headers=jira_sign(body)
    )
    assert answer.status_code == 200, answer.text


async def test_jira_issue_created_then_commented_is_one_thread(world: World) -> None:
    """Jira Cloud tells of a comment twice (`comment_created`, and the `jira:issue_updated`
    beside it with the same comment): one message. A Server-style update that tells of
    another comment is that comment's message, in the issue's thread too."""
    integration_id = await connect(world, "jira", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id, events=["issue.*", "comment.*"])
    created = json.loads((JIRA_PAYLOADS / "issue_created.json").read_text())
    comment = json.loads((JIRA_PAYLOADS / "comment_created.json").read_text())
    beside = {
        **created,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_commented",
        "comment": comment["comment"],
    }
    later = copy.deepcopy(beside)
    later["comment"].update(id="43736", body="A second comment, from Jira Server.")
    for payload in (created, comment, beside, later):
        await send_jira(world, integration_id, payload)
    # In order (one integration's events are), so the third is the later comment's.
    root, first, second = await world.chat.received(
        lambda v: v["channel_id"] == sub["channel_id"] and v["type"] == "message.received",
        count=3,
    )
    assert root["source"]["provider"] == "jira" and "thread_id" not in root
    assert "commented on" in first["text"] and "Reproduced on staging" in first["text"]
    assert "A second comment, from Jira Server." in second["text"]
    assert first["thread_id"] == root["id"] and second["thread_id"] == root["id"]
    # The second delivery of the first comment was known for what it is (before the later
    # comment's message, which came after it).
    metrics = (await world.sync.get("/metrics")).text
    line = (
        'hookhub_notifications_total{event="comment.created",outcome="duplicate",provider="jira"}'
    )
    assert line in metrics, [m for m in metrics.splitlines() if "duplicate" in m]


async def test_an_update_the_subscription_leaves_out_still_edits_its_items_card(
    world: World,
) -> None:
    """SPEC §20: a card follows its item. Jira's defaults post a status change, not a new
    assignee (what "Assign to me" makes): that update edits the root to the issue as it is
    now and posts nothing in the thread (nor edits it again to show the same card); the
    status change after it is the first reply."""
    integration_id = await connect(world, "jira", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id)  # Jira's default events
    created = json.loads((JIRA_PAYLOADS / "issue_created.json").read_text())
    moved = json.loads((JIRA_PAYLOADS / "issue_updated_status.json").read_text())
    # SP-10 assigned before it moves: the status change's own delivery with only its
    # assignee's changelog item, the issue still in its first status.
    assigned = copy.deepcopy(moved)
    assigned["issue"]["fields"]["status"] = created["issue"]["fields"]["status"]
    items = moved["changelog"]["items"]
    assigned["changelog"]["items"] = [i for i in items if i["field"] == "assignee"]
    # Told again (another delivery, nothing new): the card shown already, no edit.
    again = copy.deepcopy(assigned)
    again["timestamp"] += 1
    for payload in (created, assigned, again, moved):
        await send_jira(world, integration_id, payload)
    root, card, reply, edit = await in_channel(world, sub["channel_id"], 4)
    assert root["type"] == "message.received" and "thread_id" not in root
    assert card["type"] == "message.edited" and card["message_id"] == root["id"]
    fields = {f["name"]: f["value"] for f in card["card"]["fields"]}
    assert fields["Assignee"] == "Ada Lovelace" and card["card"]["state"] == "To Do"
    assert [a["id"] for a in card["card"]["actions"]] == ["assign:me"]
    assert reply["type"] == "message.received" and reply["thread_id"] == root["id"]
    assert "moved" in reply["text"] and "In Progress" in reply["text"]
    assert edit["type"] == "message.edited" and edit["card"]["state"] == "In Progress"
    # Still counted as left out.
    await subscription_when(world, sub, lambda s: s["filtered_count"] == 2, "the filtered count")


# -- a restart, and two replicas ----------------------------------------------------------


# When each stage of the one incident happened: the triggered capture's own time, then the
# resolution 47 min later (the captures are of three incidents, the resolved one's 18 min
# before the trigger's).
OCCURRED = {"triggered": "2021-06-04T13:35:29.781Z", "resolved": "2021-06-04T14:22:29.781Z"}


def incident(stage: str) -> dict[str, Any]:
    """PagerDuty's own sample of an incident's stage; PagerDuty's samples are of three
    incidents, so each is made the same incident (the triggered one's id, and `OCCURRED`)."""
    payload: dict[str, Any] = json.loads((PAGERDUTY / f"incident_{stage}.json").read_text())
    payload["event"]["data"]["id"] = "PFQZPSY"
    if stage in OCCURRED:
        payload["event"]["occurred_at"] = OCCURRED[stage]
    return payload


async def send_pagerduty(world: World, integration_id: str, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = await world.gateway.client.post(
        f"/api/webhooks/pagerduty/{integration_id}",
        content=body,
        headers={
            "content-type": "application/json",
            "x-pagerduty-signature": f"v1={signature}",
            "x-webhook-id": str(uuid.uuid4()),
        },
    )
    assert answer.status_code == 200, answer.text


def incident_checks(envelopes: list[dict[str, Any]]) -> None:
    """One root (triggered), the acknowledgement and the resolution in its thread, the root
    edited to each state with who changed it, and how long it was open: from its trigger to
    its resolution by PagerDuty's times, whenever the webhooks came."""
    root, acked, acked_edit, resolved, resolved_edit = envelopes[:5]
    assert "thread_id" not in root and root["card"]["state"] == "triggered"
    assert [acked["thread_id"], resolved["thread_id"]] == [root["id"]] * 2
    assert acked_edit["message_id"] == resolved_edit["message_id"] == root["id"]
    assert acked_edit["card"]["state"] == "acknowledged"
    fields = {f["name"]: f["value"] for f in resolved_edit["card"]["fields"]}
    assert resolved_edit["card"]["state"] == "resolved"
    assert fields["By"] == resolved["author"]["name"] and fields["Open for"] == "47 min"
    assert "Open for: 47 min" in resolved_edit["text"]


async def test_a_signed_webhook_is_one_trace_through_the_gateway_and_sync(
    bare: World, tmp_path: Path
) -> None:
    """SPEC §18, as an operator runs it: `hookhub serve gateway` and `hookhub serve sync`
    processes told only `OTEL_EXPORTER_OTLP_ENDPOINT`, exporting to a collector (here the
    tests' own on loopback). A GitHub webhook's trace starts at the gateway's ingress, goes
    through Kafka to sync's consumer and on to the chat's topic; the gateway's log line of
    the request carries its ids. The first of the module's tests with processes of their
    own: members that left a consumer group linger in the embedded broker until their
    session expires, and a new process's join waits for them."""
    world = bare
    gateway_settings = world.gateway.app.state.runtime.settings  # type: ignore[attr-defined]
    async with OtlpReceiver(grpc=False) as collector:
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # exported within a tenth of a second
        }
        gateway = ServiceProcess.start(
            "gateway",
            gateway_settings,
            tmp_path / "gateway.log",
            HOOKHUB_CACHE_REFRESH_SECONDS="0.5",
            **otel,
        )
        sync: ServiceProcess | None = None
        try:
            sync = await start_sync(world, tmp_path / "sync.log", **otel)
            await gateway.ready()
            integration_id = await connect(world, "github", webhook_secret=SECRET)
            sub = await subscribe(world, integration_id)
            body = json.dumps(corpus("pull_request/opened.payload.json")).encode()
            signed = signing.github(SECRET, "pull_request", body, str(uuid.uuid4()))
            url = f"{gateway.base_url}/api/webhooks/github/{integration_id}"
            async with httpx.AsyncClient(verify=tls(), timeout=15) as client:
                answer = await until(
                    lambda: _accepted(client, url, body, signed.headers),
                    what="the gateway process knows the new integration",
                )
            [posted] = await in_channel(world, sub["channel_id"], count=1)

            def hops(spans: list[Span]) -> tuple[Span, Span, Span] | None:
                """The gateway's span of the webhook, sync's of its record (the
                notifications consumer's), and what sync published under that."""
                served = [
                    s
                    for s in spans
                    if s.service == "hookhub-gateway"
                    and s.attributes.get("hookhub.integration_id") == integration_id
                ]
                for server in served:
                    for consumed in spans:
                        if not (
                            consumed.service == "hookhub-sync"
                            and consumed.parent_span_id == server.span_id
                            and "notifications"
                            in consumed.attributes["messaging.consumer.group.name"]
                        ):
                            continue
                        for publish in spans:
                            if publish.parent_span_id == consumed.span_id:
                                return server, consumed, publish
                return None

            found = await collector.wait_for(hops)
            assert found is not None
            server, consumed, publish = found
        finally:
            await asyncio.gather(*(p.stop() for p in (gateway, sync) if p is not None))
            await world.sync.aclose()

    assert answer.status_code == 200
    assert (
        server.kind == "SERVER" and server.name == "POST /api/webhooks/{provider}/{integration_id}"
    )
    assert server.attributes["hookhub.provider"] == "github"
    assert server.attributes["hookhub.event_type"] == "pull_request"
    assert server.attributes["messaging.destination.name"].endswith("hookhub.provider.events")
    assert consumed.kind == "CONSUMER" and consumed.trace_id == server.trace_id
    assert consumed.attributes["hookhub.envelope_id"] == server.attributes["hookhub.envelope_id"]
    assert consumed.attributes["messaging.consumer.group.name"].endswith("sync.notifications")
    # The chat's message goes on in the same trace: sync's publish onto the chat's topic,
    # the child of its span of the webhook's event, is the record's parent.
    assert publish.kind == "PRODUCER" and publish.name.endswith("hookhub.chat.inbound publish")
    assert (publish.trace_id, publish.parent_span_id) == (server.trace_id, consumed.span_id)
    record = next(
        r for r in world.chat.inbound.records if json.loads(r.value)["id"] == posted["id"]
    )
    parent = dict(record.headers)["traceparent"].decode().split("-")
    assert (parent[1], parent[2]) == (server.trace_id, publish.span_id)
    # The gateway's line of the request, written inside its span, names it.
    request_id = answer.headers["x-request-id"]
    [line] = [
        entry
        for entry in gateway.log_lines()
        if entry.get("event") == "http_request" and entry.get("request_id") == request_id
    ]
    assert (line["trace_id"], line["span_id"]) == (server.trace_id, server.span_id)


async def _accepted(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> httpx.Response | None:
    answer = await client.post(url, content=body, headers=headers)
    return answer if answer.status_code == 200 else None


async def test_threads_survive_a_restart_and_two_replicas_make_one_root_each(
    bare: World, tmp_path: Path
) -> None:
    """GitHub's pull requests, and a PagerDuty incident triggered before the restart and
    acknowledged and resolved after it, with two replicas."""
    world = bare
    one: ServiceProcess | None = await start_sync(world, tmp_path / "one.log")
    two: ServiceProcess | None = None
    try:
        integrations = [await connect(world, "github", webhook_secret=SECRET) for _ in range(4)]
        subs = [await subscribe(world, i, events=["*"]) for i in integrations]
        pagerduty = await connect(world, "pagerduty", signing_secret=SECRET)
        incidents = await subscribe(world, pagerduty)
        story = pr_story()
        # The first two steps of each story, then a restart in the middle of them.
        for integration_id in integrations:
            for event, payload in story[:2]:
                await send_github(world, integration_id, event, payload)
        await send_pagerduty(world, pagerduty, incident("triggered"))
        for sub in subs:
            await in_channel(world, sub["channel_id"], count=3)
        await in_channel(world, incidents["channel_id"], count=1)
        assert one is not None
        await one.stop()
        one = await start_sync(world, tmp_path / "one-again.log")
        two = await start_sync(world, tmp_path / "two.log")
        for integration_id in integrations:
            for event, payload in story[2:]:
                await send_github(world, integration_id, event, payload)
        for stage in ("acknowledged", "resolved"):
            await send_pagerduty(world, pagerduty, incident(stage))
        for sub in subs:
            envelopes = await in_channel(world, sub["channel_id"], count=9)
            story_checks(envelopes)
        incident_checks(await in_channel(world, incidents["channel_id"], count=5))
        # Nothing more comes: no second root, no duplicate under another id.
        await asyncio.sleep(1.0)
        await world.chat.inbound.poll()
        for sub in subs:
            ids = {
                v["id"]
                for v in world.chat.inbound.values()
                if v["channel_id"] == sub["channel_id"] and v["type"] == "message.received"
            }
            assert len(ids) == 5, ids
    finally:
        await asyncio.gather(*(p.stop() for p in (one, two) if p is not None))
        await world.sync.aclose()


# Templates (SPEC §16): user JavaScript renders a subscription's notifications.

LOOPING = "function handler(event) {\n  while (true) {}\n}\n"
FIELDS = """function handler(event) {
  const pr = event.payload.pull_request;
  return {
    text: `**${event.event_type}**: ${pr.title} @everyone`,
    title: `#${pr.number} ${pr.title}`,
    url: pr.html_url,
    state: pr.state,
    color: "#2EA44F",
    fields: [{name: "author", value: pr.user.login}, {name: "commits", value: pr.commits}],
    item: `pr-${pr.number}`,
  };
}
"""


async def test_a_looping_template_falls_back_and_holds_up_no_other(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    looping = await subscribe(world, integration_id, template=LOOPING)
    plain = await subscribe(world, integration_id)
    templated = await subscribe(world, integration_id, template=FIELDS)
    assert looping["template"] == LOOPING and plain["template"] is None
    await send_github(
        world, integration_id, "pull_request", corpus("pull_request/opened.payload.json")
    )
    [default] = await in_channel(world, plain["channel_id"], count=1)
    assert "opened" in default["text"] and default["card"]["title"].startswith("#2 ")
    # The looping template's subscription got the default rendering, the same message.
    [fallback] = await in_channel(world, looping["channel_id"], count=1)
    assert (fallback["text"], fallback["card"]) == (default["text"], default["card"])
    [shown] = await in_channel(world, templated["channel_id"], count=1)
    assert shown["text"].startswith("**pull_request.opened**: Update the README with new info")
    assert "@everyone" not in shown["text"]  # defused: the workspace's markup, no mentions
    assert shown["card"] == {
        "title": "#2 Update the README with new information.",
        "url": "https://github.com/Codertocat/Hello-World/pull/2",
        "state": "open",
        "color": "#2ea44f",
        # The template's fields; then, as every item's root, who changed it (SPEC §16).
        "fields": [
            {"name": "author", "value": "Codertocat"},
            {"name": "commits", "value": "1"},
            {"name": "By", "value": "Codertocat"},
        ],
    }
    assert shown["source"]["external_thread_id"] == "pr-2"
    # The error is kept while the batch is rendered, the count once it is published: the
    # counts' writer may write them in two flushes.
    got = await subscription_when(
        world,
        looping,
        lambda s: s["last_error"] is not None and s["notified_count"] == 1,
        "the template's error and the notification counted",
    )
    assert got["last_error"]["code"] == "template_timeout"
    assert "50 ms" in got["last_error"]["message"]
    metrics = (await world.sync.get("/metrics")).text
    assert 'hookhub_template_runs_total{outcome="timeout",use="subscription"}' in metrics
    # Where a batch's time went, stage by stage, and how old its events were.
    for stage in ("render", "subscriptions", "templates", "threads", "publish", "batch"):
        assert f'hookhub_notification_batch_seconds_count{{stage="{stage}"}}' in metrics
    assert "hookhub_notification_event_age_seconds_count" in metrics


async def test_a_template_that_skips_and_one_that_throws(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    skipping = await subscribe(
        world,
        integration_id,
        template="function handler(e) {\n  if (e.payload.action === 'opened') return {skip: true};\n"
        "  return {text: 'PR ' + e.payload.action};\n}",
    )
    throwing = await subscribe(
        world, integration_id, template="function handler(e) {\n  return e.payload.nope.x;\n}"
    )
    for action in ("opened", "reopened"):
        payload = corpus(f"pull_request/{action}.payload.json")
        await send_github(world, integration_id, "pull_request", payload)
    [first] = await in_channel(world, skipping["channel_id"], count=1)
    assert first["text"] == "PR reopened"
    await subscription_when(world, skipping, lambda s: s["filtered_count"] == 1, "the skip")
    fallback = await in_channel(world, throwing["channel_id"], count=2)
    assert "opened" in fallback[0]["text"]
    got = await subscription_when(
        world, throwing, lambda s: s["last_error"] is not None, "the template's error"
    )
    error = got["last_error"]
    assert error["code"] == "template_error" and "TypeError" in error["message"]
    assert (error["line"], error["column"]) == (2, 25)


async def test_a_template_is_checked_at_save_and_cleared_with_null(world: World) -> None:
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    answer = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={"channel_id": "ch_t", "template": "function handler(e) {\n  return {text: };\n}"},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["line"], error["column"]) == ("invalid_template", 2, 17)
    # With a wrong filter beside it, one answer names both (it named the filter alone, the
    # template's error came with the next try).
    answer = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={
            "channel_id": "ch_t",
            "events": ["pull_request.nope"],
            "template": "function handler(e) {\n  return {text: };\n}",
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_subscription" and (error["line"], error["column"]) == (2, 17)
    assert "`pull_request.nope` names no github event" in error["message"]
    assert "template: SyntaxError" in error["message"]
    # With a field the schema refuses too (a channel id with a space), the schema's error
    # and the filter's and the template's come in one answer (it was the schema's alone).
    answer = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={
            "channel_id": "ch t",
            "threads": "sometimes",
            "events": ["pull_request.nope"],
            "branches": ["main"],
            "template": "function handler(e) {\n  return {text: };\n}",
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid"
    said = {(tuple(d["loc"]), d["message"].split(":")[0]) for d in error["details"]}
    assert {loc for loc, _ in said} >= {("body", "channel_id"), ("body", "threads")}
    assert (("body",), "events") in said
    assert (("body", "template"), "template") in said
    assert not any("branches" in d["message"] for d in error["details"]), "main is a branch"
    # Patched so: the same.
    sub = await subscribe(world, integration_id)
    answer = await world.sync.patch(
        f"/api/integrations/{integration_id}/subscriptions/{sub['id']}",
        json={"threads": "sometimes", "exclude_events": ["push.nope"]},
        headers=admin_headers(),
    )
    assert answer.status_code == 422, answer.text
    messages = [d["message"] for d in answer.json()["error"]["details"]]
    assert len(messages) == 2 and "`push.nope` names no github event" in messages[1]
    too_long = "//" + "x" * 20_000
    answer = await world.sync.post(
        f"/api/integrations/{integration_id}/subscriptions",
        json={"channel_id": "ch_t", "template": too_long},
        headers=admin_headers(),
    )
    assert answer.status_code == 422
    sub = await subscribe(world, integration_id, template=FIELDS)
    path = f"/api/integrations/{integration_id}/subscriptions/{sub['id']}"
    answer = await world.sync.patch(path, json={"template": "handler("}, headers=admin_headers())
    assert answer.status_code == 422 and answer.json()["error"]["line"] == 1
    answer = await world.sync.patch(path, json={"template": None}, headers=admin_headers())
    assert answer.status_code == 200 and answer.json()["template"] is None


async def test_a_template_is_tried_on_a_payload(world: World) -> None:
    payload = corpus("pull_request/opened.payload.json")
    answer = await world.sync.post(
        "/api/templates/test",
        json={
            "template": FIELDS,
            "payload": payload,
            "provider": "github",
            "event_type": "pull_request.opened",
            "headers": {"X-Hub-Signature-256": "sha256=x", "X-GitHub-Event": "pull_request"},
        },
        headers=admin_headers(),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["result"]["item"] == "pr-2" and body["result"]["fields"][1]["value"] == "1"
    assert body["notice"]["text"].endswith("@\u200deveryone")
    assert body["notice"]["card"]["color"] == "#2ea44f"
    headers = "function handler(e) { return {text: Object.keys(e.headers).join()}; }"
    answer = await world.sync.post(
        "/api/templates/test",
        json={"template": headers, "headers": {"Authorization": "x", "X-Event": "y"}},
        headers=admin_headers(),
    )
    assert answer.json()["result"]["text"] == "x-event"
    for template, codes in [
        ("function handler(e) {\n  throw new Error('no');\n}", {"template_error"}),
        (LOOPING, {"template_timeout"}),
        # Which of its limits an unbounded allocation meets first depends on the machine's
        # speed (tests/shared/test_jsbox.py shows the heap's); either way it is stopped.
        (
            "function handler(e) { let a = []; while (true) a.push(new Array(1e6)); }",
            {"template_memory", "template_timeout"},
        ),
        ("function handler(e) { return {text: 5}; }", {"bad_result"}),
    ]:
        answer = await world.sync.post(
            "/api/templates/test",
            json={"template": template, "payload": {}},
            headers=admin_headers(),
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] in codes
    thrown = await world.sync.post(
        "/api/templates/test",
        json={"template": "function handler(e) {\n  throw new Error('no');\n}"},
        headers=admin_headers(),
    )
    assert thrown.json()["error"] == {
        "code": "template_error",
        "message": "Error: no",
        "line": 2,
        "column": 3,
    }


def _record_of(world: World, envelope_id: str) -> Any:
    """The `hookhub.chat.inbound` record of an envelope the chat has read."""
    return next(r for r in world.chat.inbound.records if json.loads(r.value)["id"] == envelope_id)


def _consumed(span: Any, envelope_id: str) -> bool:
    """Whether `span` is a consumer's span of the record of that envelope."""
    attributes = span.attributes or {}
    return bool(
        span.kind is SpanKind.CONSUMER and attributes.get("hookhub.envelope_id") == envelope_id
    )


async def test_a_webhooks_trace_goes_on_to_the_chats_message(world: World) -> None:
    """SPEC §18 with no exporter (the suite's setting): the `traceparent` a provider's
    webhook brings goes on through the gateway, Kafka and the notifications consumer to
    the message on `hookhub.chat.inbound`."""
    assert tracing.mode() is tracing.Mode.CARRIED, "the suite runs without an exporter"
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id)
    callers = [Caller.new(), Caller.new()]
    for caller, name in zip(callers, ("opened", "reopened"), strict=True):
        await send_github(
            world,
            integration_id,
            "pull_request",
            corpus(f"pull_request/{name}.payload.json"),
            headers={"traceparent": caller.traceparent},
        )
    # The pull request's root, then the reopening in its thread and the root's edit.
    envelopes = await in_channel(world, sub["channel_id"], count=3)
    assert [v["type"] for v in envelopes] == ["message.received"] * 2 + ["message.edited"]
    assert "reopened" in envelopes[1]["text"]
    # Each in its own webhook's trace (the two may be one batch of the consumer).
    for envelope, caller in zip(envelopes, [*callers, callers[1]], strict=True):
        traceparent = traceparent_of(_record_of(world, envelope["id"]))
        assert traceparent is not None and ids(traceparent)[0] == caller.trace_id


async def test_a_notifications_span_is_its_events_records_child(world: World) -> None:
    """Spans exported (recorded here): the notifications consumer's span of a provider
    event's record is the child of the span that its `traceparent` names, says what became
    of the event, and the chat's message goes on under it."""
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    sub = await subscribe(world, integration_id)
    caller = Caller.new()
    topic = world.sync_settings.topic(Topic.PROVIDER_EVENTS)
    with recorded() as spans:
        event = await publish_github(
            world,
            integration_id,
            corpus("pull_request/opened.payload.json"),
            str(uuid.uuid4()),
            utcnow(),
            headers=[(PROVIDER_HEADER, b"github"), ("traceparent", caller.traceparent.encode())],
        )
        [message] = await in_channel(world, sub["channel_id"], count=1)
        found = await spans.finished(
            caller.trace_id,
            lambda found: any(_consumed(s, event.id) for s in found),
            "the record's span",
        )
    [span] = [s for s in found if _consumed(s, event.id)]
    trace_id, span_id, parent_id = hex_ids(span)
    assert (trace_id, parent_id) == (caller.trace_id, caller.span_id)
    attributes = dict(span.attributes or {})
    assert span.name == f"{topic} process"
    assert attributes["messaging.destination.name"] == topic
    assert "notifications" in str(attributes["messaging.consumer.group.name"])
    assert {
        name: attributes.get(f"hookhub.{name}")
        for name in ("provider", "integration_id", "workspace_id", "event_type")
    } == {
        "provider": "github",
        "integration_id": integration_id,
        "workspace_id": world.chat.workspace_id,
        "event_type": "pull_request",
    }
    [notified] = [e for e in span.events if e.name == "notification"]
    assert dict(notified.attributes or {}) == {
        "hookhub.subscription_id": sub["id"],
        "hookhub.channel_id": sub["channel_id"],
        "hookhub.notification": "pull_request.opened",
        "hookhub.envelope_id": message["id"],
        "hookhub.item": "Codertocat/Hello-World#2",
    }
    # The chat's message goes out under sync's publish onto the chat's topic, the span's
    # child: one trace from the webhook to the chat.
    traceparent = traceparent_of(_record_of(world, message["id"]))
    assert traceparent is not None
    record_trace, record_parent = ids(traceparent)
    assert record_trace == caller.trace_id
    found = await spans.finished(
        caller.trace_id,
        lambda found: any(hex_ids(s)[1] == record_parent for s in found),
        "the publish's span",
    )
    [publish] = [s for s in found if hex_ids(s)[1] == record_parent]
    assert publish.kind is SpanKind.PRODUCER and publish.name.endswith(
        "hookhub.chat.inbound publish"
    )
    assert hex_ids(publish)[2] == span_id


# -- acting from the card (SPEC §20) -------------------------------------------------------

ALERTS = Path(__file__).parents[2] / "shared" / "providers" / "alertmanager" / "samples"


async def send_alert(world: World, integration_id: str, token: str) -> None:
    """Alertmanager's own sample of a firing group, as its webhook_config sends it."""
    answer = await world.gateway.client.post(
        f"/api/webhooks/alertmanager/{integration_id}",
        content=(ALERTS / "firing.json").read_bytes(),
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


async def link(world: World, provider: str, user: str, provider_user: str) -> None:
    answer = await world.oauth.client.put(
        f"/api/account-links/{provider}/{user}",
        params={"workspace_id": world.chat.workspace_id},
        json={"provider_user": provider_user},
        headers=admin_headers(),
    )
    assert answer.status_code in (200, 201), answer.text


async def test_a_firing_group_is_silenced_from_its_card_once_as_the_linked_user(
    world: World,
) -> None:
    """The root card of a firing group offers silences; a click of an unlinked user asks
    them to link and runs once they have; the same action clicked again acts no more and
    says who did; an outage is retried and the thread says when it went through; a click
    naming the card from another workspace does nothing. Each is audited."""
    async with served(FakeAlertmanager()) as alertmanager:
        token = uuid.uuid4().hex
        integration_id = await connect(
            world, "alertmanager", token=token, api_url=alertmanager.base_url
        )
        channel = (await subscribe(world, integration_id))["channel_id"]
        await send_alert(world, integration_id, token)
        [root] = await world.chat.received(
            lambda v: v["channel_id"] == channel and "thread_id" not in v
        )
        actions = [a["id"] for a in root["card"]["actions"]]
        assert actions == ["silence:1h", "silence:4h", "silence:24h"], root["card"]
        # What it acts on was written with the root, before the root was published.
        cards = await world.sync_app.state.message_map.cards([root["id"]])
        assert cards[root["id"]][1]["target"]["matchers"], cards

        def reply(text: str) -> Any:
            return lambda v: v.get("thread_id") == root["id"] and text in v["text"]

        async def click(
            action: str,
            user: str,
            name: str,
            workspace: str | None = None,
            event_id: str | None = None,
        ) -> str:
            chat = (
                world.chat
                if workspace is None
                else dataclasses.replace(world.chat, workspace_id=workspace)
            )
            event = await chat.publish(
                "message.action",
                {"message_id": root["id"], "channel_id": channel, "action_id": action},
                actor={"id": user, "name": name},
                event_id=event_id,
            )
            return str(event.id)

        # Not linked: asked to link, nothing silenced; linked, the click runs.
        first = await click("silence:1h", "u_grace", "Grace Hopper")
        [asked] = await world.chat.received(reply("not linked to Prometheus Alertmanager"))
        assert "u_grace" in asked["text"] and alertmanager.silences == {}
        await link(world, "alertmanager", "u_grace", "grace@example.com")
        await world.chat.received(reply("Silenced for 1 h until"), timeout=30)
        [silence] = alertmanager.silences.values()
        assert silence["createdBy"] == "grace@example.com"
        sample = json.loads((ALERTS / "firing.json").read_text())
        labels = sample["groupLabels"] or sample["commonLabels"]  # the group's, else common
        assert {m["name"]: m["value"] for m in silence["matchers"]} == labels

        # The same click read again (the chat published it twice): nothing more. And the
        # same action again, by someone else: said who did, nothing more made.
        await click("silence:1h", "u_grace", "Grace Hopper", event_id=first)
        await link(world, "alertmanager", "u_ada", "ada@example.com")
        await click("silence:1h", "u_ada", "Ada Lovelace")
        await world.chat.received(reply("already done by Grace Hopper"))
        assert len(alertmanager.silences) == 1

        # An outage: retried, and the thread says when it went through.
        alertmanager.unavailable = True
        await click("silence:4h", "u_ada", "Ada Lovelace")
        await until(lambda: _posts(alertmanager) >= 2, what="the silence tried")
        alertmanager.unavailable = False
        [done] = await world.chat.received(reply("Silenced for 4 h"), timeout=30)
        assert re.search(r"by Ada Lovelace \(from chat\), after [2-9] attempts", done["text"])

        # Two people at once, Alertmanager slow to answer: one silence, the other told who
        # made it. The click in flight is written (running, this process's) once its batch
        # has waited long enough, and ends as a written click does.
        alertmanager.hold()
        clicked = await asyncio.gather(
            click("silence:24h", "u_grace", "Grace Hopper"),
            click("silence:24h", "u_ada", "Ada Lovelace"),
        )
        clicks = world.sync_app.state.clicks

        async def spilled() -> bool:
            docs = await clicks._clicks.find({"_id": {"$in": clicked}}).to_list()
            return any(d["status"] == "running" and d.get("lease_owner") for d in docs)

        await until(spilled, what="the click in flight written", timeout=30)
        alertmanager.release()
        [made] = await world.chat.received(reply("Silenced for 24 h"), timeout=30)
        [told] = await world.chat.received(reply("Silence 24 h: already done by"), timeout=30)
        maker = "Grace Hopper" if "Grace Hopper" in made["text"] else "Ada Lovelace"
        assert told["text"].endswith(f"already done by {maker}"), (made, told)
        assert len(alertmanager.silences) == 3

        # Another workspace naming this card: nothing done, nothing said.
        stray = await click("silence:4h", "u_ada", "Ada Lovelace", workspace="ws_other")
        await until(lambda: _refused(clicks, stray), what="the stray click refused")
        assert len(alertmanager.silences) == 3

    wanted = {
        ("silence:1h", "done"),
        ("silence:1h", "duplicate"),
        ("silence:4h", "done"),
        ("silence:24h", "done"),
        ("silence:24h", "duplicate"),
    }

    async def audited() -> bool:  # the audit log's writer flushes every second
        answer = await world.oauth.client.get(
            "/api/audit-events", params={"resource_type": "card_action"}, headers=admin_headers()
        )
        assert answer.status_code == 200, answer.text
        entries = answer.json()["data"]
        return wanted <= {(e["action"], e["card_action"]["result"]) for e in entries}

    await until(audited, what="the clicks audited")
    metrics = (await world.sync.get("/metrics")).text
    for action, result in wanted:
        labels = f'action="{action}",outcome="{result}",provider="alertmanager"'
        assert f"hookhub_actions_total{{{labels}}}" in metrics, (action, result)


async def test_an_issue_is_closed_from_its_card_as_the_user_once_they_link_their_github(
    world: World,
) -> None:
    """A GitHub issue's card offers to close it (and no labels: nobody linked could read
    them); an unlinked user's click is answered with their own link to GitHub's consent; once they have consented there (the oauth
    service's flow), the click runs with their own token: one PATCH, as them."""
    github = world.github
    assert github is not None
    github.track("Codertocat/Hello-World", 1)
    github.writers = {"Codertocat/Hello-World": {"ada"}}
    github.profiles["ada-gh"] = {"login": "ada", "id": 1001, "name": "Ada Lovelace"}
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    channel = (await subscribe(world, integration_id, events=["issues.*"]))["channel_id"]
    await send_github(world, integration_id, "issues", corpus("issues/opened.payload.json"))
    [root] = await world.chat.received(
        lambda v: v["channel_id"] == channel and "thread_id" not in v
    )
    assert [a["id"] for a in root["card"]["actions"]] == ["assign:me", "close"]

    def reply(text: str) -> Any:
        return lambda v: v.get("thread_id") == root["id"] and text in v["text"]

    await world.chat.publish(
        "message.action",
        {"message_id": root["id"], "channel_id": channel, "action_id": "close"},
        actor={"id": "u_ada_gh", "name": "Ada Lovelace"},
    )
    [asked] = await world.chat.received(reply("not linked to GitHub"))
    # Hers alone: the chat shows it to her, and the message's id says it is ephemeral.
    assert asked["visible_to"] == "u_ada_gh" and asked["id"].startswith("eph_"), asked
    found = re.search(r"(/api/auth/oauth/link/[\w-]+)", asked["text"])
    assert found is not None, asked["text"]
    assert github.acted.requests == []
    # Nobody could read the repository's labels for the card (nobody linked, the
    # integration has no token of its own): no read was asked for.
    reads = world.sync_app.state.runtime.db["card_offer_reads"]
    assert await reads.find_one({"edit.message_id": root["id"]}) is None
    await _not_bridged(world, channel, asked)
    # Opened (by her, or a chat's link preview): a page naming whom it links, nothing spent.
    for _ in range(2):
        page = await world.oauth.client.get(found.group(1))
        assert page.status_code == 200 and "Ada Lovelace" in page.text, page.text
        assert "<code>u_ada_gh</code>" in page.text and "frame-ancestors 'none'" in str(
            page.headers["content-security-policy"]
        )
    # Its button, from another site's form: refused, nothing spent.
    elsewhere = {"origin": "https://attacker.example"}
    refused = await world.oauth.client.post(found.group(1), headers=elsewhere)
    assert refused.status_code == 403, refused.text
    # From the page: the ticket spent, once; she goes on to GitHub's consent.
    origin = {"origin": world.gateway.base_url}
    opened = await world.oauth.client.post(found.group(1), headers=origin)
    assert opened.status_code == 303, opened.text
    again = await world.oauth.client.post(found.group(1), headers=origin)
    assert again.status_code == 404, again.text
    github.user = "ada-gh"
    async with httpx.AsyncClient() as browser:
        consented = await browser.get(opened.headers["location"])
    assert consented.status_code == 302, consented.text
    back = dict(parse_qsl(urlsplit(consented.headers["location"]).query))
    linked = await world.oauth.client.get("/api/auth/oauth/callback", params=back)
    assert linked.status_code == 200 and linked.json()["provider_user"] == "ada", linked.text
    assert linked.json()["chat_user_name"] == "Ada Lovelace", linked.text
    # Linked: the click runs, as Ada, once.
    await world.chat.received(reply("Closed by Ada Lovelace (from chat)"), timeout=30)
    [request] = github.acted.requests
    assert (request.method, request.path, request.body) == (
        "PATCH",
        "/api/repos/Codertocat/Hello-World/issues/1",
        {"state": "closed"},
    )
    token = request.headers["authorization"].removeprefix("Bearer ")
    assert github.login_of_token(token) == "ada"


async def test_an_acted_on_card_shows_the_new_state_at_once_pending_until_the_webhook(
    world: World,
) -> None:
    """PagerDuty answers an acknowledgement with the incident's new status: the root's card
    shows it at once, marked pending and without the action made, until PagerDuty's own
    webhook edits the root. An answer that comes after that webhook leaves the root as the
    webhook left it."""
    settings = world.sync_settings  # the world's sync reads them as it acts
    before = settings.pagerduty_api_base
    async with served(FakePagerDuty(tokens={"pd-key"})) as pagerduty:
        settings.pagerduty_api_base = pagerduty.base_url
        try:
            pagerduty.add_user("PADA001", "Ada Lovelace", "ada@example.com")
            pagerduty.add_incident("PFQZPSY")  # `incident`'s
            integration_id = await connect(
                world, "pagerduty", signing_secret=SECRET, api_token="pd-key"
            )
            channel = (await subscribe(world, integration_id))["channel_id"]
            await link(world, "pagerduty", "u_ada_pd", "ada@example.com")
            await send_pagerduty(world, integration_id, incident("triggered"))
            [root] = await world.chat.received(
                lambda v: v["channel_id"] == channel and "thread_id" not in v
            )
            assert [a["id"] for a in root["card"]["actions"]] == [
                "acknowledge",
                "resolve",
                "reassign:me",
            ]

            def root_edited(state: str) -> Any:
                return lambda v: (
                    v["type"] == "message.edited"
                    and v.get("message_id") == root["id"]
                    and (v.get("card") or {}).get("state") == state
                )

            async def click(action_id: str) -> None:
                await world.chat.publish(
                    "message.action",
                    {"message_id": root["id"], "channel_id": channel, "action_id": action_id},
                    actor={"id": "u_ada_pd", "name": "Ada Lovelace"},
                )

            await click("acknowledge")
            [pending] = await world.chat.received(root_edited("acknowledged (pending)"))
            assert [a["id"] for a in pending["card"]["actions"]] == ["resolve", "reassign:me"]
            assert "acknowledged (pending)" in pending["text"]
            assert pending["card"]["title"] == root["card"]["title"]
            await send_pagerduty(world, integration_id, incident("acknowledged"))
            await world.chat.received(root_edited("acknowledged"))

            # PagerDuty holds its answer to a resolve while its webhook says so.
            pagerduty.hold()
            asked = len(pagerduty.requests)
            await click("resolve")
            await until(
                lambda: any(r.method == "PUT" for r in pagerduty.requests[asked:]),
                what="the resolve at PagerDuty",
            )
            await send_pagerduty(world, integration_id, incident("resolved"))
            await world.chat.received(root_edited("resolved"))
            pagerduty.release()
            await world.chat.received(
                lambda v: v.get("thread_id") == root["id"] and "Resolved by Ada" in v["text"]
            )
            # Published with the reply, had it been: the topic read to its end finds none.
            assert await world.chat.inbound.settled(root_edited("resolved (pending)")) == []
        finally:
            settings.pagerduty_api_base = before


async def link_by_consent(world: World, provider: str, chat_user_id: str) -> None:
    """The chat user linked to `provider` by their consent there (an admin starts it), as
    the stand-in's current user."""
    started = await world.oauth.client.post(
        f"/api/account-links/{provider}/connect",
        json={"chat_user_id": chat_user_id},
        params={"workspace_id": world.chat.workspace_id},
        headers=admin_headers(),
    )
    assert started.status_code == 200, started.text
    async with httpx.AsyncClient() as browser:
        consented = await browser.get(started.json()["authorization_url"])
    assert consented.status_code == 302, consented.text
    back = dict(parse_qsl(urlsplit(consented.headers["location"]).query))
    linked = await world.oauth.client.get("/api/auth/oauth/callback", params=back)
    assert linked.status_code == 200, linked.text


def newest_token(fake: Any, user: str) -> str:
    """The access token the stand-in issued last to a grant of `user`."""
    issued = [t for t, a in fake.access_tokens.items() if a.grant.user == user]
    assert issued, user
    return str(issued[-1])


async def test_a_token_github_stopped_taking_is_refreshed_once_else_the_user_links_again(
    world: World,
) -> None:
    """With a linked user, the card offers the repository's labels, read from GitHub, and
    one is added from it. A linked user's token GitHub answers 401 to (revoked alone, its
    grant good): the link's token is refreshed once and the action made again with the new
    one. The grant revoked: the refresh is refused, the link goes to `error`, and the user
    is asked, to them alone, to link again, with a ticket; nothing is made, nothing said in
    the thread."""
    github = world.github
    assert github is not None
    repo = "Codertocat/Hello-World"
    github.track(repo, 1)
    github.writers = {repo: {"lin"}}
    github.profiles["lin-gh"] = {"login": "lin", "id": 1003, "name": "Lin Clark"}
    github.user = "lin-gh"
    started = len(github.acted.requests)
    await link_by_consent(world, "github", "u_lin")
    token = newest_token(github, "lin-gh")
    integration_id = await connect(world, "github", webhook_secret=SECRET)
    channel = (await subscribe(world, integration_id, events=["issues.*"]))["channel_id"]
    await send_github(world, integration_id, "issues", corpus("issues/opened.payload.json"))
    [root] = await world.chat.received(
        lambda v: v["channel_id"] == channel and v["type"] == "message.received"
    )

    def reply(text: str) -> Any:
        return lambda v: v.get("thread_id") == root["id"] and text in v["text"]

    async def click(action: str) -> None:
        await world.chat.publish(
            "message.action",
            {"message_id": root["id"], "channel_id": channel, "action_id": action},
            actor={"id": "u_lin", "name": "Lin Clark"},
        )

    # Someone is linked: the repository's labels the issue does not carry (it has `bug`)
    # are read, and the card edited to offer them, four at most; one is added as Lin.
    [edited] = await world.chat.received(
        lambda v: (
            v["type"] == "message.edited"
            and v.get("message_id") == root["id"]
            and any(a["id"].startswith("label:") for a in v["card"]["actions"])
        )
    )
    buttons = [a["label"] for a in edited["card"]["actions"]]
    assert buttons == ["Assign to me", "Close"] + [
        f"Label: {name}"
        for name in ("documentation", "duplicate", "enhancement", "good first issue")
    ], buttons
    assert await world.sync_app.state.runtime.db["card_offer_reads"].find_one(
        {"edit.message_id": root["id"]}
    )
    [read] = github.acted.requests[started:]
    assert (read.method, read.path) == ("GET", f"/api/repos/{repo}/labels")
    await click(edited["card"]["actions"][2]["id"])
    await world.chat.received(reply("Labelled documentation by Lin Clark (from chat)"))
    assert github.tracked[(repo, 1)]["labels"] == ["documentation"]
    added = github.acted.requests[-1]
    assert (added.method, added.body) == ("POST", {"labels": ["documentation"]})
    assert added.headers["authorization"] == f"Bearer {token}"

    # GitHub stops taking her token (the grant goes on): refreshed once, made again.
    before = len(github.acted.requests)
    refreshed = github.refresh_grants
    assert github.revoke_access(token)
    await click("close")
    await world.chat.received(reply("Closed by Lin Clark (from chat)"), timeout=30)
    first, second = github.acted.requests[before:]
    assert github.refresh_grants == refreshed + 1
    assert first.headers["authorization"] == f"Bearer {token}"
    fresh = second.headers["authorization"].removeprefix("Bearer ")
    assert fresh != token and github.login_of_token(fresh) == "lin"
    assert (second.method, second.body) == ("PATCH", {"state": "closed"})

    # The grant revoked: the refresh is refused, the link broken, she is asked again.
    assert github.revoke(fresh)
    before = len(github.acted.requests)
    await click("assign:me")
    [asked] = await world.chat.received(reply("no longer takes the GitHub account"))
    assert asked["visible_to"] == "u_lin" and asked["id"].startswith("eph_"), asked
    assert re.search(r"/api/auth/oauth/link/[\w-]+", asked["text"]), asked["text"]
    assert len(github.acted.requests) == before + 1  # the 401, no second call
    # The API (the console's and the portal's page) says so, and why.
    shown = await world.oauth.client.get(
        "/api/account-links/github/u_lin",
        params={"workspace_id": world.chat.workspace_id},
        headers=admin_headers(),
    )
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "error" and shown.json()["last_error"], shown.json()


# A workflow as Jira's default software one (tests/providers/test_jira_acting.py's).
JIRA_WORKFLOW = {
    "To Do": [("11", "Start progress", "In Progress"), ("31", "Done", "Done")],
    "In Progress": [("21", "Stop progress", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}
ADA_JIRA_ID = "5b10ac8d82e05b22cc7d4ef5"


async def test_a_jira_card_offers_its_workflow_s_transitions_read_from_jira(
    world: World,
) -> None:
    """Jira's webhook does not carry the transitions the issue's workflow offers: once the
    root card is out, they are read from Jira (with the token of the workspace's linked
    user, the integration having none) and the card is edited with them; a click makes
    one as the clicker; the issue's webhook telling of its new status has them read again,
    the token Jira stopped taking meanwhile refreshed once. Payloads:
    tests/providers/jira_payloads (SP-10 on example.atlassian.net)."""
    jira = world.jira
    assert jira is not None
    jira.site_url = "https://example.atlassian.net"  # the site SP-10's webhooks name
    jira.track("SP-10", "To Do", JIRA_WORKFLOW)
    jira.people["ada-at"] = {"accountId": ADA_JIRA_ID, "displayName": "Ada Lovelace"}
    jira.transitioners = {ADA_JIRA_ID}
    # Ada links her Atlassian account (an admin starts her consent).
    jira.user = "ada-at"
    await link_by_consent(world, "jira", "u_ada_at")

    integration_id = await connect(world, "jira", webhook_secret=SECRET)
    channel = (await subscribe(world, integration_id, events=["issue.*"]))["channel_id"]
    await send_jira(
        world, integration_id, json.loads((JIRA_PAYLOADS / "issue_created.json").read_text())
    )
    [root] = await world.chat.received(
        lambda v: v["channel_id"] == channel and v["type"] == "message.received"
    )
    assert [a["id"] for a in root["card"]["actions"]] == ["assign:me"]

    def offering(*ids: str) -> Any:
        return lambda v: (
            v["type"] == "message.edited"
            and v.get("message_id") == root["id"]
            and [a["id"] for a in v["card"]["actions"]] == ["assign:me", *ids]
        )

    [edited] = await world.chat.received(offering("transition:11", "transition:31"))
    assert [a["label"] for a in edited["card"]["actions"]][1:] == ["Start progress", "Done"]
    assert edited["text"] == root["text"] and edited["card"]["title"] == root["card"]["title"]
    read = [r for r in jira.acted.requests if r.method == "GET"]
    assert read and read[0].path.endswith("/rest/api/3/issue/SP-10/transitions")
    ada_token = read[0].headers["authorization"].removeprefix("Bearer ")
    assert jira.access_tokens[ada_token].grant.user == "ada-at"

    await world.chat.publish(
        "message.action",
        {"message_id": root["id"], "channel_id": channel, "action_id": "transition:11"},
        actor={"id": "u_ada_at", "name": "Ada Lovelace"},
    )
    await world.chat.received(
        lambda v: (
            v.get("thread_id") == root["id"]
            and "Moved to In Progress by Ada Lovelace (from chat)" in v["text"]
        ),
        timeout=30,
    )
    assert jira.tracked["SP-10"]["status"] == "In Progress"
    # Jira tells of the move: the card is edited, and its transitions read again. Jira has
    # stopped taking Ada's token meanwhile (its grant good): refreshed once, read again.
    assert jira.revoke_access(ada_token)
    refreshed, before = jira.refresh_grants, len(jira.acted.requests)
    moved = json.loads((JIRA_PAYLOADS / "issue_updated_status.json").read_text())
    await send_jira(world, integration_id, moved)
    [reread] = await world.chat.received(offering("transition:21", "transition:31"), timeout=30)
    refused, again = [r for r in jira.acted.requests[before:] if r.method == "GET"]
    assert refused.headers["authorization"] == f"Bearer {ada_token}"
    fresh = again.headers["authorization"].removeprefix("Bearer ")
    assert fresh != ada_token and jira.access_tokens[fresh].grant.user == "ada-at"
    assert jira.refresh_grants == refreshed + 1
    cards = await world.sync_app.state.message_map.cards([root["id"]])
    acting = cards[root["id"]][1]
    assert [a["id"] for a in acting["actions"]] == ["assign:me", "transition:21", "transition:31"]
    # Kept with the card that shows them (a click's pending edit is made from it).
    assert acting["shown"] == {"source": reread["id"], "card": reread["card"]}


async def _not_bridged(world: World, channel: str, ephemeral: dict[str, Any]) -> None:
    """A chat product that tells of an ephemeral message anyway (`message.created` naming
    it) does not get it bridged: the channel's network sees the messages before and after
    it, not it."""
    external = world.slack_channel()
    await world.map(world.slack_integration, external, channel)
    told = [
        {"message_id": "m_before", "channel_id": channel, "text": "before"},
        {
            "message_id": "m_eph",
            "channel_id": channel,
            "text": ephemeral["text"],
            "thread_id": ephemeral["thread_id"],
            "inbound_id": ephemeral["id"],
        },
        {"message_id": "m_after", "channel_id": channel, "text": "after"},
    ]
    await world.chat.publish("message.created", told[0])
    await until(lambda: world.slack.posts(external), what="the message before", timeout=30)
    for data in told[1:]:
        await world.chat.publish("message.created", data)
    posts = await until(lambda: world.slack.posts(external)[1:], what="the message after")
    assert [p["text"] for p in world.slack.posts(external)] == ["before", "after"], posts


def _posts(alertmanager: FakeAlertmanager) -> int:
    return sum(1 for r in alertmanager.requests if r.method == "POST")


async def _refused(clicks: Any, click_id: str) -> bool:
    doc = await clicks._clicks.find_one({"_id": click_id})
    return doc is not None and doc["status"] == "refused"


# -- slash commands (SPEC §20) -------------------------------------------------------------


async def test_slash_commands_subscribe_list_and_unsubscribe_as_the_chat_user(
    world: World,
) -> None:
    """`/hookhub subscribe` makes the subscription the API shows and says so in the channel;
    the same command read twice runs once; `list` shows it; a filter the subscription
    service refuses is answered with its message, as text, and makes nothing; another
    workspace cannot unsubscribe it, the channel can; `link` says how and whether the user
    is linked; each change is audited as the chat user's."""
    chat = dataclasses.replace(world.chat, workspace_id=world.new_id("ws_cmd"))
    integration_id = await connect(
        dataclasses.replace(world, chat=chat), "github", webhook_secret=SECRET
    )
    channel = world.new_id("ch_")

    async def command(text: str, via: Any = chat, event_id: str | None = None) -> str:
        event = await via.publish(
            "command.invoked",
            {"channel_id": channel, "text": text},
            actor={"id": "u_grace", "name": "Grace Hopper"},
            event_id=event_id,
        )
        return str(event.id)

    async def answer(command_id: str) -> str:
        [said] = await world.chat.received(lambda v: v["id"] == answer_id(command_id))
        assert said["channel_id"] == channel and said["author"]["name"] == "hookhub"
        assert said.get("thread_id") is None, said
        return str(said["text"])

    async def channel_subscriptions() -> list[dict[str, Any]]:
        listed = await world.sync.get(
            f"/api/integrations/{integration_id}/subscriptions", headers=admin_headers()
        )
        assert listed.status_code == 200, listed.text
        return [s for s in listed.json()["data"] if s["channel_id"] == channel]

    subscribe_id = await command(
        "/hookhub subscribe github octocat/hello-world events=pull_request.*,issues.opened"
    )
    said = await answer(subscribe_id)
    [sub] = await channel_subscriptions()
    assert (sub["repositories"], sub["events"]) == (
        ["octocat/hello-world"],
        ["pull_request.*", "issues.opened"],
    )
    assert said.startswith("Subscribed this channel to GitHub `octocat/hello-world`")
    assert sub["id"] in said

    # Read again (the same envelope): run once, answered once.
    await command("/hookhub subscribe github octocat/hello-world", event_id=subscribe_id)
    listed = await answer(await command("/hookhub list"))
    assert sub["id"] in listed and "`octocat/hello-world`" in listed, listed
    assert len(await world.chat.inbound.settled(lambda v: v["id"] == answer_id(subscribe_id))) == 1
    assert len(await channel_subscriptions()) == 1

    # The service's refusal, its words as text (no markup of the user's goes live).
    refused = await answer(
        await command("/hookhub subscribe github octocat/other events=**nope**,[x](javascript:y)")
    )
    html = MarkdownIt("commonmark").render(refused)
    assert refused.startswith("Not subscribed: events: "), refused
    assert "names no github event" in refused
    assert "<strong>" not in html and "<a " not in html and "<code>" not in html, html
    assert len(await channel_subscriptions()) == 1

    # Another workspace's channel of the same id: not its subscription.
    other = dataclasses.replace(world.chat, workspace_id=world.new_id("ws_cmd"))
    stray = await answer(await command(f"/hookhub unsubscribe {sub['id']}", via=other))
    assert stray.startswith("Not unsubscribed: no subscription"), stray
    assert len(await channel_subscriptions()) == 1

    gone = await answer(await command("/hookhub unsubscribe github octocat/hello-world"))
    assert gone.startswith("Unsubscribed this channel from GitHub"), gone
    assert await channel_subscriptions() == []

    async def private_answer(command_id: str) -> str:
        """An answer to the user alone (ephemeral), out of the channel's history."""
        wanted = ephemeral_id(command_id, "answer")
        [said] = await world.chat.received(lambda v: v["id"] == wanted)
        assert said["channel_id"] == channel and said["visible_to"] == "u_grace", said
        return str(said["text"])

    # How to link, and whether the user is, said to them alone; anything else is answered
    # with the usage.
    unlinked = await private_answer(await command("/hookhub link pagerduty"))
    assert "not linked to PagerDuty yet" in unlinked, unlinked
    assert "`PUT /api/account-links/pagerduty/u_grace`" in unlinked
    # GitHub is linked by the user's own consent: their ticket, whose page names them.
    ticketed = await private_answer(await command("/hookhub link github"))
    found = re.search(r"(/api/auth/oauth/link/[\w-]+)", ticketed)
    assert found is not None, ticketed
    page = await world.oauth.client.get(found.group(1))
    assert page.status_code == 200 and "Grace Hopper" in page.text, page.text
    await link(dataclasses.replace(world, chat=chat), "pagerduty", "u_grace", "grace@example.com")
    linked = await private_answer(await command("/hookhub link pagerduty"))
    # The address as code, its `@` defused (no chat reads a mention in it).
    assert "linked to PagerDuty as `grace@\u200dexample.com`" in linked, linked
    usage = await answer(await command("/hookhub frobnicate"))
    assert usage.startswith("`frobnicate` is no hookhub command") and "/hookhub list" in usage

    async def audited() -> list[dict[str, Any]] | None:  # the writer flushes every second
        found = await world.oauth.client.get(
            "/api/audit-events",
            params={"resource_type": "subscription", "resource_id": sub["id"]},
            headers=admin_headers(),
        )
        assert found.status_code == 200, found.text
        entries: list[dict[str, Any]] = found.json()["data"]
        return entries if len(entries) >= 2 else None

    entries = await until(audited, what="the subscription's changes audited")
    assert sorted(e["action"] for e in entries) == ["create", "delete"]
    for entry in entries:
        assert entry["actor"] == {"kind": "chat_user", "id": "u_grace"}
        assert entry["workspace_id"] == chat.workspace_id
        assert (entry["method"], entry["route"], entry["status"]) == (None, None, None)
        assert entry["command"]["channel_id"] == channel
        assert entry["command"]["integration_id"] == integration_id
    [created] = [e for e in entries if e["action"] == "create"]
    assert created["command"]["id"] == subscribe_id
    assert created["fields"] == ["channel_id", "events", "repositories"]
