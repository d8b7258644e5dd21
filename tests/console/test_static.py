"""The console's files as the edge serves them: security headers, no markup from data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from services.console import CONTENT_SECURITY_POLICY, STATIC
from services.edge import create_edge_app
from shared.domain.account_links import MAPPING_PROVIDERS
from shared.kernel.settings import Settings

SCRIPTS = sorted(STATIC.rglob("*.js"))


async def test_the_page_and_its_modules_carry_the_security_headers() -> None:
    transport = httpx.ASGITransport(app=create_edge_app({}))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        for path in (
            "/",
            "/console/app.js",
            "/console/console.css",
            "/console/pages/deliveries.js",
        ):
            answer = await client.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
        assert (await client.get("/")).headers["content-type"].startswith("text/html")
        script = await client.get("/console/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        # Neither inline scripts nor inline styles: the policy would refuse them.
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        assert (await client.get("/console/nothing.js")).status_code == 404
        # A dot segment, even percent-encoded, is refused by the edge before any routing.
        assert (await client.get("/console/%2e%2e/__init__.py")).status_code == 400
        # The API is still the services': with no upstream it is the edge's 404.
        missing = await client.get("/api/integrations")
        assert missing.json()["error"]["code"] == "not_found"


def directives(policy: str) -> dict[str, str]:
    return {
        name: value.strip()
        for name, _, value in (d.strip().partition(" ") for d in policy.split(";"))
    }


async def test_the_portal_is_the_console_page_and_not_framable_by_default() -> None:
    transport = httpx.ASGITransport(app=create_edge_app({}))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        portal = await client.get("/portal")
        console = await client.get("/")
        head = await client.head("/portal")
    assert portal.status_code == 200
    assert portal.headers["content-type"].startswith("text/html")
    assert portal.content == console.content == (STATIC / "index.html").read_bytes()
    assert head.status_code == 200
    for answer in (portal, head):
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-content-type-options"] == "nosniff"


async def test_the_portal_is_framable_by_the_configured_origins_alone() -> None:
    ancestors = Settings(
        portal_frame_ancestors="https://chat.example.com  https://Settings.Example.org:8443"
    ).portal_frame_ancestors
    app = create_edge_app({}, portal_frame_ancestors=ancestors)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        portal = await client.get("/portal")
        console = await client.get("/")
        module = await client.get("/console/app.js")
    policy = directives(portal.headers["content-security-policy"])
    assert policy["frame-ancestors"] == "https://chat.example.com https://settings.example.org:8443"
    # X-Frame-Options names one origin or none: with a list, only the CSP says who may frame.
    assert "x-frame-options" not in portal.headers
    # Everything else as the console's.
    assert policy == directives(CONTENT_SECURITY_POLICY) | {
        "frame-ancestors": policy["frame-ancestors"]
    }
    # The operator console is never framable, whatever the setting.
    for answer in (console, module):
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-frame-options"] == "DENY"


async def test_the_portal_shows_images_from_its_logo_s_origin_only() -> None:
    transport = httpx.ASGITransport(app=create_edge_app({}))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:

        async def images(logo: str | None) -> str:
            answer = await client.get("/portal", params={"accent": "4f46e5", "logo": logo})
            return directives(answer.headers["content-security-policy"])["img-src"]

        assert await images("https://cdn.example.com/brand/logo.svg?v=2") == (
            "'self' data: https://cdn.example.com"
        )
        assert await images("https://cdn.example.com:8443/logo.png") == (
            "'self' data: https://cdn.example.com:8443"
        )
        for refused in (
            None,
            "http://cdn.example.com/logo.png",
            "https://cdn.example.com;script-src https://evil.example/x.png",
            "https://cdn.example.com/x.png' https://evil.example",
            "javascript:alert(1)",
            "https://user:pass@cdn.example.com/logo.png",
        ):
            assert await images(refused) == "'self' data:", refused


def test_the_page_has_no_inline_script_or_style() -> None:
    index = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)", index) == []
    assert "<style" not in index
    assert " style=" not in index
    assert re.search(r"\son[a-z]+=", index) is None


def test_no_script_builds_markup_from_strings() -> None:
    assert SCRIPTS, "the console's modules"
    for script in SCRIPTS:
        source = script.read_text()
        for sink in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert sink not in source, f"{script.relative_to(STATIC)} uses {sink}"


def test_the_files_ship_in_the_package() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"services.console" = ["static/**/*"]' in pyproject


def test_the_event_types_page_is_served_and_in_the_navigation() -> None:
    app = (STATIC / "app.js").read_text()
    assert 'import * as eventTypes from "./pages/eventtypes.js";' in app
    assert '["event-types", "Event types", eventTypes]' in app
    # Not one of the pages a portal leaves out: a workspace sees its view of the catalog.
    assert re.search(r'\["overview", "providers"\]\.includes', app)
    endpoints = (STATIC / "pages" / "endpoints.js").read_text()
    assert 'import { catalogPicker } from "./eventtypes.js";' in endpoints


async def test_the_event_types_module_is_served_with_the_security_headers() -> None:
    transport = httpx.ASGITransport(app=create_edge_app({}))
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        answer = await client.get("/console/pages/eventtypes.js")
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert b"export async function render" in answer.content


def test_the_account_links_page_offers_the_providers_the_api_links_by_mapping() -> None:
    app = (STATIC / "app.js").read_text()
    assert 'import * as accountLinks from "./pages/account-links.js";' in app
    assert '["account-links", "Account links", accountLinks]' in app
    page = (STATIC / "pages" / "account-links.js").read_text()
    offered = re.search(r"export const MAPPING_PROVIDERS = (\[[^\]]*\]);", page)
    assert offered is not None, "the page's constant of the providers linked by a mapping"
    assert json.loads(offered.group(1)) == list(MAPPING_PROVIDERS)
