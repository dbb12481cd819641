"""The simulator's daily allowance without sockets: headers, the DAILY 429, and the reset at local midnight.

Time is a clock the tests move past midnight at once; nothing waits.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from hubspot_sim.api import HubSpotApi
from hubspot_sim.daily_limits import DailyLimit
from hubspot_sim.messages import Request
from hubspot_sim.state import SimState

TOKEN = "pat-na1-unit-test-token-0001"
PUT_PATH = "/crm/objects/2026-03/deals/1/associations/default/contacts/2"


class Clock:
    """A clock the test sets by hand, to a wall-clock time in some zone."""

    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        """The current time."""
        return self.now


def at(text: str, zone: str) -> datetime:
    """``YYYY-MM-DD HH:MM`` in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


class TestDailyLimitValue:
    """The limit itself: its headers, its day and its reset."""

    def test_headers(self) -> None:
        """HubSpot's two daily headers, never below 0."""
        assert DailyLimit(100).headers(-3) == {
            "X-HubSpot-RateLimit-Daily": "100",
            "X-HubSpot-RateLimit-Daily-Remaining": "0",
        }

    def test_resets_at_the_next_local_midnight(self) -> None:
        """In Europe/Paris, 23:30 local resets 30 minutes later."""
        limit = DailyLimit(10, "Europe/Paris")
        now = at("2026-06-01 23:30", "Europe/Paris").timestamp()
        assert limit.resets_at(now) - now == 1800

    def test_a_day_of_daylight_saving_change_is_23_hours(self) -> None:
        """Midnight follows the wall clock: the spring-forward day in New York lasts 23 hours."""
        limit = DailyLimit(10, "America/New_York")
        midnight = at("2026-03-08 00:00", "America/New_York").timestamp()
        assert limit.resets_at(midnight) - midnight == 23 * 3600

    @pytest.mark.parametrize(("count", "zone", "named"), [(0, "UTC", "daily limit"), (5, "Nowhere/City", "timezone")])
    def test_bad_values_are_refused(self, count: int, zone: str, named: str) -> None:
        """A limit below 1 or an unknown IANA zone raises ValueError naming it."""
        with pytest.raises(ValueError, match=named):
            DailyLimit(count, zone)


class TestDailyAllowance:
    """Requests through the API count against the account's allowance."""

    def test_headers_count_down_then_daily_429_then_reset_at_midnight(self) -> None:
        """Three of three pass with headers 2, 1, 0; the fourth is HubSpot's DAILY 429; after midnight, 2."""
        clock = Clock(at("2026-06-01 23:00", "Asia/Tokyo"))
        api = HubSpotApi(SimState(daily_limit=3, timezone="Asia/Tokyo", clock=clock))
        answers = [api.handle(Request("PUT", PUT_PATH, authorization=f"Bearer {TOKEN}")) for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-HubSpot-RateLimit-Daily-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert {a.headers["X-HubSpot-RateLimit-Daily"] for a in answers} == {"3"}
        body = answers[-1].json()
        assert (body["policyName"], body["errorType"], body["message"]) == (
            "DAILY",
            "RATE_LIMIT",
            "You have reached your daily limit.",
        )
        clock.now = at("2026-06-02 00:00", "Asia/Tokyo").timestamp()
        after = api.handle(Request("PUT", PUT_PATH, authorization=f"Bearer {TOKEN}"))
        assert (after.status, after.headers["X-HubSpot-RateLimit-Daily-Remaining"]) == (200, "2")

    def test_static_tokens_share_one_account(self) -> None:
        """Two static tokens use the same daily allowance (HubSpot's is per account)."""
        state = SimState(daily_limit=1)
        assert state.admit("token:a").accepted
        refused = state.admit("token:b")
        assert (refused.accepted, refused.policy) == (False, "DAILY")

    def test_oauth_portals_have_their_own(self) -> None:
        """Each OAuth portal is its own account."""
        state = SimState(daily_limit=1)
        assert state.admit("portal:1").accepted
        assert state.admit("portal:2").accepted

    def test_a_burst_refusal_does_not_count_against_the_day(self) -> None:
        """A request refused by the rolling window leaves the daily allowance alone."""
        state = SimState(rate_limit="1/10s", daily_limit=5)
        assert state.admit("token:a").accepted
        refused = state.admit("token:a")
        assert (refused.policy, refused.headers["X-HubSpot-RateLimit-Daily-Remaining"]) == ("TEN_SECONDLY_ROLLING", "4")

    def test_search_answers_carry_only_the_daily_headers(self) -> None:
        """Search counts against the day, and its answers carry the daily headers but no rolling ones."""
        state = SimState(rate_limit="10/10s", search_rate_limit="5/1s", daily_limit=5)
        admitted = state.admit("token:a", search=True)
        assert admitted.headers == {"X-HubSpot-RateLimit-Daily": "5", "X-HubSpot-RateLimit-Daily-Remaining": "4"}

    def test_no_daily_limit_means_no_daily_headers(self) -> None:
        """Without a daily limit, answers carry no daily headers."""
        assert SimState().admit("token:a").headers == {}

    def test_the_limit_can_be_set_through_config(self) -> None:
        """PUT /_sim/config's daily_limit and timezone take effect, with a fresh count."""
        state = SimState()
        state.configure({"daily_limit": 2, "timezone": "Europe/Paris"})
        assert state.admit("token:a").headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
        assert state.config_json()["timezone"] == "Europe/Paris"
        with pytest.raises(ValueError, match="timezone"):
            state.configure({"timezone": "Atlantis"})
