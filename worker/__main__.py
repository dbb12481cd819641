"""Composition root of the worker process: settings, logging, Redis, the expander and dispatcher threads, RQ.

``python -m worker [--burst] [--name NAME]``. The RQ worker is a ``SimpleWorker`` (no fork per job) with
the JSON serializer: a drain job makes one HubSpot call per batch, so a 15 ms fork per job would cost more
than the work, and the pooled HTTPS connections of the process's one ``requests.Session`` survive between
jobs. What a fork would protect (a crash inside a job) is covered by leases: the associations of a worker
that dies come back to their lane when the lease runs out, and the process manager restarts the worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

from redis import Redis
from rq import Queue, SimpleWorker

from hublink import log as hublink_log
from hublink.alerts import Alerter
from hublink.dispatcher import Dispatcher
from hublink.domain.errors import ConfigError, StoreUnavailableError
from hublink.expander import Expander
from hublink.inbox import Inbox
from hublink.keys import Keys
from hublink.metrics import Metrics
from hublink.queueing import Queueing
from hublink.rules_file import RulesFile
from hublink.settings import Settings
from worker import runtime

#: RQ's own job timeout for a drain: its time budget plus two slow HubSpot calls and settling.
JOB_TIMEOUT_S = 90
FAILURE_TTL_S = 7 * 86400


def main(argv: list[str] | None = None) -> int:
    """Run one worker until SIGTERM/SIGINT (warm: the current drain finishes first)."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--name", default=None, help="RQ worker name (default: RQ's)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        settings.require("worker")
        rules_file = RulesFile.read(settings.rules_file)
    except ConfigError as exc:
        print(f"hublink worker: {exc}", file=sys.stderr)  # noqa: T201 - before logging exists
        return 2
    hublink_log.configure(settings.log_level, settings.secrets)
    rt = runtime.build(settings)
    runtime.install(rt)
    # RQ blocks on its queue for minutes; it gets its own connection without our short socket timeout.
    rq_redis = Redis.from_url(settings.redis_url)
    queue = Queue(settings.queue_name, connection=rq_redis, serializer="json")
    alerter = Alerter(
        rt.redis,
        Keys(settings.redis_prefix),
        Metrics(rt.redis, Keys(settings.redis_prefix)),
        url=settings.alert_webhook_url,
        interval_s=settings.alert_interval_s,
        error_rate=settings.alert_error_rate,
    )
    keys = Keys(settings.redis_prefix)
    queueing = Queueing(rt.redis, keys, lease_s=settings.lease_s, dedup_window_s=settings.dedup_window_s)
    expander = Expander(
        Inbox(rt.redis, keys, claim_idle_s=settings.lease_s),
        rules_file.rules,
        queueing,
        Metrics(rt.redis, keys),
        consumer=args.name or f"{socket.gethostname()}:{os.getpid()}",
        rules_tag=rules_file.tag,
    )
    dispatcher = Dispatcher(rt.lanes, queue, job_timeout_s=JOB_TIMEOUT_S, failure_ttl_s=FAILURE_TTL_S, alerter=alerter)
    if args.burst:
        # Burst: everything accepted so far becomes lane work before RQ decides the queue is empty.
        try:
            expander.step(block_ms=1)
            while expander.last_read:
                expander.step(block_ms=1)
            dispatcher.step(0.01)
        except StoreUnavailableError as exc:
            print(f"hublink worker: {exc}", file=sys.stderr)  # noqa: T201 - a burst run's one-line failure
            return 1
    else:
        expander.start_thread()
    dispatcher.start_thread()
    worker = SimpleWorker([queue], connection=rq_redis, serializer="json", name=args.name)
    logging.getLogger("hublink.worker").info("worker starting", extra={"queue": settings.queue_name})
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level)
    finally:
        expander.stop()
        dispatcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
