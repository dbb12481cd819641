"""Gunicorn settings for the web process (the Procfile's ``web:``); the benchmarks use the same file.

gevent workers: each connection is a greenlet, so a client that trickles its headers or its body holds a
few kilobytes, not a worker. Sync workers (one request at a time per process) were taken down by four
such clients; gthread with 64 threads per worker still failed a third of the probes under 200 (``make
bench-slow``, figures in bench/README.md), while gevent answered /healthz and signed webhooks with a p99
of about 10-20 ms through it. Bodies are read under HUBLINK_BODY_TIMEOUT_S (a 408 past it, see
``web.request_parsing.read_body``). Beyond a few thousand slow connections per worker, put a buffering proxy
in front (README, Operations).

The standard library is patched here, before the app is imported (``preload_app``): redis-py and
everything else then use gevent's sockets, locks and thread-locals from the start, never a mix. The web
process makes no other outbound calls (HubSpot is called by the workers only), but for its spans' export to an
OTLP collector when tracing is on (``hublink.tracing``, set up per worker after the fork: see the end of this file).

One worker per core (at least two, so that a worker being replaced leaves one serving; WEB_CONCURRENCY
overrides): a gevent worker never blocks on Redis, other greenlets run meanwhile, and the requests of one
worker that write at the same moment share a round trip (``hublink.store.commit_group``), so fewer
workers make larger groups. Measured on 2 cores (the intake throughput of ``make bench``, five runs or
more each): 0.67-0.71 of the bare endpoint with 2 workers, 0.63-0.66 with 4, the bare endpoint as fast
with either.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after patching, like everything this process imports
import os  # noqa: E402

from gunicorn import util as gunicorn_util  # noqa: E402

from hublink import tracing  # noqa: E402
from hublink.store.connections import WEB_CONCURRENCY_PER_PROCESS  # noqa: E402

#: The longest message a gunicorn refusal carries (it may quote the refused request line).
REFUSAL_MESSAGE_CHARS = 200


def json_refusal(sock: object, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own refusals (a request line or headers it cannot read) in HubLink's JSON error shape.

    gunicorn answers these itself, before the app sees a request (400 for a control byte in a header or a
    malformed request line, 414 for a request line over 4094 bytes, 431 for too many or too large headers,
    501 for an unknown transfer coding, 500 when the app failed before answering); its answer is an HTML
    page, written by ``gunicorn.util.write_error``, which this replaces. The code is the status's reason in
    snake case (``bad_request``, ``uri_too_long``, ``request_header_fields_too_large``).
    """
    code = reason.lower().replace(" ", "_").replace("-", "_")
    message = (mesg or reason)[:REFUSAL_MESSAGE_CHARS]
    body = json.dumps({"error": {"code": code, "message": message, "details": None}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + body)


# gunicorn has no setting for the body of its own refusals: its workers call this function by module path.
gunicorn_util.write_error = json_refusal


def _cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or max(2, _cores()))
worker_class = "gevent"
#: Connections one worker holds at once (slow ones included); past it, it stops accepting until one ends.
#: The same number sizes the worker's Redis pool (one connection per request it can hold).
worker_connections = WEB_CONCURRENCY_PER_PROCESS
# Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads connections over the workers.
# With one shared socket, kept-alive connections stick to whichever worker accepted them first: measured,
# 15 of wrk's 16 connections on one of four workers, and a third of the throughput lost.
reuse_port = True
# HubSpot gives up after 5 s; a request that takes longer is already lost to the sender.
timeout = 30
graceful_timeout = 20
# Under gevent this also bounds reading a request's headers: a client that has not sent them all within
# keepalive seconds is disconnected (gunicorn's async workers read each request under this timeout).
keepalive = 5
accesslog = None
errorlog = "-"
# Build the app once in the master (fail fast on bad configuration: one line naming the variable).
preload_app = True
# gunicorn's control socket (``gunicornc``) is off: its default path is one per user
# ($XDG_RUNTIME_DIR/gunicorn.ctl or ~/.gunicorn/gunicorn.ctl), so every instance a user runs would bind the
# same file and the last one started would take it from the others. GUNICORN_CONTROL_SOCKET turns it on
# at a path of this instance's own.
control_socket_path = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
if control_socket_path:
    control_socket = control_socket_path
else:
    control_socket_disable = True

# Gunicorn's own loggers hand their records to the root logger, which create_app() (run in the master,
# preload_app) gives HubLink's JSON formatter, secret redaction and HUBLINK_LOG_LEVEL: one log format and
# one level for the whole process. NOTSET, so that the root's level decides: access lines (one a request,
# with its request_id) at INFO, none at WARNING. A fixed INFO here would print them whatever the level says.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "gunicorn.error": {"level": "NOTSET", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "NOTSET", "handlers": [], "propagate": True},
    },
}

# Traces (off unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER is set): create_app() runs in the
# master (preload_app) and only names the service; each worker builds its own tracer provider after the fork,
# so that no batch processor's export thread or pooled connection is shared between processes.
tracing.defer_to_fork()


def post_fork(server: object, worker: object) -> None:
    """In each new worker: start tracing, if the master's create_app() found it asked for."""
    tracing.start_after_fork()


def worker_exit(server: object, worker: object) -> None:
    """A worker's spans still buffered are exported before it ends."""
    tracing.shutdown()
