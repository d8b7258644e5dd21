"""Jira's stand-in sends the webhooks Jira Cloud sends: admin webhooks registered through
`/rest/webhooks/1.0/webhook`, each event delivered with Jira's headers, signed so that
hookhub's verifier and githubkit's (the same `sha256=` HMAC) both accept it, shaped like
Atlassian's examples (tests/providers/jira_payloads), rendered by hookhub's notifications;
the site changes as the events say; a hook that fails is recorded."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from githubkit.webhooks import verify as githubkit_verify

from services.sandbox import FakeAtlassian
from services.sandbox.hooks import EventRefused
from services.sandbox.oauth_server import AccessToken, Grant
from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from shared.providers.base import InboundRequest
from shared.providers.jira.adf import document
from shared.providers.jira.issues import JiraIssues
from shared.providers.jira.notify import NOTIFIER
from shared.providers.jira.webhooks import WEBHOOKS
from tests.providers.notify_support import assert_inert, plain
from tests.support import serve
from tests.webhook_sink import Received, WebhookSink

SECRET = "jira-sandbox-secret"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
WEBHOOKS_API = "/rest/webhooks/1.0/webhook"
EXAMPLES = Path(__file__).parent / "jira_payloads"


@dataclass
class Stage:
    fake: FakeAtlassian
    sink: WebhookSink
    api: httpx.AsyncClient
    sink_url: str

    def admin(self) -> dict[str, str]:
        pair = f"{self.fake.admin_email}:{self.fake.api_token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}

    async def register(
        self, path: str = "/jira", events: list[str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        answer = await self.api.post(
            WEBHOOKS_API,
            headers=self.admin(),
            json={
                "name": "hookhub",
                "url": self.sink_url + path,
                "events": events or ["jira:issue_created", "jira:issue_updated", "comment_created"],
                "filters": {"issue-related-events-section": "project = HUB"},
                "excludeBody": False,
                "secret": SECRET,
                **extra,
            },
        )
        assert answer.status_code == 201, answer.text
        return dict(answer.json())


@pytest.fixture
async def stage() -> AsyncIterator[Stage]:
    fake, sink = FakeAtlassian(), WebhookSink()
    fake.seed_demo()
    async with (
        serve(fake.app(), probe="/healthz") as jira,
        serve(sink.app(), probe="/healthz") as receiver,
    ):
        fake.base_url = jira.base_url
        yield Stage(fake, sink, jira.client, receiver.base_url)


def inbound(received: Received) -> InboundRequest:
    return InboundRequest(headers=received.headers, body=received.body, received_at=NOW)


def accepted(received: Received) -> dict[str, Any]:
    """The payload of a delivery hookhub's verifier and githubkit's both accept, with
    Jira's headers."""
    headers = received.headers
    assert headers["content-type"].startswith("application/json")
    assert headers["user-agent"] == "Atlassian Webhook HTTP Client"
    assert headers["x-atlassian-webhook-flow"] == "Primary"
    WEBHOOKS.verify(inbound(received), {"webhook_secret": SECRET}, NOW)
    assert githubkit_verify(SECRET, received.body, headers["x-hub-signature"])
    parsed = WEBHOOKS.parse(inbound(received))
    assert parsed.delivery_id == headers["x-atlassian-webhook-identifier"]
    assert isinstance(parsed.payload, dict)
    assert parsed.event_type == parsed.payload["webhookEvent"]
    return parsed.payload


# Fields Jira sends as null when unset (an example may show them set).
NULLABLE = {"assignee", "resolution", "resolutiondate", "fromString", "from", "toString", "to"}


def shaped_like(ours: Any, example: Any, where: str = "") -> None:
    """Every field of Atlassian's example is in ours, of the same JSON type (or null where
    Jira sends null)."""
    if ours is None and where.rsplit(".", 1)[-1] in NULLABLE:
        return
    if isinstance(example, dict):
        assert isinstance(ours, dict), where
        for key, value in example.items():
            assert key in ours, f"{where}.{key} is missing"
            shaped_like(ours[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(ours, list), where
        if example and ours:
            shaped_like(ours[0], example[0], f"{where}[0]")
    elif example is not None and ours is not None:
        assert type(ours) is type(example), f"{where}: {ours!r} is not like {example!r}"


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / name).read_text()))


async def test_a_webhook_registered_as_a_jira_admin_registers_one(stage: Stage) -> None:
    hook = await stage.register(description="Issues to the chat")
    assert hook["self"] == f"{stage.fake.site_url}{WEBHOOKS_API}/1"
    assert (hook["name"], hook["url"], hook["enabled"], hook["excludeBody"]) == (
        "hookhub",
        stage.sink_url + "/jira",
        True,
        False,
    )
    assert hook["filters"] == {"issue-related-events-section": "project = HUB"}
    assert hook["isSigned"] is True and SECRET not in json.dumps(hook)
    assert isinstance(hook["lastUpdated"], int)
    assert hook["lastUpdatedDisplayName"] == "Ada Lovelace"

    listed = await stage.api.get(WEBHOOKS_API, headers=stage.admin())
    assert [h["self"] for h in listed.json()] == [hook["self"]]
    one = await stage.api.get(f"{WEBHOOKS_API}/1", headers=stage.admin())
    assert one.json() == hook

    # An OAuth token the stand-in issued is accepted too.
    fake = stage.fake
    fake.access_tokens["at-issued"] = AccessToken(
        Grant(fake.user, fake.client.client_id, ""), time.time() + 60
    )
    deleted = await stage.api.delete(
        f"{WEBHOOKS_API}/1", headers={"Authorization": "Bearer at-issued"}
    )
    assert deleted.status_code == 204
    gone = await stage.api.get(f"{WEBHOOKS_API}/1", headers=stage.admin())
    assert gone.status_code == 404 and gone.json()["errorMessages"]
    assert await fake.send("comment_created", key="HUB-1", body="Anyone?") == []


async def test_registrations_are_refused_without_what_jira_needs(stage: Stage) -> None:
    post = stage.api.post
    no_url = await post(
        WEBHOOKS_API, headers=stage.admin(), json={"name": "x", "events": ["comment_created"]}
    )
    assert no_url.status_code == 400 and set(no_url.json()["errors"]) == {"url"}
    bad = await post(
        WEBHOOKS_API,
        headers=stage.admin(),
        json={"name": " ", "url": "ftp://x", "events": [], "excludeBody": "no"},
    )
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"name", "url", "events", "excludeBody"}
    not_json = await post(WEBHOOKS_API, headers=stage.admin(), content=b"{")
    assert not_json.status_code == 400 and not_json.json()["errorMessages"]

    body = {"name": "x", "url": stage.sink_url + "/x", "events": ["comment_created"]}
    anonymous = await post(WEBHOOKS_API, json=body)
    assert anonymous.status_code == 401 and "not authenticated" in anonymous.text
    wrong = base64.b64encode(f"{stage.fake.admin_email}:nope".encode()).decode()
    refused = await post(WEBHOOKS_API, headers={"Authorization": f"Basic {wrong}"}, json=body)
    assert refused.status_code == 401
    assert stage.fake.hooks == {}
    with pytest.raises(EventRefused, match="at least one event"):
        stage.fake.add_hook(stage.sink_url + "/x", SECRET, events=[])


# (event, params, [(webhookEvent, hookhub's event name, quiet?, texts, Atlassian's example)])
# on the seeded site: HUB-1 To Do, HUB-2 In Progress (Grace Hopper's), HUB-3 To Do.
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, bool, list[str], str]]]] = [
    (
        "jira:issue_created",
        {
            "summary": "Add a retry budget",
            "description": "h2. Why\n* fewer *retries*",
            "issue_type": "Bug",
            "user": "Grace Hopper",
        },
        [
            (
                "jira:issue_created",
                "issue.created",
                False,
                ["Grace Hopper created Bug HUB-4 Add a retry budget in HUB", "- fewer retries"],
                "issue_created.json",
            )
        ],
    ),
    (
        "jira:issue_updated",
        {"key": "HUB-1", "status": "In Progress", "assignee": "Ada Lovelace"},
        [
            (
                "jira:issue_updated",
                "issue.updated",
                False,
                [
                    "Ada Lovelace moved HUB-1 Post new orders to the #sales channel from To Do "
                    "to In Progress in HUB",
                    "Assignee: Unassigned → Ada Lovelace",
                ],
                "issue_updated_status.json",
            )
        ],
    ),
    (
        "jira:issue_updated",
        {"key": "HUB-2", "status": "done", "user": "Grace Hopper"},
        [
            (
                "jira:issue_updated",
                "issue.updated",
                False,
                [
                    "Grace Hopper moved HUB-2 Webhook deliveries are retried too quickly from "
                    "In Progress to Done",
                    "Resolution: none → Done",
                ],
                "issue_updated_status.json",
            )
        ],
    ),
    (
        "comment_created",
        {"key": "HUB-2", "body": "Fixed in [the PR|https://github.com/acme/widgets/pull/1]"},
        [
            (
                "comment_created",
                "comment.created",
                False,
                [
                    "Ada Lovelace commented on HUB-2 Webhook deliveries are retried too quickly",
                    "Fixed in the PR (https://github.com/acme/widgets/pull/1)",
                ],
                "comment_created.json",
            ),
            # Jira's update beside it tells of the same comment (one occurrence: sync
            # posts one message for the two).
            (
                "jira:issue_updated",
                "comment.created",
                False,
                ["Ada Lovelace commented on HUB-2", "Fixed in the PR"],
                "issue_created.json",
            ),
        ],
    ),
]


@pytest.mark.parametrize(
    ("event", "params", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
async def test_each_event_arrives_signed_shaped_and_rendered(
    stage: Stage,
    event: str,
    params: dict[str, Any],
    expected: list[tuple[str, str, bool, list[str], str]],
) -> None:
    hook = await stage.register()
    deliveries = await stage.fake.send(event, **params)
    received = stage.sink.at("/jira")
    assert [d.guid for d in deliveries] == [
        r.headers["x-atlassian-webhook-identifier"] for r in received
    ]
    assert all(d.ok for d in deliveries)
    assert len(received) == len(expected)
    for got, (webhook_event, name, quiet, texts, like) in zip(received, expected, strict=True):
        payload = accepted(got)
        assert payload["webhookEvent"] == webhook_event
        assert payload["matchedWebhookIds"] == [int(hook["self"].rsplit("/", 1)[1])]
        shaped_like(payload, example(like))
        notice = NOTIFIER.notice(None, payload)
        assert notice.event == name and notice.project == "HUB"
        assert (notice.quiet is not None) == quiet, notice.quiet
        assert_inert(notice.text)
        text = plain(notice.text)
        for wanted in texts:
            assert wanted in text, (wanted, text)


async def test_the_site_changes_as_the_events_say(stage: Stage) -> None:
    fake = stage.fake
    await stage.register()
    [first] = await fake.send("jira:issue_created", summary="First")
    [second] = await fake.send("jira:issue_created", summary="Second", project="hub")
    assert (first.payload["issue"]["key"], second.payload["issue"]["key"]) == ("HUB-4", "HUB-5")

    [moved] = await fake.send("jira:issue_updated", key="HUB-1", status="In Progress")
    [item] = moved.payload["changelog"]["items"]
    assert (item["field"], item["fromString"], item["toString"]) == (
        "status",
        "To Do",
        "In Progress",
    )
    assert (item["from"], item["to"]) == ("10000", "3")
    assert moved.payload["issue"]["fields"]["status"]["statusCategory"]["key"] == "indeterminate"
    with pytest.raises(EventRefused, match="already In Progress"):
        await fake.send("jira:issue_updated", key="HUB-1", status="In Progress")

    [done] = await fake.send("jira:issue_updated", key="HUB-1", status="Done")
    assert done.payload["issue_event_type_name"] == "issue_resolved"
    assert done.payload["issue"]["fields"]["resolution"]["name"] == "Done"
    [reopened] = await fake.send("jira:issue_updated", key="HUB-1", status="To Do")
    assert reopened.payload["issue_event_type_name"] == "issue_reopened"
    assert reopened.payload["issue"]["fields"]["resolution"] is None
    [edited] = await fake.send(
        "jira:issue_updated",
        key="HUB-3",
        summary="Write the sandbox guide, with pictures",
        priority="High",
    )
    assert edited.payload["issue_event_type_name"] == "issue_updated"
    text = plain(NOTIFIER.notice(None, edited.payload).text)
    assert "Summary: Write the sandbox guide → Write the sandbox guide, with pictures" in text
    assert "Priority: Low → High" in text
    [unassigned] = await fake.send("jira:issue_updated", key="HUB-2", assignee="")
    assert unassigned.payload["issue_event_type_name"] == "issue_assigned"
    assert unassigned.payload["issue"]["fields"]["assignee"] is None
    await fake.send("comment_created", key="HUB-3", body="On it")

    state = json.loads(json.dumps(fake.state()))
    [project] = state["projects"]
    issues = {i["key"]: i for i in project["issues"]}
    assert {k: i["status"] for k, i in issues.items()} == {
        "HUB-1": "To Do",
        "HUB-2": "In Progress",
        "HUB-3": "To Do",
        "HUB-4": "To Do",
        "HUB-5": "To Do",
    }
    assert issues["HUB-2"]["assignee"] is None and issues["HUB-3"]["comments"] == 1
    assert state["statuses"] == ["To Do", "In Progress", "Done"]
    [hook] = state["hooks"]
    assert hook["deliveries"][0]["event"] == "jira:issue_updated"  # the comment's echo
    assert state["sent"][-1]["webhooks"] == ["comment_created", "jira:issue_updated"]
    assert {u["display_name"] for u in state["users"]} == {"Ada Lovelace", "Grace Hopper"}


async def test_a_hook_gets_the_events_it_takes_and_none_is_not_an_error(stage: Stage) -> None:
    fake = stage.fake
    assert await fake.send("jira:issue_created", summary="Unheard") == []
    assert fake.sent[-1]["deliveries"] == [] and fake.sent[-1]["key"] == "HUB-4"

    fake.add_hook(stage.sink_url + "/comments", SECRET, events=["comment_created"])
    fake.add_hook(stage.sink_url + "/off", SECRET, enabled=False)
    await fake.send("jira:issue_updated", key="HUB-4", status="Done")
    [comment] = await fake.send("comment_created", key="HUB-4", body="Heard")
    assert comment.event == "comment_created"
    assert [json.loads(r.body)["webhookEvent"] for r in stage.sink.at("/comments")] == [
        "comment_created"
    ]
    assert stage.sink.at("/off") == []


async def test_a_failing_hook_is_recorded_and_a_retry_keeps_the_identifier(stage: Stage) -> None:
    fake = stage.fake
    stage.sink.on("/flaky", 503, 200)
    fake.add_hook(stage.sink_url + "/flaky", SECRET, events=["jira:issue_created"])
    fake.add_hook(f"http://127.0.0.1:{free_port()}/nobody", SECRET, events=["jira:issue_created"])
    failed, unreachable = await fake.send("jira:issue_created", summary="Flaky")
    assert (failed.status_code, failed.status) == (503, "Invalid HTTP Response: 503")
    assert unreachable.status_code is None
    assert unreachable.status.startswith("failed to connect to host")

    retried = await fake.redeliver(failed.id)
    assert retried.ok and retried.guid == failed.guid
    first, again = stage.sink.at("/flaky")
    assert again.body == first.body
    assert again.headers["x-atlassian-webhook-identifier"] == failed.guid
    assert again.headers["x-atlassian-webhook-retry"] == "1"
    assert "x-atlassian-webhook-retry" not in first.headers
    WEBHOOKS.verify(inbound(again), {"webhook_secret": SECRET}, NOW)


async def test_a_hook_without_a_body_or_a_secret(stage: Stage) -> None:
    fake = stage.fake
    await stage.register("/bodiless", events=["jira:issue_created"], excludeBody=True)
    fake.add_hook(stage.sink_url + "/unsigned", None, events=["jira:issue_created"])
    await fake.send("jira:issue_created", summary="Quiet")
    [bodiless] = stage.sink.at("/bodiless")
    assert bodiless.body == b""
    WEBHOOKS.verify(inbound(bodiless), {"webhook_secret": SECRET}, NOW)
    [unsigned] = stage.sink.at("/unsigned")
    assert "x-hub-signature" not in unsigned.headers
    assert json.loads(unsigned.body)["issue"]["key"] == "HUB-4"


async def test_an_issue_hookhub_creates_joins_the_site_and_is_announced(stage: Stage) -> None:
    await stage.register()
    fake = stage.fake
    fake.access_tokens["at-issued"] = AccessToken(
        Grant(fake.user, fake.client.client_id, ""), time.time() + 60
    )
    async with httpx.AsyncClient(verify=tls(), timeout=10) as client:
        created = await JiraIssues(client, fake.base_url).create(
            "at-issued",
            fake.cloud_id,
            project_key="HUB",
            issue_type="Bug",
            summary="Export fails",
            description=document("Steps: press export"),
            site_url=fake.site_url,
        )
    assert (created.key_or_number, created.url) == (
        "HUB-4",
        "https://acme.atlassian.net/browse/HUB-4",
    )
    await fake.settled()
    [announced] = stage.sink.at("/jira")
    payload = accepted(announced)
    assert payload["webhookEvent"] == "jira:issue_created"
    fields = payload["issue"]["fields"]
    assert (payload["issue"]["key"], fields["summary"]) == ("HUB-4", "Export fails")
    assert fields["description"] == "Steps: press export"
    assert fields["issuetype"]["name"] == "Bug"
    assert fake.issues[-1]["key"] == "HUB-4"


async def test_what_cannot_happen_is_refused(stage: Stage) -> None:
    fake = stage.fake
    with pytest.raises(EventRefused, match="unknown event"):
        await fake.send("issue.created")
    with pytest.raises(EventRefused, match="no issue"):
        await fake.send("comment_created", key="HUB-99")
    with pytest.raises(EventRefused, match="no status 'Blocked'"):
        await fake.send("jira:issue_updated", key="HUB-1", status="Blocked")
    with pytest.raises(EventRefused, match="changes something"):
        await fake.send("jira:issue_updated", key="HUB-1")
    with pytest.raises(EventRefused, match="colour"):
        await fake.send("jira:issue_created", colour="red")
    with pytest.raises(EventRefused, match="no user"):
        await fake.send("comment_created", body="Hi", user="Nobody")
    with pytest.raises(EventRefused, match="issue type"):
        await fake.send("jira:issue_created", issue_type="Saga")
    with pytest.raises(EventRefused, match="no project"):
        await fake.send("jira:issue_created", project="OPS")
    with pytest.raises(EventRefused, match="no delivery"):
        await fake.redeliver(12345)
    with pytest.raises(EventRefused, match="priority"):
        await fake.send("jira:issue_updated", key="HUB-1", status="Done", priority="Urgent")
    assert fake.world.issue("HUB-1").status.name == "To Do"  # all of an update, or none
    assert len(fake.sent) == 0 and len(fake.world.issues) == 3
