"""The dashboard's login and logout: the admin token starts a session, throttled per address and in total."""

from __future__ import annotations

import hmac
import logging
import time

from flask import current_app, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from web.admin.blueprint import bp, csrf_token, throttled, token_mark
from web.admin.sessions import EXTENSION
from web.audit import audit
from web.parts import parts

log = logging.getLogger("hublink.web")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int, dict[str, str]]:
    """The login form; the correct admin token starts a session and goes on to ``next`` (an admin page).

    An address that failed too often, or everyone once all addresses together did, gets a 429 whatever
    token it sends, until the window ends (:mod:`web.throttle`).
    """
    p = parts()
    expected = p.settings.admin_token
    if not expected:
        flash("HUBLINK_ADMIN_TOKEN is not set, so the dashboard is disabled.")
    elif request.method == "POST":
        address = request.remote_addr or "unknown"
        # Counted before the comparison, in the same step as the check (web.throttle); a right token gives it back.
        verdict = p.login_throttle.take(address)
        if not verdict.allowed:
            return throttled(verdict.retry_after_s, verdict.scope)
        presented = request.form.get("token", "")
        if hmac.compare_digest(presented.encode(), expected.encode()):
            p.login_throttle.refund(address)
            # A fresh session (new id) and CSRF token at the change of privilege: nothing from before carries over.
            session.clear()
            regenerate = getattr(session, "regenerate", None)
            if regenerate is not None:
                regenerate()
            session.update(admin=True, since=time.time(), mark=token_mark(expected))
            session.permanent = True
            csrf_token()
            audit("login", "dashboard")  # after the new id: the session named is the one that acts next
            return redirect(_safe_next(request.args.get("next", "")))
        by_address, in_total = verdict.counts
        log.info(
            "admin login refused",
            extra={
                "path": request.path,
                "reason": "wrong token",
                "client": address,
                "failures": by_address,
                "failures_total": in_total,
            },
        )
        audit("login", "dashboard", "refused: wrong token")  # never the token presented
        flash("Wrong token.")
    return render_template("admin/login.html")


def is_clean_local_path(target: str) -> bool:
    """True for a path on this site: one leading ``/``, no ``//``, no backslash, no control character.

    So no scheme or host (``https://x``, ``//x``, ``/\\x``), and nothing that could split a header (CR, LF).
    """
    return (
        target.startswith("/")
        and "//" not in target
        and "\\" not in target
        and all(0x20 <= ord(c) != 0x7F for c in target)
    )


def _safe_next(target: str) -> str:
    """``target`` if it is a clean local path under /admin, else the overview (no open redirect, no header split)."""
    path = target.split("?", 1)[0]
    if is_clean_local_path(target) and (path == "/admin" or path.startswith("/admin/")):
        return target
    return url_for("admin.index")


@bp.post("/logout")
def logout() -> Response:
    """End the session: deleted from Redis first, so a copied cookie opens nothing afterwards (or a 503)."""
    audit("logout", "dashboard")  # while the session still names its operator
    sid = getattr(session, "sid", None)
    if sid and not getattr(session, "new", True):
        current_app.extensions[EXTENSION].delete(sid)
    session.clear()
    regenerate = getattr(session, "regenerate", None)
    if regenerate is not None:
        regenerate()  # the "Logged out." message goes in a new anonymous session, never under the old id
    flash("Logged out.")
    return redirect(url_for("admin.login"))
