"""The dashboard's overview: what the operator's pages show, read from Redis in a few round-trips.

Queue depths per lane, work in flight, dead letters, the last hour per minute (throughput, failures, HubSpot
requests and 429s), each rate-limit bucket's headroom as HubSpot last reported it, recent failures, and
the newest backfills with their progress.
Reads only; owns no keys. Fails closed: raises StoreUnavailableError without Redis (the page answers 503).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from hublink.lanes import lane_depths
from hublink.ops.backfill import RedisBackfills, progress_line
from hublink.ops.dead_letters import DeadLetterFilter, DeadLetterStore
from hublink.ops.metrics import Metrics
from hublink.store.connections import store_errors, text
from hublink.store.keys import Keys

#: Lanes listed on the overview, deepest first; the rest are counted (there is one lane per portal and
#: object-type pair, so a busy account can have hundreds).
MAX_LANES_SHOWN = 50
#: Dead letters listed under "recent failures".
RECENT_FAILURES = 10
#: Backfills listed on the overview.
RECENT_BACKFILLS = 10
#: Minutes of per-minute series the charts cover (the series hashes are kept two hours).
SERIES_MINUTES = 60


@dataclass(frozen=True, slots=True)
class Headroom:
    """One rate-limit bucket as HubSpot last described it in its X-HubSpot-RateLimit-* headers."""

    bucket: str
    max: int
    remaining: int
    interval_ms: int
    age_s: float

    @property
    def share_free(self) -> float:
        """Remaining / max, between 0 and 1."""
        return min(max(self.remaining / self.max, 0.0), 1.0) if self.max else 0.0

    @property
    def is_stale(self) -> bool:
        """True when HubSpot's window has passed since the report, so the bucket has refilled since."""
        return self.age_s * 1000 > self.interval_ms


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything on the dashboard's first page."""

    lanes: list[tuple[str, int]]
    lanes_not_shown: int
    pending: int
    inbox: int
    in_flight: int
    dead_letters: int
    dropped: int
    drain_jobs_queued: int
    series: list[dict[str, int]]
    headroom: list[Headroom]
    recent_failures: list[dict[str, Any]]
    #: The newest backfills: id, rule, state, whether it can be cancelled, and its progress line.
    backfills: list[dict[str, Any]] = field(default_factory=list)

    @property
    def linked_last_hour(self) -> int:
        """Associations HubSpot confirmed in the last hour."""
        return sum(row["linked"] for row in self.series)

    @property
    def error_rate_last_hour(self) -> float:
        """Failed attempts / all attempts in the last hour (0 when there were none)."""
        return _rate(sum(row["failed"] for row in self.series), self.linked_last_hour)

    @property
    def linked_per_minute(self) -> list[int]:
        """Associations linked in each minute, oldest first."""
        return [row["linked"] for row in self.series]

    @property
    def error_rate_per_minute(self) -> list[float]:
        """Failed attempts / all attempts in each minute, oldest first."""
        return [_rate(row["failed"], row["linked"]) for row in self.series]

    @property
    def rate_limited_per_minute(self) -> list[int]:
        """HubSpot 429 answers in each minute, oldest first."""
        return [row["hubspot_429"] for row in self.series]


def _rate(failed: int, linked: int) -> float:
    return failed / (failed + linked) if failed + linked else 0.0


def overview(
    redis: Redis,
    keys: Keys,
    *,
    queue_name: str,
    dead_letters: DeadLetterStore,
    metrics: Metrics,
    now_s: float | None = None,
) -> Overview:
    """Read the overview; raises StoreUnavailableError without Redis."""
    now = time.time() if now_s is None else now_s
    with store_errors():
        lane_names = [text(m) for m in redis.zrange(keys.lanes, 0, -1)]
        waiting = [lane.waiting for lane in lane_depths(redis, keys, lane_names)]
        pipe = redis.pipeline(transaction=False)
        pipe.xlen(keys.inbox)
        pipe.zcard(keys.inflight)
        pipe.llen(keys.rq_queue(queue_name))  # the drain jobs waiting for a worker
        results = pipe.execute()
        headroom = _headroom(redis, keys, now)
    depths = sorted(zip(lane_names, waiting, strict=True), key=lambda lane: (-lane[1], lane[0]))
    busy = [lane for lane in depths if lane[1]]
    recent, _ = dead_letters.page(DeadLetterFilter(), limit=RECENT_FAILURES)
    return Overview(
        lanes=busy[:MAX_LANES_SHOWN],
        lanes_not_shown=max(len(busy) - MAX_LANES_SHOWN, 0),
        pending=sum(n for _, n in depths),
        inbox=int(results[-3]),
        in_flight=int(results[-2]),
        dead_letters=dead_letters.count(),
        dropped=dead_letters.dropped(),
        drain_jobs_queued=int(results[-1]),
        series=metrics.series(now, SERIES_MINUTES),
        headroom=headroom,
        recent_failures=[letter.to_wire() for letter in recent],
        backfills=[
            {
                "id": b.id,
                "rule": b.rule,
                "state": "cancelling" if b.cancel_requested and b.state == "running" else b.state,
                "cancellable": b.state == "running" and not b.cancel_requested,
                "progress": progress_line(b, int(now * 1000)),
            }
            for b in RedisBackfills(redis, keys).recent(RECENT_BACKFILLS)
        ],
    )


def _headroom(redis: Redis, keys: Keys, now_s: float) -> list[Headroom]:
    """Every bucket HubSpot has reported on in the last ten minutes (the hashes' TTL), by name."""
    # Bucket names are listed nowhere else (they come from credentials), so scan for the hashes.
    head, _, tail = keys.rate_seen("\0").partition("\0")
    found = sorted(text(k) for k in redis.scan_iter(match=keys.rate_seen("*"), count=1000))
    pipe = redis.pipeline(transaction=False)
    for key in found:
        pipe.hgetall(key)
    out = []
    for key, raw in zip(found, pipe.execute(), strict=True):
        values = {text(k): text(v) for k, v in raw.items()}
        if not values.get("max"):
            continue  # expired between the scan and the read
        out.append(
            Headroom(
                bucket=key[len(head) : len(key) - len(tail)],
                max=int(float(values["max"])),
                remaining=int(float(values.get("remaining", 0))),
                interval_ms=int(float(values.get("interval_ms", 0))),
                age_s=max(now_s - float(values.get("at", 0)) / 1000, 0.0),
            )
        )
    return out
