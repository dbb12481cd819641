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
import sys

from hublink import log as hublink_log
from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.domain.errors import ConfigError, StoreUnavailableError
from worker import runtime


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
        hublink_log.configure(settings.log_level, settings.secrets)
        rt = runtime.build(settings, rules_file, consumer=args.name or "")
    except ConfigError as exc:
        print(f"hublink worker: {exc}", file=sys.stderr)  # noqa: T201 - before logging exists
        return 2
    expander, dispatcher = rt.expander, rt.dispatcher
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
    worker = runtime.HubLinkWorker(rt, name=args.name)
    logging.getLogger("hublink.worker").info("worker starting", extra={"queue": settings.queue_name})
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=settings.log_level)
    finally:
        expander.stop()
        dispatcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
