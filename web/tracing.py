"""The web's server span: one per request, from Flask's own hooks (``hublink.tracing`` owns the rest).

Written by hand rather than with opentelemetry-instrumentation-flask: that package is not on HubLink's
package mirror, and for what HubLink needs (one SERVER span with the HTTP semantic conventions, a caller's
``traceparent`` honoured, the span current while the view runs so that the inbox write is its child) three
hooks are shorter than its WSGI middleware, its Werkzeug patching and its dependencies. Nothing is
registered when tracing is off: a request then pays nothing at all.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from flask import Flask, Response, g, request

from hublink import tracing

#: A Flask rule's converter (``<string(length=32):letter_id>``), dropped from ``http.route``: ``<letter_id>``.
_CONVERTER = re.compile(r"<[^<>:]+:([^<>]+)>")
#: Probes and scrapes, every few seconds from every orchestrator and Prometheus: spans of them would bury the
#: requests that carry work.
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def install(app: Flask) -> None:
    """Give every request of ``app`` a SERVER span, when the environment asks for traces."""
    if not tracing.wanted():
        return
    # Registered before create_app's own hooks, so that their log lines (and a refusal they raise) are inside.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_status)
    app.teardown_request(_end)


def _start() -> None:
    if request.path in UNTRACED:
        return
    rule = _CONVERTER.sub(r"<\1>", request.url_rule.rule) if request.url_rule is not None else None
    attributes: dict[str, Any] = {
        "http.request.method": request.method,
        "url.path": request.path,
        "url.scheme": request.scheme,
        "server.address": request.host.rsplit(":", 1)[0] if request.host else "",
        "network.protocol.version": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1").rpartition("/")[2],
    }
    if rule is not None:
        attributes["http.route"] = rule
    if request.remote_addr:
        attributes["client.address"] = request.remote_addr
    agent = request.headers.get("User-Agent")
    if agent:
        attributes["user_agent.original"] = agent[:256]
    name = f"{request.method} {rule}" if rule is not None else request.method
    g.hublink_span = tracing.server_span(name, attributes, request.headers)


def _status(response: Response) -> Response:
    g.hublink_status = response.status_code
    return response


def _end(error: BaseException | None) -> None:
    handle = g.pop("hublink_span", None)
    if handle is None:
        return
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        handle[0].set_attribute("hublink.request_id", str(request_id))
    tracing.end_server_span(handle, g.pop("hublink_status", None if error is None else 500), error)
