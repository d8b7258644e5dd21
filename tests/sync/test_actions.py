"""Actions (SPEC §10): issues created on the fake GitHub and Jira through the sync service's
API, with integrations connected through the oauth service's real flow, on the session's
broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import structlog
from cryptography.fernet import Fernet

from services.oauth.app import definition as oauth_definition
from services.sandbox import FakeAtlassian, FakeGitHub
from services.sync.actions.idempotency import COLLECTION
from services.sync.actions.schemas import GitHubIssueCreate
from services.sync.actions.service import CREATE_ISSUE, body_hash
from services.sync.app import definition as sync_definition
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.ids import utcnow
from shared.kernel.settings import ServiceSettings, SyncSettings
from tests.infra import Infra
from tests.oauth.flow import connect, db_of, expire_soon, stored, tokens
from tests.support import (
    KafkaTap,
    RunningService,
    admin_headers,
    make_settings,
    new_namespace,
    serve,
)


@dataclass
class Stage:
    github: FakeGitHub
    jira: FakeAtlassian
    oauth: RunningService
    sync: RunningService
    inbound: KafkaTap
    events: KafkaTap

    async def create(
        self, integration_id: str, body: dict[str, Any], key: str | None = None
    ) -> httpx.Response:
        headers = admin_headers()
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.sync.client.post(
            f"/api/integrations/{integration_id}/actions/create-issue", json=body, headers=headers
        )

    async def github_integration(self) -> str:
        return await self.integration("github")

    async def jira_integration(self) -> str:
        return await self.integration("jira")

    async def integration(self, provider: str) -> str:
        """A new integration connected through OAuth, in a workspace of its own (the same
        account connected again in one workspace is the same integration)."""
        workspace_id = f"ws_{uuid.uuid4().hex[:10]}"
        found: str = (await connect(self.oauth, provider, workspace_id=workspace_id))["id"]
        return found

    async def event(self, integration_id: str, type: str, count: int = 1) -> list[dict[str, Any]]:
        found = await self.events.wait_for(
            lambda e: e["integration_id"] == integration_id and e["type"] == type, count=count
        )
        assert len(found) >= count, f"no {type} for {integration_id}"
        return found


@pytest.fixture(scope="module")
async def stage(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stage]:
    github, jira = FakeGitHub(), FakeAtlassian()
    data_dir = tmp_path_factory.mktemp("actions")
    namespace = new_namespace()
    async with contextlib.AsyncExitStack() as stack:
        common: dict[str, Any] = {"encryption_keys": Fernet.generate_key().decode()}
        for fake in (github, jira):
            fake.base_url = (
                await stack.enter_async_context(serve(fake.app(), probe="/healthz"))
            ).base_url
            common.update(fake.hookhub_settings(fake.base_url))
        oauth = await stack.enter_async_context(
            serve(
                create_app(
                    oauth_definition(),
                    make_settings(
                        ServiceSettings,
                        infra,
                        namespace,
                        data_dir,
                        oauth_poll_seconds=3600,
                        **common,
                    ),
                )
            )
        )
        settings = make_settings(
            SyncSettings, infra, namespace, data_dir, cache_refresh_seconds=0.5, **common
        )
        sync = await stack.enter_async_context(serve(create_app(sync_definition(), settings)))
        inbound = await stack.enter_async_context(KafkaTap.of(settings, Topic.CHAT_INBOUND))
        events = await stack.enter_async_context(KafkaTap.of(settings, Topic.INTEGRATION_EVENTS))
        yield Stage(github, jira, oauth, sync, inbound, events)


@pytest.fixture(autouse=True)
def _fakes_reset(stage: Stage) -> None:
    stage.github.secondary_rate_limit = stage.github.reject_tokens = False
    stage.github.issue_outage = 0
    stage.github.issue_delay = stage.jira.issue_delay = 0.0


MESSAGE = {
    "channel_id": "ch_support",
    "message_id": "m_100",
    "text": "the export button\nthrows a 500 since `v2.3`",
    "author": "Ada Lovelace",
    "time": "2026-03-01T09:30:00Z",
    "permalink": "https://chat.example.com/c/ch_support/m_100",
}


def github_body(**fields: Any) -> dict[str, Any]:
    return {"repo": "octocat/hello-world", "title": "Export fails", **fields}


def jira_body(**fields: Any) -> dict[str, Any]:
    return {"project_key": "PROJ", "summary": "Export fails", **fields}


def error_of(answer: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = answer.json()["error"]
    return error


# -- happy paths -------------------------------------------------------------------------------


async def test_github_issue_with_the_message_quoted(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    answer = await stage.create(
        integration_id,
        github_body(body="Seen by support.", labels=["bug"], message=MESSAGE),
    )
    assert answer.status_code == 201, answer.text
    issue = stage.github.issues[-1]
    assert answer.json() == {
        "provider": "github",
        "key_or_number": str(issue["number"]),
        "url": issue["html_url"],
    }
    assert "Idempotent-Replayed" not in answer.headers
    assert issue["repo"] == "octocat/hello-world" and issue["title"] == "Export fails"
    assert issue["labels"] == [{"name": "bug"}]
    assert issue["accept"] == "application/vnd.github+json"
    assert issue["api_version"] == "2022-11-28"
    assert issue["body"] == (
        "Seen by support.\n\n"
        "> **Ada Lovelace** wrote at 2026-03-01 09:30 UTC:\n"
        ">\n"
        "> the export button\n"
        "> throws a 500 since \\`v2.3\\`\n"
        ">\n"
        "> [View the message in chat](<https://chat.example.com/c/ch_support/m_100>)"
    )
    [event] = await stage.event(integration_id, "action.completed")
    assert event["provider"] == "github"
    assert event["data"] == {
        "action": "create_issue",
        "provider": "github",
        "key_or_number": str(issue["number"]),
        "url": issue["html_url"],
        "message": {"channel_id": "ch_support", "message_id": "m_100"},
        "replied": False,
    }
    metrics = (await stage.sync.client.get("/metrics")).text
    assert 'hookhub_actions_total{action="create_issue",outcome="created",provider="github"}' in (
        metrics
    )
    assert "hookhub_action_provider_seconds_count" in metrics


async def test_jira_issue_with_the_description_in_adf(stage: Stage) -> None:
    integration_id = await stage.jira_integration()
    answer = await stage.create(
        integration_id,
        jira_body(description="Steps:\nopen https://app.example.com/export", message=MESSAGE),
    )
    assert answer.status_code == 201, answer.text
    issue = stage.jira.issues[-1]
    assert answer.json() == {
        "provider": "jira",
        "key_or_number": issue["key"],
        "url": f"https://acme.atlassian.net/browse/{issue['key']}",
    }
    fields = issue["fields"]
    assert fields["project"] == {"key": "PROJ"}
    assert fields["issuetype"] == {"name": "Task"}  # the default
    assert fields["summary"] == "Export fails"
    description = fields["description"]
    assert description["type"] == "doc" and description["version"] == 1
    steps, quote = description["content"]
    assert steps["content"][-1] == {
        "type": "text",
        "text": "https://app.example.com/export",
        "marks": [{"type": "link", "attrs": {"href": "https://app.example.com/export"}}],
    }
    assert quote["type"] == "blockquote"
    assert quote["content"][0]["content"][0] == {
        "type": "text",
        "text": "Ada Lovelace",
        "marks": [{"type": "strong"}],
    }
    assert {"type": "text", "text": "v2.3", "marks": [{"type": "code"}]} in quote["content"][1][
        "content"
    ]
    await stage.event(integration_id, "action.completed")


async def test_reply_goes_into_the_messages_thread_once(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    body = github_body(message={**MESSAGE, "message_id": f"m_{uuid.uuid4().hex[:8]}"}, reply=True)
    first = await stage.create(integration_id, body, key="reply-1")
    again = await stage.create(integration_id, body, key="reply-1")
    assert first.status_code == again.status_code == 201, first.text
    url = first.json()["url"]
    [reply] = await stage.inbound.wait_for(
        lambda v: v["source"]["integration_id"] == integration_id
    )
    assert reply["type"] == "message.received"
    assert reply["channel_id"] == "ch_support"
    assert reply["thread_id"] == body["message"]["message_id"]
    assert reply["author"] == {"name": "GitHub"}
    assert reply["workspace_id"] == (await stored(stage.oauth, integration_id))["workspace_id"]
    assert url in reply["text"] and "octocat/hello-world#" in reply["text"]
    assert reply["source"]["provider"] == "github"
    await asyncio.sleep(1)  # a second envelope would have arrived by now
    await stage.inbound.poll()
    assert [
        v for v in stage.inbound.values() if v["source"]["integration_id"] == integration_id
    ] == [reply]


async def test_reply_into_the_thread_the_message_is_in(stage: Stage) -> None:
    integration_id = await stage.jira_integration()
    message = {**MESSAGE, "message_id": "m_reply", "thread_id": "m_root"}
    answer = await stage.create(integration_id, jira_body(message=message, reply=True))
    assert answer.status_code == 201, answer.text
    [reply] = await stage.inbound.wait_for(
        lambda v: v["source"]["integration_id"] == integration_id
    )
    assert reply["thread_id"] == "m_root" and reply["author"] == {"name": "Jira"}
    assert answer.json()["url"] in reply["text"]


async def test_a_reply_kafka_did_not_take_is_published_by_the_retry(stage: Stage) -> None:
    """The issue's answer is stored before the reply is published; a reply left unpublished
    (Kafka away: the call answered 503) goes out with the next retry of the key."""
    integration_id = await stage.github_integration()
    body = github_body(message=MESSAGE, reply=True)
    first = await stage.create(integration_id, body, key="reply-resume")
    assert first.status_code == 201, first.text
    requests = db_of(stage.sync)[COLLECTION]
    query = {"integration_id": integration_id, "key": "reply-resume"}
    await requests.update_one(query, {"$set": {"replied": False}})
    before = len(stage.github.issues)
    again = await stage.create(integration_id, body, key="reply-resume")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert len(stage.github.issues) == before
    replies = await stage.inbound.wait_for(
        lambda v: v["source"]["integration_id"] == integration_id, count=2
    )
    assert len(replies) == 2 and replies[0] == replies[1]  # one envelope id: one message
    doc = await requests.find_one(query)
    assert doc is not None and doc["replied"] is True


# -- idempotency -------------------------------------------------------------------------------


async def test_a_retry_with_the_key_replays_the_answer_and_creates_nothing(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    before = len(stage.github.issues)
    first = await stage.create(integration_id, github_body(), key="key-seq")
    again = await stage.create(integration_id, github_body(), key="key-seq")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(stage.github.issues) == before + 1
    # The same key on another integration is another request.
    other = await stage.github_integration()
    assert (await stage.create(other, github_body(), key="key-seq")).status_code == 201
    assert len(stage.github.issues) == before + 2


async def test_the_key_with_another_body_is_a_conflict(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    assert (await stage.create(integration_id, github_body(), key="key-body")).status_code == 201
    before = len(stage.github.issues)
    answer = await stage.create(integration_id, github_body(title="Other"), key="key-body")
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "idempotency_key_reused"
    assert len(stage.github.issues) == before


async def test_two_concurrent_calls_with_one_key_create_one_issue(stage: Stage) -> None:
    integration_id = await stage.jira_integration()
    before = len(stage.jira.issues)
    stage.jira.issue_delay = 0.5
    answers = await asyncio.gather(
        stage.create(integration_id, jira_body(), key="key-race"),
        stage.create(integration_id, jira_body(), key="key-race"),
    )
    assert len(stage.jira.issues) == before + 1
    assert sorted(a.status_code for a in answers) == [201, 409]
    busy = next(a for a in answers if a.status_code == 409)
    assert error_of(busy)["code"] == "idempotency_in_progress"
    assert busy.headers["Retry-After"]
    # Asked again once the first is done: its answer.
    stage.jira.issue_delay = 0.0
    again = await stage.create(integration_id, jira_body(), key="key-race")
    created = next(a for a in answers if a.status_code == 201)
    assert (again.status_code, again.json()) == (201, created.json())
    assert len(stage.jira.issues) == before + 1


async def test_a_failed_call_releases_the_key(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    stage.github.secondary_rate_limit = True
    refused = await stage.create(integration_id, github_body(), key="key-fail")
    assert refused.status_code == 503
    stage.github.secondary_rate_limit = False
    answer = await stage.create(integration_id, github_body(), key="key-fail")
    assert answer.status_code == 201 and "Idempotent-Replayed" not in answer.headers


async def test_a_dead_holders_claim_is_taken_over_after_its_lease(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    requests = db_of(stage.sync)[COLLECTION]
    digest = body_hash(CREATE_ISSUE, GitHubIssueCreate.model_validate(github_body()))
    now = utcnow()
    for key, lease_until in (("key-live", now + timedelta(seconds=60)), ("key-dead", now)):
        await requests.insert_one(
            {
                "_id": f"act_{uuid.uuid4().hex}",
                "integration_id": integration_id,
                "key": key,
                "action": CREATE_ISSUE,
                "body_hash": digest,
                "state": "pending",
                "owner": "a process that died",
                "lease_until": lease_until - timedelta(seconds=1),
                "created_at": now,
                "expires_at": now + timedelta(hours=24),
            }
        )
    busy = await stage.create(integration_id, github_body(), key="key-live")
    assert busy.status_code == 409 and error_of(busy)["code"] == "idempotency_in_progress"
    taken = await stage.create(integration_id, github_body(), key="key-dead")
    assert taken.status_code == 201, taken.text
    doc = await requests.find_one({"integration_id": integration_id, "key": "key-dead"})
    assert doc is not None and doc["state"] == "done" and doc["response"] == taken.json()
    assert doc["expires_at"] > now  # the TTL index removes it after 24 hours


# -- tokens ------------------------------------------------------------------------------------


async def test_a_token_the_provider_stopped_taking_is_refreshed_once(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    old = (await tokens(stage.oauth, integration_id))["access_token"]
    stage.github.access_tokens[old].expires_at = 0  # expired at GitHub before its time
    grants, calls = stage.github.refresh_grants, stage.github.issue_requests
    answer = await stage.create(integration_id, github_body())
    assert answer.status_code == 201, answer.text
    assert stage.github.refresh_grants == grants + 1
    assert stage.github.issue_requests == calls + 2  # 401, then the fresh token
    assert (await tokens(stage.oauth, integration_id))["access_token"] != old


async def test_a_token_about_to_expire_is_refreshed_before_the_call(stage: Stage) -> None:
    integration_id = await stage.jira_integration()
    await expire_soon(stage.oauth, integration_id, seconds_left=5)
    grants, calls = stage.jira.refresh_grants, stage.jira.issue_requests
    answer = await stage.create(integration_id, jira_body())
    assert answer.status_code == 201, answer.text
    assert stage.jira.refresh_grants == grants + 1
    assert stage.jira.issue_requests == calls + 1


async def test_a_refused_refresh_puts_the_integration_in_error(stage: Stage) -> None:
    integration_id = await stage.jira_integration()
    stage.jira.revoke((await tokens(stage.oauth, integration_id))["access_token"])
    answer = await stage.create(integration_id, jira_body())
    assert answer.status_code == 409, answer.text
    assert error_of(answer)["code"] == "integration_not_connected"
    assert "reconnect" in error_of(answer)["message"]
    assert (await stored(stage.oauth, integration_id))["status"] == "error"
    await stage.event(integration_id, "action.failed")


async def test_a_second_401_puts_the_integration_in_error(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    stage.github.reject_tokens = True
    grants = stage.github.refresh_grants
    answer = await stage.create(integration_id, github_body())
    assert answer.status_code == 409, answer.text
    error = error_of(answer)
    assert error["code"] == "integration_not_connected"
    assert "reconnect" in error["message"] and "POST /api/auth/oauth/connect" in error["message"]
    assert stage.github.refresh_grants == grants + 1
    assert (await stored(stage.oauth, integration_id))["status"] == "error"
    [event] = await stage.event(integration_id, "integration.error")
    assert event["data"]["reason"] == "token_rejected"
    [failed] = await stage.event(integration_id, "action.failed")
    assert failed["data"]["error"]["code"] == "integration_not_connected"
    assert failed["data"]["upstream_status"] == 401
    # And from now on, 409 without calling GitHub.
    stage.github.reject_tokens = False
    calls = stage.github.issue_requests
    again = await stage.create(integration_id, github_body())
    assert again.status_code == 409 and stage.github.issue_requests == calls


# -- provider refusals -------------------------------------------------------------------------


async def test_github_refusals(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    unknown_repo = await stage.create(integration_id, github_body(repo="octocat/missing"))
    assert unknown_repo.status_code == 422
    assert error_of(unknown_repo)["code"] == "repository_not_accessible"
    assert "octocat/missing" in error_of(unknown_repo)["message"]
    assert "Not Found" in error_of(unknown_repo)["message"]

    unknown_label = await stage.create(integration_id, github_body(labels=["nope"]))
    assert unknown_label.status_code == 422
    assert error_of(unknown_label) == {
        "code": "validation_failed",
        "message": "GitHub refused the issue: Validation Failed (Label labels invalid)",
    }
    [failed, *_] = await stage.event(integration_id, "action.failed")
    assert failed["data"]["upstream_status"] == 404

    stage.github.secondary_rate_limit = True
    limited = await stage.create(integration_id, github_body())
    assert limited.status_code == 503
    assert limited.headers["Retry-After"] == "60"
    assert error_of(limited)["code"] == "provider_rate_limited"
    assert "secondary rate limit" in error_of(limited)["message"]
    stage.github.secondary_rate_limit = False

    stage.github.issue_outage = 1
    down = await stage.create(integration_id, github_body())
    assert down.status_code == 503 and error_of(down)["code"] == "provider_unavailable"
    assert down.headers["Retry-After"]


async def test_jira_refusals_name_the_project_or_issue_type(stage: Stage) -> None:
    integration_id = await stage.jira_integration()
    project = await stage.create(integration_id, jira_body(project_key="NOPE"))
    assert project.status_code == 422
    assert error_of(project)["code"] == "project_unknown"
    assert "NOPE" in error_of(project)["message"]
    assert "Specify a valid project ID or key" in error_of(project)["message"]

    issue_type = await stage.create(integration_id, jira_body(issue_type="Epic Saga"))
    assert issue_type.status_code == 422
    assert error_of(issue_type)["code"] == "issue_type_unknown"
    assert "Epic Saga" in error_of(issue_type)["message"]


# -- our own refusals --------------------------------------------------------------------------


async def test_what_is_refused_before_any_call(stage: Stage) -> None:
    github_id = await stage.github_integration()
    calls = stage.github.issue_requests

    missing = await stage.create("int_missing", github_body())
    assert missing.status_code == 404

    unauthenticated = await stage.sync.client.post(
        f"/api/integrations/{github_id}/actions/create-issue", json=github_body()
    )
    assert unauthenticated.status_code == 401

    wrong = await stage.create(github_id, jira_body())
    assert wrong.status_code == 422 and "it takes repo, title" in error_of(wrong)["message"]

    for body in (
        github_body(reply=True),  # nothing to reply to
        github_body(repo="not a repo"),
        github_body(title=" "),
        github_body(message={**MESSAGE, "permalink": "javascript:alert(1)"}),
        {**github_body(), "project_key": "PROJ"},
    ):
        answer = await stage.create(github_id, body)
        assert answer.status_code == 422, (body, answer.text)
        assert error_of(answer)["code"] == "invalid"
    for key in ("has space", "k" * 201):
        bad_key = await stage.create(github_id, github_body(), key=key)
        assert bad_key.status_code == 400 and error_of(bad_key)["code"] == "bad_idempotency_key"

    # A GitHub integration for webhooks only: no OAuth connection.
    created = await stage.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "github",
            "workspace_id": "ws_oauth",
            "settings": {"webhook_secret": "s"},
        },
        headers=admin_headers(),
    )
    assert created.status_code == 201, created.text
    unconnected = await stage.create(created.json()["id"], github_body())
    assert unconnected.status_code == 409
    assert error_of(unconnected)["code"] == "integration_not_connected"
    # GitHub refuses settings.bot_token: only OAuth is offered as the way in.
    assert "POST /api/auth/oauth/connect" in error_of(unconnected)["message"]
    assert "bot_token" not in error_of(unconnected)["message"]

    discord = await stage.oauth.client.post(
        "/api/integrations",
        json={
            "provider": "discord",
            "workspace_id": "ws_oauth",
            "settings": {"public_key": "ab" * 32},
        },
        headers=admin_headers(),
    )
    assert discord.status_code == 201, discord.text
    unsupported = await stage.create(discord.json()["id"], github_body())
    assert unsupported.status_code == 422
    assert error_of(unsupported)["code"] == "action_unsupported"

    assert stage.github.issue_requests == calls
    jira_id = await stage.jira_integration()
    newline = await stage.create(jira_id, jira_body(summary="two\nlines"))
    assert newline.status_code == 422


async def test_a_wrong_body_is_told_for_the_integrations_provider(stage: Stage) -> None:
    """The body is GitHub's or Jira's by the integration: a wrong one is answered with what
    is wrong for that provider alone, each place as the caller wrote it (`body`,
    `body.title`), never pydantic's name for a union member."""
    github_id = await stage.github_integration()
    jira_id = await stage.jira_integration()

    async def details(integration_id: str, body: Any) -> list[tuple[list[str], str]]:
        answer = await stage.create(integration_id, body)
        assert answer.status_code == 422, answer.text
        error = error_of(answer)
        assert error["code"] == "invalid"
        found = [(d["loc"], d["message"]) for d in answer.json()["error"]["details"]]
        for loc, message in found:
            assert loc[0] == "body" and not any("[" in p or "IssueCreate" in p for p in loc)
            assert "IssueCreate" not in message
        return found

    assert await details(github_id, github_body(reply=True)) == [
        (["body"], "reply: true needs the message to reply to")
    ]
    [(loc, message)] = await details(github_id, github_body(title=" "))
    assert loc == ["body", "title"] and "at least 1 character" in message
    # A Jira integration's wrong body: Jira's fields, not GitHub's.
    jira_said = await details(jira_id, {"summary": "two\nlines"})
    assert ["body", "project_key"] in [loc for loc, _ in jira_said]
    assert ["body", "summary"] in [loc for loc, _ in jira_said]
    assert not any(loc[-1] in ("repo", "title") for loc, _ in jira_said)
    # Not an object at all.
    assert await details(github_id, ["x"]) == [(["body"], "the body is a JSON object")]


async def test_the_canonical_log_line_names_the_provider_call(stage: Stage) -> None:
    integration_id = await stage.github_integration()
    stage.github.secondary_rate_limit = True
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        answer = await stage.create(integration_id, github_body(), key="key-log")
    assert answer.status_code == 503
    [line] = [
        entry
        for entry in logs
        if entry["event"] == "http_request" and entry.get("route", "").endswith("/create-issue")
    ]
    assert line["status"] == 503
    assert (line["provider"], line["action"], line["outcome"], line["upstream_status"]) == (
        "github",
        "create_issue",
        "rate_limited",
        403,
    )
    assert line["idempotency_key"] == "key-log"
