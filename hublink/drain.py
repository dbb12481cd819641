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

from hublink.credentials import CredentialProvider, UnknownPortalError
from hublink.dead_letters import iso
from hublink.domain import retry_policy
from hublink.domain.associations import split_lane
from hublink.domain.errors import DeliveryError, HubSpotErrorDetail, RateLimitedError
from hublink.hubspot import CallResult, HubSpotClient
from hublink.lanes import Claimed, LaneStore, Outcome, now_ms
from hublink.rate_limit import Limiter
from hublink.settings import RateLimit

log = logging.getLogger("hublink.drain")

#: Entries of attempt history kept per association (the newest); enough to see a pattern, bounded.
MAX_HISTORY = 50


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
        policy: retry_policy.RetryPolicy,
        settings: DrainSettings,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        counters: Callable[[DrainReport, Sequence[Outcome]], Sequence[tuple[str, str, int]]] | None = None,
    ) -> None:
        self._lanes = lanes
        self._limiter = limiter
        self._client = client
        self._credentials = credentials
        self._policy = policy
        self._settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._counters = counters

    def drain(self, lane: str) -> DrainReport:
        """Drain ``lane`` until it is empty, parked, or the time budget is spent."""
        report = DrainReport(lane)
        deadline = self._clock() + self._settings.budget_s
        portal, from_type, to_type = split_lane(lane)
        while True:
            if self._clock() >= deadline:
                report.ended = self._lanes.finish(lane)
                return report
            claim = self._lanes.claim(lane, self._settings.batch_size, window_ms=self._settings.batch_window_ms)
            if claim.wait_ms:
                report.ended = self._lanes.finish(lane, park_until_ms=now_ms() + claim.wait_ms)
                return report
            if not claim.items:
                report.ended = self._lanes.finish(lane)
                return report
            try:
                credential = self._credentials.for_portal(portal)
            except UnknownPortalError as exc:
                self._settle(lane, report, [(item, exc) for item in claim.items])
                continue
            wait_ms = self._take_token(credential.bucket)
            if wait_ms:
                # Hand the claimed work back untouched (no attempt spent) and give the worker back.
                park_until = now_ms() + wait_ms
                self._lanes.settle(lane, [Outcome(item=i, kind="retry", due_ms=park_until) for i in claim.items])
                report.ended = self._lanes.finish(lane, park_until_ms=park_until)
                return report
            results = self._call(credential.token, credential.bucket, from_type, to_type, claim.items)
            report.calls += 1
            self._settle(lane, report, results)

    def _take_token(self, bucket: str) -> int:
        """0 once a token is taken; else the wait that is too long to spend holding this worker."""
        while True:
            wait_ms = self._limiter.acquire(bucket, self._settings.rate_limit)
            if wait_ms == 0:
                return 0
            if wait_ms > self._settings.max_limiter_wait_ms:
                return wait_ms
            self._sleep(wait_ms / 1000)

    def _call(
        self, token: str, bucket: str, from_type: str, to_type: str, items: Sequence[Claimed]
    ) -> list[tuple[Claimed, DeliveryError | None]]:
        pairs = [i.request.pair for i in items]
        try:
            if len(items) == 1:
                result = self._client.associate_default(token, from_type, pairs[0][0], to_type, pairs[0][1])
            else:
                result = self._client.associate_default_batch(token, from_type, to_type, pairs)
        except DeliveryError as exc:
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
            return [(i, exc) for i in items]
        self._learn(bucket, result.rate, None)
        return [(i, self._outcome_of(i, result)) for i in items]

    @staticmethod
    def _outcome_of(item: Claimed, result: CallResult) -> DeliveryError | None:
        pair = item.request.pair
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

    def _settle(self, lane: str, report: DrainReport, results: Sequence[tuple[Claimed, DeliveryError | None]]) -> None:
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
        counters = self._counters(report, outcomes) if self._counters else ()
        self._lanes.settle(lane, outcomes, counters)


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


def _dead_letter(item: Claimed, error: DeliveryError, decision: retry_policy.DeadLetter, now: float) -> dict[str, Any]:
    request = item.request
    return {
        "id": item.association_id,
        "association": {
            "portalId": request.portal_id,
            "fromObjectType": request.from_object_type,
            "fromObjectId": request.from_object_id,
            "toObjectType": request.to_object_type,
            "toObjectId": request.to_object_id,
        },
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
