"""A throttled OAuth token endpoint (docs/reference/hubspot.md §9.6): the portal waits, no attempt is spent.

The credentials on an in-memory stand-in for the few Redis calls they make; the drain on the in-memory
twins with a fake clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from hublink.config.portals import OAuthApp, PortalEntry
from hublink.delivery.circuit import Breaker, CircuitSettings, MemoryCircuitStore
from hublink.delivery.credentials import (
    REFRESH_IN_PROGRESS_WAIT_S,
    TOKEN_ENDPOINT_DEFAULT_WAIT_S,
    TOKEN_ENDPOINT_MAX_WAIT_S,
    Credential,
    PortalCredentials,
    token_wait_s,
)
from hublink.delivery.hubspot import error_for_status
from hublink.delivery.pauses import MemoryPauses
from hublink.domain.errors import (
    DeliveryError,
    HubSpotErrorDetail,
    TokenEndpointError,
    TokenRefreshError,
)
from hublink.lanes import MemoryLanes
from hublink.store.keys import Keys
from tests.unit.test_circuit import parts
from tests.unit.test_drain import LANE, START, Clock, FakeHubSpot, association

PORTAL = "62515"


def token_429(retry_after: str = "20") -> DeliveryError:
    """The token endpoint's 429 as the client raises it (the body reported in the field)."""
    body = {"status": "error", "message": "You have reached your rate limit.", "errorType": "RATE_LIMIT"}
    return error_for_status(429, body, {"Retry-After": retry_after}, START)


class MiniRedis:
    """The Redis calls PortalCredentials makes (hashes, SET NX, DELETE, a pipeline), in memory."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.strings: dict[str, str] = {}

    def hgetall(self, key: str) -> dict[str, str]:
        """The hash's fields."""
        return dict(self.hashes.get(key, {}))

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        """Set fields."""
        self.hashes.setdefault(key, {}).update({k: str(v) for k, v in mapping.items()})

    def hdel(self, key: str, *fields: str) -> None:
        """Drop fields."""
        for name in fields:
            self.hashes.get(key, {}).pop(name, None)

    def set(self, key: str, value: str, *, nx: bool = False, px: int = 0) -> bool:
        """SET with NX (no expiry kept: the tests delete what they take)."""
        if nx and key in self.strings:
            return False
        self.strings[key] = value
        return True

    def delete(self, *keys: str) -> None:
        """DEL."""
        for key in keys:
            self.strings.pop(key, None)
            self.hashes.pop(key, None)

    def expire(self, key: str, seconds: int) -> None:
        """No expiry is kept."""

    def pipeline(self, transaction: bool = True) -> MiniRedis:
        """Commands apply at once; ``execute`` does nothing."""
        return self

    def execute(self) -> None:
        """Nothing left to apply."""


class TokenEndpoint:
    """The token endpoint: raises ``error`` while it is set, else issues a token; counts its calls."""

    def __init__(self, error: DeliveryError | None = None) -> None:
        self.error = error
        self.calls = 0

    def refresh_token(
        self, client_id: str, client_secret: str, refresh_token: str, *, base_url: str | None = None
    ) -> dict[str, Any]:
        """Refuse, or answer HubSpot's token body."""
        self.calls += 1
        if self.error is not None:
            raise self.error
        return {"access_token": f"access-{self.calls}", "expires_in": 1800}


def credentials(endpoint: TokenEndpoint, clock: Clock, redis: MiniRedis | None = None) -> PortalCredentials:
    """An OAuth portal's credentials on the stand-ins."""
    entry = PortalEntry(PORTAL, oauth=OAuthApp("client-1", "secret-1", "refresh-1"))
    return PortalCredentials({PORTAL: entry}, redis or MiniRedis(), Keys("hl:"), endpoint, clock=clock)  # type: ignore[arg-type]


class TestCredentials:
    """PortalCredentials turns the endpoint's 429 into a wait and asks nothing more until it is over."""

    def test_a_429_raises_a_token_endpoint_error_with_its_retry_after(self) -> None:
        """The 429's Retry-After rides on the error; it is a TokenRefreshError (work handed back)."""
        clock = Clock()
        endpoint = TokenEndpoint(token_429("20"))
        with pytest.raises(TokenEndpointError) as raised:
            credentials(endpoint, clock).for_portal(PORTAL)
        assert raised.value.retry_after_s == 20.0 and isinstance(raised.value, TokenRefreshError)

    def test_the_endpoint_is_not_asked_again_before_its_retry_after(self) -> None:
        """Inside the 20 s nothing is sent (the wait left rides on the error); after it, a token comes."""
        clock = Clock()
        endpoint = TokenEndpoint(token_429("20"))
        portal = credentials(endpoint, clock)
        for _ in range(3):
            try:
                portal.for_portal(PORTAL)
            except TokenEndpointError as exc:
                left = exc.retry_after_s
            clock.now += 5
        assert endpoint.calls == 1 and left == 10.0
        endpoint.error = None
        clock.now += 5
        assert portal.for_portal(PORTAL).token == "access-2" and endpoint.calls == 2

    def test_a_token_still_valid_serves_while_the_endpoint_is_throttled(self) -> None:
        """Inside the refresh margin, a 429 on the early refresh leaves the old token in use."""
        clock = Clock()
        redis = MiniRedis()
        redis.hset(Keys("hl:").oauth_token(PORTAL), {"access_token": "old", "expires_at": clock.now + 120})
        endpoint = TokenEndpoint(token_429("20"))
        portal = credentials(endpoint, clock, redis)
        assert portal.for_portal(PORTAL).token == "old" and endpoint.calls == 1

    def test_the_wait_is_capped_and_defaulted(self) -> None:
        """Retry-After capped at 60 s; none: 10 s; a refresh in progress elsewhere: 1 s."""
        detail = HubSpotErrorDetail(status=429)
        assert token_wait_s(TokenEndpointError(detail, 3600.0)) == TOKEN_ENDPOINT_MAX_WAIT_S == 60.0
        assert token_wait_s(TokenEndpointError(detail, None)) == TOKEN_ENDPOINT_DEFAULT_WAIT_S
        assert token_wait_s(TokenEndpointError(detail, 0.0)) == 1.0
        assert token_wait_s(TokenRefreshError(detail)) == REFRESH_IN_PROGRESS_WAIT_S


class ThrottledCredentials:
    """An OAuth portal whose token endpoint refuses with ``error`` until it is None."""

    def __init__(self, error: DeliveryError | None) -> None:
        self.error = error

    def for_portal(self, portal_id: str | None) -> Credential:
        """Raise the endpoint's refusal, or give a fresh OAuth credential."""
        if self.error is not None:
            raise self.error
        return Credential("oauth-token", "oauth-bucket", refreshable=True, refreshed=True)

    def invalidate(self, portal_id: str | None) -> None:
        """Nothing cached."""


class TestDrain:
    """On the twins: 500 pending, the token endpoint throttled for 20 s."""

    def test_no_attempt_is_spent_and_the_backlog_drains_after(self) -> None:
        """The claim goes back unspent, the lane parks 20 s, the circuit counts one; then all 500 link."""
        clock = Clock()
        hubspot = FakeHubSpot()
        throttled = ThrottledCredentials(TokenEndpointError(HubSpotErrorDetail(status=429), 20.0))
        lanes, store, drainer = parts(clock, hubspot, credentials=throttled)
        ids = [lanes.add(association(n)) for n in range(1, 501)]
        report = drainer.drain(LANE)
        assert (report.calls, report.dead, report.retried, report.deferred, report.ended) == (0, 0, 0, 100, "parked")
        assert all(lanes.records[i].attempts == 0 and not lanes.records[i].history for i in ids)
        assert lanes.due[ids[0]] == int(START * 1000) + 20_000
        assert store.count_error("_", 60_000) == 2  # this one, and the one the test just counted
        throttled.error = None
        clock.now += 20
        report = drainer.drain(LANE)
        assert report.linked == 500 and not lanes.records and not lanes.dead_letters

    def test_a_run_of_throttled_refreshes_opens_the_circuit_unspent(self) -> None:
        """Threshold 2: the second refusal in the window opens the circuit; still nothing spent, nothing dead."""
        clock = Clock()
        throttled = ThrottledCredentials(TokenEndpointError(HubSpotErrorDetail(status=503), None))
        lanes, store, drainer = parts(clock, FakeHubSpot(), credentials=throttled, errors=2)
        ids = [lanes.add(association(n)) for n in range(1, 4)]
        drainer.drain(LANE)
        clock.now += TOKEN_ENDPOINT_DEFAULT_WAIT_S
        report = drainer.drain(LANE)
        assert report.paused == "circuit:_" and store.events == [("opened", "server_errors")]
        assert all(lanes.records[i].attempts == 0 for i in ids) and not lanes.dead_letters

    def test_the_breaker_counts_token_endpoint_refusals(self) -> None:
        """Breaker.failed_credentials counts a token endpoint refusal toward a run (and a lock wait not)."""
        clock = Clock()
        store = MemoryCircuitStore(MemoryPauses(MemoryLanes(clock=clock), clock), clock)
        breaker = Breaker(store, CircuitSettings(errors=2, window_s=60.0, probe_s=30.0), clock=clock)
        busy = TokenRefreshError(HubSpotErrorDetail(message="refresh in progress"))
        assert breaker.failed_credentials("1", busy) is None and breaker.failed_credentials("1", busy) is None
        throttled = TokenEndpointError(HubSpotErrorDetail(status=429), 5.0)
        assert breaker.failed_credentials("1", throttled) is None
        trip = breaker.failed_credentials("1", throttled)
        assert trip is not None and trip.reason == "server_errors"
