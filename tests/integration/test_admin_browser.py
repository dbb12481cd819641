"""The dashboard in headless Chromium, end to end: a real failed job, seen, replayed, and linked in HubSpot.

Screenshots of each step are kept in tests/artifacts/admin/.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import redis as redis_lib

from tests.conftest import ADMIN_TOKEN
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import assoc, post_associations, wait_settled
from tests.support.processes import wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed"),
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "admin"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_an_operator_sees_a_failure_replays_it_and_watches_it_succeed(stack: Stack, sim: Sim) -> None:
    """Log in, find the dead letter a real 403 made, replay it, and see it linked in the simulator."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sim.faults(script=[{"status": 403, "missing_scopes": ["crm.objects.deals.write"]}])
    stack.worker()
    url = stack.gunicorn(HUBLINK_SECRET_KEY="browser-test-secret")
    [letter_id] = post_associations(url, [assoc(4242, 2424)])
    redis = redis_lib.Redis.from_url(stack.settings.redis_url)
    wait_settled(redis, timeout=30)
    assert redis.zscore("hl:dlq", letter_id) is not None

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{url}/admin")
        page.fill("input[name=token]", ADMIN_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#dead-count")
        assert page.inner_text("#dead-count") == "1"
        page.screenshot(path=str(ARTIFACTS / "1-overview.png"), full_page=True)

        page.click("text=Dead letters")
        page.click("text=deals/4242")
        assert "crm.objects.deals.write" in page.content()
        assert page.inner_text("#reason").startswith("permanent")
        page.screenshot(path=str(ARTIFACTS / "2-dead-letter.png"), full_page=True)

        page.click("#replay")
        page.wait_for_selector("#confirm")
        page.screenshot(path=str(ARTIFACTS / "3-confirm.png"), full_page=True)
        page.click("#confirm")
        page.wait_for_selector(".flash")
        assert f"Replayed {letter_id}" in page.inner_text(".flash")

        wait_for(lambda: ("deals", "4242", "contacts", "2424") in sim.pairs(), timeout=20, what="the replay")
        page.goto(f"{url}/admin/dead-letters")
        assert "No dead letters." in page.content()
        page.goto(f"{url}/admin")
        assert page.inner_text("#dead-count") == "0"
        page.screenshot(path=str(ARTIFACTS / "4-after-replay.png"), full_page=True)
        browser.close()
