"""An OTLP/HTTP trace receiver in the test process: what HubLink's processes export, decoded and kept.

A collector as small as a test needs: ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` protobuf
(gzip or not), decoded with ``opentelemetry-proto``, each span kept flat with its service's name, answered
200 with an empty ``ExportTraceServiceResponse`` as the OTLP specification asks. Anything else is a 404.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

#: OTLP's span kinds by number (``opentelemetry.proto.trace.v1.Span.SpanKind``).
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, ids in hex as W3C writes them."""

    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    #: (trace id, span id) of each link.
    links: tuple[tuple[str, str], ...]
    status_code: int
    start_ns: int
    end_ns: int
    #: The resource's attributes (``service.name``, ``process.pid``, ...).
    resource: dict[str, Any] = field(default_factory=dict)


def _value(any_value: Any) -> Any:
    """An OTLP AnyValue as a Python value (the scalar kinds HubLink sets)."""
    which = any_value.WhichOneof("value")
    return getattr(any_value, which) if which else None


@dataclass
class OtlpReceiver:
    """The receiver: start it, point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at :attr:`url`, read :attr:`spans`."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL (the exporter appends ``/v1/traces``)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OtlpReceiver:
        """Listen on a free port of 127.0.0.1, in a daemon thread."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            """One export per request; nothing logged (http.server writes to stderr otherwise)."""

            def do_POST(self) -> None:
                """Decode, keep and answer one ``ExportTraceServiceRequest``."""
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.keep(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="otlp-receiver").start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def keep(self, request: ExportTraceServiceRequest) -> None:
        """Flatten one export into :attr:`spans`."""
        found: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            kind=KINDS.get(span.kind, str(span.kind)),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
                            status_code=span.status.code,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            resource=resource,
                        )
                    )
        with self._lock:
            self.requests += 1
            self.spans.extend(found)

    def named(self, name: str, service: str | None = None) -> list[ReceivedSpan]:
        """The spans received so far called ``name`` (of ``service``, when given)."""
        with self._lock:
            return [s for s in self.spans if s.name == name and (service is None or s.service == service)]

    def __iter__(self) -> Iterator[ReceivedSpan]:
        """Every span received so far."""
        with self._lock:
            return iter(list(self.spans))
