"""Blueprint: the event history (``GET /api/events``, ``GET /api/events/<id>``, ``POST /api/events/replay``)
and a record's trace (``GET /api/trace/<objectType>/<objectId>``), behind the admin token.

Every accepted request and each of its events, with what became of it (``hublink.intake.history``):
filter by source, portal, subscription type, object type and id, outcome and time, newest first, with
cursor paging.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.routing import BaseConverter

from hublink.intake.history import MAX_PAGE, EventFilter, EventHistory, strip_internal
from hublink.ops.event_replay import EventReplayer
from hublink.ops.trace import trace
from web.api import _admin, _bulk_args, _flag
from web.container import parts
from web.errors import ApiError

bp = Blueprint("events", __name__, url_prefix="/api")

_EXTENSION = "hublink.history"
_REPLAYER = "hublink.replayer"


class EventIdConverter(BaseConverter):
    """An event id: an inbox entry id (``1764331200000-0``) or a replay's, optionally ``.<index>``.

    So that ``/api/events/replay`` is never taken for an event id.
    """

    regex = r"(?:replay-)?[0-9]{1,20}-[0-9]{1,20}(?:\.[0-9]{1,5})?"


def install(app: Flask, history: EventHistory, replayer: EventReplayer) -> None:
    """Register the blueprint, the history it reads and the replayer that runs today's rules."""
    app.url_map.converters["event_id"] = EventIdConverter
    app.extensions[_EXTENSION] = history
    app.extensions[_REPLAYER] = replayer
    app.register_blueprint(bp)


def replayer() -> EventReplayer:
    """The current app's replayer."""
    found: EventReplayer = current_app.extensions[_REPLAYER]
    return found


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


@bp.get("/events/<event_id:event_id>")
def show_event(event_id: str) -> Response:
    """One request with all its events (``<entry>``), or one event (``<entry>.<index>``)."""
    _admin()
    found = history().get(event_id[:80])
    if found is None:
        raise ApiError(404, "not_found", f"no event {event_id[:80]!r} in the history")
    return jsonify(found)


@bp.post("/events/replay")
def replay_events() -> tuple[Response, int]:
    """Run past events through today's rules: ``id`` (one event or request), or the list's filters.

    ``dry_run`` stores nothing and lists, per event, what would be produced now beside what was then.
    Without an id or a filter, ``all=true`` must say that every event in the history is meant.
    """
    _admin()
    args = _bulk_args()
    dry_run, everything = _flag(args, "dry_run"), _flag(args, "all")
    event_id = args.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= 80):
        raise ApiError(400, "invalid_parameter", "id: expected an event id (<entry> or <entry>.<index>)")
    try:
        flt = EventFilter.parse({k: v for k, v in args.items() if k in EventFilter.FIELDS})
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None
    if event_id is None and flt == EventFilter() and not everything:
        raise ApiError(400, "filter_required", "give an id or a filter, or all=true to replay every event")
    selected = replayer().select(event_id, None if event_id else flt)
    report = replayer().replay(selected, dry_run=dry_run)
    if event_id is not None and report.matched == 0:
        raise ApiError(404, "not_found", f"no event {event_id!r} in the history")
    return jsonify(report.as_dict()), 200 if dry_run else 202


@bp.get("/trace/<object_type>/<object_id>")
def trace_record(object_type: str, object_id: str) -> Response:
    """Every event that named the record and every association involving it, in one timeline."""
    _admin()
    if not object_id.isdigit() or len(object_id) > 20:
        raise ApiError(400, "invalid_parameter", f"object_id: expected 1-20 decimal digits, got {object_id[:30]!r}")
    p = parts()
    try:
        found = trace(p.redis, p.keys, history(), object_type[:40], object_id)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return jsonify(found)
