"""Gates: the concerns around the drain's one HubSpot call, each a small class with the same two hooks.

The drain's loop is claim → gates → call → settle. Before the call, each gate's :meth:`Gate.before_call`
looks at the batch in turn and lets it go on (``GO``) or stops it (``STOP``), having written into the
batch's :class:`~hublink.delivery.batch.Sent` what becomes of its items and whether the lane leaves.
After the call (or the stop), each gate's :meth:`Gate.after_call` sees what became of the batch, in the
reverse order, before it is settled. Both hooks do nothing until a gate overrides them, in the manner of
Dramatiq's ``Middleware``. The drain's gates, in order:

- :class:`PauseGate`: a paused lane parks; an open circuit's pause lets one probe through when it is due; an
  uninstalled portal's work is dead-lettered once its hold is over;
- :class:`BatchWindowGate`: an empty claim leaves the lane; one the batch window holds parks it;
- :class:`CredentialsGate`: the portal's token; a refresh HubSpot refused for good opens the circuit, one
  that may pass (the token endpoint's 429 or 5xx) hands the work back unspent and parks the lane; an
  uninstalled portal's probe is a token refresh, and a token issued resumes the portal;
- :class:`CircuitGate`: a call that opens the portal's circuit sends its work back unspent; a probe's
  answer closes it;
- :class:`LookupsGate`: a lookup lane's work is resolved (and its associations queued) instead of sent;
- :class:`RecentlyLinkedGate`: a pair this worker saw linked moments ago is not sent again;
- :class:`LimiterGate`: one rate-limit token per call, a short wait slept, a long one parks the lane.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from hublink import tracing
from hublink.delivery.batch import Batch
from hublink.delivery.circuit import Breaker, is_circuit_error
from hublink.delivery.credentials import Credential, CredentialProvider, token_wait_s
from hublink.delivery.lookups import Resolution, ResolutionHistory
from hublink.delivery.outcomes import association_of, block_seconds
from hublink.delivery.pauses import PAUSE_PARK_S
from hublink.delivery.rate_limit import Limiter
from hublink.domain import retry_policy
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import (
    AppUninstalledError,
    DeliveryError,
    RateHeaders,
    RateLimitedError,
    TokenRefreshError,
    TokenWaitTooLongError,
)
from hublink.domain.limits import RateLimit
from hublink.domain.lookups import LookupRequest
from hublink.domain.times import seconds_until_midnight
from hublink.lanes import Claimed, EventGroup, Lanes, portal_name
from hublink.lanes.codec import member_origin
from hublink.store.counters import CounterOps, Op

log = logging.getLogger("hublink.delivery.drain")

#: A pair this worker linked this recently is not sent again for work accepted before that link: a burst of
#: requests for one pair, claimed by successive batches, reaches HubSpot once (its default link is
#: idempotent, so this only saves calls); work accepted after it (a replay) is sent.
RECENTLY_LINKED_S = 10.0
#: The most pairs remembered (the oldest are forgotten first): a bound on the worker's memory.
RECENTLY_LINKED_MAX = 100_000
#: An uninstalled portal's work past its hold is dead-lettered this many items per claim.
UNINSTALLED_CLAIM = 500


class Verdict(enum.Enum):
    """What a gate says of a batch before the call."""

    GO = "go"
    STOP = "stop"


GO = Verdict.GO
STOP = Verdict.STOP


class Gate:
    """One concern around the drain's call: two hooks, each a no-op until a gate overrides it."""

    def before_call(self, batch: Batch) -> Verdict:
        """Look at ``batch`` before HubSpot is called: GO on, or STOP, having written why into ``batch.sent``."""
        return GO

    def after_call(self, batch: Batch) -> None:
        """Look at what became of ``batch`` (``batch.sent``) before it is settled."""


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


def hand_back_for_circuit(batch: Batch, items: Sequence[Claimed], breaker: Breaker, now_ms: int) -> None:
    """The portal's circuit opened: ``items`` go back unspent and the lane parks until the next probe."""
    sent = batch.sent
    sent.give_back(items, now_ms)
    sent.deferred += len(items)
    sent.paused = f"circuit:{portal_name(batch.portal)}"
    sent.park(now_ms + breaker.park_ms(portal_name(batch.portal)))


class PauseGate(Gate):
    """A paused lane parks without a call or an attempt; an open circuit lets one probe through when due."""

    def __init__(self, lanes: Lanes, breaker: Breaker | None, *, clock: Callable[[], float] = time.time) -> None:
        self._lanes = lanes
        self._breaker = breaker
        self._clock = clock

    def before_call(self, batch: Batch) -> Verdict:
        """GO when the claim was not paused, or as an open circuit's probe; else park the lane (or, for an
        uninstalled portal past its hold, dead-letter its work)."""
        paused = batch.claim.paused
        if not paused:
            return GO
        now = _now_ms(self._clock)
        park_until = now + int(PAUSE_PARK_S * 1000)
        portal = portal_name(batch.portal)
        breaker = self._breaker if paused.startswith("circuit:") else None
        uninstall = breaker.uninstall(portal) if breaker is not None else None
        if breaker is not None and uninstall is not None and uninstall.expired(now):
            # Past the hold: a probe first when one is due (a reinstall since the last one saves the work),
            # else the work ends as app_uninstalled, without a call.
            if batch.is_lookup or breaker.probe_wait_ms(portal, uninstalled=True):
                return self._end_uninstalled(batch, breaker.hold_h)
            if self._probe(batch, portal):
                return GO
            return STOP if batch.sent.leave else self._park(batch, now + breaker.park_ms(portal))
        if breaker is not None and not batch.is_lookup:
            wait_ms = breaker.probe_wait_ms(portal, uninstalled=uninstall is not None)
            if wait_ms:
                park_until = now + wait_ms
                if uninstall is not None:
                    park_until = min(park_until, max(uninstall.hold_ends_ms, now + 1))
            elif self._probe(batch, portal):
                return GO
            elif batch.sent.leave:
                return STOP
        # The lane waits, parked, until a resume or a closing circuit wakes it (or the park runs out and it
        # looks again).
        return self._park(batch, park_until)

    @staticmethod
    def _park(batch: Batch, until_ms: int) -> Verdict:
        batch.sent.park(until_ms)
        return STOP

    def _probe(self, batch: Batch, portal: str) -> bool:
        """Claim one item as the open circuit's probe: True to send it; else the lane leaves (nothing due) or
        parks (another pause holds it)."""
        probe = self._lanes.claim(batch.lane, 1, probe=True)
        if probe.items:
            log.info("probing an open circuit", extra={"portal_id": portal, "lane": batch.lane})
            batch.claim, batch.items, batch.probing = probe, list(probe.items), True
            return True
        if not probe.paused:
            # Nothing due to probe with: the probe slot goes to the next lane that has work.
            batch.sent.leave = True
        return False

    def _end_uninstalled(self, batch: Batch, hold_h: float) -> Verdict:
        """Dead-letter a claim of the uninstalled portal's work as ``app_uninstalled``; the drain claims on
        until the lane is empty (it then leaves)."""
        claim = self._lanes.claim(batch.lane, UNINSTALLED_CLAIM, probe=True)
        if claim.items:
            batch.claim, batch.items = claim, []
            batch.sent.answer(claim.items, AppUninstalledError(portal_name(batch.portal), hold_h))
            log.warning(
                "uninstalled portal's work dead-lettered after the hold",
                extra={"portal_id": portal_name(batch.portal), "lane": batch.lane, "items": len(claim.items)},
            )
            return STOP
        if claim.paused:  # an operator's pause holds it too: it waits for that
            return self._park(batch, _now_ms(self._clock) + int(PAUSE_PARK_S * 1000))
        batch.sent.leave = True
        return STOP


class BatchWindowGate(Gate):
    """An empty claim leaves the lane (idle, or scheduled for its next due work); one the window holds parks."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def before_call(self, batch: Batch) -> Verdict:
        """GO when the claim holds work to send."""
        if batch.claim.wait_ms:
            batch.sent.park(_now_ms(self._clock) + batch.claim.wait_ms)
            return STOP
        if not batch.items:
            batch.sent.leave = True
            return STOP
        return GO


class CredentialsGate(Gate):
    """The portal's credential; without one its work fails with the reason, or waits behind an open circuit."""

    def __init__(
        self, credentials: CredentialProvider, breaker: Breaker | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._credentials = credentials
        self._breaker = breaker
        self._clock = clock

    def before_call(self, batch: Batch) -> Verdict:
        """GO with ``batch.credential`` set; STOP when the portal is unknown or its OAuth refresh failed.

        A refresh that may pass (the token endpoint's 429 or 5xx, docs/reference/hubspot.md §9.6; another
        worker refreshing) is no fault of the work: it goes back without spending an attempt and the lane
        parks for the endpoint's Retry-After (capped), counted by the portal's circuit.
        """
        portal = portal_name(batch.portal)
        uninstalled = batch.probing and self._breaker is not None and self._breaker.uninstall(portal) is not None
        if uninstalled:
            # An uninstalled portal's probe is a token refresh: the access token cached went with the install.
            self._credentials.invalidate(batch.portal)
        try:
            batch.credential = self._credentials.for_portal(batch.portal)
            if uninstalled and batch.credential.refreshed and self._breaker is not None:
                # HubSpot issued a token again: the app is installed again, and the backlog goes out.
                self._breaker.answered(portal)
            return GO
        except TokenRefreshError as exc:
            now_ms = _now_ms(self._clock)
            if self._breaker is not None and self._breaker.failed_credentials(portal, exc):
                hand_back_for_circuit(batch, batch.items, self._breaker, now_ms)
            else:
                due = now_ms + int(token_wait_s(exc) * 1000)
                batch.sent.give_back(batch.items, due)
                batch.sent.deferred += len(batch.items)
                batch.sent.park(due)
            batch.items = []
            return STOP
        except DeliveryError as exc:  # an unknown portal (dead-lettered), or an OAuth refresh that failed
            if self._breaker is not None and self._breaker.failed_credentials(portal, exc):
                hand_back_for_circuit(batch, batch.items, self._breaker, _now_ms(self._clock))
            else:
                batch.sent.answer(batch.items, exc)
            batch.items = []
            return STOP


class CircuitGate(Gate):
    """Each failed call is counted by the portal's breaker; one that opens it sends the batch's work back."""

    def __init__(self, breaker: Breaker, *, clock: Callable[[], float] = time.time) -> None:
        self._breaker = breaker
        self._clock = clock

    def failed_call(self, batch: Batch, error: DeliveryError) -> None:
        """Count a whole call's failure; once it opens the circuit, the batch sends nothing more."""
        credential = batch.credential
        assert credential is not None
        trip = self._breaker.failed(
            portal_name(batch.portal), error, refreshable=credential.refreshable, refreshed=credential.refreshed
        )
        batch.sent.tripped = batch.sent.tripped or trip is not None

    def after_call(self, batch: Batch) -> None:
        """Hand back what failed for the portal's sake (and what waited behind it), or close on a probe's answer."""
        sent = batch.sent
        if sent.tripped:
            failed = [r.item for r in sent.answers if is_circuit_error(r.error)]
            sent.answers = [r for r in sent.answers if not is_circuit_error(r.error)]
            back = [*failed, *sent.back, *sent.held]
            sent.back, sent.held = [], []
            hand_back_for_circuit(batch, back, self._breaker, _now_ms(self._clock))
        elif batch.probing and batch.called:
            self._breaker.answered(portal_name(batch.portal))


class Resolver(Protocol):
    """Finds the records a rule's lookups name (``hublink.delivery.lookups.LookupResolver``)."""

    search_rate_limit: RateLimit

    def resolve(self, request: LookupRequest, credential: Credential, take_token: Callable[[str], None]) -> Resolution:
        """Resolve both sides with ``credential``, taking a token of ``kind`` before each HubSpot call."""
        ...


class LimiterGate(Gate):
    """The shared rate limit: a token per call, short waits slept, long ones park the lane; learns from answers.

    Also the one place that reads HubSpot's rate headers and 429s into the limiter (a daily budget nearly
    spent, a bucket blocked), and says when the account's daily limit resets.
    """

    def __init__(
        self,
        limiter: Limiter,
        credentials: CredentialProvider,
        policy: retry_policy.RetryPolicy,
        *,
        rate_limit: RateLimit,
        max_wait_ms: int,
        account_timezone: str = "UTC",
        daily_reserve: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        metrics: CounterOps | None = None,
    ) -> None:
        self._limiter = limiter
        self._credentials = credentials
        self._policy = policy
        self._rate_limit = rate_limit
        self._max_wait_ms = max_wait_ms
        self._timezone = account_timezone
        self._reserve = daily_reserve
        self._clock = clock
        self._sleep = sleep
        self._metrics = metrics
        #: Increments with no settle step of their own yet (rate-limit waits); they ride on the next one.
        self._pending: list[Op] = []

    def before_call(self, batch: Batch) -> Verdict:
        """Take the batch's first token: GO, or hand the items back and park when it is too far off."""
        if not batch.items:
            return GO
        assert batch.credential is not None
        wait_ms = self.take_for(batch.credential)
        if not wait_ms:
            return GO
        park_until = _now_ms(self._clock) + self.early(wait_ms)
        self.count_wait("park")
        batch.sent.give_back(batch.items, park_until)
        batch.sent.park(park_until)
        batch.items = []
        return STOP

    def after_call(self, batch: Batch) -> None:
        """Let the waits counted since the last settle step ride on this one."""
        if self._pending:
            batch.sent.ops[:0] = self._pending
            self._pending = []

    def park_before_claim(self, portal: str | None) -> int:
        """A park time (ms from now) when no token is near enough to claim for, else 0.

        A claim handed back unspent costs a state write per item: under a backlog at the limit, parking
        before the claim saves most of the drain's work.
        """
        try:
            credential = self._credentials.for_portal(portal)
        except DeliveryError:
            return 0  # the claim path finds out
        wait_ms = self._limiter.wait_ms(credential.bucket, self.limit_for(credential))
        return self.early(wait_ms) if wait_ms > self._max_wait_ms else 0

    def early(self, wait_ms: int) -> int:
        """A park for a token due in ``wait_ms``: ending half the longest sleep early.

        Waking a parked lane takes a sweep, an RQ job and a claim; begun early, that lands inside the
        wait (the drain then sleeps the rest), so the token is used when it frees rather than later: at
        HubSpot's limit every token's lateness is throughput lost for good.
        """
        return max(wait_ms - self._max_wait_ms // 2, 1)

    def limit_for(self, credential: Credential) -> RateLimit:
        """The credential's own limit, or the configured one."""
        return credential.rate_limit or self._rate_limit

    def take_for(self, credential: Credential) -> int:
        """Take one token of the credential's bucket (see :meth:`take`)."""
        return self.take(credential.bucket, self.limit_for(credential))

    def take(self, bucket: str, limit: RateLimit) -> int:
        """0 once a token is taken; else the wait that is too long to spend holding this worker."""
        while True:
            wait_ms = self._limiter.acquire(bucket, limit)
            if wait_ms == 0:
                return 0
            if wait_ms > self._max_wait_ms:
                return wait_ms
            self.count_wait("sleep")
            self._sleep(wait_ms / 1000)

    def count_wait(self, kind: str) -> None:
        """Count one wait for a token (``sleep`` or ``park``) on the next settle step."""
        if self._metrics is not None:
            self._pending += [
                self._metrics.op("rate_limit_waits", kind=kind),
                self._metrics.series_op("rate_waits", at_s=self._clock()),
            ]

    def daily_reset_s(self, credential: Credential | None) -> float:
        """Seconds until the account's daily limit resets (its portal's time zone, else the configured one)."""
        zone = (credential.time_zone if credential else None) or self._timezone
        return seconds_until_midnight(self._clock(), zone)

    def learn(self, credential: Credential, rate: RateHeaders | None, error: DeliveryError | None) -> None:
        """Fold HubSpot's rate headers and 429s into the shared limiter."""
        bucket = credential.bucket
        if rate is not None:
            self._limiter.observe(bucket, self._rate_limit, rate)
            if (
                rate.daily is not None
                and rate.daily_remaining is not None
                and rate.daily_remaining <= rate.daily * self._reserve
            ):
                # Stop before the account's daily budget is spent: the rest is left to its other apps,
                # and this bucket waits for the reset rather than running into the DAILY 429.
                self._limiter.block(bucket, self.daily_reset_s(credential))
                log.warning(
                    "daily limit nearly spent; waiting for the reset",
                    extra={"bucket": bucket, "daily": rate.daily, "remaining": rate.daily_remaining},
                )
        if isinstance(error, RateLimitedError):
            window = self._rate_limit.window_s
            self._limiter.block(bucket, block_seconds(error, self._policy, window, self.daily_reset_s(credential)))


class LookupsGate(Gate):
    """A lookup lane's work is resolved, not sent: found associations are queued, then the lookups settle."""

    def __init__(
        self,
        resolver: Resolver,
        lanes: Lanes,
        limiter: LimiterGate,
        *,
        clock: Callable[[], float] = time.time,
        resolutions: ResolutionHistory | None = None,
    ) -> None:
        self._resolver = resolver
        self._lanes = lanes
        self._limiter = limiter
        self._clock = clock
        #: Where resolved lookups are kept for traces (None: not kept).
        self._resolutions = resolutions

    def before_call(self, batch: Batch) -> Verdict:
        """GO for association lanes; resolve a lookup lane's batch here and STOP."""
        if not batch.is_lookup:
            return GO
        credential, sent = batch.credential, batch.sent
        assert credential is not None
        limiter = self._limiter

        def take(kind: str) -> None:
            if kind == "search":
                wait = limiter.take(f"{credential.bucket}-search", self._resolver.search_rate_limit)
            else:
                wait = limiter.take_for(credential)
            if wait:
                raise TokenWaitTooLongError(wait)

        resolved: list[tuple[Claimed, AssociationRequest]] = []
        for index, item in enumerate(batch.items):
            assert isinstance(item.request, LookupRequest)
            try:
                resolution = self._resolver.resolve(item.request, credential, take)
            except TokenWaitTooLongError as exc:
                park_until = _now_ms(self._clock) + exc.wait_ms
                limiter.count_wait("park")
                sent.give_back(batch.items[index:], park_until)
                sent.park(park_until)
                break
            except DeliveryError as exc:
                limiter.learn(credential, exc.detail.rate, exc)
                sent.answer([item], exc)
                continue
            sent.calls += 1
            if resolution.association is not None:
                resolved.append((item, resolution.association))
            else:
                log.info(
                    "lookup skipped", extra={"association_id": item.association_id, "reason": resolution.skipped_reason}
                )
            sent.answer([item], None)
        # Enqueued before the lookups settle: a crash in between repeats a lookup (harmless), never loses one.
        if resolved:
            if tracing.enabled():
                # One group per lookup, so that each association keeps its request's span context (its origin).
                groups = [
                    EventGroup([association], origin=member_origin(item.member)) for item, association in resolved
                ]
                ids = tuple(i for group_ids in self._lanes.enqueue(groups).ids for i in group_ids or ())
            else:
                ids = self._lanes.enqueue([EventGroup([association for _, association in resolved])]).ids[0] or ()
            if self._resolutions is not None:
                # Kept for traces: either record's trace then names the association the lookup became.
                for (item, association), association_id in zip(resolved, ids, strict=True):
                    assert isinstance(item.request, LookupRequest)
                    self._resolutions.record(item.association_id, item.request.rule, association_id, association)
        batch.items = []
        return STOP


class RecentlyLinkedGate(Gate):
    """Default links of a pair this worker saw linked moments ago, accepted before that, settle without a call."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        #: (lane, pair) -> when this worker saw HubSpot link it (wall clock), oldest first.
        self._linked: OrderedDict[tuple[str, tuple[str, str]], float] = OrderedDict()

    def before_call(self, batch: Batch) -> Verdict:
        """Answer the items already satisfied as linked and keep the rest to send.

        Any other action on a pair in the claim (an unlink, a label) makes its order matter: such a pair is
        sent as claimed and forgotten.
        """
        if not self._linked:
            return GO
        lane = batch.lane
        requests = [association_of(item) for item in batch.items]
        for request in requests:
            if request.call_kind != "default":
                self._linked.pop((lane, request.pair), None)
        horizon = self._clock() - RECENTLY_LINKED_S
        send: list[Claimed] = []
        known: list[Claimed] = []
        for item, request in zip(batch.items, requests, strict=True):
            seen = self._linked.get((lane, request.pair))
            # Only work accepted before HubSpot confirmed the pair is satisfied by that confirmation: what
            # came later (a replay, a request made after an unlink elsewhere) is a new intent, and is sent.
            satisfied = seen is not None and seen >= horizon and item.first_seen_ms <= seen * 1000
            (known if satisfied else send).append(item)
        batch.sent.answer(known, None)
        batch.items = send
        return GO

    def after_call(self, batch: Batch) -> None:
        """Remember each pair the call linked (and forget each it did not)."""
        now = self._clock()
        for result in batch.sent.answers[batch.sent.call_from :] if batch.called else ():
            request = association_of(result.item)
            key = (batch.lane, request.pair)
            self._linked.pop(key, None)
            if result.error is None and request.call_kind == "default":
                self._linked[key] = now  # re-inserted: the dict stays oldest first
        horizon = now - RECENTLY_LINKED_S
        # An OrderedDict: evicting from the front of a plain dict rescans the slots already emptied, which
        # makes each 2,000-input call cost tens of milliseconds more than the one before.
        while self._linked:
            _, at = next(iter(self._linked.items()))
            if len(self._linked) <= RECENTLY_LINKED_MAX and at >= horizon:
                break
            self._linked.popitem(last=False)
