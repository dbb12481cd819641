"""The Prometheus view of HubLink's Redis-held metrics: a collector that reads them at scrape time.

Counters come from the ``m:<name>`` hashes (summed by every process on every machine); gauges (queue
depth, age of the oldest pending association, in-flight leases, dead letters, the inbox) are read from
Redis at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis

from hublink.delivery.circuit import Circuit, read_circuits
from hublink.lanes import lane_depths
from hublink.ops.metrics import COUNTERS, LATENCY, LATENCY_BUCKETS_S, Metrics
from hublink.store.connections import text
from hublink.store.keys import Keys

PREFIX = "hublink_"
LATENCY_HELP = "Seconds from intake's 202 to HubSpot confirming the association"


@dataclass(frozen=True, slots=True)
class Gauge:
    """A gauge read from Redis at scrape time: its name (without ``hublink_``), help text and label names."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


#: Every gauge the collector yields; the metrics reference page is generated from these and ``COUNTERS``.
GAUGES: tuple[Gauge, ...] = (
    Gauge("queue_depth", "Associations waiting in lanes", ("lane",)),
    Gauge("paused", "Paused deliveries (scope portal, lane, or circuit: open)", ("scope", "name")),
    Gauge("oldest_pending_age_seconds", "Age of the oldest due-or-waiting association"),
    Gauge("in_flight", "Associations leased to a worker right now"),
    Gauge("dead_letters", "Associations in the dead-letter store"),
    Gauge("dead_letters_dropped", "Dead letters dropped by the size cap, ever"),
    Gauge("drain_jobs_queued", "RQ drain jobs waiting for a worker"),
    Gauge("inbox_depth", "Accepted requests whose events the rules have not run on yet"),
    Gauge("inbox_failed", "Inbox entries set aside because they could not be expanded"),
    Gauge("circuit_open", "1 while a portal's circuit is open (calls stopped)", ("portal", "reason")),
    Gauge("portals_uninstalled", "Portals the app is uninstalled from (their work waits for a reinstall)"),
    Gauge("history_requests", "Accepted requests kept in the event history"),
    Gauge("history_bytes", "Bytes the history records hold"),
    Gauge("history_dropped", "Event history records dropped by its size cap, ever"),
)
_GAUGES = {gauge.name: gauge for gauge in GAUGES}


def _gauge(name: str, value: float | None = None) -> GaugeMetricFamily:
    """An empty family of the declared gauge ``name``, or one holding ``value``."""
    gauge = _GAUGES[name]
    if gauge.labels:
        return GaugeMetricFamily(PREFIX + name, gauge.help, labels=list(gauge.labels))
    return GaugeMetricFamily(PREFIX + name, gauge.help, value=value)


def describe_metrics() -> Iterator[Metric]:
    """Every metric family HubLink exports, without samples: what ``/metrics`` serves, read without Redis."""
    for counter in COUNTERS:
        yield CounterMetricFamily(PREFIX + counter.name, counter.help, labels=list(counter.labels))
    yield HistogramMetricFamily(PREFIX + LATENCY, LATENCY_HELP)
    for gauge in GAUGES:
        yield GaugeMetricFamily(PREFIX + gauge.name, gauge.help, labels=list(gauge.labels))


def _labels(field: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in field.split(",") if "=" in part)


class HubLinkCollector(Collector):
    """Reads every HubLink metric from Redis when Prometheus scrapes."""

    def __init__(self, redis: Redis, keys: Keys, queue_name: str) -> None:
        self._redis = redis
        self._keys = keys
        self._metrics = Metrics(redis, keys)
        self._queue_key = Keys.rq_queue(queue_name)

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family (raises StoreUnavailableError without Redis)."""
        for counter in COUNTERS:
            family = CounterMetricFamily(PREFIX + counter.name, counter.help, labels=list(counter.labels))
            for field, value in sorted(self._metrics.read(counter.name).items()):
                labels = _labels(field)
                family.add_metric([labels.get(name, "") for name in counter.labels], value)
            yield family
        yield self._latency()
        yield from self._gauges()
        circuits = read_circuits(self._redis, self._keys)
        yield self._circuits(circuits)
        yield _gauge("portals_uninstalled", sum(1 for c in circuits if c.is_uninstalled))
        yield from self._history()

    def _latency(self) -> Metric:
        raw = self._metrics.read(LATENCY)
        cumulative = 0
        buckets = []
        for bound in LATENCY_BUCKETS_S:
            cumulative += raw.get(f"le={bound}", 0)
            buckets.append((str(bound), cumulative))
        cumulative += raw.get("le=+Inf", 0)
        buckets.append(("+Inf", cumulative))
        family = HistogramMetricFamily(PREFIX + LATENCY, LATENCY_HELP)
        family.add_metric([], buckets, sum_value=raw.get("sum_ms", 0) / 1000)
        return family

    def _gauges(self) -> Iterator[Metric]:
        now_ms = time.time() * 1000
        lanes = [text(m) for m in self._redis.zrange(self._keys.lanes, 0, -1)]
        depths = lane_depths(self._redis, self._keys, lanes)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(self._keys.inflight)
        pipe.zcard(self._keys.dead_letters)
        pipe.get(self._keys.dead_letters_dropped)
        pipe.llen(self._queue_key)
        pipe.xlen(self._keys.inbox)
        pipe.xlen(self._keys.inbox_failed)
        pipe.hkeys(self._keys.paused)
        results = pipe.execute()
        depth = _gauge("queue_depth")
        oldest = 0.0
        for lane in depths:
            depth.add_metric([lane.lane], lane.waiting)
            if lane.oldest_ms is not None:
                oldest = max(oldest, (now_ms - lane.oldest_ms) / 1000)
        yield depth
        inflight, dead, dropped, rq_depth, inbox, inbox_failed, paused = results
        yield self._paused(paused)
        yield _gauge("oldest_pending_age_seconds", oldest)
        yield _gauge("in_flight", inflight)
        yield _gauge("dead_letters", dead)
        yield _gauge("dead_letters_dropped", int(dropped or 0))
        yield _gauge("drain_jobs_queued", rq_depth)
        yield _gauge("inbox_depth", inbox)
        yield _gauge("inbox_failed", inbox_failed)

    def _history(self) -> Iterator[Metric]:
        """The event history's size, and what its size cap dropped."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(self._keys.history)
        pipe.get(self._keys.history_bytes)
        pipe.get(self._keys.history_dropped)
        count, size, dropped = pipe.execute()
        yield _gauge("history_requests", count)
        yield _gauge("history_bytes", int(size or 0))
        yield _gauge("history_dropped", int(dropped or 0))

    @staticmethod
    def _circuits(circuits: list[Circuit]) -> Metric:
        """1 for each portal whose circuit is open, 0 for one that opened and closed since."""
        family = _gauge("circuit_open")
        for circuit in circuits:
            family.add_metric([circuit.portal, circuit.reason], 1 if circuit.is_open else 0)
        return family

    @staticmethod
    def _paused(fields: list[bytes]) -> Metric:
        """1 for each pause: a portal or lane an operator paused, or a portal whose circuit is open."""
        family = _gauge("paused")
        for field in sorted(text(f) for f in fields):
            scope, _, name = field.partition(":")
            family.add_metric([scope, name], 1)
        return family


def render(redis: Redis, keys: Keys, queue_name: str) -> bytes:
    """The Prometheus text exposition of every HubLink metric."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubLinkCollector(redis, keys, queue_name))
    return generate_latest(registry)
