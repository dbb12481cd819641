"""The retry policy: done, retry with full jitter, defer without spending an attempt, or dead-letter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.delivery.hubspot import error_for_entry, error_for_status
from hublink.domain import retry_policy as rp
from hublink.domain.errors import (
    AuthError,
    ConnectionFailedError,
    DeliveryError,
    ForbiddenError,
    HubSpotErrorDetail,
    HubSpotTimeoutError,
    LookupAmbiguousError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServerError,
    TransientError,
    ValidationRejectedError,
)
from tests.unit.strategies import attempt_numbers, backoff_knobs, seeds

#: The documented defaults (docs/reference/configuration.md), spelled out so a changed default fails here.
POLICY = rp.RetryPolicy(
    base_s=2.0, cap_s=600.0, max_attempts=10, fresh_record_grace_s=120.0, daily_limit_defer_s=3600.0, rate_window_s=10.0
)
#: HubSpot's invalid-id answer (docs/reference/hubspot.md §3.1), as the body of a 400.
INVALID_IDS_BODY = {
    "status": "error",
    "message": "One or more associations are invalid",
    "context": {"INVALID_OBJECT_IDS": ["CONTACT=38374264688 is not valid"], "objectId": ["38374264688"]},
    "category": "VALIDATION_ERROR",
}


class Ceiling(random.Random):
    """A random source whose uniform(a, b) always answers b: exposes the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        """Return the top of the range."""
        return b


class Floor(random.Random):
    """A random source whose uniform(a, b) always answers a: the luckiest possible jitter."""

    def uniform(self, a: float, b: float) -> float:
        """Return the bottom of the range."""
        return a


def decide(
    error: DeliveryError | None,
    *,
    attempts: int = 1,
    age_s: float = 1000.0,
    rng: random.Random | None = None,
    policy: rp.RetryPolicy = POLICY,
) -> rp.Decision:
    """Classify ``error`` under POLICY with a seeded random source."""
    return rp.classify(error, attempts=attempts, age_s=age_s, policy=policy, rng=rng or random.Random(7))


def ceiling(attempt: int, base_s: float, cap_s: float) -> float:
    """The documented full-jitter ceiling, min(cap, base * 2**(attempt-1)), computed independently."""
    return min(cap_s, base_s * 2.0 ** (attempt - 1))


def detail(status: int | None = None, **fields: object) -> HubSpotErrorDetail:
    """A HubSpotErrorDetail with ``status`` and ``fields``."""
    return HubSpotErrorDetail(status=status, **fields)  # type: ignore[arg-type]


class TestBackoff:
    """backoff_s: exponential backoff with full jitter, uniform(0, min(cap, base * 2**(attempt-1)))."""

    @given(attempt=attempt_numbers, knobs=backoff_knobs, seed=seeds)
    def test_delay_is_within_the_full_jitter_bounds(self, attempt: int, knobs: tuple[float, float], seed: int) -> None:
        """For any attempt, base, cap and seed, the delay lies in [0, min(cap, base * 2**(attempt-1))]."""
        base_s, cap_s = knobs
        policy = rp.RetryPolicy(base_s=base_s, cap_s=cap_s)
        delay = rp.backoff_s(attempt, policy, random.Random(seed))
        assert 0.0 <= delay <= ceiling(attempt, base_s, cap_s)

    @given(attempt=attempt_numbers, seed=seeds)
    def test_the_same_seed_gives_the_same_delay(self, attempt: int, seed: int) -> None:
        """The policy is pure: the same attempt and seed always give the same delay."""
        assert rp.backoff_s(attempt, POLICY, random.Random(seed)) == rp.backoff_s(attempt, POLICY, random.Random(seed))

    def test_ceilings_double_from_base_up_to_the_cap(self) -> None:
        """With the defaults, the ceilings of retries 1 to 11 are 2, 4, 8, ... 512, then 600 s."""
        ceilings = [rp.backoff_s(n, POLICY, Ceiling()) for n in range(1, 12)]
        assert ceilings == [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]

    def test_the_floor_is_zero(self) -> None:
        """Full jitter may retry at once: the bottom of the range is 0, not half the ceiling."""
        assert rp.backoff_s(6, POLICY, Floor()) == 0.0

    def test_delays_are_spread_across_the_whole_range(self) -> None:
        """Many associations failing together get delays spread over [0, ceiling], not bunched at one end."""
        rng = random.Random(1)
        delays = [rp.backoff_s(5, POLICY, rng) for _ in range(500)]
        assert min(delays) < 32 * 0.1
        assert max(delays) > 32 * 0.9
        assert len({round(d, 6) for d in delays}) > 450

    @pytest.mark.parametrize("attempt", [1025, 5000])
    def test_a_very_late_attempt_waits_the_cap(self, attempt: int) -> None:
        """Retry 1025 or later (HUBLINK_MAX_ATTEMPTS has no upper bound) waits the cap instead of overflowing."""
        assert rp.backoff_s(attempt, POLICY, Ceiling()) == POLICY.cap_s


class TestDone:
    """Success."""

    def test_no_error_is_done(self) -> None:
        """No error means the association is done, whatever the attempt count or age."""
        assert decide(None, attempts=POLICY.max_attempts + 5, age_s=1e9) == rp.Done()


class TestTransient:
    """Transient failures are retried with backoff until the attempt budget is spent."""

    @pytest.mark.parametrize(
        "error",
        [
            HubSpotTimeoutError(detail(message="PUT /x: ConnectTimeout")),
            ConnectionFailedError(detail(message="PUT /x: ConnectionError")),
            ServerError(detail(503)),
            TransientError(detail(message="pair missing from HubSpot's answer")),
        ],
        ids=lambda e: type(e).__name__,
    )
    def test_transient_errors_are_retried(self, error: DeliveryError) -> None:
        """Timeouts, refused connections, 5xx and unexplained batch misses are retried, naming the class."""
        decision = decide(error, attempts=1)
        assert isinstance(decision, rp.Retry)
        assert decision.reason == f"transient: {type(error).__name__}"

    @given(attempts=st.integers(min_value=1, max_value=POLICY.max_attempts - 1), seed=seeds)
    def test_a_retry_waits_the_backoff_of_its_attempt(self, attempts: int, seed: int) -> None:
        """The delay after attempt n is the full-jitter backoff for n, drawn from the given random source."""
        decision = decide(ServerError(detail(500)), attempts=attempts, rng=random.Random(seed))
        assert decision == rp.Retry(rp.backoff_s(attempts, POLICY, random.Random(seed)), "transient: ServerError")
        assert 0.0 <= decision.delay_s <= ceiling(attempts, 2.0, 600.0)

    def test_the_last_attempt_below_the_budget_is_still_retried(self) -> None:
        """Attempt 9 of 10 is retried."""
        assert isinstance(decide(ServerError(detail(502)), attempts=9), rp.Retry)

    @given(attempts=st.integers(min_value=POLICY.max_attempts, max_value=10_000))
    def test_exhaustion_dead_letters(self, attempts: int) -> None:
        """At or past max_attempts a transient failure is dead-lettered, saying how many attempts were made."""
        decision = decide(HubSpotTimeoutError(detail(message="timeout")), attempts=attempts)
        assert isinstance(decision, rp.DeadLetter)
        assert decision.reason.startswith(f"exhausted {attempts} attempts")

    @given(hint=st.floats(min_value=0.0, max_value=86_400.0), seed=seeds, attempts=st.integers(1, 9))
    def test_a_server_hint_is_never_undercut(self, hint: float, seed: int, attempts: int) -> None:
        """A ServerError's retry_after hint sets the earliest retry (up to the cap), whatever the jitter drew."""
        decision = decide(ServerError(detail(477), retry_after_s=hint), attempts=attempts, rng=random.Random(seed))
        assert isinstance(decision, rp.Retry)
        assert decision.delay_s >= min(hint, POLICY.max_retry_after_s)

    @pytest.mark.parametrize("status", [429, 503])
    def test_a_year_long_retry_after_waits_at_most_the_cap(self, status: int) -> None:
        """Retry-After: 31536000 on a 429 or a 503 defers by at most HUBLINK_MAX_RETRY_AFTER_S (3600 s)."""
        error = error_for_status(status, {}, {"Retry-After": "31536000"}, 0.0)
        decision = decide(error, attempts=1, rng=Ceiling())
        assert isinstance(decision, rp.Retry | rp.Defer)
        assert decision.delay_s <= 3600.0

    def test_a_daily_429_waits_for_the_accounts_midnight(self) -> None:
        """A DAILY 429 defers exactly until the reset the caller computed from the account's time zone."""
        error = RateLimitedError(detail(429, policy_name="DAILY"), retry_after_s=5.0)
        decision = rp.classify(error, attempts=1, age_s=0, policy=POLICY, rng=Ceiling(), daily_reset_s=4321.0)
        assert decision == rp.Defer(4321.0, "rate-limited: DAILY")

    def test_a_small_hint_does_not_shorten_the_backoff(self) -> None:
        """A hint shorter than the drawn backoff leaves the backoff as it was."""
        decision = decide(ServerError(detail(503), retry_after_s=0.5), attempts=5, rng=Ceiling())
        assert decision == rp.Retry(32.0, "transient: ServerError")

    @given(seed=seeds, attempts=st.integers(1, 9))
    def test_locked_waits_at_least_two_seconds(self, seed: int, attempts: int) -> None:
        """A 423 from HubSpot (records locked by a sync) is retried no sooner than 2 s, as HubSpot asks."""
        error = error_for_status(423, {"status": "error", "message": "locked"}, {}, 0.0)
        decision = decide(error, attempts=attempts, rng=random.Random(seed))
        assert isinstance(decision, rp.Retry)
        assert decision.delay_s >= 2.0

    def test_migration_in_progress_honours_retry_after(self) -> None:
        """A 477 with Retry-After: 3600 is retried no sooner than an hour."""
        error = error_for_status(477, {"message": "Migration in progress"}, {"Retry-After": "3600"}, 0.0)
        decision = decide(error, attempts=1, rng=Floor())
        assert isinstance(decision, rp.Retry)
        assert decision.delay_s == 3600.0

    def test_an_unclassified_delivery_error_is_retried_not_dropped(self) -> None:
        """A DeliveryError of no known kind is retried (and dead-lettered when the budget runs out)."""
        assert isinstance(decide(DeliveryError(detail(message="?")), attempts=1), rp.Retry)
        assert isinstance(decide(DeliveryError(detail(message="?")), attempts=10), rp.DeadLetter)


class TestPermanent:
    """Permanent failures are dead-lettered at once, except fresh-record misses inside the grace."""

    @pytest.mark.parametrize(
        "error",
        [
            AuthError(detail(401)),
            ForbiddenError(detail(403, context={"missingScopes": ["crm.objects.deals.write"]})),
            ValidationRejectedError(detail(409, category="CONFLICT")),
            ValidationRejectedError(detail(414)),
            ValidationRejectedError(detail(400, category="VALIDATION_ERROR", message="bad property")),
            PermanentError(detail(525)),
            LookupAmbiguousError(detail(message="3 deals match")),
        ],
        ids=lambda e: f"{type(e).__name__}-{e.status}",
    )
    def test_permanent_errors_are_dead_lettered_on_the_first_attempt(self, error: DeliveryError) -> None:
        """401, 403, 409, 414, a 400 not about ids, 525 and an ambiguous lookup dead-letter at once, even when fresh."""
        decision = decide(error, attempts=1, age_s=0.0)
        assert decision == rp.DeadLetter(f"permanent: {type(error).__name__}")

    @pytest.mark.parametrize(
        "error",
        [
            error_for_status(404, {"message": "Not found", "category": "OBJECT_NOT_FOUND"}, {}, 0.0),
            error_for_status(400, INVALID_IDS_BODY, {}, 0.0),
            error_for_entry(INVALID_IDS_BODY, None),
            ValidationRejectedError(detail(400, category="VALIDATION_ERROR", sub_category="INVALID_OBJECT_IDS")),
        ],
        ids=["404", "400-INVALID_OBJECT_IDS", "errors[]-INVALID_OBJECT_IDS", "subCategory-INVALID_OBJECT_IDS"],
    )
    def test_fresh_record_misses_are_retried_inside_the_grace_and_dead_lettered_after(
        self, error: DeliveryError
    ) -> None:
        """A 404 or VALIDATION_ERROR naming INVALID_OBJECT_IDS is retried within the grace and dead-lettered past it."""
        inside = decide(error, attempts=1, age_s=119.0)
        assert isinstance(inside, rp.Retry)
        assert inside.reason == "fresh record not visible yet"
        assert decide(error, attempts=1, age_s=121.0) == rp.DeadLetter(f"permanent: {type(error).__name__}")

    def test_a_fresh_record_miss_still_spends_attempts(self) -> None:
        """Inside the grace, a 404 at the last attempt is dead-lettered as exhausted."""
        decision = decide(NotFoundError(detail(404)), attempts=POLICY.max_attempts, age_s=1.0)
        assert isinstance(decision, rp.DeadLetter)
        assert decision.reason.startswith("exhausted")

    def test_the_grace_is_configurable(self) -> None:
        """With a 10 s grace, a 404 at 30 s is dead-lettered."""
        policy = rp.RetryPolicy(fresh_record_grace_s=10.0)
        assert isinstance(decide(NotFoundError(detail(404)), age_s=30.0, policy=policy), rp.DeadLetter)


class TestRateLimited:
    """A 429 defers without spending an attempt: the limit is not the pair's fault."""

    def test_daily_limit_defers_for_the_configured_time(self) -> None:
        """A 429 with policyName DAILY defers by daily_limit_defer_s."""
        error = error_for_status(429, {"errorType": "RATE_LIMIT", "policyName": "DAILY"}, {}, 0.0)
        assert decide(error) == rp.Defer(3600.0, "rate-limited: DAILY")

    def test_daily_limit_ignores_a_short_retry_after(self) -> None:
        """A DAILY 429 defers to about the daily reset even if a Retry-After of 5 s came with it."""
        error = error_for_status(429, {"policyName": "DAILY"}, {"Retry-After": "5"}, 0.0)
        assert decide(error) == rp.Defer(3600.0, "rate-limited: DAILY")

    def test_retry_after_sets_the_deferral(self) -> None:
        """A TEN_SECONDLY_ROLLING 429 with Retry-After: 3 defers exactly 3 s."""
        error = error_for_status(429, {"policyName": "TEN_SECONDLY_ROLLING"}, {"Retry-After": "3"}, 0.0)
        assert decide(error) == rp.Defer(3.0, "rate-limited: TEN_SECONDLY_ROLLING")

    def test_without_retry_after_the_rate_window_is_waited_out(self) -> None:
        """A 429 without Retry-After defers by the rate window (10 s)."""
        error = error_for_status(429, {"policyName": "TEN_SECONDLY_ROLLING"}, {}, 0.0)
        assert decide(error) == rp.Defer(10.0, "rate-limited: TEN_SECONDLY_ROLLING")

    def test_the_search_limit_is_named_from_the_message(self) -> None:
        """A 429 saying 'secondly limit' with no policyName defers as SECONDLY."""
        error = error_for_status(429, {"message": "You have reached your secondly limit."}, {}, 0.0)
        assert decide(error) == rp.Defer(10.0, "rate-limited: SECONDLY")

    @given(attempts=st.integers(min_value=1, max_value=10_000), age_s=st.floats(0, 1e7))
    def test_rate_limits_never_exhaust_the_budget(self, attempts: int, age_s: float) -> None:
        """Whatever the attempt count and age, a 429 defers rather than dead-letters."""
        error = RateLimitedError(detail(429, policy_name="TEN_SECONDLY_ROLLING"))
        assert isinstance(decide(error, attempts=attempts, age_s=age_s), rp.Defer)
