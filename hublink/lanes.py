"""Lanes, seen from the worker side: claim due work, settle outcomes, leave, and sweep.

A lane holds the associations that one batch call could carry (same portal, same object-type pair),
scored by when each is due. The scripts in ``hublink/lua`` keep four promises that together mean
"nothing acknowledged is lost": a claimed association is leased, never just popped (claim.lua); an
expired lease goes back to its lane (sweep.lua); an outcome is applied only to an association that
still exists (settle.lua); and a drain that leaves cannot strand work added meanwhile (finish.lua).

Keys owned: ``lane:<lane>``, ``lanes``, ``lanejob:<lane>``, ``wake``, ``inflight``, plus ``a:<id>`` and
the dead-letter keys through settle.lua. Fails closed: raises StoreUnavailableError without Redis.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from redis import Redis

from hublink.connections import store_errors, text
from hublink.domain.lookups import Work, work_from_record
from hublink.keys import Keys
from hublink.metrics import Op
from hublink.scripts import Scripts


def now_ms() -> int:
    """Wall-clock epoch milliseconds: lanes are shared by machines, so monotonic clocks cannot be."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class Claimed:
    """One leased association with its retry state."""

    association_id: str
    request: Work
    attempts: int
    history: list[dict[str, Any]]
    first_seen_ms: int
    replays: int


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim returned: leased items, or how long the batch window asks to wait."""

    items: list[Claimed] = field(default_factory=list)
    wait_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The settled fate of one claimed association."""

    item: Claimed
    kind: Literal["done", "retry", "dead"]
    due_ms: int = 0
    dead_letter: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did, and how long until something else falls due (None: nothing pending)."""

    reclaimed: int
    woken: int
    next_due_ms: int | None


class LaneStore:
    """The worker's view of the lanes; every method is one atomic Lua call."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        lease_s: float,
        dead_letter_ttl_s: float,
        dead_letter_max: int,
        scripts: Scripts | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts or Scripts(redis)
        self.lease_ms = int(lease_s * 1000)
        self._dl_ttl_s = max(int(dead_letter_ttl_s), 1)
        self._dl_max = dead_letter_max

    def claim(self, lane: str, limit: int, *, window_ms: int = 0) -> Claim:
        """Lease up to ``limit`` due associations of ``lane``."""
        with store_errors():
            raw = self._scripts.claim(
                keys=[self._keys.lane(lane), self._keys.inflight, self._keys.lane_job(lane)],
                args=[now_ms(), limit, self.lease_ms, self._keys.association_prefix, window_ms],
            )
        if raw and raw[0] == b"wait":
            return Claim(wait_ms=int(float(raw[1])))
        items = []
        for i in range(0, len(raw), 6):
            assoc_id, req, attempts, hist, first_seen, replays = raw[i : i + 6]
            items.append(
                Claimed(
                    association_id=assoc_id.decode(),
                    request=work_from_record(json.loads(req)),
                    attempts=int(attempts or 0),
                    history=json.loads(hist or b"[]"),
                    first_seen_ms=int(first_seen or 0),
                    replays=int(replays or 0),
                )
            )
        return Claim(items=items)

    def settle(self, lane: str, outcomes: Sequence[Outcome], counters: Sequence[Op] = ()) -> int:
        """Apply outcomes atomically; return how many still existed to be applied."""
        payload = {
            "now": now_ms(),
            "dl_ttl_s": self._dl_ttl_s,
            "dl_max": self._dl_max,
            "dl_prefix": self._keys.dead_letter_prefix,
            "counters": [list(c) for c in counters],
            "outcomes": [
                {
                    "id": o.item.association_id,
                    "akey": self._keys.association(o.item.association_id),
                    "kind": o.kind,
                    "lane": lane,
                    "lkey": self._keys.lane(lane),
                    "due": o.due_ms,
                    "attempts": o.item.attempts,
                    "hist": json.dumps(o.item.history, separators=(",", ":")),
                    "dl": json.dumps(o.dead_letter, separators=(",", ":")) if o.dead_letter else False,
                }
                for o in outcomes
            ],
        }
        with store_errors():
            return int(
                self._scripts.settle(
                    keys=[
                        self._keys.inflight,
                        self._keys.lanes,
                        self._keys.dead_letters,
                        self._keys.dead_letters_dropped,
                    ],
                    args=[json.dumps(payload)],
                )
            )

    def finish(self, lane: str, *, park_until_ms: int = 0) -> str:
        """Leave ``lane``: park it, hand it on, schedule it for its next due item, or mark it idle."""
        with store_errors():
            result = self._scripts.finish(
                keys=[self._keys.lane(lane), self._keys.lane_job(lane), self._keys.lanes, self._keys.wake],
                args=[now_ms(), lane, park_until_ms, self.lease_ms],
            )
        return result.decode() if isinstance(result, bytes) else str(result)

    def sweep(self, limit: int = 1000) -> SweepReport:
        """Hand back expired leases and wake due lanes; safe to run from every worker at once."""
        with store_errors():
            reclaimed, woken, next_due = self._scripts.sweep(
                keys=[self._keys.inflight, self._keys.lanes, self._keys.wake],
                args=[
                    now_ms(),
                    self.lease_ms,
                    limit,
                    self._keys.association_prefix,
                    self._keys.lane_prefix,
                    self._keys.lane_job_prefix,
                ],
            )
        return SweepReport(int(reclaimed), int(woken), None if int(next_due) < 0 else int(next_due))

    def pop_wake(self, timeout_s: float) -> list[str]:
        """Block up to ``timeout_s`` for lanes to wake; return every lane waiting (possibly none)."""
        with store_errors():
            first = self._redis.blpop([self._keys.wake], timeout=max(timeout_s, 0.01))
            if not first:
                return []
            rest = self._redis.lpop(self._keys.wake, 1000) or []
        lanes = [text(first[1]), *(text(raw) for raw in rest)]
        return list(dict.fromkeys(lanes))

    def pending_count(self) -> int:
        """Associations waiting or in flight (for health and metrics)."""
        with store_errors():
            lanes = [text(m) for m in self._redis.zrange(self._keys.lanes, 0, -1)]
            pipe = self._redis.pipeline(transaction=False)
            for lane in lanes:
                pipe.zcard(self._keys.lane(lane))
            pipe.zcard(self._keys.inflight)
            return int(sum(pipe.execute()))
