"""The event history API, behind the admin token: ``GET /api/events``, ``GET /api/events/<id>`` and
``POST /api/events/replay``.

Every accepted request and each of its events, with what became of it (``hublink.intake.history``):
filter by source, portal, subscription type, object type and id, outcome and time, newest first, with
cursor paging.
"""

from __future__ import annotations

from flask import Response, jsonify, request
from werkzeug.routing import BaseConverter

from hublink.intake.history import MAX_PAGE, EventFilter, strip_internal
from web.api.blueprint import bp, bulk_args, flag
from web.audit import audit, events_target, replay_outcome
from web.callers import requires
from web.errors import ApiError
from web.parts import parts


class EventIdConverter(BaseConverter):
    """An event id: an inbox entry id (``1764331200000-0``) or a replay's, optionally ``.<index>``.

    So that ``/api/events/replay`` is never taken for an event id.
    """

    regex = r"(?:replay-)?[0-9]{1,20}-[0-9]{1,20}(?:\.[0-9]{1,5})?"


@bp.get("/events")
@requires("events:read")
def list_events() -> Response:
    """Events newest first, filtered, paginated by cursor."""
    try:
        flt = EventFilter.parse(request.args)
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None
    try:
        limit = int(request.args.get("limit", 100))
        items, cursor = parts().history.page(flt, limit=limit, cursor=request.args.get("cursor") or None)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{exc} (limit is 1 to {MAX_PAGE})") from None
    return jsonify({"items": strip_internal(items), "next_cursor": cursor, "count": len(items)})


@bp.get("/events/<event_id:event_id>")
@requires("events:read")
def show_event(event_id: str) -> Response:
    """One request with all its events (``<entry>``), or one event (``<entry>.<index>``)."""
    found = parts().history.get(event_id[:80])
    if found is None:
        raise ApiError(404, "not_found", f"no event {event_id[:80]!r} in the history")
    return jsonify(found)


@bp.post("/events/replay")
@requires("events:replay")
def replay_events() -> tuple[Response, int]:
    """Run past events through today's rules: ``id`` (one event or request), or the list's filters.

    ``dry_run`` stores nothing and lists, per event, what would be produced now beside what was then.
    Without an id or a filter, ``all=true`` must say that every event in the history is meant.
    """
    args = bulk_args()
    dry_run, everything = flag(args, "dry_run"), flag(args, "all")
    event_id = args.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not 0 < len(event_id) <= 80):
        raise ApiError(400, "invalid_parameter", "id: expected an event id (<entry> or <entry>.<index>)")
    try:
        flt = EventFilter.parse({k: v for k, v in args.items() if k in EventFilter.FIELDS})
    except ValueError as exc:
        raise ApiError(400, "invalid_filter", f"bad filter: {exc}") from None
    if event_id is None and flt == EventFilter() and not everything:
        raise ApiError(400, "filter_required", "give an id or a filter, or all=true to replay every event")
    selected = parts().replayer.select(event_id, None if event_id else flt)
    report = parts().replayer.replay(selected, dry_run=dry_run)
    if not dry_run:
        audit("replay", events_target(event_id, args), replay_outcome(report, event_id))
    if event_id is not None and report.matched == 0:
        raise ApiError(404, "not_found", f"no event {event_id!r} in the history")
    return jsonify(report.as_dict()), 200 if dry_run else 202
