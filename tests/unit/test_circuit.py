"""The circuit breaker per portal: the pure decision, then the drain on the in-memory twins."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from hublink.delivery.circuit import (
    Breaker,
    CircuitSettings,
    MemoryCircuitStore,
    counts_toward_run,
    run_trip,
    trip_for,
    trip_for_credentials,
)
from hublink.delivery.credentials import Credential, StaticCredentials
from hublink.delivery.drain import DrainSettings, LaneDrainer
from hublink.delivery.hubspot import CallResult, error_for_status
from hublink.delivery.pauses import MemoryPauses
from hublink.delivery.rate_limit import MemoryLimiter
from hublink.domain import retry_policy as rp
from hublink.domain.errors import (
    DeliveryError,
    HubSpotErrorDetail,
    HubSpotTimeoutError,
    NotFoundError,
    ServerError,
    TokenRefreshError,
    UnknownPortalError,
    ValidationRejectedError,
)
from hublink.lanes import MemoryLanes
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys
from tests.unit.test_drain import LANE, START, Clock, FakeHubSpot, FakeResolver, association

PROBE_S = 30.0


def status(code: int, body: object = None) -> DeliveryError:
    """The error the client raises for a whole call answered ``code``."""
    return error_for_status(code, body or {"category": "X", "correlationId": "corr-1"}, {}, START)


class RevocableHubSpot(FakeHubSpot):
    """A HubSpot whose answer to every call is a 401 while ``revoked`` is set."""

    revoked: bool = False

    def _answer(self, pairs: list[tuple[str, str]]) -> CallResult:
        """401 while revoked, else every pair linked."""
        if self.revoked:
            raise status(401, {"category": "INVALID_AUTHENTICATION", "correlationId": "corr-401"})
        return super()._answer(pairs)


class FailingCredentials:
    """An OAuth portal whose refresh HubSpot refuses (``error``) until ``error`` is None."""

    def __init__(self, error: DeliveryError | None) -> None:
        self.error = error

    def for_portal(self, portal_id: str | None) -> Credential:
        """Raise the refresh's error, or give a refreshed OAuth credential."""
        if self.error is not None:
            raise self.error
        return Credential("oauth-token", "oauth-bucket", refreshable=True, refreshed=True)

    def invalidate(self, portal_id: str | None) -> None:
        """Nothing cached."""


def parts(
    clock: Clock, hubspot: FakeHubSpot, *, credentials: object = None, errors: int = 20
) -> tuple[MemoryLanes, MemoryCircuitStore, LaneDrainer]:
    """Lanes, circuits and a drainer with a breaker, all in memory on the fake clock."""
    lanes = MemoryLanes(clock=clock)
    store = MemoryCircuitStore(MemoryPauses(lanes, clock), clock)
    breaker = Breaker(store, CircuitSettings(errors=errors, window_s=60.0, probe_s=PROBE_S), clock=clock)
    drainer = LaneDrainer(
        lanes=lanes,
        limiter=MemoryLimiter(clock=clock),
        client=hubspot,
        credentials=credentials or StaticCredentials("pat-test-token"),  # type: ignore[arg-type]
        resolver=FakeResolver(),
        policy=rp.RetryPolicy(max_attempts=3),
        settings=DrainSettings(batch_size=100, max_limiter_wait_ms=500, budget_s=3600.0),
        rng=random.Random(7),
        clock=clock,
        sleep=clock.sleep,
        metrics=CounterOps(Keys("hl:")),
        circuit=breaker,
    )
    return lanes, store, drainer


class TestTheDecision:
    """Which failures open a portal's circuit, pure."""

    def test_a_401_on_a_private_app_token_opens_it(self) -> None:
        """401 with a static token: token_rejected, naming HubSpot's category and correlation id."""
        trip = trip_for(
            status(401, {"category": "INVALID_AUTHENTICATION", "correlationId": "c-9"}),
            refreshable=False,
            refreshed=False,
        )
        assert trip is not None and trip.reason == "token_rejected"
        assert "INVALID_AUTHENTICATION" in trip.message and "c-9" in trip.message and "token" in trip.advice

    def test_a_401_on_an_oauth_token_opens_it_only_after_a_refresh(self) -> None:
        """An OAuth 401 is first answered by a refresh; a 401 on the refreshed token opens the circuit."""
        assert trip_for(status(401), refreshable=True, refreshed=False) is None
        trip = trip_for(status(401), refreshable=True, refreshed=True)
        assert trip is not None and trip.reason == "oauth_rejected"

    def test_a_403_for_missing_scopes_opens_it_naming_the_scopes(self) -> None:
        """403 missingScopes: missing_scopes, with the scopes in the message."""
        error = status(403, {"category": "MISSING_SCOPES", "context": {"missingScopes": ["crm.objects.deals.write"]}})
        trip = trip_for(error, refreshable=False, refreshed=False)
        assert trip is not None and trip.reason == "missing_scopes" and "crm.objects.deals.write" in trip.message

    def test_a_refused_refresh_opens_it_and_an_unknown_portal_does_not(self) -> None:
        """A refresh HubSpot refuses for good opens it; a passing refresh failure or an unknown portal does not."""
        refused = ValidationRejectedError(HubSpotErrorDetail(status=400, category="BAD_REFRESH_TOKEN"))
        trip = trip_for_credentials(refused)
        assert trip is not None and trip.reason == "oauth_refresh_failed"
        assert trip_for_credentials(UnknownPortalError("77")) is None
        assert trip_for_credentials(TokenRefreshError(HubSpotErrorDetail(message="busy"))) is None

    @pytest.mark.parametrize("error", [status(500), status(503), HubSpotTimeoutError(HubSpotErrorDetail())])
    def test_5xx_and_timeouts_count_toward_a_run(self, error: DeliveryError) -> None:
        """Server errors and timeouts count; they open nothing alone."""
        assert counts_toward_run(error) and trip_for(error, refreshable=False, refreshed=False) is None

    def test_a_404_neither_opens_it_nor_counts(self) -> None:
        """A 404 is about the pair, not the portal."""
        error = NotFoundError(HubSpotErrorDetail(status=404))
        assert not counts_toward_run(error) and trip_for(error, refreshable=False, refreshed=False) is None

    def test_a_run_opens_it_at_the_threshold(self) -> None:
        """19 of 20 is no trip; the 20th is server_errors."""
        error = status(503)
        assert run_trip(19, 20, 60.0, error) is None
        trip = run_trip(20, 20, 60.0, error)
        assert trip is not None and trip.reason == "server_errors" and "20 failed calls within 60 s" in trip.message


class TestTheBreaker:
    """Counting runs in a window, opening once, one probe per interval."""

    def test_a_run_within_the_window_opens_once_and_a_later_window_starts_again(self) -> None:
        """Three 503s in a minute open it (threshold 3); two, then two more after the window, do not."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        store = MemoryCircuitStore(MemoryPauses(lanes, clock), clock)
        breaker = Breaker(store, CircuitSettings(errors=3, window_s=60.0, probe_s=PROBE_S), clock=clock)
        error = ServerError(HubSpotErrorDetail(status=503))
        assert [breaker.failed("1", error, refreshable=False) for _ in range(2)] == [None, None]
        clock.now += 61
        assert [breaker.failed("1", error, refreshable=False) for _ in range(2)] == [None, None]
        trip = breaker.failed("1", error, refreshable=False)
        assert trip is not None and trip.reason == "server_errors"
        assert "circuit:1" in lanes.paused and store.events == [("opened", "server_errors")]
        assert breaker.failed("1", status(401), refreshable=False) is not None
        assert store.events == [("opened", "server_errors")]

    def test_one_probe_per_interval(self) -> None:
        """Right after opening nobody probes; after the interval one caller does, the next waits."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        breaker = Breaker(
            MemoryCircuitStore(MemoryPauses(lanes, clock), clock), CircuitSettings(probe_s=PROBE_S), clock=clock
        )
        breaker.failed("1", status(401), refreshable=False)
        assert breaker.probe_wait_ms("1") == PROBE_S * 1000
        clock.now += PROBE_S
        assert breaker.probe_wait_ms("1") == 0
        assert breaker.probe_wait_ms("1") == PROBE_S * 1000
        assert breaker.answered("1") is True and breaker.answered("1") is False
        assert "circuit:1" not in lanes.paused


class TestARevokedToken:
    """The done-when on the twins: 1,000 pending, a revoked token, at most 3 calls, no dead letter."""

    def test_a_revoked_token_opens_the_circuit_and_a_probe_closes_it(self) -> None:
        """One 401 opens it: everything handed back unspent; probes every interval; restored, all 1,000 drain."""
        clock = Clock()
        hubspot = RevocableHubSpot()
        hubspot.revoked = True
        lanes, store, drainer = parts(clock, hubspot)
        ids = [lanes.add(association(n)) for n in range(1, 1001)]

        report = drainer.drain(LANE)
        assert (report.calls, report.dead, report.deferred, report.paused) == (1, 0, 100, "circuit:_")
        assert report.ended == "parked" and store.events == [("opened", "token_rejected")]
        assert all(lanes.records[i].attempts == 0 and not lanes.records[i].history for i in ids)
        assert not lanes.dead_letters and not lanes.inflight and len(lanes.pending(LANE)) == 1000

        assert drainer.drain(LANE).calls == 0  # before the probe is due: nothing claimed, nothing sent
        clock.now += PROBE_S
        probe = drainer.drain(LANE)
        assert probe.calls == 1 and probe.paused == "circuit:_" and "circuit:_" in lanes.paused
        assert len(hubspot.calls) == 2 and not lanes.dead_letters

        hubspot.revoked = False
        clock.now += PROBE_S
        report = drainer.drain(LANE)
        assert report.linked == 1000 and report.dead == 0 and not lanes.records
        assert store.events == [("opened", "token_rejected"), ("closed", "token_rejected")]
        assert len(hubspot.calls) == 2 + 1 + 10  # the two while revoked, the probe, ten batches
        assert [len(pairs) for _, pairs in hubspot.calls[2:]] == [1] + [100] * 9 + [99]

    def test_a_manual_pause_is_not_bypassed_by_a_probe(self) -> None:
        """A portal paused by an operator stays paused while its circuit probes are due."""
        clock = Clock()
        hubspot = RevocableHubSpot()
        hubspot.revoked = True
        lanes, _, drainer = parts(clock, hubspot)
        lanes.add(association(1))
        drainer.drain(LANE)
        MemoryPauses(lanes, clock).pause("portal", "_")
        clock.now += PROBE_S
        assert drainer.drain(LANE).calls == 0 and len(hubspot.calls) == 1

    def test_a_refused_oauth_refresh_opens_it_without_a_dead_letter(self) -> None:
        """The refresh fails for good: the claim goes back unspent; once it works, the probe links and closes."""
        clock = Clock()
        credentials = FailingCredentials(
            ValidationRejectedError(HubSpotErrorDetail(status=400, category="BAD_REFRESH_TOKEN"))
        )
        hubspot = FakeHubSpot()
        lanes, store, drainer = parts(clock, hubspot, credentials=credentials)
        lanes.add(association(1))
        lanes.add(association(2))
        report = drainer.drain(LANE)
        assert (report.calls, report.dead, report.deferred) == (0, 0, 2)
        assert store.events == [("opened", "oauth_refresh_failed")] and not lanes.dead_letters
        credentials.error = None
        clock.now += PROBE_S
        assert drainer.drain(LANE).linked == 2 and store.events[-1] == ("closed", "oauth_refresh_failed")

    def test_a_run_of_503s_opens_it_and_the_tripping_call_spends_nothing(self) -> None:
        """Threshold 2: the first 503 is retried as usual (an attempt), the second opens the circuit unspent."""
        clock = Clock()

        def fail(pairs: Sequence[tuple[str, str]]) -> CallResult:
            """503 for the whole call."""
            raise ServerError(HubSpotErrorDetail(status=503))

        hubspot = FakeHubSpot(script=[fail, fail])
        lanes, store, drainer = parts(clock, hubspot, errors=2)
        first = lanes.add(association(1))
        drainer.drain(LANE)
        assert lanes.records[first].attempts == 1
        clock.now += 10  # past the retry's backoff, inside the 60 s window
        report = drainer.drain(LANE)
        assert report.paused == "circuit:_" and store.events == [("opened", "server_errors")]
        assert lanes.records[first].attempts == 1 and not lanes.dead_letters
