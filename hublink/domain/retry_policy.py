"""What to do after an attempt: done, retry after a delay, defer without spending an attempt, or dead-letter.

Pure: the caller passes the time and the random source, so every branch is testable and the job never
sleeps. Server hints win over defaults: a Retry-After sets the earliest retry, a 429 without one waits
out the rolling window, and a ``DAILY`` 429 defers until about the daily reset.

Backoff is exponential with full jitter, ``delay = uniform(0, min(cap, base * 2**(attempt - 1)))``:
full jitter because many associations fail together (a HubSpot outage fails whole batches) and spreading
their retries evenly is what keeps the recovery from becoming a 429 storm.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hublink.domain.errors import (
    AppUninstalledError,
    AssociationLimitError,
    DeliveryError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RecordDeletedError,
    ServerError,
    TransientError,
    ValidationRejectedError,
)

#: The dead-letter reason of an input past an association limit: retrying cannot help until an admin raises
#: the limit or an association is removed, so it is neither retried nor isolated by splitting its batch.
ASSOCIATION_LIMIT_REASON = "association_limit"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """The retry knobs (from Settings); defaults are the documented ones."""

    base_s: float = 2.0
    cap_s: float = 600.0
    max_attempts: int = 10
    fresh_record_grace_s: float = 120.0
    daily_limit_defer_s: float = 3600.0
    rate_window_s: float = 10.0
    #: The longest a server hint (Retry-After) may defer: a 503 saying "a year" must not park work for one.
    max_retry_after_s: float = 3600.0

    def capped(self, hint_s: float) -> float:
        """A server's Retry-After hint, within ``max_retry_after_s``."""
        return min(hint_s, self.max_retry_after_s)


@dataclass(frozen=True, slots=True)
class Done:
    """HubSpot has the association."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again after ``delay_s``; the failed attempt counts against the budget."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Defer:
    """Try again after ``delay_s`` without spending an attempt (rate limits are not the pair's fault)."""

    delay_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Stop: the association goes to the dead-letter store with ``reason``."""

    reason: str


Decision = Done | Retry | Defer | DeadLetter


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full-jitter delay before retry number ``attempt`` (1 = the first retry)."""
    # The exponent is bounded: 2.0 ** 1024 overflows, and HUBLINK_MAX_ATTEMPTS has no upper limit.
    exponent = min(max(attempt - 1, 0), 1023)
    ceiling = min(policy.cap_s, policy.base_s * 2.0**exponent)
    return rng.uniform(0, ceiling)


def is_fresh_record_miss(error: DeliveryError) -> bool:
    """True for the answers HubSpot gives about records that may not be visible yet."""
    if isinstance(error, NotFoundError):
        return True
    if isinstance(error, ValidationRejectedError):
        context = error.detail.context
        return "INVALID_OBJECT_IDS" in context or error.detail.sub_category == "INVALID_OBJECT_IDS"
    return False


def classify(
    error: DeliveryError | None,
    *,
    attempts: int,
    age_s: float,
    policy: RetryPolicy,
    rng: random.Random,
    daily_reset_s: float | None = None,
) -> Decision:
    """Decide the next step for one association.

    ``attempts`` counts attempts made including this one; ``age_s`` is the time since the source event
    (the fresh-record grace is measured from it); ``daily_reset_s`` is how long until the account's daily
    limit resets (its next local midnight), which a ``DAILY`` 429 waits for (``daily_limit_defer_s``
    when unknown). Server hints are capped by ``max_retry_after_s``.
    """
    if error is None:
        return Done()
    if isinstance(error, RateLimitedError):
        if error.policy == "DAILY":
            wait = daily_reset_s if daily_reset_s is not None else policy.daily_limit_defer_s
            return Defer(wait, "rate-limited: DAILY")
        wait = policy.capped(error.retry_after_s) if error.retry_after_s is not None else policy.rate_window_s
        return Defer(wait, f"rate-limited: {error.policy}")
    if isinstance(error, RecordDeletedError):
        # Nothing to retry: the record is gone (a restore would make the dead letter worth replaying).
        return DeadLetter("record_deleted")
    if isinstance(error, AssociationLimitError):
        return DeadLetter(ASSOCIATION_LIMIT_REASON)
    if isinstance(error, AppUninstalledError):
        # The portal's work waited out the hold (hublink.delivery.circuit): nothing to retry until a reinstall.
        return DeadLetter("app_uninstalled")
    if isinstance(error, PermanentError):
        if is_fresh_record_miss(error) and age_s < policy.fresh_record_grace_s:
            return _retry_or_exhausted(attempts, policy, rng, "fresh record not visible yet", hint=None)
        return DeadLetter(f"permanent: {type(error).__name__}")
    if isinstance(error, TransientError):
        hint = policy.capped(error.retry_after_s) if isinstance(error, ServerError) and error.retry_after_s else None
        return _retry_or_exhausted(attempts, policy, rng, f"transient: {type(error).__name__}", hint=hint)
    return _retry_or_exhausted(attempts, policy, rng, f"unclassified: {type(error).__name__}", hint=None)


def _retry_or_exhausted(
    attempts: int, policy: RetryPolicy, rng: random.Random, reason: str, *, hint: float | None
) -> Decision:
    if attempts >= policy.max_attempts:
        return DeadLetter(f"exhausted {attempts} attempts; last: {reason}")
    delay = backoff_s(attempts, policy, rng)
    if hint is not None:
        delay = max(delay, hint)
    return Retry(delay, reason)
