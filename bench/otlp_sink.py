"""A local OTLP/HTTP sink for P1 with tracing on: it takes every export, counts it and answers 200.

It does not decode (a collector's cost is not HubLink's); the exporters in gunicorn's workers do all the
work they would do against a real collector: encode the spans, compress nothing, POST them, read the answer.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OtlpSink:
    """``POST /v1/traces`` answered 200 with an empty ``ExportTraceServiceResponse``; counts requests and bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            """One export per request."""

            protocol_version = "HTTP/1.1"  # keep-alive, as a collector serves the exporter's pooled session

            def do_POST(self) -> None:
                """Read, count, answer."""
                size = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(size)
                with sink._lock:
                    sink.requests += 1
                    sink.bytes += size
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="otlp-sink").start()

    @property
    def url(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
