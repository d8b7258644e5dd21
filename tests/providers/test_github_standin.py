"""GitHub's stand-in sends the webhooks GitHub sends: hooks registered through its REST API
as GitHub's, each event delivered with GitHub's headers, signed so that hookhub's verifier
and githubkit's both accept it, shaped so that githubkit's typed models parse it, rendered
by hookhub's notifications; the world changes as the events say; a hook that fails is
recorded."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from githubkit.compat import type_validate_python
from githubkit.webhooks import parse as githubkit_parse
from githubkit.webhooks import verify as githubkit_verify
from githubkit_schemas.latest.models import Hook, HookDeliveryItem

from services.sandbox import FakeGitHub
from services.sandbox.hooks import Delivery, EventRefused
from services.sandbox.oauth_server import AccessToken, Grant
from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from shared.providers.base import InboundRequest
from shared.providers.github.issues import GitHubIssues
from shared.providers.github.notify import NOTIFIER
from shared.providers.github.webhooks import WEBHOOKS
from shared.providers.ids import JsonBody
from tests.providers.notify_support import assert_inert, plain
from tests.support import serve
from tests.webhook_sink import Received, WebhookSink

SECRET = "sandbox-webhook-secret"
NOW = datetime(2024, 1, 1, tzinfo=UTC)
HOOKS = "/api/repos/acme/widgets/hooks"


@dataclass
class Stage:
    fake: FakeGitHub
    sink: WebhookSink
    api: httpx.AsyncClient
    sink_url: str

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.fake.personal_access_token}"}

    async def register(
        self, path: str = "/github", events: list[str] | None = None, **config: Any
    ) -> dict[str, Any]:
        """A hook created through the API, once GitHub's ping to it has been answered."""
        answer = await self.api.post(
            HOOKS,
            headers=self.auth(),
            json={
                "name": "web",
                "config": {
                    "url": self.sink_url + path,
                    "content_type": "json",
                    "secret": SECRET,
                    **config,
                },
                "events": events or ["*"],
                "active": True,
            },
        )
        assert answer.status_code == 201, answer.text
        await self.fake.settled()
        return dict(answer.json())


@pytest.fixture
async def stage() -> AsyncIterator[Stage]:
    fake, sink = FakeGitHub(), WebhookSink()
    fake.seed_demo()
    async with (
        serve(fake.app(), probe="/healthz") as github,
        serve(sink.app(), probe="/healthz") as receiver,
    ):
        fake.base_url = github.base_url
        yield Stage(fake, sink, github.client, receiver.base_url)


def inbound(received: Received) -> InboundRequest:
    return InboundRequest(headers=received.headers, body=received.body, received_at=NOW)


def accepted(received: Received, event: str) -> dict[str, Any]:
    """The payload of a delivery that hookhub's verifier and githubkit's both accept, whose
    headers are GitHub's and whose shape githubkit's typed models take."""
    headers = received.headers
    assert headers["x-github-event"] == event
    assert uuid.UUID(headers["x-github-delivery"])
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["x-github-hook-installation-target-type"] == "repository"
    assert headers["content-type"] == "application/json"
    WEBHOOKS.verify(inbound(received), {"webhook_secret": SECRET}, NOW)
    assert githubkit_verify(SECRET, received.body, headers["x-hub-signature-256"])
    assert githubkit_verify(SECRET, received.body, headers["x-hub-signature"])
    assert headers["x-hub-signature"].startswith("sha1=")
    parsed = WEBHOOKS.parse(inbound(received))
    assert (parsed.event_type, parsed.delivery_id) == (event, headers["x-github-delivery"])
    assert parsed.account_id == "acme"
    githubkit_parse(event, received.body)
    assert isinstance(parsed.payload, JsonBody)
    return parsed.payload.decode()


def rendered(received: Received, payload: dict[str, Any]) -> tuple[str, str]:
    notice = NOTIFIER.notice(received.headers["x-github-event"], payload)
    assert_inert(notice.text)
    assert notice.repository == "acme/widgets"
    return notice.event, plain(notice.text).strip()


async def test_a_hook_created_through_the_api_answers_as_github_and_is_pinged(
    stage: Stage,
) -> None:
    hook = await stage.register()
    type_validate_python(Hook, hook)
    assert hook["config"] == {
        "content_type": "json",
        "insecure_ssl": "0",
        "url": stage.sink_url + "/github",
        "secret": "********",
    }
    assert (hook["name"], hook["active"], hook["events"]) == ("web", True, ["*"])
    assert hook["url"] == f"{stage.fake.base_url}{HOOKS}/{hook['id']}"

    [ping] = stage.sink.at("/github")
    payload = accepted(ping, "ping")
    assert ping.headers["x-github-hook-id"] == str(hook["id"])
    assert payload["hook_id"] == hook["id"] and payload["hook"]["id"] == hook["id"]
    assert payload["repository"]["full_name"] == "acme/widgets"
    assert SECRET not in ping.body.decode()
    assert rendered(ping, payload) == (
        "ping",
        "octocat connected a webhook to acme/widgets",
    )

    listed = await stage.api.get(HOOKS, headers=stage.auth())
    assert [h["id"] for h in listed.json()] == [hook["id"]]
    assert listed.json()[0]["last_response"]["status"] == "active"
    deliveries = await stage.api.get(f"{HOOKS}/{hook['id']}/deliveries", headers=stage.auth())
    [delivery] = deliveries.json()
    type_validate_python(HookDeliveryItem, delivery)
    assert (delivery["event"], delivery["status"], delivery["status_code"]) == ("ping", "OK", 200)
    assert delivery["guid"] == ping.headers["x-github-delivery"]


# (event, params, [(X-GitHub-Event, hookhub's event name, text the notification reads)]) on
# the seeded world: pull request #1 by octocat, issues #2 (by hubot) and #3, next number 4.
CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, list[str]]]]] = [
    (
        "pull_request.opened",
        {"title": "Add a colour option", "body": "Blue is nice.", "user": "hubot"},
        [
            (
                "pull_request",
                "pull_request.opened",
                [
                    "hubot opened pull request #4 Add a colour option in acme/widgets "
                    "(hubot/add-a-colour-option → main)",
                    "Blue is nice.",
                ],
            )
        ],
    ),
    (
        "pull_request_review.submitted",
        {"body": "Ship it"},
        [
            (
                "pull_request_review",
                "pull_request_review.submitted",
                ["hubot approved pull request #1 Add a size option to widgets", "Ship it"],
            )
        ],
    ),
    (
        "issue_comment.created",
        {"body": "Does it do extra large?", "user": "hubot"},
        [
            (
                "issue_comment",
                "issue_comment.created",
                [
                    "hubot commented on pull request #1 Add a size option to widgets",
                    "Does it do extra large?",
                ],
            )
        ],
    ),
    (
        "issue_comment.created",
        {"number": 2, "body": "Seen on a phone too."},
        [
            (
                "issue_comment",
                "issue_comment.created",
                [
                    "octocat commented on issue #2 Widgets render off-centre on small screens",
                    "Seen on a phone too.",
                ],
            )
        ],
    ),
    (
        "pull_request.merged",
        {"user": "hubot"},
        [
            (
                "pull_request",
                "pull_request.merged",
                ["hubot merged pull request #1 Add a size option to widgets into main"],
            ),
            (
                "push",
                "push",
                [
                    "hubot pushed 2 commits to main in acme/widgets",
                    "Add a size option to widgets",
                    "Merge pull request #1 from acme/octocat/widget-size",
                ],
            ),
        ],
    ),
    (
        "pull_request.closed",
        {},
        [
            (
                "pull_request",
                "pull_request.closed",
                ["octocat closed pull request #1 Add a size option to widgets without merging"],
            )
        ],
    ),
    (
        "push",
        {"commits": ["Fix the build", "Bump the version"], "user": "hubot"},
        [
            (
                "push",
                "push",
                ["hubot pushed 2 commits to main in acme/widgets", "Fix the build", "Bump"],
            )
        ],
    ),
    (
        "push",
        {"branch": "octocat/widget-size", "commits": "Address the review"},
        [
            ("push", "push", ["octocat pushed 1 commit to octocat/widget-size"]),
            (
                "pull_request",
                "pull_request.synchronize",
                ["octocat pushed new commits to pull request #1 Add a size option to widgets"],
            ),
        ],
    ),
    (
        "issues.opened",
        {"title": "Widgets squeak", "body": "Loudly.", "user": "hubot", "labels": ["bug"]},
        [
            (
                "issues",
                "issues.opened",
                ["hubot opened issue #4 Widgets squeak in acme/widgets", "Loudly."],
            )
        ],
    ),
    (
        "issues.closed",
        {"number": 2},
        [
            (
                "issues",
                "issues.closed",
                ["octocat closed issue #2 Widgets render off-centre on small screens"],
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("event", "params", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
async def test_each_event_arrives_signed_typed_and_rendered(
    stage: Stage, event: str, params: dict[str, Any], expected: list[tuple[str, str, list[str]]]
) -> None:
    hook = await stage.register()
    deliveries = await stage.fake.send(event, **params)
    received = stage.sink.at("/github")[1:]  # after the ping
    assert [r.headers["x-github-event"] for r in received] == [e[0] for e in expected]
    assert [d.guid for d in deliveries] == [r.headers["x-github-delivery"] for r in received]
    assert all(d.ok and d.status == "OK" and d.hook_id == hook["id"] for d in deliveries)
    for got, (header, name, texts) in zip(received, expected, strict=True):
        payload = accepted(got, header)
        assert got.headers["x-github-hook-id"] == str(hook["id"])
        notice_event, text = rendered(got, payload)
        assert notice_event == name
        for wanted in texts:
            assert wanted in text, (wanted, text)


async def test_the_world_changes_as_the_events_say(stage: Stage) -> None:
    await stage.register()
    fake = stage.fake
    repo = fake.world.repository("acme/widgets")
    main = repo.branches["main"]

    [opened] = await fake.send("pull_request.opened", title="First")
    [again] = await fake.send("pull_request.opened", title="Second")
    assert (opened.payload["number"], again.payload["number"]) == (4, 5)
    assert opened.payload["pull_request"]["head"]["ref"] == "octocat/first"

    merged, pushed = await fake.send("pull_request.merged", number=1)
    pull = merged.payload["pull_request"]
    assert (pull["state"], pull["merged"], pull["merged_by"]["login"]) == (
        "closed",
        True,
        "octocat",
    )
    assert pushed.payload["before"] == main and pushed.payload["after"] == pull["merge_commit_sha"]
    assert repo.branches["main"] == pull["merge_commit_sha"]
    with pytest.raises(EventRefused, match="is merged"):
        await fake.send("pull_request.merged", number=1)
    # The latest open pull request is now #5.
    [review] = await fake.send("pull_request_review.submitted", state="commented", body="Hm")
    assert review.payload["pull_request"]["number"] == 5

    [closed] = await fake.send("issues.closed", reason="not_planned")
    assert closed.payload["issue"]["number"] == 3  # the latest open issue
    assert closed.payload["issue"]["state_reason"] == "not_planned"
    [comment] = await fake.send("issue_comment.created", number=3, body="Reopen?")
    assert comment.payload["issue"]["comments"] == 1

    state = json.loads(json.dumps(fake.state()))
    [shown] = state["repositories"]
    assert {p["number"]: p["state"] for p in shown["pull_requests"]} == {
        1: "merged",
        4: "open",
        5: "open",
    }
    assert {i["number"]: i["state"] for i in shown["issues"]} == {2: "open", 3: "closed"}
    assert shown["branches"]["main"] == repo.branches["main"]
    [hook] = shown["hooks"]
    assert [d["event"] for d in hook["deliveries"]][:2] == ["issue_comment", "issues"]
    assert all(d["ok"] for d in hook["deliveries"])
    assert state["sent"][-1]["event"] == "issue_comment.created"
    assert {u["login"] for u in state["users"]} == {"octocat", "hubot"}
    assert state["personal_access_token"] == fake.personal_access_token


async def test_a_hook_gets_the_events_it_takes_and_none_is_not_an_error(stage: Stage) -> None:
    fake = stage.fake
    assert await fake.send("push", commits="Nobody listens") == []
    assert fake.sent[-1]["deliveries"] == [] and fake.sent[-1]["webhooks"] == ["push"]

    await stage.register("/prs", events=["pull_request"])
    fake.add_hook("acme", "widgets", stage.sink_url + "/off", SECRET, active=False)
    assert await fake.send("push", commits="Still nobody") == []
    [delivery] = await fake.send("pull_request.opened", title="Someone listens")
    assert delivery.url == stage.sink_url + "/prs"
    assert [r.headers["x-github-event"] for r in stage.sink.at("/prs")] == [
        "ping",
        "pull_request",
    ]
    assert stage.sink.at("/off") == []


async def test_a_form_hook_and_one_without_a_secret(stage: Stage) -> None:
    fake = stage.fake
    fake.add_hook(
        "acme", "widgets", stage.sink_url + "/form", SECRET, ["issues"], content_type="form"
    )
    fake.add_hook("acme", "widgets", stage.sink_url + "/plain", None, ["issues"])
    await fake.send("issues.opened", title="Form-encoded")
    [form] = stage.sink.at("/form")
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    WEBHOOKS.verify(inbound(form), {"webhook_secret": SECRET}, NOW)
    payload = WEBHOOKS.parse(inbound(form)).payload
    assert isinstance(payload, dict) and payload["issue"]["title"] == "Form-encoded"
    [plain_hook] = stage.sink.at("/plain")
    assert "x-hub-signature-256" not in plain_hook.headers
    assert "x-hub-signature" not in plain_hook.headers


async def test_a_failing_hook_is_recorded_not_raised(stage: Stage) -> None:
    fake = stage.fake
    stage.sink.on("/down", 500, body=b"upstream broke", headers={"content-type": "text/plain"})
    fake.add_hook("acme", "widgets", stage.sink_url + "/down", SECRET)
    fake.add_hook("acme", "widgets", f"http://127.0.0.1:{free_port()}/nobody", SECRET)
    failed, unreachable = await fake.send("issues.opened", title="Into the void")
    assert (failed.status_code, failed.status, failed.response_body) == (
        500,
        "Invalid HTTP Response: 500",
        "upstream broke",
    )
    assert unreachable.status_code is None and not unreachable.ok
    assert unreachable.status.startswith("failed to connect to host")
    hook = next(h for h in fake.hooks.values() if h.url.endswith("/down"))
    listed = await stage.api.get(f"{HOOKS}/{hook.id}", headers=stage.auth())
    assert listed.json()["last_response"] == {
        "code": 500,
        "status": "failed",
        "message": "Invalid HTTP Response: 500",
    }


async def test_a_redelivery_keeps_the_guid_and_a_deleted_hook_gets_nothing(stage: Stage) -> None:
    fake = stage.fake
    hook = await stage.register()
    [first] = await fake.send("issues.opened", title="Twice")
    answer = await stage.api.post(
        f"{HOOKS}/{hook['id']}/deliveries/{first.id}/attempts", headers=stage.auth()
    )
    assert answer.status_code == 202
    await fake.settled()
    _ping, original, again = stage.sink.at("/github")
    assert again.headers["x-github-delivery"] == original.headers["x-github-delivery"]
    assert again.body == original.body
    assert fake.deliveries[-1].redelivery

    pinged = await stage.api.post(f"{HOOKS}/{hook['id']}/pings", headers=stage.auth())
    assert pinged.status_code == 204
    await fake.settled()
    assert stage.sink.at("/github")[-1].headers["x-github-event"] == "ping"

    deleted = await stage.api.delete(f"{HOOKS}/{hook['id']}", headers=stage.auth())
    assert deleted.status_code == 204
    gone = await stage.api.get(f"{HOOKS}/{hook['id']}", headers=stage.auth())
    assert gone.status_code == 404 and gone.json()["message"] == "Not Found"
    assert await fake.send("issues.opened", title="After") == []


async def test_an_issue_hookhub_creates_joins_the_world_and_is_announced(stage: Stage) -> None:
    await stage.register()
    fake = stage.fake
    async with httpx.AsyncClient(verify=tls(), timeout=10) as client:
        created = await GitHubIssues(client, fake.base_url + fake.api_path).create(
            fake.personal_access_token, "acme/widgets", title="Export fails", labels=["bug"]
        )
    assert (created.key_or_number, created.url) == (
        "4",
        "https://github.com/acme/widgets/issues/4",
    )
    await fake.settled()
    _ping, announced = stage.sink.at("/github")
    payload = accepted(announced, "issues")
    assert (payload["action"], payload["issue"]["number"]) == ("opened", 4)
    assert payload["sender"]["login"] == "octocat"
    assert fake.world.repository("acme/widgets").issues[4].labels == ["bug"]
    assert fake.issues[-1]["repo"] == "acme/widgets"
    # A repository outside the world answers as before.
    refused = await stage.api.post(
        "/api/repos/acme/gadgets/issues", headers=stage.auth(), json={"title": "x"}
    )
    assert refused.status_code == 404


def _validation_error(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["message"] == "Validation Failed" and body["status"] == "422"
    assert body["documentation_url"].startswith("https://docs.github.com/rest/")
    [error] = body["errors"]
    assert error["resource"] == "Hook"
    return dict(error)


async def test_registrations_are_refused_as_github_refuses_them(stage: Stage) -> None:
    def body(**config: Any) -> dict[str, Any]:
        return {"config": {"url": stage.sink_url + "/x", "content_type": "json", **config}}

    post = stage.api.post
    no_url = await post(HOOKS, headers=stage.auth(), json={"config": {"content_type": "json"}})
    assert _validation_error(no_url)["message"] == "Config must contain URL for webhooks"
    xml = await post(HOOKS, headers=stage.auth(), json=body(content_type="xml"))
    assert "content_type" in _validation_error(xml)["message"]
    not_http = await post(HOOKS, headers=stage.auth(), json=body(url="ftp://example.com/x"))
    assert _validation_error(not_http)["code"] == "custom"
    other_name = await post(HOOKS, headers=stage.auth(), json={"name": "slack", **body()})
    assert _validation_error(other_name) == {"resource": "Hook", "code": "invalid", "field": "name"}
    no_events = await post(HOOKS, headers=stage.auth(), json={"events": [], **body()})
    assert _validation_error(no_events)["field"] == "events"
    assert (await post(HOOKS, headers=stage.auth(), json=body())).status_code == 201
    twice = await post(HOOKS, headers=stage.auth(), json=body())
    assert _validation_error(twice)["message"] == "Hook already exists on this repository"
    not_json = await post(
        HOOKS,
        headers=stage.auth(),
        content=b"{",
    )
    assert not_json.status_code == 400 and not_json.json()["message"] == "Problems parsing JSON"

    unknown = await post("/api/repos/acme/gadgets/hooks", headers=stage.auth(), json=body())
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Not Found" and "documentation_url" in unknown.json()
    anonymous = await post(HOOKS, json=body())
    assert (anonymous.status_code, anonymous.json()["message"]) == (401, "Requires authentication")
    wrong = await post(HOOKS, headers={"Authorization": "Bearer ghp_nope"}, json=body())
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Bad credentials")

    # An OAuth token the stand-in issued is as good as its personal access token.
    fake = stage.fake
    fake.access_tokens["ghu_at-issued"] = AccessToken(
        Grant(fake.user, fake.client.client_id, ""), time.time() + 60
    )
    issued = {"Authorization": "token ghu_at-issued"}
    assert (await stage.api.get(HOOKS, headers=issued)).status_code == 200
    with pytest.raises(EventRefused, match="already exists"):
        fake.add_hook("acme", "widgets", stage.sink_url + "/x", SECRET)
    await fake.settled()


async def test_what_cannot_happen_is_refused(stage: Stage) -> None:
    fake = stage.fake
    with pytest.raises(EventRefused, match="unknown event"):
        await fake.send("pull_request.exploded")
    with pytest.raises(EventRefused, match="colour"):
        await fake.send("push", colour="red")
    with pytest.raises(EventRefused, match="no repository"):
        await fake.send("push", repository="acme/gadgets")
    with pytest.raises(EventRefused, match="no user"):
        await fake.send("issues.opened", title="Who?", user="nobody")
    with pytest.raises(EventRefused, match="no label"):
        await fake.send("issues.opened", title="Labelled", labels=["urgent"])
    with pytest.raises(EventRefused, match="their own pull request"):
        await fake.send("pull_request_review.submitted", user="octocat")
    with pytest.raises(EventRefused, match="already exists"):
        await fake.send("pull_request.opened", title="Again", head="octocat/widget-size")
    with pytest.raises(EventRefused, match="no pull request #9"):
        await fake.send("pull_request.merged", number=9)
    await fake.send("pull_request.closed")
    with pytest.raises(EventRefused, match="no open pull request"):
        await fake.send("issue_comment.created")
    assert len(fake.sent) == 1  # only the close happened


async def test_parameters_are_taken_as_a_json_api_passes_them(stage: Stage) -> None:
    fake = stage.fake
    wrong: list[tuple[dict[str, Any], str]] = [
        ({"title": 5}, "title must be str"),
        ({"title": "x", "labels": ["bug", 3]}, "labels must be a list of strings"),
        ({"title": "x", "draft": "yes"}, "draft must be bool"),
    ]
    for params, message in wrong:
        with pytest.raises(EventRefused, match=message):
            await fake.send("pull_request.opened", **params)
    with pytest.raises(EventRefused, match="number must be int"):
        await fake.send("pull_request.merged", number=True)
    # A number as a string of digits, and None as "the default".
    assert await fake.send("issue_comment.created", number="2", body="Digits", user=None) == []
    assert fake.world.repository().issues[2].comments == 1
    assert await fake.send("issues.opened", title=None, body=None) == []
    assert fake.world.repository().issues[4].title == "Something is not right"


def test_deliveries_summarise_to_json() -> None:
    delivery = Delivery(
        id=1,
        guid="g",
        hook_id=2,
        event="push",
        action=None,
        url="http://127.0.0.1/x",
        delivered_at=NOW,
        request_headers={},
        request_body=b"{}",
    )
    assert json.loads(json.dumps(delivery.summary()))["delivered_at"] == "2024-01-01T00:00:00Z"
    assert not delivery.ok


async def test_in_the_sandbox_a_card_s_actions_change_the_world_and_github_tells_of_each(
    stage: Stage,
) -> None:
    """With `acts_on_world` (the sandbox), what a card's buttons ask of an issue or pull
    request of the world changes it, as anyone, and GitHub's webhook of each change goes
    to the hooks, signed, typed (githubkit) and rendered: an issue closed, assigned and
    labelled, a pull request closed and reopened; a label it carries already, or someone
    it has assigned, changes nothing and sends nothing."""
    await stage.register()
    stage.fake.acts_on_world = True
    issue, pull = "/api/repos/acme/widgets/issues/2", "/api/repos/acme/widgets/issues/1"
    auth = stage.auth()
    closed = await stage.api.patch(issue, headers=auth, json={"state": "closed"})
    assert closed.status_code == 200 and closed.json()["state"] == "closed", closed.text
    for _ in range(2):
        assigned = await stage.api.post(
            issue + "/assignees", headers=auth, json={"assignees": ["hubot"]}
        )
        assert assigned.status_code == 201, assigned.text
        assert [a["login"] for a in assigned.json()["assignees"]] == ["hubot"]
        labeled = await stage.api.post(
            issue + "/labels", headers=auth, json={"labels": ["help wanted"]}
        )
        assert labeled.status_code == 200, labeled.text
        assert "help wanted" in [label["name"] for label in labeled.json()]
    for state in ("closed", "open"):
        answer = await stage.api.patch(pull, headers=auth, json={"state": state})
        assert answer.status_code == 200 and answer.json()["state"] == state, answer.text
    await stage.fake.settled()
    received = stage.sink.at("/github")[1:]  # after the ping
    told = []
    for got in received:
        payload = accepted(got, got.headers["x-github-event"])
        told.append(rendered(got, payload)[0])
    assert told == [
        "issues.closed",
        "issues.assigned",
        "issues.labeled",
        "pull_request.closed",
        "pull_request.reopened",
    ]
    repo = stage.fake.world.repository("acme/widgets")
    assert (repo.issues[2].state, repo.issues[2].assignees) == ("closed", ["hubot"])
    assert repo.pulls[1].state == "open"
