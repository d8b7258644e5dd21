"""The operator console in headless Chromium, against the stack as `make run` starts it.

Each test drives the pages as an operator would (labels, buttons, links), then checks
what the API says happened. A failed test leaves a screenshot in test-output/console/.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from services.delivery.deliveries.repository import DELIVERIES
from shared.domain.account_links import MAPPING_PROVIDERS
from shared.kernel import tracing
from shared.kernel.http.tls import tls
from shared.providers.catalog import CATALOG
from shared.providers.github.notify import NOTIFIER as GITHUB
from tests.console.conftest import Console, Watched
from tests.delivery.test_list import made
from tests.e2e.stack import Stack
from tests.providers import telegram_exports as tg
from tests.slack_export import ExportBuilder, message
from tests.support import until
from tests.webhook_sink import WebhookSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EXPECT_MS = 20_000


async def sign_in(watched: Watched, console: Console, route: str = "overview") -> Any:
    from playwright.async_api import expect

    page = watched.page
    await page.goto(f"{console.origin}/#/{route}")
    await page.get_by_label("Admin token").fill(console.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=EXPECT_MS)
    return page


def assert_clean(watched: Watched, console: Console) -> None:
    assert watched.dialogs == [], watched.dialogs
    assert [e for e in watched.errors if "status of 4" not in e] == [], watched.errors
    leaked = [url for url in watched.requests if console.token in url]
    assert leaked == [], "the admin token was put in a URL"


async def wait_for(probe: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.3)


async def test_sign_in_refuses_a_wrong_token_and_keeps_the_right_one_in_the_tab(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    p = page.page
    await p.goto(console.origin + "/")
    await expect(p.get_by_role("heading", name="Sign in to hookhub")).to_be_visible()
    await p.get_by_label("Admin token").fill("not-the-token")
    await p.get_by_role("button", name="Sign in").click()
    await expect(p.get_by_role("alert")).to_contain_text("That token was refused")
    # A workspace's key is not the admin's: the operator console is not opened with it.
    key = await console.api.post(
        "/api/workspaces/ws_console_signin/api-keys",
        json={"name": "not the admin", "scopes": ["read", "write"]},
    )
    await p.get_by_label("Admin token").fill(key.json()["key"])
    await p.get_by_role("button", name="Sign in").click()
    await expect(p.get_by_role("alert")).to_contain_text("a workspace's key", timeout=EXPECT_MS)
    assert await p.evaluate("sessionStorage.length") == 0
    await expect(p.get_by_role("navigation", name="Pages")).to_be_hidden()

    await p.get_by_label("Admin token").fill(console.token)
    await p.get_by_role("button", name="Sign in").click()
    await expect(p.get_by_role("heading", name="Overview")).to_be_visible(timeout=EXPECT_MS)
    await expect(p.locator("#health")).to_contain_text("hookhub is ready", timeout=EXPECT_MS)
    for service in ("gateway", "delivery", "oauth", "sync", "importer"):
        await expect(p.locator("#health")).to_contain_text(service)
    assert await p.evaluate("sessionStorage.getItem('hookhub.admin_token')") == console.token
    assert console.token not in await p.evaluate("JSON.stringify(localStorage)")
    assert console.token not in p.url

    # The token changes under it (here: the stored one is tampered with): the next call's
    # 401 sends the console back to sign-in with a message.
    await p.evaluate("sessionStorage.setItem('hookhub.admin_token', 'revoked')")
    await p.get_by_role("link", name="Integrations").click()
    await expect(p.get_by_role("alert")).to_contain_text("refused", timeout=EXPECT_MS)
    await expect(p.get_by_label("Admin token")).to_be_visible()
    assert await p.evaluate("sessionStorage.length") == 0
    assert_clean(page, console)


async def test_create_an_integration_and_copy_its_webhook_url(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    p = await sign_in(page, console, "integrations")
    create = p.locator("section", has=p.get_by_role("heading", name="New integration"))
    await create.get_by_label("Provider", exact=True).select_option("github")
    await create.get_by_label("Workspace id").fill("ws_console")  # none filled in for you
    await create.get_by_label("Name").fill("Acme repos")
    await p.get_by_label("Webhook secret").fill("s3cret-for-github")
    await p.get_by_role("button", name="Create integration").click()

    await expect(p.get_by_role("heading", name="Acme repos")).to_be_visible(timeout=EXPECT_MS)
    integration_id = p.url.rsplit("/", 1)[1]
    stored = (await console.api.get(f"/api/integrations/{integration_id}")).json()
    assert stored["provider"] == "github"
    assert stored["settings_configured"] == ["webhook_secret"]
    url = stored["webhook_url"]
    assert url == f"{console.origin}/api/webhooks/github/{integration_id}"
    await expect(p.locator(".copyable code")).to_have_text(url)
    await expect(p.get_by_text("Payload URL")).to_be_visible()  # GitHub's setup steps
    # The default scopes as the oauth service asks for them (GET /api/providers/github).
    app = (await console.api.get("/api/providers/github")).json()
    assert app["default_scopes"]
    await expect(p.get_by_text("OAuth scopes asked for by default")).to_contain_text(
        " ".join(app["default_scopes"])
    )
    await p.get_by_role("button", name="Copy URL").click()
    await expect(p.get_by_role("button", name="Copy URL")).to_have_text("Copied")
    assert await p.evaluate("navigator.clipboard.readText()") == url
    assert "s3cret-for-github" not in await p.content()

    await p.get_by_role("link", name="← Integrations").click()
    row = p.get_by_role("row").filter(has_text="Acme repos")
    await expect(row).to_contain_text("connected")
    await expect(row).to_contain_text("GitHub")
    assert_clean(page, console)


async def test_stripe_and_generic_hmac_integrations_are_made_from_the_catalog_form(
    page: Watched, console: Console
) -> None:
    """The form is the catalog's (GET /api/provider-catalog): a provider found by typing,
    grouped by category, its settings as the entry says (a secret write-only, choices as a
    select, defaults filled in); once created, the setup steps with this integration's own
    webhook URL, copyable, and its status counting a signed webhook."""
    from playwright.async_api import expect

    p = await sign_in(page, console, "integrations")
    create = p.locator("section", has=p.get_by_role("heading", name="New integration"))
    providers = create.get_by_label("Provider", exact=True)
    # Every provider of the catalog is offered, under its category.
    catalog = (await console.api.get("/api/provider-catalog")).json()["items"]
    await expect(providers.locator("option")).to_have_count(len(catalog))
    await expect(providers.locator("optgroup[label=Payments] option")).to_contain_text(["Stripe"])
    await create.get_by_label("Find a provider").fill("stripe")
    await expect(providers.locator("option")).to_have_count(1)
    await expect(providers).to_have_value("stripe")
    await expect(create).to_contain_text("verification: timestamped_hmac, from stripe-signature")
    await expect(create.get_by_role("link", name="Stripe documentation")).to_have_attribute(
        "href", CATALOG["stripe"].docs_url
    )
    secret_field = create.get_by_label("Signing secret")
    await expect(secret_field).to_have_attribute("type", "password")
    await expect(secret_field).to_have_attribute("required", "")
    await expect(create.locator(".field", has=p.get_by_label("Signing secret"))).to_contain_text(
        "required; write-only: never shown again"
    )
    await create.get_by_label("Workspace id").fill("ws_console_catalog")
    await create.get_by_label("Name").fill("Acme payments")
    # Not a signing secret: the API's refusal under the form, which keeps what was typed.
    await secret_field.fill("sk_test_not_a_signing_secret")
    await p.get_by_role("button", name="Create integration").click()
    await expect(create.get_by_role("alert")).to_contain_text(
        "invalid_setting: setting signing_secret is not valid", timeout=EXPECT_MS
    )
    await expect(create.get_by_label("Name")).to_have_value("Acme payments")
    signing_secret = "whsec_" + uuid.uuid4().hex
    await secret_field.fill(signing_secret)
    await p.get_by_role("button", name="Create integration").click()

    await expect(p.get_by_role("heading", name="Acme payments")).to_be_visible(timeout=EXPECT_MS)
    stripe_id = p.url.rsplit("/", 1)[1]
    stored = (await console.api.get(f"/api/integrations/{stripe_id}")).json()
    assert (stored["provider"], stored["settings_configured"]) == ("stripe", ["signing_secret"])
    url = stored["webhook_url"]
    assert url == f"{console.origin}/api/webhooks/stripe/{stripe_id}"
    steps = p.locator("section", has=p.get_by_role("heading", name="Setting up Stripe"))
    await expect(steps.locator("li")).to_contain_text(
        [step.replace("{webhook_url}", url) for step in CATALOG["stripe"].setup]
    )
    await expect(steps.locator("li code")).to_have_text([url])
    await steps.get_by_role("button", name=f"Copy: {url}").click()
    assert await p.evaluate("navigator.clipboard.readText()") == url
    status = p.locator("section", has=p.get_by_role("heading", name="Status"))
    await expect(status).to_contain_text("timestamped_hmac, from stripe-signature")
    await expect(status).to_contain_text("Events0")
    assert signing_secret not in await p.content()

    # Stripe's documented event, signed as Stripe signs it: the status counts it.
    body, headers = CATALOG["stripe"].signed_sample(
        {"signing_secret": signing_secret}, url, datetime.now(UTC)
    )
    async with httpx.AsyncClient(verify=tls(), timeout=20) as sender:
        sent = await sender.post(url, content=body, headers=headers)
    assert sent.is_success, sent.text

    async def counted() -> Any:
        answer = await console.api.get(f"/api/integrations/{stripe_id}")
        return answer.json()["event_count"] == 1

    assert await wait_for(counted), "the gateway's batched count never came"
    await p.reload()
    await expect(status).to_contain_text("Events1", timeout=EXPECT_MS)
    await expect(status.locator("time")).to_have_count(1)  # its last event

    # A generic HMAC source: its choices as selects, the defaults chosen.
    await p.goto(f"{console.origin}/#/integrations")
    await create.get_by_label("Find a provider").fill("hmac")
    await expect(providers).to_have_value("hmac")
    algorithm = create.get_by_label("Algorithm")
    await expect(algorithm.locator("option")).to_have_text(["sha1", "sha256", "sha512"])
    await expect(algorithm).to_have_value("sha256")
    await expect(create.get_by_label("Separator").locator("option")).to_have_text(
        ["none", ",", "space", ";"]
    )
    await expect(create.get_by_label("Tolerance seconds")).to_have_value("300")
    await expect(create.get_by_label("Secret", exact=False).first).to_have_attribute(
        "type", "password"
    )
    await expect(create.get_by_label("Header", exact=False).first).to_have_attribute("type", "text")
    await create.get_by_label("Workspace id").fill("ws_console_catalog")
    await create.get_by_label("Name").fill("Acme orders")
    hmac_secret = uuid.uuid4().hex
    await create.locator("input[name='settings.secret']").fill(hmac_secret)
    await create.locator("input[name='settings.header']").fill("X-Acme-Signature")
    await algorithm.select_option("sha512")
    await create.get_by_label("Encoding", exact=True).select_option("base64")
    await p.get_by_role("button", name="Create integration").click()

    await expect(p.get_by_role("heading", name="Acme orders")).to_be_visible(timeout=EXPECT_MS)
    hmac_id = p.url.rsplit("/", 1)[1]
    stored = (await console.api.get(f"/api/integrations/{hmac_id}")).json()
    assert "secret" in stored["settings_configured"] and "secret" not in stored["config"]
    config = stored["config"]
    assert (config["header"], config["algorithm"], config["encoding"]) == (
        "X-Acme-Signature",
        "sha512",
        "base64",
    )
    assert "separator" not in config  # none chosen: none sent
    shown = p.locator("section", has=p.get_by_role("heading", name="Settings", exact=True))
    await expect(shown).to_contain_text("Algorithmsha512")
    await expect(shown).to_contain_text("HeaderX-Acme-Signature")
    steps = p.locator("section", has=p.get_by_role("heading", name="Setting up Any HMAC"))
    await expect(steps).to_contain_text(f"URL {stored['webhook_url']}, and the same secret.")
    await expect(steps).to_contain_text("`openssl rand -hex 32`")  # text, as written
    assert hmac_secret not in await p.content()
    assert_clean(page, console)


async def test_an_integration_shows_why_its_last_webhook_was_refused(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    created = await console.api.post(
        "/api/integrations",
        json={
            "provider": "github",
            "workspace_id": "ws_console",
            "name": "Forged at",
            "settings": {"webhook_secret": "the-real-secret"},
        },
    )
    assert created.status_code == 201, created.text
    integration_id = created.json()["id"]
    forged = await console.api.post(
        f"/api/webhooks/github/{integration_id}",
        content=b"{}",
        headers={
            "content-type": "application/json",
            "x-github-event": "ping",
            "x-github-delivery": "forged-delivery-1",
            "x-hub-signature-256": "sha256=" + "0" * 64,
        },
    )
    assert forged.status_code == 401, forged.text

    async def recorded() -> Any:
        answer = await console.api.get(f"/api/integrations/{integration_id}")
        return answer.json()["last_webhook_error"]

    assert await wait_for(recorded), "the gateway's batched write never came"
    p = await sign_in(page, console, f"integrations/{integration_id}")
    errors = p.locator("section", has=p.get_by_role("heading", name="Last errors"))
    await expect(errors).to_contain_text("Last refused webhook", timeout=EXPECT_MS)
    await expect(errors).to_contain_text("invalid_signature: X-Hub-Signature-256 does not match")
    await expect(errors).to_contain_text("forged-delivery-1")
    await expect(errors.locator("time")).to_have_count(1)
    assert_clean(page, console)


async def test_a_github_integration_s_subscriptions_are_created_shown_disabled_and_deleted(
    page: Watched, console: Console, console_stack: Stack
) -> None:
    from playwright.async_api import expect

    integrations = []
    for provider, settings in (
        ("github", {"webhook_secret": "subs-secret"}),
        ("jira", {"webhook_secret": "subs-secret"}),
        ("slack", {}),
    ):
        created = await console.api.post(
            "/api/integrations",
            json={"provider": provider, "workspace_id": "ws_console", "settings": settings},
        )
        assert created.status_code == 201, created.text
        integrations.append(created.json()["id"])
    github_id, jira_id, slack_id = integrations
    base = f"/api/integrations/{github_id}/subscriptions"

    # A chat integration takes no subscriptions: no section on its page.
    p = await sign_in(page, console, f"integrations/{slack_id}")
    await expect(p.get_by_role("heading", name="Actions")).to_be_visible(timeout=EXPECT_MS)
    await expect(p.get_by_role("heading", name="Notification subscriptions")).to_have_count(0)
    # A Jira one's: Jira's events and filters.
    subs = p.locator("section", has=p.get_by_role("heading", name="Notification subscriptions"))
    await p.goto(f"{console.origin}/#/integrations/{jira_id}")
    await expect(subs.get_by_label("issue.created default", exact=True)).to_be_visible(
        timeout=EXPECT_MS
    )
    await expect(subs.get_by_label("Projects", exact=True)).to_be_visible()
    await expect(subs.get_by_label("Repositories", exact=True)).to_have_count(0)

    await p.goto(f"{console.origin}/#/integrations/{github_id}")
    await expect(subs).to_contain_text("No channel is notified yet", timeout=EXPECT_MS)
    # The events to choose from, by kind, the defaults marked.
    pull_requests = subs.get_by_role("group", name="pull_request", exact=True)
    await expect(pull_requests.get_by_role("checkbox")).to_have_count(
        len([e for e in GITHUB.events if e.startswith("pull_request.")])
    )
    await expect(subs.get_by_label("pull_request.synchronize", exact=True)).to_be_visible()
    await expect(subs.get_by_label("push default", exact=True)).to_be_visible()
    await expect(subs.get_by_label("Projects", exact=True)).to_have_count(0)  # Jira's

    await subs.get_by_label("Channel id", exact=True).fill("ch_console_eng")
    await subs.get_by_label("pull_request.opened default", exact=True).check()
    await subs.get_by_label("push default", exact=True).check()
    await subs.get_by_label("Event patterns", exact=True).fill("check_run.*")
    await subs.get_by_label("Leave out events", exact=True).fill("check_run.created")
    await subs.get_by_label("Repositories", exact=True).fill("Codertocat/*")
    await subs.get_by_label("Branches", exact=True).fill("main release/[")
    await subs.get_by_label("Labels, none of", exact=True).fill("wontfix, won't do")
    await subs.get_by_label("Authors left out", exact=True).fill("dependabot*")
    await subs.get_by_label("Leave out bots", exact=True).check()
    await subs.get_by_label("Threads", exact=True).select_option("off")
    await subs.get_by_role("button", name="Create subscription").click()
    await expect(subs.get_by_role("alert")).to_contain_text(
        "invalid_subscription: branches: `release/[` has an unbalanced `[`", timeout=EXPECT_MS
    )
    assert (await console.api.get(base)).json()["data"] == []

    await subs.get_by_label("Branches", exact=True).fill("main release/*")
    await subs.get_by_role("button", name="Create subscription").click()
    await expect(subs).to_contain_text("ch_console_eng is notified", timeout=EXPECT_MS)
    await expect(subs.get_by_label("Channel id", exact=True)).to_have_value("")
    [stored] = (await console.api.get(base)).json()["data"]
    assert {k: stored[k] for k in ("channel_id", "events", "exclude_events", "threads")} == {
        "channel_id": "ch_console_eng",
        "events": ["pull_request.opened", "push", "check_run.*"],
        "exclude_events": ["check_run.created"],
        "threads": "off",
    }
    assert stored["repositories"] == ["Codertocat/*"]
    assert stored["branches"] == ["main", "release/*"]
    assert stored["labels"] == {"any": None, "all": None, "none": ["wontfix", "won't do"]}
    assert stored["authors"] == {"exclude": ["dependabot*"], "bots": False}
    assert stored["projects"] is None and stored["drafts"] is False and stored["enabled"]

    # What the consumer will record, written here as it would: the counts and the last
    # error, shown as text.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        console_stack.env["HOOKHUB_MONGO_URI"], tz_aware=True
    )
    try:
        await client[console_stack.env.get("HOOKHUB_MONGO_DB", "hookhub")][
            "subscriptions"
        ].update_one(
            {"_id": stored["id"]},
            {
                "$set": {
                    "notified_count": 7,
                    "filtered_count": 3,
                    "last_notified_at": datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
                    "last_error": {
                        "code": "channel_not_found",
                        "message": "<b>no such channel</b>",
                        "at": datetime(2026, 11, 21, 10, 5, tzinfo=UTC),
                    },
                }
            },
        )
    finally:
        await client.close()
    await p.reload()
    row = subs.get_by_role("row").filter(has_text="ch_console_eng")
    await expect(row.locator("td[data-label=Notified]")).to_have_text("7", timeout=EXPECT_MS)
    await expect(row.locator("td[data-label=Filtered]")).to_have_text("3")
    await expect(row.locator("td[data-label='Last notified'] time")).to_have_attribute(
        "datetime", re.compile(r"^2026-11-21T10:00:00")
    )
    await expect(row.locator("td[data-label='Last error']")).to_contain_text(
        "channel_not_found: <b>no such channel</b>"
    )
    await expect(row.locator("td[data-label=Events]")).to_contain_text(
        "pull_request.opened, push, check_run.*"
    )
    await expect(row.locator("td[data-label=Events]")).to_contain_text("except check_run.created")
    filters = row.locator("td[data-label=Filters]")
    for line in (
        "repositories: Codertocat/*",
        "branches: main, release/*",
        "labels, none of: wontfix, won't do",
        "not by: dependabot*",
        "no bots",
    ):
        await expect(filters).to_contain_text(line)
    await expect(row.locator("td[data-label=Threads]")).to_have_text("off")
    await expect(row.locator(".badge")).to_have_text("enabled")

    await row.get_by_role("button", name="Disable").click()
    await expect(row.locator(".badge")).to_have_text("disabled", timeout=EXPECT_MS)
    assert (await console.api.get(f"{base}/{stored['id']}")).json()["enabled"] is False
    await expect(row.get_by_role("button", name="Enable")).to_be_visible()

    await row.get_by_role("button", name="Delete").click()
    await expect(subs).to_contain_text("No channel is notified yet", timeout=EXPECT_MS)
    assert (await console.api.get(f"{base}/{stored['id']}")).status_code == 404
    assert page.dialogs == [
        "confirm: Delete the subscription of ch_console_eng? Nothing more is posted through it."
    ]
    page.dialogs.clear()
    assert_clean(page, console)


async def test_an_endpoint_shows_its_secret_once_and_a_test_event_is_delivered(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    fake, base = sink
    fake.on("/console-ok", 200)
    p = await sign_in(page, console, "endpoints")
    await p.get_by_label("Workspace id").fill("ws_console")
    await p.get_by_label("Name", exact=True).fill("Receiver")
    await p.get_by_label("URL", exact=True).fill(base + "/console-ok")
    await p.get_by_label("Events", exact=True).fill("*")
    await p.get_by_label("Send the trace context").check()
    await p.get_by_role("button", name="Create endpoint").click()

    secret_box = p.locator("#secret-once")
    await expect(secret_box).to_contain_text("Shown this once", timeout=EXPECT_MS)
    secret = await secret_box.locator("code").inner_text()
    assert secret.startswith("whsec_")
    await secret_box.get_by_role("link").click()
    await expect(p.get_by_role("heading", name="Receiver")).to_be_visible(timeout=EXPECT_MS)
    assert secret not in await p.content(), "the secret is shown once only"
    await expect(p.locator("dl").first).to_contain_text("sent: each attempt's traceparent")

    await p.get_by_role("button", name="Send test event").click()
    await p.locator("#test-result a").click()
    delivery = p.locator("#delivery")
    await expect(delivery).to_contain_text("completed", timeout=EXPECT_MS)
    await expect(delivery).to_contain_text("Attempt 1")
    await expect(delivery.locator(".attempt")).to_contain_text("200")
    await expect(delivery).to_contain_text("webhook.test")
    [received] = fake.at("/console-ok")
    assert received.headers["webhook-signature"].startswith("v1,")
    # Asked for: the test event goes on in the trace its request started (with no exporter
    # the context is carried all the same, SPEC §18), and its delivery names it.
    trace_id = tracing.trace_id(received.headers["traceparent"])
    assert trace_id is not None
    await expect(delivery).to_contain_text(trace_id)
    assert_clean(page, console)


async def test_a_delivery_shows_its_events_trace_id_and_the_endpoint_its_trace_setting(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    fake, base = sink
    fake.on("/console-traced", 200)
    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": "ws_console_trace",
            "name": "Traced",
            "url": base + "/console-traced",
            "events": ["traced.*"],
            "propagate_trace": True,
        },
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    event = {
        "id": "evt_console_traced",
        "type": "traced.step",
        "workspace_id": "ws_console_trace",
        "occurred_at": "2025-01-01T00:00:00Z",
        "data": {},
    }
    published = await console.api.post(
        "/api/events", json=event, headers={"traceparent": traceparent}
    )
    assert published.status_code == 202, published.text
    [received] = await fake.wait_for("/console-traced", 1)
    assert received.headers["traceparent"] == traceparent

    async def written() -> Any:
        answer = await console.api.get("/api/deliveries", params={"webhook_id": endpoint_id})
        return answer.json()["data"]

    [listed] = await wait_for(written)
    p = await sign_in(page, console, f"deliveries/{listed['id']}")
    await expect(p.locator("#delivery")).to_contain_text(trace_id, timeout=EXPECT_MS)

    await p.get_by_role("link", name=endpoint_id).click()
    await expect(p.locator("dl").first).to_contain_text("sent: each attempt's traceparent")
    await p.get_by_role("button", name="Stop sending the trace context").click()
    await expect(p.locator("dl").first).to_contain_text("not sent", timeout=EXPECT_MS)
    answer = await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}")
    assert answer.json()["propagate_trace"] is False
    assert_clean(page, console)


async def test_a_fifo_endpoint_shows_its_held_key_and_the_head_it_waits_for(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    fake, base = sink
    fake.on("/console-fifo", 500)
    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": "ws_console",
            "name": "In order",
            "url": base + "/console-fifo",
            "events": ["fifo.*"],
            "ordering": "fifo",
            "retry_schedule": [3600],  # the head waits an hour: its key stays held
        },
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    for n in range(2):
        published = await console.api.post(
            "/api/events",
            json={
                "id": f"evt_console_fifo_{n}",
                "type": "fifo.step",
                "workspace_id": "ws_console",
                "occurred_at": "2025-01-01T00:00:00Z",
                "ordering_key": "order-1",
                "data": {"n": n},
            },
        )
        assert published.status_code == 202, published.text
    await until(lambda: len(fake.at("/console-fifo")) == 1, what="the head's first attempt")

    async def held() -> bool:
        answer = await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}/held-keys")
        return any(key["ordering_key"] == "order-1" for key in answer.json()["data"])

    await until(held, what="the key held")
    p = await sign_in(page, console, f"endpoints/{endpoint_id}")
    keys = p.locator("section", has=p.get_by_role("heading", name="Held keys"))
    row = keys.get_by_role("row").filter(has_text="order-1")
    await expect(row).to_contain_text("delayed", timeout=EXPECT_MS)
    await expect(row).to_contain_text("500")
    assert len(fake.at("/console-fifo")) == 1  # the second waits behind the head
    assert_clean(page, console)


async def test_an_endpoint_lists_its_header_names_and_sets_and_removes_one(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": "ws_console",
            "name": "With headers",
            "url": "https://example.com/hooks",
            "events": ["*"],
            "headers": {"Authorization": "Bearer console-secret"},
        },
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    p = await sign_in(page, console, f"endpoints/{endpoint_id}")
    headers = p.locator("section", has=p.get_by_role("heading", name="Extra headers"))
    await expect(headers.get_by_role("row").filter(has_text="Authorization")).to_contain_text(
        "write-only", timeout=EXPECT_MS
    )
    assert "console-secret" not in await p.content()

    await headers.get_by_label("Header name").fill("X-Api-Key")
    await headers.get_by_label("Header value").fill("console-key")
    await headers.get_by_role("button", name="Set header").click()
    await expect(headers.get_by_role("row").filter(has_text="X-Api-Key")).to_be_visible(
        timeout=EXPECT_MS
    )
    await headers.get_by_role("button", name="Remove Authorization").click()
    await expect(headers.get_by_role("row").filter(has_text="Authorization")).to_have_count(
        0, timeout=EXPECT_MS
    )
    stored = (await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}")).json()
    assert stored["headers_configured"] == ["X-Api-Key"]
    assert "console-key" not in await p.content()
    assert page.dialogs == ["confirm: Remove the header Authorization?"]
    page.dialogs.clear()
    assert_clean(page, console)


async def test_an_endpoints_circuit_breaker_is_shown_tuned_and_turned_off(
    page: Watched, console: Console
) -> None:
    """Its `circuit_breaker` (SPEC §17): today's defaults in words, then tuned from its
    section (a ratio of a window, its own cool-down) and turned off, each saved as a PATCH
    and read back on the page."""
    from playwright.async_api import expect

    endpoint_id, p = await _endpoint_page(page, console, "https://example.com/breaker")
    facts = p.locator("section", has=p.get_by_role("heading", name="Endpoint"))
    shown = facts.locator("dd", has_text="attempts failed")
    await expect(shown).to_contain_text(
        "on: opens when 50% of the last 20 attempts failed", timeout=EXPECT_MS
    )
    await expect(shown).to_contain_text("the deployment's cool-down")

    tune = p.locator("section", has=p.get_by_role("heading", name="Circuit breaker"))
    await tune.get_by_label("Failure ratio").fill("0.75")
    await tune.get_by_label("Window").fill("4")
    await tune.get_by_label("Cool-down (seconds)").fill("3600")
    await tune.get_by_role("button", name="Save circuit breaker").click()
    await expect(facts.locator("dd", has_text="attempts failed")).to_contain_text(
        "on: opens when 75% of the last 4 attempts failed (or 5 timed out in a row); the "
        "first probe 3600 s after",
        timeout=EXPECT_MS,
    )
    stored = (await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}")).json()
    assert stored["circuit_breaker"] == {
        "enabled": True,
        "failure_ratio": 0.75,
        "window": 4,
        "cool_down_seconds": 3600,
    }

    tune = p.locator("section", has=p.get_by_role("heading", name="Circuit breaker"))
    await expect(tune.get_by_label("Window")).to_have_value("4", timeout=EXPECT_MS)
    await tune.get_by_label("On: stop sending while most attempts fail").uncheck()
    await tune.get_by_role("button", name="Save circuit breaker").click()
    await expect(facts).to_contain_text(
        "off: the retry schedule alone decides when each attempt goes", timeout=EXPECT_MS
    )
    stored = (await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}")).json()
    assert stored["circuit_breaker"]["enabled"] is False
    assert stored["circuit_breaker"]["window"] == 4  # the rest kept
    assert_clean(page, console)


async def test_an_endpoint_shows_its_operational_events_as_a_timeline(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": "ws_console",
            "url": "https://example.com/operational",
            "events": ["message.*"],
        },
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    renamed = await console.api.patch(
        f"/api/outgoing-webhooks/{endpoint_id}", json={"name": "<b>renamed</b>"}
    )
    assert renamed.status_code == 200, renamed.text

    async def kept() -> bool:
        answer = await console.api.get(
            "/api/operational-events", params={"resource_id": endpoint_id}
        )
        return len(answer.json()["data"]) == 2

    assert await wait_for(kept), "the endpoint's operational events were not kept"
    p = await sign_in(page, console, f"endpoints/{endpoint_id}")
    timeline = p.locator("section", has=p.get_by_role("heading", name="Operational events"))
    rows = timeline.get_by_role("row")
    await expect(rows.filter(has_text="endpoint.updated")).to_be_visible(timeout=EXPECT_MS)
    await expect(rows.filter(has_text="endpoint.created")).to_be_visible(timeout=EXPECT_MS)
    assert await p.locator("b", has_text="renamed").count() == 0  # a name is never markup
    assert_clean(page, console)


async def _endpoint_page(
    page: Watched, console: Console, url: str, workspace_id: str = "ws_console"
) -> tuple[str, Any]:
    """A new endpoint sending everything to `url`, and its page, signed in."""
    created = await console.api.post(
        "/api/outgoing-webhooks", json={"workspace_id": workspace_id, "url": url, "events": ["*"]}
    )
    assert created.status_code == 201, created.text
    endpoint_id: str = created.json()["id"]
    return endpoint_id, await sign_in(page, console, f"endpoints/{endpoint_id}")


async def test_an_endpoints_transformation_is_tried_against_a_sample_and_saved(
    page: Watched, console: Console
) -> None:
    """The editor on the endpoint's page (SPEC §17): "Test" runs the code in the sandbox
    on the sample event and shows the webhook it would send, as text; an error says where;
    the code is saved on the endpoint."""
    from playwright.async_api import expect

    endpoint_id, p = await _endpoint_page(page, console, "https://example.com/shaped")
    editor = p.locator("section", has=p.get_by_role("heading", name="Transformation"))
    code = (
        "function handler(webhook) {\n"
        "  webhook.payload = {said: webhook.payload.data.text, kind: webhook.event_type};\n"
        "  webhook.headers['X-Shaped'] = 'yes';\n"
        "  return webhook;\n"
        "}\n"
    )
    await editor.get_by_label("Code").fill(code)
    sample = {"type": "message.created", "data": {"text": "<b>bold</b>"}}
    await editor.get_by_label("Sample event (the body hookhub sends)").fill(json.dumps(sample))
    await editor.get_by_role("button", name="Test").click()
    shown = editor.locator("pre.json")
    await expect(shown).to_contain_text('"said": "<b>bold</b>"', timeout=EXPECT_MS)
    await expect(shown).to_contain_text('"X-Shaped": "yes"', timeout=EXPECT_MS)
    assert await editor.locator("b", has_text="bold").count() == 0  # shown as text

    await editor.get_by_label("Code").fill("function handler(webhook) {\n  return webhook.;\n}")
    await editor.get_by_role("button", name="Test").click()
    await expect(editor.get_by_role("alert")).to_contain_text("line 2", timeout=EXPECT_MS)

    await editor.get_by_label("Code").fill(code)
    await editor.get_by_role("button", name="Save transformation").click()
    await expect(p.get_by_text("Transformation saved.")).to_be_visible(timeout=EXPECT_MS)
    stored = (await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}")).json()
    assert stored["transformation"] == {"code": code, "enabled": True}
    assert_clean(page, console)


async def test_a_replay_is_started_from_the_endpoint_page_and_shows_its_progress(
    page: Watched, console: Console
) -> None:
    """SPEC §17's replay as an operator starts it: since an hour ago, read back from Kafka;
    the job's row shows what it read and sent (nothing: a workspace of its own has no
    events; tests/delivery replays what an endpoint missed)."""
    from playwright.async_api import expect

    workspace = f"ws_console_replay_{uuid.uuid4().hex[:8]}"
    endpoint_id, p = await _endpoint_page(page, console, "https://example.com/missed", workspace)
    replay = p.locator("section", has=p.get_by_role("heading", name="Replay what it missed"))
    await replay.get_by_role("button", name="Replay missed events").click()
    await expect(replay).to_contain_text("started", timeout=EXPECT_MS)

    async def ended() -> bool:
        answer = await console.api.get(f"/api/outgoing-webhooks/{endpoint_id}/replays")
        return [r["status"] for r in answer.json()] == ["completed"]

    assert await wait_for(ended), "the replay did not end"
    await p.reload()
    replay = p.locator("section", has=p.get_by_role("heading", name="Replay what it missed"))
    row = replay.get_by_role("row").filter(has_text="completed")
    await expect(row).to_contain_text("0 sent, 0 had a delivery", timeout=EXPECT_MS)
    assert_clean(page, console)


async def test_a_failed_delivery_is_retried_from_its_page(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    fake, base = sink
    fake.on("/console-flaky", 500, 200)
    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": "ws_console",
            "name": "Flaky",
            "url": base + "/console-flaky",
            "events": ["*"],
            "retry_schedule": [],
        },
    )
    assert created.status_code == 201, created.text
    sent = (await console.api.post(f"/api/outgoing-webhooks/{created.json()['id']}/test")).json()
    delivery_id = sent["delivery_id"]

    async def failed() -> bool:
        answer = await console.api.get(f"/api/deliveries/{delivery_id}")
        return answer.status_code == 200 and answer.json()["status"] == "failed"

    assert await wait_for(failed), "the delivery did not fail"

    p = await sign_in(page, console, "deliveries")
    await p.get_by_label("Status").select_option("failed")
    await p.get_by_role("button", name="Filter").click()
    await p.get_by_role("link", name=delivery_id).click()
    delivery = p.locator("#delivery")
    await expect(delivery).to_contain_text("failed", timeout=EXPECT_MS)
    await expect(delivery.locator(".attempt")).to_have_count(1)
    await expect(delivery.locator(".attempt").first).to_contain_text("500")
    await p.get_by_role("button", name="Retry now").click()
    await expect(delivery.locator(".attempt")).to_have_count(2, timeout=EXPECT_MS)
    await expect(delivery.locator(".attempt").nth(1)).to_contain_text("200")
    await expect(delivery.locator(".badge").first).to_have_text("completed", timeout=EXPECT_MS)
    assert len(fake.at("/console-flaky")) == 2
    assert_clean(page, console)


async def test_an_export_is_dry_run_then_imported_with_the_bar_reaching_100(
    page: Watched, console: Console, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    export = ExportBuilder()
    export.add_user("U0000000001", "ada")
    general = export.add_channel("general", members=["U0000000001"])
    for n in range(40):
        export.add_message(general, "2024-03-01", message(f"17093000{n:02d}.000100", f"hello {n}"))
    export.add_message(general, "2024-03-02", ["not", "a", "message"])  # quarantined
    path = export.write(tmp_path / "slack-export.zip")

    p = await sign_in(page, console, "imports")
    await p.get_by_label("Workspace id").fill("ws_console")
    await expect(p.get_by_label("Source")).to_have_value("slack_export")
    await p.get_by_label("Export file").set_input_files(str(path))
    await p.get_by_label("Channel map (JSON)").fill(json.dumps({"general": "ch_general"}))
    await expect(p.get_by_label("Dry run first")).to_be_checked()
    await p.get_by_role("button", name="Upload").click()

    live = p.locator("#import-live")
    await expect(live).to_contain_text("(dry run)", timeout=EXPECT_MS)
    await expect(live.locator(".badge").first).to_have_text("completed", timeout=EXPECT_MS)
    await expect(live).to_contain_text("ch_general")
    await expect(live).to_contain_text("Quarantine (1)")
    await expect(live).to_contain_text("2024-03-02.json")

    await p.get_by_role("button", name="Import for real").click()
    await expect(live).not_to_contain_text("(dry run)", timeout=EXPECT_MS)
    bar = live.locator("progress")
    await expect(live.locator(".badge").first).to_have_text("completed", timeout=60_000)
    await expect(bar).to_have_attribute("aria-valuenow", "100")
    assert await bar.evaluate("el => el.value") == 100
    await expect(live.locator("output.percent")).to_have_text("100 %")

    jobs = (await console.api.get("/api/imports", params={"workspace_id": "ws_console"})).json()
    real = [job for job in jobs["data"] if not job["dry_run"]]
    assert real and real[0]["status"] == "completed"
    assert real[0]["progress"]["messages_imported"] == 40
    assert_clean(page, console)


async def test_a_telegram_export_is_picked_and_imported(
    page: Watched, console: Console, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    messages: list[Any] = [tg.service(1, "create_group", title="Console chat")]
    messages += [tg.message(n, f"hello {n}") for n in range(2, 14)]
    path = tmp_path / "result.json"
    path.write_bytes(
        tg.chat_export(tg.chat("Console chat", "public_supergroup", 1_700_000_201, messages))
    )

    p = await sign_in(page, console, "imports")
    await p.get_by_label("Workspace id").fill("ws_console")
    await p.get_by_label("Source").select_option(label="Telegram Desktop export")
    # The form says how to make the export and takes a bare result.json.
    await expect(p.locator(".field").filter(has=p.get_by_label("Export file"))).to_contain_text(
        "Export chat history"
    )
    assert ".json" in (await p.get_by_label("Export file").get_attribute("accept") or "")
    await p.get_by_label("Export file").set_input_files(str(path))
    await p.get_by_label("Channel map (JSON)").fill(json.dumps({"Console chat": "ch_telegram"}))
    await p.get_by_label("Dry run first").uncheck()
    await p.get_by_role("button", name="Upload").click()

    live = p.locator("#import-live")
    await expect(live.locator(".badge").first).to_have_text("completed", timeout=60_000)
    await expect(live).to_contain_text("Telegram Desktop export: result.json")
    await expect(live).to_contain_text("ch_telegram")
    # The form went back to its defaults: Slack, with Slack's hint.
    await expect(p.get_by_label("Source")).to_have_value("slack_export")
    await expect(p.locator(".field").filter(has=p.get_by_label("Export file"))).to_contain_text(
        "Import/Export Data"
    )
    jobs = (await console.api.get("/api/imports", params={"workspace_id": "ws_console"})).json()
    job = next(j for j in jobs["data"] if (j["upload"] or {}).get("source") == "telegram_export")
    assert job["status"] == "completed" and job["provider"] == "telegram"
    assert job["progress"]["messages_imported"] == 12
    assert job["report"]["by_subtype"]  # the service message counted as skipped
    assert_clean(page, console)


async def test_payloads_names_and_answers_from_outside_are_shown_as_text(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    evil = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2; alert(1)">'
    fake, base = sink
    fake.on("/console-evil", 500, body=evil.encode(), headers={"content-type": "text/html"})
    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": "ws_evil",
            "name": evil,
            "url": base + "/console-evil",
            "events": ["message.created"],
            "retry_schedule": [],
        },
    )
    assert created.status_code == 201, created.text
    integration = await console.api.post(
        "/api/integrations",
        json={
            "provider": "github",
            "workspace_id": "ws_evil",
            "name": evil,
            "settings": {"webhook_secret": "x" * 20},
        },
    )
    assert integration.status_code == 201, integration.text
    event = {
        "id": "evt_console_evil",
        "type": "message.created",
        "workspace_id": "ws_evil",
        "occurred_at": "2026-11-21T10:00:00Z",
        "data": {"channel_id": "ch_1", "text": evil},
    }
    assert (await console.api.post("/api/events", json=event)).status_code == 202

    async def delivered() -> str | None:
        listing = await console.api.get(
            "/api/deliveries", params={"webhook_id": created.json()["id"], "status": "failed"}
        )
        rows = listing.json()["data"]
        return rows[0]["id"] if rows else None

    delivery_id = await wait_for(delivered)
    assert delivery_id, "the event was not delivered"

    p = await sign_in(page, console, f"deliveries/{delivery_id}")
    delivery = p.locator("#delivery")
    # The payload as JSON text (its quotes escaped), the answer's body as it came.
    await expect(delivery.locator("pre.json").last).to_contain_text(
        json.dumps(evil)[1:-1], timeout=EXPECT_MS
    )
    await p.get_by_text("Response body").click()
    await expect(delivery.get_by_text(evil, exact=True)).to_be_visible()

    await p.goto(f"{console.origin}/#/endpoints")
    await expect(p.get_by_role("link", name=evil)).to_be_visible(timeout=EXPECT_MS)
    await p.goto(f"{console.origin}/#/integrations")
    await expect(p.get_by_role("link", name=evil)).to_be_visible(timeout=EXPECT_MS)
    await p.get_by_role("link", name=evil).click()
    await expect(p.get_by_role("heading", name=evil)).to_be_visible(timeout=EXPECT_MS)

    assert await p.evaluate("window.__pwned") is None
    assert await p.locator("main script, main img").count() == 0
    assert page.dialogs == []
    assert_clean(page, console)


async def test_the_overview_shows_readiness_lag_queue_counters_and_the_last_hour(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    p = await sign_in(page, console, "overview")
    health = p.locator("#health")
    await expect(health).to_contain_text("hookhub is ready", timeout=EXPECT_MS)
    lag = health.get_by_role("table").filter(has_text="Consumer group")
    await expect(lag).to_contain_text("hookhub.delivery.fanout")
    await expect(lag).to_contain_text("hookhub.chat.events")

    stats = (await console.api.get("/api/webhooks/stats")).json()
    for name in ("total", "pending", "active", "delayed", "completed", "failed"):
        await expect(p.locator(f".counter-{name} .n")).to_have_text(str(stats[name]))

    timeline = (await console.api.get("/api/webhooks/stats/timeline")).json()
    assert len(timeline["minutes"]) == 60
    success = sum(m["success"] for m in timeline["minutes"])
    http_error = sum(m["http_error"] for m in timeline["minutes"])
    assert success >= 2 and http_error >= 2  # the earlier tests' attempts
    legend = p.locator("#chart .legend")
    await expect(legend).to_contain_text(f"2xx: {success}")
    await expect(legend).to_contain_text(f"other HTTP status: {http_error}")
    assert await p.locator("#chart svg rect.bar-success").count() >= 1
    assert_clean(page, console)


async def test_keyboard_sign_in_and_a_phone_width_screen(page: Watched, console: Console) -> None:
    from playwright.async_api import expect

    p = page.page
    await p.set_viewport_size({"width": 390, "height": 844})
    await p.goto(f"{console.origin}/#/deliveries")
    await expect(p.get_by_label("Admin token")).to_be_focused()
    await p.keyboard.type(console.token)
    await p.keyboard.press("Enter")
    await expect(p.get_by_role("heading", name="Deliveries")).to_be_visible(timeout=EXPECT_MS)
    await expect(p.get_by_role("link", name="webhook.test").first).to_be_hidden()
    await expect(p.locator("td[data-label=Status]").first).to_be_visible(timeout=EXPECT_MS)
    # Nothing wider than the screen: no sideways scrolling.
    assert await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Every field has a label.
    unlabelled = await p.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
             .filter(el => !el.labels || el.labels.length === 0).map(el => el.name)"""
    )
    assert unlabelled == []
    assert_clean(page, console)


async def test_the_deliveries_page_loads_one_page_and_follows_the_cursor(
    page: Watched, console: Console, console_stack: Stack
) -> None:
    from playwright.async_api import expect

    endpoint_id = f"owh_pages_{uuid.uuid4().hex[:8]}"
    docs = [made(seq, endpoint_id) for seq in range(60)]
    uri = console_stack.env["HOOKHUB_MONGO_URI"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        await client[console_stack.env.get("HOOKHUB_MONGO_DB", "hookhub")][DELIVERIES].insert_many(
            docs
        )
    finally:
        await client.close()
    newest = sorted((d["_id"] for d in docs), reverse=True)

    p = await sign_in(page, console, f"deliveries?webhook_id={endpoint_id}")
    rows = p.locator(".pager-body tbody tr")
    await expect(rows).to_have_count(50, timeout=EXPECT_MS)
    await expect(rows.first).to_contain_text(newest[0])
    listed = [url for url in page.requests if "/api/deliveries?" in url]
    assert len(listed) == 1 and "limit=50" in listed[0] and "cursor" not in listed[0], listed

    await p.get_by_role("button", name="Next page").click()
    await expect(rows).to_have_count(10, timeout=EXPECT_MS)
    await expect(rows.first).to_contain_text(newest[50])
    await expect(p.get_by_text("page 2")).to_be_visible()
    await expect(p.get_by_role("button", name="Next page")).to_be_disabled()
    first = await console.api.get(
        "/api/deliveries", params={"limit": 50, "webhook_id": endpoint_id}
    )
    listed = [url for url in page.requests if "/api/deliveries?" in url]
    assert len(listed) == 2 and f"cursor={first.json()['next_cursor']}" in listed[1], listed

    await p.get_by_role("button", name="Previous page").click()
    await expect(rows).to_have_count(50, timeout=EXPECT_MS)
    await expect(rows.first).to_contain_text(newest[0])
    assert_clean(page, console)


async def test_an_incoming_webhook_s_template_is_tested_in_the_form_and_saved(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    p = await sign_in(page, console, "incoming")
    creating = p.locator("section", has=p.get_by_role("heading", name="New incoming webhook"))
    await creating.get_by_label("Workspace id", exact=True).fill("ws_console_tpl")
    await creating.get_by_label("Target channel id", exact=True).fill("ch_console_tpl")
    await creating.get_by_text("Template (JavaScript").click()
    source = creating.get_by_label("Template", exact=True)
    await source.fill("function handler(event) {\n  return {text: event.payload.nope.x};\n}")
    await creating.get_by_label("Sample payload", exact=True).fill(
        '{"text": "<b>deployed</b> @everyone", "build": 42}'
    )
    await creating.get_by_role("button", name="Test").click()
    preview = creating.locator(".template-preview")
    await expect(preview.get_by_role("alert")).to_contain_text(
        "template_error: TypeError: Cannot read properties of undefined (reading 'x')"
        " (line 2, column 36)",
        timeout=EXPECT_MS,
    )
    template = (
        "function handler(event) {\n"
        "  return {text: event.payload.text, title: `Build ${event.payload.build}`,\n"
        "          fields: [{name: 'build', value: event.payload.build}]};\n}"
    )
    await source.fill(template)
    await creating.get_by_role("button", name="Test").click()
    # The message as the chat would get it, as text: no element made of the payload's markup.
    await expect(preview.locator("pre")).to_have_text(
        "<\u200db>deployed<\u200d/b> @\u200deveryone", timeout=EXPECT_MS
    )
    await expect(preview.locator("b")).to_have_count(0)
    await expect(preview).to_contain_text("Build 42")
    await expect(preview).to_contain_text("build: 42")
    await creating.get_by_role("button", name="Create incoming webhook").click()
    await expect(creating).to_contain_text("Created. Post to:", timeout=EXPECT_MS)
    hooks = (
        await console.api.get("/api/incoming-webhooks", params={"workspace_id": "ws_console_tpl"})
    ).json()["data"]
    assert [hook["template"] for hook in hooks] == [template]
    # Its page gives the URL in each sender's format (SPEC §16).
    await p.goto(f"{console.origin}/#/incoming/{hooks[0]['id']}")
    await expect(p.get_by_text(f"{hooks[0]['url']}/teams", exact=True)).to_be_visible(
        timeout=EXPECT_MS
    )
    await expect(p.get_by_text(f"{hooks[0]['url']}/discord", exact=True)).to_be_visible()
    assert_clean(page, console)


async def test_the_event_type_catalog_shows_schemas_and_examples_as_text_and_feeds_the_endpoint_form(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    evil = '<img src=x onerror="window.__pwned = 1">'
    name = f"console.t{uuid.uuid4().hex[:8]}"
    created = await console.api.post(
        "/api/event-types",
        json={
            "name": name,
            "description": evil,
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}},
            "examples": [{"text": evil}],
            "enforce": True,
        },
    )
    assert created.status_code == 201, created.text

    p = await sign_in(page, console, "event-types")
    await expect(p.get_by_role("link", name=name)).to_be_visible(timeout=EXPECT_MS)
    await expect(p.get_by_text(evil, exact=True)).to_be_visible()
    await p.get_by_role("link", name=name).click()
    await expect(p.get_by_role("heading", name=name)).to_be_visible(timeout=EXPECT_MS)
    await expect(p.locator("pre.json").last).to_contain_text(json.dumps(evil)[1:-1])
    await expect(p.get_by_text("enforced: events whose data fails it are refused")).to_be_visible()

    # A workspace's own type, made with the form.
    own = f"console.own{uuid.uuid4().hex[:6]}"
    await p.goto(f"{console.origin}/#/event-types")
    await p.get_by_label("Name", exact=True).fill(own)
    await p.get_by_label("Workspace id").fill("ws_console_types")
    await p.get_by_role("button", name="Create event type").click()
    await expect(p.get_by_role("heading", name=own)).to_be_visible(timeout=EXPECT_MS)
    fetched = await console.api.get(
        f"/api/event-types/{own}", params={"workspace_id": "ws_console_types"}
    )
    assert fetched.json()["workspace_id"] == "ws_console_types"

    # The endpoint form offers the catalog: ticking a type adds it to the events typed.
    await p.goto(f"{console.origin}/#/endpoints")
    events = p.get_by_label("Events", exact=True)
    await events.fill("message.*")
    await p.get_by_text("From the catalog").click()
    await p.get_by_role("checkbox", name=name).check()
    await expect(events).to_have_value(f"message.*, {name}")
    await p.get_by_role("checkbox", name=name).uncheck()
    await expect(events).to_have_value("message.*")

    assert await p.evaluate("window.__pwned") is None
    assert_clean(page, console)


async def test_a_chat_user_is_linked_from_its_page_refused_as_the_api_says_and_unlinked(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    ws = f"ws_console_links_{uuid.uuid4().hex[:6]}"
    base = "/api/account-links"
    # Another workspace's link: the workspace filter leaves it out.
    other = await console.api.put(
        f"{base}/opsgenie/u_other",
        params={"workspace_id": f"{ws}_other"},
        json={"provider_user": "someone-else"},
    )
    assert other.status_code == 201, other.text

    p = await sign_in(page, console, f"account-links?workspace_id={ws}")
    await expect(p.get_by_text("No account links yet.")).to_be_visible(timeout=EXPECT_MS)
    linking = p.locator("section", has=p.get_by_role("heading", name="Link a chat user"))
    provider = linking.get_by_label("Provider", exact=True)
    offered = await provider.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert offered == list(MAPPING_PROVIDERS)
    await linking.get_by_label("Workspace id").fill(ws)
    await provider.select_option("pagerduty")
    await linking.get_by_label("Chat user id").fill("u_ada")
    await linking.get_by_label("Provider user").fill("ada\u200b@example.com")
    await linking.get_by_label("Name").fill("<b>Ada</b>")
    await linking.get_by_role("button", name="Save link").click()
    # The API's refusal as it came: the field it names and why.
    refusal = linking.get_by_role("alert")
    await expect(refusal).to_contain_text(
        "invalid: request does not match the schema", timeout=EXPECT_MS
    )
    await expect(refusal.get_by_role("listitem")).to_contain_text("provider_user: ")
    await expect(refusal.get_by_role("listitem")).to_contain_text("U+200B")

    await linking.get_by_label("Provider user").fill("ada@example.com")
    await linking.get_by_role("button", name="Save link").click()
    await expect(linking).to_contain_text(
        "Linked: u_ada acts at PagerDuty as ada@example.com.", timeout=EXPECT_MS
    )
    row = p.get_by_role("row").filter(has_text="u_ada")
    await expect(row.locator("td[data-label='Provider user']")).to_have_text(
        "ada@example.com", timeout=EXPECT_MS
    )
    await expect(row.locator("td[data-label=Provider]")).to_contain_text("PagerDuty")
    await expect(row.locator("td[data-label=Name]")).to_have_text("<b>Ada</b>")  # text, not markup
    await expect(row.locator("td[data-label=Name] b")).to_have_count(0)
    await expect(row.locator("td[data-label=Created] time")).to_have_count(1)
    await expect(p.get_by_role("row")).to_have_count(2)  # the header and u_ada: not u_other
    made = await console.api.get(f"{base}/pagerduty/u_ada", params={"workspace_id": ws})
    assert (made.json()["provider_user"], made.json()["name"]) == ("ada@example.com", "<b>Ada</b>")

    await row.get_by_role("button", name="Unlink").click()
    await expect(p.get_by_text("No account links yet.")).to_be_visible(timeout=EXPECT_MS)
    gone = await console.api.get(f"{base}/pagerduty/u_ada", params={"workspace_id": ws})
    assert gone.status_code == 404, gone.text
    assert page.dialogs == [
        "confirm: Unlink u_ada from PagerDuty user ada@example.com?"
        " Their clicks act there no more until linked again."
    ]
    page.dialogs.clear()
    assert_clean(page, console)
