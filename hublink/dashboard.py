"""Dashboard: what the operator's pages show, read from Redis in a few round-trips.

Queue depths per lane, work in flight, dead letters, the last hour per minute (throughput, failures, HubSpot
requests and 429s), each rate-limit bucket's headroom as HubSpot last reported it, and recent failures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from hublink.connections import store_errors, text
from hublink.dead_letters import DeadLetterFilter, DeadLetterStore
from hublink.keys import Keys
from hublink.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Headroom:
    """One rate-limit bucket as HubSpot last described it."""

    bucket: str
    max: int
    remaining: int
    age_s: float

    @property
    def share_free(self) -> float:
        """Remaining / max."""
        return self.remaining / self.max if self.max else 0.0


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything on the dashboard's first page."""

    lanes: list[tuple[str, int]]
    in_flight: int
    dead_letters: int
    dropped: int
    drain_jobs_queued: int
    series: list[dict[str, int]]
    headroom: list[Headroom]
    recent_failures: list[dict[str, Any]]

    @property
    def pending(self) -> int:
        """Associations waiting in lanes."""
        return sum(n for _, n in self.lanes)

    @property
    def linked_last_hour(self) -> int:
        """Associations HubSpot confirmed in the last hour."""
        return sum(row["linked"] for row in self.series)

    @property
    def error_rate_last_hour(self) -> float:
        """Failed attempts / all attempts in the last hour."""
        failed = sum(row["failed"] for row in self.series)
        attempts = failed + self.linked_last_hour
        return failed / attempts if attempts else 0.0


def overview(redis: Redis, keys: Keys, queue_name: str, dead_letters: DeadLetterStore) -> Overview:
    """Read the overview (raises StoreUnavailableError without Redis)."""
    now = time.time()
    with store_errors():
        lane_names = [text(m) for m in redis.zrange(keys.lanes, 0, -1)]
        pipe = redis.pipeline(transaction=False)
        for lane in lane_names:
            pipe.zcard(keys.lane(lane))
        pipe.zcard(keys.inflight)
        pipe.llen(f"rq:queue:{queue_name}")
        results = pipe.execute()
        seen_keys = [text(k) for k in redis.scan_iter(match=f"{keys.prefix}rl:*:seen", count=200)]
        pipe = redis.pipeline(transaction=False)
        for key in seen_keys:
            pipe.hgetall(key)
        seen = pipe.execute()
    lanes = sorted(zip(lane_names, results[: len(lane_names)], strict=True), key=lambda x: -x[1])
    in_flight, jobs = results[len(lane_names) :]
    headroom = []
    for key, raw in zip(seen_keys, seen, strict=True):
        values = {text(k): text(v) for k, v in raw.items()}
        if values.get("max"):
            bucket = key[len(keys.prefix) + 3 : -len(":seen")]
            headroom.append(
                Headroom(
                    bucket,
                    int(float(values["max"])),
                    int(float(values.get("remaining", 0))),
                    max(now - float(values.get("at", 0)) / 1000, 0.0),
                )
            )
    recent, _ = dead_letters.page(DeadLetterFilter(), limit=10)
    return Overview(
        lanes=lanes,
        in_flight=int(in_flight),
        dead_letters=dead_letters.count(),
        dropped=dead_letters.dropped(),
        drain_jobs_queued=int(jobs),
        series=Metrics(redis, keys).series(now, 60),
        headroom=headroom,
        recent_failures=recent,
    )
