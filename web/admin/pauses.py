"""The dashboard's pause and resume buttons for a portal or a lane.

Each action passes through a confirmation page that says what it will do, like the dead-letter actions;
the confirmed POST pauses or resumes through the same store as the API (``Parts.pauses``).
"""

from __future__ import annotations

import logging

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hublink.delivery.installs import resume_uninstalled
from hublink.delivery.pauses import OPERATOR_SCOPES, Pause
from web.admin.blueprint import bp
from web.audit import audit
from web.parts import parts

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
    p = parts()
    store = p.pauses
    if action == "resume" and scope == "portal" and resume_uninstalled(p.redis, p.keys, store, name):
        # The operator says the app is installed again: the portal's next call refreshes its token.
        flash(f"Portal {name} is no longer marked uninstalled; its work goes out now.")
    changed = (
        store.pause(scope, name, reason or "paused from the dashboard")
        if action == "pause"
        else store.resume(scope, name)
    )
    log.info("admin action", extra={"action": action, "scope": scope, "target": name, "count": int(changed)})
    audit(action, f"{scope} {name}", "ok" if changed else "ok: unchanged")
    done = "Paused" if action == "pause" else "Resumed"
    flash(f"{done} {scope} {name}." if changed else f"Nothing to do: {scope} {name} was already {action}d.")
    return redirect(url_for("admin.index"))
