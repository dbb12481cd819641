"""LaneDrainer: empty one lane into HubSpot, within the shared rate limit, one batch call at a time.

One drain is one RQ job. It loops: claim due associations (a lease, not a pop), take a rate-limit token,
make one call (the seed's single PUT for a lone association, the batch endpoint for several), let
``domain.retry_policy`` decide each association's fate, and settle them all in one atomic step. It
never sleeps longer than ``max_limiter_wait_ms``: a longer wait parks the lane and gives the worker back.
It stops after ``budget_s`` so that other lanes get their turn, handing its lane on if work remains.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hublink.delivery.credentials import Credential, CredentialProvider
from hublink.delivery.hubspot import CallResult, HubSpotClient
from hublink.delivery.lookups import LookupResolver
from hublink.delivery.rate_limit import Limiter
from hublink.domain import retry_policy
from hublink.domain.associations import AssociationRequest, split_lane
from hublink.domain.errors import (
    AuthError,
    DeliveryError,
    HubSpotErrorDetail,
    RateLimitedError,
    TokenWaitTooLongError,
    TransientError,
)
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import LookupRequest, describe, is_lookup_lane
from hublink.domain.times import iso
from hublink.lanes import Claimed, EventGroup, LaneStore, Outcome
from hublink.store.clock import now_ms
from hublink.store.counters import Counters, Op

log = logging.getLogger("hublink.drain")

#: Entries of attempt history kept per association (the newest); enough to see a pattern, bounded.
MAX_HISTORY = 50
#: Lookups cost up to two HubSpot calls each: claim few at a time so that even at the read timeout the
#: work finishes well inside its lease (5 x 2 x 10 s < 30 s would not hold at 20).
LOOKUP_CLAIM = 5


@dataclass(slots=True)
class DrainReport:
    """What one drain did (returned as the RQ job's result)."""

    lane: str
    calls: int = 0
    linked: int = 0
    retried: int = 0
    deferred: int = 0
    dead: int = 0
    ended: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "lane": self.lane,
            "calls": self.calls,
            "linked": self.linked,
            "retried": self.retried,
            "deferred": self.deferred,
            "dead": self.dead,
            "ended": self.ended,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainSettings:
    """The drainer's knobs (from Settings)."""

    batch_size: int = 100
    batch_window_ms: int = 0
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 10.0))
    max_limiter_wait_ms: int = 500
    budget_s: float = 10.0


class LaneDrainer:
    """Drains lanes; built once per worker process by its composition root."""

    def __init__(
        self,
        *,
        lanes: LaneStore,
        limiter: Limiter,
        client: HubSpotClient,
        credentials: CredentialProvider,
        resolver: LookupResolver,
        policy: retry_policy.RetryPolicy,
        settings: DrainSettings,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: Counters | None = None,
    ) -> None:
        self._lanes = lanes
        self._limiter = limiter
        self._client = client
        self._credentials = credentials
        self._resolver = resolver
        self._policy = policy
        self._settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics

    def drain(self, lane: str) -> DrainReport:
        """Drain ``lane`` until it is empty, parked, or the time budget is spent."""
        report = DrainReport(lane)
        deadline = self._clock() + self._settings.budget_s
        portal, from_type, to_type = split_lane(lane)
        lookups = is_lookup_lane(lane)
        while True:
            if self._clock() >= deadline:
                report.ended = self._lanes.finish(lane)
                return report
            if lookups:
                claim = self._lanes.claim(lane, LOOKUP_CLAIM)
            else:
                claim = self._lanes.claim(lane, self._settings.batch_size, window_ms=self._settings.batch_window_ms)
            if claim.wait_ms:
                report.ended = self._lanes.finish(lane, park_until_ms=now_ms() + claim.wait_ms)
                return report
            if not claim.items:
                report.ended = self._lanes.finish(lane)
                return report
            try:
                credential = self._credentials.for_portal(portal)
            except DeliveryError as exc:  # an unknown portal (dead-lettered), or an OAuth refresh that failed
                self._settle(lane, report, [(item, exc) for item in claim.items])
                continue
            if lookups:
                parked = self._resolve(lane, report, credential, claim.items)
                if parked:
                    report.ended = self._lanes.finish(lane, park_until_ms=parked)
                    return report
                continue
            wait_ms = self._take_token(credential.bucket, self._limit_for(credential))
            if wait_ms:
                park_until = now_ms() + wait_ms
                self._hand_back(lane, claim.items, park_until)
                report.ended = self._lanes.finish(lane, park_until_ms=park_until)
                return report
            results, ops = self._call(credential, portal, from_type, to_type, claim.items)
            report.calls += 1
            self._settle(lane, report, results, ops)

    def _hand_back(self, lane: str, items: Sequence[Claimed], due_ms: int) -> None:
        """Return claimed work untouched (no attempt spent), due at ``due_ms``."""
        if items:
            self._lanes.settle(lane, [Outcome(item=i, kind="retry", due_ms=due_ms) for i in items])

    def _limit_for(self, credential: Credential) -> RateLimit:
        return credential.rate_limit or self._settings.rate_limit

    def _resolve(self, lane: str, report: DrainReport, credential: Credential, items: Sequence[Claimed]) -> int:
        """Resolve claimed lookups; enqueue what resolved, then settle. Returns a park time, or 0."""
        results: list[tuple[Claimed, DeliveryError | None]] = []
        resolved: list[AssociationRequest] = []
        park_until = 0
        token, bucket = credential.token, credential.bucket

        def take(kind: str) -> None:
            if kind == "search":
                wait = self._take_token(f"{bucket}-search", self._resolver.search_rate_limit)
            else:
                wait = self._take_token(bucket, self._limit_for(credential))
            if wait:
                raise TokenWaitTooLongError(wait)

        for index, item in enumerate(items):
            assert isinstance(item.request, LookupRequest)
            try:
                resolution = self._resolver.resolve(item.request, token, take)
            except TokenWaitTooLongError as exc:
                park_until = now_ms() + exc.wait_ms
                self._hand_back(lane, items[index:], park_until)
                break
            except DeliveryError as exc:
                self._learn(bucket, exc.detail.rate, exc)
                results.append((item, exc))
                continue
            report.calls += 1
            if resolution.association is not None:
                resolved.append(resolution.association)
            else:
                log.info(
                    "lookup skipped", extra={"association_id": item.association_id, "reason": resolution.skipped_reason}
                )
            results.append((item, None))
        # Enqueue before settling: a crash in between repeats a lookup (harmless), never loses one.
        if resolved:
            self._lanes.enqueue([EventGroup(resolved)])
        self._settle(lane, report, results)
        return park_until

    def _take_token(self, bucket: str, limit: RateLimit) -> int:
        """0 once a token is taken; else the wait that is too long to spend holding this worker."""
        while True:
            wait_ms = self._limiter.acquire(bucket, limit)
            if wait_ms == 0:
                return 0
            if wait_ms > self._settings.max_limiter_wait_ms:
                return wait_ms
            self._sleep(wait_ms / 1000)

    def _call(
        self, credential: Credential, portal: str | None, from_type: str, to_type: str, items: Sequence[Claimed]
    ) -> tuple[list[tuple[Claimed, DeliveryError | None]], list[Op]]:
        token, bucket = credential.token, credential.bucket
        pairs = [_association(i).pair for i in items]
        endpoint = "associate_default" if len(items) == 1 else "batch_associate_default"
        try:
            if len(items) == 1:
                result = self._client.associate_default(token, from_type, pairs[0][0], to_type, pairs[0][1])
            else:
                result = self._client.associate_default_batch(token, from_type, to_type, pairs)
        except DeliveryError as exc:
            ops = self._request_ops(endpoint, exc.status, exc)
            if isinstance(exc, AuthError) and credential.refreshable:
                # HubSpot refused an OAuth token: refresh once and retry, rather than give up on the pair.
                self._credentials.invalidate(portal)
                exc = TransientError(exc.detail)
            self._learn(bucket, exc.detail.rate, exc)
            log.info(
                "hubspot call failed",
                extra={
                    "lane_size": len(items),
                    "status": exc.status,
                    "category": exc.category,
                    "correlation_id": exc.correlation_id,
                },
            )
            return [(i, exc) for i in items], ops
        self._learn(bucket, result.rate, None)
        return [(i, self._outcome_of(i, result)) for i in items], self._request_ops(endpoint, 200, None)

    def _request_ops(self, endpoint: str, status: int | None, error: DeliveryError | None) -> list[Op]:
        if self._metrics is None:
            return []
        m = self._metrics
        ops = [
            m.op("hubspot_requests", endpoint=endpoint, status=status or "none"),
            m.series_op("hubspot_requests", at_s=self._clock()),
        ]
        if isinstance(error, RateLimitedError):
            ops += [m.op("hubspot_rate_limited", policy=error.policy), m.series_op("hubspot_429", at_s=self._clock())]
        return ops

    @staticmethod
    def _outcome_of(item: Claimed, result: CallResult) -> DeliveryError | None:
        pair = _association(item).pair
        if pair in result.linked:
            return None
        return result.failed.get(pair) or DeliveryError(HubSpotErrorDetail(message="no outcome for pair"))

    def _learn(self, bucket: str, rate: Any, error: DeliveryError | None) -> None:
        if rate is not None:
            self._limiter.observe(bucket, self._settings.rate_limit, rate)
        if isinstance(error, RateLimitedError):
            if error.policy == "DAILY":
                wait = self._policy.daily_limit_defer_s
            elif error.retry_after_s is not None:
                wait = error.retry_after_s
            else:
                wait = self._settings.rate_limit.window_s
            self._limiter.block(bucket, wait)

    def _settle(
        self,
        lane: str,
        report: DrainReport,
        results: Sequence[tuple[Claimed, DeliveryError | None]],
        ops: Sequence[Op] = (),
    ) -> None:
        now = self._clock()
        outcomes: list[Outcome] = []
        for item, error in results:
            event_time = item.request.occurred_at or item.request.received_at or item.first_seen_ms / 1000
            counts_attempt = not isinstance(error, RateLimitedError)
            attempts = item.attempts + (1 if counts_attempt else 0)
            decision = retry_policy.classify(
                error, attempts=attempts, age_s=now - event_time, policy=self._policy, rng=self._rng
            )
            if isinstance(decision, retry_policy.Done):
                report.linked += 1
                outcomes.append(Outcome(item=item, kind="done"))
                continue
            assert error is not None
            delay = decision.delay_s if not isinstance(decision, retry_policy.DeadLetter) else None
            item.attempts = attempts
            item.history = [*item.history, _attempt_entry(now, error, decision, delay)][-MAX_HISTORY:]
            if isinstance(decision, retry_policy.DeadLetter):
                report.dead += 1
                outcomes.append(Outcome(item=item, kind="dead", dead_letter=_dead_letter(item, error, decision, now)))
                log.warning(
                    "association dead-lettered",
                    extra={
                        "association_id": item.association_id,
                        "reason": decision.reason,
                        "correlation_id": error.correlation_id,
                    },
                )
            else:
                if isinstance(decision, retry_policy.Defer):
                    report.deferred += 1
                else:
                    report.retried += 1
                outcomes.append(Outcome(item=item, kind="retry", due_ms=int((now + decision.delay_s) * 1000)))
        self._lanes.settle(lane, outcomes, [*ops, *self._outcome_ops(outcomes, results, now)])

    def _outcome_ops(
        self, outcomes: Sequence[Outcome], results: Sequence[tuple[Claimed, DeliveryError | None]], now: float
    ) -> list[Op]:
        """Counters for what was settled: successes with their latency, failures, retries, dead letters."""
        if self._metrics is None:
            return []
        m = self._metrics
        errors = {item.association_id: error for item, error in results}
        ops: list[Op] = []
        latencies: list[float] = []
        counts: dict[tuple[str, ...], int] = {}
        for outcome in outcomes:
            request = outcome.item.request
            error = errors.get(outcome.item.association_id)
            if outcome.kind == "done":
                if isinstance(request, AssociationRequest):
                    latencies.append(max(now - (request.received_at or now), 0.0))
                key: tuple[str, ...] = ("succeeded", request.source)
            elif outcome.kind == "dead":
                key = ("dead", request.source, (error.category if error else None) or "none")
            else:
                kind = "deferred" if isinstance(error, RateLimitedError) else "retry"
                key = ("retry", type(error).__name__, kind)
            counts[key] = counts.get(key, 0) + 1
            if error is not None and outcome.kind != "done":
                counts[("failed", type(error).__name__)] = counts.get(("failed", type(error).__name__), 0) + 1
        series = {"succeeded": "linked", "dead": "dead", "failed": "failed"}
        for key, n in counts.items():
            if key[0] == "succeeded":
                ops.append(m.op("associations_succeeded", n, source=key[1]))
            elif key[0] == "dead":
                ops.append(m.op("associations_dead_lettered", n, source=key[1], category=key[2]))
            elif key[0] == "retry":
                ops.append(m.op("retries", n, error=key[1], kind=key[2]))
            else:
                ops.append(m.op("associations_failed", n, error=key[1]))
            if key[0] in series:
                ops.append(m.series_op(series[key[0]], n, at_s=now))
        ops.extend(m.latency_ops(latencies))
        return ops


def _attempt_entry(
    now: float, error: DeliveryError, decision: retry_policy.Decision, delay: float | None
) -> dict[str, Any]:
    outcome = {retry_policy.Retry: "retry", retry_policy.Defer: "deferred", retry_policy.DeadLetter: "dead"}
    return {
        "at": iso(now * 1000),
        "outcome": outcome.get(type(decision), "?"),
        "error": type(error).__name__,
        "status": error.status,
        "category": error.category,
        "subCategory": error.detail.sub_category,
        "message": error.detail.message[:300],
        "correlationId": error.correlation_id,
        "delayS": round(delay, 3) if delay is not None else None,
    }


def _association(item: Claimed) -> AssociationRequest:
    assert isinstance(item.request, AssociationRequest), "association lanes hold associations"
    return item.request


def _dead_letter(item: Claimed, error: DeliveryError, decision: retry_policy.DeadLetter, now: float) -> dict[str, Any]:
    request = item.request
    if isinstance(request, AssociationRequest):
        association: dict[str, Any] = {
            "portalId": request.portal_id,
            "fromObjectType": request.from_object_type,
            "fromObjectId": request.from_object_id,
            "toObjectType": request.to_object_type,
            "toObjectId": request.to_object_id,
        }
    else:
        association = {
            "portalId": request.portal_id,
            "rule": request.rule,
            "fromObjectType": describe(request.from_side).split("/")[0].split(" ")[0],
            "fromObjectId": describe(request.from_side),
            "toObjectType": describe(request.to_side).split("/")[0].split(" ")[0],
            "toObjectId": describe(request.to_side),
        }
    return {
        "id": item.association_id,
        "kind": "lookup" if isinstance(request, LookupRequest) else "association",
        "association": association,
        "source": request.source,
        "sourceEventId": request.source_event_id,
        "reason": decision.reason,
        "error": type(error).__name__,
        "status": error.status,
        "category": error.category,
        "subCategory": error.detail.sub_category,
        "message": error.detail.message[:500],
        "correlationId": error.correlation_id,
        "missingScopes": list(error.detail.missing_scopes),
        "attemptCount": item.attempts,
        "attempts": item.history,
        "replays": item.replays,
        "firstSeen": iso(item.first_seen_ms),
        "firstSeenMs": item.first_seen_ms,
        "lastSeen": iso(now * 1000),
        "deadAt": iso(now * 1000),
        "deadAtMs": int(now * 1000),
        "record": request.as_record(),
    }
