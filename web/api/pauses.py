"""Pause and resume a portal or a lane (``/api/portals/<portal>/pause|resume``,
``/api/lanes/<lane>/pause|resume``, ``GET /api/pauses``), behind the admin token.

Intake goes on while something is paused; its work waits in the lanes and no attempt is spent
(``hublink.delivery.pauses``). Pausing what is paused, or resuming what is not, is not an error: the
answer's ``changed`` says whether anything changed.
"""

from __future__ import annotations

from flask import Response, jsonify

from hublink.delivery.installs import uninstalled_portals
from hublink.delivery.pauses import MAX_REASON
from web.api.blueprint import bp, bulk_args
from web.audit import audit
from web.callers import requires
from web.errors import ApiError
from web.parts import parts


def _act(scope: str, name: str, action: str) -> Response:
    reason = ""
    if action == "pause":
        given = bulk_args().get("reason", "")
        if not isinstance(given, str) or len(given) > MAX_REASON:
            raise ApiError(400, "invalid_parameter", f"reason: expected a string of at most {MAX_REASON} characters")
        reason = given
    store = parts().pauses
    try:
        changed = store.pause(scope, name, reason) if action == "pause" else store.resume(scope, name)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    audit(action, f"{scope} {name}", "ok" if changed else "ok: unchanged")
    current = store.get(scope, name)
    return jsonify(
        {
            "scope": scope,
            "name": name,
            "paused": current is not None,
            "changed": changed,
            "since_ms": current.since_ms if current else None,
            "reason": current.reason if current else None,
        }
    )


@bp.post("/portals/<portal>/<any(pause, resume):action>")
@requires("pause:write")
def portal(portal: str, action: str) -> Response:
    """Pause or resume every lane of a portal (``_``: single-portal mode)."""
    return _act("portal", portal, action)


@bp.post("/lanes/<path:lane>/<any(pause, resume):action>")
@requires("pause:write")
def lane(lane: str, action: str) -> Response:
    """Pause or resume one lane (``<portal>|<fromType>|<toType>``, URL-encoded)."""
    return _act("lane", lane, action)


@bp.get("/pauses")
@requires("events:read")
def list_pauses() -> Response:
    """Everything paused now: by operators (portal, lane) and by open circuits (circuit); and the portals the
    app is uninstalled from (``uninstalled``: since when, and when their work is dead-lettered)."""
    p = parts()
    uninstalled = uninstalled_portals(p.redis, p.keys, hold_h=p.settings.uninstalled_hold_h)
    return jsonify({"items": [x.as_json() for x in p.pauses.list()], "uninstalled": [u.as_json() for u in uninstalled]})
