"""Provider webhooks through a real gateway and oauth service, onto a real broker.

Integrations are created through the oauth service's API (Telegram's against a fake Bot API
on loopback); requests are signed with independent libraries (tests/gateway/signing.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import pytest

from services.gateway.app import definition as gateway_definition
from services.oauth.app import definition as oauth_definition
from services.sandbox.telegram import FakeTelegram
from shared.domain import claim_check
from shared.domain.platform import create_app
from shared.kernel.envelopes import Topic
from shared.kernel.ids import derived_id, utcnow
from shared.kernel.mongo import connect
from shared.kernel.settings import GatewaySettings, ServiceSettings
from shared.providers.base import OUTCOME_HEADER
from tests.gateway import signing
from tests.gateway.signing import Case, provider_cases
from tests.infra import Infra
from tests.support import (
    KafkaTap,
    RunningService,
    admin_headers,
    github_corpus,
    make_settings,
    new_namespace,
    refreshed,
    serve,
    until,
)

SLACK_APP_SECRET = "slack-app-level-signing-secret"


@pytest.fixture(scope="module")
def gateway_settings(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> GatewaySettings:
    return make_settings(
        GatewaySettings,
        infra,
        new_namespace(),
        tmp_path_factory.mktemp("gateway"),
        slack_signing_secret=SLACK_APP_SECRET,
        cache_refresh_seconds=0.5,
    )


@pytest.fixture(scope="module")
async def oauth(
    gateway_settings: GatewaySettings, telegram_api: tuple[FakeTelegram, str]
) -> AsyncIterator[RunningService]:
    settings = ServiceSettings.model_validate(
        {**gateway_settings.model_dump(), "telegram_api_base": telegram_api[1]}
    )
    async with serve(create_app(oauth_definition(), settings)) as running:
        yield running


@pytest.fixture
async def provider_events(
    gateway: RunningService, gateway_settings: GatewaySettings
) -> AsyncIterator[KafkaTap]:
    async with KafkaTap.of(gateway_settings, Topic.PROVIDER_EVENTS) as tap:
        yield tap


async def integration(oauth: RunningService, provider: str, **fields: Any) -> dict[str, Any]:
    body = {"provider": provider, "workspace_id": "ws_" + uuid.uuid4().hex[:6], **fields}
    answer = await oauth.client.post("/api/integrations", json=body, headers=admin_headers())
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def post(gateway: RunningService, path: str, signed: signing.Signed) -> Any:
    return await gateway.client.post(path, content=signed.body, headers=signed.headers)


def state(service: RunningService) -> Any:
    """The in-process service's app state (its caches, writer and dedupe window)."""
    return cast(Any, service.app).state


def of(integration_doc: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda value: value["integration_id"] == integration_doc["id"]


def path_of(doc: dict[str, Any]) -> str:
    return f"/api/webhooks/{doc['provider']}/{doc['id']}"


# -- GitHub ---------------------------------------------------------------------------------


async def test_every_real_github_payload_is_accepted_and_published(
    gateway: RunningService, oauth: RunningService, provider_events: KafkaTap
) -> None:
    secret = "gh-" + uuid.uuid4().hex
    doc = await integration(oauth, "github", settings={"webhook_secret": secret})
    files = github_corpus()
    expected: dict[str, str] = {}
    limit = asyncio.Semaphore(16)

    async def send(path: Path) -> None:
        delivery = str(uuid.uuid4())
        expected[delivery] = path.parent.name
        async with limit:
            answer = await post(
                gateway,
                path_of(doc),
                signing.github(secret, path.parent.name, path.read_bytes(), delivery),
            )
        assert answer.status_code == 200, (path, answer.text)

    await asyncio.gather(*(send(path) for path in files))
    published = await provider_events.wait_for(of(doc), count=len(files), timeout=60)
    assert len(published) == len(files)
    by_delivery = {value["delivery_id"]: value for value in published}
    assert set(by_delivery) == set(expected)
    for delivery, event in expected.items():
        envelope = by_delivery[delivery]
        assert envelope["event_type"] == event
        assert envelope["provider"] == "github"
        assert envelope["workspace_id"] == doc["workspace_id"]
        assert envelope["id"] == derived_id("github", doc["id"], delivery)
    sample = next(path for path in files if path.parent.name == "push")
    push = next(
        v
        for v in published
        if v["event_type"] == "push" and v["payload"] == json.loads(sample.read_bytes())
    )
    assert push["payload"]["ref"]


async def test_github_redelivery_is_acknowledged_but_published_once(
    gateway: RunningService, oauth: RunningService, provider_events: KafkaTap
) -> None:
    secret = "gh-" + uuid.uuid4().hex
    doc = await integration(oauth, "github", settings={"webhook_secret": secret})
    signed = signing.github(secret, "ping", b'{"zen": "Keep it logically awesome.", "hook_id": 1}')
    outcomes = []
    for _ in range(3):
        answer = await post(gateway, path_of(doc), signed)
        assert answer.status_code == 200
        outcomes.append(answer.headers[OUTCOME_HEADER])
    # The 200 says which it was, to whoever sends by hand (the sandbox's page).
    assert outcomes == ["accepted", "duplicate", "duplicate"]
    await state(gateway).counters.written()  # the seen-ids batch is in MongoDB
    again = await post(gateway, path_of(doc), signed)
    assert again.status_code == 200 and again.headers[OUTCOME_HEADER] == "duplicate"
    assert len(await provider_events.settled(of(doc))) == 1
    metrics = (await gateway.client.get("/metrics")).text
    assert 'hookhub_gateway_webhooks_total{outcome="duplicate",provider="github"}' in metrics
    assert 'route="/api/webhooks/{provider}/{integration_id}"' in metrics, "labelled by template"


async def test_a_redelivery_to_another_replica_is_published_once(
    gateway: RunningService,
    gateway_settings: GatewaySettings,
    oauth: RunningService,
    provider_events: KafkaTap,
) -> None:
    secret = "gh-" + uuid.uuid4().hex
    doc = await integration(oauth, "github", settings={"webhook_secret": secret})
    body = b'{"zen": "Design for failure.", "hook_id": 2}'
    first = signing.github(secret, "ping", body)
    async with serve(create_app(gateway_definition(), gateway_settings)) as replica:
        assert (await post(gateway, path_of(doc), first)).status_code == 200
        # The first replica's writer puts its id in MongoDB; the other's in-memory window
        # reads it from the new bucket documents.
        await state(gateway).counters.written()
        delivered = derived_id("github", doc["id"], first.headers["x-github-delivery"])
        window = state(replica).dedupe_window
        await until(lambda: window.might_contain(delivered), timeout=30, what="the id read")
        assert (await post(replica, path_of(doc), first)).status_code == 200
        new = signing.github(secret, "ping", body)
        assert (await post(replica, path_of(doc), new)).status_code == 200
        metrics = (await replica.client.get("/metrics")).text
    assert "hookhub_gateway_dedupe_window_ready 1.0" in metrics, "answered by the window"
    assert 'hookhub_gateway_webhooks_total{outcome="duplicate",provider="github"} 1.0' in metrics
    published = await provider_events.settled(of(doc))
    assert sorted(p["delivery_id"] for p in published) == sorted(
        [first.headers["x-github-delivery"], new.headers["x-github-delivery"]]
    )


async def test_oversized_github_payload_goes_through_the_claim_check(
    gateway: RunningService,
    oauth: RunningService,
    provider_events: KafkaTap,
    gateway_settings: GatewaySettings,
) -> None:
    secret = "gh-" + uuid.uuid4().hex
    doc = await integration(oauth, "github", settings={"webhook_secret": secret})
    body = json.dumps({"ref": "refs/heads/main", "commits": ["x" * 1000] * 3000}).encode()
    assert len(body) > 2 * gateway_settings.kafka_max_message_bytes
    answer = await post(gateway, path_of(doc), signing.github(secret, "push", body))
    assert answer.status_code == 200, answer.text
    [envelope] = await provider_events.wait_for(of(doc))
    assert envelope.get("payload") is None
    assert envelope["payload_ref"].startswith("gridfs:payloads/")
    client = connect(gateway_settings, "test")
    try:
        stored = await claim_check.load(client[gateway_settings.mongo_db], envelope["payload_ref"])
    finally:
        await client.close()
    assert stored == body, "the exact bytes, not truncated"


# -- every provider: the same bad input gets the same answers --------------------------------


CASES = provider_cases()


def tampered(signed: signing.Signed) -> signing.Signed:
    return signing.Signed(signed.body.replace(b"}", b', "x": 1}', 1), signed.headers)


SIGNATURE_HEADERS = {
    "x-hub-signature-256",
    "x-slack-signature",
    "x-signature-ed25519",
    "x-telegram-bot-api-secret-token",
    "x-hub-signature",
}


def _raw(headers: dict[str, str]) -> dict[bytes, bytes]:
    return {name.encode(): value.encode() for name, value in headers.items()}


def without_signature(signed: signing.Signed) -> signing.Signed:
    return signing.Signed(
        signed.body, {k: v for k, v in signed.headers.items() if k not in SIGNATURE_HEADERS}
    )


@pytest.fixture(scope="module")
async def case_integrations(
    oauth: RunningService, telegram_api: tuple[FakeTelegram, str]
) -> dict[str, dict[str, Any]]:
    telegram_api[0].add_bot("1:ok", 1001, "case_bot")
    return {
        name: await integration(oauth, name, settings=case.settings) for name, case in CASES.items()
    }


@pytest.mark.parametrize("provider", list(CASES))
async def test_valid_and_forged_requests(
    provider: str,
    gateway: RunningService,
    oauth: RunningService,
    provider_events: KafkaTap,
    case_integrations: dict[str, dict[str, Any]],
) -> None:
    case, doc = CASES[provider], case_integrations[provider]
    path = path_of(doc)
    marker = uuid.uuid4().hex[:12]
    good = case.valid(marker)

    # Telegram's secret token authenticates the sender, not the body (TLS protects that),
    # so a changed body cannot be told apart there.
    forgeries = 3 if provider != "telegram" else 2
    if provider != "telegram":
        assert (await post(gateway, path, tampered(good))).status_code == 401
    assert (await post(gateway, path, without_signature(good))).status_code == 401
    other = provider_cases()[provider].valid(marker)  # same shape, another secret or key
    assert (await post(gateway, path, other)).status_code == 401

    accepted = await post(gateway, path, good)
    assert accepted.status_code == 200, accepted.text
    redelivered = await post(gateway, path, good)
    assert redelivered.status_code == 200

    published = await provider_events.settled(
        lambda v: of(doc)(v) and marker in json.dumps(v["payload"])
    )
    assert len(published) == 1, "forgeries publish nothing, the redelivery nothing more"
    assert published[0]["provider"] == provider

    status = (
        await oauth.client.get(f"/api/integrations/{doc['id']}/status", headers=admin_headers())
    ).json()
    for _ in range(30):
        if status["event_count"] >= 1 and status["error_count"] >= forgeries:
            break
        await asyncio.sleep(0.2)
        status = (
            await oauth.client.get(f"/api/integrations/{doc['id']}/status", headers=admin_headers())
        ).json()
    assert status["event_count"] == 1
    assert status["error_count"] == forgeries
    assert status["last_event_at"] is not None


@pytest.mark.parametrize("provider", list(CASES))
async def test_a_header_hookhub_does_not_read_changes_nothing_whatever_its_bytes(
    provider: str,
    gateway: RunningService,
    edge: RunningService,
    provider_events: KafkaTap,
    case_integrations: dict[str, dict[str, Any]],
) -> None:
    """`X-Foo: caf\\xe9` is legal HTTP (obs-text), and a sender's proxy may add such a
    header: the webhook is taken as without it, at the gateway and through the origin (once
    a 400 there). A header hookhub reads that is not UTF-8 is a 400 naming it."""
    case, doc = CASES[provider], case_integrations[provider]
    odd = {b"x-foo": b"caf\xe9", b"x-forwarded-note": b"\xff\xfe"}
    markers = []
    for via in (gateway, edge):
        marker = uuid.uuid4().hex[:12]
        signed = case.valid(marker)
        answer = await via.client.post(
            path_of(doc), content=signed.body, headers={**_raw(signed.headers), **odd}
        )
        assert answer.status_code == 200, (via.base_url, answer.text)
        markers.append(marker)
    published = await provider_events.wait_for(
        lambda v: of(doc)(v) and any(m in json.dumps(v["payload"]) for m in markers), count=2
    )
    assert len(published) == 2

    signed = case.valid(uuid.uuid4().hex[:12])
    [read] = [name for name in signed.headers if name in SIGNATURE_HEADERS]
    for via in (gateway, edge):
        answer = await via.client.post(
            path_of(doc),
            content=signed.body,
            headers={**_raw(signed.headers), read.encode(): b"v0=caf\xe9"},
        )
        assert answer.status_code == 400, (via.base_url, answer.text)
        assert answer.json()["error"] == {
            "code": "bad_header",
            "message": f"the value of the {read} header is not UTF-8 (hookhub reads this header)",
        }


@pytest.mark.parametrize("provider", list(CASES))
async def test_a_refused_webhook_is_recorded_with_why_when_and_its_delivery_id(
    provider: str,
    gateway: RunningService,
    oauth: RunningService,
    case_integrations: dict[str, dict[str, Any]],
) -> None:
    doc = case_integrations[provider]
    forged = provider_cases()[provider].valid(uuid.uuid4().hex[:12])  # another secret or key
    refused = await post(gateway, path_of(doc), forged)
    assert refused.status_code == 401
    await state(gateway).provider_ingress.writer.written()

    url = f"/api/integrations/{doc['id']}"
    stored = (await oauth.client.get(url, headers=admin_headers())).json()
    status = (await oauth.client.get(f"{url}/status", headers=admin_headers())).json()
    assert stored["error_count"] >= 1
    refusal = stored["last_webhook_error"]
    assert status["last_webhook_error"] == refusal
    assert refusal["code"] == "invalid_signature"
    assert refusal["message"] == refused.json()["error"]["message"]
    assert abs(time.time() - datetime.fromisoformat(refusal["at"]).timestamp()) < 600
    header = {"github": "x-github-delivery", "jira": "x-atlassian-webhook-identifier"}
    expected = forged.headers[header[provider]] if provider in header else None
    assert refusal["delivery_id"] == expected


@pytest.mark.parametrize("provider", list(CASES))
async def test_unknown_disabled_oversized_and_malformed(
    provider: str,
    gateway: RunningService,
    oauth: RunningService,
    case_integrations: dict[str, dict[str, Any]],
) -> None:
    case, doc = CASES[provider], case_integrations[provider]
    good = case.valid(uuid.uuid4().hex[:12])
    unknown = await post(gateway, f"/api/webhooks/{provider}/int_unknown", good)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_integration"
    other_provider = "jira" if provider != "jira" else "github"
    assert (
        await post(gateway, f"/api/webhooks/{other_provider}/{doc['id']}", good)
    ).status_code == 404

    huge = signing.Signed(b"{" + b" " * (26 * 1024 * 1024) + b"}", good.headers)
    too_large = await post(gateway, path_of(doc), huge)
    assert too_large.status_code == 413

    malformed_body = b"not json at all"
    if provider == "discord":
        app = signing.DiscordApp()
        await oauth.client.patch(
            f"/api/integrations/{doc['id']}",
            json={"settings": {"public_key": app.public_key}},
            headers=admin_headers(),
        )
        malformed = app.sign(malformed_body)
        CASES["discord"] = Case(
            "discord",
            {"public_key": app.public_key},
            lambda m: app.sign(json.dumps({"id": m, "type": 2, "application_id": "A1"}).encode()),
        )
    else:
        malformed = _resign(provider, case, malformed_body)
    await refreshed(state(gateway).integration_cache)  # the gateway sees the new key
    answer = await post(gateway, path_of(doc), malformed)
    assert answer.status_code == 400, answer.text

    await oauth.client.patch(
        f"/api/integrations/{doc['id']}", json={"enabled": False}, headers=admin_headers()
    )
    await refreshed(state(gateway).integration_cache)
    disabled = await post(gateway, path_of(doc), CASES[provider].valid(uuid.uuid4().hex[:12]))
    assert disabled.status_code == 403
    assert disabled.json()["error"]["code"] == "integration_disabled"
    await oauth.client.patch(
        f"/api/integrations/{doc['id']}", json={"enabled": True}, headers=admin_headers()
    )
    # Enabled again before the next test posts to it (it read 403 once, on a busy machine).
    await refreshed(state(gateway).integration_cache)


@pytest.mark.parametrize("provider", ["github", "slack", "telegram", "jira"])
async def test_a_signed_body_nested_past_the_limit_is_refused_not_published(
    provider: str,
    gateway: RunningService,
    provider_events: KafkaTap,
    case_integrations: dict[str, dict[str, Any]],
) -> None:
    """Acknowledged, it would be lost: no consumer can decode 300 levels, and the provider
    does not send again what was answered 200. Refused, the provider shows the failure."""
    case, doc = CASES[provider], case_integrations[provider]

    def nested(marker: str, depth: int) -> signing.Signed:
        """A valid body of the provider's with a value `depth` levels deep added."""
        body = case.valid(marker).body.rstrip()
        value = b"[" * depth + b"1" + b"]" * depth
        return _resign(provider, case, body[:-1] + b', "x": ' + value + b"}")

    # 100,000 levels: past what any parser follows (once "body is not valid UTF-8 JSON").
    for depth in (300, 100_000):
        answer = await post(gateway, path_of(doc), nested(uuid.uuid4().hex[:12], depth))
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["message"] == "body is nested deeper than 64 levels"
    # Just inside the limit, the same body is taken.
    marker = uuid.uuid4().hex[:12]
    assert (await post(gateway, path_of(doc), nested(marker, 60))).status_code == 200
    published = await provider_events.settled(
        lambda v: of(doc)(v) and marker in json.dumps(v["payload"])
    )
    assert len(published) == 1


def _resign(provider: str, case: Case, body: bytes) -> signing.Signed:
    secret = next(iter(case.settings.values()))
    if provider == "github":
        return signing.github(secret, "push", body)
    if provider == "slack":
        return signing.slack(secret, body)
    if provider == "telegram":
        return signing.Signed(
            body, {"x-telegram-bot-api-secret-token": case.settings["secret_token"]}
        )
    return signing.jira(secret, body)


# -- Slack ------------------------------------------------------------------------------------


async def test_slack_handshakes_commands_retries_and_stale_timestamps(
    gateway: RunningService,
    oauth: RunningService,
    provider_events: KafkaTap,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = uuid.uuid4().hex
    doc = await integration(oauth, "slack", settings={"signing_secret": secret})
    path = path_of(doc)

    challenge = signing.slack(
        secret,
        json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode(),
    )
    answer = await post(gateway, path, challenge)
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "c-123"}

    ssl_check = await gateway.client.post(
        path,
        content=b"ssl_check=1&token=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ssl_check.status_code == 200
    assert ssl_check.content == b""

    # Well past the five minutes either way: the edge itself (300 s in, 301 out) is held
    # against a fixed `now` in tests/shared/test_signing.py. Here the gateway reads its own
    # clock, later than this one by however long the request takes: a timestamp one
    # second in the future of a truncated `time.time()` was inside the window once the
    # request took longer than the second's remaining fraction (CI, 2026-11-30).
    stale = signing.slack(secret, b'{"type": "event_callback"}', timestamp=int(time.time()) - 400)
    assert (await post(gateway, path, stale)).status_code == 401
    future = signing.slack(secret, b'{"type": "event_callback"}', timestamp=int(time.time()) + 400)
    assert (await post(gateway, path, future)).status_code == 401

    command = signing.slack(
        secret, b"command=%2Fdeploy&text=prod&team_id=T9&trigger_id=tr.1&user_id=U1", form=True
    )
    assert (await post(gateway, path, command)).status_code == 200

    event = signing.slack_callback("T9", "Ev1", {"type": "app_mention"})
    first = signing.slack(secret, event)
    retry = signing.slack(secret, event)
    retry.headers.update({"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"})
    # Inside Slack's 3 s: the answer does not wait for the gateway's MongoDB writes (the
    # seen ids, the counters), held here until both webhooks were answered.
    writer, held = state(gateway).counters, asyncio.Event()
    flush = writer.flush

    async def held_flush(*, spread: bool = False) -> None:
        await held.wait()
        await flush(spread=spread)

    monkeypatch.setattr(writer, "flush", held_flush)
    try:
        assert (await post(gateway, path, first)).status_code == 200
        assert (await post(gateway, path, retry)).status_code == 200
        assert not held.is_set()
    finally:
        held.set()

    published = await provider_events.settled(of(doc))
    assert sorted(v["event_type"] for v in published) == [
        "event_callback.app_mention",
        "slash_command",
    ]
    command_event = next(v for v in published if v["event_type"] == "slash_command")
    assert command_event["payload"]["text"] == "prod"
    assert command_event["delivery_id"] == "tr.1"


async def test_slacks_verification_token_is_not_published(
    gateway: RunningService, oauth: RunningService, provider_events: KafkaTap
) -> None:
    secret = uuid.uuid4().hex
    doc = await integration(oauth, "slack", settings={"signing_secret": secret})
    token = "verification-" + uuid.uuid4().hex
    event = json.loads(signing.slack_callback("T9", "Ev-token", {"type": "message"}))
    interaction = {
        "type": "block_actions",
        "token": token,
        "team": {"id": "T9"},
        "trigger_id": "t.2",
    }
    command = urlencode(
        {"command": "/deploy", "token": token, "team_id": "T9", "trigger_id": "t.3"}
    )
    for signed in (
        signing.slack(secret, json.dumps({**event, "token": token}).encode()),
        signing.slack(secret, urlencode({"payload": json.dumps(interaction)}).encode(), form=True),
        signing.slack(secret, command.encode(), form=True),
    ):
        answer = await post(gateway, path_of(doc), signed)
        assert answer.status_code == 200, answer.text

    published = await provider_events.settled(of(doc))
    assert sorted(v["event_type"] for v in published) == [
        "event_callback.message",
        "interactive.block_actions",
        "slash_command",
    ]
    for envelope in published:
        assert token not in json.dumps(envelope), envelope["event_type"]
        assert "token" not in envelope["payload"]


async def test_app_level_urls_route_by_account_or_signature(
    gateway: RunningService,
    oauth: RunningService,
    provider_events: KafkaTap,
    gateway_settings: GatewaySettings,
) -> None:
    team = "T" + uuid.uuid4().hex[:8]
    slack_doc = await integration(oauth, "slack")  # uses the app-level signing secret
    # Which Slack team it is comes with OAuth (a later issue); stand in for it here.
    client = connect(gateway_settings, "test")
    try:
        await client[gateway_settings.mongo_db].integrations.update_one(
            {"_id": slack_doc["id"]}, {"$set": {"account": {"id": team}, "updated_at": utcnow()}}
        )
    finally:
        await client.close()
    await refreshed(state(gateway).integration_cache)  # the account is known there
    body = signing.slack_callback(team, "Ev" + team, {"type": "message"})
    assert (
        await post(gateway, "/api/webhooks/slack", signing.slack(SLACK_APP_SECRET, body))
    ).status_code == 200
    [routed] = await provider_events.wait_for(of(slack_doc))
    assert routed["payload"]["team_id"] == team

    secret_a, secret_b = uuid.uuid4().hex, uuid.uuid4().hex
    github_a = await integration(
        oauth, "github", settings={"webhook_secret": secret_a}, is_default=True
    )
    github_b = await integration(
        oauth, "github", settings={"webhook_secret": secret_b}, is_default=True
    )
    await refreshed(state(gateway).integration_cache)
    answer = await post(
        gateway, "/api/webhooks/github", signing.github(secret_b, "star", b'{"action": "created"}')
    )
    assert answer.status_code == 200, answer.text
    [event] = await provider_events.wait_for(of(github_b))
    assert event["event_type"] == "star"
    assert await provider_events.settled(of(github_a)) == []
    forged = await post(gateway, "/api/webhooks/github", signing.github("nobody", "star", b"{}"))
    assert forged.status_code == 401
    assert (
        await post(gateway, "/api/webhooks/gitlab", signing.github(secret_a, "star", b"{}"))
    ).status_code == 404


async def test_an_app_level_event_for_an_integration_made_a_moment_ago_is_routed(
    oauth: RunningService, gateway_settings: GatewaySettings
) -> None:
    """A Slack event that comes before this replica's cache has seen the integration (made a
    second ago through oauth) is routed once the cache has caught up, not refused with 404.
    The cache's own refresh is an hour away here: only the catch-up can find it."""
    settings = gateway_settings.model_copy(update={"cache_refresh_seconds": 3600.0})
    async with (
        serve(create_app(gateway_definition(), settings)) as slow,
        KafkaTap.of(settings, Topic.PROVIDER_EVENTS) as tap,
    ):
        await until(lambda: state(slow).integration_cache.loaded, what="the first refresh")
        team = "T" + uuid.uuid4().hex[:8]
        doc = await integration(oauth, "slack")
        client = connect(settings, "test")
        try:
            await client[settings.mongo_db].integrations.update_one(
                {"_id": doc["id"]}, {"$set": {"account": {"id": team}, "updated_at": utcnow()}}
            )
        finally:
            await client.close()
        assert state(slow).integration_cache.get(doc["id"]) is None  # not seen yet
        body = signing.slack_callback(team, "Ev" + team, {"type": "message"})
        answer = await post(slow, "/api/webhooks/slack", signing.slack(SLACK_APP_SECRET, body))
        assert answer.status_code == 200, answer.text
        [routed] = await tap.wait_for(of(doc))
        assert routed["payload"]["team_id"] == team
        # An account nobody has is still refused, after the same catch-up.
        stranger = signing.slack_callback("T0NOBODY", "Ev" + team + "x", {"type": "message"})
        refused = await post(slow, "/api/webhooks/slack", signing.slack(SLACK_APP_SECRET, stranger))
        assert refused.status_code == 404, refused.text


# -- Discord, Telegram, Jira -------------------------------------------------------------------


async def test_discord_ping_commands_components_and_webhook_events(
    gateway: RunningService, oauth: RunningService, provider_events: KafkaTap
) -> None:
    app = signing.DiscordApp()
    doc = await integration(oauth, "discord", settings={"public_key": app.public_key})
    path = path_of(doc)
    ping = await post(gateway, path, app.sign(b'{"id": "p1", "type": 1, "application_id": "A1"}'))
    assert ping.json() == {"type": 1}
    command = await post(
        gateway,
        path,
        app.sign(b'{"id": "c1", "type": 2, "application_id": "A1", "data": {"name": "deploy"}}'),
    )
    assert command.json() == {"type": 5, "data": {"flags": 64}}
    component = await post(
        gateway,
        path,
        app.sign(b'{"id": "m1", "type": 3, "application_id": "A1", "data": {"custom_id": "ok"}}'),
    )
    assert component.json() == {"type": 6}
    event_ping = await post(
        gateway, path, app.sign(b'{"version": 1, "application_id": "A1", "type": 0}')
    )
    assert event_ping.status_code == 204
    garbage_signature = app.sign(b'{"id": "c2", "type": 2, "application_id": "A1"}')
    garbage_signature.headers["x-signature-ed25519"] = "00" * 64
    assert (await post(gateway, path, garbage_signature)).status_code == 401
    # Signed, but over a timestamp that is no integer or out of the 5-minute window.
    for n, stamp in enumerate(
        ["978307200", "99999999999", "old-capture", str(int(time.time()) - 301)]
    ):
        body = b'{"id": "s%d", "type": 2, "application_id": "A1"}' % n
        stale = await post(gateway, path, app.sign(body, timestamp=stamp))
        assert stale.status_code == 401, (stamp, stale.text)
        assert stale.json()["error"]["code"] == "invalid_signature"

    published = await provider_events.settled(of(doc))
    assert sorted(v["event_type"] for v in published) == [
        "application_command",
        "message_component",
    ]
    assert {v["delivery_id"] for v in published} == {"c1", "m1"}


async def test_telegram_integration_sets_its_webhook_and_dedupes_updates(
    gateway: RunningService,
    oauth: RunningService,
    provider_events: KafkaTap,
    telegram_api: tuple[FakeTelegram, str],
) -> None:
    fake, _ = telegram_api
    fake.add_bot("777:good", 777, "hookhub_test_bot")
    bad = await oauth.client.post(
        "/api/integrations",
        json={"provider": "telegram", "workspace_id": "ws", "settings": {"bot_token": "777:bad"}},
        headers=admin_headers(),
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "telegram_refused"

    doc = await integration(oauth, "telegram", settings={"bot_token": "777:good"})
    assert doc["account"] == {"id": "777", "name": "hookhub_test_bot"}
    assert doc["status"] == "connected"
    assert doc["settings_configured"] == ["bot_token", "secret_token"]
    hook = fake.webhooks["777:good"]
    assert hook["url"] == f"http://hookhub.test/api/webhooks/telegram/{doc['id']}"
    secret = hook["secret_token"]
    assert len(secret) >= 32
    assert "777:good" not in json.dumps(doc) and secret not in json.dumps(doc), "write-only"

    update = {"update_id": 5001, "message": {"message_id": 1, "text": "hi", "chat": {"id": 42}}}
    for _ in range(2):
        assert (
            await post(gateway, path_of(doc), signing.telegram(secret, update))
        ).status_code == 200
    assert (await post(gateway, path_of(doc), signing.telegram("wrong", update))).status_code == 401
    [event] = await provider_events.settled(of(doc))
    assert event["event_type"] == "message"
    assert event["delivery_id"] == "5001"


async def test_jira_event_type_and_identifier(
    gateway: RunningService, oauth: RunningService, provider_events: KafkaTap
) -> None:
    secret = uuid.uuid4().hex
    doc = await integration(oauth, "jira", settings={"webhook_secret": secret})
    body = json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"key": "HH-1"}}).encode()
    signed = signing.jira(secret, body, identifier="jira-delivery-1")
    for _ in range(2):
        assert (await post(gateway, path_of(doc), signed)).status_code == 200
    sha1 = signing.Signed(body, {**signed.headers, "x-hub-signature": "sha1=" + "0" * 40})
    assert (await post(gateway, path_of(doc), sha1)).status_code == 401
    [event] = await provider_events.settled(of(doc))
    assert event["event_type"] == "jira:issue_updated"
    assert event["delivery_id"] == "jira-delivery-1"


async def test_rate_limit_answers_429_with_retry_after(
    gateway: RunningService, oauth: RunningService
) -> None:
    secret = uuid.uuid4().hex
    doc = await integration(
        oauth, "github", settings={"webhook_secret": secret}, rate_limit_per_second=1
    )
    answers = [
        await post(gateway, path_of(doc), signing.github(secret, "ping", b"{}")) for _ in range(5)
    ]
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 2, codes  # a burst of two seconds' worth
    limited = next(a for a in answers if a.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"


async def test_secrets_are_write_only_and_encrypted_at_rest(
    oauth: RunningService, gateway_settings: GatewaySettings
) -> None:
    secret = "super-secret-" + uuid.uuid4().hex
    doc = await integration(oauth, "github", settings={"webhook_secret": secret})
    assert doc["settings_configured"] == ["webhook_secret"]
    listed = (
        await oauth.client.get(
            "/api/integrations",
            params={"workspace_id": doc["workspace_id"]},
            headers=admin_headers(),
        )
    ).json()
    fetched = (
        await oauth.client.get(f"/api/integrations/{doc['id']}", headers=admin_headers())
    ).json()
    assert secret not in json.dumps(listed) + json.dumps(fetched)
    client = connect(gateway_settings, "test")
    try:
        stored = await client[gateway_settings.mongo_db].integrations.find_one({"_id": doc["id"]})
    finally:
        await client.close()
    assert stored is not None
    assert secret not in json.dumps(stored, default=str)

    for bad in (
        {"provider": "github", "workspace_id": "ws", "settings": {}},
        {
            "provider": "github",
            "workspace_id": "ws",
            "settings": {"webhook_secret": "x", "bogus": "y"},
        },
        {"provider": "discord", "workspace_id": "ws", "settings": {"public_key": "not-hex"}},
    ):
        answer = await oauth.client.post("/api/integrations", json=bad, headers=admin_headers())
        assert answer.status_code == 422, bad
    # A provider the catalog lacks is not a bad setting but an unknown name (docs/api.md).
    unknown = {"provider": "myspace", "workspace_id": "ws"}
    answer = await oauth.client.post("/api/integrations", json=unknown, headers=admin_headers())
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_provider")


async def test_provider_apps_configured_through_the_api_win_over_the_environment(
    gateway: RunningService, oauth: RunningService, provider_events: KafkaTap
) -> None:
    slack_doc = await integration(oauth, "slack", is_default=True)
    api_secret = "slack-api-" + uuid.uuid4().hex
    listed = (await oauth.client.get("/api/providers", headers=admin_headers())).json()
    assert listed["next_cursor"] is None
    assert {app["provider"]: app["source"] for app in listed["data"]}["slack"] == "environment"

    put = await oauth.client.put(
        "/api/providers/slack",
        json={"client_id": "123.456", "signing_secret": api_secret},
        headers=admin_headers(),
    )
    assert put.status_code == 200, put.text
    assert put.json()["source"] == "api"
    assert put.json()["configured"] == ["client_id", "signing_secret"]
    assert api_secret not in put.text
    fetched = await oauth.client.get("/api/providers/slack", headers=admin_headers())
    assert api_secret not in fetched.text and fetched.json()["client_id"] == "123.456"
    bad = await oauth.client.put(
        "/api/providers/github", json={"signing_secret": "x"}, headers=admin_headers()
    )
    assert bad.status_code == 422

    # The app's new secret, and the default Slack integration made above (the app-level URL
    # finds it there: answered 404 until the gateway's integration cache has it).
    await refreshed(state(gateway).provider_app_cache, state(gateway).integration_cache)
    team = "T" + uuid.uuid4().hex[:6]
    body = signing.slack_callback(team, "Ev" + team, {"type": "message"})
    assert (
        await post(gateway, "/api/webhooks/slack", signing.slack(SLACK_APP_SECRET, body))
    ).status_code == 401
    assert (
        await post(gateway, "/api/webhooks/slack", signing.slack(api_secret, body))
    ).status_code == 200
    assert await provider_events.wait_for(lambda v: (v.get("payload") or {}).get("team_id") == team)

    assert (
        await oauth.client.delete("/api/providers/slack", headers=admin_headers())
    ).status_code == 204
    await refreshed(state(gateway).provider_app_cache)
    body2 = body.replace(b"Ev", b"Ex")
    assert (
        await post(gateway, "/api/webhooks/slack", signing.slack(SLACK_APP_SECRET, body2))
    ).status_code == 200
    assert slack_doc["id"]


LONE = "\ud800"  # a lone UTF-16 surrogate: half a character


@pytest.mark.parametrize("provider", ["github", "slack", "discord"])
async def test_a_lone_surrogate_in_a_signed_body_is_a_400_not_a_2xx_then_lost(
    provider: str, gateway: RunningService, case_integrations: dict[str, dict[str, Any]]
) -> None:
    """`"\\ud800"` (as each signer's json.dumps escapes it), validly signed: the standard
    library's parser took it, and the envelope could be written by no consumer."""
    answer = await post(gateway, path_of(case_integrations[provider]), CASES[provider].valid(LONE))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "malformed_webhook"
    assert "lone UTF-16 surrogate" in answer.json()["error"]["message"]
