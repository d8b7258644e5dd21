"""What a newcomer met in the console, each checked in headless Chromium: lists refreshed
after a create and forms emptied, no sign-out at sign-in, a phone layout with a menu and a
readable chart, no workspace filled in that was never used, integrations told apart in the
mappings picker, a dry run's counts as what it would import, and the smaller rough edges
(a clipped date, a table wider than its page, raw ids and field names asked for).

A failed test leaves its screenshot in test-output/console/<test name>.png (conftest.py).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tests.console.conftest import SCREENSHOTS, Console, Watched
from tests.console.test_console import EXPECT_MS, assert_clean, sign_in, wait_for
from tests.e2e.stack import Stack
from tests.slack_export import ExportBuilder, message
from tests.webhook_sink import WebhookSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PHONE = {"width": 390, "height": 844}
# Below this a chart's tick labels are not read but guessed: 11 CSS px is the smallest text
# size the common guidance allows (Apple's HIG: 11 pt; the console's own smallest text is 12
# px). The chart used to draw them at about 5 px on a phone.
MIN_CHART_FONT_PX = 11
# 60 bars, one a minute, each at least ~4 px wide beside the 40 px of the axis' labels.
MIN_CHART_WIDTH_PX = 300
# Tall enough that one attempt in a minute is a visible bar beside the busiest minute's.
MIN_CHART_HEIGHT_PX = 150


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


async def endpoint(console: Console, workspace: str, name: str, url: str) -> dict[str, Any]:
    created = await console.api.post(
        "/api/outgoing-webhooks",
        json={
            "workspace_id": workspace,
            "name": name,
            "url": url,
            "events": ["*"],
            "retry_schedule": [],
        },
    )
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def finished(console: Console, delivery_id: str) -> bool:
    answer = await console.api.get(f"/api/deliveries/{delivery_id}")
    return answer.status_code == 200 and answer.json()["status"] in ("completed", "failed")


async def set_fields(stack: Stack, collection: str, doc_id: str, fields: dict[str, Any]) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.env["HOOKHUB_MONGO_URI"], tz_aware=True
    )
    try:
        db = client[stack.env.get("HOOKHUB_MONGO_DB", "hookhub")]
        await db[collection].update_one({"_id": doc_id}, {"$set": fields})
    finally:
        await client.close()


def slack_export(tmp_path: Path, messages: int) -> Path:
    export = ExportBuilder()
    export.add_user("U0000000001", "ada")
    general = export.add_channel("general", members=["U0000000001"])
    for n in range(messages):
        export.add_message(general, "2024-03-01", message(f"17093000{n:02d}.000100", f"hi {n}"))
    return export.write(tmp_path / "slack-export.zip")


# 1. Every create and action refreshes what it changed and empties its form.


async def test_a_created_endpoint_is_listed_at_once_and_its_form_emptied(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    name = unique("Listed at once")
    p = await sign_in(page, console, "endpoints")
    create = p.locator("section", has=p.get_by_role("heading", name="New endpoint"))
    await create.get_by_label("Workspace id").fill("ws_console_listed")
    await create.get_by_label("Name", exact=True).fill(name)
    await create.get_by_label("URL", exact=True).fill("https://example.com/listed")
    await create.get_by_label("Events", exact=True).fill("*")
    await p.get_by_role("button", name="Create endpoint").click()

    await expect(p.locator("#secret-once")).to_contain_text("Shown this once", timeout=EXPECT_MS)
    await expect(p.get_by_role("row").filter(has_text=name)).to_be_visible(timeout=EXPECT_MS)
    await expect(create.get_by_label("Name", exact=True)).to_have_value("")
    await expect(create.get_by_label("URL", exact=True)).to_have_value("")
    await expect(create.get_by_label("Events", exact=True)).to_have_value("message.*")
    # A second click creates nothing: the emptied form asks for its URL again.
    await p.get_by_role("button", name="Create endpoint").click()
    listed = (await console.api.get("/api/outgoing-webhooks", params={"limit": 200})).json()
    assert [e["name"] for e in listed["data"]].count(name) == 1
    assert_clean(page, console)


async def test_an_incoming_webhook_s_form_is_emptied_once_it_is_created(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    channel = unique("ch_incoming")
    p = await sign_in(page, console, "incoming")
    create = p.locator("section", has=p.get_by_role("heading", name="New incoming webhook"))
    await create.get_by_label("Workspace id").fill("ws_console_incoming")
    await create.get_by_label("Target channel id").fill(channel)
    await create.get_by_label("Name").fill(f"Hook for {channel}")
    await p.get_by_role("button", name="Create incoming webhook").click()

    await expect(p.get_by_role("row").filter(has_text=channel)).to_be_visible(timeout=EXPECT_MS)
    await expect(create).to_contain_text("Post to:")
    await expect(create.get_by_label("Target channel id")).to_have_value("")
    await expect(create.get_by_label("Name")).to_have_value("")
    await expect(create.get_by_label("Workspace id")).to_have_value("ws_console_incoming")
    assert_clean(page, console)


async def test_an_import_s_dry_run_and_real_import_are_listed_in_the_jobs_table(
    page: Watched, console: Console, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    path = slack_export(tmp_path, 3)
    p = await sign_in(page, console, "imports")
    upload = p.locator("section", has=p.get_by_role("heading", name="Upload an export"))
    await upload.get_by_label("Workspace id").fill(unique("ws_jobs"))
    await upload.get_by_label("Export file").set_input_files(str(path))
    await upload.get_by_label("Channel map (JSON)").fill('{"general": "ch_jobs"}')
    await p.get_by_role("button", name="Upload").click()

    live = p.locator("#import-live section.job")
    await expect(live.locator(".badge").first).to_have_text("completed", timeout=EXPECT_MS)
    dry_id = await live.get_attribute("data-job")
    assert dry_id
    jobs = p.locator("section", has=p.get_by_role("heading", name="Jobs", exact=True))
    dry_row = jobs.get_by_role("row").filter(has_text=dry_id)
    await expect(dry_row).to_contain_text("(dry run)", timeout=EXPECT_MS)
    await expect(dry_row.locator(".badge")).to_have_text("completed", timeout=EXPECT_MS)
    # The form is emptied; the dry run's file and map are kept for the real import.
    await expect(upload.get_by_label("Export file")).to_have_value("")
    await expect(upload.get_by_label("Channel map (JSON)")).to_have_value("")

    await p.get_by_role("button", name="Import for real").click()
    await expect(live).not_to_have_attribute("data-job", dry_id, timeout=EXPECT_MS)
    real_id = await live.get_attribute("data-job")
    assert real_id and real_id != dry_id
    real_row = jobs.get_by_role("row").filter(has_text=real_id)
    await expect(real_row.locator(".badge")).to_have_text("completed", timeout=60_000)
    await expect(real_row).not_to_contain_text("dry run")
    await expect(real_row).to_contain_text("3")
    stored = (await console.api.get(f"/api/imports/{real_id}")).json()
    assert stored["dry_run"] is False and stored["progress"]["messages_imported"] == 3
    assert_clean(page, console)


async def test_a_test_event_s_delivery_shows_on_its_endpoint_s_page_once_finished(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    fake, base = sink
    fake.on("/newcomer-test", 200)
    created = await endpoint(console, "ws_console_test", "Tested", base + "/newcomer-test")
    p = await sign_in(page, console, f"endpoints/{created['id']}")
    deliveries = p.locator("section", has=p.get_by_role("heading", name="Deliveries", exact=True))
    await expect(deliveries).to_contain_text("no deliveries finished yet", timeout=EXPECT_MS)

    await p.get_by_role("button", name="Send test event").click()
    sent = p.locator("#test-result a")
    await expect(sent).to_contain_text("dlv_", timeout=EXPECT_MS)
    delivery_id = (await sent.inner_text()).split()[-1]
    row = deliveries.get_by_role("row").filter(has_text=delivery_id)
    await expect(row.locator(".badge")).to_have_text("completed", timeout=EXPECT_MS)
    await expect(deliveries).to_contain_text("100.0 % (1 of 1 finished)")
    await expect(p.locator("#test-result")).to_contain_text("completed")
    assert len(fake.at("/newcomer-test")) == 1
    assert_clean(page, console)


# 2. No sign-out on the sign-in page.


async def test_the_sign_in_page_shows_no_sign_out_button(page: Watched, console: Console) -> None:
    from playwright.async_api import expect

    p = page.page
    await p.goto(console.origin + "/")
    await expect(p.get_by_role("heading", name="Sign in to hookhub")).to_be_visible()
    await expect(p.get_by_role("button", name="Sign out")).to_be_hidden()
    await expect(p.locator("#sign-out")).to_have_count(1)  # there, hidden
    await expect(p.get_by_role("navigation", name="Pages")).to_be_hidden()
    await expect(p.get_by_role("button", name="Menu")).to_be_hidden()
    assert_clean(page, console)


# 3. A phone: the navigation collapses behind a menu button, the chart stays readable.


async def chart_metrics(p: Any) -> dict[str, float]:
    metrics: dict[str, float] = await p.evaluate(
        """() => {
            const svg = document.querySelector('#chart svg');
            const box = svg.getBoundingClientRect();
            const view = svg.viewBox.baseVal;
            const scale = view && view.width ? box.width / view.width : 1;
            const fonts = [...svg.querySelectorAll('text')]
                .map((t) => parseFloat(getComputedStyle(t).fontSize) * scale);
            return {width: box.width, height: box.height, font: Math.min(...fonts)};
        }"""
    )
    return metrics


async def test_at_phone_size_the_menu_collapses_and_the_chart_stays_readable(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    p = page.page
    await p.set_viewport_size(PHONE)
    await sign_in(page, console, "overview")
    nav = p.get_by_role("navigation", name="Pages")
    menu = p.get_by_role("button", name="Menu")
    await expect(nav).to_be_hidden()
    await expect(menu).to_be_visible()
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await expect(menu).to_have_attribute("aria-controls", "nav")
    header = await p.locator("header.top").bounding_box()
    assert header and header["height"] < 0.2 * PHONE["height"], header

    await expect(p.locator("#chart svg")).to_be_visible(timeout=EXPECT_MS)
    chart = await chart_metrics(p)
    assert chart["width"] >= MIN_CHART_WIDTH_PX, chart
    assert chart["height"] >= MIN_CHART_HEIGHT_PX, chart
    assert chart["font"] >= MIN_CHART_FONT_PX, chart
    assert await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    await menu.click()
    await expect(nav).to_be_visible()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await p.screenshot(
        path=str(SCREENSHOTS / "test_at_phone_size_the_menu_collapses_menu_open.png")
    )
    await nav.get_by_role("link", name="Deliveries").click()
    await expect(p.get_by_role("heading", name="Deliveries")).to_be_visible(timeout=EXPECT_MS)
    await expect(nav).to_be_hidden()
    await expect(menu).to_have_attribute("aria-expanded", "false")
    # Open again, then Escape closes it and gives the focus back to the button.
    await menu.click()
    await expect(nav).to_be_visible()
    await p.keyboard.press("Escape")
    await expect(nav).to_be_hidden()
    await expect(menu).to_be_focused()
    await p.goto(f"{console.origin}/#/overview")
    await expect(p.locator("#chart svg")).to_be_visible(timeout=EXPECT_MS)
    assert_clean(page, console)


# 4. No workspace filled in that was never used; the sandbox's, when there is one.


async def test_no_workspace_is_filled_in_until_one_is_used_and_no_sandbox_link(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    p = await sign_in(page, console, "endpoints")
    for route in ("endpoints", "incoming", "integrations", "imports"):
        await p.goto(f"{console.origin}/#/{route}")
        fields = p.locator("main input[name=workspace_id]")
        await expect(fields.first).to_be_visible(timeout=EXPECT_MS)
        for n in range(await fields.count()):
            await expect(fields.nth(n)).to_have_value("")
    # Without the sandbox (its state answers 204, no content): no link to it. It was asked once, and
    # without the token.
    await expect(p.get_by_role("link", name="Sandbox")).to_have_count(0)
    async with p.expect_request("**/sandbox/api/state") as asked:
        await p.reload()
    request = await asked.value
    assert "authorization" not in await request.all_headers()
    await expect(p.get_by_role("button", name="Sign out")).to_be_visible(timeout=EXPECT_MS)
    await expect(p.get_by_role("navigation", name="Pages")).to_be_visible()
    await expect(p.get_by_role("link", name="Sandbox")).to_have_count(0)

    # A refused create remembers nothing; a create that succeeds remembers its workspace.
    await p.goto(f"{console.origin}/#/endpoints")
    refused = p.locator("section", has=p.get_by_role("heading", name="New endpoint"))
    await refused.get_by_label("Workspace id").fill("ws_refused")
    await refused.get_by_label("URL", exact=True).fill("https://example.com/refused")
    await refused.get_by_label("Retry schedule (seconds)").fill("soon")
    await p.get_by_role("button", name="Create endpoint").click()
    await expect(refused.get_by_role("alert")).to_be_visible(timeout=EXPECT_MS)
    assert await p.evaluate("localStorage.getItem('hookhub.workspace')") is None
    await p.goto(f"{console.origin}/#/incoming")
    create = p.locator("section", has=p.get_by_role("heading", name="New incoming webhook"))
    workspace = unique("ws_remembered")
    await create.get_by_label("Workspace id").fill(workspace)
    await create.get_by_label("Target channel id").fill("ch_remembered")
    await p.get_by_role("button", name="Create incoming webhook").click()
    await expect(create).to_contain_text("Post to:", timeout=EXPECT_MS)
    await expect(create.get_by_label("Workspace id")).to_have_value(workspace)
    assert await p.evaluate("localStorage.getItem('hookhub.workspace')") == workspace
    await p.goto(f"{console.origin}/#/endpoints")
    await expect(p.locator("main input[name=workspace_id]")).to_have_value(
        workspace, timeout=EXPECT_MS
    )
    assert_clean(page, console)


# 5. The mappings picker tells integrations of one provider apart, or says why it is empty.


async def test_the_mapping_picker_tells_two_integrations_of_one_provider_apart(
    page: Watched, console: Console, console_stack: Stack
) -> None:
    from playwright.async_api import expect

    workspace = unique("ws_picker")
    ids = []
    for _ in range(2):  # no names: both "slack integration"
        created = await console.api.post(
            "/api/integrations", json={"provider": "slack", "workspace_id": workspace}
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    await set_fields(
        console_stack, "integrations", ids[0], {"account": {"id": "T0ACME", "name": "Acme HQ"}}
    )

    p = await sign_in(page, console, "mappings")
    picker = p.get_by_label("Integration", exact=True)
    await expect(picker).to_be_visible(timeout=EXPECT_MS)
    labels = []
    for integration_id in ids:
        option = picker.locator(f"option[value='{integration_id}']")
        labels.append(await option.inner_text())
    assert labels[0] != labels[1], labels
    for integration_id, label in zip(ids, labels, strict=True):
        assert label.startswith("slack integration"), label
        assert "Slack" in label and integration_id[-6:] in label, label
    assert "Acme HQ (T0ACME)" in labels[0], labels
    texts = await picker.locator("option").all_inner_texts()
    assert len(texts) == len(set(texts)), "two options read the same"
    assert_clean(page, console)


async def test_the_mapping_picker_says_why_it_offers_no_integration(
    page: Watched, console: Console
) -> None:
    from playwright.async_api import expect

    workspace = unique("ws_no_chat")
    session = await console.api.post(f"/api/workspaces/{workspace}/portal-sessions", json={})
    assert session.status_code == 201, session.text
    p = page.page
    await p.goto(session.json()["url"])
    await p.get_by_role("link", name="Sync mappings").click()
    main = p.locator("main")
    await expect(main).to_contain_text(
        "No integration of a chat network (Discord, Google Chat, Matrix, Mattermost, "
        "Microsoft Teams, Slack, Telegram) in this workspace yet",
        timeout=EXPECT_MS,
    )
    # The message lookup offers every chat network the catalog lists, not three by name.
    networks = main.get_by_label("Provider", exact=True).locator("option")
    await expect(networks).to_have_count(7)
    await expect(networks.and_(p.locator("[value='teams']"))).to_have_text("Microsoft Teams")
    await expect(main.get_by_role("link", name="Integrations")).to_have_attribute(
        "href", "#/integrations"
    )
    await expect(main.get_by_label("Integration", exact=True)).to_have_count(0)

    created = await console.api.post(
        "/api/integrations",
        json={"provider": "discord", "workspace_id": workspace, "name": "Gone quiet"},
    )
    assert created.status_code == 201, created.text
    gone = await console.api.post(f"/api/integrations/{created.json()['id']}/disconnect")
    assert gone.status_code == 200, gone.text
    await p.reload()
    await expect(main.get_by_label("Integration", exact=True)).to_be_visible(timeout=EXPECT_MS)
    await expect(main).to_contain_text("none of them is connected")
    option = main.get_by_label("Integration", exact=True).locator(
        f"option[value='{created.json()['id']}']"
    )
    await expect(option).to_contain_text("Gone quiet · Discord · disconnected")
    assert_clean(page, console)


# 6. A dry run's counts are what it would import.


async def test_a_dry_run_s_counts_say_would_import(
    page: Watched, console: Console, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    path = slack_export(tmp_path, 5)
    with path.open("rb") as file:
        job = await console.api.post(
            "/api/imports",
            data={
                "workspace_id": unique("ws_would"),
                "dry_run": "true",
                "channel_map": '{"general": "ch_would"}',
            },
            files={"file": (path.name, file, "application/zip")},
        )
    assert job.status_code in (201, 202), job.text
    job_id = job.json()["id"]

    async def completed() -> bool:
        answer = await console.api.get(f"/api/imports/{job_id}")
        return bool(answer.json()["status"] == "completed")

    assert await wait_for(completed), "the dry run did not complete"

    p = await sign_in(page, console, f"imports/{job_id}")
    panel = p.locator(f"section[data-job='{job_id}']")
    await expect(panel.locator(".badge").first).to_have_text("completed", timeout=EXPECT_MS)
    facts = panel.locator("dl.facts")
    await expect(facts).to_contain_text("Would import5")
    await expect(facts).not_to_contain_text("Messages imported")
    channels = panel.get_by_role("table").filter(has_text="ch_would")
    await expect(channels.get_by_role("columnheader", name="Would import")).to_be_visible()
    await expect(channels.get_by_role("columnheader", name="Imported", exact=True)).to_have_count(0)

    await p.goto(f"{console.origin}/#/imports")
    row = p.get_by_role("row").filter(has_text=job_id)
    await expect(row).to_contain_text("would import 5", timeout=EXPECT_MS)
    assert_clean(page, console)


# 7. A clipped date, a table wider than its page, raw ids and field names, a heading twice.


async def assert_whole(p: Any, locator: Any) -> None:
    """The date-time field is at least as wide as it is on its own (not cut off)."""
    await locator.scroll_into_view_if_needed()
    widths = await locator.evaluate(
        """(el) => {
            const alone = el.cloneNode();
            alone.style.position = 'absolute';
            alone.style.left = '0';
            alone.style.top = '0';
            document.body.append(alone);
            const whole = alone.getBoundingClientRect().width;
            alone.remove();
            return [el.getBoundingClientRect().width, whole];
        }"""
    )
    shown, whole = widths
    assert shown >= whole - 0.5, f"{shown} px shown of {whole} px"


async def test_date_time_fields_show_their_whole_date(page: Watched, console: Console) -> None:
    created = await endpoint(console, "ws_console_dates", "Dated", "https://example.com/dated")
    p = await sign_in(page, console, f"endpoints/{created['id']}")
    recover = p.locator("section", has=p.get_by_role("heading", name="Recover since"))
    since = recover.get_by_label("Since")
    await since.wait_for(timeout=EXPECT_MS)
    await assert_whole(p, since)
    await p.goto(f"{console.origin}/#/deliveries")
    await assert_whole(p, p.get_by_label("Created since"))
    await p.goto(f"{console.origin}/#/audit")
    await assert_whole(p, p.get_by_label("Since"))
    await p.set_viewport_size(PHONE)
    await assert_whole(p, p.get_by_label("Since"))
    await p.set_viewport_size({"width": 1280, "height": 800})
    await p.goto(f"{console.origin}/#/endpoints/{created['id']}")
    await since.wait_for(timeout=EXPECT_MS)
    assert_clean(page, console)


async def test_the_deliveries_page_fits_1280_px_and_offers_the_endpoints_by_name(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    from playwright.async_api import expect

    fake, base = sink
    fake.on("/newcomer-wide", 200)
    name = unique("A receiver whose name is long enough to fill a column")
    good = await endpoint(console, "ws_console_wide", name, base + "/newcomer-wide")
    # Nothing listens on port 9: a long connection error as the last answer.
    down = await endpoint(console, "ws_console_wide", "Down", "http://127.0.0.1:9/never")
    sent = []
    for created in (good, down):
        answer = await console.api.post(f"/api/outgoing-webhooks/{created['id']}/test")
        sent.append(answer.json()["delivery_id"])
    for delivery_id in sent:
        assert await wait_for(lambda d=delivery_id: finished(console, d)), delivery_id

    p = await sign_in(page, console, "deliveries")
    await expect(p.get_by_role("link", name=sent[1])).to_be_visible(timeout=EXPECT_MS)
    sizes = await p.evaluate(
        """() => ({
            page: [document.documentElement.scrollWidth, window.innerWidth],
            tables: [...document.querySelectorAll('main .table-wrap')]
                .map((w) => [w.scrollWidth, w.clientWidth]),
        })"""
    )
    assert sizes["page"][0] <= sizes["page"][1], sizes
    assert sizes["tables"] and all(s <= c for s, c in sizes["tables"]), sizes
    # The endpoint by its name, the id as its title.
    row = p.get_by_role("row").filter(has_text=sent[0])
    await expect(row.get_by_role("link", name=name)).to_have_attribute("title", good["id"])

    picker = p.get_by_label("Endpoint", exact=True)
    await expect(picker.locator(f"option[value='{good['id']}']")).to_contain_text(name)
    await picker.select_option(good["id"])
    await p.get_by_role("button", name="Filter").click()
    await expect(p.get_by_role("link", name=sent[1])).to_have_count(0, timeout=EXPECT_MS)
    await expect(p.get_by_role("link", name=sent[0])).to_be_visible()
    assert f"webhook_id={good['id']}" in p.url
    await expect(picker).to_have_value(good["id"])
    assert_clean(page, console)


async def test_the_overview_names_its_services_once(page: Watched, console: Console) -> None:
    from playwright.async_api import expect

    p = await sign_in(page, console, "overview")
    await expect(p.locator("#health")).to_contain_text("hookhub is ready", timeout=EXPECT_MS)
    await expect(p.locator("main").get_by_text("Services", exact=True)).to_have_count(1)
    await expect(p.get_by_role("heading", name="Services")).to_have_count(1)
    assert_clean(page, console)


async def test_the_provider_apps_form_has_human_labels(page: Watched, console: Console) -> None:
    from playwright.async_api import expect

    p = await sign_in(page, console, "providers")
    form = p.locator("section", has=p.get_by_role("heading", name="Set a provider app"))
    await form.get_by_label("Provider").select_option("github")
    await expect(form.get_by_label("Client ID", exact=True)).to_be_visible(timeout=EXPECT_MS)
    await expect(form.get_by_label("Client secret", exact=True)).to_be_visible()
    await form.get_by_label("Provider").select_option("slack")
    await expect(form.get_by_label("Signing secret", exact=True)).to_be_visible()
    await expect(form.get_by_label("History tier", exact=True)).to_be_visible()
    await form.get_by_label("Provider").select_option("discord")
    await expect(form.get_by_label("Public key", exact=True)).to_be_visible()
    raw = re.compile(r"^(client_id|client_secret|signing_secret|public_key|history_tier)$")
    await expect(form.locator("label").filter(has_text=raw)).to_have_count(0)
    await expect(p.get_by_role("columnheader", name="Client ID")).to_be_visible()
    assert_clean(page, console)


async def test_at_phone_size_a_github_integration_s_subscriptions_are_near_the_top(
    page: Watched, console: Console
) -> None:
    """Subscriptions are what a GitHub or Jira integration is for: on a phone their section
    follows the integration's summary, within the first screen, and the event types, some
    forty checkboxes, are folded behind a disclosure that says what is chosen."""
    from playwright.async_api import expect

    created = await console.api.post(
        "/api/integrations",
        json={
            "provider": "github",
            "workspace_id": unique("ws_phone"),
            "settings": {"webhook_secret": "phone-secret"},
        },
    )
    assert created.status_code == 201, created.text
    p = page.page
    await p.set_viewport_size(PHONE)
    await sign_in(page, console, f"integrations/{created.json()['id']}")
    heading = p.get_by_role("heading", name="Notification subscriptions")
    await expect(heading).to_be_visible(timeout=EXPECT_MS)
    headings = await p.locator("main h2").all_inner_texts()
    assert headings[:2] == ["Status", "Notification subscriptions"], headings
    box = await heading.bounding_box()
    assert box and box["y"] + box["height"] <= PHONE["height"], box  # no scrolling to it

    subs = p.locator("section", has=heading)
    events = subs.locator("details.event-picker")
    await expect(events).not_to_have_attribute("open", "")
    await expect(events.locator(":scope > summary")).to_contain_text("none chosen")
    push = subs.get_by_label("push default", exact=True)
    await expect(push).to_be_hidden()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await p.screenshot(path=str(SCREENSHOTS / "phone_subscriptions_folded.png"))
    await events.locator(":scope > summary").click()
    await expect(push).to_be_visible()
    await push.check()
    await expect(events.locator(":scope > summary")).to_contain_text("1 chosen")
    assert await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # The form, its long select options included, within its card.
    card, form = await subs.bounding_box(), await subs.locator("form").bounding_box()
    assert card and form and form["x"] + form["width"] <= card["x"] + card["width"], (card, form)
    assert_clean(page, console)
