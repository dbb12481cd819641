"""The in-memory twins keep the Redis implementations' promises: the same assertions run against both."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis as redis_lib

from hublink.delivery.circuit import Circuit, CircuitStore, MemoryCircuitStore, RedisCircuitStore
from hublink.delivery.pauses import MemoryPauses, Pauses, PauseStore
from hublink.delivery.rate_limit import Limiter, MemoryLimiter, RedisRateLimiter
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import RateHeaders
from hublink.domain.limits import RateLimit
from hublink.lanes import EventGroup, Lanes, LaneStore, MemoryLanes, Outcome
from hublink.store.keys import Keys

LANE = "_|deals|contacts"


def request(n: int) -> AssociationRequest:
    """deals/n → contacts/n."""
    return AssociationRequest.create(
        from_object_type="deals",
        from_object_id=str(n),
        to_object_type="contacts",
        to_object_id=str(n),
        source="api",
        received_at=time.time(),
    )


@pytest.fixture(params=["redis", "memory"])
def lanes(request: pytest.FixtureRequest, redis_client: redis_lib.Redis) -> Iterator[Lanes]:
    """Each implementation of the lanes."""
    if request.param == "redis":
        yield LaneStore(redis_client, Keys(), lease_s=30)
    else:
        yield MemoryLanes(lease_s=30)


@pytest.fixture(params=["redis", "memory"])
def limiter(request: pytest.FixtureRequest, redis_client: redis_lib.Redis) -> Limiter:
    """Each implementation of the limiter."""
    if request.param == "redis":
        return RedisRateLimiter(redis_client, Keys(), margin=0.0)
    return MemoryLimiter(margin=0.0)


class TestLanes:
    """Both lane stores dedup, claim with a lease, settle only what exists, and report how a drain left."""

    def test_a_seen_event_is_stored_once(self, lanes: Lanes) -> None:
        """The same dedup key twice: the second group is a duplicate."""
        result = lanes.enqueue([EventGroup([request(1)], dedup_key="e1"), EventGroup([request(1)], dedup_key="e1")])
        assert result.ids[0] is not None and result.ids[1] is None

    def test_claim_leases_due_work_once_and_settle_finishes_it(self, lanes: Lanes) -> None:
        """Claimed work is not claimed again; done removes it; the lane is then idle."""
        lanes.enqueue([EventGroup([request(1), request(2)])])
        first = lanes.claim(LANE, 10)
        assert len(first.items) == 2
        assert lanes.claim(LANE, 10).items == []
        assert lanes.settle(LANE, [Outcome(item=i, kind="done") for i in first.items]) == 2
        assert lanes.finish(LANE) == "idle"

    def test_a_retry_goes_back_to_wait_and_the_lane_is_scheduled(self, lanes: Lanes) -> None:
        """A retry due in a minute is not claimable now, and the lane is scheduled for it."""
        lanes.enqueue([EventGroup([request(1)])])
        (item,) = lanes.claim(LANE, 10).items
        due = int(time.time() * 1000) + 60_000
        lanes.settle(LANE, [Outcome(item=item, kind="retry", due_ms=due)])
        assert lanes.claim(LANE, 10).items == []
        assert lanes.finish(LANE) == "scheduled"

    def test_a_settled_association_cannot_be_settled_again(self, lanes: Lanes) -> None:
        """A late outcome for an association already done is not applied."""
        lanes.enqueue([EventGroup([request(1)])])
        (item,) = lanes.claim(LANE, 10).items
        assert lanes.settle(LANE, [Outcome(item=item, kind="done")]) == 1
        assert lanes.settle(LANE, [Outcome(item=item, kind="retry", due_ms=1)]) == 0

    def test_a_parked_lane_says_so(self, lanes: Lanes) -> None:
        """Leaving with a park time in the future parks the lane."""
        lanes.enqueue([EventGroup([request(1)])])
        assert lanes.finish(LANE, park_until_ms=int(time.time() * 1000) + 5000) == "parked"


class TestLimiter:
    """Both limiters count a window, and a block is never shortened."""

    def test_the_window_allows_its_requests_then_asks_to_wait(self, limiter: Limiter) -> None:
        """Three per 10 s: three tokens, then a wait of at most the window."""
        limit = RateLimit(3, 10.0)
        assert [limiter.acquire("b", limit) for _ in range(3)] == [0, 0, 0]
        assert 0 < limiter.acquire("b", limit) <= 10_000

    def test_a_peek_says_what_a_take_would_and_takes_nothing(self, limiter: Limiter) -> None:
        """wait_ms: 0 while a token is free (any number of times), then the same wait acquire gives."""
        limit = RateLimit(2, 10.0)
        assert [limiter.wait_ms("b", limit) for _ in range(3)] == [0, 0, 0]
        assert [limiter.acquire("b", limit) for _ in range(2)] == [0, 0]
        peeked = limiter.wait_ms("b", limit)
        assert 9_000 < peeked <= 10_000 and abs(limiter.acquire("b", limit) - peeked) < 200

    def test_the_margin_is_time_not_a_rounded_down_count(self, redis_client: redis_lib.Redis) -> None:
        """5 per second with 5 %: five tokens at once (not four), the sixth about 1.05 s after the first."""
        for limiter in (RedisRateLimiter(redis_client, Keys(), margin=0.05), MemoryLimiter(margin=0.05)):
            limit = RateLimit(5, 1.0)
            started = time.monotonic()
            assert [limiter.acquire("m", limit) for _ in range(5)] == [0] * 5
            wait = limiter.acquire("m", limit)
            elapsed_ms = (time.monotonic() - started) * 1_000
            # The sixth token is free 1.05 s after the first: the wait is that less the time the calls took
            # (milliseconds on an idle machine, far more on a loaded one), never more.
            assert wait + elapsed_ms > 1_000 and wait <= 1_053

    def test_a_block_is_never_shortened(self, limiter: Limiter) -> None:
        """A 60 s block then a 1 s block: the wait is still about a minute."""
        limiter.block("b", 60)
        limiter.block("b", 1)
        assert limiter.acquire("b", RateLimit(100, 10.0)) > 50_000


@pytest.fixture(params=["redis", "memory"])
def paused_lanes(request: pytest.FixtureRequest, redis_client: redis_lib.Redis) -> tuple[Lanes, Pauses, CircuitStore]:
    """Each implementation of the lanes with its pauses and circuits."""
    if request.param == "redis":
        store = PauseStore(redis_client, Keys())
        return LaneStore(redis_client, Keys(), lease_s=30), store, RedisCircuitStore(redis_client, Keys(), store)
    memory = MemoryLanes(lease_s=30)
    pauses = MemoryPauses(memory)
    return memory, pauses, MemoryCircuitStore(pauses)


class TestPausesAndCircuits:
    """Both stop a paused lane's claim, let a probe through an open circuit only, and resume."""

    @pytest.mark.parametrize(("scope", "name"), [("portal", "_"), ("lane", LANE)])
    def test_a_pause_stops_the_claim_and_a_resume_lets_it_through(
        self, paused_lanes: tuple[Lanes, Pauses, CircuitStore], scope: str, name: str
    ) -> None:
        """Paused: nothing claimed, the field named; resumed: the work is claimed."""
        lanes, pauses, _ = paused_lanes
        lanes.enqueue([EventGroup([request(1)])])
        assert pauses.pause(scope, name, "why") is True
        claim = lanes.claim(LANE, 10)
        assert (claim.items, claim.paused) == ([], f"{scope}:{name}")
        assert [(p.scope, p.name, p.reason) for p in pauses.list()] == [(scope, name, "why")]
        assert pauses.resume(scope, name) is True and pauses.resume(scope, name) is False
        assert len(lanes.claim(LANE, 10).items) == 1

    def test_an_open_circuit_lets_only_its_probe_through(
        self, paused_lanes: tuple[Lanes, Pauses, CircuitStore]
    ) -> None:
        """Open: a claim is refused, a probe's is not; one probe slot per interval; closing lifts it."""
        lanes, _, circuits = paused_lanes
        lanes.enqueue([EventGroup([request(1), request(2)])])
        opened = Circuit(portal="_", state="open", reason="token_rejected", message="401", opened_ms=1)
        assert circuits.open(opened, 60_000) is True and circuits.open(opened, 60_000) is False
        assert lanes.claim(LANE, 10).paused == "circuit:_"
        assert len(lanes.claim(LANE, 1, probe=True).items) == 1
        assert circuits.take_probe("_", 60_000) > 0
        closed = circuits.close("_", 5)
        assert closed is not None and closed.state == "closed" and circuits.close("_", 6) is None
        assert [c.state for c in circuits.circuits()] == ["closed"]
        assert len(lanes.claim(LANE, 10).items) == 1


class TestAResumeIsNeverLost:
    """A resume that lands while a drain runs (it claimed under the pause and is about to park) wakes the lane."""

    def test_a_resume_during_the_drain_hands_the_lane_on_instead_of_parking_it(
        self, redis_client: redis_lib.Redis
    ) -> None:
        """Claim while paused, resume, then the drain's park: the lane is handed on, on the wake list."""
        keys = Keys()
        lanes, pauses = LaneStore(redis_client, keys, lease_s=30), PauseStore(redis_client, keys)
        lanes.enqueue([EventGroup([request(1)])])
        redis_client.delete(keys.wake)
        pauses.pause("lane", LANE, "hold")
        assert lanes.claim(LANE, 10).paused == f"lane:{LANE}"  # the drain saw the pause...
        assert pauses.resume("lane", LANE) is True  # ...the operator resumes while it runs...
        parked = lanes.finish(LANE, park_until_ms=int(time.time() * 1000) + 60_000)  # ...and it parks for it
        assert parked == "handed-on"
        assert redis_client.lrange(keys.wake, 0, -1) == [LANE.encode()]
        assert len(lanes.claim(LANE, 10).items) == 1

    def test_without_a_resume_the_drain_parks(self, redis_client: redis_lib.Redis) -> None:
        """The same drain with the pause still on parks the lane and wakes nothing."""
        keys = Keys()
        lanes, pauses = LaneStore(redis_client, keys, lease_s=30), PauseStore(redis_client, keys)
        lanes.enqueue([EventGroup([request(1)])])
        redis_client.delete(keys.wake)
        pauses.pause("lane", LANE, "hold")
        assert lanes.claim(LANE, 10).paused == f"lane:{LANE}"
        assert lanes.finish(LANE, park_until_ms=int(time.time() * 1000) + 60_000) == "parked"
        assert redis_client.llen(keys.wake) == 0


class TestHubSpotsCount:
    """The Redis limiter folds HubSpot's X-HubSpot-RateLimit-* view of the window into its own."""

    def test_requests_another_app_made_slow_every_worker_down(self, redis_client: redis_lib.Redis) -> None:
        """HubSpot counted 90 of 100 where HubLink sent 10: 80 placeholders, and ten more tokens at most."""
        limiter = RedisRateLimiter(redis_client, Keys(), margin=0.05)
        limit = RateLimit(100, 10.0)
        assert [limiter.acquire("o", limit) for _ in range(10)] == [0] * 10
        limiter.observe("o", limit, RateHeaders(max=100, remaining=10, interval_ms=10_000))
        assert redis_client.zcard(Keys().rate_window("o")) == 90
        assert [limiter.acquire("o", limit) for _ in range(10)] == [0] * 10
        assert limiter.acquire("o", limit) > 0

    def test_our_own_requests_at_the_windows_edge_are_not_taken_for_anothers(
        self, redis_client: redis_lib.Redis
    ) -> None:
        """Tokens taken 10.3 s ago, their requests still counted by HubSpot (they arrived later): no placeholder."""
        limiter = RedisRateLimiter(redis_client, Keys(), margin=0.05)
        limit = RateLimit(100, 10.0)
        key = Keys().rate_window("e")
        then = time.time() * 1000 - 10_300
        redis_client.zadd(key, {f"old-{i}": then for i in range(5)})
        assert limiter.acquire("e", limit) == 0
        # HubSpot still counts all six: the five arrived within its window, after their tokens were taken.
        limiter.observe("e", limit, RateHeaders(max=100, remaining=94, interval_ms=10_000))
        assert redis_client.zcard(key) == 6
