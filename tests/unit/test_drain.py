"""The drain loop on in-memory twins: claim, token, call, settle, park and hand on, with a fake clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hublink.delivery.credentials import Credential, StaticCredentials
from hublink.delivery.drain import DrainSettings, LaneDrainer
from hublink.delivery.hubspot import CallResult, error_for_status
from hublink.delivery.lookups import Resolution
from hublink.delivery.rate_limit import MemoryLimiter
from hublink.domain import retry_policy as rp
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import (
    DeliveryError,
    HubSpotErrorDetail,
    RateHeaders,
    RateLimitedError,
    ServerError,
    TokenWaitTooLongError,
    ValidationRejectedError,
)
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import LookupRequest
from hublink.domain.rules import Fixed, SearchLookup
from hublink.intake.record_fates import MemoryRecordFates
from hublink.lanes import MemoryLanes
from hublink.store.counters import CounterOps
from hublink.store.keys import Keys

START = 1_790_000_000.0
LANE = "_|deals|contacts"


class Clock:
    """A fake wall clock that only moves when something sleeps or a test advances it."""

    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> float:
        """The current fake time (epoch seconds)."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance the clock instead of sleeping."""
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeHubSpot:
    """Answers association calls from a script; records every call. Empty script: every pair is linked."""

    script: list[Callable[[Sequence[tuple[str, str]]], CallResult]] = field(default_factory=list)
    calls: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def _answer(self, pairs: list[tuple[str, str]]) -> CallResult:
        """The next scripted answer, or all linked."""
        if self.script:
            return self.script.pop(0)(pairs)
        return CallResult(linked=frozenset(pairs))

    def associate_default(
        self, token: str, from_type: str, from_id: str, to_type: str, to_id: str, *, base_url: str | None = None
    ) -> CallResult:
        """The single PUT."""
        self.calls.append(("single", [(from_id, to_id)]))
        return self._answer([(from_id, to_id)])

    def associate_default_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        pairs: Sequence[tuple[str, str]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """The batch endpoint."""
        self.calls.append(("batch", list(pairs)))
        return self._answer(list(pairs))


@dataclass
class FakeResolver:
    """Resolves every lookup to a fixed record, taking a search token first."""

    search_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(5, 1.0))
    to_id: str = "900"

    def resolve(self, request: LookupRequest, credential: Credential, take_token: Callable[[str], None]) -> Resolution:
        """Take a search token, then answer the association it finds."""
        take_token("search")
        assert isinstance(request.from_side, Fixed)
        return Resolution(association=request.resolved(request.from_side.object_id, self.to_id))


def raise_(error: DeliveryError) -> Callable[[Sequence[tuple[str, str]]], CallResult]:
    """A scripted answer that raises ``error`` for the whole call."""

    def answer(pairs: Sequence[tuple[str, str]]) -> CallResult:
        """Fail the call."""
        raise error

    return answer


def association(n: int, *, at: float = START) -> AssociationRequest:
    """deals/n → contacts/(1000 + n), received at ``at``."""
    return AssociationRequest.create(
        from_object_type="deals",
        from_object_id=str(n),
        to_object_type="contacts",
        to_object_id=str(1000 + n),
        source="api",
        received_at=at,
    )


def drainer(
    lanes: MemoryLanes,
    hubspot: FakeHubSpot,
    clock: Clock,
    *,
    limiter: MemoryLimiter | None = None,
    batch_size: int = 100,
    rate_limit: RateLimit = RateLimit(100, 10.0),
    resolver: FakeResolver | None = None,
    fates: MemoryRecordFates | None = None,
) -> LaneDrainer:
    """A drainer on in-memory parts."""
    return LaneDrainer(
        lanes=lanes,
        limiter=limiter or MemoryLimiter(clock=clock),
        client=hubspot,
        credentials=StaticCredentials("pat-test-token"),
        resolver=resolver or FakeResolver(),
        policy=rp.RetryPolicy(max_attempts=3),
        settings=DrainSettings(batch_size=batch_size, rate_limit=rate_limit, max_limiter_wait_ms=500, budget_s=10.0),
        rng=random.Random(7),
        clock=clock,
        sleep=clock.sleep,
        metrics=CounterOps(Keys("hl:")),
        fates=fates,
    )


class TestDrainLoop:
    """One drain empties its lane a batch call at a time and leaves it in the right state."""

    def test_a_lone_association_goes_out_through_the_single_put(self) -> None:
        """One pending association: one single PUT, linked, the lane left idle."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(1))
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == [("single", [("1", "1001")])]
        assert (report.linked, report.calls, report.ended) == (1, 1, "idle")
        assert not lanes.records

    def test_a_backlog_goes_out_in_batches_of_the_batch_size(self) -> None:
        """250 pending with a batch size of 100: three batch calls (100, 100, 50), all linked."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 251):
            lanes.add(association(n))
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock, batch_size=100).drain(LANE)
        assert [len(pairs) for _, pairs in hubspot.calls] == [100, 100, 50]
        assert report.linked == 250 and not lanes.records

    def test_a_failed_call_is_retried_later_and_the_lane_is_left_scheduled(self) -> None:
        """A 503 for the whole call: every association gets a later due time and one attempt spent."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        ids = [lanes.add(association(n)) for n in range(1, 4)]
        hubspot = FakeHubSpot(script=[raise_(ServerError(HubSpotErrorDetail(status=503)))])
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert report.retried == 3 and report.ended == "scheduled"
        assert all(lanes.records[i].attempts == 1 and lanes.due[i] > START * 1000 for i in ids)

    def test_a_429_blocks_the_bucket_and_parks_the_lane_without_spending_attempts(self) -> None:
        """After a 429 with Retry-After 30 s the next claim finds the bucket shut: the lane parks."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        limiter = MemoryLimiter(clock=clock)
        ids = [lanes.add(association(n)) for n in range(1, 3)]
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="SECONDLY"), retry_after_s=30.0)
        hubspot = FakeHubSpot(script=[raise_(error)])
        report = drainer(lanes, hubspot, clock, limiter=limiter).drain(LANE)
        assert report.deferred == 2
        bucket = StaticCredentials("pat-test-token").for_portal(None).bucket
        assert limiter.blocked_until_ms[bucket] == int(START * 1000) + 30_000
        assert all(lanes.records[i].attempts == 0 for i in ids)
        assert len(hubspot.calls) == 1

    def test_a_short_limiter_wait_is_slept_and_a_long_one_parks_the_lane(self) -> None:
        """With 2 requests per 10 s: the third call would wait 10 s, longer than 500 ms, so the lane parks."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 4):
            lanes.add(association(n))
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock, batch_size=1, rate_limit=RateLimit(2, 10.0)).drain(LANE)
        assert len(hubspot.calls) == 2
        assert report.ended == "parked" and len(lanes.records) == 1
        (waiting,) = lanes.records.values()
        assert waiting.attempts == 0  # a park spends no attempt

    def test_with_no_token_near_the_lane_parks_before_claiming(self) -> None:
        """A spent bucket parks the lane untouched: nothing claimed, so nothing handed back and no state written."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        limiter = MemoryLimiter(clock=clock)
        for n in range(1, 4):
            lanes.add(association(n))
        bucket = StaticCredentials("pat-test-token").for_portal(None).bucket
        for _ in range(2):
            assert limiter.acquire(bucket, RateLimit(2, 10.0)) == 0
        claims: list[str] = []
        claim = lanes.claim
        lanes.claim = lambda lane, limit, **kw: claims.append(lane) or claim(lane, limit, **kw)  # type: ignore[method-assign]
        report = drainer(lanes, FakeHubSpot(), clock, limiter=limiter, rate_limit=RateLimit(2, 10.0)).drain(LANE)
        assert report.ended == "parked" and report.calls == 0
        assert claims == [] and report.deferred == 0
        assert all(record.attempts == 0 and not record.history for record in lanes.records.values())

    def test_the_time_budget_hands_the_lane_on(self) -> None:
        """A drain past its budget leaves the rest for the next drain job (handed on, not dropped)."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 6):
            lanes.add(association(n))

        def slow(pairs: Sequence[tuple[str, str]]) -> CallResult:
            """A call that takes 6 s of the budget."""
            clock.now += 6.0  # each call takes 6 s of the 10 s budget
            return CallResult(linked=frozenset(pairs))

        hubspot = FakeHubSpot(script=[slow, slow, slow])
        report = drainer(lanes, hubspot, clock, batch_size=1).drain(LANE)
        assert report.linked == 2 and report.ended == "handed-on"
        assert len(lanes.records) == 3

    def test_exhausted_attempts_end_in_a_dead_letter_with_every_attempt(self) -> None:
        """Three 500s with a budget of three attempts: a dead letter holding all three, no fourth call."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        association_id = lanes.add(association(1))
        error = ServerError(HubSpotErrorDetail(status=500))
        hubspot = FakeHubSpot(script=[raise_(error)] * 3)
        d = drainer(lanes, hubspot, clock)
        for _ in range(3):
            d.drain(LANE)
            clock.now = max(lanes.due.values(), default=clock.now * 1000) / 1000 + 1
        letter = lanes.dead_letters[association_id]
        assert letter.attempt_count == 3 and [a["status"] for a in letter.attempts] == [500, 500, 500]
        assert len(hubspot.calls) == 3

    def test_lookups_are_resolved_and_their_association_queued_in_its_own_lane(self) -> None:
        """A lookup lane's item resolves through the search bucket and becomes an association."""
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
        report = drainer(lanes, FakeHubSpot(), clock).drain(request.lane)
        assert report.calls == 1
        (queued,) = lanes.records.values()
        assert isinstance(queued.request, AssociationRequest)
        assert queued.request.pair == ("5", "900")

    def test_a_lookup_that_must_wait_too_long_parks_the_rest(self) -> None:
        """When the search bucket asks for a long wait, the claimed lookups go back untouched."""
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

        class Waiting(FakeResolver):
            """A resolver whose token never comes in time."""

            def resolve(
                self, request: LookupRequest, credential: Credential, take_token: Callable[[str], None]
            ) -> Resolution:
                """Always too long a wait."""
                raise TokenWaitTooLongError(5000)

        report = drainer(lanes, FakeHubSpot(), clock, resolver=Waiting()).drain(request.lane)
        assert report.ended == "parked"
        (waiting,) = lanes.records.values()
        assert waiting.attempts == 0 and lanes.due[waiting.association_id] == int(START * 1000) + 5000


def invalid_ids_400(*entries: str) -> ValidationRejectedError:
    """HubSpot's whole-batch refusal naming invalid ids (docs/reference/hubspot.md §8)."""
    body = {
        "status": "error",
        "message": "One or more associations are invalid",
        "category": "VALIDATION_ERROR",
        "context": {"INVALID_OBJECT_IDS": list(entries)} if entries else {},
    }
    error = error_for_status(400, body, {}, START)
    assert isinstance(error, ValidationRejectedError)
    return error


def refuse_pairs_holding(*bad: str, naming: bool = True) -> Callable[[Sequence[tuple[str, str]]], CallResult]:
    """An answer that refuses the whole call when it holds a bad contact id (naming it, or not), else links all."""

    def answer(pairs: Sequence[tuple[str, str]]) -> CallResult:
        """Refuse or link."""
        hits = [t for _, t in pairs if t in bad]
        if hits:
            raise invalid_ids_400(*(f"CONTACT={t} is not valid" for t in hits)) if naming else invalid_ids_400()
        return CallResult(linked=frozenset(pairs))

    return answer


class TestHubSpotAsItIs:
    """Batch failures isolated to the guilty pairs, identical pairs coalesced, daily budgets kept."""

    def test_one_invalid_id_among_100_costs_two_calls_and_fails_only_its_pair(self) -> None:
        """A 400 naming CONTACT=1050: that pair retries in the fresh-record grace, 99 link on the second call."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        ids = {n: lanes.add(association(n)) for n in range(1, 101)}
        hubspot = FakeHubSpot(script=[refuse_pairs_holding("1050")] * 5)
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert [len(pairs) for _, pairs in hubspot.calls] == [100, 99]
        assert report.linked == 99 and report.retried == 1
        (left,) = lanes.records.values()
        assert left.association_id == ids[50] and left.attempts == 1
        assert "CONTACT=1050 is not valid" in left.history[-1]["message"]

    def test_the_innocent_pairs_spend_no_attempt(self) -> None:
        """The 99 pairs that went again were linked on their first attempt: nothing was recorded against them."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 11):
            lanes.add(association(n))
        hubspot = FakeHubSpot(script=[refuse_pairs_holding("1003", "1007"), refuse_pairs_holding("1003", "1007")])
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert report.linked == 8 and report.retried == 2 and len(hubspot.calls) == 2

    def test_a_refusal_naming_nothing_is_split_until_the_guilty_pair_is_found(self) -> None:
        """A 400 naming no id: halves are tried (at most 2*ceil(log2 n) extra calls); the pair found is dead."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for n in range(1, 101):
            lanes.add(association(n))
        hubspot = FakeHubSpot(script=[refuse_pairs_holding("1077", naming=False)] * 30)
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert report.linked == 99 and report.dead == 1  # a 400 that names no invalid id is permanent
        assert len(hubspot.calls) - 1 <= 2 * math.ceil(math.log2(100))
        assert hubspot.calls[-1][1] != [] and all(len(set(p)) == len(p) for _, p in hubspot.calls)

    def test_identical_pairs_go_as_one_input_and_each_id_settles(self) -> None:
        """50 requests for one pair: one single PUT, 50 associations done."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        for _ in range(50):
            lanes.add(association(7))
        hubspot = FakeHubSpot()
        report = drainer(lanes, hubspot, clock).drain(LANE)
        assert hubspot.calls == [("single", [("7", "1007")])]
        assert report.linked == 50 and not lanes.records

    def test_identical_pairs_share_a_failure_and_each_keeps_its_own_history(self) -> None:
        """Three copies of a pair HubSpot refuses with a 500: three retries, each with its own attempt."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        ids = [lanes.add(association(7)) for _ in range(3)]
        hubspot = FakeHubSpot(script=[raise_(ServerError(HubSpotErrorDetail(status=500)))])
        drainer(lanes, hubspot, clock).drain(LANE)
        assert len(hubspot.calls) == 1
        assert [lanes.records[i].attempts for i in ids] == [1, 1, 1]

    def test_a_nearly_spent_daily_budget_shuts_the_bucket_until_midnight(self) -> None:
        """Daily-Remaining at 4 % of the daily limit (reserve 5 %): the bucket waits for the UTC midnight."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        limiter = MemoryLimiter(clock=clock)
        lanes.add(association(1))
        rate = RateHeaders(100, 90, 10_000, daily=250_000, daily_remaining=10_000)

        def low(pairs: Sequence[tuple[str, str]]) -> CallResult:
            """Linked, with the daily headers low."""
            return CallResult(linked=frozenset(pairs), rate=rate)

        drainer(lanes, FakeHubSpot(script=[low]), clock, limiter=limiter).drain(LANE)
        bucket = StaticCredentials("pat-test-token").for_portal(None).bucket
        midnight_ms = (int(START // 86400) + 1) * 86400 * 1000
        assert limiter.blocked_until_ms[bucket] == midnight_ms

    def test_a_year_long_retry_after_blocks_the_bucket_for_at_most_the_cap(self) -> None:
        """A 429 with Retry-After 31536000 shuts the bucket for HUBLINK_MAX_RETRY_AFTER_S, not a year."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        limiter = MemoryLimiter(clock=clock)
        association_id = lanes.add(association(1))
        error = error_for_status(429, {"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "31536000"}, START)
        drainer(lanes, FakeHubSpot(script=[raise_(error)]), clock, limiter=limiter).drain(LANE)
        bucket = StaticCredentials("pat-test-token").for_portal(None).bucket
        assert limiter.blocked_until_ms[bucket] == int(START * 1000) + 3_600_000
        assert lanes.due[association_id] == int(START * 1000) + 3_600_000

    def test_a_pair_linked_moments_ago_is_not_sent_again(self) -> None:
        """Requests for one pair accepted before its link was confirmed, claimed by a later batch, settle done
        without a second call; one accepted after the link (a replay) is sent again."""
        clock = Clock()
        lanes = MemoryLanes(clock=clock)
        lanes.add(association(7))
        hubspot = FakeHubSpot()
        d = drainer(lanes, hubspot, clock)
        due_later = int((START + 2) * 1000)  # accepted now, claimed by the next batch
        later = [lanes.add(association(7), due_ms=due_later) for _ in range(3)]
        d.drain(LANE)
        clock.now += 5.0
        report = d.drain(LANE)
        assert len(hubspot.calls) == 1 and report.linked == 3
        assert all(i not in lanes.records for i in later)
        lanes.add(association(7))  # accepted after the link: a new intent (a replay), sent again
        d.drain(LANE)
        assert len(hubspot.calls) == 2


class TestLimiterMargin:
    """The safety margin is kept as time: the whole count in a window stretched by it, never rounded down."""

    def test_five_a_second_with_five_percent_allows_five_per_1053_ms(self) -> None:
        """Five calls at once, the sixth when the first is 1.053 s old: 4.75/s on average, not 4."""
        clock = Clock()
        limiter = MemoryLimiter(margin=0.05, clock=clock)
        limit = RateLimit(5, 1.0)
        assert [limiter.acquire("b", limit) for _ in range(5)] == [0] * 5
        assert limiter.acquire("b", limit) == 1052
        clock.now += 1.052
        assert limiter.wait_ms("b", limit) == 0 and limiter.acquire("b", limit) == 0

    def test_no_window_of_the_limits_length_ever_holds_more_than_the_limit(self) -> None:
        """Taking every token as soon as it frees, over a minute: any 1 s window holds at most 5."""
        clock = Clock()
        limiter = MemoryLimiter(margin=0.05, clock=clock)
        limit = RateLimit(5, 1.0)
        sent: list[float] = []
        while clock.now < START + 60:
            wait = limiter.acquire("b", limit)
            if wait == 0:
                sent.append(clock.now)
            else:
                clock.now += wait / 1000
        assert max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent) == 5
        # 95 % of the limit on average, plus the first window's burst: 5 + 57 windows of 1.053 s x 5.
        assert len(sent) == 5 + 57 * 5

    def test_a_peek_takes_nothing(self) -> None:
        """wait_ms says when a token may be free and leaves the bucket as it was."""
        clock = Clock()
        limiter = MemoryLimiter(clock=clock)
        limit = RateLimit(1, 10.0)
        assert limiter.wait_ms("b", limit) == 0
        assert limiter.wait_ms("b", limit) == 0
        assert limiter.acquire("b", limit) == 0
        assert limiter.wait_ms("b", limit) == 10_000
