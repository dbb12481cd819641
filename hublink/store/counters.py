"""Counters: the catalogue of HubLink's metrics and the increments that ride along in the Lua scripts.

A metric is a Redis hash ``m:<name>`` whose fields are label sets (``source=hubspot,outcome=accepted``) and
whose values are counts. Increments (:data:`Op`) ride along in the Lua scripts that do the work
(enqueue.lua, settle.lua), so a count is exact and atomic with what it counts, and costs no extra
round-trip; :meth:`Counters.apply` writes the few that no script carries. Histograms are counters per
bucket. Reading them is ``hublink.ops.metrics``'s business.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from redis import Redis

from hublink.store.connections import store_errors
from hublink.store.keys import Keys

#: Bucket bounds (seconds) of the end-to-end latency histogram: intake's 202 to HubSpot's 200.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


@dataclass(frozen=True, slots=True)
class Counter:
    """A counter's name (as exported, without ``hublink_`` and ``_total``), help text and label names."""

    name: str
    help: str
    labels: tuple[str, ...]


COUNTERS: tuple[Counter, ...] = (
    Counter("events_received", "Events received, by source and outcome", ("source", "outcome")),
    Counter("requests_refused", "HTTP requests refused, by endpoint and reason", ("endpoint", "reason")),
    Counter("associations_enqueued", "Associations and lookups accepted into lanes", ("source", "kind")),
    Counter("associations_succeeded", "Associations HubSpot confirmed", ("source",)),
    Counter("associations_failed", "Failed association attempts, by error class", ("error",)),
    Counter("associations_dead_lettered", "Associations moved to the dead-letter store", ("source", "category")),
    Counter(
        "associations_record_deleted",
        "Associations that named a record deleted in HubSpot: dead-lettered as record_deleted, not failures",
        ("source",),
    ),
    Counter("retries", "Retries and deferrals scheduled, by error class", ("error", "kind")),
    Counter("reconcile_removed", "Associations a mode: replace rule removed (reconcile), by source", ("source",)),
    Counter("hubspot_requests", "HubSpot requests, by endpoint and status", ("endpoint", "status")),
    Counter("hubspot_rate_limited", "HubSpot 429 answers, by policyName", ("policy",)),
    Counter("rate_limit_waits", "Times a worker waited for or parked on the shared rate limit", ("kind",)),
    Counter("rule_problems", "Rules that matched an event but could not be applied to it", ("rule",)),
    Counter("inbox_set_aside", "Inbox entries that could not be expanded, moved to inbox:failed", ("kind",)),
    Counter("alerts_sent", "Alerts posted to the alert webhook, by kind and outcome", ("kind", "outcome")),
    Counter("circuit_changes", "Portal circuits opened and closed, by reason", ("event", "reason")),
    Counter("journal_events_read", "Events read from a portal's Webhooks Journal into the inbox", ("portal",)),
    Counter(
        "signature_secret_matched",
        "Signed requests verified, by source and by the secret that matched (current, or previous in a rotation)",
        ("source", "which"),
    ),
)
LATENCY = "e2e_latency_seconds"
#: Per-minute series for the dashboard's last-hour charts: ``ts:<epoch minute>`` hashes, kept two hours.
SERIES_FIELDS = ("enqueued", "linked", "failed", "dead", "hubspot_requests", "hubspot_429", "rate_waits")
SERIES_TTL_S = 2 * 3600
_BY_NAME = {c.name: c for c in COUNTERS}

#: One increment: (hash key, field, amount, TTL in seconds to give the hash; 0 = none).
Op = tuple[str, str, int, int]


def label_field(labels: Mapping[str, object]) -> str:
    """The hash field for a label set: ``k=v`` pairs joined by commas, in the counter's label order."""
    return ",".join(f"{k}={str(v).replace(',', ';').replace('=', ':')}" for k, v in labels.items())


class CounterOps:
    """Builds increments for the Lua scripts to carry: pure, it only names keys and fields."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def op(self, name: str, n: int = 1, **labels: object) -> Op:
        """One increment of counter ``name``; labels must be exactly the counter's (KeyError/ValueError)."""
        counter = _BY_NAME[name]
        if set(labels) != set(counter.labels):
            raise ValueError(f"{name}: expected labels {counter.labels}, got {sorted(labels)}")
        ordered = {k: labels[k] for k in counter.labels}
        return (self._keys.metric(name), label_field(ordered), n, 0)

    def latency_ops(self, seconds: Iterable[float]) -> list[Op]:
        """Histogram increments for end-to-end latencies (one bucket each, plus sum in ms and count)."""
        ops: dict[str, int] = {}
        for s in seconds:
            index = bisect.bisect_left(LATENCY_BUCKETS_S, s)
            bucket = f"le={LATENCY_BUCKETS_S[index]}" if index < len(LATENCY_BUCKETS_S) else "le=+Inf"
            ops[bucket] = ops.get(bucket, 0) + 1
            ops["sum_ms"] = ops.get("sum_ms", 0) + int(s * 1000)
            ops["count"] = ops.get("count", 0) + 1
        key = self._keys.metric(LATENCY)
        return [(key, f, n, 0) for f, n in ops.items()]

    def series_op(self, field: str, n: int = 1, *, at_s: float) -> Op:
        """One increment of the per-minute series ``field`` for the minute containing ``at_s``."""
        if field not in SERIES_FIELDS:
            raise ValueError(f"series field: expected one of {SERIES_FIELDS}, got {field!r}")
        return (self._keys.series(int(at_s // 60)), field, n, SERIES_TTL_S)


class Counters(CounterOps):
    """Builds increments and applies stray ones (those no Lua script carries)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(keys)
        self._redis = redis

    def apply(self, ops: Iterable[Op]) -> None:
        """Apply increments now (one pipeline); for counts that no Lua script carries."""
        ops = list(ops)
        if not ops:
            return
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for key, field, n, ttl in ops:
                pipe.hincrby(key, field, n)
                if ttl:
                    pipe.expire(key, ttl)
            pipe.execute()
