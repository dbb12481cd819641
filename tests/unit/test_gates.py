"""Each gate of the drain alone, on the in-memory twins: what it lets through, what it stops, and why."""

from __future__ import annotations

from hublink.delivery.batch import Batch
from hublink.delivery.circuit import Breaker, CircuitSettings, MemoryCircuitStore
from hublink.delivery.credentials import StaticCredentials
from hublink.delivery.gates import (
    GO,
    STOP,
    BatchWindowGate,
    CircuitGate,
    CredentialsGate,
    Gate,
    LimiterGate,
    LookupsGate,
    PauseGate,
    RecentlyLinkedGate,
)
from hublink.delivery.pauses import PAUSE_PARK_S, MemoryPauses
from hublink.delivery.rate_limit import MemoryLimiter
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest, split_lane
from hublink.domain.errors import HubSpotErrorDetail, RateHeaders, ServerError, UnknownPortalError
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import LookupRequest, is_lookup_lane
from hublink.domain.rules import Fixed, SearchLookup
from hublink.lanes import MemoryLanes
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys
from tests.unit.test_circuit import FailingCredentials, status
from tests.unit.test_drain import LANE, START, Clock, FakeResolver, association

TOKEN = StaticCredentials("pat-test-token")
START_MS = int(START * 1000)


def claimed(lanes: MemoryLanes, lane: str = LANE, limit: int = 100) -> Batch:
    """The next claim of ``lane`` as the drain hands it to its gates."""
    claim = lanes.claim(lane, limit)
    portal, from_type, to_type = split_lane(lane)
    return Batch(lane, portal, from_type, to_type, is_lookup_lane(lane), claim, list(claim.items))


def breaker(lanes: MemoryLanes, clock: Clock) -> tuple[Breaker, MemoryCircuitStore]:
    """A breaker on the twins, probing every 30 s."""
    store = MemoryCircuitStore(MemoryPauses(lanes, clock), clock)
    return Breaker(store, CircuitSettings(errors=2, window_s=60.0, probe_s=30.0), clock=clock), store


def limiter_gate(clock: Clock, limiter: MemoryLimiter, limit: RateLimit = RateLimit(2, 10.0)) -> LimiterGate:
    """The limiter gate with a small limit and counters."""
    return LimiterGate(
        limiter,
        TOKEN,
        rp.RetryPolicy(),
        rate_limit=limit,
        max_wait_ms=500,
        clock=clock,
        sleep=clock.sleep,
        metrics=CounterOps(Keys("hl:")),
    )


class TestTheHooks:
    """A gate that overrides nothing lets every batch through and changes nothing."""

    def test_the_default_hooks_are_no_ops(self) -> None:
        """before_call says GO; after_call leaves the batch's record as it was."""
        lanes = MemoryLanes(clock=Clock())
        lanes.add(association(1))
        batch = claimed(lanes)
        assert Gate().before_call(batch) is GO
        Gate().after_call(batch)
        assert batch.sent.answers == [] and not batch.sent.leave and len(batch.items) == 1


class TestPauseGate:
    """A paused lane parks; an open circuit lets its probe through."""

    def test_an_unpaused_claim_goes_on(self) -> None:
        """Nothing paused: GO, items untouched."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        assert PauseGate(lanes, None, clock=clock).before_call(claimed(lanes)) is GO

    def test_a_paused_portal_parks_the_lane_for_the_recheck(self) -> None:
        """Paused by an operator: STOP, the lane parks PAUSE_PARK_S, nothing claimed."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        MemoryPauses(lanes, clock).pause("portal", "_")
        batch = claimed(lanes)
        assert PauseGate(lanes, None, clock=clock).before_call(batch) is STOP
        assert batch.sent.leave and batch.sent.park_until_ms == START_MS + int(PAUSE_PARK_S * 1000)
        assert not lanes.inflight

    def test_an_open_circuit_lets_one_probe_through_when_due(self) -> None:
        """Before the probe is due the lane parks until then; once due, one item goes as the probe."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in (1, 2):
            lanes.add(association(n))
        circuit, _ = breaker(lanes, clock)
        circuit.failed("_", status(401), refreshable=False)
        gate = PauseGate(lanes, circuit, clock=clock)
        waiting = claimed(lanes)
        assert gate.before_call(waiting) is STOP and waiting.sent.park_until_ms == START_MS + 30_000
        clock.now += 30
        probe = claimed(lanes)
        assert gate.before_call(probe) is GO
        assert probe.probing and len(probe.items) == 1


class TestBatchWindowGate:
    """An empty claim leaves the lane; a claim the batch window holds parks it."""

    def test_an_empty_claim_leaves_without_a_park(self) -> None:
        """No work: STOP, leave, no park time."""
        clock = Clock()
        batch = claimed(MemoryLanes(clock=clock))
        assert BatchWindowGate(clock=clock).before_call(batch) is STOP
        assert batch.sent.leave and batch.sent.park_until_ms == 0

    def test_a_claim_held_by_the_window_parks_until_it_closes(self) -> None:
        """One item, a 1 s window: STOP, parked for the rest of the window."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        claim = lanes.claim(LANE, 100, window_ms=1000)
        batch = Batch(LANE, None, "deals", "contacts", False, claim, [])
        assert BatchWindowGate(clock=clock).before_call(batch) is STOP
        assert batch.sent.park_until_ms == START_MS + 1000

    def test_a_claim_with_work_goes_on(self) -> None:
        """Claimed work: GO."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        assert BatchWindowGate(clock=clock).before_call(claimed(lanes)) is GO


class TestCredentialsGate:
    """The portal's credential, or the work's fate without one."""

    def test_a_known_portal_goes_on_with_its_credential(self) -> None:
        """A static token: GO, the credential set on the batch."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        batch = claimed(lanes)
        assert CredentialsGate(TOKEN, None, clock=clock).before_call(batch) is GO
        assert batch.credential is not None and batch.credential.token == "pat-test-token"

    def test_an_unknown_portal_answers_every_item_with_its_error(self) -> None:
        """No credential and no circuit to open: each item is answered with the error, nothing is sent."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        batch = claimed(lanes)
        gate = CredentialsGate(FailingCredentials(UnknownPortalError("77")), None, clock=clock)  # type: ignore[arg-type]
        assert gate.before_call(batch) is STOP
        assert [type(r.error) for r in batch.sent.answers] == [UnknownPortalError] and batch.items == []

    def test_a_refused_refresh_opens_the_circuit_and_hands_the_work_back(self) -> None:
        """HubSpot refuses the OAuth refresh for good: the work goes back unspent, the lane parks until the probe."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        circuit, store = breaker(lanes, clock)
        refused = FailingCredentials(status(400, {"category": "BAD_REFRESH_TOKEN"}))
        batch = claimed(lanes)
        assert CredentialsGate(refused, circuit, clock=clock).before_call(batch) is STOP  # type: ignore[arg-type]
        assert len(batch.sent.back) == 1 and batch.sent.back_due_ms == START_MS and batch.sent.deferred == 1
        assert batch.sent.paused == "circuit:_" and batch.sent.park_until_ms == START_MS + 30_000
        assert store.events == [("opened", "oauth_refresh_failed")]


class TestCircuitGate:
    """A call that opens the circuit sends the batch's work back; a probe's answer closes it."""

    def test_a_tripping_call_hands_back_what_failed_for_the_portal(self) -> None:
        """A 401 on a private-app token: tripped; after the call the failed items go back unspent."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        circuit, _ = breaker(lanes, clock)
        gate = CircuitGate(circuit, clock=clock)
        batch = claimed(lanes)
        batch.credential = TOKEN.for_portal(None)
        error = status(401)
        gate.failed_call(batch, error)
        batch.sent.answer(batch.items, error)
        gate.after_call(batch)
        assert batch.sent.tripped and batch.sent.answers == []
        assert len(batch.sent.back) == 1 and batch.sent.paused == "circuit:_" and batch.sent.leave

    def test_a_run_of_server_errors_trips_at_the_threshold(self) -> None:
        """Threshold 2: the first 503 does not trip, the second does."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        circuit, _ = breaker(lanes, clock)
        gate = CircuitGate(circuit, clock=clock)
        batch = claimed(lanes)
        batch.credential = TOKEN.for_portal(None)
        gate.failed_call(batch, ServerError(HubSpotErrorDetail(status=503)))
        assert not batch.sent.tripped
        gate.failed_call(batch, ServerError(HubSpotErrorDetail(status=503)))
        assert batch.sent.tripped

    def test_an_answered_probe_closes_the_circuit(self) -> None:
        """A probing batch that was sent without a trip closes the portal's circuit."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        circuit, store = breaker(lanes, clock)
        circuit.failed("_", status(401), refreshable=False)
        batch = claimed(lanes)
        batch.probing, batch.called = True, True
        CircuitGate(circuit, clock=clock).after_call(batch)
        assert store.events[-1] == ("closed", "token_rejected") and "circuit:_" not in lanes.paused


class TestLimiterGate:
    """One token per call; a long wait hands the work back and parks; waits and headers are learnt."""

    def test_a_free_token_lets_the_batch_go(self) -> None:
        """A token is free: GO, one taken."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        limiter = MemoryLimiter(clock=clock)
        batch = claimed(lanes)
        batch.credential = TOKEN.for_portal(None)
        assert limiter_gate(clock, limiter).before_call(batch) is GO
        assert limiter.wait_ms(batch.credential.bucket, RateLimit(1, 10.0)) > 0

    def test_a_spent_bucket_hands_the_work_back_and_parks_early(self) -> None:
        """No token for 10 s: STOP, the items back untouched and the lane parked half a sleep early, counted."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        limiter = MemoryLimiter(clock=clock)
        gate = limiter_gate(clock, limiter)
        bucket = TOKEN.for_portal(None).bucket
        for _ in range(2):
            limiter.acquire(bucket, RateLimit(2, 10.0))
        batch = claimed(lanes)
        batch.credential = TOKEN.for_portal(None)
        assert gate.before_call(batch) is STOP
        assert len(batch.sent.back) == 1 and batch.items == []
        assert batch.sent.park_until_ms == batch.sent.back_due_ms == START_MS + 10_000 - 250
        gate.after_call(batch)
        assert ("hl:m:rate_limit_waits", "kind=park", 1, 0) in batch.sent.ops
        assert gate.park_before_claim(None) == 10_000 - 250

    def test_a_nearly_spent_daily_budget_blocks_until_midnight(self) -> None:
        """Daily-Remaining under the 5 % reserve: the bucket waits for the UTC midnight."""
        clock = Clock()
        limiter = MemoryLimiter(clock=clock)
        credential = TOKEN.for_portal(None)
        rate = RateHeaders(100, 90, 10_000, daily=250_000, daily_remaining=10_000)
        limiter_gate(clock, limiter).learn(credential, rate, None)
        assert limiter.blocked_until_ms[credential.bucket] == (int(START // 86400) + 1) * 86400 * 1000


class TestLookupsGate:
    """A lookup lane's batch is resolved here and never sent; association lanes pass."""

    def test_an_association_lane_passes(self) -> None:
        """Not a lookup lane: GO."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        gate = LookupsGate(FakeResolver(), lanes, limiter_gate(clock, MemoryLimiter(clock=clock)), clock=clock)
        assert gate.before_call(claimed(lanes)) is GO

    def test_a_lookup_is_resolved_and_its_association_queued(self) -> None:
        """The lookup is answered done, counted as a call, and its association waits in its own lane."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        request = LookupRequest(
            rule="demo",
            from_side=Fixed("contacts", "5"),
            to_side=SearchLookup("companies", "domain", "example.com", "first"),
            source="forms.demo",
            received_at=START,
        )
        lanes.add(request)
        gate = LookupsGate(FakeResolver(), lanes, limiter_gate(clock, MemoryLimiter(clock=clock)), clock=clock)
        batch = claimed(lanes, request.lane)
        batch.credential = TOKEN.for_portal(None)
        assert gate.before_call(batch) is STOP
        assert [r.error for r in batch.sent.answers] == [None] and batch.sent.calls == 1
        (queued,) = (r for r in lanes.records.values() if isinstance(r.request, AssociationRequest))
        assert isinstance(queued.request, AssociationRequest) and queued.request.pair == ("5", "900")


class TestRecentlyLinkedGate:
    """A pair linked moments ago is not sent again for work accepted before the link."""

    def test_work_accepted_before_the_link_settles_without_a_call(self) -> None:
        """After the call linked 7 -> 1007, an earlier copy is answered done; a later one (a replay) is sent."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        gate = RecentlyLinkedGate(clock=clock)
        lanes.add(association(7))
        first = claimed(lanes)
        first.called = True
        first.sent.answer(first.items, None)
        gate.after_call(first)
        earlier = lanes.add(association(7))
        clock.now += 1
        later = lanes.add(association(7))
        batch = claimed(lanes)
        assert gate.before_call(batch) is GO
        assert [r.item.association_id for r in batch.sent.answers] == [earlier]
        assert [i.association_id for i in batch.items] == [later]

    def test_a_failed_link_is_forgotten(self) -> None:
        """A pair whose call failed is sent again in full."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        gate = RecentlyLinkedGate(clock=clock)
        lanes.add(association(7))
        first = claimed(lanes)
        first.called = True
        first.sent.answer(first.items, ServerError(HubSpotErrorDetail(status=503)))
        gate.after_call(first)
        lanes.add(association(7))
        batch = claimed(lanes)
        assert gate.before_call(batch) is GO and len(batch.items) == 1 and batch.sent.answers == []
