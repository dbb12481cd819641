"""LaneDrainer: empty one lane into HubSpot, within the shared rate limit, one batch call at a time.

One drain is one RQ job. Its loop is claim → gates → call → settle: claim due associations (a lease, not
a pop); pass the batch through the gates (``hublink.delivery.gates``: pauses, the batch window, the records'
fates (``hublink.delivery.record_fates``: merged ids re-targeted, deleted records' work ended), the
portal's credential and circuit, lookups, recently linked pairs, the rate limit), any of which may stop
it; make the call (``hublink.delivery.sender``); and settle every item in one atomic step, from the one
record of what became of the batch (``hublink.delivery.batch.Sent``). What each answer means (retry,
defer, dead letter, metric increments) is decided by the pure ``hublink.delivery.outcomes``. The drain
never sleeps longer than ``max_limiter_wait_ms``: a longer wait parks the lane and gives the worker back.
It stops after ``budget_s`` so that other lanes get their turn, handing its lane on if work remains.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from hublink import tracing
from hublink.delivery import outcomes
from hublink.delivery.batch import Batch
from hublink.delivery.circuit import Breaker
from hublink.delivery.credentials import CredentialProvider
from hublink.delivery.displacements import DisplacementLog
from hublink.delivery.gates import (
    GO,
    BatchWindowGate,
    CircuitGate,
    CredentialsGate,
    Gate,
    LimiterGate,
    LookupsGate,
    PauseGate,
    RecentlyLinkedGate,
    Resolver,
)
from hublink.delivery.labels import LabelResolver
from hublink.delivery.lookups import ResolutionHistory
from hublink.delivery.rate_limit import Limiter
from hublink.delivery.record_fates import RecordFatesGate, RecordReader
from hublink.delivery.sender import AssociationClient, Sender
from hublink.domain import retry_policy
from hublink.domain.associations import split_lane
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import is_lookup_lane
from hublink.intake.record_fates import FateBook
from hublink.lanes import Claimed, Lanes
from hublink.lanes.codec import member_origin
from hublink.store.counters import CounterOps

log = logging.getLogger("hublink.delivery.drain")

#: Lookups cost up to two HubSpot calls each: claim few at a time so that even at the read timeout the
#: work finishes well inside its lease (5 x 2 x 10 s < 30 s would not hold at 20).
LOOKUP_CLAIM = 5

__all__ = ["AssociationClient", "DrainReport", "DrainSettings", "LaneDrainer", "Resolver"]


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
    #: The pause that stopped the drain (``portal:<p>``, ``lane:<lane>``, ``circuit:<p>``), or "".
    paused: str = ""

    def add(self, tally: outcomes.Tally) -> None:
        """Count one settle step."""
        self.linked += tally.linked
        self.retried += tally.retried
        self.deferred += tally.deferred
        self.dead += tally.dead

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
            "paused": self.paused,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DrainSettings:
    """The drainer's knobs (from Settings)."""

    batch_size: int = 2000
    batch_window_ms: int = 0
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 10.0))
    max_limiter_wait_ms: int = 500
    budget_s: float = 10.0
    #: Where an account's daily limit resets at midnight when its portal names no ``timeZone``.
    account_timezone: str = "UTC"
    #: Share of HubSpot's daily budget left to the account's other apps: below it, a bucket waits for midnight.
    daily_reserve: float = 0.05


class LaneDrainer:
    """Drains lanes; built once per worker process by its composition root."""

    def __init__(
        self,
        *,
        lanes: Lanes,
        limiter: Limiter,
        client: AssociationClient,
        credentials: CredentialProvider,
        resolver: Resolver,
        policy: retry_policy.RetryPolicy,
        settings: DrainSettings,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: CounterOps | None = None,
        labels: LabelResolver | None = None,
        circuit: Breaker | None = None,
        resolutions: ResolutionHistory | None = None,
        fates: FateBook | None = None,
        displacements: DisplacementLog | None = None,
    ) -> None:
        self._lanes = lanes
        #: Where what a write of a Primary (or parent) company moved is kept (None: logged only).
        self._displacements = displacements
        self._policy = policy
        self._settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._metrics = metrics
        self._limiter = LimiterGate(
            limiter,
            credentials,
            policy,
            rate_limit=settings.rate_limit,
            max_wait_ms=settings.max_limiter_wait_ms,
            account_timezone=settings.account_timezone,
            daily_reserve=settings.daily_reserve,
            clock=clock,
            sleep=sleep,
            metrics=metrics,
        )
        circuit_gate = CircuitGate(circuit, clock=clock) if circuit is not None else None
        fates_gate = (
            RecordFatesGate(
                fates,
                reader=cast(RecordReader, client) if hasattr(client, "read_object") else None,
                limiter=self._limiter,
                fresh_record_grace_s=policy.fresh_record_grace_s,
                clock=clock,
                metrics=metrics,
            )
            if fates is not None
            else None
        )
        #: The gates in the order they see a batch before the call (``after_call`` runs in reverse).
        self._gates: list[Gate] = [
            PauseGate(lanes, circuit, clock=clock),
            BatchWindowGate(clock=clock),
            *([fates_gate] if fates_gate is not None else []),
            CredentialsGate(credentials, circuit, clock=clock),
            *([circuit_gate] if circuit_gate is not None else []),
            LookupsGate(resolver, lanes, self._limiter, clock=clock, resolutions=resolutions),
            RecentlyLinkedGate(clock=clock),
            self._limiter,
        ]
        self._sender = Sender(
            client=client,
            credentials=credentials,
            limiter=self._limiter,
            on_failure=circuit_gate.failed_call if circuit_gate is not None else lambda batch, error: None,
            labels=labels,
            metrics=metrics,
            clock=clock,
        )

    def drain(self, lane: str) -> DrainReport:
        """Drain ``lane`` until it is empty, parked, or the time budget is spent."""
        report = DrainReport(lane)
        deadline = self._clock() + self._settings.budget_s
        while not report.ended:
            batch = self._claim(lane, deadline, report)
            if batch is None:
                break
            if batch.items and tracing.enabled():
                # One span per claimed batch, in the trace of its first association's request.
                with tracing.drain(lane, batch.portal, len(batch.items), partial(_origins, batch.items)):
                    self._step(batch, report)
            else:
                self._step(batch, report)
        return report

    def _step(self, batch: Batch, report: DrainReport) -> None:
        """Gates, call, settle: one batch through the loop."""
        if all(gate.before_call(batch) is GO for gate in self._gates):
            self._sender.send(batch)
        for gate in reversed(self._gates):
            gate.after_call(batch)
        self._settle(batch, report)

    def _claim(self, lane: str, deadline: float, report: DrainReport) -> Batch | None:
        """The next batch of ``lane``; None once the lane is left (the budget spent, or no token near)."""
        if self._clock() >= deadline:
            report.ended = self._lanes.finish(lane)
            return None
        portal, from_type, to_type = split_lane(lane)
        is_lookup = is_lookup_lane(lane)
        if is_lookup:
            claim = self._lanes.claim(lane, LOOKUP_CLAIM)
        else:
            park_ms = self._limiter.park_before_claim(portal)
            if park_ms:
                report.ended = self._lanes.finish(lane, park_until_ms=int(self._clock() * 1000) + park_ms)
                return None
            claim = self._lanes.claim(lane, self._settings.batch_size, window_ms=self._settings.batch_window_ms)
        if claim.paused:
            report.paused = claim.paused
        return Batch(lane, portal, from_type, to_type, is_lookup, claim, list(claim.items))

    def _settle(self, batch: Batch, report: DrainReport) -> None:
        """Settle what became of ``batch`` in one atomic step, count it, and leave the lane if a gate said so."""
        sent = batch.sent
        settlement = outcomes.settle(
            sent.answers,
            now=self._clock(),
            policy=self._policy,
            rng=self._rng,
            counters=self._metrics,
            daily_reset_s=self._limiter.daily_reset_s(batch.credential),
        )
        now_ms = int(self._clock() * 1000)
        settled = [
            *settlement.outcomes,
            *outcomes.held_behind(sent.held, settlement.outcomes, now_ms),
            *outcomes.hand_back(sent.back, sent.back_due_ms),
        ]
        ops = [*sent.ops, *settlement.ops]
        if settled or ops:
            with tracing.settle(batch.lane, len(settled)) as span:
                self._lanes.settle(batch.lane, settled, ops)
                if span is not None:
                    tally = settlement.tally
                    span.set_attributes(
                        {
                            "hublink.linked": tally.linked,
                            "hublink.retried": tally.retried,
                            "hublink.dead": tally.dead,
                            "hublink.deferred": tally.deferred,
                            # Sent back untouched (a gate, a far-off token) or held behind a failed pair.
                            "hublink.handed_back": len(sent.back) + len(sent.held),
                        }
                    )
        for moved in sent.displaced:
            log.info("hubspot moved a single-valued association", extra={"detail": moved.text})
        if sent.displaced and self._displacements is not None:
            self._displacements.record(sent.displaced)
        for letter in settlement.dead_letters:
            log.warning(
                "association dead-lettered",
                extra={"association_id": letter.id, "reason": letter.reason, "correlation_id": letter.correlation_id},
            )
        report.calls += sent.calls
        report.add(settlement.tally)
        report.deferred += sent.deferred
        if sent.paused:
            report.paused = sent.paused
        if sent.leave:
            report.ended = self._lanes.finish(batch.lane, park_until_ms=sent.park_until_ms)


def _origins(items: list[Claimed]) -> list[str]:
    """The origins (``hublink.tracing``) the batch's members carry, in claim order."""
    return [member_origin(item.member) for item in items]
