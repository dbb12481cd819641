"""Pause and resume on real processes: intake goes on, paused work waits unclaimed, resuming drains it."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import redis as redis_lib
import requests

from hublink.config.settings import Settings
from tests.integration.conftest import Sim, Stack
from tests.integration.helpers import admin, assoc, post_associations, wait_settled, waiting
from tests.integration.test_admin import csrf, login
from tests.integration.test_operations import scrape, total
from tests.support.processes import wait_for
from web import create_app

pytestmark = pytest.mark.integration
LANE = "_|deals|contacts"


def parked(redis: redis_lib.Redis, lane: str) -> bool:
    """True when the lane's drain left it parked (what a paused lane's drain does)."""
    return redis.get(f"hl:lanejob:{lane}") == b"park"


class TestPauseOnRealProcesses:
    """The API, the CLI and /metrics against gunicorn, a worker and the simulator."""

    def test_a_paused_portal_takes_work_and_sends_none_until_resumed(self, stack: Stack, sim: Sim) -> None:
        """Paused portal: 202s, 0 HubSpot calls, 0 attempts, the gauge shows it; the CLI's resume drains all."""
        url = stack.gunicorn()
        answer = admin("POST", url, "/api/portals/_/pause", json={"reason": "token rotation"})
        assert answer.status_code == 200, answer.text
        assert answer.json() | {"since_ms": 0} == {
            "scope": "portal",
            "name": "_",
            "paused": True,
            "changed": True,
            "since_ms": 0,
            "reason": "token rotation",
        }
        stack.worker()
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        ids = post_associations(url, [assoc(i) for i in range(1, 6)])
        wait_for(lambda: len(waiting(redis, f"{LANE}")) == 5 and parked(redis, LANE), timeout=20, what="a parked lane")
        assert sim.associations() == []
        assert all(redis.hget(f"hl:a:{i}", "attempts") in (None, b"0") for i in ids)
        samples = scrape(url)
        assert samples[("hublink_paused", (("name", "_"), ("scope", "portal")))] == 1
        listed = admin("GET", url, "/api/pauses").json()["items"]
        assert [(p["scope"], p["name"]) for p in listed] == [("portal", "_")]

        runner = create_app(stack.settings).test_cli_runner()
        result = runner.invoke(args=["resume", "--portal", "_"])
        assert result.exit_code == 0 and "resumed portal _" in result.output
        wait_settled(redis, timeout=20)
        assert len(sim.associations()) == 5
        assert total(scrape(url), "hublink_paused") == 0
        assert total(scrape(url), "hublink_retries_total") == 0

    def test_a_paused_lane_holds_only_that_lane(self, stack: Stack, sim: Sim) -> None:
        """Pausing deals→contacts leaves deals→companies draining; resuming through the API sends the rest."""
        url = stack.gunicorn()
        path = f"/api/lanes/{quote(LANE, safe='')}"
        assert admin("POST", url, f"{path}/pause").json()["changed"] is True
        assert admin("POST", url, f"{path}/pause").json()["changed"] is False
        stack.worker()
        redis = redis_lib.Redis.from_url(stack.settings.redis_url)
        post_associations(url, [assoc(1), assoc(2, from_type="deals", to_type="companies")])
        wait_for(lambda: len(sim.associations()) == 1 and parked(redis, LANE), timeout=20, what="the other lane")
        assert admin("POST", url, f"{path}/resume").json() | {"since_ms": None} == {
            "scope": "lane",
            "name": LANE,
            "paused": False,
            "changed": True,
            "since_ms": None,
            "reason": None,
        }
        wait_settled(redis, timeout=20)
        assert len(sim.associations()) == 2

    def test_bad_targets_and_wrong_tokens_are_refused(self, stack: Stack) -> None:
        """A malformed portal is a 400 naming it; no token is a 401; the CLI wants exactly one target."""
        url = stack.gunicorn()
        bad = admin("POST", url, "/api/portals/12a/pause")
        assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("portal:")
        assert requests.post(f"{url}/api/portals/1/pause", timeout=5).status_code == 401
        result = create_app(stack.settings).test_cli_runner().invoke(args=["pause"])
        assert result.exit_code != 0 and "exactly one of --portal or --lane" in result.output


class TestPauseButtons:
    """The dashboard's pause and resume pass through a confirmation page, with the session's CSRF token."""

    def test_pause_confirm_then_resume_from_the_overview(self, settings: Settings) -> None:
        """Pause asks first, the confirmed POST pauses, the overview lists it, its Resume button resumes."""
        app = create_app(settings)
        client = app.test_client()
        token = login(client)
        form = {"csrf_token": token, "scope": "portal", "name": "42", "reason": "checking"}
        page = client.post("/admin/pauses/pause", data=form).get_data(as_text=True)
        assert "Confirm: pause portal <code>42</code>?" in page
        assert client.get("/admin").get_data(as_text=True).count('class="paused-row"') == 0
        assert client.post("/admin/pauses/pause", data=form | {"confirmed": "yes"}).status_code == 302
        overview = client.get("/admin").get_data(as_text=True)
        assert overview.count('class="paused-row"') == 1 and "checking" in overview
        resume = {"csrf_token": csrf(client, "/admin"), "scope": "portal", "name": "42", "confirmed": "yes"}
        client.post("/admin/pauses/resume", data=resume)
        assert client.get("/admin").get_data(as_text=True).count('class="paused-row"') == 0

    def test_without_the_csrf_token_nothing_is_paused(self, settings: Settings) -> None:
        """A confirmed POST without the token is a 400 and pauses nothing."""
        client = create_app(settings).test_client()
        login(client)
        answer = client.post("/admin/pauses/pause", data={"scope": "portal", "name": "42", "confirmed": "yes"})
        assert answer.status_code == 400
        assert "Nothing is paused." in client.get("/admin").get_data(as_text=True)
