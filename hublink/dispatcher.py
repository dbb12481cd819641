"""Dispatcher: turns woken lanes into RQ drain jobs, and sweeps for expired leases and due lanes.

Every worker process runs one dispatcher thread, so there is no single "scheduler" whose death could
stall retries: delayed work lives in the lanes' due times, and any live worker's sweep wakes it. RQ does
the rest (queueing drain jobs, running them, its registries and CLI).
"""

from __future__ import annotations

import logging

from rq import Queue

from hublink.alerts import Alerter
from hublink.background import BackgroundLoop
from hublink.lanes import LaneStore

log = logging.getLogger("hublink.dispatcher")

#: The RQ job function, by dotted path: hublink must not import the worker package.
DRAIN_JOB = "worker.jobs.drain_lane"
#: Version of the drain job's arguments (a wire format: add arguments with defaults, never rename).
DRAIN_JOB_VERSION = 1
#: The longest a sweep waits; a due lane or lease is usually noticed far sooner (its due time is known).
MAX_SWEEP_INTERVAL_S = 1.0


class Dispatcher(BackgroundLoop):
    """Pops lane wake-ups, enqueues drain jobs, sweeps; :meth:`run` loops until :meth:`stop`."""

    thread_name = "hublink-dispatcher"

    def __init__(
        self, lanes: LaneStore, queue: Queue, *, job_timeout_s: int, failure_ttl_s: int, alerter: Alerter | None = None
    ) -> None:
        self._lanes = lanes
        self._alerter = alerter
        self._queue = queue
        self._job_timeout_s = job_timeout_s
        self._failure_ttl_s = failure_ttl_s
        self._wait_s = MAX_SWEEP_INTERVAL_S
        super().__init__()

    def enqueue_drains(self, lanes: list[str]) -> None:
        """One RQ drain job per lane, written in one pipeline."""
        if not lanes:
            return
        jobs = [
            Queue.prepare_data(
                DRAIN_JOB,
                kwargs={"lane": lane, "v": DRAIN_JOB_VERSION},
                timeout=self._job_timeout_s,
                result_ttl=60,
                failure_ttl=self._failure_ttl_s,
                description=f"drain {lane}",
            )
            for lane in lanes
        ]
        self._queue.enqueue_many(jobs)

    def step(self, wait_s: float) -> float:
        """One turn: sweep, then wait up to ``wait_s`` for wake-ups; return how long the next wait may be."""
        report = self._lanes.sweep()
        lanes = self._lanes.pop_wake(min(wait_s, MAX_SWEEP_INTERVAL_S))
        self.enqueue_drains(lanes)
        if self._alerter is not None:
            self._alerter.check()
        if report.reclaimed:
            log.warning("leases expired; associations handed back", extra={"reclaimed": report.reclaimed})
        if report.next_due_ms is None:
            return MAX_SWEEP_INTERVAL_S
        return min(max(report.next_due_ms / 1000, 0.01), MAX_SWEEP_INTERVAL_S)

    def turn(self) -> None:
        """One step, waiting as long as the last one said the next may wait."""
        self._wait_s = self.step(self._wait_s or MAX_SWEEP_INTERVAL_S)
