"""Outcomes: what HubSpot's answer means for each claimed association, decided without any I/O.

The drain (``hublink.delivery.drain``) claims, calls and settles; everything it decides in between lives
here as pure functions of the answer, the clock and a random source: each association's fate (done, retry
at a time, deferred without spending an attempt, or dead-lettered) through ``domain.retry_policy``, the
attempt history entry it gains, the dead-letter record it becomes, the metric increments that ride along
in the same settle step, and how long a rate-limit bucket stays shut after a 429.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hublink.domain import retry_policy
from hublink.domain.associations import AssociationRequest, canonical_object_type
from hublink.domain.dead_letter import DeadLetter, DeadPair
from hublink.domain.errors import (
    AppUninstalledError,
    AssociationLimitError,
    DeliveryError,
    LookupAmbiguousError,
    LookupNoMatchError,
    LookupNoValueError,
    NotFoundError,
    RateLimitedError,
    RecordDeletedError,
    ValidationRejectedError,
)
from hublink.domain.lookups import LookupRequest, describe, target_type
from hublink.domain.times import iso
from hublink.lanes import Claimed, Outcome
from hublink.store.counters import CounterOps, Op

if TYPE_CHECKING:
    from hublink.delivery.hubspot import CallResult

#: Entries of attempt history kept per association (the newest); enough to see a pattern, bounded.
MAX_HISTORY = 50
#: Longest message kept in a history entry and in a dead letter (HubSpot's can be long; they are for people).
MAX_HISTORY_MESSAGE = 300
MAX_DEAD_LETTER_MESSAGE = 500


@dataclass(frozen=True, slots=True)
class Result:
    """One claimed association and what HubSpot said of it (``error`` None: linked)."""

    item: Claimed
    error: DeliveryError | None


@dataclass(slots=True)
class Tally:
    """How many associations of one settle step ended each way."""

    linked: int = 0
    retried: int = 0
    deferred: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class Settlement:
    """Everything one settle step writes, decided: outcomes, metric increments, dead letters, a tally."""

    outcomes: list[Outcome]
    ops: list[Op]
    tally: Tally
    dead_letters: list[DeadLetter] = field(default_factory=list)


def pair_outcome(item: Claimed, result: CallResult) -> DeliveryError | None:
    """What a call said of this item's pair (``CallResult.outcome``)."""
    return result.outcome(association_of(item).pair)


def association_of(item: Claimed) -> AssociationRequest:
    """The association a claimed item of an association lane holds."""
    assert isinstance(item.request, AssociationRequest), "association lanes hold associations"
    return item.request


def settle(
    results: Sequence[Result],
    *,
    now: float,
    policy: retry_policy.RetryPolicy,
    rng: random.Random,
    counters: CounterOps | None = None,
    daily_reset_s: float | None = None,
) -> Settlement:
    """Decide each result's fate at ``now``; a 429 spends no attempt. Pure: same inputs, same settlement.

    ``daily_reset_s``: how long until the account's daily limit resets (a ``DAILY`` 429 waits for it).
    """
    tally = Tally()
    outcomes: list[Outcome] = []
    letters: list[DeadLetter] = []
    for result in results:
        item, error = result.item, result.error
        if error is None:  # linked: nothing to classify (nearly every result of a 2,000-input call)
            tally.linked += 1
            outcomes.append(Outcome(item=item, kind="done"))
            continue
        request = item.request
        event_time = request.occurred_at or request.received_at or item.first_seen_ms / 1000
        # A 429 is not the pair's fault, and a deleted record's work ends without a call: no attempt spent.
        unspent = isinstance(error, RateLimitedError | RecordDeletedError | AppUninstalledError)
        attempts = item.attempts + (0 if unspent else 1)
        decision = retry_policy.classify(
            error, attempts=attempts, age_s=now - event_time, policy=policy, rng=rng, daily_reset_s=daily_reset_s
        )
        if isinstance(decision, retry_policy.Done):
            tally.linked += 1
            outcomes.append(Outcome(item=item, kind="done"))
            continue
        assert error is not None
        delay = None if isinstance(decision, retry_policy.DeadLetter) else decision.delay_s
        settled = replace(
            item,
            attempts=attempts,
            history=[*item.history, attempt_entry(now, error, decision, delay)][-MAX_HISTORY:],
        )
        if isinstance(decision, retry_policy.DeadLetter):
            tally.dead += 1
            letter = dead_letter(settled, error, decision.reason, now)
            letters.append(letter)
            outcomes.append(Outcome(item=settled, kind="dead", dead_letter=letter))
            continue
        if isinstance(decision, retry_policy.Defer):
            tally.deferred += 1
        else:
            tally.retried += 1
        outcomes.append(Outcome(item=settled, kind="retry", due_ms=int((now + decision.delay_s) * 1000)))
    ops = outcome_ops(counters, outcomes, results, now) if counters is not None else []
    return Settlement(outcomes, ops, tally, letters)


def hand_back(items: Sequence[Claimed], due_ms: int) -> list[Outcome]:
    """Outcomes that return claimed work untouched (no attempt spent), due at ``due_ms``."""
    return [Outcome(item=item, kind="retry", due_ms=due_ms) for item in items]


def held_behind(held: Sequence[Claimed], settled: Sequence[Outcome], now_ms: int) -> list[Outcome]:
    """Outcomes that put ``held`` items back 1 ms (and their order) behind the retry of their pair's failed
    action among ``settled``, or due now when that action was dead-lettered. No attempt is spent."""
    due_of: dict[tuple[str, str], int] = {}
    for outcome in settled:
        if outcome.kind == "retry":
            pair = association_of(outcome.item).pair
            due_of[pair] = max(due_of.get(pair, 0), outcome.due_ms)
    return [
        Outcome(item=item, kind="retry", due_ms=max(due_of.get(association_of(item).pair, now_ms), now_ms) + 1 + i)
        for i, item in enumerate(held)
    ]


def attempt_entry(
    now: float, error: DeliveryError, decision: retry_policy.Decision, delay: float | None
) -> dict[str, Any]:
    """One entry of an association's attempt history (the wire format kept with it and in its dead letter)."""
    outcome = {retry_policy.Retry: "retry", retry_policy.Defer: "deferred", retry_policy.DeadLetter: "dead"}
    return {
        "at": iso(now * 1000),
        "outcome": outcome.get(type(decision), "?"),
        "error": type(error).__name__,
        "status": error.status,
        "category": error.category,
        "subCategory": error.detail.sub_category,
        "message": error.detail.message[:MAX_HISTORY_MESSAGE],
        "correlationId": error.correlation_id,
        "delayS": round(delay, 3) if delay is not None else None,
    }


def dead_letter(item: Claimed, error: DeliveryError, reason: str, now: float) -> DeadLetter:
    """The dead letter ``item`` becomes (its attempts and history already include the last one)."""
    request = item.request
    if isinstance(request, AssociationRequest):
        pair = DeadPair(
            portal_id=request.portal_id,
            from_object_type=request.from_object_type,
            from_object_id=request.from_object_id,
            to_object_type=request.to_object_type,
            to_object_id=request.to_object_id,
        )
    else:
        pair = DeadPair(
            portal_id=request.portal_id,
            rule=request.rule,
            from_object_type=target_type(request.from_side),
            from_object_id=describe(request.from_side),
            to_object_type=target_type(request.to_side),
            to_object_id=describe(request.to_side),
        )
    return DeadLetter(
        id=item.association_id,
        kind="lookup" if isinstance(request, LookupRequest) else "association",
        association=pair,
        source=request.source,
        source_event_id=request.source_event_id,
        reason=reason,
        error=type(error).__name__,
        status=error.status,
        category=error.category,
        sub_category=error.detail.sub_category,
        message=error.detail.message[:MAX_DEAD_LETTER_MESSAGE],
        correlation_id=error.correlation_id,
        missing_scopes=tuple(error.detail.missing_scopes),
        attempt_count=item.attempts,
        attempts=tuple(item.history),
        replays=item.replays,
        first_seen_ms=item.first_seen_ms,
        dead_at_ms=int(now * 1000),
        record=request.as_record(),
    )


def request_ops(
    counters: CounterOps | None, endpoint: str, status: int | None, error: DeliveryError | None, now: float
) -> list[Op]:
    """Counters for one HubSpot request: by endpoint and status, per minute, and its 429 policy if any."""
    if counters is None:
        return []
    ops = [
        counters.op("hubspot_requests", endpoint=endpoint, status=status or "none"),
        counters.series_op("hubspot_requests", at_s=now),
    ]
    if isinstance(error, RateLimitedError):
        ops += [counters.op("hubspot_rate_limited", policy=error.policy), counters.series_op("hubspot_429", at_s=now)]
    return ops


def outcome_ops(counters: CounterOps, outcomes: Sequence[Outcome], results: Sequence[Result], now: float) -> list[Op]:
    """Counters for what was settled: successes with their latency, failures, retries, dead letters."""
    errors = {r.item.association_id: r.error for r in results if r.error is not None}
    succeeded: dict[str, int] = {}
    dead: dict[tuple[str, str], int] = {}
    retries: dict[tuple[str, str], int] = {}
    failed: dict[str, int] = {}
    deleted: dict[str, int] = {}
    latencies: list[float] = []
    for outcome in outcomes:
        request = outcome.item.request
        error = errors.get(outcome.item.association_id)
        if isinstance(error, RecordDeletedError):
            # Not a failure: HubSpot no longer has the record. Counted apart, so alerts never see it.
            deleted[request.source] = deleted.get(request.source, 0) + 1
            continue
        if outcome.kind == "done":
            if isinstance(request, AssociationRequest):
                latencies.append(max(now - (request.received_at or now), 0.0))
            succeeded[request.source] = succeeded.get(request.source, 0) + 1
            continue
        name = type(error).__name__
        failed[name] = failed.get(name, 0) + 1
        if outcome.kind == "dead":
            key = (request.source, (error.category if error else None) or "none")
            dead[key] = dead.get(key, 0) + 1
        else:
            key = (name, "deferred" if isinstance(error, RateLimitedError) else "retry")
            retries[key] = retries.get(key, 0) + 1
    ops: list[Op] = []
    for source, n in succeeded.items():
        ops += [counters.op("associations_succeeded", n, source=source), counters.series_op("linked", n, at_s=now)]
    for (source, category), n in dead.items():
        ops += [
            counters.op("associations_dead_lettered", n, source=source, category=category),
            counters.series_op("dead", n, at_s=now),
        ]
    for (name, kind), n in retries.items():
        ops.append(counters.op("retries", n, error=name, kind=kind))
    for name, n in failed.items():
        ops += [counters.op("associations_failed", n, error=name), counters.series_op("failed", n, at_s=now)]
    for source, n in deleted.items():
        ops.append(counters.op("associations_record_deleted", n, source=source))
    ops.extend(counters.latency_ops(latencies))
    return ops


#: "CONTACT=38374264688 is not valid": how HubSpot names an invalid id in ``context.INVALID_OBJECT_IDS``.
_INVALID_ID = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*([0-9]{1,20})\b")


def is_isolatable(error: DeliveryError) -> bool:
    """True for a whole-batch refusal that may be the fault of some inputs only (a 400/404/409-style answer).

    Not for auth, scopes, rate limits or server trouble: those are the same for every input of the call.
    Not for an association limit either: HubSpot refuses such inputs one by one, so a whole call refused
    with one is taken at its word for every input, rather than split into calls that cost the rate limit.
    """
    return isinstance(error, ValidationRejectedError | NotFoundError) and not isinstance(
        error, LookupNoMatchError | LookupNoValueError | LookupAmbiguousError | AssociationLimitError
    )


def invalid_ids(error: DeliveryError) -> list[tuple[str | None, str, str]]:
    """The (object type or None, id, entry text) HubSpot named in ``context.INVALID_OBJECT_IDS``."""
    entries = error.detail.context.get("INVALID_OBJECT_IDS")
    named: list[tuple[str | None, str, str]] = []
    for entry in entries if isinstance(entries, list) else ():
        match = _INVALID_ID.match(str(entry))
        if match is None:
            continue
        try:
            object_type: str | None = canonical_object_type(match.group(1).lower())
        except ValueError:
            object_type = None  # a type name HubLink does not know: match the id on either side
        named.append((object_type, match.group(2), str(entry)[:200]))
    return named


def guilty_pairs(
    pairs: Sequence[tuple[str, str]], error: DeliveryError, from_type: str, to_type: str
) -> dict[tuple[str, str], DeliveryError]:
    """The pairs of a refused batch that hold an id HubSpot named invalid, each with an error naming its ids.

    Empty when the answer names no id of these pairs (then the batch is split to find the guilty inputs).
    """
    named = invalid_ids(error)
    guilty: dict[tuple[str, str], DeliveryError] = {}
    for pair in pairs:
        hits = [
            text
            for object_type, object_id, text in named
            if (object_id == pair[0] and object_type in (None, from_type))
            or (object_id == pair[1] and object_type in (None, to_type))
        ]
        if hits:
            detail = replace(
                error.detail,
                message=f"{error.detail.message}: {'; '.join(hits)}"[:MAX_DEAD_LETTER_MESSAGE],
                context={**error.detail.context, "INVALID_OBJECT_IDS": hits},
            )
            guilty[pair] = type(error)(detail)
    return guilty


def block_seconds(
    error: RateLimitedError, policy: retry_policy.RetryPolicy, window_s: float, daily_reset_s: float | None = None
) -> float:
    """How long a bucket stays shut after this 429: until the daily reset, HubSpot's (capped) hint, or a window."""
    if error.policy == "DAILY":
        return daily_reset_s if daily_reset_s is not None else policy.daily_limit_defer_s
    if error.retry_after_s is not None:
        return policy.capped(error.retry_after_s)
    return window_s
