"""Traces: OpenTelemetry spans from the webhook request to HubSpot's answer, exported over OTLP/HTTP.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or
``OTEL_TRACES_EXPORTER`` is set (``OTEL_TRACES_EXPORTER=none`` and ``OTEL_SDK_DISABLED=true`` keep it off).
Off costs nothing: the tracing SDK is never imported, every hook below is one ``is None`` check, the inbox entry
carries no ``tp`` field and a lane member no origin. On, the standard ``OTEL_*`` variables are honoured by
the SDK itself (service name and resource, sampler, batch processor, exporter endpoint, headers, timeout,
compression, certificates); ``OTEL_SERVICE_NAME`` defaults to ``hublink-web`` or ``hublink-worker``.

This is a cross-cutting module, like ``hublink.log``: every stage of the pipeline calls into it, so it sits
beside them rather than in ``hublink.ops`` (the top layer, which the stages below may not import). It
imports nothing of HubLink's but the error tree. Each process's composition root calls :func:`setup`
(``web.create_app``, ``worker.__main__``); gunicorn builds the app in its master (``preload_app``), so its
config defers the provider to each worker after the fork (:func:`defer_to_fork`, :func:`start_after_fork`):
a batch processor's export thread and its HTTP connections are never shared across a fork.

The spans, and how one request's trace reaches HubSpot through Redis:

- ``<METHOD> <route>`` (SERVER, web): one per request (``web.tracing``); its context is the request's.
- ``inbox add`` (PRODUCER, web): the XADD; the entry carries the request's W3C ``traceparent`` (field
  ``tp``, :data:`ENTRY_FIELD`).
- ``inbox expand`` (CONSUMER, worker): the expansion of one entry, a child of the request's span. Each
  association it stores carries the request's span context in its lane member (:func:`origin`: 32 bytes,
  only when tracing is on and the request was sampled).
- ``drain`` (INTERNAL, worker): one claimed batch, a child of its first association's request.
- ``<METHOD>`` (CLIENT, worker): each HubSpot call (HTTP semantic conventions, HubSpot's correlation id,
  the batch size, portal and lane); an association call links to the request of every association it
  carries (a batch call links to many).
- ``settle`` (INTERNAL, worker): the one atomic step that writes every outcome of the batch.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

from hublink import __version__
from hublink.domain.errors import ConfigError

log = logging.getLogger("hublink.tracing")

#: The service names when ``OTEL_SERVICE_NAME`` (or ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``) is unset.
SERVICE_WEB = "hublink-web"
SERVICE_WORKER = "hublink-worker"
#: The inbox entry's field holding the W3C traceparent of the request that stored it (absent when off).
ENTRY_FIELD = "tp"
#: Characters of a lane member's origin: a trace id and a span id (24 bytes) in unpadded base64url.
ORIGIN_CHARS = 32
#: The one exporter protocol shipped (the SDK's gRPC exporter would pull in grpcio).
PROTOCOL = "http/protobuf"

#: The tracer while tracing is on in this process; None is "off", and every hook checks only that.
_tracer: Any = None
_provider: Any = None
#: The service name :func:`setup` chose while waiting for :func:`start_after_fork` (gunicorn's master).
_deferred_service: str | None = None
_defer = False
#: A HubSpot call's attributes and links, handed by the call step to the HTTP span it opens (``hubspot_call``).
_call_scope: ContextVar[tuple[dict[str, Any], list[Any]] | None] = ContextVar("hublink_call_scope", default=None)
#: What a hook returns when tracing is off (reusable, and ``as span`` gives None).
NOOP: contextlib.nullcontext[None] = contextlib.nullcontext()


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint or an exporter named, SDK not disabled)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporter_names(env)
    if exporters:
        return exporters != ["none"]
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return any(env.get(name, "").strip() for name in endpoints)


def _exporter_names(env: Mapping[str, str]) -> list[str]:
    """OTEL_TRACES_EXPORTER as a list (the specification allows several, comma-separated)."""
    return [name.strip() for name in env.get("OTEL_TRACES_EXPORTER", "").lower().split(",") if name.strip()]


def enabled() -> bool:
    """True while this process records spans."""
    return _tracer is not None


def defer_to_fork() -> None:
    """Make :func:`setup` only name the service; each forked worker builds its provider (gunicorn's master)."""
    global _defer
    _defer = True


def start_after_fork() -> None:
    """In a forked worker: build the provider the master's :func:`setup` deferred (nothing if it was off)."""
    global _defer
    _defer = False
    if _deferred_service is not None:
        setup(_deferred_service)


def setup(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Start tracing for this process when the environment asks for it; True when on (or deferred).

    ``environ`` decides whether (default: os.environ); the SDK itself reads its settings from os.environ.
    Raises ConfigError for an exporter or protocol this build cannot serve (only OTLP over HTTP/protobuf,
    and ``console`` for a look at the spans on stdout).
    """
    global _tracer, _provider, _deferred_service
    env = os.environ if environ is None else environ
    if not wanted(env):
        return False
    exporter_names = [name for name in _exporter_names(env) if name != "none"] or ["otlp"]
    for name in exporter_names:
        if name not in ("otlp", "console"):
            raise ConfigError(f"OTEL_TRACES_EXPORTER: {name!r:.40} is not served; use otlp, console or none")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol:
            if protocol != PROTOCOL:
                raise ConfigError(f"{name}: {protocol!r:.40} is not served; HubLink exports {PROTOCOL}")
            break
    if _defer:
        _deferred_service = service_name
        return True
    if _provider is not None:
        return True
    # Imported only here: a process with tracing off never loads the SDK.
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the default name only fills a gap.
    # The pid tells gunicorn's workers apart (and shows each built its provider after the fork).
    resource = Resource.create({SERVICE_VERSION: __version__, "process.pid": os.getpid()})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    # The sampler (OTEL_TRACES_SAMPLER), span limits (OTEL_SPAN_*) and the batch processor (OTEL_BSP_*) read
    # the environment themselves.
    provider = TracerProvider(resource=resource)
    for name in exporter_names:
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider = provider
    _tracer = provider.get_tracer("hublink", __version__)
    # Not set as the global provider: only HubLink's hooks make spans, and a library's use of the global API
    # stays a no-op rather than filling traces with spans nobody asked for.
    log.info(
        "tracing on",
        extra={"service": resource.attributes.get(SERVICE_NAME), "exporter": exporter_names, "pid": os.getpid()},
    )
    return True


def shutdown() -> None:
    """Export what is buffered and stop (at a process's end; tracing is off afterwards)."""
    global _tracer, _provider
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def use_provider(provider: Any) -> None:
    """Record with ``provider`` (an SDK TracerProvider: tests hand one with an in-memory exporter); None: off."""
    global _tracer, _provider
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer("hublink", __version__)


# --- context carried through Redis ---


def traceparent() -> str:
    """The W3C traceparent of the current span, for an inbox entry; "" when off or outside any span."""
    if _tracer is None:
        return ""
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a version-00 traceparent, or None when it is not one."""
    parts = value.split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    return (trace_id, span_id, flags) if trace_id and span_id else None


def origin(traceparent: str) -> str:
    """What a lane member carries of the request that created it: "" when off, absent or not sampled.

    32 characters (the trace id and span id in unpadded base64url), never the unit separator.
    """
    if _tracer is None or not traceparent:
        return ""
    parsed = _parse_traceparent(traceparent)
    if parsed is None or not parsed[2] & 1:
        return ""  # unsampled: a link to a span nobody exported shows nothing
    raw = parsed[0].to_bytes(16, "big") + parsed[1].to_bytes(8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _origin_context(value: str) -> Any:
    """The span context a member's origin names, or None when it does not decode."""
    if len(value) != ORIGIN_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None
    from opentelemetry.trace import SpanContext, TraceFlags

    context = SpanContext(
        int.from_bytes(raw[:16], "big"), int.from_bytes(raw[16:], "big"), is_remote=True, trace_flags=TraceFlags(1)
    )
    return context if context.is_valid else None


def _parent(traceparent: str) -> Any:
    """An OpenTelemetry Context whose span is the one ``traceparent`` names (None: a new trace)."""
    parsed = _parse_traceparent(traceparent) if traceparent else None
    if parsed is None:
        return None
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    context = SpanContext(parsed[0], parsed[1], is_remote=True, trace_flags=TraceFlags(parsed[2] & 0xFF))
    return set_span_in_context(NonRecordingSpan(context))


# --- spans ---


def _start(
    name: str, kind: str, attributes: Mapping[str, Any], *, context: Any = None, links: Sequence[Any] = ()
) -> Any:
    """A span made current for the ``with`` block; exceptions are recorded and mark it as an error."""
    from opentelemetry.trace import SpanKind

    return _tracer.start_as_current_span(
        name, context=context, kind=getattr(SpanKind, kind), attributes=dict(attributes), links=list(links)
    )


def server_span(name: str, attributes: Mapping[str, Any], carrier: Any) -> Any:
    """A request's SERVER span, continuing a caller's trace from its headers (``OTEL_PROPAGATORS``).

    Returns a handle (the span, already current, and the token that makes it so) for
    :func:`end_server_span`; None when off.
    """
    if _tracer is None:
        return None
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace

    parent = propagate.extract(carrier)
    span = _tracer.start_span(name, context=parent, kind=trace.SpanKind.SERVER, attributes=dict(attributes))
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return (span, token)


def end_server_span(handle: Any, status: int | None, error: BaseException | None = None) -> None:
    """End what :func:`server_span` started, with the response's status (5xx, or an exception: an error)."""
    if handle is None:
        return
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    span, token = handle
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if error is not None:
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(Status(StatusCode.ERROR))
    elif status is not None and status >= 500:
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    otel_context.detach(token)


def set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Add ``attributes`` to ``span`` (a no-op for None, what a hook gives when off)."""
    if span is not None:
        span.set_attributes(dict(attributes))


def inbox_add(kind: str) -> Any:
    """The inbox write (PRODUCER); the caller adds ``hublink.inbox.entry_id`` once Redis answered."""
    if _tracer is None:
        return NOOP
    return _start("inbox add", "PRODUCER", {"messaging.operation.type": "send", "hublink.inbox.kind": kind})


def expansion(entry_id: str, kind: str, traceparent: str, deliveries: int) -> Any:
    """The expansion of one inbox entry (CONSUMER), a child of the request that stored it."""
    if _tracer is None:
        return NOOP
    attributes = {
        "messaging.operation.type": "process",
        "messaging.message.id": entry_id,
        "hublink.inbox.kind": kind,
        "hublink.inbox.deliveries": deliveries,
    }
    return _start("inbox expand", "CONSUMER", attributes, context=_parent(traceparent))


def _first_context(origins: Iterable[str]) -> Any:
    """An OpenTelemetry Context under the first origin that decodes (None: a new trace)."""
    from opentelemetry.trace import NonRecordingSpan, set_span_in_context

    for value in origins:
        found = _origin_context(value) if value else None
        if found is not None:
            return set_span_in_context(NonRecordingSpan(found))
    return None


def drain(lane: str, portal: str | None, size: int, origins: Callable[[], Iterable[str]]) -> Any:
    """One claimed batch (INTERNAL), a child of its first association's request (``origins``: their origins)."""
    if _tracer is None:
        return NOOP
    attributes: dict[str, Any] = {"hublink.lane": lane, "hublink.batch.size": size}
    if portal:
        attributes["hublink.portal_id"] = portal
    return _start("drain", "INTERNAL", attributes, context=_first_context(origins()))


@contextlib.contextmanager
def _scope(attributes: dict[str, Any], links: list[Any]) -> Iterator[None]:
    token = _call_scope.set((attributes, links))
    try:
        yield
    finally:
        _call_scope.reset(token)


def hubspot_call(lane: str, portal: str | None, kind: str, size: int, origins: Callable[[], Iterable[str]]) -> Any:
    """Around one association call: the HTTP span it makes carries these attributes and links to each origin."""
    if _tracer is None:
        return NOOP
    from opentelemetry.trace import Link

    links: list[Any] = []
    seen: set[str] = set()
    for value in origins():
        if value and value not in seen:
            seen.add(value)
            found = _origin_context(value)
            if found is not None:
                links.append(Link(found))
    attributes: dict[str, Any] = {"hublink.lane": lane, "hublink.batch.size": size, "hublink.call.kind": kind}
    if portal:
        attributes["hublink.portal_id"] = portal
    return _scope(attributes, links)


def http_client(method: str, url: str) -> Any:
    """One HTTP call to HubSpot (CLIENT, HTTP semantic conventions); :func:`http_answer` adds the answer."""
    if _tracer is None:
        return NOOP
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    attributes: dict[str, Any] = {
        "http.request.method": method,
        # Scheme, host and path: the query may carry a credential (hapikey), never worth a span.
        "url.full": f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}",
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }
    links: Sequence[Any] = ()
    scope = _call_scope.get()
    if scope is not None:
        attributes.update(scope[0])
        links = scope[1]
    return _start(method, "CLIENT", attributes, links=links)


def http_answer(span: Any, status: int | None, correlation_id: str | None, error: str | None = None) -> None:
    """HubSpot's answer on an HTTP span: the status, its correlation id, and the error class of a failure."""
    if span is None:
        return
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if correlation_id:
        span.set_attribute("hubspot.correlation_id", correlation_id)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR))


def settle(lane: str, outcomes: int) -> Any:
    """The settle step (INTERNAL): every outcome of a batch written in one atomic call."""
    if _tracer is None:
        return NOOP
    return _start("settle", "INTERNAL", {"hublink.lane": lane, "hublink.settle.outcomes": outcomes})


def log_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids (hex) for a log line; None when off or outside any span."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
