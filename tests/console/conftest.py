"""The stack as `make run` starts it, once for the module, and one headless Chromium for it.

Playwright drives the system's Chromium (`/usr/bin/chromium`, installed with `apt-get
install -y chromium`; `playwright install` is not used). Without it the browser tests are
skipped, saying how to install it. The async API, so that the fakes served on the test's
event loop (the webhook receiver) answer while the browser waits.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.kernel.embedded import free_port
from shared.kernel.http.tls import tls
from tests.e2e.stack import Stack, http_base, start_stack, wait_ready
from tests.support import serve
from tests.webhook_sink import WebhookSink

CHROMIUM = Path(os.environ.get("HOOKHUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Screenshots of the browser tests that failed (of every one with
# HOOKHUB_SCREENSHOTS=all), kept after the run (git-ignored). A full page's is a tenth of
# what Chromium spends on a test.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


@dataclass
class Console:
    origin: str
    token: str
    api: httpx.AsyncClient  # the management API with the admin token, for setting up


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the console's modules that need no settings of their own (each start
    costs about 10 s), stopped once they are done; a module that does overrides this
    fixture (test_portal.py)."""
    yield from running_stack(tmp_path_factory)


def need_chromium() -> None:
    """The browser tests skip, saying how to install it, where the system has no Chromium."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} not found: install Chromium (apt-get install -y chromium) to run the browser tests"
        )


def running_stack(
    tmp_path_factory: pytest.TempPathFactory, settings: dict[str, str] | None = None
) -> Iterator[Stack]:
    """The stack for a module's browser tests, with HOOKHUB_ `settings` of its own."""
    need_chromium()
    ports = {"http": http_base(), "kafka": free_port(), "mongo": free_port()}
    started = start_stack(tmp_path_factory.mktemp("console") / ".hookhub", ports, settings=settings)
    try:
        wait_ready(started)
        yield started
    finally:
        if started.process.poll() is None:
            os.killpg(started.process.pid, signal.SIGINT)
            try:
                started.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(started.process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
async def console(console_stack: Stack) -> AsyncIterator[Console]:
    token = (console_stack.data_dir / "admin_token").read_text().strip()
    async with httpx.AsyncClient(
        verify=tls(),
        base_url=console_stack.origin,
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    ) as api:
        yield Console(console_stack.origin, token, api)


@pytest.fixture(scope="module")
async def browser(console_stack: Stack) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Watched:
    """A page, with what it would have shown had anything run that should not."""

    page: Any
    dialogs: list[str]
    errors: list[str]
    requests: list[str]


@pytest.fixture
async def page(
    browser: Any, console: Console, request: pytest.FixtureRequest
) -> AsyncIterator[Watched]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console.origin)
    opened = await context.new_page()
    watched = Watched(opened, [], [], [])

    async def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.accept()

    opened.on("dialog", on_dialog)
    opened.on("pageerror", lambda exc: watched.errors.append(str(exc)))
    opened.on(
        "console",
        lambda message: watched.errors.append(message.text) if message.type == "error" else None,
    )
    opened.on("request", lambda req: watched.requests.append(req.url))
    try:
        yield watched
    finally:
        if (
            not request.node.stash.get(_PASSED, False)
            or os.environ.get("HOOKHUB_SCREENSHOTS") == "all"
        ):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
            await opened.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        await context.close()


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[tuple[WebhookSink, str]]:
    fake = WebhookSink()
    async with serve(fake.app(), probe="/healthz") as running:
        yield fake, running.base_url
