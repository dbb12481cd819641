"""Gunicorn settings for the web process (the Procfile's ``web:``); the benchmarks use the same file.

Sync workers: a request is one EVALSHA against Redis and a few hundred microseconds of Python, so threads
or async would add overhead without adding throughput; scale with WEB_CONCURRENCY (about 2 x cores).
"""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
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
# preload_app) gives HubLink's JSON formatter and secret redaction: one log format for the whole process.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
    },
}
