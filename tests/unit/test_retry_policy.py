"""The retry policy: done, retry with full jitter, defer without spending an attempt, or dead-letter."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hublink.domain import retry_policy as rp
from hublink.domain.errors import (
    ForbiddenError,
    HubSpotErrorDetail,
    HubSpotTimeoutError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    ValidationRejectedError,
)
from hublink.hubspot import error_for_status

POLICY = rp.RetryPolicy(
    base_s=2, cap_s=600, max_attempts=10, fresh_record_grace_s=120, daily_limit_defer_s=3600, rate_window_s=10
)


def decide(error: object, attempts: int = 1, age_s: float = 1000.0) -> rp.Decision:
    """Classify with a seeded random source."""
    return rp.classify(error, attempts=attempts, age_s=age_s, policy=POLICY, rng=random.Random(7))  # type: ignore[arg-type]


class TestBackoff:
    """Exponential backoff with full jitter."""

    @given(attempt=st.integers(min_value=1, max_value=40), seed=st.integers())
    def test_delay_is_within_full_jitter_bounds(self, attempt: int, seed: int) -> None:
        """The delay lies in [0, min(cap, base * 2**(attempt-1))]."""
        delay = rp.backoff_s(attempt, POLICY, random.Random(seed))
        assert 0 <= delay <= min(600, 2 * 2 ** (attempt - 1))

    def test_delays_are_spread_not_synchronised(self) -> None:
        """Many associations failing together get different delays (that is what full jitter is for)."""
        rng = random.Random(1)
        delays = {round(rp.backoff_s(5, POLICY, rng), 3) for _ in range(50)}
        assert len(delays) > 40


class TestClassify:
    """Each outcome class and its decision."""

    def test_success_is_done(self) -> None:
        """No error means done."""
        assert decide(None) == rp.Done()

    def test_transient_is_retried_until_the_budget_is_spent(self) -> None:
        """A timeout is retried below max_attempts and dead-lettered at it."""
        error = HubSpotTimeoutError(HubSpotErrorDetail(message="timeout"))
        assert isinstance(decide(error, attempts=9), rp.Retry)
        dead = decide(error, attempts=10)
        assert isinstance(dead, rp.DeadLetter)
        assert dead.reason.startswith("exhausted 10 attempts")

    def test_server_hint_sets_the_earliest_retry(self) -> None:
        """A Retry-After hint of 30 s is never undercut by the jittered backoff."""
        decision = decide(ServerError(HubSpotErrorDetail(status=503), retry_after_s=30.0), attempts=1)
        assert isinstance(decision, rp.Retry)
        assert decision.delay_s >= 30.0

    def test_locked_waits_at_least_two_seconds(self) -> None:
        """A 423 is retried no sooner than 2 s, as HubSpot asks."""
        decision = decide(error_for_status(423, {}, {}, 0.0), attempts=1)
        assert isinstance(decision, rp.Retry)
        assert decision.delay_s >= 2.0

    def test_permanent_is_dead_lettered_at_once(self) -> None:
        """A 403 is dead-lettered after one attempt."""
        assert isinstance(decide(ForbiddenError(HubSpotErrorDetail(status=403))), rp.DeadLetter)

    @pytest.mark.parametrize(
        "error",
        [
            NotFoundError(HubSpotErrorDetail(status=404)),
            ValidationRejectedError(
                HubSpotErrorDetail(
                    status=400, category="VALIDATION_ERROR", context={"INVALID_OBJECT_IDS": ["CONTACT=1 is not valid"]}
                )
            ),
        ],
    )
    def test_fresh_record_misses_are_retried_inside_the_grace_only(self, error: object) -> None:
        """404 / INVALID_OBJECT_IDS is retried within the grace, and dead-lettered after it."""
        assert isinstance(decide(error, age_s=30), rp.Retry)
        assert isinstance(decide(error, age_s=121), rp.DeadLetter)

    def test_other_validation_errors_are_permanent_even_when_fresh(self) -> None:
        """A 400 that is not about invalid ids is dead-lettered even right after the event."""
        error = ValidationRejectedError(HubSpotErrorDetail(status=400, category="VALIDATION_ERROR"))
        assert isinstance(decide(error, age_s=1), rp.DeadLetter)

    def test_daily_limit_defers_for_the_configured_time(self) -> None:
        """A DAILY 429 defers by daily_limit_defer_s."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="DAILY"))
        assert decide(error) == rp.Defer(3600, "rate-limited: DAILY")

    def test_rolling_limit_with_retry_after(self) -> None:
        """A 429 with Retry-After defers exactly that long."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="TEN_SECONDLY_ROLLING"), 3.0)
        assert decide(error) == rp.Defer(3.0, "rate-limited: TEN_SECONDLY_ROLLING")

    def test_rolling_limit_without_retry_after_waits_the_window(self) -> None:
        """A 429 without Retry-After defers by the rate window."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="TEN_SECONDLY_ROLLING"))
        assert decide(error) == rp.Defer(10, "rate-limited: TEN_SECONDLY_ROLLING")

    def test_rate_limits_never_exhaust_the_budget(self) -> None:
        """Even at the attempt limit, a 429 defers rather than dead-letters."""
        error = RateLimitedError(HubSpotErrorDetail(status=429, policy_name="TEN_SECONDLY_ROLLING"))
        assert isinstance(decide(error, attempts=50), rp.Defer)
