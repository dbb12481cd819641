"""The dashboard in headless Chromium, end to end: a real failed job, seen, replayed, and linked in HubSpot.

Gunicorn, a worker and the simulator run as processes. Screenshots of each step are kept in
tests/artifacts/admin/ (gitignored), and one of the page as it was when a step failed.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis as redis_lib
import requests

from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, dead_letter_ids, post_associations
from tests.support.processes import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (`make browser` installs it)"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="the playwright package is not installed"
    ),
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "admin"
#: Headless in a container as root: no sandbox, no GPU, and nothing that phones home or updates itself.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Every Playwright wait (navigation, selector, click) gives up after this long.
STEP_TIMEOUT_MS = 15_000


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A page in a fresh headless Chromium; on the way out a screenshot of where it stood is kept."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            yield page
            page.screenshot(path=str(ARTIFACTS / "last.png"), full_page=True)
        finally:
            browser.close()


def shot(page: Page, name: str) -> None:
    """Keep a full-page screenshot of this step."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_an_operator_sees_a_failure_replays_it_and_watches_it_succeed(
    stack: Stack, sim: Sim, browser_page: Page
) -> None:
    """Log in, find the dead letter a real 409 made, replay it, and see it linked in the simulator."""
    page = browser_page
    # A limit makes the simulator send X-HubSpot-RateLimit-* headers, which the headroom chart shows.
    requests.put(f"{sim.url}/_sim/config", json={"rate_limit": "100/10s"}, timeout=5).raise_for_status()
    # A 409 is the association's own failure; a 403 would open the portal's circuit instead of dead-lettering.
    sim.faults(script=[{"status": 409}])
    stack.worker()
    url = stack.gunicorn(HUBLINK_SECRET_KEY="browser-test-secret")
    [letter_id] = post_associations(url, [assoc(4242, 2424)])
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    wait_for(lambda: letter_id in dead_letter_ids(redis), timeout=30, interval=0.1, what="the 409 to dead-letter")

    page.goto(f"{url}/admin")
    assert page.url.startswith(f"{url}/admin/login")
    shot(page, "1-login")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("#login")
    page.wait_for_selector("#dead-count")
    assert page.inner_text("#dead-count") == "1"
    shot(page, "2-overview")

    page.click("header >> text=Dead letters")
    page.wait_for_url(f"{url}/admin/dead-letters")
    row = page.locator(f"#letter-{letter_id}")
    assert row.locator(".status").inner_text() == "409"
    assert row.locator(".category").inner_text() == "CONFLICT"
    shot(page, "3-dead-letters")

    row.locator(f"text={letter_id}").click()
    page.wait_for_url(f"{url}/admin/dead-letters/{letter_id}")
    assert page.inner_text("#letter-id") == letter_id
    assert page.inner_text("#status") == "409"
    shot(page, "4-dead-letter")

    page.click("#replay")
    assert page.inner_text("#question") == "Confirm: replay 1 dead letter?"
    shot(page, "5-confirm")
    page.click("#confirm")
    page.wait_for_url(f"{url}/admin/dead-letters")
    assert f"Replayed {letter_id}." in page.inner_text(".flash")

    wait_for(lambda: ("deals", "4242", "contacts", "2424") in sim.pairs(), timeout=30, interval=0.1, what="the replay")
    page.reload()
    assert page.locator(f"#letter-{letter_id}").count() == 0
    assert "No dead letters." in page.inner_text("table.letters")
    shot(page, "6-after-replay")
    page.click("header >> text=Overview")
    page.wait_for_url(f"{url}/admin")
    assert page.inner_text("#dead-count") == "0"
    assert int(page.inner_text("#linked")) >= 1
    assert "left per 10 s" in page.inner_text(".headroom")
    shot(page, "7-overview-after")
