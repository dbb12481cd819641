"""Uninstalled apps on the in-memory twins: the state, the gates, the hold, and what resumes a portal.

docs/reference/hubspot.md §9.6: an uninstalled app's refresh token is refused as ``BAD_REFRESH_TOKEN``;
the journal carries the app-lifecycle event.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from hublink.delivery.batch import Batch
from hublink.delivery.circuit import (
    UNINSTALLED,
    Breaker,
    CircuitSettings,
    MemoryCircuitStore,
    is_uninstall_refusal,
    trip_for_credentials,
)
from hublink.delivery.credentials import Credential
from hublink.delivery.gates import GO, STOP, CredentialsGate, PauseGate
from hublink.delivery.installs import APP_INSTALL, APP_UNINSTALL, Installs
from hublink.delivery.outcomes import settle
from hublink.delivery.pauses import MemoryPauses
from hublink.domain import retry_policy as rp
from hublink.domain.associations import split_lane
from hublink.domain.errors import AppUninstalledError, DeliveryError
from hublink.domain.lookups import is_lookup_lane
from hublink.intake.journal import lifecycle_actions
from hublink.lanes import MemoryLanes
from tests.unit.test_circuit import FailingCredentials, status
from tests.unit.test_drain import LANE, START, Clock, association
from tests.unit.test_token_endpoint import PORTAL as TOKEN_PORTAL
from tests.unit.test_token_endpoint import MiniRedis, TokenEndpoint, credentials

START_MS = int(START * 1000)
HOUR_MS = 3_600_000
HOLD_H = 72.0
#: HubSpot's answer to a refresh once the app is uninstalled (the simulator's, as the field reports it).
REFUSED = {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token", "category": "VALIDATION_ERROR"}


def refused() -> DeliveryError:
    """The token endpoint's 400 BAD_REFRESH_TOKEN, as the client raises it."""
    return status(400, REFUSED)


def claimed(lanes: MemoryLanes, lane: str = LANE, limit: int = 100) -> Batch:
    """The next claim of ``lane`` as the drain hands it to its gates."""
    claim = lanes.claim(lane, limit)
    portal, from_type, to_type = split_lane(lane)
    return Batch(lane, portal, from_type, to_type, is_lookup_lane(lane), claim, list(claim.items))


def breaker(lanes: MemoryLanes, clock: Clock) -> tuple[Breaker, MemoryCircuitStore]:
    """A breaker on the twins: 30-s probes, hourly for an uninstalled portal, a 72-h hold."""
    store = MemoryCircuitStore(MemoryPauses(lanes, clock), clock)
    settings = CircuitSettings(errors=2, window_s=60.0, probe_s=30.0, uninstalled_hold_s=HOLD_H * 3600)
    return Breaker(store, settings, clock=clock), store


def uninstalled_lanes(n: int = 3) -> tuple[Clock, MemoryLanes, Breaker, MemoryCircuitStore]:
    """``n`` items pending in the single-portal lane, the portal just marked uninstalled."""
    clock = Clock()
    lanes = MemoryLanes(clock=clock)
    for i in range(1, n + 1):
        lanes.add(association(i))
    circuit, store = breaker(lanes, clock)
    assert circuit.failed_credentials("_", refused()) is not None
    return clock, lanes, circuit, store


class Invalidated(FailingCredentials):
    """FailingCredentials that record what was invalidated."""

    def __init__(self, error: DeliveryError | None) -> None:
        super().__init__(error)
        self.invalidated: list[str | None] = []

    def invalidate(self, portal_id: str | None) -> None:
        """Record it."""
        self.invalidated.append(portal_id)


class TestTheDecision:
    """What marks a portal uninstalled."""

    def test_bad_refresh_token_is_an_uninstall(self) -> None:
        """The token endpoint's BAD_REFRESH_TOKEN (named in ``status``) trips ``app_uninstalled``, naming it."""
        error = refused()
        assert error.detail.sub_category == "BAD_REFRESH_TOKEN" and is_uninstall_refusal(error)
        trip = trip_for_credentials(error)
        assert trip is not None and trip.reason == UNINSTALLED and "BAD_REFRESH_TOKEN" in trip.message
        assert "HUBLINK_UNINSTALLED_HOLD_H" in trip.advice

    def test_other_refusals_are_not(self) -> None:
        """BAD_CLIENT_ID is a configuration fault (oauth_refresh_failed); an ordinary error's ``status: error``
        is not a reason."""
        bad_client = status(400, {**REFUSED, "status": "BAD_CLIENT_ID"})
        trip = trip_for_credentials(bad_client)
        assert trip is not None and trip.reason == "oauth_refresh_failed"
        ordinary = status(400, {"status": "error", "category": "VALIDATION_ERROR", "message": "bad"})
        assert ordinary.detail.sub_category is None and not is_uninstall_refusal(ordinary)


class TestTheState:
    """The breaker keeps an uninstalled portal as its circuit, open as ``app_uninstalled``."""

    def test_marked_once_probed_hourly(self) -> None:
        """One open (one alert's worth), the next probe an hour away, the hold 72 h from the uninstall."""
        clock, _, circuit, store = uninstalled_lanes()
        assert store.events == [("opened", UNINSTALLED)]
        assert circuit.failed_credentials("_", refused()) is not None  # a refused probe: no new change
        assert store.events == [("opened", UNINSTALLED)]
        uninstall = circuit.uninstall("_")
        assert uninstall is not None and uninstall.hold_ends_ms == START_MS + 72 * HOUR_MS
        assert circuit.probe_wait_ms("_", uninstalled=True) == HOUR_MS
        clock.now += 3599
        assert circuit.probe_wait_ms("_", uninstalled=True) == 1000
        clock.now += 1
        assert circuit.probe_wait_ms("_", uninstalled=True) == 0

    def test_an_uninstall_replaces_another_open_reason(self) -> None:
        """Open for 5xx, then the journal says uninstalled: the reason, the probe and the hold become the
        uninstall's (a second change, alerted once); said again, nothing changes."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        circuit, store = breaker(lanes, clock)
        for _ in range(2):
            circuit.failed("_", status(503), refreshable=False)
        assert store.events == [("opened", "server_errors")]
        clock.now += 10
        assert circuit.uninstalled("_", "the journal's APP_UNINSTALL")
        assert not circuit.uninstalled("_", "the journal's APP_UNINSTALL")
        assert store.events == [("opened", "server_errors"), ("opened", UNINSTALLED)]
        uninstall = circuit.uninstall("_")
        assert uninstall is not None and uninstall.circuit.opened_ms == START_MS + 10_000

    def test_not_uninstalled_once_closed(self) -> None:
        """A probe's answer closes the circuit: the portal is no longer uninstalled."""
        _, _, circuit, _ = uninstalled_lanes()
        assert circuit.answered("_")
        assert circuit.uninstall("_") is None


class TestPauseGate:
    """An uninstalled portal's lanes wait for the probe or the hold, whichever comes first."""

    def test_waits_for_the_hourly_probe_without_a_claim(self) -> None:
        """Before the probe is due: STOP, parked an hour, nothing leased, nothing answered."""
        clock, lanes, circuit, _ = uninstalled_lanes()
        batch = claimed(lanes)
        assert PauseGate(lanes, circuit, clock=clock).before_call(batch) is STOP
        assert batch.sent.park_until_ms == START_MS + HOUR_MS and not batch.sent.answers and not lanes.inflight

    def test_the_park_ends_at_the_hold_when_it_is_nearer(self) -> None:
        """Half an hour before the hold's end, the lane parks until the hold's end, not the next probe."""
        clock, lanes, circuit, _ = uninstalled_lanes()
        clock.now += HOLD_H * 3600 - 1800
        assert circuit.probe_wait_ms("_", uninstalled=True) == 0  # the probe of this hour, taken elsewhere
        batch = claimed(lanes)
        assert PauseGate(lanes, circuit, clock=clock).before_call(batch) is STOP
        assert batch.sent.park_until_ms == START_MS + 72 * HOUR_MS

    def test_after_the_hold_every_item_is_dead_lettered_without_a_call(self) -> None:
        """Past the hold (no probe due): the claim's items are answered ``AppUninstalledError``, which settles as
        dead letters ``app_uninstalled`` without spending an attempt; the next claim finds the lane empty."""
        clock, lanes, circuit, _ = uninstalled_lanes(3)
        clock.now += HOLD_H * 3600
        assert circuit.probe_wait_ms("_", uninstalled=True) == 0  # the probe is taken: none due now
        gate = PauseGate(lanes, circuit, clock=clock)
        batch = claimed(lanes)
        assert gate.before_call(batch) is STOP and not batch.sent.leave
        assert len(batch.sent.answers) == 3
        assert all(isinstance(r.error, AppUninstalledError) for r in batch.sent.answers)
        settlement = settle(batch.sent.answers, now=clock(), policy=rp.RetryPolicy(), rng=random.Random(1))
        assert [d.reason for d in settlement.dead_letters] == ["app_uninstalled"] * 3
        assert {d.category for d in settlement.dead_letters} == {"APP_UNINSTALLED"}
        assert all(d.attempt_count == 0 for d in settlement.dead_letters)
        lanes.settle(LANE, settlement.outcomes, [])
        empty = claimed(lanes)
        assert gate.before_call(empty) is STOP and empty.sent.leave

    def test_after_the_hold_a_due_probe_comes_first(self) -> None:
        """Past the hold with a probe due: one item goes as the probe (a reinstall would save the work)."""
        clock, lanes, circuit, _ = uninstalled_lanes(3)
        clock.now += HOLD_H * 3600 + 1
        batch = claimed(lanes)
        assert PauseGate(lanes, circuit, clock=clock).before_call(batch) is GO
        assert batch.probing and len(batch.items) == 1 and not batch.sent.answers


class TestCredentialsGate:
    """An uninstalled portal's probe is a token refresh."""

    def test_a_refused_probe_keeps_it_uninstalled_and_parks_an_hour(self) -> None:
        """The cached token is forgotten first; HubSpot refuses again: the probe item goes back unspent, the lane
        parks until the next hourly probe, and no new change is recorded."""
        clock, lanes, circuit, store = uninstalled_lanes(1)
        clock.now += 3600
        batch = claimed(lanes)
        assert PauseGate(lanes, circuit, clock=clock).before_call(batch) is GO
        credentials = Invalidated(refused())
        assert CredentialsGate(credentials, circuit, clock=clock).before_call(batch) is STOP  # type: ignore[arg-type]
        assert credentials.invalidated == [None]
        assert len(batch.sent.back) == 1 and not batch.sent.answers
        assert batch.sent.park_until_ms == int(clock() * 1000) + HOUR_MS
        assert store.events == [("opened", UNINSTALLED)] and circuit.uninstall("_") is not None

    def test_a_token_issued_resumes_the_portal(self) -> None:
        """The refresh works again (a reinstall): the portal resumes before the call, which goes on."""
        clock, lanes, circuit, store = uninstalled_lanes(1)
        clock.now += 3600
        batch = claimed(lanes)
        assert PauseGate(lanes, circuit, clock=clock).before_call(batch) is GO
        credentials = Invalidated(None)
        assert CredentialsGate(credentials, circuit, clock=clock).before_call(batch) is GO  # type: ignore[arg-type]
        assert isinstance(batch.credential, Credential) and batch.credential.refreshed
        assert circuit.uninstall("_") is None and store.events[-1] == ("closed", UNINSTALLED)


class TestTheJournal:
    """The journal's app-lifecycle events mark and resume a portal."""

    def test_lifecycle_events_are_found_by_portal(self) -> None:
        """Only ``app.lifecycle`` events, with their portal (else the journal's)."""
        events = [
            {
                "subscriptionType": "app.lifecycle",
                "action": "APP_UNINSTALL",
                "portalId": 777,
                "eventTypeId": "4-1916193",
            },
            {"subscriptionType": "object.creation", "objectId": 5, "portalId": 777},
            {"subscriptionType": "app.lifecycle", "action": "APP_INSTALL"},
        ]
        assert lifecycle_actions(events, "888") == [("777", "APP_UNINSTALL"), ("888", "APP_INSTALL")]

    def test_uninstall_then_install(self) -> None:
        """APP_UNINSTALL marks the portal and forgets its token; APP_INSTALL resumes it; unknown actions do
        nothing."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        circuit, store = breaker(lanes, clock)
        credentials = Invalidated(None)
        installs = Installs(circuit, credentials)  # type: ignore[arg-type]
        installs.lifecycle("777", "SOMETHING_ELSE")
        assert store.events == []
        installs.lifecycle("777", APP_UNINSTALL)
        assert circuit.uninstall("777") is not None and credentials.invalidated == ["777"]
        installs.lifecycle("777", APP_INSTALL)
        assert circuit.uninstall("777") is None
        assert store.events == [("opened", UNINSTALLED), ("closed", UNINSTALLED)]


class TestTheRetryPolicy:
    """The dead-letter reason."""

    def test_app_uninstalled_is_dead_lettered_as_such(self) -> None:
        """AppUninstalledError: DeadLetter('app_uninstalled'), whatever the attempts."""
        decision = rp.classify(
            AppUninstalledError("777", 72), attempts=0, age_s=0, policy=rp.RetryPolicy(), rng=random.Random(1)
        )
        assert decision == rp.DeadLetter("app_uninstalled")


class TestRefusedRefreshTokens:
    """PortalCredentials remembers HubSpot's BAD_REFRESH_TOKEN for every worker, until a probe forgets it."""

    def test_refused_once_asked_again_only_after_invalidate(self) -> None:
        """The refusal is kept in ``token:<portal>``: the next for_portal raises it without a call (another
        worker's too); invalidate (a probe, a resume) forgets it and the endpoint is asked again."""
        clock, redis = Clock(), MiniRedis()
        endpoint = TokenEndpoint(refused())
        first = credentials(endpoint, clock, redis)
        for portal in (first, credentials(endpoint, clock, redis), first):
            with pytest.raises(DeliveryError) as raised:
                portal.for_portal(TOKEN_PORTAL)
            assert is_uninstall_refusal(raised.value)
        assert endpoint.calls == 1
        assert "refused" in redis.hashes[f"hl:token:{TOKEN_PORTAL}"]
        endpoint.error = None
        first.invalidate(TOKEN_PORTAL)
        credential = first.for_portal(TOKEN_PORTAL)
        assert credential.refreshed and endpoint.calls == 2
        assert "refused" not in redis.hashes[f"hl:token:{TOKEN_PORTAL}"]

    def test_a_refused_cached_token_gives_way_to_the_files(self) -> None:
        """A rotated refresh token cached and refused: the portals file's (a new install's) is tried at once."""
        clock, redis = Clock(), MiniRedis()
        redis.hashes[f"hl:token:{TOKEN_PORTAL}"] = {"refresh_token": "rotated-old"}

        class FileTokenOnly(TokenEndpoint):
            """Refuses every refresh token but the file's."""

            def __init__(self) -> None:
                super().__init__()
                self.seen: list[str] = []

            def refresh_token(
                self, client_id: str, client_secret: str, refresh_token: str, *, base_url: str | None = None
            ) -> dict[str, Any]:
                """Refuse the cached token, issue for the file's."""
                self.seen.append(refresh_token)
                self.error = None if refresh_token == "refresh-1" else refused()
                return super().refresh_token(client_id, client_secret, refresh_token, base_url=base_url)

        endpoint = FileTokenOnly()
        credential = credentials(endpoint, clock, redis).for_portal(TOKEN_PORTAL)
        assert credential.refreshed and endpoint.seen == ["rotated-old", "refresh-1"]
        assert "refresh_token" not in redis.hashes[f"hl:token:{TOKEN_PORTAL}"]
