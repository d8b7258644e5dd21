"""The console screenshots of the README and docs/console.md (docs/images/console-*.png), at
1280x800.

Against a running stack with some data in it (`make sandbox`, then a few integrations, an
endpoint and events, as docs/walkthroughs.md makes them; a Stripe integration for the
setup steps' shot):

    HOOKHUB_ADMIN_TOKEN=$(cat .hookhub/admin_token) .venv/bin/python -m tests.console.readme_screenshots http://127.0.0.1:8080
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def main(origin: str) -> None:
    token = os.environ["HOOKHUB_ADMIN_TOKEN"]
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(origin + "/")
        page.get_by_label("Admin token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()
        for name in ("integrations", "deliveries"):
            page.goto(f"{origin}/#/{name}")
            page.locator("table").first.wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(IMAGES / f"console-{name}.png"))
        # The first Stripe integration listed: its page, setup steps and all.
        listing = page.request.get(
            f"{origin}/api/integrations",
            params={"provider": "stripe", "limit": 1},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        if listing["data"]:
            page.goto(f"{origin}/#/integrations/{listing['data'][0]['id']}")
            steps = page.locator("section", has=page.get_by_role("heading", name="Setting up"))
            steps.wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(IMAGES / "console-integration-setup.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
