"""Metrics: reading the counters every web and worker process adds to (``hublink.store.counters``).

``/metrics`` reads the hashes and renders them with prometheus-client (``hublink.ops.prometheus``); gauges
(queue depth, oldest pending age, dead letters) are read at scrape time. The dashboard reads the
per-minute series.
"""

from __future__ import annotations

from hublink.store.connections import store_errors, text
from hublink.store.counters import COUNTERS, LATENCY, LATENCY_BUCKETS_S, SERIES_FIELDS, Counters

__all__ = ["COUNTERS", "LATENCY", "LATENCY_BUCKETS_S", "Metrics"]


class Metrics(Counters):
    """The counters, plus the reads that operators' views need."""

    def series(self, now_s: float, minutes: int = 60) -> list[dict[str, int]]:
        """The last ``minutes`` minutes, oldest first: ``{"minute": epoch minute, field: count, ...}``."""
        current = int(now_s // 60)
        wanted = list(range(current - minutes + 1, current + 1))
        with store_errors():
            pipe = self._redis.pipeline(transaction=False)
            for minute in wanted:
                pipe.hgetall(self._keys.series(minute))
            rows = pipe.execute()
        out = []
        for minute, row in zip(wanted, rows, strict=True):
            entry = {"minute": minute, **{f: 0 for f in SERIES_FIELDS}}
            entry.update({text(k): int(v) for k, v in row.items()})
            out.append(entry)
        return out

    def read(self, name: str) -> dict[str, int]:
        """Every label set of one metric with its count."""
        with store_errors():
            raw = self._redis.hgetall(self._keys.metric(name))
        return {text(k): int(v) for k, v in raw.items()}
