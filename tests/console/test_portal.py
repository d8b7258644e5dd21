"""The console in portal mode (SPEC §13), in headless Chromium against the stack as `make
run` starts it: a portal session's link opens one workspace's pages and nothing else,
read-only when asked, in the chat product's colours, inside the chat product's frame (the
origin HOOKHUB_PORTAL_FRAME_ANCESTORS names) and nowhere else, and ends on the expired page.

Two workspaces hold one of everything, named so that the page's text tells them apart.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.sync.mappings.schemas import MappingCreate
from services.sync.mappings.service import mapping_doc
from shared.domain import api_keys
from shared.domain.mappings import COLLECTION as MAPPINGS
from shared.kernel.crypto import fingerprint
from shared.kernel.ids import new_id, utcnow
from tests.console.conftest import Console, Watched, running_stack
from tests.console.test_console import EXPECT_MS, wait_for
from tests.e2e.stack import Stack
from tests.slack_export import ExportBuilder, message
from tests.support import serve
from tests.webhook_sink import WebhookSink

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

PORTAL_PAGES = [
    "Integrations",
    "Incoming webhooks",
    "Outgoing endpoints",
    "Event types",
    "Deliveries",
    "Sync mappings",
    "Account links",
    "Imports",
    "Audit log",
]
# An endpoint's circuit breaker as its page says it (SPEC §17): the defaults here.
BREAKER_SHOWN = "on: opens when 50% of the last 20 attempts failed"


@dataclass
class ChatSite:
    """The chat product's settings page, framing `src`: on a real loopback server (a page
    the browser makes up itself counts as public, and may not frame one on this machine)."""

    origin: str = ""  # http://localhost:port, allowed to frame the portal
    other: str = ""  # the same page at http://127.0.0.1:port: another origin, not allowed
    src: str = ""


@pytest.fixture(scope="module")
async def chat_site() -> AsyncIterator[ChatSite]:
    site = ChatSite()

    async def settings(_: Request) -> Response:
        return HTMLResponse(
            "<!doctype html><title>Chat settings</title><h1>Chat settings</h1>"
            f'<iframe id="portal" title="hookhub" src="{html.escape(site.src)}" '
            'width="1200" height="700"></iframe>'
        )

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/settings", settings), Route("/healthz", healthz)])
    async with serve(app, probe="/healthz") as running:
        site.other = running.base_url
        site.origin = running.base_url.replace("127.0.0.1", "localhost")
        yield site


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory, chat_site: ChatSite) -> Iterator[Stack]:
    settings = {"HOOKHUB_PORTAL_FRAME_ANCESTORS": chat_site.origin}
    yield from running_stack(tmp_path_factory, settings)


@dataclass
class Workspace:
    """One workspace's resources: every name and id holds `marker` (alpha or beta)."""

    id: str
    marker: str
    github: str  # an integration with a subscription
    chat: str  # a Slack integration with a mapping
    incoming: str
    endpoint: str
    delivery: str
    job: str

    def names(self) -> list[str]:
        """What of it a page may show by name: any of its pages shows one."""
        return [
            self.id,
            f"{self.marker} repos",
            f"{self.marker} chat",
            f"{self.marker} alerts",
            f"{self.marker} receiver",
            f"ch-{self.marker.lower()}",
            self.on_call(),
        ]

    def on_call(self) -> str:
        """Who its chat user is at PagerDuty (its account link)."""
        return f"{self.marker.lower()}-oncall@example.com"

    def ids(self) -> list[str]:
        return [self.github, self.chat, self.incoming, self.endpoint, self.delivery, self.job]


@pytest.fixture(scope="module")
async def workspaces(
    console: Console,
    console_stack: Stack,
    sink: tuple[WebhookSink, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Workspace, Workspace]:
    _, base = sink
    api = console.api
    made = []
    for marker in ("Alpha", "Beta"):
        workspace_id = f"ws_{marker.lower()}_{uuid.uuid4().hex[:6]}"
        lower = marker.lower()

        async def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = await api.post(path, json=body)
            assert answer.status_code == 201, answer.text
            result: dict[str, Any] = answer.json()
            return result

        github = await created(
            "/api/integrations",
            {
                "provider": "github",
                "workspace_id": workspace_id,
                "name": f"{marker} repos",
                "settings": {"webhook_secret": f"{lower}-secret"},
            },
        )
        await created(
            f"/api/integrations/{github['id']}/subscriptions",
            {"channel_id": f"ch-{lower}-news"},
        )
        chat = await created(
            "/api/integrations",
            {"provider": "slack", "workspace_id": workspace_id, "name": f"{marker} chat"},
        )
        incoming = await created(
            "/api/incoming-webhooks",
            {
                "workspace_id": workspace_id,
                "target_channel_id": f"ch-{lower}-alerts",
                "name": f"{marker} alerts",
            },
        )
        endpoint = await created(
            "/api/outgoing-webhooks",
            {
                "workspace_id": workspace_id,
                "name": f"{marker} receiver",
                "url": f"{base}/portal-{lower}",
                "events": ["*"],
            },
        )
        sent = await api.post(f"/api/outgoing-webhooks/{endpoint['id']}/test")
        assert sent.status_code in (200, 201, 202), sent.text
        export = ExportBuilder()
        export.add_user("U0000000001", "ada")
        general = export.add_channel("general", members=["U0000000001"])
        export.add_message(general, "2024-03-01", message("1709300000.000100", "hello"))
        path = export.write(tmp_path_factory.mktemp("export") / "slack-export.zip")
        with path.open("rb") as file:
            job = await api.post(
                "/api/imports",
                data={
                    "workspace_id": workspace_id,
                    "dry_run": "true",
                    "channel_map": f'{{"general": "ch-{lower}-import"}}',
                },
                files={"file": (path.name, file, "application/zip")},
            )
        assert job.status_code in (201, 202), job.text
        linked = await api.put(
            f"/api/account-links/pagerduty/u-{lower}",
            params={"workspace_id": workspace_id},
            json={"provider_user": f"{lower}-oncall@example.com", "name": f"{marker} on call"},
        )
        assert linked.status_code == 201, linked.text
        made.append(
            Workspace(
                id=workspace_id,
                marker=marker,
                github=github["id"],
                chat=chat["id"],
                incoming=incoming["id"],
                endpoint=endpoint["id"],
                delivery=sent.json()["delivery_id"],
                job=job.json()["id"],
            )
        )
    # A mapping needs a connected integration and the provider's word that the channel is
    # usable: written here as the sync service would.
    await stored(
        console_stack,
        MAPPINGS,
        *(
            mapping_doc(
                workspace_id=w.id,
                integration_id=w.chat,
                provider="slack",
                external_channel_id=f"C0{w.marker.upper()}",
                external_channel_name=f"{w.marker.lower()}-general",
                body=MappingCreate(
                    external_channel_id=f"C0{w.marker.upper()}",
                    channel_id=f"ch-{w.marker.lower()}-sync",
                ),
            )
            for w in made
        ),
    )
    return made[0], made[1]


async def stored(stack: Stack, collection: str, *docs: dict[str, Any]) -> None:
    """`docs` written straight into the stack's database."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        stack.env["HOOKHUB_MONGO_URI"], tz_aware=True
    )
    try:
        await client[stack.env.get("HOOKHUB_MONGO_DB", "hookhub")][collection].insert_many(docs)
    finally:
        await client.close()


async def portal_session(
    console: Console, workspace: Workspace, *, read_only: bool = False
) -> dict[str, Any]:
    answer = await console.api.post(
        f"/api/workspaces/{workspace.id}/portal-sessions", json={"read_only": read_only}
    )
    assert answer.status_code == 201, answer.text
    session: dict[str, Any] = answer.json()
    assert session["url"] == f"{console.origin}/portal#token={session['token']}"
    return session


def portal_url(console: Console, token: str, **look: str) -> str:
    query = f"?{urlencode(look)}" if look else ""
    return f"{console.origin}/portal{query}#token={token}"


async def page_text(page: Any) -> str:
    text: str = await page.locator("body").inner_text()
    return text


def assert_none_of(workspace: Workspace, text: str, where: str, ids: bool = True) -> None:
    """`text` shows nothing of `workspace` (`ids`: not even an id, unless the test typed it)."""
    shown = [t for t in workspace.names() + (workspace.ids() if ids else []) if t in text]
    assert shown == [], f"{where} shows {workspace.marker}'s {shown}"


def assert_no_token_sent(watched: Watched, *tokens: str) -> None:
    """No request the page made carries a session's token or any `hhp_` in its URL (the
    part before any fragment: a fragment never leaves the browser)."""
    sent = [url.split("#", 1)[0] for url in watched.requests]
    assert sent, "the page made no request"
    leaked = [url for url in sent if "hhp_" in url or any(t in url for t in tokens)]
    assert leaked == [], leaked


async def test_a_portal_shows_its_workspace_and_nothing_of_another_or_global(
    page: Watched, console: Console, workspaces: tuple[Workspace, Workspace]
) -> None:
    from playwright.async_api import expect

    mine, other = workspaces
    session = await portal_session(console, mine)
    token = session["token"]
    referers: list[str] = []
    page.page.on("request", lambda request: referers.append(request.headers.get("referer") or ""))
    p = page.page
    await p.goto(portal_url(console, token))
    await expect(p.get_by_role("link", name=f"{mine.marker} repos")).to_be_visible(
        timeout=EXPECT_MS
    )
    # The token left the address bar at once, into the tab's session storage alone.
    assert "#" not in p.url and "hhp_" not in p.url, p.url
    assert await p.evaluate("sessionStorage.getItem('hookhub.portal_session')") == token
    assert token not in await p.evaluate("JSON.stringify(localStorage)")
    await expect(p.locator("#session")).to_contain_text(f"Workspace {mine.id}")
    await expect(p.get_by_role("button", name="Sign out")).to_be_hidden()

    # The navigation: the workspace's pages, nothing global.
    nav = p.get_by_role("navigation", name="Pages")
    links = await nav.get_by_role("link").all_inner_texts()
    assert [name for name in PORTAL_PAGES if name not in links] == [], links
    for global_page in ("Overview", "Provider apps", "API keys"):
        assert global_page not in links, links

    async def shows(route: str, *expected: str) -> None:
        await p.goto(f"{console.origin}/portal#/{route}")
        for text in expected:
            await expect(p.locator("main")).to_contain_text(text, timeout=EXPECT_MS)
        await expect(p.locator("[aria-busy=true]")).to_have_count(0, timeout=EXPECT_MS)
        assert_none_of(other, await page_text(p), route)

    await shows("integrations", f"{mine.marker} repos", f"{mine.marker} chat")
    # The catalog is the same for a workspace's session: its form offers every provider,
    # and an integration's page has its provider's setup steps.
    catalog = (await console.api.get("/api/provider-catalog")).json()["items"]
    create = p.locator("section", has=p.get_by_role("heading", name="New integration"))
    await expect(create.get_by_label("Provider", exact=True).locator("option")).to_have_count(
        len(catalog)
    )
    await shows(f"integrations/{mine.github}", f"ch-{mine.marker.lower()}-news")
    await expect(p.get_by_role("heading", name="Setting up GitHub")).to_be_visible()
    await shows("incoming", f"{mine.marker} alerts")
    await shows("endpoints", f"{mine.marker} receiver")
    await shows(f"endpoints/{mine.endpoint}", f"{mine.marker} receiver", BREAKER_SHOWN)
    await expect(p.get_by_role("button", name="Save circuit breaker")).to_be_visible()
    await shows("deliveries", mine.delivery)
    await shows("mappings", f"{mine.marker} chat")
    await shows(f"mappings?integration_id={mine.chat}", f"ch-{mine.marker.lower()}-sync")
    await shows("account-links", mine.on_call(), f"{mine.marker} on call")
    await shows("imports", mine.job)
    await shows(f"imports/{mine.job}", f"ch-{mine.marker.lower()}-import")
    await shows(f"incoming/{mine.incoming}", f"{mine.marker} alerts")
    await shows("audit", mine.github, mine.endpoint)  # the workspace's changes alone
    # The event type catalog (SPEC §17): the global types and the workspace's own, each
    # with its examples; not another workspace's.
    types = {
        owner: f"portal.{owner}{uuid.uuid4().hex[:6]}" for owner in ("global", "mine", "theirs")
    }
    for owner, workspace_id in (("global", None), ("mine", mine.id), ("theirs", other.id)):
        made = await console.api.post(
            "/api/event-types",
            json={
                "name": types[owner],
                "workspace_id": workspace_id,
                "schema": {"type": "object"},
                "examples": [{"said": f"an example of {types[owner]}"}],
            },
        )
        assert made.status_code == 201, made.text
    await shows("event-types", types["global"], types["mine"])
    assert types["theirs"] not in await page_text(p)
    await shows(f"event-types/{types['mine']}", f"an example of {types['mine']}")
    await shows(f"event-types/{types['global']}", f"an example of {types['global']}")
    await p.goto(f"{console.origin}/portal#/event-types/{types['theirs']}")
    await expect(p.locator("main")).to_contain_text("not_found", timeout=EXPECT_MS)
    assert f"an example of {types['theirs']}" not in await page_text(p)
    # Another workspace's resources do not exist here, and global pages are not pages.
    for route in (
        f"integrations/{other.github}",
        f"endpoints/{other.endpoint}",
        f"deliveries/{other.delivery}",
    ):
        await p.goto(f"{console.origin}/portal#/{route}")
        await expect(p.locator("main")).to_contain_text("not_found", timeout=EXPECT_MS)
        assert_none_of(other, await page_text(p), route, ids=False)
    # The mappings of another workspace's integration: its integration is not found.
    await p.goto(f"{console.origin}/portal#/mappings?integration_id={other.chat}")
    await expect(p.locator("main")).to_contain_text("not_found", timeout=EXPECT_MS)
    assert_none_of(other, await page_text(p), "another's mappings", ids=False)
    for route in ("overview", "providers"):
        await p.goto(f"{console.origin}/portal#/{route}")
        await expect(p.get_by_role("heading", name="Not found")).to_be_visible()

    # Nor is it in the tab's history.
    await p.go_back()
    await expect(p.get_by_role("heading", name="Incoming webhooks")).to_be_hidden()
    assert "hhp_" not in p.url and p.url.startswith(f"{console.origin}/portal"), p.url

    # A create form's workspace is the session's, fixed.
    await p.goto(f"{console.origin}/portal#/incoming")
    create = p.locator("section", has=p.get_by_role("heading", name="New incoming webhook"))
    workspace_field = create.get_by_label("Workspace id")
    await expect(workspace_field).to_have_value(mine.id)
    await expect(workspace_field).to_have_attribute("readonly", "")
    await create.get_by_label("Target channel id").fill("ch-portal-made")
    await create.get_by_label("Name").fill("Made in the portal")
    await p.get_by_role("button", name="Create incoming webhook").click()
    await expect(create).to_contain_text("Created. Post to:", timeout=EXPECT_MS)
    listed = await console.api.get("/api/incoming-webhooks", params={"workspace_id": mine.id})
    assert "Made in the portal" in [w["name"] for w in listed.json()["data"]]

    assert_no_token_sent(page, token)
    assert [r for r in referers if token in r or "hhp_" in r] == []
    assert page.dialogs == []
    assert [e for e in page.errors if "status of 4" not in e] == [], page.errors


async def test_a_read_only_portal_offers_no_change_and_the_api_refuses_one(
    page: Watched, console: Console, workspaces: tuple[Workspace, Workspace]
) -> None:
    from playwright.async_api import expect

    mine, _ = workspaces
    token = (await portal_session(console, mine, read_only=True))["token"]
    p = page.page
    await p.goto(portal_url(console, token))
    await expect(p.get_by_role("link", name=f"{mine.marker} repos")).to_be_visible(
        timeout=EXPECT_MS
    )
    await expect(p.locator("#session")).to_contain_text("read-only")
    await expect(p.locator(".brand")).to_have_text("hookhub")  # no title asked for

    async def offers_nothing(route: str, shown: str) -> None:
        await p.goto(f"{console.origin}/portal#/{route}")
        await expect(p.locator("main")).to_contain_text(shown, timeout=EXPECT_MS)
        await expect(p.locator("[aria-busy=true]")).to_have_count(0, timeout=EXPECT_MS)
        buttons = await p.locator("main").get_by_role("button").all_inner_texts()
        # What is left reads: filters, lookups, copies, pages of a list.
        reading = ("Filter", "Show mappings", "Look up", "Copy", "Refresh", "page")
        changing = [b for b in buttons if not any(word in b for word in reading)]
        assert changing == [], f"{route} offers {changing}"
        assert await p.locator("main form input[name=workspace_id]").count() == 0, route

    await offers_nothing("integrations", f"{mine.marker} repos")
    await offers_nothing(f"integrations/{mine.github}", f"ch-{mine.marker.lower()}-news")
    await offers_nothing(f"integrations/{mine.chat}", "Sync mappings")
    await offers_nothing("incoming", f"{mine.marker} alerts")
    await offers_nothing("endpoints", f"{mine.marker} receiver")
    await offers_nothing(f"endpoints/{mine.endpoint}", f"{mine.marker} receiver")
    await expect(p.locator("main")).to_contain_text(BREAKER_SHOWN)  # read, not tuned
    await expect(p.get_by_role("heading", name="Circuit breaker")).to_have_count(0)
    await offers_nothing(f"deliveries/{mine.delivery}", mine.delivery)
    await offers_nothing(f"mappings?integration_id={mine.chat}", f"ch-{mine.marker.lower()}-sync")
    await offers_nothing("account-links", mine.on_call())
    await offers_nothing("imports", mine.job)
    await offers_nothing("audit", mine.github)
    for heading in (
        "New integration",
        "New incoming webhook",
        "New endpoint",
        "Upload an export",
        "Link a chat user",
    ):
        await expect(p.get_by_role("heading", name=heading)).to_have_count(0)

    # A change made anyway, through the page's own API module, is refused.
    refused = await p.evaluate(
        """async (workspace) => {
            const api = await import("/console/api.js");
            try {
                await api.post("/api/incoming-webhooks", {workspace_id: workspace, target_channel_id: "ch-x"});
                return "created";
            } catch (err) {
                return `${err.status} ${err.code}`;
            }
        }""",
        mine.id,
    )
    assert refused == "403 read_only"
    assert_no_token_sent(page, token)


async def test_a_portal_ends_on_the_expired_page_after_expire_all(
    page: Watched, console: Console, workspaces: tuple[Workspace, Workspace]
) -> None:
    from playwright.async_api import expect

    mine, _ = workspaces
    token = (await portal_session(console, mine))["token"]
    p = page.page
    await p.goto(portal_url(console, token))
    await expect(p.get_by_role("link", name=f"{mine.marker} repos")).to_be_visible(
        timeout=EXPECT_MS
    )
    ended = await console.api.post(f"/api/workspaces/{mine.id}/portal-sessions/expire-all")
    assert ended.status_code == 200 and ended.json()["expired"] >= 1, ended.text

    # Every replica refuses it within seconds; the gateway's, which the next page asks, too.
    async def refused() -> bool:
        answer = await console.api.get(
            "/api/incoming-webhooks", headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status_code == 401

    assert await wait_for(refused, timeout=15), "the ended session is still accepted"
    await p.get_by_role("link", name="Incoming webhooks").click()
    await expect(p.get_by_role("heading", name="This link has expired")).to_be_visible(
        timeout=EXPECT_MS
    )
    await expect(p.get_by_text("Ask for a new one")).to_be_visible()
    await expect(p.get_by_role("navigation", name="Pages")).to_be_hidden()
    await expect(p.locator("#session")).to_have_count(0)
    await expect(p.get_by_label("Admin token")).to_have_count(0)  # not the operator's sign-in
    assert await p.evaluate("sessionStorage.length") == 0
    assert_no_token_sent(page, token)


async def test_an_expired_missing_or_foreign_token_opens_nothing(
    page: Watched, console: Console, console_stack: Stack, workspaces: tuple[Workspace, Workspace]
) -> None:
    from playwright.async_api import expect

    mine, _ = workspaces
    # A session that ended an hour ago, never seen by any replica's cache.
    expired = api_keys.new_key(api_keys.PORTAL_PREFIX)
    now = utcnow()
    await stored(
        console_stack,
        api_keys.COLLECTION,
        {
            "_id": new_id("pts"),
            "kind": api_keys.PORTAL,
            "workspace_id": mine.id,
            "name": "portal session",
            "prefix": expired[: api_keys.SHOWN],
            "key_hash": fingerprint(expired),
            "scopes": ["read", "write"],
            "created_at": now - timedelta(hours=2),
            "last_used_at": None,
            "expires_at": now - timedelta(hours=1),
            "updated_at": now - timedelta(hours=2),
            "deleted_at": None,
        },
    )
    p = page.page
    for url in (
        portal_url(console, expired),
        f"{console.origin}/portal",
        # The admin token is no portal session: not taken, not kept, never sent.
        portal_url(console, console.token),
    ):
        await p.goto(url)
        await expect(p.get_by_role("heading", name="This link has expired")).to_be_visible(
            timeout=EXPECT_MS
        )
        await expect(p.get_by_label("Admin token")).to_have_count(0)
        assert "#" not in p.url
        assert await p.evaluate("sessionStorage.length") == 0
    me = await console.api.get("/api/me", headers={"Authorization": f"Bearer {expired}"})
    assert me.status_code == 401
    assert_no_token_sent(page, expired)
    assert [url for url in page.requests if console.token in url.split("#", 1)[0]] == []


async def test_the_chat_product_s_colours_logo_and_title(
    page: Watched, console: Console, workspaces: tuple[Workspace, Workspace]
) -> None:
    from playwright.async_api import expect

    mine, _ = workspaces
    token = (await portal_session(console, mine))["token"]
    # Another origin than the page's (localhost, not 127.0.0.1): allowed by the policy
    # the edge derives from this very parameter.
    logo = console.origin.replace("127.0.0.1", "localhost") + "/console/favicon.svg"
    p = page.page
    await p.goto(
        portal_url(
            console,
            token,
            accent="4f46e5",
            header="0f766e",
            header_text="fefce8",
            background="not-a-colour",
            logo=logo,
            title="Acme Chat",
        )
    )
    await expect(p.get_by_role("link", name=f"{mine.marker} repos")).to_be_visible(
        timeout=EXPECT_MS
    )
    top = p.locator("header.top")
    assert await top.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(15, 118, 110)"
    assert await top.evaluate("el => getComputedStyle(el).color") == "rgb(254, 252, 232)"
    create = p.get_by_role("button", name="Create integration")
    assert await create.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(79, 70, 229)"
    # Not a colour: ignored, the stylesheet's own stays.
    body = await p.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    assert body == "rgb(246, 247, 249)"
    await expect(p.locator(".brand")).to_have_text("Acme Chat")
    image = p.locator(".brand img.logo")
    await expect(image).to_have_attribute("src", logo)

    async def loaded() -> bool:
        shown: bool = await image.evaluate("img => img.complete && img.naturalWidth > 0")
        return shown

    assert await wait_for(loaded), "the logo was not shown"
    assert (await p.title()).endswith("· Acme Chat")
    assert page.errors == [], page.errors  # the policy refused nothing (no inline style)


async def test_the_portal_opens_in_the_chat_product_s_frame_and_in_no_other(
    page: Watched,
    console: Console,
    workspaces: tuple[Workspace, Workspace],
    chat_site: ChatSite,
) -> None:
    from playwright.async_api import expect

    mine, other = workspaces
    token = (await portal_session(console, mine))["token"]
    p = page.page
    chat_site.src = portal_url(console, token, title="Acme Chat")
    await p.goto(f"{chat_site.origin}/settings")
    portal = p.frame_locator("#portal")
    await expect(portal.get_by_role("link", name=f"{mine.marker} repos")).to_be_visible(
        timeout=EXPECT_MS
    )
    await portal.get_by_role("link", name="Outgoing endpoints").click()
    await expect(portal.locator("main")).to_contain_text(f"{mine.marker} receiver")
    assert_none_of(other, await portal.locator("body").inner_text(), "the framed portal")

    # Not the chat product's origin, or the operator console: the browser refuses the frame.
    for parent, src in (
        (chat_site.other, portal_url(console, token)),
        (chat_site.origin, f"{console.origin}/#/integrations"),
    ):
        chat_site.src = src
        page.errors.clear()
        await p.goto(f"{parent}/settings")
        await expect(p.get_by_role("heading", name="Chat settings")).to_be_visible()

        async def refused() -> bool:
            # The frame holds the browser's error page, and the console says why.
            framed = [f.url for f in p.frames if f is not p.main_frame]
            said = [e for e in page.errors if "frame-ancestors" in e or "X-Frame-Options" in e]
            return framed == ["chrome-error://chromewebdata/"] and bool(said)

        assert await wait_for(refused), f"{src} was framed by {parent}: {page.errors}"
        assert await p.frame_locator("#portal").locator("#main").count() == 0, parent
    assert_no_token_sent(page, token)
