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
