"""A record's trace, behind the admin token: ``GET /api/trace/<objectType>/<objectId>``."""

from __future__ import annotations

from flask import Response, jsonify

from hublink.domain.associations import is_object_id
from hublink.ops.trace import trace
from web.api.blueprint import bp
from web.callers import requires
from web.errors import ApiError
from web.parts import parts


@bp.get("/trace/<object_type>/<object_id>")
@requires("events:read")
def trace_record(object_type: str, object_id: str) -> Response:
    """Every event that named the record and every association involving it, in one timeline."""
    if not is_object_id(object_id):
        raise ApiError(400, "invalid_parameter", f"object_id: expected 1-20 decimal digits, got {object_id[:30]!r}")
    p = parts()
    try:
        found = trace(p.redis, p.keys, p.history, object_type[:40], object_id)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return jsonify(found)
