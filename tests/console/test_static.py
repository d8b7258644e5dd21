"""The console's files as the edge serves them: security headers, no markup from data."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from services.console import CONTENT_SECURITY_POLICY, STATIC
from services.edge import create_edge_app

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
