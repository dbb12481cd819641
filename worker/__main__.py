"""Composition root of the worker process: settings, logging, Redis, the background threads, RQ.

``python -m worker [--burst] [--name NAME]``; ``python -m worker --check [--name NAME]`` is the readiness
probe (exit 0 when Redis answers and a live worker with a fresh heartbeat holds the name, else 1 with one
line saying why). A worker started under a name a live process holds waits for it to stop; one started
under the name of a process that died (``kill -9``) takes over at once.

The RQ worker is a ``SimpleWorker`` (no fork per job) with the JSON serializer: a drain job makes one HubSpot
call per batch, so a 15 ms fork per job would cost more than the work, and the pooled HTTPS connections of the
process's one ``requests.Session`` survive between jobs. What a fork would protect (a crash inside a job) is
covered by leases: the associations of a worker that dies come back to their lane when the lease runs out, and
the process manager restarts the worker.
Redis going away never ends it (``worker.runtime.work``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from hublink import log as hublink_log
from hublink import tracing
from hublink.config.rules_file import RulesFile
from hublink.config.settings import Settings
from hublink.domain.errors import ConfigError, StoreUnavailableError
from hublink.ops.heartbeats import HEARTBEAT_STALE_S, WorkerHeartbeats, WorkerPresence
from hublink.store.connections import connect
from hublink.store.keys import Keys
from worker import runtime


def main(argv: list[str] | None = None) -> int:
    """Run one worker until SIGTERM/SIGINT (warm: the current drain finishes first)."""
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--name", default=None, help="worker name (default: host:pid)")
    parser.add_argument("--check", action="store_true", help="readiness: is Redis up and the worker's heartbeat fresh?")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.name)
    try:
        settings = Settings.from_env(os.environ)
        settings.require("worker")
        rules_file = RulesFile.read(settings.rules_file)
        hublink_log.configure(settings.log_level, settings.secrets)
        # OTEL_* decide (off unless an endpoint or exporter is named); the worker never forks, so set up now.
        tracing.setup(tracing.SERVICE_WORKER)
        rt = runtime.build(settings, rules_file, consumer=args.name or "")
    except ConfigError as exc:
        print(f"hublink worker: {exc}", file=sys.stderr)  # noqa: T201 - before logging exists
        return 2
    expander, dispatcher = rt.expander, rt.dispatcher
    # Nothing runs under the name (inbox reads, heartbeats, RQ) until this process holds it.
    runtime.hold_name(rt)
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
        if rt.journal is not None:
            rt.journal.start_thread()
    dispatcher.start_thread()
    logging.getLogger("hublink.worker").info("worker starting", extra={"queue": settings.queue_name})
    try:
        runtime.work(rt, name=args.name or rt.name, burst=args.burst, logging_level=settings.log_level)
    finally:
        expander.stop()
        dispatcher.stop()
        if rt.journal is not None:
            rt.journal.stop()
        tracing.shutdown()  # the spans still buffered go out before the process ends
    return 0


def check(name: str | None) -> int:
    """Readiness: 0 when Redis answers and a live worker with a fresh heartbeat holds the name, else 1 and why.

    A heartbeat outlives a worker killed with ``-9`` by up to a minute; the name's presence does not
    (``hublink.ops.heartbeats.WorkerPresence``).

        Without ``name``, any worker of this host that runs under its default name (host:pid) will do.
    """
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"not ready: {exc}", file=sys.stderr)  # noqa: T201 - a probe's one line
        return 1
    client = connect(settings.redis_url, timeout_s=min(settings.redis_timeout_s, 2.0))
    keys = Keys(settings.redis_prefix)
    heartbeats = WorkerHeartbeats(client, keys)
    presence = WorkerPresence(client, keys, heartbeats)
    try:
        client.ping()
        if name:
            found = None if (age := heartbeats.age_s(name)) is None else (name, age)
            held = found is not None and presence.holders(name) > 0
        else:
            # The freshest heartbeat of this host whose name a live process holds (a dead one's may be fresher).
            found, held = None, False
            for candidate in heartbeats.by_age(f"{os.uname().nodename}:"):
                found = found or candidate
                if presence.holders(candidate[0]) > 0:
                    found, held = candidate, True
                    break
    except StoreUnavailableError as exc:
        print(f"not ready: {exc}", file=sys.stderr)  # noqa: T201 - a probe's one line
        return 1
    except Exception as exc:  # noqa: BLE001 - a probe answers with one line, whatever went wrong
        print(f"not ready: Redis did not answer: {type(exc).__name__}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        client.close()
    if found is None:
        print(f"not ready: no heartbeat from {name or 'a worker of this host'}", file=sys.stderr)  # noqa: T201
        return 1
    worker, age = found
    if not held:
        print(  # noqa: T201 - a probe's one line
            f"not ready: no live worker holds the name {worker} (its heartbeat, {age:.0f} s old, was left by a "
            "process that has stopped)",
            file=sys.stderr,
        )
        return 1
    if age > HEARTBEAT_STALE_S:
        print(f"not ready: the heartbeat of {worker} is {age:.0f} s old", file=sys.stderr)  # noqa: T201
        return 1
    print(f"ready: {worker}, heartbeat {age:.1f} s old")  # noqa: T201 - a probe's one line
    return 0


if __name__ == "__main__":
    sys.exit(main())
