"""What a new user met in the console at 1280 and 390 px (#59), each checked in headless
Chromium: pages wider than a phone (a delivery's id, a template's card), a note over the
page's title, a page naming its title twice, a request the console knew would be refused
on every catalog integration's page and the rows of an OAuth connection on a webhook-only
one, a delivery's page that showed only what was not sent, and a template's error that
said where twice.

A failed test leaves its screenshot in test-output/console/<test name>.png (conftest.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.delivery.deliveries.dispatcher import HIDDEN_HEADER
from tests.console.conftest import SCREENSHOTS, Console, Watched
from tests.console.test_console import EXPECT_MS, sign_in, wait_for
from tests.console.test_newcomer import PHONE, endpoint, finished
from tests.webhook_sink import WebhookSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

# Rewrites the body and adds a header: what was sent is not the delivery's payload.
WRAP = (
    "function handler(webhook) {\n"
    "  webhook.payload = {wrapped: webhook.payload, by: 'the transformation'};\n"
    "  webhook.headers['X-Wrapped'] = 'yes';\n"
    "  return webhook;\n}"
)


async def scroll_width(p: Any) -> int:
    width: int = await p.evaluate("document.documentElement.scrollWidth")
    return width


async def transformed_delivery(
    console: Console, sink: tuple[WebhookSink, str], workspace: str
) -> tuple[dict[str, Any], str]:
    """An endpoint with a transformation and a header of its own, and a test event's
    delivery to it, finished."""
    fake, base = sink
    path = "/first-use-" + uuid.uuid4().hex[:6]
    fake.on(path, 200)
    made = await endpoint(console, workspace, "Wrapped", base + path)
    changed = await console.api.patch(
        f"/api/outgoing-webhooks/{made['id']}",
        json={
            "transformation": {"code": WRAP, "enabled": True},
            "headers": {"Authorization": "Bearer endpoint-only-" + uuid.uuid4().hex},
        },
    )
    assert changed.status_code == 200, changed.text
    tested = await console.api.post(f"/api/outgoing-webhooks/{made['id']}/test", json={})
    assert tested.status_code == 202, tested.text
    delivery_id = str(tested.json()["delivery_id"])
    assert await wait_for(lambda: finished(console, delivery_id)), "the test event never ended"
    return made, delivery_id


async def test_at_phone_width_a_delivery_and_a_template_test_fit_the_screen(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    """The delivery's page (its id as the title made it 449 px) and an incoming webhook's
    template tried with long values (its card made it 567 px and more) do not scroll
    sideways at 390 px."""
    from playwright.async_api import expect

    _, delivery_id = await transformed_delivery(console, sink, "ws_first_phone")
    hook = await console.api.post(
        "/api/incoming-webhooks",
        json={"workspace_id": "ws_first_phone", "name": "Builds", "target_channel_id": "ch_b"},
    )
    assert hook.status_code == 201, hook.text
    await page.page.set_viewport_size(PHONE)
    p = await sign_in(page, console, f"deliveries/{delivery_id}")
    await expect(p.locator("#delivery")).to_contain_text("Request sent", timeout=EXPECT_MS)
    assert await scroll_width(p) <= PHONE["width"]
    await p.screenshot(path=str(SCREENSHOTS / "first_use_delivery_phone.png"), full_page=True)

    await p.goto(f"{console.origin}/#/incoming/{hook.json()['id']}")
    editor = p.locator("details.template-editor")
    await editor.locator("summary").click()
    await editor.get_by_label("Template", exact=True).fill(
        "function handler(event) {\n"
        "  return {text: 'x'.repeat(120), title: 'T'.repeat(90),\n"
        "    url: 'https://example.com/' + 'a'.repeat(150),\n"
        "    fields: [{name: 'N'.repeat(60), value: 'v'.repeat(150)}], item: 'i'.repeat(100)};\n}"
    )
    await editor.get_by_role("button", name="Test").click()
    await expect(editor.locator(".template-card")).to_contain_text("TTTT", timeout=EXPECT_MS)
    assert await scroll_width(p) <= PHONE["width"]


async def test_a_note_of_what_was_done_never_covers_the_page_s_title(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    """At 1280 px, the green note after an action stays clear of the title, the page
    scrolled or not (a band stuck to the top covered it once the page was scrolled a
    little)."""
    from playwright.async_api import expect

    made = await endpoint(console, "ws_first_flash", "Noted", sink[1] + "/first-use-flash")
    p = await sign_in(page, console, f"endpoints/{made['id']}")
    await p.get_by_role("button", name="Disable").click()
    note = p.locator("#flash .note")
    await expect(note).to_have_text("Endpoint disabled.", timeout=EXPECT_MS)
    title = p.get_by_role("heading", name="Noted", level=1)
    for scrolled in ("0", "document.querySelector('main h1').offsetTop - 10"):
        await p.evaluate(f"window.scrollTo(0, {scrolled})")
        over, under = await note.bounding_box(), await title.bounding_box()
        assert over is not None and under is not None
        apart = (
            over["y"] >= under["y"] + under["height"]
            or under["y"] >= over["y"] + over["height"]
            or over["x"] >= under["x"] + under["width"]
            or under["x"] >= over["x"] + over["width"]
        )
        assert apart, (scrolled, over, under)
        await p.screenshot(path=str(SCREENSHOTS / f"first_use_note_{len(scrolled)}.png"))


async def test_a_list_page_names_its_title_once(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    """ "Outgoing endpoints" was the page's title and its table's caption, read twice (and
    likewise on three other lists, and a resource's "Recent changes"): each list here holds
    a row, so its table is shown."""
    from playwright.async_api import expect

    workspace = "ws_first_titles"
    listed = await endpoint(console, workspace, "Listed", sink[1] + "/first-use-listed")
    for path, body in (
        (
            "/api/integrations",
            {"provider": "hmac", "settings": {"secret": uuid.uuid4().hex, "header": "X-Sig"}},
        ),
        ("/api/incoming-webhooks", {"name": "Listed", "target_channel_id": "ch_listed"}),
        ("/api/event-types", {"name": "first_use.listed", "description": "a row"}),
    ):
        answer = await console.api.post(path, json={"workspace_id": workspace, **body})
        assert answer.status_code == 201, answer.text
    p = await sign_in(page, console, "endpoints")
    for route, title in (
        ("endpoints", "Outgoing endpoints"),
        ("integrations", "Integrations"),
        ("incoming", "Incoming webhooks"),
        ("event-types", "Event types"),
    ):
        await p.goto(f"{console.origin}/#/{route}")
        await expect(p.locator("main h1")).to_have_text(title, timeout=EXPECT_MS)
        await expect(p.locator("main caption")).to_be_visible(timeout=EXPECT_MS)
        await expect(p.locator("main").get_by_text(title, exact=True)).to_have_count(1)
    # A resource's recent changes: the section's heading, not its table's caption too.
    await p.goto(f"{console.origin}/#/endpoints/{listed['id']}")
    changes = p.locator("section", has=p.get_by_role("heading", name="Recent changes"))
    await expect(changes.locator("caption")).to_be_visible(timeout=EXPECT_MS)
    await expect(changes.get_by_text("Recent changes", exact=True)).to_have_count(1)


async def test_a_webhook_only_integration_s_page_asks_nothing_refused_and_no_oauth_rows(
    page: Watched, console: Console
) -> None:
    """A Stripe integration's page asked `GET /api/providers/stripe` (a 422 in the browser's
    console: Stripe has no provider app) and showed empty "Account" and "Token expires"
    rows; a GitHub one, connected through OAuth, still shows both and its scopes."""
    from playwright.async_api import expect

    made = {}
    for provider, settings in (
        ("stripe", {"signing_secret": "whsec_" + uuid.uuid4().hex}),
        ("github", {"webhook_secret": uuid.uuid4().hex}),
    ):
        answer = await console.api.post(
            "/api/integrations",
            json={"provider": provider, "workspace_id": "ws_first_rows", "settings": settings},
        )
        assert answer.status_code == 201, answer.text
        made[provider] = answer.json()["id"]
    p = await sign_in(page, console, f"integrations/{made['stripe']}")
    status = p.locator("section", has=p.get_by_role("heading", name="Status"))
    await expect(status).to_contain_text("Write-only settings set", timeout=EXPECT_MS)
    assert "Token expires" not in await status.inner_text()
    assert "Account" not in await status.inner_text()
    assert not [url for url in page.requests if "/api/providers/" in url]
    assert page.errors == [], page.errors  # no 4xx logged, nothing else either

    await p.goto(f"{console.origin}/#/integrations/{made['github']}")
    github = p.locator("section", has=p.get_by_role("heading", name="Status"))
    await expect(github).to_contain_text("Token expires", timeout=EXPECT_MS)
    await expect(github).to_contain_text("Account")
    assert [url for url in page.requests if url.endswith("/api/providers/github")]
    assert page.errors == [], page.errors


async def test_a_delivery_s_page_shows_the_request_sent_body_and_headers(
    page: Watched, console: Console, sink: tuple[WebhookSink, str]
) -> None:
    """The payload before the transformation was all the page showed: each attempt now
    shows its request as sent, the transformed body and every header (the signature
    too), the endpoint's own header's value and its signing secret never."""
    from playwright.async_api import expect

    fake, _ = sink
    made, delivery_id = await transformed_delivery(console, sink, "ws_first_sent")
    arrived = await fake.wait_for(made["url"].removeprefix(sink[1]), 1)
    if len(arrived) != 1:  # say how the delivery ended (a CI run once saw none arrive)
        ended = await console.api.get(f"/api/deliveries/{delivery_id}")
        raise AssertionError(f"{len(arrived)} requests at the sink; the delivery: {ended.text}")
    [received] = arrived
    p = await sign_in(page, console, f"deliveries/{delivery_id}")
    sent = p.locator("#delivery details.sent")
    await expect(sent).to_contain_text("Request sent", timeout=EXPECT_MS)
    await expect(sent).to_contain_text(f"POST {made['url']}")
    body = sent.locator("pre.sent-body")
    await expect(body).to_have_text(received.body.decode())
    assert "the transformation" in received.body.decode()
    headers = sent.locator("pre.json").first
    await expect(headers).to_contain_text(received.headers["webhook-signature"])
    await expect(headers).to_contain_text('"x-wrapped": "yes"')
    await expect(headers).to_contain_text(HIDDEN_HEADER)
    content = await p.content()
    assert "endpoint-only-" not in content
    assert made["secret"] not in content
    await expect(p.locator("#delivery")).to_contain_text("before the endpoint's transformation")


async def test_a_template_refused_at_save_says_where_once(page: Watched, console: Console) -> None:
    """hookhub's message names the line and column already; the console added them again."""
    from playwright.async_api import expect

    hook = await console.api.post(
        "/api/incoming-webhooks",
        json={"workspace_id": "ws_first_tpl", "name": "Broken", "target_channel_id": "ch_t"},
    )
    assert hook.status_code == 201, hook.text
    p = await sign_in(page, console, f"incoming/{hook.json()['id']}")
    editor = p.locator("details.template-editor")
    await editor.locator("summary").click(timeout=EXPECT_MS)
    await editor.get_by_label("Template", exact=True).fill(
        "function handler(event) {\n  return {text: 1 +};\n}"
    )
    await p.get_by_role("button", name="Save template").click()
    refused = p.get_by_role("alert").filter(has_text="invalid_template")
    await expect(refused).to_contain_text("(line 2, column", timeout=EXPECT_MS)
    assert (await refused.inner_text()).count("(line 2, column") == 1
