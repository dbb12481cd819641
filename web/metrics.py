"""Blueprint: ``GET /metrics`` in Prometheus's text format, optionally behind HUBLINK_METRICS_TOKEN."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hublink.ops.prometheus import render
from hublink.store.connections import store_errors
from web.parts import parts
from web.request_parsing import require_bearer

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Every HubLink metric, aggregated across all processes (they are kept in Redis)."""
    p = parts()
    if p.settings.metrics_token:
        require_bearer(p.settings.metrics_token, realm="metrics")
    with store_errors():
        body = render(p.probe_redis, p.keys, p.settings.queue_name)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
