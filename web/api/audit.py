"""``GET /api/audit`` (scope ``admin``): the audit log, newest first, filtered, paged by cursor.

Reading the log is not itself recorded. Every parameter is checked: a misspelt filter is a 400 naming it,
never a page of everything.
"""

from __future__ import annotations

from flask import Response, jsonify, request

from hublink.ops.audit import MAX_PAGE, AuditFilter
from web.api.blueprint import bp
from web.callers import requires
from web.errors import ApiError
from web.parts import parts

#: Every query parameter the route reads.
PARAMETERS = (*AuditFilter.FIELDS, "limit", "cursor")


@bp.get("/audit")
@requires("admin")
def list_audit() -> Response:
    """Admin actions, newest first: ``{"items": [...], "next_cursor"}``."""
    unknown = sorted(set(request.args) - set(PARAMETERS))
    if unknown:
        raise ApiError(
            400,
            "invalid_parameter",
            f"unknown parameter {unknown[0][:40]!r}: expected {', '.join(PARAMETERS)}",
        )
    try:
        flt = AuditFilter.parse(request.args, blank_is_any=False)
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None
    raw_limit = request.args.get("limit", "100")
    if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= MAX_PAGE):
        raise ApiError(400, "invalid_parameter", f"limit: expected 1 to {MAX_PAGE}, got {raw_limit[:20]!r}")
    try:
        entries, cursor = parts().audit.page(flt, limit=int(raw_limit), cursor=request.args.get("cursor") or None)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return jsonify({"items": [entry.to_wire() for entry in entries], "next_cursor": cursor})
