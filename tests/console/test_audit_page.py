"""The console's audit log in headless Chromium, against the stack as `make run` starts it:
the page lists changes newest first, filters them and follows the cursor; a resource's
page shows its recent changes; no value sent (a secret) is ever shown."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.console.conftest import Console, Watched
from tests.console.test_console import EXPECT_MS, assert_clean, sign_in, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SECRET = "github-hook-secret-shown-nowhere"


async def _listed(console: Console, count: int, **params: str) -> list[dict[str, Any]]:
    """The API's entries once `count` of them are stored (the services' writers flush
    every second)."""

    async def probe() -> list[dict[str, Any]] | None:
        answer = await console.api.get("/api/audit-events", params={"limit": 200, **params})
        data: list[dict[str, Any]] = answer.json()["data"]
        return data if len(data) >= count else None

    found: list[dict[str, Any]] | None = await wait_for(probe)
    assert found is not None, f"fewer than {count} entries for {params}"
    return found


async def test_the_audit_page_filters_pages_and_shows_each_resource_s_changes(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    ws = f"ws_console_audit_{uuid.uuid4().hex[:6]}"
    integration = (
        await console.api.post(
            "/api/integrations",
            json={"provider": "github", "workspace_id": ws, "settings": {"webhook_secret": SECRET}},
        )
    ).json()
    endpoint = (
        await console.api.post(
            "/api/outgoing-webhooks",
            json={"workspace_id": ws, "url": "http://127.0.0.1:9/hook", "events": ["*"]},
        )
    ).json()
    hook = (
        await console.api.post(
            "/api/incoming-webhooks", json={"workspace_id": ws, "target_channel_id": "ch_audit"}
        )
    ).json()
    path = f"/api/outgoing-webhooks/{endpoint['id']}"
    for n in range(27):  # 1 create + 54 changes: two pages of 50 for the endpoint
        assert (await console.api.patch(path, json={"enabled": False})).status_code == 200
        assert (await console.api.patch(path, json={"name": f"renamed {n}"})).status_code == 200
    entries = await _listed(console, 55, resource_id=endpoint["id"])
    await _listed(console, 1, resource_id=integration["id"])
    await _listed(console, 1, resource_id=hook["id"])

    p = await sign_in(page, console, "audit")
    await expect(p.get_by_role("heading", name="Audit log")).to_be_visible(timeout=EXPECT_MS)
    await p.get_by_label("Resource id").fill(endpoint["id"])
    await p.get_by_role("button", name="Filter").click()
    rows = p.locator(".pager-body tbody tr")
    await expect(rows).to_have_count(50, timeout=EXPECT_MS)
    await expect(rows.first).to_contain_text(entries[0]["request_id"])
    await expect(rows.first).to_contain_text("name")
    await p.get_by_role("button", name="Next page").click()
    await expect(rows).to_have_count(5, timeout=EXPECT_MS)
    await expect(rows.last).to_contain_text("create")
    await expect(p.get_by_text("page 2")).to_be_visible()

    await p.get_by_label("Action").select_option("disable")
    await p.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(27, timeout=EXPECT_MS)
    assert "action=disable" in p.url and f"resource_id={endpoint['id']}" in p.url

    # The endpoint's own page: its last ten changes, newest first.
    await p.goto(f"{console.origin}/#/endpoints/{endpoint['id']}")
    changes = p.locator("section", has=p.get_by_role("heading", name="Recent changes"))
    await expect(changes.locator("tbody tr")).to_have_count(10, timeout=EXPECT_MS)
    await expect(changes.locator("tbody tr").first).to_contain_text("update")

    # The integration's: created by the admin, with the names of the settings sent only.
    await p.goto(f"{console.origin}/#/integrations/{integration['id']}")
    changes = p.locator("section", has=p.get_by_role("heading", name="Recent changes"))
    await expect(changes.locator("tbody tr")).to_have_count(1, timeout=EXPECT_MS)
    await expect(changes).to_contain_text("settings.webhook_secret")
    await expect(changes).to_contain_text("admin")
    assert SECRET not in await p.content()

    # An incoming webhook's page, reached from the list.
    await p.goto(f"{console.origin}/#/incoming")
    await p.get_by_role("link", name="Incoming webhook", exact=True).click()
    await expect(p.get_by_role("heading", name="Recent changes")).to_be_visible(timeout=EXPECT_MS)
    assert p.url.endswith(f"#/incoming/{hook['id']}")
    changes = p.locator("section", has=p.get_by_role("heading", name="Recent changes"))
    await expect(changes.locator("tbody tr")).to_have_count(1, timeout=EXPECT_MS)
    await expect(changes).to_contain_text("target_channel_id")
    await changes.get_by_role("link", name="In the audit log").click()
    await expect(p.locator(".pager-body tbody tr")).to_have_count(1, timeout=EXPECT_MS)
    await expect(p.get_by_label("Resource id")).to_have_value(hook["id"])
    assert_clean(page, console)
