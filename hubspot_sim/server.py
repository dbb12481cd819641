"""The simulator's HTTP side: a threaded HTTP/1.1 server turning bytes into ``Request``s and ``Answer``s back.

Built for load as much as for correctness: keep-alive connections (so that a ``requests.Session`` pools
them), one buffered write per answer with Nagle off (no delayed-ACK stalls), no log line per request
(only errors reach stderr), and a Content-Length on every answer. ``SimServer`` runs it on a background
thread for tests and under the CLI; its ``stop()`` also wakes requests that are hanging or sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from hubspot_sim import errors
from hubspot_sim.api import HubSpotApi
from hubspot_sim.control import ControlApi
from hubspot_sim.messages import Answer, Request
from hubspot_sim.state import SimState

MAX_BODY_BYTES = 16 * 1024 * 1024  # a 2,000-input batch is ~100 KB; anything near this is a client bug
CONTENT_TYPE = "application/json;charset=utf-8"
# Reason phrases for HubSpot's non-standard statuses (docs/reference/hubspot.md §3.2), which http.server lacks.
_REASONS = {
    477: "Migration In Progress",
    521: "Web Server Is Down",
    522: "Connection Timed Out",
    523: "Origin Is Unreachable",
    524: "A Timeout Occurred",
}


class Handler(BaseHTTPRequestHandler):
    """One connection: reads requests, hands them to the API or the control API, writes the answers."""

    protocol_version = "HTTP/1.1"
    server_version = "hubspot_sim"
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # buffer the status line, headers and body into one send
    server: SimHTTPServer

    def setup(self) -> None:
        """Register the connection, so that ``stop()`` can close it."""
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        """Flush, close and forget the connection."""
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def version_string(self) -> str:
        """The Server header: the simulator's name, not the Python version."""
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: a line per request would dominate the benchmarks' profile."""

    def log_message(self, format: str, *args: Any) -> None:
        """Errors only (``log_request`` no longer calls this), to stderr."""
        sys.stderr.write(f"hubspot_sim: {self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        """Answer a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Answer a POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Answer a PUT."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Answer a DELETE."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Answer a PATCH (405 wherever a route exists)."""
        self._dispatch()

    def do_HEAD(self) -> None:
        """Answer a HEAD: headers only, as HTTP requires."""
        self._dispatch()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's answer to a malformed request (400, 414, 431, 501, 505), in HubSpot's JSON too."""
        if self.request_version == "HTTP/0.9":
            # An unparsable request line leaves the stdlib's HTTP/0.9 default, which would send no status
            # line and no headers; nobody speaks 0.9, so answer as HTTP/1.0 with a Content-Length.
            self.request_version = "HTTP/1.0"
        self._write(Answer(code, errors.error_body(code, message=message), close=True))

    def _dispatch(self) -> None:
        request = self._read()
        if request is None:
            return
        try:
            if request.path == "/_sim" or request.path.startswith("/_sim/"):
                answer = self.server.control.handle(request)
            else:
                answer = self.server.api.handle(request)
        except Exception:  # noqa: BLE001 - a simulator bug must answer 500, not leave the client waiting
            traceback.print_exc(file=sys.stderr)
            body = errors.error_body(500, message="Simulator error; see its stderr")
            answer = Answer(500, body, close=True)
        self._write(answer)

    def _read(self) -> Request | None:
        """The request with its whole body read (so that keep-alive stays in step), or None once refused."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error(411, "Send a Content-Length; chunked bodies are not supported")
            return None
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            self.send_error(400, f"Content-Length: expected a number of bytes, got {raw_length!r}")
            return None
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            self.send_error(413, f"A request body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit")
            return None
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        return Request(
            self.command, url.path, url.query, body, self.headers.get("Authorization"), self.headers.get("Host")
        )

    def _write(self, answer: Answer) -> None:
        if answer.drop:
            self.close_connection = True
            return
        payload = answer.payload()
        self.send_response(answer.status, _REASONS.get(answer.status))
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-HubSpot-Correlation-Id", answer.correlation_id() or errors.correlation_id())
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class SimHTTPServer(ThreadingHTTPServer):
    """A thread per connection (daemon threads: a hanging request never blocks exit), sharing one state."""

    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], api: HubSpotApi, control: ControlApi) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.api = api
        self.control = control
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s reverse-DNS lookup of the host, which can stall start-up."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away (e.g. gave up on a hang); print anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket) -> None:
        """Remember an open connection."""
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection down, so that idle keep-alive handlers stop waiting for a request."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # A connection its own handler closed meanwhile raises OSError: nothing is left to do for it.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class SimServer:
    """The simulator on a background thread: ``url = SimServer(state).start()``, then ``stop()``.

    It binds ``host`` only (loopback by default); port 0 lets the OS pick a free port. Also a context
    manager. A SimServer starts once.
    """

    def __init__(self, state: SimState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state or SimState()
        self.host = host
        self._requested_port = port
        self._stopping = threading.Event()
        self._httpd: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Bind, serve on a daemon thread, and return the base URL. Raises OSError if the port is taken."""
        if self._httpd is not None:
            raise RuntimeError("this SimServer was already started")
        # Latency and hangs wait on the stop event, so that stop() cuts them short instead of waiting.
        api = HubSpotApi(self.state, pause=self._stopping.wait)
        self._httpd = SimHTTPServer((self.host, self._requested_port), api, ControlApi(self.state))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="hubspot-sim", daemon=True
        )
        self._thread.start()
        return self.url

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError before ``start()``."""
        if self._httpd is None:
            raise RuntimeError("the SimServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8090``. Raises RuntimeError before ``start()``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, wake hanging requests, close open connections and wait for the serving thread."""
        if self._httpd is None or self._stopping.is_set():
            return
        self._stopping.set()
        self.state.webhooks.stop()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
