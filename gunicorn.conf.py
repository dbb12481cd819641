"""Gunicorn settings for the web process (the Procfile's ``web:``); the benchmarks use the same file.

Sync workers: a request is a few hundred microseconds of Python and one XADD to Redis, so threads or
async would add overhead without adding throughput. Two workers per core by default (WEB_CONCURRENCY
overrides): while one waits for Redis another uses the core. Measured on 2 cores (bench/): 4 workers
take 10-15 % more single-association requests than 2, and a bare Flask endpoint the same.
"""

import os


def _cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * _cores())
worker_class = "sync"
# HubSpot gives up after 5 s; a request that takes longer is already lost to the sender.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
errorlog = "-"
# Build the app once in the master (fail fast on bad configuration: one line naming the variable).
preload_app = True

# Gunicorn's own loggers hand their records to the root logger, which create_app() (run in the master,
# preload_app) gives HubLink's JSON formatter, secret redaction and HUBLINK_LOG_LEVEL: one log format and
# one level for the whole process. NOTSET, so that the root's level decides: access lines (one a request,
# with its request_id) at INFO, none at WARNING. A fixed INFO here printed them whatever the level said.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "gunicorn.error": {"level": "NOTSET", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "NOTSET", "handlers": [], "propagate": True},
    },
}
