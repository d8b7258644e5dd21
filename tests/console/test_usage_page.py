"""The overview's busiest workspaces, in headless Chromium against the stack as `make run`
starts it: a workspace made busy through the API shows in the table with the counts the
services counted; the portal (one workspace) has no such table, nor asks for one."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from shared.kernel.ids import isoformat, utcnow
from tests.console.conftest import Console, Watched
from tests.console.test_console import EXPECT_MS, assert_clean, sign_in
from tests.webhook_sink import WebhookSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

POSTS = 3  # to the workspace's incoming webhook
EVENTS = 2  # chat events, each delivered to the workspace's endpoint


async def _created(console: Console, path: str, body: dict[str, Any]) -> Any:
    answer = await console.api.post(path, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _usage_once(console: Console, workspace: str, expected: dict[str, Any]) -> Any:
    """The workspace's usage once the services have written what they counted (every 2 s):
    asked until it says `expected`, or failed with what it said last."""
    deadline = time.monotonic() + 30
    while True:
        answer = await console.api.get("/api/usage", params={"workspace_id": workspace})
        assert answer.status_code == 200, answer.text
        [found] = answer.json()["data"]
        said = {name: found[name] for name in expected}
        if said == expected:
            return found
        assert time.monotonic() < deadline, f"usage says {said}, not {expected}"
        await asyncio.sleep(0.3)


async def test_the_overview_ranks_the_busiest_workspaces_with_their_counts(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    fake, base = sink
    ws = f"ws_busy_{uuid.uuid4().hex[:6]}"
    fake.on(f"/{ws}", 200)
    await _created(
        console,
        "/api/integrations",
        {"provider": "github", "workspace_id": ws, "settings": {"webhook_secret": "s" * 24}},
    )
    await _created(
        console,
        "/api/outgoing-webhooks",
        {"workspace_id": ws, "url": f"{base}/{ws}", "events": ["message.created"]},
    )
    hook = await _created(
        console, "/api/incoming-webhooks", {"workspace_id": ws, "target_channel_id": "ch_busy"}
    )
    for n in range(POSTS):
        answer = await console.api.post(hook["url"], json={"text": f"build {n}"})
        assert answer.status_code == 200, answer.text
    for n in range(EVENTS):
        event = {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "message.created",
            "workspace_id": ws,
            "occurred_at": isoformat(utcnow()),
            "data": {"channel_id": "ch_busy", "message_id": f"m{n}", "text": "hi"},
        }
        answer = await console.api.post("/api/events", json=event)
        assert answer.status_code == 202, answer.text
    assert len(await fake.wait_for(f"/{ws}", EVENTS)) == EVENTS
    found = await _usage_once(
        console,
        ws,
        {
            "events": {"total": POSTS, "by_provider": {"incoming": POSTS}},
            "deliveries": EVENTS,
            "attempts": EVENTS,
            "integrations": {"total": 1, "by_provider": {"github": 1}},
            "endpoints": 1,
        },
    )

    p = await sign_in(page, console, "overview")
    busiest = p.locator("#busiest")
    await expect(busiest.get_by_role("table")).to_contain_text(
        "the busiest first", timeout=EXPECT_MS
    )
    row = busiest.get_by_role("row").filter(has_text=ws)
    await expect(row).to_have_count(1)
    cells = row.get_by_role("cell")
    await expect(cells).to_have_text(
        [
            ws,
            f"{POSTS} (incoming {POSTS})",
            str(EVENTS),
            str(found["messages_synced"]),
            str(found["messages_imported"]),
            "1 (github 1)",
            "1",
        ]
    )
    headers = await busiest.get_by_role("columnheader").all_inner_texts()
    assert headers == [
        "Workspace",
        "Events",
        "Deliveries",
        "Messages synced",
        "Messages imported",
        "Integrations",
        "Endpoints",
    ]
    assert_clean(page, console)

    # The portal is one workspace's: no overview, and no usage asked for.
    session = await _created(console, f"/api/workspaces/{ws}/portal-sessions", {})
    page.requests.clear()
    await p.goto(session["url"])
    await expect(p.locator("#session")).to_contain_text(f"Workspace {ws}", timeout=EXPECT_MS)
    await p.goto(f"{console.origin}/portal#/overview")
    await expect(p.get_by_role("heading", name="Not found")).to_be_visible(timeout=EXPECT_MS)
    assert await p.locator("#busiest").count() == 0
    assert [url for url in page.requests if "/api/usage" in url] == []
