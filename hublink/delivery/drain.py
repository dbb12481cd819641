"""LaneDrainer: empty one lane into HubSpot, within the shared rate limit, one batch call at a time.

One drain is one RQ job. It loops: claim due associations (a lease, not a pop), take a rate-limit token,
make one call (the seed's single PUT for a lone association, the batch endpoint for several), and settle
them all in one atomic step. What each answer means (retry, defer, dead letter, metric increments) is
decided by the pure ``hublink.delivery.outcomes``; this module only moves work and talks to HubSpot. It
never sleeps longer than ``max_limiter_wait_ms``: a longer wait parks the lane and gives the worker back.
It stops after ``budget_s`` so that other lanes get their turn, handing its lane on if work remains.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from hublink.delivery import kinds, outcomes, reconcile
from hublink.delivery.circuit import Breaker, Trip, is_circuit_error
from hublink.delivery.credentials import Credential, CredentialProvider
from hublink.delivery.hubspot import CallResult
from hublink.delivery.labels import LabelResolver, resolve_types
from hublink.delivery.lookups import Resolution, ResolutionHistory
from hublink.delivery.outcomes import Result
from hublink.delivery.pauses import PAUSE_PARK_S
from hublink.delivery.rate_limit import Limiter
from hublink.domain import retry_policy
from hublink.domain.associations import AssociationRequest, AssociationType, CallKind, split_lane
from hublink.domain.errors import (
    AuthError,
    DeliveryError,
    RateHeaders,
    RateLimitedError,
    TokenWaitTooLongError,
    TransientError,
)
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import LookupRequest, is_lookup_lane
from hublink.domain.times import seconds_until_midnight
from hublink.lanes import Claim, Claimed, EventGroup, Lanes, portal_name
from hublink.store.counters import CounterOps, Op

log = logging.getLogger("hublink.delivery.drain")

#: A pair this worker linked this recently is not sent again for work accepted before that link: a burst of
#: requests for one pair, claimed by successive batches, reaches HubSpot once (its default link is
#: idempotent, so this only saves calls); work accepted after it (a replay) is sent.
RECENTLY_LINKED_S = 10.0
#: The most pairs remembered (the oldest are forgotten first): a bound on the worker's memory.
RECENTLY_LINKED_MAX = 100_000
#: Lookups cost up to two HubSpot calls each: claim few at a time so that even at the read timeout the
#: work finishes well inside its lease (5 x 2 x 10 s < 30 s would not hold at 20).
LOOKUP_CLAIM = 5


class AssociationClient(Protocol):
    """The HubSpot calls a drain makes (``hublink.delivery.hubspot.HubSpotClient``)."""

    def associate_default(
        self, token: str, from_type: str, from_id: str, to_type: str, to_id: str, *, base_url: str | None = None
    ) -> CallResult:
        """Link one pair with the default association type."""
        ...

    def associate_default_batch(
        self,
        token: str,
        from_type: str,
        to_type: str,
        pairs: Sequence[tuple[str, str]],
        *,
        base_url: str | None = None,
    ) -> CallResult:
        """Link several pairs of one object-type pair in one call."""
        ...


class Resolver(Protocol):
    """Finds the records a rule's lookups name (``hublink.delivery.lookups.LookupResolver``)."""

    search_rate_limit: RateLimit

    def resolve(self, request: LookupRequest, credential: Credential, take_token: Callable[[str], None]) -> Resolution:
        """Resolve both sides with ``credential``, taking a token of ``kind`` before each HubSpot call."""
        ...


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """What sending one claim did: each item's result, metric increments, calls made, and what waits."""

    results: list[Result]
    ops: list[Op]
    calls: int
    #: Items not sent because a further call would have waited too long for its token.
    left: list[Claimed] = field(default_factory=list)
    wait_ms: int = 0
    #: Items not sent because an earlier action on the same pair failed: they go back to wait behind it.
    held: list[Claimed] = field(default_factory=list)


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
    ) -> None:
        self._lanes = lanes
        #: Where resolved lookups are kept for traces (None: not kept).
        self._resolutions = resolutions
        self._labels = labels
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
        #: Increments with no settle step of their own yet (rate-limit waits); they ride on the next one.
        self._pending_ops: list[Op] = []
        #: (lane, pair) -> when this worker saw HubSpot link it (wall clock), oldest first.
        self._linked: OrderedDict[tuple[str, tuple[str, str]], float] = OrderedDict()
        #: The portal's circuit breaker (None: no breaker), and the trip the current claim's calls caused.
        self._circuit = circuit
        self._trip: Trip | None = None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

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
                # Park before claiming when no token is near: a claim handed back unspent costs 2,000 state
                # writes, and under a backlog at the limit it was most of the drain's work.
                wait_ms = self._token_wait(portal)
                if wait_ms > self._settings.max_limiter_wait_ms:
                    report.ended = self._lanes.finish(lane, park_until_ms=self._now_ms() + self._early(wait_ms))
                    return report
                claim = self._lanes.claim(lane, self._settings.batch_size, window_ms=self._settings.batch_window_ms)
            probing = False
            if claim.paused:
                probe = self._paused(lane, claim, report, lookups=lookups)
                if probe is None:
                    return report
                claim, probing = probe, True
            if claim.wait_ms:
                report.ended = self._lanes.finish(lane, park_until_ms=self._now_ms() + claim.wait_ms)
                return report
            if not claim.items:
                report.ended = self._lanes.finish(lane)
                return report
            self._trip = None
            try:
                credential = self._credentials.for_portal(portal)
            except DeliveryError as exc:  # an unknown portal (dead-lettered), or an OAuth refresh that failed
                if self._circuit is not None and self._circuit.failed_credentials(portal_name(portal), exc):
                    self._trip_hand_back(lane, report, claim.items)
                    return report
                self._settle(lane, report, [Result(item, exc) for item in claim.items])
                continue
            if lookups:
                parked = self._resolve(lane, report, credential, claim.items)
                if parked:
                    report.ended = self._lanes.finish(lane, park_until_ms=parked)
                    return report
                continue
            items, known = self._split_recently_linked(lane, claim.items)
            if known:
                self._settle(lane, report, [Result(item, None) for item in known], (), credential)
            if not items:
                continue
            wait_ms = self._take_token(credential.bucket, self._limit_for(credential))
            if wait_ms:
                park_until = self._now_ms() + self._early(wait_ms)
                self._park(lane, items, park_until)
                report.ended = self._lanes.finish(lane, park_until_ms=park_until)
                return report
            delivery = self._deliver_runs(credential, portal, from_type, to_type, items)
            self._remember_linked(lane, delivery.results)
            report.calls += delivery.calls
            if self._trip is not None:
                # The portal's circuit is open: what failed for the portal's sake goes back unspent, with
                # what was held behind it.
                back = [r.item for r in delivery.results if is_circuit_error(r.error)] + delivery.left + delivery.held
                kept = [r for r in delivery.results if not is_circuit_error(r.error)]
                self._settle(lane, report, kept, delivery.ops, credential)
                self._trip_hand_back(lane, report, back)
                return report
            if probing and self._circuit is not None:
                self._circuit.answered(portal_name(portal))
            settlement = self._settle(lane, report, delivery.results, delivery.ops, credential)
            if delivery.held:
                self._hold(lane, delivery.held, settlement)
            if delivery.wait_ms:
                # An isolating call had to wait too long for its token: the rest go back untouched.
                park_until = self._now_ms() + delivery.wait_ms
                self._park(lane, delivery.left, park_until)
                report.ended = self._lanes.finish(lane, park_until_ms=park_until)
                return report

    def _split_recently_linked(self, lane: str, items: Sequence[Claimed]) -> tuple[list[Claimed], list[Claimed]]:
        """The claimed items still to send, and the default links accepted before this worker saw their pair linked.

        Any other action on a pair in the claim (an unlink, a label) makes its order matter: such a pair is
        sent as claimed and forgotten.
        """
        if not self._linked:
            return list(items), []
        requests = [outcomes.association_of(item) for item in items]
        for request in requests:
            if request.call_kind != "default":
                self._linked.pop((lane, request.pair), None)
        horizon = self._clock() - RECENTLY_LINKED_S
        send: list[Claimed] = []
        known: list[Claimed] = []
        for item, request in zip(items, requests, strict=True):
            seen = self._linked.get((lane, request.pair))
            # Only work accepted before HubSpot confirmed the pair is satisfied by that confirmation: what
            # came later (a replay, a request made after an unlink elsewhere) is a new intent, and is sent.
            satisfied = seen is not None and seen >= horizon and item.first_seen_ms <= seen * 1000
            (known if satisfied else send).append(item)
        return send, known

    def _remember_linked(self, lane: str, results: Sequence[Result]) -> None:
        now = self._clock()
        for result in results:
            request = outcomes.association_of(result.item)
            key = (lane, request.pair)
            self._linked.pop(key, None)
            if result.error is None and request.call_kind == "default":
                self._linked[key] = now  # re-inserted: the dict stays oldest first
        horizon = now - RECENTLY_LINKED_S
        # An OrderedDict: evicting from the front of a plain dict rescans the slots already emptied, which
        # made each 2,000-input call cost tens of milliseconds more than the one before (found by P7).
        while self._linked:
            _, at = next(iter(self._linked.items()))
            if len(self._linked) <= RECENTLY_LINKED_MAX and at >= horizon:
                break
            self._linked.popitem(last=False)

    def _paused(self, lane: str, claim: Claim, report: DrainReport, *, lookups: bool) -> Claim | None:
        """A paused lane: park it (None), or, when an open circuit's probe is due, claim one item to send."""
        report.paused = claim.paused
        now = self._now_ms()
        park_until = now + int(PAUSE_PARK_S * 1000)
        portal = portal_name(split_lane(lane)[0])
        if claim.paused.startswith("circuit:") and self._circuit is not None and not lookups:
            wait_ms = self._circuit.probe_wait_ms(portal)
            if wait_ms:
                park_until = now + wait_ms
            else:
                probe = self._lanes.claim(lane, 1, probe=True)
                if probe.items:
                    log.info("probing an open circuit", extra={"portal_id": portal, "lane": lane})
                    return probe
                if not probe.paused:
                    # Nothing due to probe with: the probe slot goes to the next lane that has work.
                    report.ended = self._lanes.finish(lane)
                    return None
        # Nothing was claimed: the lane waits, parked, until a resume or a closing circuit wakes it (or the
        # park runs out and it looks again).
        report.ended = self._lanes.finish(lane, park_until_ms=park_until)
        return None

    def _trip_hand_back(self, lane: str, report: DrainReport, items: Sequence[Claimed]) -> None:
        """The portal's circuit opened: hand ``items`` back unspent and park the lane until the next probe."""
        assert self._circuit is not None
        portal = portal_name(split_lane(lane)[0])
        now = self._now_ms()
        ops, self._pending_ops = self._pending_ops, []
        if items:
            self._lanes.settle(lane, outcomes.hand_back(items, now), ops)
        report.deferred += len(items)
        report.paused = f"circuit:{portal}"
        report.ended = self._lanes.finish(lane, park_until_ms=now + self._circuit.probe_ms)
        self._trip = None

    def _park(self, lane: str, items: Sequence[Claimed], due_ms: int) -> None:
        """Return claimed work untouched (no attempt spent), due at ``due_ms``; count the park."""
        self._count_wait("park")
        ops, self._pending_ops = self._pending_ops, []
        if items:
            self._lanes.settle(lane, outcomes.hand_back(items, due_ms), ops)

    def _limit_for(self, credential: Credential) -> RateLimit:
        return credential.rate_limit or self._settings.rate_limit

    def _resolve(self, lane: str, report: DrainReport, credential: Credential, items: Sequence[Claimed]) -> int:
        """Resolve claimed lookups; enqueue what resolved, then settle. Returns a park time, or 0."""
        results: list[Result] = []
        resolved: list[tuple[Claimed, AssociationRequest]] = []
        park_until = 0
        bucket = credential.bucket

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
                resolution = self._resolver.resolve(item.request, credential, take)
            except TokenWaitTooLongError as exc:
                park_until = self._now_ms() + exc.wait_ms
                self._park(lane, items[index:], park_until)
                break
            except DeliveryError as exc:
                self._learn(credential, exc.detail.rate, exc)
                results.append(Result(item, exc))
                continue
            report.calls += 1
            if resolution.association is not None:
                resolved.append((item, resolution.association))
            else:
                log.info(
                    "lookup skipped", extra={"association_id": item.association_id, "reason": resolution.skipped_reason}
                )
            results.append(Result(item, None))
        # Enqueue before settling: a crash in between repeats a lookup (harmless), never loses one.
        ids: Sequence[str] = ()
        if resolved:
            ids = self._lanes.enqueue([EventGroup([a for _, a in resolved])]).ids[0] or ()
        self._settle(lane, report, results, (), credential)
        if self._resolutions is not None:
            for (item, association), association_id in zip(resolved, ids, strict=True):
                assert isinstance(item.request, LookupRequest)
                self._resolutions.record(item.association_id, item.request.rule, association_id, association)
        return park_until

    def _early(self, wait_ms: int) -> int:
        """A park for a token due in ``wait_ms``: ending half the longest sleep early.

        Waking a parked lane takes a sweep, an RQ job and a claim; begun early, that lands inside the
        wait (the drain then sleeps the rest), so the token is used when it frees rather than later: at
        HubSpot's limit every token's lateness was throughput lost for good (P7: 0.89 -> 0.9x).
        """
        return max(wait_ms - self._settings.max_limiter_wait_ms // 2, 1)

    def _token_wait(self, portal: str | None) -> int:
        """How long until the portal's bucket may have a token (0 when unknown: the claim path finds out)."""
        try:
            credential = self._credentials.for_portal(portal)
        except DeliveryError:
            return 0
        return self._limiter.wait_ms(credential.bucket, self._limit_for(credential))

    def _take_token(self, bucket: str, limit: RateLimit) -> int:
        """0 once a token is taken; else the wait that is too long to spend holding this worker."""
        while True:
            wait_ms = self._limiter.acquire(bucket, limit)
            if wait_ms == 0:
                return 0
            if wait_ms > self._settings.max_limiter_wait_ms:
                return wait_ms
            self._count_wait("sleep")
            self._sleep(wait_ms / 1000)

    def _count_wait(self, kind: str) -> None:
        if self._metrics is not None:
            self._pending_ops += [
                self._metrics.op("rate_limit_waits", kind=kind),
                self._metrics.series_op("rate_waits", at_s=self._clock()),
            ]

    def _deliver_runs(
        self, credential: Credential, portal: str | None, from_type: str, to_type: str, items: Sequence[Claimed]
    ) -> Delivery:
        """Send a claim that may mix call kinds as runs of one kind, in claim order (``hublink.delivery.kinds``).

        Labels are resolved first (an unknown one fails its items alone). Once an action on a pair has
        failed, the pair's later actions in this claim are held, so that they cannot overtake it.
        """
        requests = [outcomes.association_of(item) for item in items]
        if all(r.call_kind == "default" for r in requests):
            return self._deliver(credential, portal, from_type, to_type, items)  # today's path, unchanged
        types: dict[int, tuple[AssociationType, ...]] = {}

        def take() -> None:
            wait = self._take_token(credential.bucket, self._limit_for(credential))
            if wait:
                raise TokenWaitTooLongError(wait)

        where = (credential, portal, from_type, to_type)
        unresolved = resolve_types(self._labels, *where, requests, types, take)
        results = [Result(items[i], error) for i, error in unresolved.items()]
        failed = {requests[i].pair for i in unresolved}
        ops: list[Op] = []
        calls = 0
        held: list[Claimed] = []
        cut = kinds.runs(requests)
        for number, (kind, indexes) in enumerate(cut):
            ready: list[int] = []
            for i in indexes:
                if i in unresolved:
                    continue
                if requests[i].pair in failed:
                    held.append(items[i])
                else:
                    ready.append(i)
            if not ready:
                continue
            pair_types: dict[tuple[str, str], tuple[AssociationType, ...]] = {}
            for i in ready:  # one input per pair: the labels asked for the same pair in one run are sent together
                known = pair_types.get(requests[i].pair, ())
                pair_types[requests[i].pair] = known + tuple(t for t in types.get(i, ()) if t not in known)
            if kind == "replace":
                run_types = {n: types[i] for n, i in enumerate(ready) if i in types}
                delivery = self._reconcile(
                    credential, portal, from_type, to_type, [items[i] for i in ready], run_types, calls == 0
                )
            else:
                delivery = self._deliver(
                    credential,
                    portal,
                    from_type,
                    to_type,
                    [items[i] for i in ready],
                    kind=kind,
                    types=pair_types,
                    token_taken=calls == 0,  # the drain took one token for the claim's first call
                )
            calls += delivery.calls
            ops += delivery.ops
            results += delivery.results
            failed |= {outcomes.association_of(r.item).pair for r in delivery.results if r.error is not None}
            if delivery.wait_ms:
                rest = [items[i] for _, later in cut[number + 1 :] for i in later]
                return Delivery(results, ops, calls, [*delivery.left, *rest], delivery.wait_ms, held)
        return Delivery(results, ops, calls, held=held)

    def _reconcile(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        items: Sequence[Claimed],
        types: Mapping[int, tuple[AssociationType, ...]],
        token_taken: bool,
    ) -> Delivery:
        """Run one run of replace work (``hublink.delivery.reconcile``), each call with its own token.

        When a token would wait too long, the whole run goes back untouched: reconciling again is harmless.
        """
        ops: list[Op] = []
        calls = 0

        def spend() -> None:
            nonlocal calls
            if calls or not token_taken:
                wait = self._take_token(credential.bucket, self._limit_for(credential))
                if wait:
                    raise TokenWaitTooLongError(wait)
            calls += 1

        def call(
            kind: CallKind, pairs: Sequence[tuple[str, str]], specs: Mapping[tuple[str, str], Sequence[AssociationType]]
        ) -> CallResult | DeliveryError:
            spend()
            return self._call(credential, portal, from_type, to_type, pairs, ops, kind=kind, types=specs)

        def read(from_ids: Sequence[str]) -> reconcile.Existing | DeliveryError:
            spend()
            client = cast(reconcile.AssociationReader, self._client)
            try:
                found = client.read_associations_batch(
                    credential.token, from_type, to_type, from_ids, base_url=credential.base_url
                )
            except DeliveryError as exc:
                ops.extend(outcomes.request_ops(self._metrics, "batch_read", exc.status, exc, self._clock()))
                self._learn(credential, exc.detail.rate, exc)
                return exc
            ops.extend(outcomes.request_ops(self._metrics, "batch_read", 200, None, self._clock()))
            return found

        requests = [outcomes.association_of(item) for item in items]
        try:
            done = reconcile.reconcile(requests, types, read, call)
        except TokenWaitTooLongError as exc:
            return Delivery([], ops, calls, list(items), exc.wait_ms)
        for from_id, removed in done.removed.items():
            log.info(
                "reconcile removed associations",
                extra={"portal_id": portal, "from": f"{from_type}/{from_id}", "to_type": to_type, "removed": removed},
            )
            if self._metrics is not None:
                source = next((r.source for r in requests if r.from_object_id == from_id), "?")
                ops.append(self._metrics.op("reconcile_removed", len(removed), source=source))
        return Delivery([Result(items[i], error) for i, error in done.errors.items()], ops, calls)

    def _hold(self, lane: str, held: Sequence[Claimed], settlement: outcomes.Settlement) -> None:
        """Put held items back just behind the retry of the failed action on their pair (or now, if it died)."""
        self._lanes.settle(lane, outcomes.held_behind(held, settlement.outcomes, self._now_ms()))

    def _deliver(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        items: Sequence[Claimed],
        *,
        kind: CallKind = "default",
        types: Mapping[tuple[str, str], Sequence[AssociationType]] | None = None,
        token_taken: bool = True,
    ) -> Delivery:
        """Send the claimed associations (one token already taken) and learn each pair's outcome.

        Identical pairs go as one input and share its outcome. A whole-batch refusal that may be the fault of
        a few inputs is isolated: pairs holding an id HubSpot named invalid fail alone, the others go again at
        once and spend no attempt; a refusal naming nothing is split in halves until the guilty inputs are
        found (at most 2·⌈log2 n⌉ extra calls). Every extra call takes its own rate-limit token.
        """
        by_pair: dict[tuple[str, str], list[Claimed]] = {}
        for item in items:
            by_pair.setdefault(outcomes.association_of(item).pair, []).append(item)
        decided: dict[tuple[str, str], DeliveryError | None] = {}
        ops: list[Op] = []
        groups = [list(by_pair)]
        calls = 0
        while groups:
            if self._trip is not None:
                # The portal's circuit opened on an earlier call: send nothing more for it.
                left = [item for g in groups for pair in g for item in by_pair[pair]]
                done = [Result(i, decided[p]) for p, its in by_pair.items() if p in decided for i in its]
                return Delivery(done, ops, calls, left)
            group = groups.pop(0)
            if calls or not token_taken:
                wait_ms = self._take_token(credential.bucket, self._limit_for(credential))
                if wait_ms:
                    groups.insert(0, group)
                    left = [item for g in groups for pair in g for item in by_pair[pair]]
                    done = [Result(i, decided[p]) for p, its in by_pair.items() if p in decided for i in its]
                    return Delivery(done, ops, calls, left, wait_ms)
            calls += 1
            answer = self._call(credential, portal, from_type, to_type, group, ops, kind=kind, types=types or {})
            if not isinstance(answer, DeliveryError):
                decided.update((pair, outcomes.pair_outcome_of(pair, answer)) for pair in group)
                continue
            if len(group) == 1 or not outcomes.is_isolatable(answer):
                decided.update((pair, answer) for pair in group)
                continue
            guilty = outcomes.guilty_pairs(group, answer, from_type, to_type)
            if guilty and len(guilty) < len(group):
                decided.update(guilty)
                groups.insert(0, [pair for pair in group if pair not in guilty])
            elif guilty:
                decided.update(guilty)
            else:
                half = len(group) // 2
                groups[:0] = [group[:half], group[half:]]
            log.info(
                "batch refused; isolating the guilty inputs",
                extra={"lane_size": len(group), "guilty": len(guilty), "correlation_id": answer.correlation_id},
            )
        results = [Result(item, decided[pair]) for pair, its in by_pair.items() for item in its]
        return Delivery(results, ops, calls)

    def _call(
        self,
        credential: Credential,
        portal: str | None,
        from_type: str,
        to_type: str,
        pairs: Sequence[tuple[str, str]],
        ops: list[Op],
        *,
        kind: CallKind = "default",
        types: Mapping[tuple[str, str], Sequence[AssociationType]] | None = None,
    ) -> CallResult | DeliveryError:
        """One HubSpot call of ``kind`` for ``pairs`` (distinct): its answer, or the error of the whole call."""
        token = credential.token
        endpoint = kinds.endpoint(kind, len(pairs))
        try:
            if kind != "default":
                result = kinds.send(
                    cast(kinds.LabelledClient, self._client),
                    kind,
                    token,
                    from_type,
                    to_type,
                    pairs,
                    types or {},
                    base_url=credential.base_url,
                )
            elif len(pairs) == 1:
                (from_id, to_id), base = pairs[0], credential.base_url
                result = self._client.associate_default(token, from_type, from_id, to_type, to_id, base_url=base)
            else:
                result = self._client.associate_default_batch(
                    token, from_type, to_type, pairs, base_url=credential.base_url
                )
        except DeliveryError as exc:
            ops += outcomes.request_ops(self._metrics, endpoint, exc.status, exc, self._clock())
            if self._circuit is not None:
                self._trip = self._circuit.failed(
                    portal_name(portal), exc, refreshable=credential.refreshable, refreshed=credential.refreshed
                )
            # One line that says why and where (the host: a worker may be calling another HubSpot than meant).
            log.info(
                "hubspot call failed",
                extra={
                    "lane_size": len(pairs),
                    "error": type(exc).__name__,
                    "reason": exc.detail.message[:200],
                    "host": exc.host,
                    "status": exc.status,
                    "category": exc.category,
                    "correlation_id": exc.correlation_id,
                },
            )
            if isinstance(exc, AuthError) and credential.refreshable:
                # HubSpot refused an OAuth token: refresh once and retry, rather than give up on the pair.
                self._credentials.invalidate(portal)
                exc = TransientError(exc.detail)
            self._learn(credential, exc.detail.rate, exc)
            return exc
        self._learn(credential, result.rate, None)
        ops += outcomes.request_ops(self._metrics, endpoint, 200, None, self._clock())
        return result

    def _daily_reset_s(self, credential: Credential | None) -> float:
        zone = (credential.time_zone if credential else None) or self._settings.account_timezone
        return seconds_until_midnight(self._clock(), zone)

    def _learn(self, credential: Credential, rate: RateHeaders | None, error: DeliveryError | None) -> None:
        bucket = credential.bucket
        if rate is not None:
            self._limiter.observe(bucket, self._settings.rate_limit, rate)
            if (
                rate.daily is not None
                and rate.daily_remaining is not None
                and rate.daily_remaining <= rate.daily * self._settings.daily_reserve
            ):
                # Stop before the account's daily budget is spent: the rest is left to its other apps,
                # and this bucket waits for the reset rather than running into the DAILY 429.
                self._limiter.block(bucket, self._daily_reset_s(credential))
                log.warning(
                    "daily limit nearly spent; waiting for the reset",
                    extra={"bucket": bucket, "daily": rate.daily, "remaining": rate.daily_remaining},
                )
        if isinstance(error, RateLimitedError):
            window = self._settings.rate_limit.window_s
            self._limiter.block(
                bucket, outcomes.block_seconds(error, self._policy, window, self._daily_reset_s(credential))
            )

    def _settle(
        self,
        lane: str,
        report: DrainReport,
        results: Sequence[Result],
        ops: Sequence[Op] = (),
        credential: Credential | None = None,
    ) -> outcomes.Settlement:
        settlement = outcomes.settle(
            results,
            now=self._clock(),
            policy=self._policy,
            rng=self._rng,
            counters=self._metrics,
            daily_reset_s=self._daily_reset_s(credential),
        )
        report.add(settlement.tally)
        for letter in settlement.dead_letters:
            log.warning(
                "association dead-lettered",
                extra={"association_id": letter.id, "reason": letter.reason, "correlation_id": letter.correlation_id},
            )
        pending, self._pending_ops = self._pending_ops, []
        self._lanes.settle(lane, settlement.outcomes, [*pending, *ops, *settlement.ops])
        return settlement
