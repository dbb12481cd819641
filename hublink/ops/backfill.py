"""Backfills: apply one rule to the records that existed before HubLink, resumable, cancellable, visible.

A backfill (``hublink backfill RULE``) walks the records of the rule's object type through
HubSpot's CRM search (``hublink.domain.backfill`` plans the pages and the events), within the search
rate limit shared with the workers' lookups (bucket ``<bucket>-search``), and hands each page's events to
the same intake path as live events (``hublink.intake.expansion.accept``: same rules, dedup and lanes).
After each page its cursor (the last ``hs_object_id`` read) and counts are checkpointed in Redis, so that
``--resume ID`` continues after a crash or Ctrl-C: a page read twice queues nothing twice, because each
record's event has a dedup key of its own. Cancelling (``hublink backfill cancel ID`` or the dashboard) is a
flag the walk checks before each page.

Keys owned: ``backfill:<id>`` (hash: the plan, cursor, counts, state; kept 30 days after its last
change) and ``backfills`` (zset of ids by start time, the newest 100 kept). Fails closed: raises
StoreUnavailableError without Redis.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

from redis import Redis

from hublink.delivery.credentials import Credential
from hublink.delivery.rate_limit import Limiter
from hublink.domain.backfill import PAGE_SIZE, BackfillPlan
from hublink.domain.errors import DeliveryError, RateLimitedError, TransientError
from hublink.domain.events import CrmEvent
from hublink.domain.limits import RateLimit
from hublink.domain.rules import RuleSet
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

log = logging.getLogger("hublink.ops.backfill")

State = Literal["running", "interrupted", "cancelled", "failed", "done"]
#: How long a backfill's record is kept after its last change.
BACKFILL_TTL_S = 30 * 86400
#: Backfills listed (and kept in the index).
MAX_BACKFILLS = 100
#: Attempts at one page when HubSpot answers with a transient error, before the walk stops (resumable).
MAX_PAGE_ATTEMPTS = 5


@dataclass(slots=True, kw_only=True)
class Backfill:
    """One backfill's plan, cursor and counts (the ``backfill:<id>`` hash)."""

    id: str
    rule: str
    object_type: str
    portal_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int | None = None
    dry_run: bool = False
    mapping: dict[str, str] = field(default_factory=dict)
    date_property: str | None = None
    #: The last hs_object_id read ("0": none yet).
    cursor: str = "0"
    read: int = 0
    queued: int = 0
    #: Records the walk expects in all (read so far plus what the last query said remained).
    total: int | None = None
    state: State = "running"
    cancel_requested: bool = False
    started_ms: int = 0
    updated_ms: int = 0
    error: str | None = None

    @property
    def is_finished(self) -> bool:
        """True once the walk cannot continue without ``--resume`` (or at all)."""
        return self.state in {"cancelled", "done"}

    def rate_per_s(self, now_ms: int) -> float:
        """Records read per second since the start."""
        elapsed = max(now_ms - self.started_ms, 1) / 1000
        return self.read / elapsed

    def expected(self) -> int | None:
        """How many records the walk will read in all, when known (bounded by ``limit``)."""
        if self.total is None:
            return self.limit
        return min(self.total, self.limit) if self.limit is not None else self.total

    def seconds_left(self, now_ms: int) -> float | None:
        """Estimated time left at the rate so far, when the total is known."""
        expected, rate = self.expected(), self.rate_per_s(now_ms)
        if expected is None or rate <= 0:
            return None
        return max(expected - self.read, 0) / rate

    def to_hash(self) -> dict[str, str]:
        """The stored form: each field as JSON."""
        return {k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Backfill:
        """Inverse of :meth:`to_hash`, ignoring fields a newer version may have added."""
        known = {k: json.loads(v) for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def progress_line(backfill: Backfill, now_ms: int, *, width: int = 24) -> str:
    """``[#####-----] 1,200/5,000 records · 1,180 associations queued · 412/s · 0m09s left``."""
    expected = backfill.expected()
    share = min(backfill.read / expected, 1.0) if expected else (1.0 if backfill.state == "done" else 0.0)
    done = int(share * width)
    bar = "#" * done + "-" * (width - done)
    of = f"/{expected:,}" if expected is not None else ""
    left = backfill.seconds_left(now_ms) if backfill.state == "running" else None
    eta = f"{int(left // 60)}m{int(left % 60):02d}s left" if left is not None else backfill.state
    verb = "would be queued" if backfill.dry_run else "queued"
    return (
        f"[{bar}] {backfill.read:,}{of} records · {backfill.queued:,} associations {verb} · "
        f"{backfill.rate_per_s(now_ms):,.0f}/s · {eta}"
    )


class BackfillStore(Protocol):
    """Where backfills are checkpointed: :class:`RedisBackfills`, or :class:`MemoryBackfills` in unit tests."""

    def save(self, backfill: Backfill) -> None:
        """Write the whole record (its cursor and counts included)."""
        ...

    def get(self, backfill_id: str) -> Backfill | None:
        """One backfill, or None."""
        ...

    def request_cancel(self, backfill_id: str) -> bool:
        """Ask a running walk to stop before its next page; False for an unknown id."""
        ...


def new_backfill_id() -> str:
    """A short random id (16 hex characters)."""
    return os.urandom(8).hex()


class RedisBackfills:
    """Backfills in Redis (``backfill:<id>`` and ``backfills``)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    def save(self, backfill: Backfill) -> None:
        """Write the record, refresh its TTL and index it (keeping the newest ``MAX_BACKFILLS``)."""
        key = self._keys.backfill(backfill.id)
        with store_errors():
            pipe = self._redis.pipeline(transaction=True)
            # The cancel flag belongs to whoever set it: a save must never clear it.
            stored: dict[Any, Any] = backfill.to_hash()  # redis-py's stubs want an invariant Mapping
            stored.pop("cancel_requested")
            pipe.hset(key, mapping=stored)
            pipe.hsetnx(key, "cancel_requested", "false")
            pipe.expire(key, BACKFILL_TTL_S)
            pipe.zadd(self._keys.backfills, {backfill.id: backfill.started_ms})
            pipe.zremrangebyrank(self._keys.backfills, 0, -MAX_BACKFILLS - 1)
            pipe.execute()

    def get(self, backfill_id: str) -> Backfill | None:
        """One backfill, or None when unknown or expired."""
        with store_errors():
            raw = self._redis.hgetall(self._keys.backfill(backfill_id))
        if not raw:
            return None
        return Backfill.from_hash({text(k): text(v) for k, v in raw.items()})

    def request_cancel(self, backfill_id: str) -> bool:
        """Set the cancel flag the walk checks before each page."""
        key = self._keys.backfill(backfill_id)
        with store_errors():
            if not self._redis.exists(key):
                return False
            self._redis.hset(key, "cancel_requested", "true")
        return True

    def recent(self, limit: int = 20) -> list[Backfill]:
        """The newest backfills, newest first (for the dashboard and ``hublink backfill list``)."""
        with store_errors():
            ids = [text(i) for i in self._redis.zrevrange(self._keys.backfills, 0, limit - 1)]
        found = [self.get(i) for i in ids]
        return [b for b in found if b is not None]


class MemoryBackfills:
    """The store in process memory: the unit tests' twin of :class:`RedisBackfills`."""

    def __init__(self) -> None:
        self.saved: dict[str, Backfill] = {}
        self.cancelled: set[str] = set()

    def save(self, backfill: Backfill) -> None:
        """Keep a copy (the cancel flag stays as set)."""
        self.saved[backfill.id] = replace(backfill, cancel_requested=backfill.id in self.cancelled)

    def get(self, backfill_id: str) -> Backfill | None:
        """A copy of the saved record."""
        found = self.saved.get(backfill_id)
        return replace(found, mapping=dict(found.mapping)) if found else None

    def request_cancel(self, backfill_id: str) -> bool:
        """Flag it."""
        if backfill_id not in self.saved:
            return False
        self.cancelled.add(backfill_id)
        self.saved[backfill_id].cancel_requested = True
        return True


class RecordSearch(Protocol):
    """The search call (``HubSpotClient.search_records``)."""

    def search_records(
        self,
        token: str,
        object_type: str,
        filters: Sequence[Mapping[str, str]],
        properties: Sequence[str],
        limit: int,
        *,
        base_url: str | None = None,
    ) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        """(total, [(id, properties)]) ascending by hs_object_id."""
        ...


#: Hands a page's events to intake; returns how many associations and lookups were stored.
Enqueue = Callable[[Sequence[CrmEvent], RuleSet, float], int]
#: Counts what a page's events would queue, queueing nothing (``--dry-run``).
Count = Callable[[Sequence[CrmEvent], RuleSet, float], int]


class BackfillRunner:
    """Walks one backfill page by page; built by the CLI from the web's parts."""

    def __init__(
        self,
        *,
        store: BackfillStore,
        search: RecordSearch,
        limiter: Limiter,
        search_limit: RateLimit,
        enqueue: Enqueue,
        count: Count,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self._store = store
        self._search = search
        self._limiter = limiter
        self._search_limit = search_limit
        self._enqueue = enqueue
        self._count = count
        self._clock = clock
        self._sleep = sleep
        #: Asked between pages and while waiting for the search limit: True ends the walk as
        #: ``interrupted``. A flag, not an exception, so that a stop never lands inside a Redis exchange
        #: (an interrupted pipeline leaves its connection holding replies nobody reads).
        self._stop = stop

    def start(self, backfill: Backfill) -> Backfill:
        """Record a new backfill (state running) before its first page."""
        now = int(self._clock() * 1000)
        backfill = replace(backfill, started_ms=backfill.started_ms or now, updated_ms=now)
        self._store.save(backfill)
        return backfill

    def run(
        self,
        backfill: Backfill,
        plan: BackfillPlan,
        credential: Credential,
        on_page: Callable[[Backfill], None] = lambda _: None,
    ) -> Backfill:
        """Walk from the backfill's cursor until done, cancelled, or a page fails ``MAX_PAGE_ATTEMPTS`` times.

        Each page is checkpointed after its events are stored. A stop asked for (``stop``) ends the walk
        ``interrupted`` (resumable) after the page in hand; KeyboardInterrupt does the same and is raised
        again.
        """
        rules = RuleSet([plan.rule])
        backfill = replace(backfill, state="running", error=None)
        self._store.save(backfill)
        try:
            while backfill.limit is None or backfill.read < backfill.limit:
                if self._stop():
                    backfill = replace(backfill, state="interrupted")
                    break
                stored = self._store.get(backfill.id)
                if stored is not None and stored.cancel_requested:
                    backfill = replace(backfill, state="cancelled", cancel_requested=True)
                    break
                size = PAGE_SIZE if backfill.limit is None else min(PAGE_SIZE, backfill.limit - backfill.read)
                page = self._page(plan, credential, backfill.cursor, size)
                if page is None:
                    backfill = replace(backfill, state="interrupted")
                    break
                if isinstance(page, DeliveryError):
                    backfill = replace(backfill, state="failed", error=f"{type(page).__name__}: {page}"[:300])
                    break
                total, records = page
                if not records:
                    backfill = replace(backfill, state="done", total=backfill.read)
                    break
                now = self._clock()
                events = [plan.event(record_id, props, now_s=now) for record_id, props in records]
                handed = self._count if backfill.dry_run else self._enqueue
                queued = handed(events, rules, now)
                backfill = replace(
                    backfill,
                    cursor=records[-1][0],
                    read=backfill.read + len(records),
                    queued=backfill.queued + queued,
                    total=backfill.read + total,
                    updated_ms=int(now * 1000),
                )
                self._store.save(backfill)
                on_page(backfill)
            else:
                backfill = replace(backfill, state="done")
        except KeyboardInterrupt:
            self._store.save(replace(backfill, state="interrupted", updated_ms=int(self._clock() * 1000)))
            raise
        backfill = replace(backfill, updated_ms=int(self._clock() * 1000))
        self._store.save(backfill)
        log.info("backfill ended", extra={"backfill": backfill.id, "state": backfill.state, "read": backfill.read})
        return backfill

    def _page(
        self, plan: BackfillPlan, credential: Credential, cursor: str, size: int
    ) -> tuple[int, list[tuple[str, dict[str, Any]]]] | DeliveryError | None:
        """One search page within the search limit; 429s and transient errors are waited out a few times.

        None when a stop was asked for while waiting.
        """
        bucket = f"{credential.bucket}-search"
        error: DeliveryError | None = None
        for attempt in range(MAX_PAGE_ATTEMPTS):
            while wait_ms := self._limiter.acquire(bucket, self._search_limit):
                self._sleep(wait_ms / 1000)  # a command in a terminal: waiting is its job
                if self._stop():
                    return None
            try:
                return self._search.search_records(
                    credential.token,
                    plan.object_type,
                    plan.filters(cursor),
                    plan.properties(),
                    size,
                    base_url=credential.base_url,
                )
            except RateLimitedError as exc:
                error = exc
                self._sleep(exc.retry_after_s or self._search_limit.window_s)
            except TransientError as exc:
                error = exc
                self._sleep(min(2.0**attempt, 30.0))
            except DeliveryError as exc:
                return exc
            if self._stop():
                return None
        assert error is not None
        return error
