"""The dashboard's pause and resume buttons and a record's trace: routes added to the admin blueprint (its
login and CSRF guard).

Each action passes through a confirmation page that says what it will do, like the dead-letter actions;
the confirmed POST pauses or resumes through the same store as the API (``web.controls.pauses``).
"""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hublink.delivery.pauses import OPERATOR_SCOPES, Pause
from hublink.ops.trace import trace as trace_of
from web.admin import bp
from web.container import parts
from web.controls import pauses
from web.events import history

log = logging.getLogger("hublink.web")


@bp.post("/pauses/<any(pause, resume):action>")
def pause_or_resume(action: str) -> Response | str:
    """Pause or resume a portal or a lane: a confirmation page first, then the confirmed POST does it."""
    scope = request.form.get("scope", "")
    name = request.form.get("name", "").strip()
    reason = request.form.get("reason", "").strip()[:200]
    try:
        if scope not in OPERATOR_SCOPES:
            raise ValueError(f"scope: expected one of {OPERATOR_SCOPES}, got {scope[:20]!r}")
        target = Pause.target(scope, name)
    except ValueError as exc:
        flash(f"Nothing done: {exc}")
        return redirect(url_for("admin.index"))
    if request.form.get("confirmed") != "yes":
        return render_template(
            "admin/confirm_pause.html",
            action=action,
            target=target,
            reason=reason,
            url=url_for("admin.pause_or_resume", action=action),
        )
    store = pauses()
    changed = (
        store.pause(scope, name, reason or "paused from the dashboard")
        if action == "pause"
        else store.resume(scope, name)
    )
    log.info("admin action", extra={"action": action, "scope": scope, "target": name, "count": int(changed)})
    done = "Paused" if action == "pause" else "Resumed"
    flash(f"{done} {scope} {name}." if changed else f"Nothing to do: {scope} {name} was already {action}d.")
    return redirect(url_for("admin.index"))


@bp.get("/trace")
def trace() -> str:
    """The search box's answer: a record's events and associations, in one timeline."""
    object_type = request.args.get("type", "").strip()[:40]
    object_id = request.args.get("id", "").strip()[:20]
    found = None
    if object_type or object_id:
        try:
            if not object_id.isdigit():
                raise ValueError(f"id: expected decimal digits, got {object_id!r}")
            p = parts()
            found = trace_of(p.redis, p.keys, history(), object_type, object_id)
        except ValueError as exc:
            flash(f"Nothing to show: {exc}")
    return render_template("admin/trace.html", found=found, object_type=object_type, object_id=object_id)
