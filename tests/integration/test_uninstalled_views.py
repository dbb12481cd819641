"""An uninstalled portal as operators see it and resume it: the API, the dashboard, the CLI and /metrics.

The portal is marked as a worker marks it (``Breaker.uninstalled`` on Redis, its refused refresh token
remembered in ``token:<portal>``); each view is the web app's, on the test's Redis.
"""

from __future__ import annotations

import pytest
import redis as redis_lib

from hublink.config.settings import Settings
from hublink.delivery.circuit import Breaker, CircuitSettings, RedisCircuitStore
from hublink.delivery.pauses import PauseStore
from hublink.store.keys import Keys
from tests.conftest import ADMIN_TOKEN
from tests.integration.test_admin import csrf, login
from web import create_app

pytestmark = pytest.mark.integration
PORTAL = "777"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def mark(redis: redis_lib.Redis) -> Breaker:
    """Portal 777 marked uninstalled, with a cached access token and the remembered refusal."""
    keys = Keys("hl:")
    breaker = Breaker(RedisCircuitStore(redis, keys, PauseStore(redis, keys)), CircuitSettings())
    redis.hset(keys.oauth_token(PORTAL), mapping={"access_token": "old", "expires_at": "9999999999", "refused": "x"})
    assert breaker.uninstalled(PORTAL, "the journal's app-lifecycle event APP_UNINSTALL")
    return breaker


class TestViews:
    """Where an operator sees an uninstalled portal."""

    def test_the_api_lists_it_with_its_hold(self, settings: Settings, redis_client: redis_lib.Redis) -> None:
        """``GET /api/pauses``: under ``uninstalled``, since when, why and when its work is dead-lettered (72 h on);
        its circuit pause in ``items``."""
        mark(redis_client)
        body = create_app(settings).test_client().get("/api/pauses", headers=ADMIN).get_json()
        [found] = body["uninstalled"]
        assert found["portal"] == PORTAL and "APP_UNINSTALL" in found["message"]
        assert found["hold_ends_ms"] - found["since_ms"] == 72 * 3_600_000
        assert [(p["scope"], p["name"], p["reason"]) for p in body["items"]] == [("circuit", PORTAL, "app_uninstalled")]

    def test_metrics_count_it(self, settings: Settings, redis_client: redis_lib.Redis) -> None:
        """``hublink_portals_uninstalled`` is 1, and 0 once it resumed."""
        breaker = mark(redis_client)
        client = create_app(settings).test_client()
        assert "hublink_portals_uninstalled 1.0" in client.get("/metrics").get_data(as_text=True)
        assert breaker.answered(PORTAL)
        assert "hublink_portals_uninstalled 0.0" in client.get("/metrics").get_data(as_text=True)

    def test_the_dashboard_shows_it_and_resumes_it(self, settings: Settings, redis_client: redis_lib.Redis) -> None:
        """The overview's Uninstalled table; its button (confirmed) resumes the portal and forgets its token."""
        mark(redis_client)
        client = create_app(settings).test_client()
        login(client)
        overview = client.get("/admin").get_data(as_text=True)
        assert 'id="uninstalled"' in overview and overview.count('class="uninstalled-row"') == 1
        assert "Installed again: resume" in overview
        form = {"csrf_token": csrf(client, "/admin"), "scope": "portal", "name": PORTAL, "confirmed": "yes"}
        assert client.post("/admin/pauses/resume", data=form).status_code == 302
        after = client.get("/admin").get_data(as_text=True)
        assert 'id="uninstalled"' not in after and "no longer marked uninstalled" in after
        assert redis_client.hgetall(f"hl:token:{PORTAL}") == {}
        assert not redis_client.hexists("hl:paused", f"circuit:{PORTAL}")


class TestTheCommandLine:
    """``hublink resume`` and what it says."""

    def test_a_lane_resume_says_why_it_still_waits(self, settings: Settings, redis_client: redis_lib.Redis) -> None:
        """Resuming one of its lanes changes nothing and says the app is uninstalled and what to do."""
        mark(redis_client)
        result = create_app(settings).test_cli_runner().invoke(args=["resume", "--lane", f"{PORTAL}|deals|companies"])
        assert result.exit_code == 0, result.output
        assert f"the app is uninstalled from portal {PORTAL}" in result.output
        assert "hublink resume --portal <portal>" in result.output
        assert redis_client.hexists("hl:paused", f"circuit:{PORTAL}")

    def test_a_portal_resume_clears_it(self, settings: Settings, redis_client: redis_lib.Redis) -> None:
        """``resume --portal 777``: no longer uninstalled, its token and the refusal forgotten; again: nothing."""
        breaker = mark(redis_client)
        runner = create_app(settings).test_cli_runner()
        result = runner.invoke(args=["resume", "--portal", PORTAL])
        assert result.exit_code == 0 and f"portal {PORTAL} is no longer marked uninstalled" in result.output
        assert breaker.uninstall(PORTAL) is None
        assert redis_client.hgetall(f"hl:token:{PORTAL}") == {}
        again = runner.invoke(args=["resume", "--portal", PORTAL])
        assert "no longer marked uninstalled" not in again.output
