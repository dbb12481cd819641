"""The simulator's state without sockets: rolling windows, fault scripts, invalid ids and OAuth expiry."""

from __future__ import annotations

from hubspot_sim.state import SimState


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """Now."""
        return self.now


class TestRateWindow:
    """The rolling window per token."""

    def test_limit_then_recover_after_the_window(self) -> None:
        """Three of 3/10s pass, the fourth is refused, and the window rolls on."""
        clock = Clock()
        state = SimState(rate_limit="3/10s", clock=clock)
        assert [state.take("t")[0] for _ in range(4)] == [True, True, True, False]
        clock.now += 10.01
        allowed, headers = state.take("t")
        assert allowed
        assert headers["X-HubSpot-RateLimit-Remaining"] == "2"
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"

    def test_tokens_have_separate_windows(self) -> None:
        """One token's use does not spend another's."""
        state = SimState(rate_limit="1/10s", clock=Clock())
        assert state.take("a")[0]
        assert state.take("b")[0]
        assert not state.take("a")[0]


class TestFaults:
    """Scripted answers come first, in order."""

    def test_script_order(self) -> None:
        """Scripted answers are handed out in order, then normal processing resumes."""
        state = SimState()
        state.set_faults({"script": [{"status": 429}, {"status": 503}]})
        assert [state.decide("x").answer for _ in range(3)] == [{"status": 429}, {"status": 503}, None]

    def test_error_rate_one_always_fails(self) -> None:
        """With error_rate 1.0 every request gets the error status."""
        state = SimState()
        state.set_faults({"error_rate": 1.0, "error_status": 502})
        assert state.decide("x").answer == {"status": 502}
        state.clear_faults()
        assert state.decide("x").answer is None


class TestInvalidIdsAndOAuth:
    """Ids that turn valid, and tokens that expire."""

    def test_invalid_id_becomes_valid_after_its_mentions(self) -> None:
        """An id invalid for one request is valid on the next."""
        state = SimState()
        state.mark_invalid(["9"], 404, ttl_requests=1)
        assert state.invalid_status(("1", "9")) == (404, ["9"])
        assert state.invalid_status(("1", "9")) is None

    def test_oauth_tokens_expire(self) -> None:
        """An issued access token authorises until its lifetime ends; a wrong refresh token gets nothing."""
        clock = Clock()
        state = SimState(tokens=["static"], clock=clock)
        state.register_oauth_app("cid", "csecret", "rt", "62515")
        assert state.refresh("cid", "wrong", "rt") is None
        issued = state.refresh("cid", "csecret", "rt")
        assert issued is not None
        assert issued["expires_in"] == 1800
        assert state.authorised(issued["access_token"])
        clock.now += 1801
        assert not state.authorised(issued["access_token"])
