"""Traces (``hublink.tracing``): off unless asked for, and the context carried through the inbox and the lanes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hublink import __version__, tracing
from hublink import log as hublink_log
from hublink.domain.associations import AssociationRequest
from hublink.domain.errors import ConfigError
from hublink.intake.inbox import _entry
from hublink.lanes import claimed_from, member_of
from hublink.lanes.codec import member_origin

ID = "0123456789abcdef0123456789abcdef"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE}-{SPAN}-01"
REQUEST = AssociationRequest(
    from_object_type="deals",
    from_object_id="5",
    to_object_type="contacts",
    to_object_id="6",
    portal_id="62515",
    source="hubspot",
    source_event_id="e1",
    received_at=1.5,
)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every span kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The one finished span called ``name``."""
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


class TestOffUnlessAsked:
    """The OTEL_* variables decide; without them nothing is set up and every hook is a no-op."""

    @pytest.mark.parametrize(
        ("environ", "on"),
        [
            ({}, False),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
            ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
            ({"OTEL_TRACES_EXPORTER": "console"}, True),
            ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
            ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
            ({"OTEL_SERVICE_NAME": "mine"}, False),
            ({"OTEL_TRACES_EXPORTER": "otlp,console"}, True),
            ({"OTEL_TRACES_EXPORTER": " None "}, False),
        ],
    )
    def test_wanted_only_with_an_endpoint_or_an_exporter(self, environ: dict[str, str], on: bool) -> None:
        """An endpoint or a named exporter turns tracing on; ``none`` and OTEL_SDK_DISABLED keep it off."""
        assert tracing.wanted(environ) is on

    def test_off_sets_up_nothing_and_every_hook_is_a_no_op(self) -> None:
        """No provider: no traceparent, no origin, the shared no-op context for every span hook."""
        assert tracing.setup(tracing.SERVICE_WEB, {}) is False
        assert not tracing.enabled()
        assert tracing.traceparent() == ""
        assert tracing.origin(SAMPLED) == ""
        assert tracing.log_ids() is None
        hooks = [
            tracing.inbox_add("hubspot"),
            tracing.expansion("1-0", "hubspot", SAMPLED, 1),
            tracing.drain("62515|deals|contacts", "62515", 1, lambda: [""]),
            tracing.hubspot_call("62515|deals|contacts", "62515", "default", 1, lambda: [""]),
            tracing.http_client("PUT", "https://api.hubapi.com/x"),
            tracing.settle("62515|deals|contacts", 1),
        ]
        assert all(hook is tracing.NOOP for hook in hooks)
        assert tracing.server_span("GET /", {}, {}) is None

    @pytest.mark.parametrize(
        ("environ", "variable"),
        [
            ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
            ({"OTEL_TRACES_EXPORTER": "otlp,zipkin"}, "OTEL_TRACES_EXPORTER"),
            ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
            (
                {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            ),
        ],
    )
    def test_an_exporter_this_build_cannot_serve_refuses_to_start(self, environ: dict[str, str], variable: str) -> None:
        """Only OTLP over HTTP/protobuf (and the console) are shipped: anything else names its variable."""
        with pytest.raises(ConfigError, match=variable):
            tracing.setup(tracing.SERVICE_WORKER, environ)
        assert not tracing.enabled()

    def test_setup_names_the_service_unless_the_environment_does(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``hublink-worker`` by default; OTEL_SERVICE_NAME wins; the version is the resource's too."""
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        for name, expected in ((None, "hublink-worker"), ("links-eu", "links-eu")):
            if name:
                monkeypatch.setenv("OTEL_SERVICE_NAME", name)
            try:
                assert tracing.setup(tracing.SERVICE_WORKER) is True
                assert tracing.enabled()
                attributes = tracing._provider.resource.attributes
                assert attributes["service.name"] == expected
                assert attributes["service.version"] == __version__
            finally:
                tracing.shutdown()
            assert not tracing.enabled()

    def test_deferred_to_the_fork_the_master_builds_nothing(self) -> None:
        """Under gunicorn's master, setup only names the service; a worker builds it after the fork."""
        tracing.defer_to_fork()
        try:
            assert tracing.setup(tracing.SERVICE_WEB, {"OTEL_TRACES_EXPORTER": "console"}) is True
            assert not tracing.enabled()
        finally:
            tracing._defer = False
            tracing._deferred_service = None


class TestContextThroughRedis:
    """The request's span context rides in the inbox entry, and in each association's lane member."""

    def test_the_inbox_entry_carries_the_traceparent_of_the_current_span(self, spans: InMemorySpanExporter) -> None:
        """Inside a span, ``traceparent()`` is its W3C form; an entry read back keeps it; one without has ""."""
        with tracing._start("request", "SERVER", {}) as span:
            context = span.get_span_context()
            value = tracing.traceparent()
        assert value == f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
        assert int(context.trace_flags) & 1, "sampled"
        assert _entry(b"1-0", {b"kind": b"hubspot", b"body": b"[]", b"at": b"1.0", b"tp": value.encode()}).traceparent
        assert _entry(b"1-0", {b"kind": b"hubspot", b"body": b"[]", b"at": b"1.0"}).traceparent == ""

    def test_the_expansion_is_a_child_of_the_request(self, spans: InMemorySpanExporter) -> None:
        """The entry's traceparent is the expansion's parent: one trace across the two processes."""
        with tracing.expansion("1-0", "hubspot", SAMPLED, 2):
            pass
        span = only(spans, "inbox expand")
        assert span.kind is SpanKind.CONSUMER
        assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE, SPAN)  # type: ignore[union-attr]
        assert span.attributes == {
            "messaging.operation.type": "process",
            "messaging.message.id": "1-0",
            "hublink.inbox.kind": "hubspot",
            "hublink.inbox.deliveries": 2,
        }

    def test_an_entry_without_a_context_starts_a_trace(self, spans: InMemorySpanExporter) -> None:
        """An entry stored with tracing off (or a malformed field) expands as a root span."""
        for value in ("", "00-zz-yy-01", "garbage"):
            with tracing.expansion("1-0", "hubspot", value, 1):
                pass
        assert all(s.parent is None for s in spans.get_finished_spans())

    def test_a_member_carries_32_bytes_of_origin_and_reads_back_the_same_work(
        self, spans: InMemorySpanExporter
    ) -> None:
        """The origin is 32 characters after the form letter; the claim reads the same request and id."""
        origin = tracing.origin(SAMPLED)
        assert len(origin) == tracing.ORIGIN_CHARS == 32
        plain, traced = member_of(ID, REQUEST, 7), member_of(ID, REQUEST, 7, origin)
        assert len(traced.encode()) - len(plain.encode()) == 32
        assert member_origin(traced) == origin and member_origin(plain) == ""
        assert plain.split("\x1f")[2] == "a", "tracing off: the member is exactly as before"
        for member in (plain, traced):
            claimed = claimed_from([member.encode(), None, None, None], REQUEST.lane)
            assert (claimed.association_id, claimed.request, claimed.first_seen_ms) == (ID, REQUEST, 7)
        assert traced.startswith(plain.split("\x1fa\x1f")[0] + "\x1fa" + origin + "\x1f")

    def test_an_unsampled_request_gives_no_origin(self, spans: InMemorySpanExporter) -> None:
        """A request the sampler dropped costs its associations nothing: a link to it would show nothing."""
        assert tracing.origin(f"00-{TRACE}-{SPAN}-00") == ""
        assert tracing.origin("not a traceparent") == ""

    @given(trace_id=st.integers(1, 2**128 - 1), span_id=st.integers(1, 2**64 - 1))
    def test_every_context_survives_its_origin_form(self, trace_id: int, span_id: int) -> None:
        """Any trace and span id come back from the 32 characters a member holds, and never hold a separator."""
        tracing.use_provider(TracerProvider())
        try:
            origin = tracing.origin(f"00-{trace_id:032x}-{span_id:016x}-01")
            assert len(origin) == 32 and "\x1f" not in origin
            context = tracing._origin_context(origin)
            assert (context.trace_id, context.span_id) == (trace_id, span_id)
        finally:
            tracing.use_provider(None)


class TestCallSpans:
    """A HubSpot call is a CLIENT span with the batch's attributes, linked to the request of each association."""

    def test_a_batch_call_links_once_to_each_request(self, spans: InMemorySpanExporter) -> None:
        """Three associations from two requests: two links; the HTTP attributes and HubSpot's answer."""
        first, second = tracing.origin(SAMPLED), tracing.origin(f"00-{'1' * 32}-{'2' * 16}-01")
        with (
            tracing.drain("62515|deals|contacts", "62515", 3, lambda: [first, second, first]),
            tracing.hubspot_call("62515|deals|contacts", "62515", "default", 3, lambda: [first, second, first, ""]),
            tracing.http_client("POST", "https://user:pw@api.hubapi.com:443/crm/x?hapikey=secret") as span,
        ):
            tracing.http_answer(span, 200, "corr-1")
        call, drain = only(spans, "POST"), only(spans, "drain")
        assert call.kind is SpanKind.CLIENT
        assert call.parent.span_id == drain.context.span_id  # type: ignore[union-attr]
        assert f"{drain.parent.span_id:016x}" == SPAN and f"{drain.context.trace_id:032x}" == TRACE  # type: ignore[union-attr]
        assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in call.links] == [
            (TRACE, SPAN),
            ("1" * 32, "2" * 16),
        ]
        attributes: dict[str, Any] = dict(call.attributes or {})
        assert attributes == {
            "http.request.method": "POST",
            "url.full": "https://api.hubapi.com:443/crm/x",
            "server.address": "api.hubapi.com",
            "server.port": 443,
            "hublink.lane": "62515|deals|contacts",
            "hublink.batch.size": 3,
            "hublink.call.kind": "default",
            "hublink.portal_id": "62515",
            "http.response.status_code": 200,
            "hubspot.correlation_id": "corr-1",
        }

    def test_a_refused_call_is_an_error_with_its_class(self, spans: InMemorySpanExporter) -> None:
        """HubSpot's refusal: its status, correlation id and error class, and the span's status is an error."""
        with tracing.http_client("PUT", "https://api.hubapi.com/crm/y") as span:
            tracing.http_answer(span, 429, "corr-2", "RateLimitedError")
        call = only(spans, "PUT")
        assert call.attributes is not None and call.attributes["error.type"] == "RateLimitedError"
        assert call.attributes["http.response.status_code"] == 429
        assert not call.status.is_ok
        assert "hublink.batch.size" not in call.attributes, "a call outside an association call has no batch"


class TestLogs:
    """Log lines made inside a span carry its ids; others do not."""

    def test_trace_and_span_ids_inside_a_span_only(self, spans: InMemorySpanExporter) -> None:
        """The structlog processor adds ``trace_id`` and ``span_id`` from the current span."""
        with tracing._start("work", "INTERNAL", {}) as span:
            inside = hublink_log.add_trace_ids(logging.getLogger(), "info", {"event": "x"})
        context = span.get_span_context()
        assert inside == {"event": "x", "trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}
        assert hublink_log.add_trace_ids(None, "info", {"event": "y"}) == {"event": "y"}

    def test_off_adds_nothing(self) -> None:
        """With tracing off a record is left as it is."""
        assert hublink_log.add_trace_ids(None, "info", {"event": "z"}) == {"event": "z"}


class TestServerSpans:
    """The web's SERVER span, from Flask's hooks (``web.tracing``)."""

    def test_a_request_is_a_server_span_that_continues_a_callers_trace(
        self, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, make_settings: Any
    ) -> None:
        """A caller's traceparent is the parent; route and status are recorded; probes make no span."""
        from web import create_app

        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
        client = create_app(make_settings()).test_client()
        headers = {"traceparent": SAMPLED, "User-Agent": "probe/1", "X-Request-Id": "req-123"}
        with client.get("/openapi.yaml", headers=headers) as answer:
            assert answer.status_code == 200
        span = only(spans, "GET /openapi.yaml")
        assert span.kind is SpanKind.SERVER
        assert (f"{span.context.trace_id:032x}", f"{span.parent.span_id:016x}") == (TRACE, SPAN)  # type: ignore[union-attr]
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 200
        assert span.attributes["http.route"] == span.attributes["url.path"] == "/openapi.yaml"
        assert span.attributes["user_agent.original"] == "probe/1"
        assert span.attributes["hublink.request_id"] == "req-123"
        assert span.status.is_ok
        client.get("/healthz")
        assert [s.name for s in spans.get_finished_spans()] == ["GET /openapi.yaml"], "no span for a probe"

    def test_without_otel_variables_no_hook_is_registered(self, make_settings: Any) -> None:
        """Tracing off: the app has none of the tracing hooks, so a request pays nothing."""
        from web import create_app
        from web import tracing as web_tracing

        app = create_app(make_settings())
        hooks = [*app.before_request_funcs.get(None, []), *app.teardown_request_funcs.get(None, [])]
        assert web_tracing._start not in hooks and web_tracing._end not in hooks
