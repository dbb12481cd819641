"""Blueprint: the event history (``GET /api/events``, ``GET /api/events/<id>``), behind the admin token.

Every accepted request and each of its events, with what became of it (``hublink.intake.history``):
filter by source, portal, subscription type, object type and id, outcome and time, newest first, with
cursor paging.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from hublink.intake.history import MAX_PAGE, EventFilter, EventHistory, strip_internal
from web.api import _admin
from web.errors import ApiError

bp = Blueprint("events", __name__, url_prefix="/api")

_EXTENSION = "hublink.history"


def install(app: Flask, history: EventHistory) -> None:
    """Register the blueprint and the history it reads."""
    app.extensions[_EXTENSION] = history
    app.register_blueprint(bp)


def history() -> EventHistory:
    """The current app's event history."""
    found: EventHistory = current_app.extensions[_EXTENSION]
    return found


@bp.get("/events")
def list_events() -> Response:
    """Events newest first, filtered, paginated by cursor."""
    _admin()
    try:
        flt = EventFilter.parse(request.args)
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None
    try:
        limit = int(request.args.get("limit", 100))
        items, cursor = history().page(flt, limit=limit, cursor=request.args.get("cursor") or None)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{exc} (limit is 1 to {MAX_PAGE})") from None
    return jsonify({"items": strip_internal(items), "next_cursor": cursor, "count": len(items)})


@bp.get("/events/<event_id>")
def show_event(event_id: str) -> Response:
    """One request with all its events (``<entry>``), or one event (``<entry>.<index>``)."""
    _admin()
    found = history().get(event_id[:80])
    if found is None:
        raise ApiError(404, "not_found", f"no event {event_id[:80]!r} in the history")
    return jsonify(found)
